//! The last 500 sequenced messages we sent, kept to answer `NS_rexmit`.

use std::collections::VecDeque;
use std::time::Instant;

/// Heartbeat's `MAXMSGHIST`.
pub(super) const HISTORY_LEN: usize = 500;

/// One sent message: its bytes only. The decoded form is rebuilt from them on the rare
/// retransmission after a key change; kept beside them it cost four times their size, for
/// 500 messages on every node that has been up 500 heartbeats (issue 14: 0.3 MiB of an
/// idle node's 4 MiB).
#[derive(Debug)]
pub(super) struct Sent {
    /// The exact bytes sent (control fields and inner `auth` included).
    pub(super) bytes: Box<[u8]>,
    /// Which key set signed `bytes` (bumped by `set_auth`).
    pub(super) auth_epoch: u64,
    /// When it was last retransmitted.
    pub(super) last_resent: Option<Instant>,
}

/// Where a requested seq stands.
pub(super) enum Lookup<'a> {
    /// Still kept.
    Found(&'a mut Sent),
    /// Older than anything kept.
    TooLow,
    /// Never sent yet.
    TooHigh,
}

/// Ring of sent messages; seqs in it are contiguous, oldest first.
#[derive(Debug, Default)]
pub(super) struct History {
    first_seq: u64,
    entries: VecDeque<Sent>,
}

impl History {
    /// Records the message sent with `seq`, which must follow the previous one.
    pub(super) fn push(&mut self, seq: u64, sent: Sent) {
        if self.entries.is_empty() || self.first_seq + self.entries.len() as u64 != seq {
            // Seqs are process-wide and contiguous, so this only happens on
            // the first push; restarting the ring keeps lookups by offset sound.
            self.entries.clear();
            self.first_seq = seq;
        }
        self.entries.push_back(sent);
        if self.entries.len() > HISTORY_LEN {
            self.entries.pop_front();
            self.first_seq += 1;
        }
    }

    /// Finds `seq`.
    pub(super) fn lookup(&mut self, seq: u64) -> Lookup<'_> {
        if seq < self.first_seq {
            return Lookup::TooLow;
        }
        let offset = seq - self.first_seq;
        match usize::try_from(offset)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
        {
            Some(s) => Lookup::Found(s),
            None => Lookup::TooHigh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(tag: u8) -> Sent {
        Sent {
            bytes: Box::new([tag]),
            auth_epoch: 0,
            last_resent: None,
        }
    }

    #[test]
    fn keeps_the_last_500() {
        let mut h = History::default();
        for seq in 1..=600u64 {
            h.push(seq, sent((seq % 256) as u8));
        }
        assert!(matches!(h.lookup(100), Lookup::TooLow));
        assert!(matches!(h.lookup(601), Lookup::TooHigh));
        match h.lookup(101) {
            Lookup::Found(s) => assert_eq!(&s.bytes[..], &[101]),
            _ => panic!("101 must be kept"),
        }
        match h.lookup(600) {
            Lookup::Found(s) => assert_eq!(&s.bytes[..], &[(600 % 256) as u8]),
            _ => panic!("600 must be kept"),
        }
    }
}
