//! Micro-benchmark of the IP agent's netlink path (`just micro`): a virtual address added and
//! removed again on a veth link (this kernel has no dummy driver), in a private network namespace that the benchmark creates
//! (unshare) and removes (back to the original namespace, the last reference dropped). Needs
//! root; without it the benchmark says so and measures nothing (HA_REQUIRE_LAB=1 makes that
//! fatal, as for the lab tests).

use std::fs::File;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt as _;
use ha_agents::ArpConfig;
use ha_agents::RunState;
use ha_agents::ip::{IpFlavour, IpResource, NetBatch};
use nix::sched::{CloneFlags, setns, unshare};
use rtnetlink::{LinkUnspec, LinkVeth};

const LINK: &str = "hbench0";
const PEER: &str = "hbench1";
const VIP: &str = "198.18.200.10/24/hbench0";

/// Runs `body` in a new, unnamed network namespace and returns to the original one after it,
/// so that the new one (its dummy link, its addresses) goes away with its last socket.
fn in_private_netns(body: impl FnOnce()) -> Result<(), String> {
    let original =
        File::open("/proc/thread-self/ns/net").map_err(|e| format!("open own netns: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    // The way back is taken also when the body panics (a failed check).
    struct Back(File);
    impl Drop for Back {
        fn drop(&mut self) {
            if let Err(e) = setns(&self.0, CloneFlags::CLONE_NEWNET) {
                // Staying in the private namespace is harmless: it dies with this process.
                eprintln!("netlink bench: cannot return to the original namespace: {e}");
            }
        }
    }
    let _back = Back(original);
    body();
    Ok(())
}

async fn add_link() -> Result<(), String> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("rtnetlink connection: {e}"))?;
    let driver = tokio::spawn(conn);
    let result = async {
        handle
            .link()
            .add(LinkVeth::new(LINK, PEER).build())
            .execute()
            .await
            .map_err(|e| format!("add veth pair {LINK}/{PEER}: {e}"))?;
        for name in [LINK, PEER] {
            let link = handle
                .link()
                .get()
                .match_name(name.to_owned())
                .execute()
                .try_next()
                .await
                .map_err(|e| format!("find {name}: {e}"))?
                .ok_or_else(|| format!("{name} vanished"))?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(link.header.index).up().build())
                .execute()
                .await
                .map_err(|e| format!("set {name} up: {e}"))?;
        }
        Ok(())
    }
    .await;
    driver.abort();
    result
}

fn netlink_benches(c: &mut Criterion) {
    if !ha_gate::root_available("netlink/addr_add_del (a private network namespace)") {
        return;
    }
    let ran = in_private_netns(|| {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("tokio runtime: {e}"),
        };
        if let Err(e) = rt.block_on(add_link()) {
            panic!("netlink bench setup: {e}");
        }
        // No gratuitous ARP: the figure is netlink alone.
        let no_arp = ArpConfig {
            count: 0,
            interval: std::time::Duration::ZERO,
            refresh: None,
        };
        let vip = match IpResource::new(VIP, IpFlavour::IPaddr2, &[VIP.to_owned()], no_arp) {
            Ok(r) => r,
            Err(e) => panic!("{VIP}: {e}"),
        };
        let mut g = c.benchmark_group("netlink");
        // Within one group operation's batch: the RTM_NEWADDR and RTM_DELADDR round trips.
        let mut batch = NetBatch::new();
        g.bench_function("addr_add+del/batch", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let up = vip.start_in(&mut batch).await;
                    let down = vip.stop_in(&mut batch).await;
                    if let Err(e) = up.and(down) {
                        panic!("{VIP} in a batch: {e}");
                    }
                })
            })
        });
        // A one-address group started and stopped as the daemon does it: each operation
        // opens its connection and reads the link and address dumps first.
        g.bench_function("addr_add+del/fresh", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let up = vip.start().await;
                    let down = vip.stop().await;
                    if let Err(e) = up.and(down) {
                        panic!("{VIP}: {e}");
                    }
                })
            })
        });
        g.finish();
        rt.block_on(async {
            if let Err(e) = vip.start().await {
                panic!("start {VIP} after the benchmark: {e}");
            }
            assert_eq!(vip.status().await.ok(), Some(RunState::Running));
            if let Err(e) = vip.stop().await {
                panic!("stop {VIP} after the benchmark: {e}");
            }
            assert_eq!(vip.status().await.ok(), Some(RunState::Stopped));
        });
        drop(batch);
        drop(rt);
    });
    if let Err(why) = ran {
        ha_gate::lab_needs("netlink/addr_add_del", false, &why);
    }
}

criterion_group!(benches, netlink_benches);
criterion_main!(benches);
