//! ha-transport: Heartbeat's wire layer (message codec and authentication),
//! peer liveness tracking, the UDP media and the little on-disk state they need.

pub mod auth;
pub mod codec;
pub mod liveness;
pub mod media;
pub mod persist;
pub mod recv;
