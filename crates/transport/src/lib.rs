//! ha-transport: Heartbeat's wire layer (message codec and authentication),
//! peer liveness tracking (all three in ha-core, re-exported here), the UDP media and the
//! little on-disk state they need.

pub use ha_core::{auth, codec, liveness};
pub mod media;
pub mod persist;
pub mod recv;
