//! The cluster state machine lives in ha-core (`ha_core::cluster`); it is re-exported here so
//! `crate::cluster::..` paths keep working. Its simulator and soak stay in this crate because
//! they feed liveness events through the daemon's own mapping (`daemon::on_liveness_event`)
//! and log limiter (`netlog`).

pub use ha_core::cluster::*;

#[cfg(test)]
mod soak;
#[cfg(test)]
mod tests;
