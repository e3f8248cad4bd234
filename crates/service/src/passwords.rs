//! Users' password hashes: Argon2id in PHC strings, computed on a bounded pool of dedicated
//! threads.
//!
//! * Parameters default to OWASP's current minimum for Argon2id (19 MiB, 2 iterations, 1 lane)
//!   and may only be raised: [`Argon2Settings::validate`] refuses anything weaker, naming the
//!   minimum. A stored hash made with other parameters verifies as before and reports
//!   `needs_rehash`, so the sign-in that proves the password stores a fresh hash.
//! * Hashing is CPU- and memory-bound, so it never runs on the async executor: a fixed number of
//!   worker threads take jobs from a queue of fixed length. A job is admitted only while the
//!   work ahead of it (`(queued + running) x recent mean hash time / workers`, core's
//!   `admission` rule) is below `max_expected_wait_ms`, and the queue is not full; otherwise the
//!   caller gets [`PasswordError::Busy`] at once, with a `retry_after` estimate (the page answers
//!   503 with `Retry-After`), instead of waiting: a burst of sign-ins never starves the token
//!   endpoint, never makes requests pile up until they time out, and an admitted sign-in does not
//!   wait behind more work than the bound, however slow hashes are on this machine.
//! * [`PasswordHasher::verify`] of an account that does not exist (or has no password) verifies
//!   against a dummy hash made at start-up with the same parameters, so an unknown user costs the
//!   same as a wrong password and the two cannot be told apart by timing.
//!
//! * Verifications reuse the Argon2 working memory (`memory_kib`) of earlier ones instead of
//!   allocating and initialising it each time: with the process's allocator that was a fresh,
//!   zeroed and page-faulted 19 MiB per sign-in, about a fifth of a sign-in's CPU beside the hash
//!   itself (issue 16's sign-in benchmark). Argon2 writes every block before it reads it, so the
//!   previous contents do not matter; the spare memory is released when the pool has been idle
//!   for [`IDLE_RELEASE`], so a quiet node does not keep it.
//!
//! This module must never log, store or return a plaintext password, and never hash on the
//! caller's thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use portcullis_core::admission::{Admission, Admit, MeanHashTime};
use portcullis_core::password::{normalize, NewPassword};
use portcullis_core::secret::{constant_time_eq, Secret};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// OWASP Password Storage Cheat Sheet, Argon2id: m = 19 MiB, t = 2, p = 1.
pub const OWASP_MIN_MEMORY_KIB: u32 = 19 * 1024;
pub const OWASP_MIN_ITERATIONS: u32 = 2;
pub const OWASP_MIN_LANES: u32 = 1;
/// Upper bounds that keep a typo (an extra zero) from making every sign-in take minutes or the
/// pool allocate gigabytes.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_LANES: u32 = 64;

/// The `[passwords]` section: Argon2id parameters and the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Settings {
    /// Memory per hash in KiB (at least 19456).
    pub memory_kib: u32,
    /// Passes over the memory (at least 2).
    pub iterations: u32,
    /// Lanes (at least 1). The hash is computed on one thread whatever this says.
    pub lanes: u32,
    /// Hashing threads; 0 means one per CPU.
    pub workers: usize,
    /// Hashes waiting for a thread before callers are told to come back later (a hard cap).
    pub queue: usize,
    /// The longest wait a newly admitted hash may expect before a thread takes it, in
    /// milliseconds: `(queued + running) x mean hash time / workers` must stay below it.
    pub max_expected_wait_ms: u64,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: OWASP_MIN_MEMORY_KIB,
            iterations: OWASP_MIN_ITERATIONS,
            lanes: OWASP_MIN_LANES,
            workers: 0,
            queue: 64,
            max_expected_wait_ms: 700,
        }
    }
}

/// Why the password settings cannot be used. Each message names the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("passwords.memory_kib is {0}; the minimum is {OWASP_MIN_MEMORY_KIB} (OWASP, 19 MiB) and the maximum {MAX_MEMORY_KIB}")]
    Memory(u32),
    #[error("passwords.iterations is {0}; the minimum is {OWASP_MIN_ITERATIONS} (OWASP) and the maximum {MAX_ITERATIONS}")]
    Iterations(u32),
    #[error(
        "passwords.lanes is {0}; the minimum is {OWASP_MIN_LANES} and the maximum {MAX_LANES}"
    )]
    Lanes(u32),
    #[error("passwords.queue must be at least 1")]
    Queue,
    #[error("passwords.max_expected_wait_ms must be at least 1")]
    ExpectedWait,
    #[error("argon2 refused the parameters: {0}")]
    Argon2(String),
}

