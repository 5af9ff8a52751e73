//! ha-core: had's sans-IO core. Heartbeat's wire codec and authentication, peer liveness and
//! the cluster state machine, each driven by `handle(now, ..)` / `poll_*` and tested without
//! sockets or sleeps. No async runtime, socket, netlink or libc crate is in its dependency
//! tree (`just lint` checks it); ha-transport and ha-daemon re-export these modules under
//! their old paths.

pub mod auth;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod liveness;
pub mod logcat;
pub mod message;
pub mod netlog;
pub mod node;
pub mod rng;

pub use config::{AuthMethod, AutoFailback, NodeName};
