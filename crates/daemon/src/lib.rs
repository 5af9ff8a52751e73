//! ha-daemon: the cluster state machine (`cluster`) and the daemon loop that drives it
//! (`daemon`, `groups`); the `had` binary is `main.rs`. The control protocol and had's command
//! line live in ha-control (re-exported here as `control` and `cli`), which hactl uses alone.

pub mod agent_rt;
pub mod announce;
pub use ha_control::cli;
pub mod cluster;
pub use ha_control as control;
pub mod daemon;
pub mod fence;
pub mod fifo;
pub mod groups;
pub mod guard;
pub mod journald;
pub mod leftovers;
pub mod logging;
pub mod loop_timer;
/// The log catalogue, the network-line limiter and the node live in ha-core.
pub use ha_core::{logcat, netlog, node};
pub mod metrics;
pub mod metrics_http;
pub mod monitor;
pub mod notify;
pub mod params;
pub mod ping;
pub mod ping6;
pub mod realtime;
pub mod record;
pub mod reload;
pub mod sd_notify;
pub mod validate;