impl Argon2Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(OWASP_MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(SettingsError::Memory(self.memory_kib));
        }
        if !(OWASP_MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(SettingsError::Iterations(self.iterations));
        }
        if !(OWASP_MIN_LANES..=MAX_LANES).contains(&self.lanes) {
            return Err(SettingsError::Lanes(self.lanes));
        }
        if self.queue == 0 {
            return Err(SettingsError::Queue);
        }
        if self.max_expected_wait_ms == 0 {
            return Err(SettingsError::ExpectedWait);
        }
        self.params().map(|_| ())
    }

    fn params(&self) -> Result<Params, SettingsError> {
        Params::new(self.memory_kib, self.iterations, self.lanes, None)
            .map_err(|e| SettingsError::Argon2(e.to_string()))
    }

    fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// Why a hash or a verification did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Every worker is busy and the queue is full: try again after `retry_after`.
    #[error("password hashing is busy; retry after {retry_after:?}")]
    Busy { retry_after: Duration },
    /// The pool has stopped (shutting down).
    #[error("password hashing has stopped")]
    Stopped,
}

/// A stored password hash: an Argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
/// Not secret in the way a password is, but never shown: it prints redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl PasswordHashString {
    /// Wraps a stored PHC string (not checked here: [`PasswordHasher::verify`] treats an
    /// unreadable one as a mismatch).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString([redacted])")
    }
}

/// The outcome of checking a presented password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right; `needs_rehash` when the stored hash was made with other
    /// parameters (or another algorithm) than the current ones.
    Match { needs_rehash: bool },
    /// Wrong password, unknown user, no password set, or an unreadable stored hash: the caller
    /// cannot and must not tell these apart.
    Mismatch,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long the pool waits without a job before it releases its spare working memory.
pub const IDLE_RELEASE: Duration = Duration::from_secs(5);

/// Argon2 working memory kept between verifications: a job takes a buffer (at most one per
/// worker is ever in use) and puts it back; the spare ones are released when the pool is idle.
#[derive(Default)]
struct WorkingMemory {
    spare: Mutex<Vec<Vec<Block>>>,
}

impl WorkingMemory {
    /// A buffer of at least `blocks` blocks: a spare one (grown if it is too small), else new.
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut memory = self
            .spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        memory
    }

    fn give_back(&self, memory: Vec<Block>) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.push(memory);
        }
    }

    /// Frees the spare buffers (those in use are put back and freed at the next idle spell).
    fn release(&self) {
        if let Ok(mut spare) = self.spare.lock() {
            *spare = Vec::new();
        }
    }

    /// Blocks held in spare buffers.
    #[cfg(test)]
    fn spare_blocks(&self) -> usize {
        self.spare
            .lock()
            .map(|s| s.iter().map(Vec::len).sum())
            .unwrap_or(0)
    }
}

/// Whether `password` matches `hash`, as `argon2`'s `PasswordVerifier` decides it (algorithm,
/// version and parameters from the PHC string, output compared in constant time), computed in
/// reused working memory.
fn verify_in(memory: &WorkingMemory, password: &[u8], hash: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = vec![0u8; expected.len()];
    let mut blocks = memory.take(params.block_count());
    let done = Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password, salt, &mut computed, &mut blocks[..]);
    memory.give_back(blocks);
    done.is_ok() && constant_time_eq(&computed, expected.as_bytes())
}

