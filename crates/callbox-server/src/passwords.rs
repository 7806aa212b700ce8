//! argon2id password hashing on its own threads, behind a bounded queue.
//!
//! Hashing is deliberately slow, so it never runs on the async runtime: `workers` dedicated threads hash, at most
//! `queue` more jobs wait, and beyond that a login is refused with `rate_limited` instead of stalling everything
//! else. The hashing threads run at the lowest CPU priority (`SCHED_BATCH`, nice 19 on Linux): a core they share
//! with ticket exchanges and signed calls goes to those first, so a login flood cannot push up their latency
//! (docs/benchmarks.md, "mixed"); logins get every cycle the rest leaves.

use crate::config::PasswordConfig;
use crate::domain::DomainError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use callbox_core::Reason;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

/// Shortest password accepted, bytes.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest password accepted, bytes (refused above, never truncated).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password's length.
pub fn check_password_length(password: &str) -> Result<(), DomainError> {
    if (MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&password.len()) {
        Ok(())
    } else {
        Err(DomainError::new(Reason::InvalidPassword))
    }
}

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Whether the password matched.
    pub matches: bool,
    /// A new hash, when the stored one used weaker parameters than today's (upgrade on successful login).
    pub rehash: Option<String>,
}

/// The hashing pool.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    workers: usize,
    /// Jobs for the hashing threads (they stop when every clone of this is dropped).
    jobs: mpsc::Sender<Job>,
    /// Places for a job running or queued: `workers + queue`.
    waiting_room: Arc<Semaphore>,
    /// How long a login or sign-up waits for a place before it is refused.
    queue_wait: std::time::Duration,
    /// Verified against when the user does not exist, so that both cases cost the same time.
    dummy_hash: Arc<str>,
    /// argon2's working memory (19 MiB a hash), reused: at most one buffer per concurrent hash ever exists.
    /// Allocating it per hash made glibc keep a freed 19 MiB heap in each blocking thread's arena, and the
    /// server's RSS climbed from 12 MiB to over 220 MiB after a few seconds of logins (docs/benchmarks.md).
    blocks: BlockPool,
}

type BlockPool = Arc<Mutex<Vec<Vec<Block>>>>;

type Job = Box<dyn FnOnce() + Send>;

