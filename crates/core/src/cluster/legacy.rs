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

/// The legacy exchange's own state: a machine told what the peer sent and what each group
/// looks like here ([`LegacyView`]), answering with messages to send and lines for the
/// transition log ([`LegacyOut`]). The Cluster builds the view and carries the answers out.
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

/// What the exchange needs to know of one group, by slot.
#[derive(Clone, Copy, Debug)]
pub(super) struct LegacyGroup<'a> {
    pub key: &'a str,
    pub preferred_local: bool,
    /// It runs (or starts or stops) here.
    pub held: bool,
    /// This node refuses it, for any reason.
    pub refused: bool,
}

/// The cluster as the exchange sees it.
#[derive(Debug)]
pub(super) struct LegacyView<'a> {
    pub local: &'a str,
    pub peer: &'a str,
    pub groups: Vec<LegacyGroup<'a>>,
}

/// What the exchange asks the Cluster to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum LegacyOut {
    /// Send this message to the peer.
    Send(Message),
    /// Write a transition-log line for group `group`.
    Note {
        group: usize,
        what: &'static str,
        why: String,
    },
}

impl LegacyState {
    /// Who should run group `g` while the exchange applies; `desired_here`'s answer.
    pub(super) fn desired(&self, g: usize, grp: &LegacyGroup<'_>) -> Option<bool> {
        if grp.refused || self.giving.contains_key(&g) || self.yielding.contains(&g) {
            Some(false)
        } else if grp.held {
            // A legacy node keeps what it holds until it is asked for it.
            Some(true)
        } else if grp.preferred_local && self.granted.contains(&g) {
            Some(true)
        } else {
            // The peer may hold it: never start it without the peer's answer.
            None
        }
    }

    /// An `ip-request` or `ip-request-resp` from a peer that is not had.
    pub(super) fn on_input(&mut self, input: LegacyInput, v: &LegacyView<'_>) -> Vec<LegacyOut> {
        let slot = |key: &str| v.groups.iter().position(|gi| gi.key == key);
        let mut out = Vec::new();
        match input {
            LegacyInput::Request { key } => {
                let Some(g) = slot(&key) else {
                    // Not a group we know: we do not hold it, as Heartbeat's status check says.
                    out.push(LegacyOut::Send(response_message(v.peer, &key, false)));
                    return out;
                };
                if self.giving.contains_key(&g) {
                    return out;
                }
                self.granted.remove(&g);
                self.asking.remove(&g);
                let held = v.groups[g].held;
                if held {
                    out.push(LegacyOut::Note {
                        group: g,
                        what: "asked for",
                        why: format!("{} asked for it (ip-request)", v.peer),
                    });
                }
                // Answered from `step` once nothing of it runs here.
                self.giving.insert(g, held);
            }
            LegacyInput::Response {
                key,
                dest,
                weown,
                ok,
            } => {
                if !ok {
                    return out;
                }
                let Some(g) = slot(&key) else {
                    return out;
                };
                if dest == v.peer {
                    // The peer answered itself: it thought it was alone when its comm came
                    // up (Heartbeat checks the peer's status before it has processed it) and
                    // takes the group now. Two legacy Heartbeats would both keep it; we let go.
                    self.asking.remove(&g);
                    self.granted.remove(&g);
                    if v.groups[g].held && self.yielding.insert(g) {
                        out.push(LegacyOut::Note {
                            group: g,
                            what: "yielded",
                            why: format!("{} takes it without asking (ip-request-resp)", v.peer),
                        });
                    } else {
                        self.given.insert(g);
                    }
                    return out;
                }
                if dest != v.local {
                    return out;
                }
                if self.asking.remove(&g) {
                    self.granted.insert(g);
                    let how = if weown { "released" } else { "did not hold" };
                    out.push(LegacyOut::Note {
                        group: g,
                        what: "granted",
                        why: format!("{} {how} it (ip-request-resp)", v.peer),
                    });
                }
            }
        }
        out
    }