/// Hashes and verifies passwords on a fixed pool of threads. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Argon2Settings,
    params: Params,
    jobs: SyncSender<Job>,
    workers: usize,
    /// A hash of a random password with the current parameters, verified against when there is
    /// no real hash to verify.
    dummy: PasswordHashString,
    /// Jobs run to completion, for tests and metrics.
    completed: AtomicU64,
    /// Moving average of a job's duration, in microseconds (core's `MeanHashTime`).
    average_micros: AtomicU64,
    /// Jobs admitted and not yet finished (queued or running).
    in_flight: AtomicU64,
    admission: Admission,
    memory: Arc<WorkingMemory>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("settings", &self.inner.settings)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Validates `settings`, starts the worker threads and computes the dummy hash (one hash's
    /// time, on the calling thread: call this at start-up, not in a request).
    pub fn start(settings: Argon2Settings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let params = settings.params()?;
        let workers = settings.workers();
        let (jobs, queue) = sync_channel::<Job>(settings.queue);
        let queue = Arc::new(Mutex::new(queue));
        let memory = Arc::new(WorkingMemory::default());
        for n in 0..workers {
            let queue = Arc::clone(&queue);
            let memory = Arc::clone(&memory);
            std::thread::Builder::new()
                .name(format!("pcl-argon2-{n}"))
                .spawn(move || work(&queue, &memory))
                .map_err(|e| {
                    SettingsError::Argon2(format!("cannot start a hashing thread: {e}"))
                })?;
        }
        let dummy = dummy_hash(&params)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                params,
                jobs,
                workers,
                dummy,
                completed: AtomicU64::new(0),
                average_micros: AtomicU64::new(50_000),
                in_flight: AtomicU64::new(0),
                admission: Admission {
                    max_expected_wait: Duration::from_millis(settings.max_expected_wait_ms),
                    workers: u64::try_from(workers).unwrap_or(u64::MAX),
                },
                memory,
            }),
        })
    }

    pub fn settings(&self) -> Argon2Settings {
        self.inner.settings
    }

    /// Jobs the pool has finished since it started (hashes and verifications, dummy ones
    /// included).
    pub fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// Hashes a password that passed the policy.
    pub async fn hash(&self, password: NewPassword) -> Result<PasswordHashString, PasswordError> {
        let params = self.inner.params.clone();
        self.run(move || hash_now(&params, password.expose()))
            .await?
            .map_err(|_| PasswordError::Stopped)
    }

    /// Hashes a password that was just verified against an outdated hash, with the current
    /// parameters (a sign-in's rehash). It skips the new-password rule on purpose: the user
    /// chose this password under the rule of its day, and refusing it here would lock them out.
    pub async fn rehash(
        &self,
        presented: &Secret<String>,
    ) -> Result<PasswordHashString, PasswordError> {
        let params = self.inner.params.clone();
        let normal = normalize(presented);
        self.run(move || hash_now(&params, normal.expose()))
            .await?
            .map_err(|_| PasswordError::Stopped)
    }

    /// Checks `presented` against `stored`; with no stored hash (unknown user, invited user
    /// without a password) it does the same work against the dummy hash and answers
    /// [`Verification::Mismatch`].
    pub async fn verify(
        &self,
        stored: Option<&PasswordHashString>,
        presented: &Secret<String>,
    ) -> Result<Verification, PasswordError> {
        let (hash, real) = match stored {
            Some(h) => (h.clone(), true),
            None => (self.inner.dummy.clone(), false),
        };
        let presented = normalize(presented);
        let current = self.inner.params.clone();
        let memory = Arc::clone(&self.inner.memory);
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(hash.as_str()) else {
                // An unreadable stored hash: spend the same time as a real check anyway.
                let salt = fresh_salt();
                let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, current.clone())
                    .hash_password(presented.expose().as_bytes(), &salt);
                return Verification::Mismatch;
            };
            let ok = verify_in(&memory, presented.expose().as_bytes(), &parsed);
            if ok && real {
                Verification::Match {
                    needs_rehash: differs(&parsed, &current),
                }
            } else {
                Verification::Mismatch
            }
        })
        .await
    }

    /// Whether `stored` was made with other parameters (or another algorithm or version) than
    /// the current ones, or cannot be read at all.
    pub fn needs_rehash(&self, stored: &PasswordHashString) -> bool {
        PasswordHash::new(stored.as_str())
            .map_or(true, |parsed| differs(&parsed, &self.inner.params))
    }

    /// Runs `f` on a worker, or says Busy at once when the queue is full.
    async fn run<R, F>(&self, f: F) -> Result<R, PasswordError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        self.submit(f)?.await.map_err(|_| PasswordError::Stopped)
    }

    /// Queues `f` without waiting (Busy when the queue is full); the receiver yields its result.
    fn submit<R, F>(&self, f: F) -> Result<tokio::sync::oneshot::Receiver<R>, PasswordError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Counted in before the decision, so concurrent callers cannot all be admitted on the
        // same reading; counted out again if refused.
        let ahead = self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        if let Admit::No { retry_after } = self.inner.admission.decide(ahead, self.mean()) {
            self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(PasswordError::Busy { retry_after });
        }
        let inner = Arc::clone(&self.inner);
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let out = f();
            let mean = MeanHashTime::from_micros(inner.average_micros.load(Ordering::Relaxed))
                .record(started.elapsed());
            inner
                .average_micros
                .store(mean.as_micros(), Ordering::Relaxed);
            inner.completed.fetch_add(1, Ordering::Relaxed);
            inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(out);
        });
        match self.inner.jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(PasswordError::Busy {
                        retry_after: self.retry_after(),
                    }),
                    TrySendError::Disconnected(_) => Err(PasswordError::Stopped),
                }
            }
        }
    }

    fn mean(&self) -> MeanHashTime {
        MeanHashTime::from_micros(self.inner.average_micros.load(Ordering::Relaxed))
    }

    /// Hashes admitted and not finished yet (queued or running).
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// How long until the queue has drained: queue length times a job's average time, spread
    /// over the workers, rounded up to whole seconds (what `Retry-After` carries), at least 1.
    fn retry_after(&self) -> Duration {
        let avg = self.inner.average_micros.load(Ordering::Relaxed);
        let queue = u64::try_from(self.inner.settings.queue).unwrap_or(u64::MAX);
        let workers = u64::try_from(self.inner.workers.max(1)).unwrap_or(1);
        let micros = avg.saturating_mul(queue.saturating_add(workers)) / workers;
        Duration::from_secs(micros.div_ceil(1_000_000).max(1))
    }
}

