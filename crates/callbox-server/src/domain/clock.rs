//! The time the domain decides with. The domain never reads the system clock itself: `serve` passes the
//! [`SystemClock`], tests a [`TestClock`] they can move, so expiry, skew and lockout are tested by moving time
//! instead of editing rows.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The machine's clock moved by a settable offset: time still passes (timeouts and caches behave as in
/// production), and a test can jump it forward or back. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    offset_milliseconds: Arc<AtomicI64>,
}

impl TestClock {
    /// A clock that starts at the machine's time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock by `by` (negative: back).
    pub fn advance(&self, by: Duration) {
        self.offset_milliseconds.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_milliseconds.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_when_told_and_clones_move_together() {
        let clock = TestClock::new();
        let twin = clock.clone();
        let before = clock.now();
        clock.advance(Duration::hours(25));
        let moved = twin.now() - before;
        assert!(moved >= Duration::hours(25) && moved < Duration::hours(25) + Duration::seconds(5));
        clock.advance(Duration::hours(-25));
        assert!(twin.now() - before < Duration::seconds(5));
    }
}
