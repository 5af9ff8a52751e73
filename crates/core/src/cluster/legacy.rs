//! `auto_failback legacy` with a Heartbeat peer: the `ip-request` exchange.
//!
//! A Heartbeat 3.0.6 node in legacy mode has no resource-state protocol: it sends no
//! `starting` and no resource reports, ignores ours, and refuses the standby exchange. It
//! asks for its own groups once, when its communication comes up, with
//! `t=ip-request ipaddr=<group key>`; the node holding a group releases it and answers
//! `t=ip-request-resp dest=<asker> ipaddr=<key> weown=yes|no ok=OK`, and the asker then
//! starts it. Alone, it just takes its groups; on the peer's death or `shutdone` it takes
//! everything. Net effect: groups go back to their preferred node whenever it (re)joins.
//!
//! had does the same while its peer is alive and has sent no resource report (a had peer
//! always answers our `starting` with one within a round trip, so a peer without a report is
//! a legacy Heartbeat, or a had peer not heard from yet):
//! - it asks for each of its own groups it does not hold, again every `RETRY` until
//!   answered (Heartbeat drops requests that arrive before its own comm-up), and starts a
//!   group once the peer answers `ok=OK`;
//! - it keeps every group it holds until the peer asks for it, then stops it and answers;
//! - it never starts a group the peer may hold without that answer.
//!
//! As soon as the peer's report arrives (a had peer), none of this applies: the report rules
//! of `mod.rs` give the same net effect, faster, and requests from a had peer are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::codec::Message;
use crate::config::AutoFailback;
use crate::message::{self, MessageType};

use super::{Action, AdminCommand, Cluster, ClusterInput, GroupId, PeerState};

/// How often an unanswered `ip-request` is sent again.
const RETRY: Duration = Duration::from_secs(1);

/// The legacy exchange's messages, as the cluster sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyInput {
    /// `ip-request`: the peer asks us to release the group `key`.
    Request { key: String },
    /// `ip-request-resp`: the answer to a request made by `dest`; `ok` is `ok=OK`.
    Response {
        key: String,
        dest: String,
        weown: bool,
        ok: bool,
    },
}

/// The cluster input for an `ip-request` or `ip-request-resp` message; `None` when it is
/// malformed (no `ipaddr`, or a response without `dest`).
pub fn legacy_input_from_message(msg: &Message) -> Option<ClusterInput> {
    let input = match message::Message::decode(msg).ok()? {
        message::Message::IpRequest { key } => LegacyInput::Request { key },
        message::Message::IpRequestResp {
            key,
            dest,
            weown,
            ok,
        } => LegacyInput::Response {
            key,
            dest,
            weown,
            ok,
        },
        _ => return None,
    };
    Some(ClusterInput::Legacy(input))
}

/// `t=ip-request ipaddr=KEY`.
pub fn request_message(key: &str) -> Message {
    let mut m = MessageType::IpRequest.message();
    m.push_str("ipaddr", key);
    m
}

/// `t=ip-request-resp dest=ASKER ipaddr=KEY weown=yes|no ok=OK`, as Heartbeat's
/// `rc.d/ip-request` writes it.
pub fn response_message(asker: &str, key: &str, weown: bool) -> Message {
    let mut m = MessageType::IpRequestResp.message();
    m.push_str("dest", asker);
    m.push_str("ipaddr", key);
    m.push_str("weown", if weown { "yes" } else { "no" });
    m.push_str("ok", "OK");
    m
}

/// The cluster's state for the legacy exchange.
#[derive(Clone, Debug, Default)]
pub(super) struct LegacyState {
    /// Our groups asked for and not answered yet.
    asking: BTreeSet<usize>,
    /// When the unanswered requests go out again (`None`: send now if any is due).
    retry_at: Option<Instant>,
    /// Groups the peer released to us (`ok=OK`): ours to start.
    granted: BTreeSet<usize>,
    /// Groups the peer asked for, with whether we held them when asked: released, then
    /// answered.
    giving: BTreeMap<usize, bool>,
    /// Groups the peer took without asking us (its own answer to itself): released.
    yielding: BTreeSet<usize>,
    /// Groups handed to the peer: not taken back while it lives.
    given: BTreeSet<usize>,
}

impl Cluster {
    /// Whether the legacy exchange is how groups move now: `auto_failback legacy`, the
    /// peer alive and no resource report from it (a legacy Heartbeat never sends one).
    pub(super) fn legacy_applies(&self) -> bool {
        matches!(self.cfg.auto_failback, AutoFailback::Legacy)
            && matches!(self.peer, PeerState::Alive { report: None, .. })
    }

    /// Who should run group `g` under the legacy exchange (`None` when it does not apply,
    /// see `legacy_applies`); the inner value is `desired_here`'s answer.
    pub(super) fn legacy_desired(&self, g: usize) -> Option<Option<bool>> {
        if !self.legacy_applies() {
            return None;
        }
        let l = &self.legacy;
        Some(
            if self.refuses(g) || l.giving.contains_key(&g) || l.yielding.contains(&g) {
                Some(false)
            } else if self.groups[g].state.is_held() {
                // A legacy node keeps what it holds until it is asked for it.
                Some(true)
            } else if self.cfg.groups[g].preferred_local && l.granted.contains(&g) {
                Some(true)
            } else {
                // The peer may hold it: never start it without the peer's answer.
                None
            },
        )
    }

