//! ha-daemon: the cluster state machine (`cluster`), the control protocol (`control`) and the
//! daemon loop that drives them (`daemon`, `groups`); the `had` binary is `main.rs`.

pub mod cluster;
pub mod control;
pub mod daemon;
pub mod groups;
pub mod logging;
pub mod monitor;