fn work(queue: &Mutex<Receiver<Job>>, memory: &WorkingMemory) {
    loop {
        let job = {
            let Ok(rx) = queue.lock() else { return };
            // Only the worker holding the queue waits on it, so one idle spell releases the
            // pool's spare memory once.
            match rx.recv_timeout(IDLE_RELEASE) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    memory.release();
                    continue;
                }
                // Every sender is gone: the hasher was dropped.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        job();
    }
}

fn fresh_salt() -> SaltString {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    // 16 bytes always encode: the only error is a salt outside 4..=64 bytes.
    SaltString::encode_b64(&bytes).expect("16 bytes is a valid salt length")
}

/// A hash no password is known to match, in the current parameters: a fresh salt and a random
/// output. Verifying against it is one real Argon2id computation, like a wrong password (the
/// unknown-user path), while making it computes nothing: a hash made at start-up left its
/// memory block (19 MiB at the default) resident in every idle server, users or not (measured:
/// idle RSS 39.8 MiB with it, against the 30 MB target).
fn dummy_hash(params: &Params) -> Result<PasswordHashString, SettingsError> {
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    rand::thread_rng().fill_bytes(&mut output);
    let salt = fresh_salt();
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e: argon2::password_hash::Error| SettingsError::Argon2(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(
            argon2::password_hash::Output::new(&output)
                .map_err(|e| SettingsError::Argon2(e.to_string()))?,
        ),
    };
    Ok(PasswordHashString(hash.to_string()))
}

fn hash_now(params: &Params, password: &str) -> Result<PasswordHashString, SettingsError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &fresh_salt())
        .map(|h| PasswordHashString(h.to_string()))
        .map_err(|e| SettingsError::Argon2(e.to_string()))
}

