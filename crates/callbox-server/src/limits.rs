//! Login attempt limits: an exponential lockout per account, a per-minute cap on failed logins per client
//! address, and the sign-up rate limit.
//!
//! - **Per account**: after `max_failures_per_user` failures the account locks for `lockout_base_seconds`, doubling
//!   with each further failure up to `lockout_max_seconds`. Only failures made while the account is *not* locked
//!   count: a login refused because of the lock, or one that raced past the check and failed while the lock was
//!   already set, never extends it (40 parallel wrong guesses lock the account once, not to the maximum).
//! - **Per address**: an address behind which `max_failures_per_ip_per_minute` logins failed (for one app, over all
//!   accounts) is slowed, not locked out: further attempts from it are refused with `rate_limited` until the
//!   minute is over, and no account is locked because of it (an office behind one NAT keeps working after a
//!   minute; a guesser from one address gets that many guesses a minute).
//!
//! Counters are keyed by the name tried, whether or not the account exists, so a lockout reveals nothing about
//! existence. Without Redis they live in this node's memory (lost on restart, which only ever gives an attacker
//! a fresh window after an operator restart). With Redis ([`SharedLimits`]) they are shared by every node, so
//! spreading guesses over nodes does not multiply the allowance; while Redis is unreachable each node falls back
//! to its own memory (the allowance is then per node) and `/readyz` reports Redis as degraded. Lock lifetimes
//! in Redis are Redis's own key expiries.

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

/// Why a login must wait, and how many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The account is locked out (`locked_out`).
    LockedOut(u64),
    /// Too many failures from this address this minute (`rate_limited`).
    Throttled(u64),
}

type AccountKey = (String, String);
type AddressKey = (String, IpAddr);

/// Tracks failures and lockouts.
#[derive(Debug, Clone)]
pub struct AttemptLimiter {
    config: LoginConfig,
    accounts: Arc<Mutex<HashMap<AccountKey, Attempts>>>,
    /// Failures per address in the current minute: (minute since the epoch, count).
    addresses: Arc<Mutex<HashMap<AddressKey, (i64, u32)>>>,
    signups: Arc<DefaultKeyedRateLimiter<(String, IpAddr)>>,
}