    /// Answers requests whose release finished, and (re)sends our own requests when `ask`
    /// (the exchange applies and we are not shutting down).
    pub(super) fn step(&mut self, now: Instant, v: &LegacyView<'_>, ask: bool) -> Vec<LegacyOut> {
        let mut out = Vec::new();
        let done: Vec<(usize, bool)> = self
            .giving
            .iter()
            .filter(|(g, _)| !v.groups[**g].held)
            .map(|(g, w)| (*g, *w))
            .collect();
        let yielded: Vec<usize> = self
            .yielding
            .iter()
            .copied()
            .filter(|&g| !v.groups[g].held)
            .collect();
        for g in yielded {
            self.yielding.remove(&g);
            self.given.insert(g);
        }
        for (g, weown) in done {
            self.giving.remove(&g);
            self.given.insert(g);
            out.push(LegacyOut::Send(response_message(
                v.peer,
                v.groups[g].key,
                weown,
            )));
        }
        if !ask {
            self.asking.clear();
            self.retry_at = None;
            return out;
        }
        if self.retry_at.is_some_and(|t| now < t) {
            return out;
        }
        let wanted: BTreeSet<usize> = (0..v.groups.len())
            .filter(|&g| v.groups[g].preferred_local && !v.groups[g].held)
            .filter(|&g| !v.groups[g].refused)
            .filter(|g| !self.granted.contains(g) && !self.given.contains(g))
            .collect();
        if wanted.is_empty() {
            self.retry_at = None;
            self.asking.clear();
            return out;
        }
        for &g in &wanted {
            if !self.asking.contains(&g) {
                out.push(LegacyOut::Note {
                    group: g,
                    what: "requested",
                    why: format!("asking {} to release it (ip-request)", v.peer),
                });
            }
            out.push(LegacyOut::Send(request_message(v.groups[g].key)));
        }
        self.asking = wanted;
        self.retry_at = Some(now + RETRY);
        out
    }

    /// Nothing to answer and nothing asked: `step` without `ask` would change nothing.
    pub(super) fn is_idle(&self) -> bool {
        self.giving.is_empty()
            && self.yielding.is_empty()
            && self.asking.is_empty()
            && self.retry_at.is_none()
    }

    /// The next instant at which `step` has work of its own (a retry).
    pub(super) fn timeout(&self) -> Option<Instant> {
        if self.asking.is_empty() {
            None
        } else {
            self.retry_at
        }
    }
}

impl Cluster {
    /// Whether the legacy exchange is how groups move now: `auto_failback legacy`, the
    /// peer alive and no resource report from it (a legacy Heartbeat never sends one).
    pub(super) fn legacy_applies(&self) -> bool {
        matches!(self.cfg.auto_failback, AutoFailback::Legacy)
            && matches!(self.peer, PeerState::Alive { report: None, .. })
    }

    /// The refusals, computed once for a view (they read the whole cluster).
    fn legacy_refused(&self) -> Vec<bool> {
        (0..self.groups.len()).map(|g| self.refuses(g)).collect()
    }

    /// Who should run group `g` under the legacy exchange (`None` when it does not apply,
    /// see `legacy_applies`); the inner value is `desired_here`'s answer.
    pub(super) fn legacy_desired(&self, g: usize) -> Option<Option<bool>> {
        if !self.legacy_applies() {
            return None;
        }
        let grp = LegacyGroup {
            key: &self.cfg.groups[g].key,
            preferred_local: self.cfg.groups[g].preferred_local,
            held: self.groups[g].state.is_held(),
            refused: self.refuses(g),
        };
        Some(self.legacy.desired(g, &grp))
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
        let refused = self.legacy_refused();
        let view = legacy_view(&self.cfg, &self.groups, &refused);
        let out = self.legacy.on_input(input, &view);
        self.legacy_carry_out(now, out);
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
        let ask = self.legacy_applies() && !self.shutting_down;
        // Called after every input: without legacy work, skip building the view.
        if !ask && self.legacy.is_idle() {
            return;
        }
        let refused = self.legacy_refused();
        let view = legacy_view(&self.cfg, &self.groups, &refused);
        let out = self.legacy.step(now, &view, ask);
        self.legacy_carry_out(now, out);
    }

    /// The next instant at which `legacy_step` has work of its own (a retry).
    pub(super) fn legacy_timeout(&self) -> Option<Instant> {
        self.legacy.timeout()
    }

    fn legacy_carry_out(&mut self, now: Instant, out: Vec<LegacyOut>) {
        for o in out {
            match o {
                LegacyOut::Send(m) => self.actions.push_back(Action::Send(m)),
                LegacyOut::Note { group, what, why } => self.note(now, GroupId(group), what, &why),
            }
        }
    }
}

/// The view of `cfg`'s groups as they stand in `groups`, with their refusals.
fn legacy_view<'a>(
    cfg: &'a super::ClusterConfig,
    groups: &[super::GroupRecord],
    refused: &[bool],
) -> LegacyView<'a> {
    LegacyView {
        local: &cfg.local,
        peer: &cfg.peer,
        groups: cfg
            .groups
            .iter()
            .zip(groups)
            .zip(refused)
            .map(|((info, rec), &refused)| LegacyGroup {
                key: &info.key,
                preferred_local: info.preferred_local,
                held: rec.state.is_held(),
                refused,
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
