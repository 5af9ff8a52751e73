//! splitmix64: tiny and seedable; the same seed draws the same schedule on every machine
//! (the lab soak's fault schedules and the core's simulations).

use std::time::Duration;

/// A seeded generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in lo..=hi, millisecond steps.
    pub fn dur(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }

    /// `base` scaled by a factor uniform in lo..=hi (in thousandths).
    pub fn scaled(&mut self, base: Duration, lo: f64, hi: f64) -> Duration {
        let lo_m = (lo * 1000.0) as u64;
        let hi_m = (hi * 1000.0) as u64;
        let f = lo_m + self.below(hi_m.saturating_sub(lo_m) + 1);
        base * (f as u32) / 1000
    }
}
