//! The hostile host: from the client namespace it records a few heartbeat packets, then sends
//! a bounded burst of replays, copies signed with a wrong key, truncated copies and junk to
//! both nodes. Bounded in count and time; it stops by itself.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_transport::auth::{Auth, AuthMethod};
use ha_transport::codec;
use nix::sched::{CloneFlags, setns};

use crate::rng::Rng;

/// The heartbeat port the lab cluster uses.
pub const PORT: u16 = 694;
/// The burst never lasts longer than this.
const MAX_BURST: Duration = Duration::from_secs(2);
/// Largest datagram sent (junk; well over the decoder's limits, under UDP's).
const OVERSIZED: usize = 60_000;

/// What the burst sent.
#[derive(Debug, Default)]
pub struct Burst {
    /// Packets recorded from the nodes first.
    pub captured: usize,
    /// Copies of them, sent as they were.
    pub replays: u32,
    /// Copies signed with a key the cluster does not have.
    pub wrong_key: u32,
    /// Truncated copies and random bytes, some oversized.
    pub junk: u32,
}

/// Runs the burst on a thread that joins `client_netns`; `listen` bounds the capture.
pub fn burst(
    client_netns: &str,
    targets: [Ipv4Addr; 2],
    packets: u32,
    seed: u64,
    listen: Duration,
) -> anyhow::Result<Burst> {
    let path = format!("/run/netns/{client_netns}");
    let f = File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::scope(|s| {
        s.spawn(move || -> anyhow::Result<Burst> {
            setns(&f, CloneFlags::CLONE_NEWNET).context("joining the client namespace")?;
            run(targets, packets, seed, listen)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the hostile thread panicked"))?
    })
}

fn run(targets: [Ipv4Addr; 2], packets: u32, seed: u64, listen: Duration) -> anyhow::Result<Burst> {
    let mut rng = Rng::new(seed);
    let captured = {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).context("binding UDP 694")?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + listen;
        while Instant::now() < end && got.len() < 32 {
            if let Ok((n, src)) = sock.recv_from(&mut buf)
                && let SocketAddr::V4(a) = src
                && targets.contains(a.ip())
            {
                got.push(buf[..n].to_vec());
            }
        }
        got
    };
    let wrong = Auth::from_keys(1, [(1, AuthMethod::Sha1, b"not-the-soak-key".to_vec())]);
    let out = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding a UDP socket")?;
    let mut b = Burst {
        captured: captured.len(),
        ..Burst::default()
    };
    let start = Instant::now();
    let pace = MAX_BURST / 2 / packets.max(1);
    for i in 0..packets {
        if start.elapsed() >= MAX_BURST {
            break;
        }
        let to = SocketAddr::from((targets[(i % 2) as usize], PORT));
        let choice = rng.below(4);
        let bytes: Vec<u8> = match (choice, captured.is_empty()) {
            (0, false) => {
                b.replays += 1;
                captured[rng.below(captured.len() as u64) as usize].clone()
            }
            (1, false) => {
                let orig = &captured[rng.below(captured.len() as u64) as usize];
                match codec::decode(orig) {
                    Ok(d) => {
                        b.wrong_key += 1;
                        let mut m = d.msg;
                        wrong.sign(&mut m)
                    }
                    Err(_) => {
                        b.junk += 1;
                        orig[..orig.len() / 2].to_vec()
                    }
                }
            }
            (2, false) => {
                b.junk += 1;
                let orig = &captured[rng.below(captured.len() as u64) as usize];
                let cut = rng.below(orig.len() as u64) as usize;
                orig[..cut].to_vec()
            }
            _ => {
                b.junk += 1;
                let len = if rng.chance(0.05) {
                    OVERSIZED
                } else {
                    1 + rng.below(1400) as usize
                };
                let mut v = vec![0u8; len];
                for x in v.iter_mut() {
                    *x = rng.next_u64() as u8;
                }
                // Half the junk starts like a heartbeat packet, to get past the first check.
                if rng.chance(0.5) && len > 8 {
                    v[..8].copy_from_slice(b">>>\nt=NS");
                }
                v
            }
        };
        // A full socket buffer only loses junk; the burst goes on.
        let _ = out.send_to(&bytes, to);
        std::thread::sleep(pace);
    }
    Ok(b)
}
