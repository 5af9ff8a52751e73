//! Root-only: the IP agent against a real kernel, in a network namespace made for the test.
//! The namespace is anonymous (unshare in a dedicated thread), so it and its links vanish
//! with the thread, also when the test panics.

use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use netlink_packet_route::address::AddressAttribute;
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{MsgFlags, recv};
use pnet_packet::Packet as _;
use pnet_packet::arp::{ArpOperations, ArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use rtnetlink::{LinkUnspec, LinkVeth};

use super::garp::{ETH_P_ARP, link_addr};
use super::netlink::Netlink;
use super::{IpFlavour, IpResource};
use crate::{AgentError, ArpConfig, RunState};

/// Run `body` in a fresh network namespace on its own thread and runtime; `None` if not allowed.
fn in_fresh_netns<F, Fut>(body: F) -> Option<()>
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("netlink lab test")
        .to_owned();
    if !ha_gate::root_available(&test) {
        return None;
    }
    let tag = format!("had-at-{}", std::process::id());
    let handle = std::thread::Builder::new()
        .name(tag.clone())
        .spawn(move || {
            // Leaves only this thread in the new namespace; the host's is untouched.
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(body(tag));
        })
        .expect("spawn netns thread");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
    Some(())
}

async fn link_index(nl: &Netlink, name: &str) -> u32 {
    nl.link_by_name(name).await.unwrap().unwrap().index
}

async fn setup_veth(nl: &Netlink, a: &str, b: &str) -> (u32, u32) {
    nl.handle()
        .link()
        .add(LinkVeth::new(a, b).build())
        .execute()
        .await
        .unwrap();
    let (ia, ib) = (link_index(nl, a).await, link_index(nl, b).await);
    for i in [ia, ib] {
        nl.handle()
            .link()
            .set(LinkUnspec::new_with_index(i).up().build())
            .execute()
            .await
            .unwrap();
    }
    nl.add(ia, "198.18.77.1".parse().unwrap(), 24, |_| {})
        .await
        .unwrap();
    (ia, ib)
}

fn ip_res(raw_arg: &str, arp: ArpConfig) -> IpResource {
    IpResource::new(
        &format!("IPaddr2::{raw_arg}"),
        IpFlavour::IPaddr2,
        &[raw_arg.to_owned()],
        arp,
    )
    .unwrap()
}

/// A receive socket for ARP frames arriving on `index`.
fn arp_capture(index: u32) -> socket2::Socket {
    let sock = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )
    .unwrap();
    nix::sys::socket::bind(sock.as_raw_fd(), &link_addr(index, ETH_P_ARP).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    sock
}

/// Count gratuitous ARP requests for `vip` seen within `window`.
fn count_garps(sock: &socket2::Socket, vip: IpAddr, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut seen = 0;
    let mut buf = [0u8; 1600];
    while Instant::now() < end {
        let Ok(n) = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
            continue;
        };
        let Some(eth) = EthernetPacket::new(&buf[..n]) else {
            continue;
        };
        if eth.get_ethertype() != EtherTypes::Arp {
            continue;
        }
        let Some(arp) = ArpPacket::new(eth.payload()) else {
            continue;
        };
        if arp.get_operation() == ArpOperations::Request
            && IpAddr::V4(arp.get_sender_proto_addr()) == vip
            && IpAddr::V4(arp.get_target_proto_addr()) == vip
        {
            seen += 1;
        }
    }
    seen
}

async fn addrs_of(nl: &Netlink, vip: &str) -> Vec<super::netlink::Addr> {
    let vip: IpAddr = vip.parse().unwrap();
    nl.addresses()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.addr == vip)
        .collect()
}

