//! The client side of the lab: the project's HTTP GET (ha-drill's), and a prober that
//! records every answer with its time so failovers can be measured.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_drill::probe::Sampler;

use crate::netns;

/// `GET /` to ip:port from the calling thread's namespace; the body of a 2xx answer
/// (the project's one client and rule: [`ha_drill::http`]).
pub fn http_get(ip: impl Into<IpAddr>, port: u16, timeout: Duration) -> anyhow::Result<String> {
    http_get_path(ip, port, "/", timeout)
}

/// `GET path` to ip:port from the calling thread's namespace; the body of a 2xx answer.
pub fn http_get_path(
    ip: impl Into<IpAddr>,
    port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    ha_drill::http_get(SocketAddr::from((ip.into(), port)), path, timeout)
        .map_err(anyhow::Error::msg)
}

/// One probe: when it was sent, when it ended, and the body or the error.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was started.
    pub sent: Instant,
    /// When the answer (or the failure) came.
    pub at: Instant,
    /// The body of a 2xx answer, or the error text.
    pub result: Result<String, String>,
}

impl Sample {
    /// The trimmed body, if the probe was answered.
    pub fn body(&self) -> Option<&str> {
        self.result.as_ref().ok().map(|b| b.trim())
    }
}

/// A background thread in the client namespace probing ip:port over HTTP (ha-drill's
/// [`Sampler`]).
pub struct Prober(Sampler<Sample>);

impl Prober {
    /// Starts probing from inside the network namespace `netns_name`.
    pub(crate) fn start(
        netns_name: &str,
        ip: IpAddr,
        port: u16,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Prober> {
        let file = netns::open(netns_name)?;
        let init = move || netns::enter(&file).map_err(|e| format!("{e:#}"));
        let sampler = Sampler::spawn("ha-lab-prober", every, init, move || {
            let sent = Instant::now();
            let result = http_get(ip, port, timeout).map_err(|e| format!("{e:#}"));
            Sample {
                sent,
                at: Instant::now(),
                result,
            }
        })
        .map_err(anyhow::Error::msg)
        .context("starting the prober")?;
        Ok(Prober(sampler))
    }

    /// A copy of the samples taken so far, while probing goes on.
    pub fn snapshot(&self) -> Vec<Sample> {
        self.0.with(<[Sample]>::to_vec)
    }

    /// Takes the samples taken so far (oldest first), leaving the buffer empty while probing
    /// goes on: a long run reads its samples in batches instead of copying them all each time.
    pub fn drain(&self) -> Vec<Sample> {
        self.0.drain()
    }

    /// When the first probe sent at or after `after` was answered with `body`, so far.
    pub fn first_answer_from(&self, body: &str, after: Instant) -> Option<Instant> {
        self.0.with(|s| first_answer_from(s, body, after))
    }

    /// Stops probing and returns every sample, oldest first.
    pub fn stop(self) -> Vec<Sample> {
        self.0.stop()
    }
}

/// The largest interval between two consecutive answered probes.
pub fn max_gap(samples: &[Sample]) -> Option<Duration> {
    let mut answered = samples.iter().filter(|s| s.result.is_ok()).map(|s| s.at);
    let mut prev = answered.next()?;
    let mut gap = None;
    for at in answered {
        let d = at.saturating_duration_since(prev);
        gap = Some(gap.map_or(d, |g: Duration| g.max(d)));
        prev = at;
    }
    gap
}

/// The largest interval between consecutive answered probes that ends after `after`:
/// the client-visible outage around an event at `after`.
pub fn max_gap_after(samples: &[Sample], after: Instant) -> Option<Duration> {
    let mut answered = samples.iter().filter(|s| s.result.is_ok()).map(|s| s.at);
    let mut prev = answered.next()?;
    let mut gap = None;
    for at in answered {
        if at >= after {
            let d = at.saturating_duration_since(prev);
            gap = Some(gap.map_or(d, |g: Duration| g.max(d)));
        }
        prev = at;
    }
    gap
}

/// When the first probe sent at or after `after` was answered with `body`
/// (compared without surrounding whitespace).
pub fn first_answer_from(samples: &[Sample], body: &str, after: Instant) -> Option<Instant> {
    samples
        .iter()
        .find(|s| s.sent >= after && s.body() == Some(body.trim()))
        .map(|s| s.at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(base: Instant, ms: u64, body: Option<&str>) -> Sample {
        let at = base + Duration::from_millis(ms);
        Sample {
            sent: at,
            at,
            result: body.map(str::to_owned).ok_or_else(|| "refused".to_owned()),
        }
    }

    #[test]
    fn gaps_and_first_answers() {
        let t = Instant::now();
        let s = vec![
            sample(t, 0, Some("node1\n")),
            sample(t, 20, Some("node1\n")),
            sample(t, 40, None),
            sample(t, 60, None),
            sample(t, 300, Some("node2\n")),
            sample(t, 320, Some("node2\n")),
        ];
        assert_eq!(max_gap(&s), Some(Duration::from_millis(280)));
        assert_eq!(
            max_gap_after(&s, t + Duration::from_millis(310)),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            first_answer_from(&s, "node2", t),
            Some(t + Duration::from_millis(300))
        );
        assert_eq!(
            first_answer_from(&s, "node1", t + Duration::from_millis(1)),
            Some(t + Duration::from_millis(20))
        );
        assert_eq!(first_answer_from(&s, "node3", t), None);
        assert_eq!(max_gap(&s[..1]), None);
    }
}
