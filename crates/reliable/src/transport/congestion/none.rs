//! [`NoCongestionControl`]: no congestion window; only the peer's receive window limits the
//! sender. For experiments that isolate the ARQ scheme from congestion control (and to show why
//! a shared path needs one).

use std::time::Instant;

use udpchat_core::SeqNum;

use super::{Acked, CongestionEvent, Controller};

/// A window fixed at its cap, whatever happens.
#[derive(Debug, Clone)]
pub struct NoCongestionControl {
    cap: u64,
}

impl NoCongestionControl {
    /// A window of `cap` bytes (at least one datagram of `mss` bytes).
    pub fn new(mss: u64, cap: u64) -> Self {
        NoCongestionControl {
            cap: cap.max(mss.max(1)),
        }
    }
}

impl Controller for NoCongestionControl {
    fn window(&self) -> u64 {
        self.cap
    }

    fn on_ack(&mut self, _now: Instant, _acked: &Acked) {}

    fn on_congestion_event(&mut self, _now: Instant, _event: CongestionEvent, _next: SeqNum) {}

    fn on_spurious_loss(&mut self) {}

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_cap_whatever_happens() {
        let now = Instant::now();
        let mut none = NoCongestionControl::new(1000, 256_000);
        none.on_congestion_event(now, CongestionEvent::Loss, SeqNum(5));
        none.on_congestion_event(now, CongestionEvent::Timeout, SeqNum(5));
        assert_eq!(none.window(), 256_000);
        assert_eq!(NoCongestionControl::new(1000, 10).window(), 1000);
    }
}