#[test]
fn vip_lifecycle_in_netns() {
    in_fresh_netns(|tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("hat{pid}a"), format!("hat{pid}b"));
        let nl = Netlink::connect().unwrap();
        let (ia, ib) = setup_veth(&nl, &a, &b).await;
        eprintln!("{tag}: veth {a}/{b} up");

        let arp = ArpConfig {
            count: 3,
            interval: Duration::from_millis(50),
            refresh: None,
        };
        let capture = arp_capture(ib);
        let vip = ip_res(&format!("198.18.77.100/24/{a}"), arp);
        assert_eq!(vip.status().await.unwrap(), RunState::Stopped);
        vip.start().await.unwrap();
        assert_eq!(vip.status().await.unwrap(), RunState::Running);
        let placed = addrs_of(&nl, "198.18.77.100").await;
        assert_eq!(placed.len(), 1);
        assert_eq!((placed[0].index, placed[0].prefix), (ia, 24));

        // The burst runs on this runtime; yield to it while counting frames on the peer end.
        let garps = tokio::task::spawn_blocking(move || {
            let n = count_garps(
                &capture,
                "198.18.77.100".parse().unwrap(),
                Duration::from_millis(600),
            );
            (n, capture)
        });
        let (n, capture) = garps.await.unwrap();
        assert_eq!(n, 3, "whole burst seen on the peer");

        vip.start().await.expect("second start is idempotent");
        assert_eq!(addrs_of(&nl, "198.18.77.100").await.len(), 1);
        vip.announce().await.unwrap();
        let (n, _capture) = tokio::task::spawn_blocking(move || {
            let n = count_garps(
                &capture,
                "198.18.77.100".parse().unwrap(),
                Duration::from_millis(400),
            );
            (n, capture)
        })
        .await
        .unwrap();
        assert!(n >= 1, "announce reached the peer");

        vip.stop().await.unwrap();
        assert_eq!(vip.status().await.unwrap(), RunState::Stopped);
        assert!(addrs_of(&nl, "198.18.77.100").await.is_empty());
        vip.stop().await.expect("second stop is idempotent");
        // The base address survives the VIP's removal.
        assert_eq!(addrs_of(&nl, "198.18.77.1").await.len(), 1);
    });
}

#[test]
fn omitted_parts_are_resolved_in_netns() {
    in_fresh_netns(|_tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("hau{pid}a"), format!("hau{pid}b"));
        let nl = Netlink::connect().unwrap();
        let (ia, _) = setup_veth(&nl, &a, &b).await;
        let quiet = ArpConfig {
            count: 1,
            interval: Duration::from_millis(10),
            refresh: None,
        };

        // Neither interface nor prefix: the subnet of the base address decides both.
        let auto = ip_res("198.18.77.101", quiet);
        auto.start().await.unwrap();
        let placed = addrs_of(&nl, "198.18.77.101").await;
        assert_eq!((placed[0].index, placed[0].prefix), (ia, 24));
        assert_eq!(auto.status().await.unwrap(), RunState::Running);
        auto.stop().await.unwrap();
        assert_eq!(auto.status().await.unwrap(), RunState::Stopped);

        // Interface without prefix, via the empty-field form.
        let on_iface = ip_res(&format!("198.18.77.102//{a}"), quiet);
        on_iface.start().await.unwrap();
        assert_eq!(addrs_of(&nl, "198.18.77.102").await[0].prefix, 24);
        on_iface.stop().await.unwrap();

        // Prefix without interface keeps the written prefix.
        let with_prefix = ip_res("198.18.77.103/28", quiet);
        with_prefix.start().await.unwrap();
        let placed = addrs_of(&nl, "198.18.77.103").await;
        assert_eq!((placed[0].index, placed[0].prefix), (ia, 28));
        with_prefix.stop().await.unwrap();

        // Label and explicit broadcast.
        let labelled = ip_res(&format!("198.18.77.104/24/{a}:v1/198.18.77.255"), quiet);
        labelled.start().await.unwrap();
        let placed = addrs_of(&nl, "198.18.77.104").await;
        let attrs = &placed[0].msg.attributes;
        assert!(
            attrs.contains(&AddressAttribute::Label(format!("{a}:v1"))),
            "{attrs:?}"
        );
        assert!(attrs.contains(&AddressAttribute::Broadcast(
            "198.18.77.255".parse().unwrap()
        )));
        labelled.stop().await.unwrap();

        // Nothing to infer from.
        let lost = ip_res("198.19.5.5", quiet);
        let err = lost.start().await.unwrap_err();
        assert!(matches!(err, AgentError::Resolve { .. }), "{err}");
        assert!(
            err.to_string().contains(
                "no interface has a subnet containing 198.19.5.5; write IPaddr2::198.19.5.5/24/eth0"
            ),
            "{err}"
        );
        assert_eq!(lost.status().await.unwrap(), RunState::Stopped);
        lost.stop().await.expect("stopping an absent VIP is fine");

        let wrong_iface = ip_res(&format!("198.18.77.105//{a}x"), quiet);
        let err = wrong_iface.start().await.unwrap_err();
        assert!(err.to_string().contains("no interface named"), "{err}");
        assert_eq!(wrong_iface.status().await.unwrap(), RunState::Stopped);

        let no_subnet = ip_res(&format!("198.19.5.5//{a}"), quiet);
        let err = no_subnet.start().await.unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{a} has no subnet containing 198.19.5.5")),
            "{err}"
        );
    });
}