/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// How long ago `then` was at `now` (zero when the clock went back).
fn since(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

/// Whole seconds from `now` to `until`, rounded up.
fn seconds_until(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    ((until - now).num_milliseconds().max(0) as u64).div_ceil(1000)
}

/// The minute `now` falls in, and the seconds left in it (at least 1).
fn minute_of(now: DateTime<Utc>) -> (i64, u64) {
    let seconds = now.timestamp();
    (seconds.div_euclid(60), u64::try_from(60 - seconds.rem_euclid(60)).unwrap_or(60).max(1))
}

impl AttemptLimiter {
    /// A limiter with `config`'s thresholds.
    pub fn new(config: &LoginConfig) -> Self {
        let per_minute = NonZeroU32::new(config.signups_per_ip_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            config: config.clone(),
            accounts: Arc::new(Mutex::new(HashMap::new())),
            addresses: Arc::new(Mutex::new(HashMap::new())),
            signups: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        }
    }

    fn account(app: &str, user: &str) -> AccountKey {
        (app.to_owned(), user.to_owned())
    }

    /// `Err` while the account is locked out or the address is slowed, at `now`.
    pub fn check(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Result<(), Wait> {
        let locked = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&Self::account(app, user))
            .and_then(|a| a.locked_until)
            .filter(|until| *until > now);
        if let Some(until) = locked {
            return Err(Wait::LockedOut(seconds_until(now, until).max(1)));
        }
        let (minute, left) = minute_of(now);
        let addresses = self.addresses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match addresses.get(&(app.to_owned(), ip)) {
            Some((at, count)) if *at == minute && *count >= self.config.max_failures_per_ip_per_minute.max(1) => {
                Err(Wait::Throttled(left))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login; returns the account's lockout, if it is locked now, in seconds. A failure while
    /// the account is already locked (a request that raced past [`Self::check`]) neither counts nor extends it.
    pub fn record_failure(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        {
            let (minute, _) = minute_of(now);
            let mut addresses = self.addresses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if addresses.len() > 100_000 {
                addresses.retain(|_, (at, _)| *at == minute);
            }
            let entry = addresses.entry((app.to_owned(), ip)).or_insert((minute, 0));
            if entry.0 != minute {
                *entry = (minute, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if accounts.len() > 100_000 {
            accounts.retain(|_, a| since(now, a.last_failure) < FORGET_AFTER);
        }
        let entry = accounts.entry(Self::account(app, user)).or_insert(Attempts {
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        if let Some(until) = entry.locked_until.filter(|until| *until > now) {
            return Some(seconds_until(now, until).max(1));
        }
        if since(now, entry.last_failure) >= FORGET_AFTER {
            *entry = Attempts { failures: 0, locked_until: None, last_failure: now };
        }
        entry.failures += 1;
        entry.last_failure = now;
        let threshold = self.config.max_failures_per_user.max(1);
        if entry.failures < threshold {
            return None;
        }
        let doublings = (entry.failures - threshold).min(20);
        let seconds =
            self.config.lockout_base_seconds.saturating_mul(1 << doublings).min(self.config.lockout_max_seconds);
        entry.locked_until = Some(now + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000)));
        Some(seconds.max(1))
    }

    /// Clears the account's failures after a successful login (the address keeps its count).
    pub fn record_success(&self, app: &str, user: &str) {
        self.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&Self::account(app, user));
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

/// Atomically counts a failure: KEYS[1] the account's failures, KEYS[2] its lock, KEYS[3] the address's failures
/// this minute; ARGV threshold, base seconds, max seconds, forget-after seconds. A failure while the account is
/// locked only counts for the address and returns the lock's remaining seconds; otherwise it counts for the
/// account and, at the threshold, sets the lock. Returns the lockout in force (0 for none).
const FAILURE_SCRIPT: &str = r#"
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 120)
local remaining = redis.call('TTL', KEYS[2])
if remaining > 0 then return remaining end
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

    fn account_keys(app: &str, user: &str) -> (String, String) {
        (format!("callbox:fail:user:{app}:{user}"), format!("callbox:lock:user:{app}:{user}"))
    }

    fn address_key(app: &str, ip: IpAddr, now: DateTime<Utc>) -> String {
        format!("callbox:fail:ip:{app}:{ip}:{}", minute_of(now).0)
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

    /// `Err` while locked or slowed, as [`AttemptLimiter::check`].
    pub async fn check(
        &self,
        app: &str,
        user: &str,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> redis::RedisResult<Result<(), Wait>> {
        let mut redis = self.redis.clone();
        let (_, account_lock) = Self::account_keys(app, user);
        // One round trip for both.
        let (locked, address_failures): (i64, Option<u32>) =
            Self::timed(redis::pipe().ttl(account_lock).get(Self::address_key(app, ip, now)).query_async(&mut redis))
                .await?;
        Ok(if locked > 0 {
            Err(Wait::LockedOut(locked.unsigned_abs()))
        } else if address_failures.unwrap_or(0) >= self.config.max_failures_per_ip_per_minute.max(1) {
            Err(Wait::Throttled(minute_of(now).1))
        } else {
            Ok(())
        })
    }

    /// Counts a failure; returns the lockout in force, as [`AttemptLimiter::record_failure`].
    pub async fn record_failure(
        &self,
        app: &str,
        user: &str,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> redis::RedisResult<Option<u64>> {
        let mut redis = self.redis.clone();
        let (failures, lock) = Self::account_keys(app, user);
        let mut invocation = self.failure_script.key(failures);
        invocation
            .key(lock)
            .key(Self::address_key(app, ip, now))
            .arg(self.config.max_failures_per_user.max(1))
            .arg(self.config.lockout_base_seconds)
            .arg(self.config.lockout_max_seconds)
            .arg(FORGET_AFTER.as_secs());
        let seconds: u64 = Self::timed(invocation.invoke_async(&mut redis)).await?;
        Ok((seconds > 0).then_some(seconds))
    }

    /// Clears the account's failures.
    pub async fn record_success(&self, app: &str, user: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let (failures, _) = Self::account_keys(app, user);
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
    /// `Err` while the account is locked out or the address is slowed.
    pub async fn check(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Result<(), Wait> {
        if let Some(shared) = &self.shared {
            match shared.check(app, user, ip, now).await {
                Ok(answer) => return answer,
                Err(error) => redis_down(&error),
            }
        }
        self.local.check(app, user, ip, now)
    }

    /// Records a failed login; returns the lockout it caused.
    pub async fn record_failure(&self, app: &str, user: &str, ip: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        if let Some(shared) = &self.shared {
            match shared.record_failure(app, user, ip, now).await {
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
    fn account_locks_after_threshold_and_doubles_only_after_the_lock_ends() {
        let limiter = AttemptLimiter::new(&LoginConfig::default());
        for _ in 0..4 {
            assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), None);
        }
        assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), Some(30));
        assert_eq!(limiter.check("a", "alice", ip(2), now()), Err(Wait::LockedOut(30)));
        // Failures that raced past the check while locked neither count nor extend the lock.
        for _ in 0..30 {
            assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), Some(30));
        }
        // After the lock, the next failure doubles it.
        let later = now() + chrono::Duration::seconds(31);
        assert_eq!(limiter.check("a", "alice", ip(2), later), Ok(()));
        assert_eq!(limiter.record_failure("a", "alice", ip(3), later), Some(60));
        // Another account, another app: untouched.
        assert_eq!(limiter.check("a", "bob", ip(4), now()), Ok(()));
        assert_eq!(limiter.check("b", "alice", ip(4), now()), Ok(()));
    }

    #[test]
    fn an_address_is_slowed_for_the_rest_of_the_minute_without_locking_accounts() {
        let config = LoginConfig { max_failures_per_ip_per_minute: 3, ..LoginConfig::default() };
        let limiter = AttemptLimiter::new(&config);
        let start = now() + chrono::Duration::seconds(10); // 10 s into a minute
        for user in ["u1", "u2", "u3"] {
            assert_eq!(limiter.record_failure("a", user, ip(9), start), None, "no account is locked");
        }
        assert_eq!(limiter.check("a", "fresh", ip(9), start), Err(Wait::Throttled(50)));
        assert!(limiter.check("a", "fresh", ip(8), start).is_ok(), "another address");
        assert!(limiter.check("b", "fresh", ip(9), start).is_ok(), "another app");
        // Next minute: the address may try again, and u1 was never locked.
        let next = start + chrono::Duration::seconds(50);
        assert_eq!(limiter.check("a", "u1", ip(9), next), Ok(()));
    }

    #[test]
    fn success_clears_only_the_account() {
        let limiter = AttemptLimiter::new(&LoginConfig::default());
        for _ in 0..4 {
            limiter.record_failure("a", "alice", ip(1), now());
        }
        limiter.record_success("a", "alice");
        for _ in 0..4 {
            assert_eq!(limiter.record_failure("a", "alice", ip(1), now()), None);
        }
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