    /// Why an admin command is refused under the legacy exchange: Heartbeat has no standby
    /// exchange in legacy mode (its `hb_standby` and `hb_takeover` do nothing there).
    pub(super) fn legacy_refusal(&self, cmd: AdminCommand) -> Option<String> {
        if !self.legacy_applies() {
            return None;
        }
        let what = match cmd {
            AdminCommand::Standby(_) => "standby",
            AdminCommand::Takeover(_) => "takeover",
            AdminCommand::Cleanup | AdminCommand::Shutdown => return None,
        };
        Some(format!(
            "{what} refused: auto_failback is legacy and peer {} has sent no resource report \
             (a Heartbeat node in legacy mode), so there is no standby exchange with it; groups \
             move only when their preferred node starts. Set `auto_failback on` or `off` on \
             both nodes for standby and takeover",
            self.cfg.peer
        ))
    }

    /// An `ip-request` or `ip-request-resp` from the peer.
    pub(super) fn on_legacy_input(&mut self, now: Instant, input: LegacyInput) {
        // A had peer's report says it is had: its requests (sent before it knew what we
        // are) are covered by the report rules, which move the same groups.
        if self.peer_report().is_some_and(|r| r.hold.is_some()) {
            return;
        }
        match input {
            LegacyInput::Request { key } => {
                let Some(g) = self.cfg.groups.iter().position(|gi| gi.key == key) else {
                    // Not a group we know: we do not hold it, as Heartbeat's status check says.
                    self.actions.push_back(Action::Send(response_message(
                        &self.cfg.peer,
                        &key,
                        false,
                    )));
                    return;
                };
                if self.legacy.giving.contains_key(&g) {
                    return;
                }
                self.legacy.granted.remove(&g);
                self.legacy.asking.remove(&g);
                let held = self.groups[g].state.is_held();
                if held {
                    self.note(
                        now,
                        GroupId(g),
                        "asked for",
                        &format!("{} asked for it (ip-request)", self.cfg.peer),
                    );
                }
                // Answered from `legacy_step` once nothing of it runs here.
                self.legacy.giving.insert(g, held);
            }
            LegacyInput::Response {
                key,
                dest,
                weown,
                ok,
            } => {
                if !ok {
                    return;
                }
                let Some(g) = self.cfg.groups.iter().position(|gi| gi.key == key) else {
                    return;
                };
                if dest == self.cfg.peer {
                    // The peer answered itself: it thought it was alone when its comm came
                    // up (Heartbeat checks the peer's status before it has processed it) and
                    // takes the group now. Two legacy Heartbeats would both keep it; we let go.
                    self.legacy.asking.remove(&g);
                    self.legacy.granted.remove(&g);
                    if self.groups[g].state.is_held() && self.legacy.yielding.insert(g) {
                        self.note(
                            now,
                            GroupId(g),
                            "yielded",
                            &format!(
                                "{} takes it without asking (ip-request-resp)",
                                self.cfg.peer
                            ),
                        );
                    } else {
                        self.legacy.given.insert(g);
                    }
                    return;
                }
                if dest != self.cfg.local {
                    return;
                }
                if self.legacy.asking.remove(&g) {
                    self.legacy.granted.insert(g);
                    let how = if weown { "released" } else { "did not hold" };
                    self.note(
                        now,
                        GroupId(g),
                        "granted",
                        &format!("{} {how} it (ip-request-resp)", self.cfg.peer),
                    );
                }
            }
        }
    }

    /// Bookkeeping after the main rules saw `seen`: a peer that died, left or restarted
    /// voids every request.
    pub(super) fn legacy_after(&mut self, seen: super::heartbeat::Seen) {
        if matches!(seen, super::heartbeat::Seen::PeerReset)
            || !matches!(self.peer, PeerState::Alive { .. })
        {
            self.legacy = LegacyState::default();
        }
    }

    /// Answers requests whose release finished, and (re)sends our own requests.
    pub(super) fn legacy_step(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        let done: Vec<(usize, bool)> = self
            .legacy
            .giving
            .iter()
            .filter(|(g, _)| !self.groups[**g].state.is_held())
            .map(|(g, w)| (*g, *w))
            .collect();
        let yielded: Vec<usize> = self
            .legacy
            .yielding
            .iter()
            .copied()
            .filter(|&g| !self.groups[g].state.is_held())
            .collect();
        for g in yielded {
            self.legacy.yielding.remove(&g);
            self.legacy.given.insert(g);
        }
        for (g, weown) in done {
            self.legacy.giving.remove(&g);
            self.legacy.given.insert(g);
            let key = self.cfg.groups[g].key.clone();
            self.actions
                .push_back(Action::Send(response_message(&self.cfg.peer, &key, weown)));
        }
        if !self.legacy_applies() || self.shutting_down {
            self.legacy.asking.clear();
            self.legacy.retry_at = None;
            return;
        }
        if self.legacy.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let ask: BTreeSet<usize> = (0..self.groups.len())
            .filter(|&g| self.cfg.groups[g].preferred_local && !self.groups[g].state.is_held())
            .filter(|&g| !self.refuses(g))
            .filter(|g| !self.legacy.granted.contains(g) && !self.legacy.given.contains(g))
            .collect();
        if ask.is_empty() {
            self.legacy.retry_at = None;
            self.legacy.asking.clear();
            return;
        }
        for &g in &ask {
            if !self.legacy.asking.contains(&g) {
                self.note(
                    now,
                    GroupId(g),
                    "requested",
                    &format!("asking {} to release it (ip-request)", self.cfg.peer),
                );
            }
            let key = self.cfg.groups[g].key.clone();
            self.actions.push_back(Action::Send(request_message(&key)));
        }
        self.legacy.asking = ask;
        self.legacy.retry_at = Some(now + RETRY);
    }

    /// The next instant at which `legacy_step` has work of its own (a retry).
    pub(super) fn legacy_timeout(&self) -> Option<Instant> {
        if self.legacy.asking.is_empty() {
            None
        } else {
            self.legacy.retry_at
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
