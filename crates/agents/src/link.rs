//! Carrier of a network interface, followed through rtnetlink's link multicast group
//! (RTNLGRP_LINK): the kernel tells us when it changes, nothing is polled. Used by had.toml's
//! `link:IFNAME` monitor (Keepalived's `track_interface`).

use futures::StreamExt as _;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{MulticastGroup, new_multicast_connection};

/// What the kernel says of the watched interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Administratively up with carrier (`LOWER_UP`).
    Carrier,
    /// Present, but down or without carrier.
    NoCarrier,
    /// No interface of that name.
    Missing,
}

/// A subscription to one interface's link events.
pub struct LinkWatch {
    name: String,
    index: Option<u32>,
    events: UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl LinkWatch {
    /// Subscribe to link events, then read the interface's current state: subscribing first
    /// means a change between the two is not lost (it arrives as an event afterwards).
    pub async fn open(name: &str) -> std::io::Result<(LinkWatch, LinkState)> {
        let (conn, handle, events) = new_multicast_connection(&[MulticastGroup::Link])?;
        let driver = tokio::spawn(conn);
        let mut w = LinkWatch {
            name: name.to_string(),
            index: None,
            events,
            driver,
        };
        let mut stream = handle.link().get().match_name(name.to_owned()).execute();
        let state = match stream.next().await {
            Some(Ok(msg)) => {
                w.index = Some(msg.header.index);
                state_of(&msg)
            }
            Some(Err(rtnetlink::Error::NetlinkError(e))) if e.raw_code().abs() == libc::ENODEV => {
                LinkState::Missing
            }
            Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
            None => LinkState::Missing,
        };
        Ok((w, state))
    }

    /// The interface's next reported state (every event for it, changed or not); `None` when
    /// the netlink socket is gone.
    pub async fn next(&mut self) -> Option<LinkState> {
        loop {
            let (msg, _) = self.events.next().await?;
            let (link, deleted) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => (l, false),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => (l, true),
                _ => continue,
            };
            let by_name = link_name(&link).is_some_and(|n| n == self.name);
            if !by_name && self.index != Some(link.header.index) {
                continue;
            }
            if deleted {
                self.index = None;
                return Some(LinkState::Missing);
            }
            // A renamed interface is no longer the one asked for.
            if !by_name {
                self.index = None;
                return Some(LinkState::Missing);
            }
            self.index = Some(link.header.index);
            return Some(state_of(&link));
        }
    }
}

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn state_of(l: &LinkMessage) -> LinkState {
    let f = l.header.flags;
    if f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp) {
        LinkState::Carrier
    } else {
        LinkState::NoCarrier
    }
}
