//! The daemon `cl_status` answers from in its unit tests and in its fuzz target
//! (fuzz/fuzz_targets/cl_status.rs includes this file): paths from the crate root, which
//! both have as `mod client; mod cl_status;`.

use ha_control::{GroupStatus, Link, LocalNode, Packets, PeerNode, Snapshot};

use crate::cl_status::Source;
use crate::client::ClientError;

/// A daemon answering from `snap`; `None`: no daemon (the socket is absent).
pub struct Fixed {
    pub snap: Option<Snapshot>,
}

impl Source for Fixed {
    fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        self.snap
            .clone()
            .ok_or_else(|| ClientError::NotRunning("no socket".into()))
    }
    fn parameter(&mut self, name: &str) -> Result<Option<String>, ClientError> {
        if self.snap.is_none() {
            return Err(ClientError::NotRunning("no socket".into()));
        }
        Ok((name == "keepalive").then(|| "500ms".to_string()))
    }
}

/// A two-node snapshot seen from node1: the group held by node1 or by nobody, the one link
/// to node2 in state `link`.
pub fn snap(held_by_me: bool, link: &str) -> Snapshot {
    Snapshot {
        schema: 1,
        version: "0.1.0".into(),
        nodes: vec!["node1".into(), "node2".into()],
        node: LocalNode {
            name: "node1".into(),
            status: "active".into(),
            pid: 1,
            uptime_ms: 0,
            generation: 1,
            standby: false,
            shutting_down: false,
            auto_failback: "on".into(),
            keepalive_ms: 500,
            deadtime_ms: 2000,
            auth: "sha1".into(),
            realtime: None,
        },
        peer: PeerNode {
            name: "node2".into(),
            status: "active".into(),
            last_heard_ms: Some(10),
            deadtime_ms: 2000,
            generation: Some(1),
            links: vec![Link {
                name: "eth0".into(),
                status: link.into(),
                last_heard_ms: Some(10),
            }],
            rsc_hold: Some("none".into()),
            stable: Some(true),
        },
        groups: vec![GroupStatus {
            key: "IPaddr::198.18.0.100".into(),
            preferred: "node1".into(),
            state: if held_by_me { "running" } else { "stopped" }.into(),
            held_by: held_by_me.then(|| "node1".into()),
            refused_here: false,
            refused_for: Vec::new(),
            priority: None,
            resources: vec![],
        }],
        packets: Packets {
            sent: 0,
            received: 0,
            dropped: Default::default(),
            late: 0,
            own_name_elsewhere: 0,
            rexmit_limited: 0,
        },
        transitions: vec![],
    }
}
