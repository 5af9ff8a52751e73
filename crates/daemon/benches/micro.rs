//! Micro-benchmarks of the cluster state machine (`just micro`): the steady-state step (the
//! peer's unchanged report) and the takeover decision (the peer dies), with 2 and 100 groups.
//! Figures go to docs/benchmarks.md so that regressions show.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use ha_config::AutoFailback;
use ha_daemon::cluster::{
    Action, Cluster, ClusterConfig, ClusterInput, GroupId, GroupInfo, GroupState, Op, OpOutcome,
    PeerReport,
};

const GROUP_COUNTS: [usize; 2] = [2, 100];

/// Half the groups prefer node1, the other half node2.
fn config(local: &str, peer: &str, groups: usize) -> ClusterConfig {
    ClusterConfig {
        local: local.into(),
        peer: peer.into(),
        groups: (0..groups)
            .map(|i| {
                let key = format!("198.18.{}.{}", i / 250, i % 250 + 1);
                GroupInfo {
                    resources: [ha_config::ResourceSpec::parse(&key).expect("an address")].into(),
                    key,
                    preferred_local: (i % 2 == 0) == (local == "node1"),
                }
            })
            .collect(),
        auto_failback: AutoFailback::On,
        report_timeout: Duration::from_secs(2),
    }
}

/// Two nodes that heard each other, exchanged reports and started their preferred groups
/// (operations succeed at once). Returns node1 and the last report node2 sent.
fn steady(groups: usize, now: Instant) -> (Cluster, PeerReport) {
    let mut nodes = [
        Cluster::new(config("node1", "node2", groups), now),
        Cluster::new(config("node2", "node1", groups), now),
    ];
    let up = || ClusterInput::PeerUp {
        returning_after_partition: false,
        restarted: false,
    };
    let mut queue = VecDeque::from([(0, up()), (1, up())]);
    let mut last_report = [None, None];
    let mut steps = 0;
    while let Some((n, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100_000, "the two machines never settle");
        nodes[n].handle(now, input);
        while let Some(action) = nodes[n].poll_action() {
            let outcome = |group, op| {
                ClusterInput::Outcome(OpOutcome {
                    group,
                    op,
                    ok: true,
                    detail: String::new(),
                })
            };
            match action {
                Action::Start(g) => queue.push_back((n, outcome(g, Op::Start))),
                Action::Stop(g) => queue.push_back((n, outcome(g, Op::Stop))),
                Action::SendReport(r) => {
                    last_report[n] = Some(r.clone());
                    queue.push_back((1 - n, ClusterInput::PeerReport(r)));
                }
                Action::SendStarting => queue.push_back((1 - n, ClusterInput::PeerStarting)),
                _ => {}
            }
        }
    }
    let [node1, node2] = nodes;
    for (i, st) in node1.group_states().iter().enumerate() {
        let want = if i % 2 == 0 {
            GroupState::Running
        } else {
            GroupState::Stopped
        };
        assert_eq!(*st, want, "group {i} on node1 after settling");
    }
    assert!(
        node2.group_states()[1] == GroupState::Running,
        "node2 runs its group"
    );
    let Some(report) = last_report[1].take() else {
        panic!("node2 never sent its report");
    };
    (node1, report)
}

fn drain(c: &mut Cluster) -> usize {
    let mut n = 0;
    while let Some(a) = c.poll_action() {
        black_box(a);
        n += 1;
    }
    n
}

fn cluster_benches(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("cluster");
    for groups in GROUP_COUNTS {
        // What every received report costs when nothing changes: the reconcile pass over
        // all groups, no action.
        let (mut node, report) = steady(groups, t0);
        let mut now = t0;
        g.bench_with_input(BenchmarkId::new("peer_report", groups), &report, |b, r| {
            b.iter_batched(
                || r.clone(),
                |r| {
                    now += Duration::from_millis(1);
                    node.handle(now, ClusterInput::PeerReport(r));
                    let n = drain(&mut node);
                    (n, node.poll_timeout())
                },
                BatchSize::SmallInput,
            )
        });
        assert!(
            node.group_states()
                .iter()
                .enumerate()
                .all(|(i, s)| (*s == GroupState::Running) == (i % 2 == 0)),
            "an unchanged report must move nothing"
        );
        // The takeover decision: the peer is declared dead and its groups start here.
        let mut starts = 0;
        g.bench_function(BenchmarkId::new("peer_dead", groups), |b| {
            b.iter_batched(
                || steady(groups, t0).0,
                |mut node| {
                    node.handle(t0, ClusterInput::PeerDead);
                    starts = 0;
                    while let Some(a) = node.poll_action() {
                        if matches!(a, Action::Start(GroupId(_))) {
                            starts += 1;
                        }
                    }
                    node
                },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(starts, groups / 2, "the dead peer's groups start here");
    }
    g.finish();
}

criterion_group!(benches, cluster_benches);
criterion_main!(benches);
