//! argon2id password hashing on blocking threads, behind a bounded queue.
//!
//! Hashing is deliberately slow, so it never runs on the async runtime: at most `workers` hashes run at once on
//! tokio's blocking pool, at most `queue` more wait, and beyond that a login is refused with `rate_limited`
//! instead of stalling everything else.

use crate::config::PasswordConfig;
use crate::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use callbox_core::Reason;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Shortest password accepted, bytes.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest password accepted, bytes (refused above, never truncated).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password's length.
pub fn check_password_length(password: &str) -> Result<(), ApiError> {
    if (MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&password.len()) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::InvalidPassword))
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
    workers: Arc<Semaphore>,
    waiting_room: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that both cases cost the same time.
    dummy_hash: Arc<str>,
    /// argon2's working memory (19 MiB a hash), reused: at most one buffer per concurrent hash ever exists.
    /// Allocating it per hash made glibc keep a freed 19 MiB heap in each blocking thread's arena, and the
    /// server's RSS climbed from 12 MiB to over 220 MiB after a few seconds of logins (docs/benchmarks.md).
    blocks: BlockPool,
}

type BlockPool = Arc<Mutex<Vec<Vec<Block>>>>;

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_kib", &self.params.m_cost())
            .field("t", &self.params.t_cost())
            .field("workers_free", &self.workers.available_permits())
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
        Ok(Self {
            blocks,
            params,
            workers: Arc::new(Semaphore::new(workers)),
            waiting_room: Arc::new(Semaphore::new(workers + config.hash_queue)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// `rate_limited` at once when no hashing place is free: a login flood is then shed before it costs any
    /// database work (the places are taken for real, and checked again, when the hash runs).
    pub fn ensure_room(&self) -> Result<(), ApiError> {
        if self.waiting_room.available_permits() == 0 {
            metrics::counter!("callbox_password_queue_rejections_total").increment(1);
            return Err(ApiError::retry_after(Reason::RateLimited, 1));
        }
        Ok(())
    }

    /// Runs `job` on a blocking thread once a worker is free; `rate_limited` when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Params, &BlockPool) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _place = self.waiting_room.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("callbox_password_queue_rejections_total").increment(1);
            ApiError::retry_after(Reason::RateLimited, 1)
        })?;
        let _worker = self.workers.clone().acquire_owned().await.map_err(|_| ApiError::new(Reason::Internal))?;
        let (params, blocks) = (self.params.clone(), self.blocks.clone());
        tokio::task::spawn_blocking(move || job(&params, &blocks)).await.map_err(|_| ApiError::new(Reason::Internal))
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, ApiError> {
        self.run(move |params, blocks| hash_blocking(blocks, params, &password))
            .await?
            .map_err(|_| ApiError::new(Reason::Internal))
    }

    /// Checks `password` against `stored` (or against a dummy hash when there is no user, to take the same time).
    pub async fn verify(&self, password: Zeroizing<String>, stored: Option<String>) -> Result<Verified, ApiError> {
        let dummy = self.dummy_hash.clone();
        self.run(move |params, blocks| {
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
    async fn a_full_queue_sheds_with_rate_limited() {
        let config = PasswordConfig { hash_workers: Some(1), hash_queue: 0, ..PasswordConfig::default() };
        let hasher = PasswordHasher::new(&config).unwrap();
        let busy = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(Zeroizing::new("password1".into())).await })
        };
        tokio::task::yield_now().await;
        // Give the first job time to take the only place.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(hasher.ensure_room().unwrap_err().reason, Reason::RateLimited, "shed before any other work");
        let shed = hasher.hash(Zeroizing::new("password2".into())).await;
        assert_eq!(shed.unwrap_err().reason, Reason::RateLimited);
        assert!(busy.await.unwrap().is_ok());
        assert!(hasher.ensure_room().is_ok(), "room again once the hash is done");
    }

    #[test]
    fn password_lengths() {
        assert!(check_password_length("1234567").is_err());
        assert!(check_password_length("12345678").is_ok());
        assert!(check_password_length(&"x".repeat(1024)).is_ok());
        assert!(check_password_length(&"x".repeat(1025)).is_err());
    }
}
