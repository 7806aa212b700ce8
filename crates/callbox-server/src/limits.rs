//! Login attempt limits with exponential lockout, per account and per client address, and the sign-up rate
//! limit.
//!
//! Counters are keyed by the name tried, whether or not the account exists, so a lockout reveals nothing about
//! existence. They live in this node's memory (lost on restart, which only ever gives an attacker a fresh
//! window after an operator restart).

use crate::config::LoginConfig;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account { app: String, user: String },
    Address { app: String, ip: IpAddr },
}

/// Tracks failures and lockouts.
#[derive(Debug, Clone)]
pub struct AttemptLimiter {
    config: LoginConfig,
    attempts: Arc<Mutex<HashMap<Subject, Attempts>>>,
    signups: Arc<DefaultKeyedRateLimiter<(String, IpAddr)>>,
}

/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl AttemptLimiter {
    /// A limiter with `config`'s thresholds.
    pub fn new(config: &LoginConfig) -> Self {
        let per_minute = NonZeroU32::new(config.signups_per_ip_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            config: config.clone(),
            attempts: Arc::new(Mutex::new(HashMap::new())),
            signups: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        }
    }

    fn subjects(app: &str, user: &str, ip: IpAddr) -> [Subject; 2] {
        [Subject::Account { app: app.to_owned(), user: user.to_owned() }, Subject::Address { app: app.to_owned(), ip }]
    }

    /// `Err(seconds)` while the account or the address is locked out.
    pub fn check(&self, app: &str, user: &str, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let attempts = self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let wait = Self::subjects(app, user, ip)
            .iter()
            .filter_map(|subject| attempts.get(subject)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs_f64().ceil() as u64)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Records a failed login; returns the lockout it caused, if any, in seconds.
    pub fn record_failure(&self, app: &str, user: &str, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if attempts.len() > 100_000 {
            attempts.retain(|_, a| now.duration_since(a.last_failure) < FORGET_AFTER);
        }
        let mut longest = None;
        for subject in Self::subjects(app, user, ip) {
            let threshold = match subject {
                Subject::Account { .. } => self.config.max_failures_per_user,
                Subject::Address { .. } => self.config.max_failures_per_ip,
            };
            let entry =
                attempts.entry(subject).or_insert(Attempts { failures: 0, locked_until: None, last_failure: now });
            if now.duration_since(entry.last_failure) >= FORGET_AFTER {
                *entry = Attempts { failures: 0, locked_until: None, last_failure: now };
            }
            entry.failures += 1;
            entry.last_failure = now;
            if entry.failures >= threshold.max(1) {
                let doublings = (entry.failures - threshold.max(1)).min(20);
                let seconds = self
                    .config
                    .lockout_base_seconds
                    .saturating_mul(1 << doublings)
                    .min(self.config.lockout_max_seconds);
                entry.locked_until = Some(now + Duration::from_secs(seconds));
                longest = longest.max(Some(seconds));
            }
        }
        longest
    }

    /// Clears the account's failures after a successful login (the address keeps its count).
    pub fn record_success(&self, app: &str, user: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        attempts.remove(&Subject::Account { app: app.to_owned(), user: user.to_owned() });
    }

    /// Whether another sign-up from `ip` is allowed now; `Err(seconds)` to wait otherwise.
    pub fn check_signup(&self, app: &str, ip: IpAddr) -> Result<(), u64> {
        self.signups.check_key(&(app.to_owned(), ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            wait.as_secs().max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn account_locks_after_threshold_and_doubles() {
        let limiter = AttemptLimiter::new(&LoginConfig::default());
        for _ in 0..4 {
            assert_eq!(limiter.record_failure("a", "alice", ip(1)), None);
        }
        assert_eq!(limiter.record_failure("a", "alice", ip(1)), Some(30));
        assert!(matches!(limiter.check("a", "alice", ip(2)), Err(s) if (29..=30).contains(&s)));
        assert_eq!(limiter.record_failure("a", "alice", ip(1)), Some(60));
        // Another account, another app: untouched.
        assert_eq!(limiter.check("a", "bob", ip(3)), Ok(()));
        assert_eq!(limiter.check("b", "alice", ip(3)), Ok(()));
    }

    #[test]
    fn address_locks_across_accounts_and_success_clears_only_the_account() {
        let config = LoginConfig { max_failures_per_ip: 3, ..LoginConfig::default() };
        let limiter = AttemptLimiter::new(&config);
        for user in ["u1", "u2"] {
            limiter.record_failure("a", user, ip(9));
        }
        assert_eq!(limiter.record_failure("a", "u3", ip(9)), Some(30));
        assert!(limiter.check("a", "fresh", ip(9)).is_err());
        assert!(limiter.check("a", "fresh", ip(8)).is_ok());
        limiter.record_success("a", "u1");
        assert!(limiter.check("a", "u1", ip(8)).is_ok());
    }

    #[test]
    fn signups_are_rate_limited_per_address() {
        let config = LoginConfig { signups_per_ip_per_minute: 2, ..LoginConfig::default() };
        let limiter = AttemptLimiter::new(&config);
        assert!(limiter.check_signup("a", ip(1)).is_ok());
        assert!(limiter.check_signup("a", ip(1)).is_ok());
        assert!(limiter.check_signup("a", ip(1)).is_err());
        assert!(limiter.check_signup("a", ip(2)).is_ok());
    }
}
