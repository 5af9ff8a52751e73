//! ha-soak: the lab chaos soak of issue 11. A two-node lab cluster with a web service behind
//! the VIP, a client probing it every 20 ms, and N seeded random faults, each followed by a
//! settle phase and audits (VIP overlap sampled every 5 ms, one holder, the right holder,
//! resources together, status views agree, budgets, cores, bad log lines). Writes a report in
//! Markdown and JSON. See docs/reliability.md, "Lab soak".

pub mod audit;
pub mod hostile;
pub mod plan;
pub mod report;
pub mod rng;
pub mod run;

pub use plan::{Fault, Timers, schedule};
pub use report::Report;
pub use run::{Options, run};
