//! ha-drill: scripted failover drills. A TOML scenario lists drills (stop a service, crash
//! the active node, standby, ...) and what must follow each step (the VIP moves, the site keeps
//! answering, the VIP returns), each with a deadline. The runner plays them against an
//! executor (`ha-lab drill` in a namespace lab, `hactl drill` on a live node) and renders the
//! seed test report's summary table, in Markdown and JSON.

// Tests may unwrap: a panic there is a failed test, which is the point.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod http;
pub mod probe;
pub mod report;
pub mod runner;
pub mod scenario;

#[cfg(test)]
mod tests;

pub use http::{http_check, http_get};
pub use probe::{ProbeSample, Prober, Sampler, probe_once};
pub use report::{CheckReport, DrillReport, Report, StepReport};
pub use runner::{Executor, RunError, run};
pub use scenario::{
    Action, Defaults, Drill, Expect, ExpectKind, LabSettings, ProbeKind, Scenario, Step, Target,
};
