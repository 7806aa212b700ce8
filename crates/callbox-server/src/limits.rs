//! Login attempt limits with exponential lockout, per account and per client address, and the sign-up rate
//! limit.
//!
//! Counters are keyed by the name tried, whether or not the account exists, so a lockout reveals nothing about
//! existence. Without Redis they live in this node's memory (lost on restart, which only ever gives an attacker
//! a fresh window after an operator restart). With Redis ([`SharedLimits`]) they are shared by every node, so
//! spreading guesses over nodes does not multiply the allowance; while Redis is unreachable each node falls back
//! to its own memory (the allowance is then per node) and `/readyz` reports Redis as degraded.

use crate::config::LoginConfig;
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    locked_until: Option<DateTime<Utc>>,
    last_failure: DateTime<Utc>,
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

/// How long ago `then` was at `now` (zero when the clock went back).
fn since(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

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

    /// `Err(seconds)` while the account or the address is locked out at `now`.
    pub fn check(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Result<(), u64> {
        let attempts = self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let wait = Self::subjects(app, user, ip)
            .iter()
            .filter_map(|subject| attempts.get(subject)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| ((until - now).num_milliseconds().max(0) as u64).div_ceil(1000))
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Records a failed login; returns the lockout it caused, if any, in seconds.
    pub fn record_failure(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if attempts.len() > 100_000 {
            attempts.retain(|_, a| since(now, a.last_failure) < FORGET_AFTER);
        }
        let mut longest = None;
        for subject in Self::subjects(app, user, ip) {
            let threshold = match subject {
                Subject::Account { .. } => self.config.max_failures_per_user,
                Subject::Address { .. } => self.config.max_failures_per_ip,
            };
            let entry =
                attempts.entry(subject).or_insert(Attempts { failures: 0, locked_until: None, last_failure: now });
            if since(now, entry.last_failure) >= FORGET_AFTER {
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
                entry.locked_until =
                    Some(now + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000)));
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

/// Login counters, lockouts and sign-up rates in Redis, shared by every node. Every operation has a short
/// timeout; on any Redis error the caller falls back to the node-local [`AttemptLimiter`].
#[derive(Clone)]
pub struct SharedLimits {
    redis: redis::aio::ConnectionManager,
    config: LoginConfig,
    failure_script: Arc<redis::Script>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLimits(redis)")
    }
}

/// How long a Redis call may take before the node decides Redis is unreachable for this request.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// Atomically counts a failure and, at the threshold, sets the lockout: KEYS[1] failures, KEYS[2] lock;
/// ARGV threshold, base seconds, max seconds, forget-after seconds. Returns the lockout set (0 for none).
const FAILURE_SCRIPT: &str = r#"
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local threshold = tonumber(ARGV[1])
if failures < threshold then return 0 end
local doublings = math.min(failures - threshold, 20)
local seconds = math.min(tonumber(ARGV[2]) * (2 ^ doublings), tonumber(ARGV[3]))
redis.call('SET', KEYS[2], '1', 'EX', math.floor(seconds))
return math.floor(seconds)
"#;

impl SharedLimits {
    /// Connects (lazily reconnecting afterwards) to Redis at `url`.
    pub async fn connect(url: &str, config: &LoginConfig) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let redis = redis::aio::ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self { redis, config: config.clone(), failure_script: Arc::new(redis::Script::new(FAILURE_SCRIPT)) })
    }

    fn keys(app: &str, user: &str, ip: IpAddr) -> [(String, String, u32); 2] {
        [
            (format!("callbox:fail:user:{app}:{user}"), format!("callbox:lock:user:{app}:{user}"), 0),
            (format!("callbox:fail:ip:{app}:{ip}"), format!("callbox:lock:ip:{app}:{ip}"), 1),
        ]
    }

    async fn timed<T>(future: impl std::future::Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
        tokio::time::timeout(REDIS_TIMEOUT, future)
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::IoError, "redis timed out"))))
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        Self::timed(redis::cmd("PING").query_async::<String>(&mut redis)).await.map(|_| ())
    }

    /// `Err(seconds)` while locked, as [`AttemptLimiter::check`].
    pub async fn check(&self, app: &str, user: &str, ip: IpAddr) -> redis::RedisResult<Result<(), u64>> {
        let mut redis = self.redis.clone();
        let [(_, account_lock, _), (_, address_lock, _)] = Self::keys(app, user, ip);
        // One round trip for both locks.
        let (account, address): (i64, i64) =
            Self::timed(redis::pipe().ttl(account_lock).ttl(address_lock).query_async(&mut redis)).await?;
        let longest = account.max(address);
        Ok(if longest > 0 { Err(longest.unsigned_abs()) } else { Ok(()) })
    }

    /// Counts a failure; returns the lockout it caused, as [`AttemptLimiter::record_failure`].
    pub async fn record_failure(&self, app: &str, user: &str, ip: IpAddr) -> redis::RedisResult<Option<u64>> {
        let mut redis = self.redis.clone();
        let mut longest = None;
        for (failures, lock, kind) in Self::keys(app, user, ip) {
            let threshold = if kind == 0 { self.config.max_failures_per_user } else { self.config.max_failures_per_ip };
            let mut invocation = self.failure_script.key(failures);
            invocation
                .key(lock)
                .arg(threshold.max(1))
                .arg(self.config.lockout_base_seconds)
                .arg(self.config.lockout_max_seconds)
                .arg(FORGET_AFTER.as_secs());
            let seconds: u64 = Self::timed(invocation.invoke_async(&mut redis)).await?;
            if seconds > 0 {
                longest = longest.max(Some(seconds));
            }
        }
        Ok(longest)
    }

    /// Clears the account's failures.
    pub async fn record_success(&self, app: &str, user: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let [(failures, _, _), _] = Self::keys(app, user, IpAddr::from([0, 0, 0, 0]));
        Self::timed(redis::cmd("DEL").arg(failures).query_async::<i64>(&mut redis)).await.map(|_| ())
    }

    /// Sign-up rate per address per minute (fixed one-minute windows).
    pub async fn check_signup(&self, app: &str, ip: IpAddr, now: DateTime<Utc>) -> redis::RedisResult<Result<(), u64>> {
        let mut redis = self.redis.clone();
        let now = now.timestamp();
        let key = format!("callbox:signup:{app}:{ip}:{}", now / 60);
        let count: u64 = Self::timed(
            redis::pipe().atomic().incr(&key, 1u64).expire(&key, 120).ignore().query_async::<(u64,)>(&mut redis),
        )
        .await?
        .0;
        Ok(if count > u64::from(self.config.signups_per_ip_per_minute) {
            Err(u64::try_from(60 - now % 60).unwrap_or(1).max(1))
        } else {
            Ok(())
        })
    }
}

