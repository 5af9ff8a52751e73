//! Notify hooks: which transitions an admin's `[notify]` commands hear about. A group
//! becoming `active` here (running), `standby` (stopped here), or `fault` (a start or stop
//! failed, or its monitor fails); the reason is the one that started the move, not the
//! operation's own "start succeeded".

use std::collections::BTreeMap;

use super::{Action, Cluster, GroupId};

/// The state a notify hook is told about (`HA_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyState {
    /// The group runs here now.
    Active,
    /// The group stopped here.
    Standby,
    /// The group failed here.
    Fault,
}

impl NotifyState {
    /// The word in `HA_STATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Standby => "standby",
            Self::Fault => "fault",
        }
    }
}

/// The reason of each group's move in progress.
#[derive(Debug, Default)]
pub(super) struct Why(BTreeMap<usize, String>);

impl Cluster {
    /// Called for every transition noted in the log.
    pub(super) fn notify_on(&mut self, g: GroupId, what: &str, reason: &str) {
        let state = match what {
            "starting" | "stopping" => {
                self.why.0.insert(g.0, reason.to_string());
                return;
            }
            "running" => NotifyState::Active,
            "stopped" => NotifyState::Standby,
            "failed" | "stop failed" | "unhealthy" => NotifyState::Fault,
            _ => return,
        };
        let reason = match state {
            NotifyState::Fault => reason.to_string(),
            _ => self
                .why
                .0
                .remove(&g.0)
                .unwrap_or_else(|| reason.to_string()),
        };
        self.actions.push_back(Action::Notify {
            group: g,
            state,
            reason,
        });
    }
}