#[test]
fn ipv6_vip_in_netns() {
    in_fresh_netns(|_tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("hav{pid}a"), format!("hav{pid}b"));
        let nl = Netlink::connect().unwrap();
        setup_veth(&nl, &a, &b).await;
        let v6 = IpResource::new(
            "IPaddr2::2001:db8:77::10/64/x",
            IpFlavour::IPaddr2,
            &["2001:db8:77".to_owned(), format!("10/64/{a}")],
            ArpConfig::default(),
        )
        .unwrap();
        v6.start().await.unwrap();
        assert_eq!(v6.status().await.unwrap(), RunState::Running);
        v6.start().await.unwrap();
        v6.stop().await.unwrap();
        assert_eq!(v6.status().await.unwrap(), RunState::Stopped);
        v6.stop().await.unwrap();
    });
}

/// Count GARPs for `vip` on `capture` for `window` without blocking the runtime the refresh
/// task runs on.
async fn garps_within(
    capture: socket2::Socket,
    vip: &str,
    window: Duration,
) -> (usize, socket2::Socket) {
    let vip: IpAddr = vip.parse().unwrap();
    tokio::task::spawn_blocking(move || (count_garps(&capture, vip, window), capture))
        .await
        .unwrap()
}

/// Throw away frames queued on `capture` so far.
fn drain(capture: &socket2::Socket) {
    let mut buf = [0u8; 1600];
    while recv(capture.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).is_ok() {}
}

#[test]
fn garp_refresh_while_held_stops_on_release() {
    in_fresh_netns(|_tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("har{pid}a"), format!("har{pid}b"));
        let nl = Netlink::connect().unwrap();
        let (_, ib) = setup_veth(&nl, &a, &b).await;
        let arp = ArpConfig {
            count: 1,
            interval: Duration::from_millis(10),
            refresh: Some(Duration::from_millis(100)),
        };
        let capture = arp_capture(ib);
        let vip = ip_res(&format!("198.18.77.110/24/{a}"), arp);
        vip.start().await.unwrap();
        // 1 burst packet, then one every 100 ms: about 7 in 650 ms; generous lower bound.
        let (n, capture) = garps_within(capture, "198.18.77.110", Duration::from_millis(650)).await;
        assert!(n >= 4, "only {n} GARPs in 650 ms with a 100 ms refresh");

        vip.stop().await.unwrap();
        drain(&capture);
        let (n, capture) = garps_within(capture, "198.18.77.110", Duration::from_millis(400)).await;
        assert_eq!(n, 0, "refresh went on after the address was released");

        // An address removed behind had's back is not announced any more.
        vip.start().await.unwrap();
        let (n, capture) = garps_within(capture, "198.18.77.110", Duration::from_millis(250)).await;
        assert!(n >= 2, "refresh after a second start: {n}");
        for found in addrs_of(&nl, "198.18.77.110").await {
            nl.del(found.msg).await.unwrap();
        }
        // A refresh already past its presence check may still be on the wire.
        tokio::time::sleep(Duration::from_millis(120)).await;
        drain(&capture);
        let (n, _capture) =
            garps_within(capture, "198.18.77.110", Duration::from_millis(400)).await;
        assert_eq!(n, 0, "refresh announced an address that is gone");
        vip.stop().await.unwrap();
    });
}

#[test]
fn sendarp_announces_without_adding_the_address() {
    in_fresh_netns(|_tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("has{pid}a"), format!("has{pid}b"));
        let nl = Netlink::connect().unwrap();
        let (_, ib) = setup_veth(&nl, &a, &b).await;
        let arp = ArpConfig {
            count: 3,
            interval: Duration::from_millis(50),
            refresh: None,
        };
        let capture = arp_capture(ib);
        let r =
            crate::SendArpResource::new("SendArp::198.18.77.1", &[format!("198.18.77.1/{a}")], arp)
                .unwrap();
        assert_eq!(r.status().await.unwrap(), RunState::Stopped);
        r.start().await.unwrap();
        assert_eq!(r.status().await.unwrap(), RunState::Running);
        let (n, capture) = garps_within(capture, "198.18.77.1", Duration::from_millis(500)).await;
        assert_eq!(n, 3, "the whole burst reached the peer");
        assert_eq!(addrs_of(&nl, "198.18.77.1").await.len(), 1, "nothing added");
        r.stop().await.unwrap();
        assert_eq!(r.status().await.unwrap(), RunState::Stopped);
        assert_eq!(
            addrs_of(&nl, "198.18.77.1").await.len(),
            1,
            "nothing removed"
        );
        drain(&capture);
        let missing =
            crate::SendArpResource::new("x", &[format!("198.18.77.1/{a}x")], arp).unwrap();
        assert!(missing.start().await.is_err(), "unknown interface");
        assert_eq!(missing.status().await.unwrap(), RunState::Stopped);
    });
}

