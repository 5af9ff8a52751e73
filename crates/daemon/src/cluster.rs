//! The cluster state machine lives in ha-core (`ha_core::cluster`), with its two-node
//! simulator and soak (`cluster/tests.rs`, `cluster/soak.rs` there); it is re-exported here so
//! `crate::cluster::..` paths keep working.

pub use ha_core::cluster::*;