/// The limits a node applies: shared through Redis when configured, with this node's memory as the fallback.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The node-local limiter (used alone without Redis, and as the fallback while Redis is unreachable).
    pub local: AttemptLimiter,
    /// The shared limiter, when `redis_url` is configured.
    pub shared: Option<SharedLimits>,
}

fn redis_down(error: &redis::RedisError) {
    metrics::counter!("callbox_redis_errors_total").increment(1);
    tracing::warn!(%error, "redis unreachable: login limits fall back to this node's memory");
}

impl Limits {
    /// `Err(seconds)` while the account or the address is locked out.
    pub async fn check(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Result<(), u64> {
        if let Some(shared) = &self.shared {
            match shared.check(app, user, ip).await {
                Ok(answer) => return answer,
                Err(error) => redis_down(&error),
            }
        }
        self.local.check(app, user, ip, now)
    }

    /// Records a failed login; returns the lockout it caused.
    pub async fn record_failure(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        if let Some(shared) = &self.shared {
            match shared.record_failure(app, user, ip).await {
                Ok(answer) => return answer,
                Err(error) => redis_down(&error),
            }
        }
        self.local.record_failure(app, user, ip, now)
    }

    /// Clears the account's failures.
    pub async fn record_success(&self, app: &str, user: &str) {
        if let Some(shared) = &self.shared {
            if let Err(error) = shared.record_success(app, user).await {
                redis_down(&error);
            }
        }
        self.local.record_success(app, user);
    }

    /// Whether another sign-up from `ip` is allowed now.
    pub async fn check_signup(&self, app: &str, ip: IpAddr, now: DateTime<Utc>) -> Result<(), u64> {
        if let Some(shared) = &self.shared {
            match shared.check_signup(app, ip, now).await {
                Ok(answer) => return answer,
                Err(error) => redis_down(&error),
            }
        }
        self.local.check_signup(app, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn account_locks_after_threshold_and_doubles() {
        let limiter = AttemptLimiter::new(&LoginConfig::default());
        for _ in 0..4 {
            assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), None);
        }
        assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), Some(30));
        assert!(matches!(limiter.check("a", "alice", ip(2), now()), Err(s) if (29..=30).contains(&s)));
        assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), Some(60));
        // Another account, another app: untouched.
        assert_eq!(limiter.check("a", "bob", ip(3), now()), Ok(()));
        assert_eq!(limiter.check("b", "alice", ip(3), now()), Ok(()));
    }

    #[test]
    fn address_locks_across_accounts_and_success_clears_only_the_account() {
        let config = LoginConfig { max_failures_per_ip: 3, ..LoginConfig::default() };
        let limiter = AttemptLimiter::new(&config);
        for user in ["u1", "u2"] {
            limiter.record_failure("a", user, ip(9), now());
        }
        assert_eq!(limiter.record_failure("a", "u3", ip(9), now()), Some(30));
        assert!(limiter.check("a", "fresh", ip(9), now()).is_err());
        assert!(limiter.check("a", "fresh", ip(8), now()).is_ok());
        limiter.record_success("a", "u1");
        assert!(limiter.check("a", "u1", ip(8), now()).is_ok());
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
