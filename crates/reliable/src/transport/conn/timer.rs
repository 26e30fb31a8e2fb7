//! The endpoint's timers: one [`Timer`] per kind and one [`TimerTable`] of deadlines.
//!
//! Modelled on quinn-proto's `connection/timer.rs`. `poll_timeout` is the earliest deadline of
//! the table and `timer_name` names the timer behind it, so a trace can say which timer fired
//! ("A timer rto"); `handle_timeout` lets each expired timer fire, in the order of
//! [`Timer::ALL`]. The sender's and receiver's deadlines stay theirs (they rearm them as packets
//! come and go); the endpoint copies them into the table after every event.

use std::time::Instant;

/// One kind of timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// `close` gives up waiting for acknowledgements: the rest is reported lost.
    Linger,
    /// Our `Hello` went unanswered: resend it (or give up).
    Handshake,
    /// Nothing heard from the peer for `idle_timeout`: it is unreachable.
    Idle,
    /// Our `Welcome` went unconfirmed while messages wait: resend it.
    Welcome,
    /// An acknowledgement has waited `max_ack_delay`: send it.
    DelayedAck,
    /// The newest packet is still out after half a round trip: send a copy (redundancy).
    TailCopy,
    /// Packets with SACK evidence against them are now old enough to count as lost.
    Loss,
    /// The retransmission timeout (RFC 6298).
    Rto,
    /// The pacer lets the next packet go (`transport/pacer.rs`).
    Pacing,
    /// Path MTU discovery: a probe went unanswered, or the next search is due.
    PathMtu,
    /// A claimed restart is being checked: ping the current session again.
    RestartProbe,
    /// We have been silent for `keepalive`: send a `Ping`.
    Keepalive,
}

/// How many kinds of timer there are.
const COUNT: usize = Timer::ALL.len();

impl Timer {
    /// Every timer, in the order `handle_timeout` lets them fire when several are due: the ones
    /// that end the session first, the keepalive (which only matters if nothing else is sent)
    /// last.
    pub(super) const ALL: [Timer; 12] = [
        Timer::Linger,
        Timer::Handshake,
        Timer::Idle,
        Timer::Welcome,
        Timer::DelayedAck,
        Timer::TailCopy,
        Timer::Loss,
        Timer::Rto,
        Timer::Pacing,
        Timer::PathMtu,
        Timer::RestartProbe,
        Timer::Keepalive,
    ];

    /// The timer's name in traces and ladders.
    pub(super) fn name(self) -> &'static str {
        match self {
            Timer::Linger => "linger",
            Timer::Handshake => "handshake",
            Timer::Idle => "idle",
            Timer::Welcome => "welcome",
            Timer::DelayedAck => "delayed ack",
            Timer::TailCopy => "tail copy",
            Timer::Loss => "loss",
            Timer::Rto => "rto",
            Timer::Pacing => "pacing",
            Timer::PathMtu => "path mtu",
            Timer::RestartProbe => "restart probe",
            Timer::Keepalive => "keepalive",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The deadline of every timer, `None` where it is not armed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at`, or disarms it with `None`.
    pub(super) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.deadlines[timer.index()] = at;
    }

    /// Disarms every timer.
    pub(super) fn clear(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// True if `timer` is armed for `now` or earlier.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadlines[timer.index()].is_some_and(|at| at <= now)
    }

    /// The earliest armed timer and its deadline; of timers due at the same instant, the first
    /// in [`Timer::ALL`], the one that fires first.
    pub(super) fn next(&self) -> Option<(Timer, Instant)> {
        let mut next: Option<(Timer, Instant)> = None;
        for timer in Timer::ALL {
            if let Some(at) = self.deadlines[timer.index()] {
                if next.is_none_or(|(_, earliest)| at < earliest) {
                    next = Some((timer, at));
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn all_lists_every_timer_at_its_own_index() {
        for (i, timer) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(timer.index(), i, "{timer:?}");
        }
    }

    #[test]
    fn the_earliest_timer_is_next_and_ties_go_to_the_first_to_fire() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Keepalive, Some(t0 + Duration::from_secs(5)));
        table.set(Timer::Rto, Some(t0 + Duration::from_secs(1)));
        table.set(Timer::DelayedAck, Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            table.next(),
            Some((Timer::DelayedAck, t0 + Duration::from_secs(1)))
        );
        assert!(table.is_expired(Timer::Rto, t0 + Duration::from_secs(1)));
        assert!(!table.is_expired(Timer::Keepalive, t0 + Duration::from_secs(1)));
        table.set(Timer::DelayedAck, None);
        assert_eq!(table.next().map(|(t, _)| t.name()), Some("rto"));
        table.clear();
        assert_eq!(table.next(), None);
    }
}