fn differs(parsed: &PasswordHash<'_>, current: &Params) -> bool {
    if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(parsed) {
        Ok(p) => {
            p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::password::{PasswordContext, PasswordPolicy};

    fn new_pw(s: &str) -> NewPassword {
        PasswordPolicy::default()
            .check(&Secret::new(s.to_owned()), PasswordContext::default())
            .expect("strong")
    }

    fn small_pool(workers: usize, queue: usize) -> PasswordHasher {
        PasswordHasher::start(Argon2Settings {
            workers,
            queue,
            ..Argon2Settings::default()
        })
        .expect("starts")
    }

    const PW: &str = "velvet orbit lantern quiz 42";

    #[test]
    fn verification_in_reused_memory_agrees_with_the_argon2_crate() {
        use argon2::PasswordVerifier as _;
        let memory = WorkingMemory::default();
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let smaller = Params::new(8 * 1024, 1, 1, None).expect("params");
        let current = Argon2Settings::default().params().expect("params");
        let stored: Vec<String> = [smaller, current.clone()]
            .into_iter()
            .map(|p| {
                Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
                    .hash_password(PW.as_bytes(), &salt)
                    .expect("hash")
                    .to_string()
            })
            .collect();
        // Small then large then small again: every verification after the first runs in memory
        // another one left its blocks in.
        for phc in stored.iter().chain(stored.iter().rev()) {
            let parsed = PasswordHash::new(phc).expect("phc");
            for (pw, right) in [(PW, true), ("velvet orbit lantern quiz 43", false)] {
                let by_crate = Argon2::default().verify_password(pw.as_bytes(), &parsed);
                assert_eq!(by_crate.is_ok(), right);
                assert_eq!(verify_in(&memory, pw.as_bytes(), &parsed), right, "{phc}");
            }
        }
        // A PHC string without an output verifies nothing.
        let bare = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg")
            .expect("phc");
        assert!(!verify_in(&memory, PW.as_bytes(), &bare));
        // One buffer, as large as the largest verification needed, was reused throughout.
        assert_eq!(memory.spare_blocks(), current.block_count());
        memory.release();
        assert_eq!(memory.spare_blocks(), 0);
    }

    #[tokio::test]
    async fn an_idle_pool_releases_its_spare_working_memory() {
        let h = small_pool(1, 4);
        let stored = h.hash(new_pw(PW)).await.expect("hashed");
        let ok = h
            .verify(Some(&stored), &Secret::new(PW.to_owned()))
            .await
            .expect("verified");
        assert_eq!(
            ok,
            Verification::Match {
                needs_rehash: false
            }
        );
        assert!(h.inner.memory.spare_blocks() > 0, "kept for the next one");
        let deadline = Instant::now() + IDLE_RELEASE + Duration::from_secs(10);
        while h.inner.memory.spare_blocks() > 0 {
            assert!(Instant::now() < deadline, "released after an idle spell");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_at_owasp_parameters_and_verify() {
        let h = small_pool(1, 4);
        let stored = h.hash(new_pw(PW)).await.expect("hashed");
        assert!(
            stored
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            stored.as_str()
        );
        assert_eq!(format!("{stored:?}"), "PasswordHashString([redacted])");
        let right = Secret::new(PW.to_owned());
        assert_eq!(
            h.verify(Some(&stored), &right).await,
            Ok(Verification::Match {
                needs_rehash: false
            })
        );
        let wrong = Secret::new("velvet orbit lantern quiz 43".to_owned());
        assert_eq!(
            h.verify(Some(&stored), &wrong).await,
            Ok(Verification::Mismatch)
        );
        // The presented password is normalised like a new one (NFKC): fullwidth digits match.
        let wide = Secret::new("velvet orbit lantern quiz ４２".to_owned());
        assert!(matches!(
            h.verify(Some(&stored), &wide).await,
            Ok(Verification::Match { .. })
        ));
        assert!(!h.needs_rehash(&stored));
    }

    #[test]
    fn settings_weaker_than_owasp_are_refused_naming_the_minimum() {
        let base = Argon2Settings::default();
        assert_eq!(base.validate(), Ok(()));
        let weak = Argon2Settings {
            memory_kib: 4096,
            ..base
        };
        let err = weak.validate().expect_err("too little memory");
        assert!(err.to_string().contains("19456"), "{err}");
        let err = Argon2Settings {
            iterations: 1,
            ..base
        }
        .validate()
        .expect_err("too few passes");
        assert!(err.to_string().contains("minimum is 2"), "{err}");
        assert!(Argon2Settings { lanes: 0, ..base }.validate().is_err());
        assert!(Argon2Settings { queue: 0, ..base }.validate().is_err());
        assert!(PasswordHasher::start(weak).is_err());
        // Stronger is fine.
        assert_eq!(
            Argon2Settings {
                memory_kib: 65536,
                iterations: 3,
                ..base
            }
            .validate(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_verifies_and_asks_for_a_rehash() {
        let old = small_pool(1, 4);
        let stronger = PasswordHasher::start(Argon2Settings {
            memory_kib: OWASP_MIN_MEMORY_KIB + 1024,
            workers: 1,
            ..Argon2Settings::default()
        })
        .expect("starts");
        let stored = old.hash(new_pw(PW)).await.expect("hashed");
        assert!(stronger.needs_rehash(&stored));
        assert_eq!(
            stronger
                .verify(Some(&stored), &Secret::new(PW.to_owned()))
                .await,
            Ok(Verification::Match { needs_rehash: true })
        );
        // Another algorithm, or garbage, also wants a rehash; garbage never matches.
        let argon2i =
            PasswordHashString::from_stored(stored.as_str().replacen("$argon2id$", "$argon2i$", 1));
        assert!(old.needs_rehash(&argon2i));
        let garbage = PasswordHashString::from_stored("not a hash".into());
        assert!(old.needs_rehash(&garbage));
        assert_eq!(
            old.verify(Some(&garbage), &Secret::new(PW.to_owned()))
                .await,
            Ok(Verification::Mismatch)
        );
    }

    /// Structural, not timed: an unknown user's check is a job on the pool like a real one (the
    /// dummy hash, with the current parameters), and answers like a wrong password.
    #[tokio::test]
    async fn an_unknown_user_costs_a_real_hash_and_looks_like_a_wrong_password() {
        let h = small_pool(1, 4);
        assert!(!h.needs_rehash(&h.inner.dummy), "dummy uses current params");
        let stored = h.hash(new_pw(PW)).await.expect("hashed");
        let wrong = Secret::new("not the password at all".to_owned());

        let before = h.completed();
        let a = h.verify(Some(&stored), &wrong).await;
        let after_wrong = h.completed();
        let b = h.verify(None, &wrong).await;
        let after_unknown = h.completed();
        assert_eq!(a, b);
        assert_eq!(a, Ok(Verification::Mismatch));
        assert_eq!(after_wrong - before, 1);
        assert_eq!(after_unknown - after_wrong, 1);
        // Even the dummy hash's own password does not make an unknown user match.
        assert_eq!(
            h.verify(None, &Secret::new(PW.to_owned())).await,
            Ok(Verification::Mismatch)
        );
    }

    #[tokio::test]
    async fn jobs_run_on_the_pool_threads_never_the_executor() {
        let h = small_pool(2, 4);
        let name = h
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("ran");
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("pcl-argon2-")),
            "{name:?}"
        );
    }

    #[tokio::test]
    async fn beyond_the_queue_callers_are_told_busy_at_once() {
        let h = small_pool(1, 1);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        // Occupy the one worker until released...
        let blocker = h
            .submit(move || {
                let _ = started_tx.send(());
                let _ = held.recv();
            })
            .expect("queued");
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the worker took the job");
        // ...fill the queue of one...
        let queued = h.submit(|| 7).expect("queued");
        // ...and the next caller is refused without waiting.
        let got = h.verify(None, &Secret::new(PW.to_owned())).await;
        let Err(PasswordError::Busy { retry_after }) = got else {
            panic!("expected Busy, got {got:?}");
        };
        assert!(retry_after >= Duration::from_secs(1));
        assert!(matches!(
            h.hash(new_pw(PW)).await,
            Err(PasswordError::Busy { .. })
        ));
        release.send(()).expect("release");
        blocker.await.expect("ran");
        assert_eq!(queued.await.expect("ran"), 7);
        // Drained: accepted again.
        assert_eq!(
            h.verify(None, &Secret::new(PW.to_owned())).await,
            Ok(Verification::Mismatch)
        );
    }

    /// Admission stops at the expected wait, long before a roomy queue is full: with the
    /// starting estimate of 50 ms a hash and one worker, a bound of 120 ms admits the running
    /// job and two behind it (100 ms ahead), and refuses the fourth (150 ms ahead).
    #[tokio::test]
    async fn admission_is_bounded_by_the_expected_wait_not_only_the_queue() {
        let h = PasswordHasher::start(Argon2Settings {
            workers: 1,
            queue: 64,
            max_expected_wait_ms: 120,
            ..Argon2Settings::default()
        })
        .expect("starts");
        // The dummy hash at start ran on the caller's thread: the estimate is still 50 ms.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let blocker = h
            .submit(move || {
                let _ = started_tx.send(());
                let _ = held.recv();
            })
            .expect("admitted");
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the worker took the job");
        let second = h.submit(|| 2).expect("50 ms ahead");
        let third = h.submit(|| 3).expect("100 ms ahead");
        assert_eq!(h.in_flight(), 3);
        let got = h.submit(|| 4);
        let Err(PasswordError::Busy { retry_after }) = got else {
            panic!("expected Busy at 150 ms ahead");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert_eq!(h.in_flight(), 3, "a refused job is not counted");
        release.send(()).expect("release");
        blocker.await.expect("ran");
        assert_eq!(second.await.expect("ran"), 2);
        assert_eq!(third.await.expect("ran"), 3);
        assert_eq!(h.in_flight(), 0);
    }

    #[test]
    fn a_zero_expected_wait_is_refused() {
        let s = Argon2Settings {
            max_expected_wait_ms: 0,
            ..Argon2Settings::default()
        };
        assert_eq!(s.validate(), Err(SettingsError::ExpectedWait));
    }
}
