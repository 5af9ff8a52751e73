//! ha-daemon: the cluster state machine (`cluster`), the control protocol (`control`) and the
//! daemon loop that drives them (`daemon`, `groups`); the `had` binary is `main.rs`.

pub mod agent_rt;
pub mod announce;
pub mod cli;
pub mod cluster;
pub mod control;
pub mod daemon;
pub mod fence;
pub mod fifo;
pub mod groups;
pub mod journald;
pub mod leftovers;
pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod monitor;
pub mod netlog;
pub mod notify;
pub mod params;
pub mod ping;
pub mod ping6;
pub mod realtime;
pub mod reload;
pub mod sd_notify;
pub mod strict;
pub mod validate;
