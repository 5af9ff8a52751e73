//! Micro-benchmarks of the wire layer (`just micro`): a status heartbeat signed and verified in
//! both framings (netstring on UDP, classic on serial links and the FIFO), and one keepalive
//! period of the liveness machine. Figures go to docs/benchmarks.md so that regressions show.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ha_config::NodeName;
use ha_transport::auth::{Auth, AuthMethod};
use ha_transport::codec::{self, Message};
use ha_transport::liveness::{Liveness, LivenessConfig, MediumId};

const KEEPALIVE: Duration = Duration::from_millis(200);

fn auth(method: AuthMethod) -> Auth {
    Auth::from_keys(1, [(1, method, b"micro-benchmark secret".to_vec())])
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), 694)
}

fn config(local: &str, peer: &str, last: u8, method: AuthMethod) -> LivenessConfig {
    LivenessConfig {
        local: NodeName::from(local),
        uuid: [last; 16],
        generation: 0x6b04_de53,
        peers: vec![NodeName::from(local), NodeName::from(peer)],
        media: vec!["eth0".into()],
        keepalive: KEEPALIVE,
        deadtime: Duration::from_secs(1),
        warntime: Duration::from_millis(500),
        initdead: Duration::from_secs(2),
        auth: auth(method),
        unix_now_at_start: 0x6b04_de53,
        local_addrs: vec![addr(last).ip()],
        peer_floors: Vec::new(),
    }
}

/// The status heartbeat exactly as the liveness machine builds it, before it is signed.
fn status_message() -> Message {
    let mut node = Liveness::new(
        config("node1", "node2", 1, AuthMethod::Sha1),
        Instant::now(),
    );
    let Some(first) = node.poll_transmit() else {
        panic!("a new liveness machine queues its first status");
    };
    let mut msg = match codec::decode(&first.bytes) {
        Ok(d) => d.msg,
        Err(e) => panic!("our own status does not decode: {e}"),
    };
    msg.remove("auth");
    msg
}

fn codec_benches(c: &mut Criterion) {
    let msg = status_message();
    let mut g = c.benchmark_group("status");
    for (name, method) in [("sha1", AuthMethod::Sha1), ("sha256", AuthMethod::Sha256)] {
        let a = auth(method);
        g.bench_function(format!("encode+sign/netstring/{name}"), |b| {
            b.iter_batched(
                || msg.clone(),
                |mut m| a.sign(&mut m),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("encode+sign/classic/{name}"), |b| {
            b.iter_batched(
                || msg.clone(),
                |mut m| a.sign_classic(&mut m),
                BatchSize::SmallInput,
            )
        });
        let netstring = a.sign(&mut msg.clone());
        let classic = a.sign_classic(&mut msg.clone());
        for (framing, bytes) in [("netstring", &netstring), ("classic", &classic)] {
            assert!(a.verify(bytes).is_ok(), "{framing} status must verify");
            // The receive path's order: the allocation-free precheck, then the full check.
            g.bench_function(format!("verify+decode/{framing}/{name}"), |b| {
                b.iter(|| {
                    let bytes = black_box(bytes.as_slice());
                    a.precheck(bytes).and_then(|()| a.verify(bytes))
                })
            });
        }
    }
    g.finish();
}

/// One keepalive period on one node: the peer's fresh status arrives (verified, sequence and
/// generation checked, deadlines moved), our own status is signed and queued, and the next
/// deadline is asked for, as the daemon loop does.
fn liveness_benches(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut peer = Liveness::new(config("node2", "node1", 2, AuthMethod::Sha1), t0);
    let mut node = Liveness::new(config("node1", "node2", 1, AuthMethod::Sha1), t0);
    let mut now = t0;
    let mut steps = 0u64;
    let mut delivered = 0u64;
    c.bench_function("liveness/keepalive_step", |b| {
        b.iter_batched(
            || {
                now += KEEPALIVE;
                peer.handle_timeout(now);
                // The peer's own bookkeeping (it never hears from us here) is not timed.
                while peer.poll_event().is_some() {}
                let mut last = None;
                while let Some(t) = peer.poll_transmit() {
                    last = Some(t.bytes);
                }
                (now, last)
            },
            |(now, status)| {
                steps += 1;
                if let Some(bytes) = status {
                    delivered += 1;
                    node.handle_datagram(now, MediumId(0), addr(2), &bytes);
                }
                node.handle_timeout(now);
                while let Some(e) = node.poll_event() {
                    black_box(e);
                }
                while let Some(t) = node.poll_transmit() {
                    black_box(t);
                }
                node.poll_timeout()
            },
            BatchSize::SmallInput,
        )
    });
    // Every step must have carried a fresh status, or the figure is of the wrong path.
    assert_eq!(steps, delivered, "a step without the peer's status");
    assert_eq!(
        node.peer_status(&NodeName::from("node2")),
        ha_transport::liveness::NodeStatus::Up,
        "the peer must stay alive through the benchmark"
    );
}

criterion_group!(benches, codec_benches, liveness_benches);
criterion_main!(benches);