/// GARPs per VIP among `vips` seen within `window`.
fn count_garps_each(
    sock: &socket2::Socket,
    vips: &[IpAddr],
    window: Duration,
) -> std::collections::HashMap<IpAddr, usize> {
    let mut seen = std::collections::HashMap::new();
    let end = Instant::now() + window;
    let mut buf = [0u8; 1600];
    while Instant::now() < end {
        let Ok(n) = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
            continue;
        };
        let Some(eth) = EthernetPacket::new(&buf[..n]) else {
            continue;
        };
        let Some(arp) = ArpPacket::new(eth.payload()) else {
            continue;
        };
        let ip = IpAddr::V4(arp.get_sender_proto_addr());
        if eth.get_ethertype() == EtherTypes::Arp
            && arp.get_operation() == ArpOperations::Request
            && IpAddr::V4(arp.get_target_proto_addr()) == ip
            && vips.contains(&ip)
        {
            *seen.entry(ip).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn one_batch_for_many_addresses_in_netns() {
    in_fresh_netns(|_tag| async move {
        let pid = std::process::id() % 10_000_000;
        let (a, b) = (format!("hab{pid}a"), format!("hab{pid}b"));
        let nl = Netlink::connect().unwrap();
        let (_, ib) = setup_veth(&nl, &a, &b).await;
        let arp = ArpConfig {
            count: 3,
            interval: Duration::from_millis(50),
            refresh: None,
        };
        let capture = arp_capture(ib);
        let n = 200;
        let res: Vec<IpResource> = (0..n)
            .map(|k| ip_res(&format!("198.18.78.{}/16/{a}", k + 1), arp))
            .collect();
        let vips: Vec<IpAddr> = res.iter().map(|r| r.spec().addr).collect();

        let t = Instant::now();
        let mut batch = super::NetBatch::new();
        for r in &res {
            assert_eq!(r.status_in(&mut batch).await.unwrap(), RunState::Stopped);
            r.start_in(&mut batch).await.unwrap();
            assert_eq!(r.status_in(&mut batch).await.unwrap(), RunState::Running);
        }
        // Released before the batch's task starts: never announced again. (The last one: the
        // first is the /16's primary, whose removal would take the others along.)
        let gone = n - 1;
        res[gone].stop_in(&mut batch).await.unwrap();
        drop(batch);
        // The first packets went out during start; the shared task's repeats come 50 ms on.
        drain(&capture);
        eprintln!("{n} addresses added in one batch in {:?}", t.elapsed());
        let dump = nl.addresses().await.unwrap();
        for v in &vips[..gone] {
            assert!(dump.iter().any(|x| x.addr == *v), "{v} missing");
        }
        assert!(
            !dump.iter().any(|x| x.addr == vips[gone]),
            "{} still there",
            vips[gone]
        );

        let vs = vips.clone();
        let (seen, _capture) = tokio::task::spawn_blocking(move || {
            (
                count_garps_each(&capture, &vs, Duration::from_millis(500)),
                capture,
            )
        })
        .await
        .unwrap();
        // The shared task's two repeats, once each (one may have gone with the drain).
        assert_eq!(
            seen.get(&vips[gone]).copied().unwrap_or(0),
            0,
            "stopped address re-announced"
        );
        for v in &vips[..gone] {
            let got = seen.get(v).copied().unwrap_or(0);
            assert!((1..=2).contains(&got), "{v}: {got} GARPs");
        }

        let mut batch = super::NetBatch::new();
        for r in res.iter().rev() {
            r.stop_in(&mut batch).await.unwrap();
            assert_eq!(r.status_in(&mut batch).await.unwrap(), RunState::Stopped);
        }
        let dump = nl.addresses().await.unwrap();
        assert!(
            !dump.iter().any(|x| vips.contains(&x.addr)),
            "addresses left"
        );
        assert!(
            dump.iter()
                .any(|x| x.addr == "198.18.77.1".parse::<IpAddr>().unwrap())
        );
    });
}
