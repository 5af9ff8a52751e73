//! The schedules' generator is the core's (its simulations draw with the same one).

pub use ha_core::rng::Rng;