/// Starts `workers` hashing threads at the lowest CPU priority, fed by the returned sender.
fn spawn_hashing_threads(workers: usize) -> std::io::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..workers {
        let receiver = Arc::clone(&receiver);
        std::thread::Builder::new().name(format!("callbox-hash-{n}")).spawn(move || {
            lower_this_threads_priority();
            loop {
                let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(job) = job else { return };
                // A panicking job drops its answer channel (the caller gets `internal`); the thread carries on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
    }
    Ok(sender)
}

/// `SCHED_BATCH` at nice 19 (any user may lower its own priority). Elsewhere, or if refused, the thread keeps
/// the normal priority and a warning says so.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
            ThreadPriorityValue, ThreadSchedulePolicy,
        };
        let lowest = ThreadPriority::Crossplatform(ThreadPriorityValue::MIN);
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        if let Err(error) = set_thread_priority_and_policy(thread_native_id(), lowest, policy) {
            tracing::warn!(?error, "password hashing runs at normal CPU priority");
        }
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_kib", &self.params.m_cost())
            .field("t", &self.params.t_cost())
            .field("workers", &self.workers)
            .field("places_free", &self.waiting_room.available_permits())
            .finish()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl PasswordHasher {
    /// A pool with the configured parameters (never below OWASP's minimum of m = 19 MiB, t = 2, p = 1).
    pub fn new(config: &PasswordConfig) -> Result<Self, argon2::Error> {
        let params = Params::new(config.memory_kib.max(19_456), config.iterations.max(2), 1, None)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = config.hash_workers.unwrap_or(cores / 2).max(1);
        let blocks = BlockPool::default();
        let dummy_hash = hash_blocking(&blocks, &params, "callbox-dummy-password-for-timing")
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        let jobs = spawn_hashing_threads(workers).map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(Self {
            blocks,
            params,
            workers,
            jobs,
            waiting_room: Arc::new(Semaphore::new(workers + config.hash_queue)),
            queue_wait: std::time::Duration::from_millis(config.queue_wait_milliseconds),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// A hashing place for a login or sign-up: at once when one is free, else after waiting up to
    /// `queue_wait_milliseconds` for one (first come, first served); `rate_limited` after that. Taken before any
    /// database work. The wait is what keeps a flood of logins that ignores `Retry-After` from costing more than
    /// one refusal per connection per wait: answering each with an immediate 429 let 48 connections send ~19,000
    /// refused logins a second, whose handling took the CPU that ticket exchanges needed (docs/benchmarks.md).
    pub async fn reserve(&self) -> Result<HashingPlace, DomainError> {
        if let Ok(place) = self.waiting_room.clone().try_acquire_owned() {
            return Ok(HashingPlace { _permit: place });
        }
        match tokio::time::timeout(self.queue_wait, self.waiting_room.clone().acquire_owned()).await {
            Ok(Ok(place)) => Ok(HashingPlace { _permit: place }),
            _ => Err(Self::shed()),
        }
    }

    fn shed() -> DomainError {
        metrics::counter!("callbox_password_queue_rejections_total").increment(1);
        DomainError::retry_after(Reason::RateLimited, 1)
    }

    /// A hashing place if one is free now (admin calls: they do not wait).
    fn reserve_now(&self) -> Result<HashingPlace, DomainError> {
        let place = self.waiting_room.clone().try_acquire_owned().map_err(|_| Self::shed())?;
        Ok(HashingPlace { _permit: place })
    }

    /// Runs `job` on a hashing thread, in `place`.
    async fn run<T: Send + 'static>(
        &self,
        place: HashingPlace,
        job: impl FnOnce(&Params, &BlockPool) -> T + Send + 'static,
    ) -> Result<T, DomainError> {
        let (params, blocks) = (self.params.clone(), self.blocks.clone());
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The place goes with the job, so it is held until the hash is done even if the caller gave up waiting.
        let job: Job = Box::new(move || {
            let result = job(&params, &blocks);
            // Freed before answering: on a busy machine this lowest-priority thread can be descheduled between
            // the two, and the place must not outlive the hash by that long.
            drop(place);
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| DomainError::new(Reason::Internal))?;
        answered.await.map_err(|_| DomainError::new(Reason::Internal))
    }

    /// Hashes a new password (a place if one is free now, else `rate_limited`).
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, DomainError> {
        let place = self.reserve_now()?;
        self.hash_in(place, password).await
    }

    /// Hashes a new password in a place already reserved.
    pub async fn hash_in(&self, place: HashingPlace, password: Zeroizing<String>) -> Result<String, DomainError> {
        self.run(place, move |params, blocks| hash_blocking(blocks, params, &password))
            .await?
            .map_err(|_| DomainError::new(Reason::Internal))
    }

    /// Checks `password` against `stored` (or against a dummy hash when there is no user, to take the same time).
    pub async fn verify(&self, password: Zeroizing<String>, stored: Option<String>) -> Result<Verified, DomainError> {
        let place = self.reserve_now()?;
        self.verify_in(place, password, stored).await
    }

    /// [`PasswordHasher::verify`] in a place already reserved.
    pub async fn verify_in(
        &self,
        place: HashingPlace,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<Verified, DomainError> {
        let dummy = self.dummy_hash.clone();
        self.run(place, move |params, blocks| {
            let exists = stored.is_some();
            let phc = stored.unwrap_or_else(|| dummy.to_string());
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified { matches: false, rehash: None };
            };
            let matches = verify_blocking(blocks, &parsed, password.as_bytes()) && exists;
            let outdated = Params::try_from(&parsed).map_or(true, |old| {
                old.m_cost() < params.m_cost() || old.t_cost() < params.t_cost() || old.p_cost() != params.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            let rehash = (matches && outdated).then(|| hash_blocking(blocks, params, &password).ok()).flatten();
            Verified { matches, rehash }
        })
        .await
    }
}

/// A place in the hashing queue (running or waiting), held until the hash it was taken for is done.
#[derive(Debug)]
pub struct HashingPlace {
    /// Released (the place freed) when dropped.
    _permit: OwnedSemaphorePermit,
}

/// argon2 of `password` under `salt` into an output of `len` bytes, on a buffer from `pool` (what
/// `Argon2::hash_password` does, without allocating the working memory each time).
fn argon2_output(
    pool: &BlockPool,
    hasher: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &Salt<'_>,
    len: usize,
) -> Result<Output, argon2::password_hash::Error> {
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    let needed = params.block_count();
    let mut blocks = pool.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    let output = Output::init_with(len, |out| {
        Ok(hasher.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])?)
    });
    pool.lock().unwrap_or_else(|p| p.into_inner()).push(blocks);
    output
}

fn hash_blocking(pool: &BlockPool, params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = argon2_output(pool, &argon2(params), params, password.as_bytes(), &salt.as_salt(), len)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `password` matches the PHC hash (its own algorithm, version and parameters; `Output` compares in
/// constant time).
fn verify_blocking(pool: &BlockPool, parsed: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let Ok(version) = parsed.version.map_or(Ok(Version::V0x13), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(parsed) else { return false };
    let hasher = Argon2::new(algorithm, version, params.clone());
    argon2_output(pool, &hasher, &params, password, &salt, expected.len()).is_ok_and(|output| output == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify_and_upgrade() {
        let hasher = PasswordHasher::new(&PasswordConfig::default()).unwrap();
        let hash = hasher.hash(Zeroizing::new("correct horse".into())).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let ok = hasher.verify(Zeroizing::new("correct horse".into()), Some(hash.clone())).await.unwrap();
        assert_eq!(ok, Verified { matches: true, rehash: None });
        let bad = hasher.verify(Zeroizing::new("wrong horse".into()), Some(hash)).await.unwrap();
        assert!(!bad.matches);
        let missing = hasher.verify(Zeroizing::new("correct horse".into()), None).await.unwrap();
        assert!(!missing.matches);

        let weak =
            hash_blocking(&BlockPool::default(), &Params::new(8192, 1, 1, None).unwrap(), "correct horse").unwrap();
        let upgraded = hasher.verify(Zeroizing::new("correct horse".into()), Some(weak)).await.unwrap();
        assert!(upgraded.matches);
        assert!(upgraded.rehash.unwrap().contains("m=19456,t=2"));

        // Interoperable with the argon2 crate's own PHC hashing and verification, both ways.
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let theirs = argon2(&hasher.params)
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let ok = hasher.verify(Zeroizing::new("correct horse".into()), Some(theirs.clone())).await.unwrap();
        assert!(ok.matches);
        assert!(!hasher.verify(Zeroizing::new("correct horsE".into()), Some(theirs)).await.unwrap().matches);
        let ours = hasher.hash(Zeroizing::new("correct horse".into())).await.unwrap();
        assert!(argon2(&hasher.params).verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        // Buffers are reused, not multiplied: one per concurrent hash at most.
        assert!(hasher.blocks.lock().unwrap().len() <= 1);
    }

    #[tokio::test]
    async fn a_full_queue_waits_then_sheds_with_rate_limited() {
        use std::time::Duration;
        let config = PasswordConfig {
            hash_workers: Some(1),
            hash_queue: 0,
            queue_wait_milliseconds: 50,
            ..PasswordConfig::default()
        };
        let hasher = PasswordHasher::new(&config).unwrap();
        let place = hasher.reserve().await.unwrap();
        let busy = {
            let hasher = hasher.clone();
            // A job that keeps the only worker and place for 400 ms, whatever the machine's hashing speed.
            tokio::spawn(async move { hasher.run(place, |_, _| std::thread::sleep(Duration::from_millis(400))).await })
        };
        // The only place is taken: an admin hash is refused at once, a login after waiting its 50 ms.
        assert_eq!(hasher.hash(Zeroizing::new("password2".into())).await.unwrap_err().reason, Reason::RateLimited);
        let asked = std::time::Instant::now();
        assert_eq!(hasher.reserve().await.unwrap_err().reason, Reason::RateLimited);
        assert!(asked.elapsed() >= Duration::from_millis(50));
        // A login that may wait long enough gets the place as soon as the hash is done.
        let patient = PasswordHasher { queue_wait: Duration::from_secs(30), ..hasher.clone() };
        let place = patient.reserve().await.unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert!(patient.verify_in(place, Zeroizing::new("x".repeat(8)), None).await.is_ok());
        assert!(hasher.reserve().await.is_ok(), "room again once the hashes are done");
    }

    /// The hashing threads run at the lowest priority: nice 19, `SCHED_BATCH` (read back from /proc).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_the_lowest_priority() {
        let hasher =
            PasswordHasher::new(&PasswordConfig { hash_workers: Some(1), ..PasswordConfig::default() }).unwrap();
        let place = hasher.reserve().await.unwrap();
        let seen = hasher
            .run(place, |_, _| {
                let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
                // Fields after the command name (which is in parentheses): state is field 3, nice field 19,
                // policy field 41.
                let fields: Vec<String> =
                    stat.rsplit_once(')').unwrap().1.split_whitespace().map(str::to_owned).collect();
                (std::thread::current().name().map(str::to_owned), fields[19 - 3].clone(), fields[41 - 3].clone())
            })
            .await
            .unwrap();
        assert_eq!(seen.0.as_deref(), Some("callbox-hash-0"));
        assert_eq!(seen.1, "19", "nice");
        assert_eq!(seen.2, "3", "SCHED_BATCH");
    }

    #[test]
    fn password_lengths() {
        assert!(check_password_length("1234567").is_err());
        assert!(check_password_length("12345678").is_ok());
        assert!(check_password_length(&"x".repeat(1024)).is_ok());
        assert!(check_password_length(&"x".repeat(1025)).is_err());
    }
}
