//! The bare Argon2id verification rate on this machine, for the sign-in benchmark
//! (`bench/run --scenario sign_in`): the ceiling a password sign-in cannot beat, measured with
//! the same crate and parameters the hashing pool uses, on as many threads as the pool has.
//!
//!     cargo run --release -p portcullis-service --example argon2_rate -- SECONDS [THREADS]
//!
//! Prints one JSON object: `{"verifies_per_sec": ..., "threads": ..., "memory_kib": ...}`.
//! Parameters are the `[passwords]` defaults (OWASP: 19 MiB, 2 iterations, 1 lane).

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use portcullis_service::passwords::Argon2Settings;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let settings = Argon2Settings::default();
    let params = Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.lanes,
        None,
    )
    .expect("the default parameters are valid");
    let salt = SaltString::from_b64("YmVuY2gtc2FsdC0xMjM0NQ").expect("salt");
    let stored = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"velvet orbit lantern quiz 42", &salt)
        .expect("hash")
        .to_string();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let stored = stored.as_str();
                scope.spawn(move || {
                    let parsed = PasswordHash::new(stored).expect("parse");
                    let mut n = 0u64;
                    while Instant::now() < until {
                        Argon2::default()
                            .verify_password(b"velvet orbit lantern quiz 42", &parsed)
                            .expect("the password matches");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = counts.iter().sum();
    println!(
        "{{\"verifies_per_sec\": {:.2}, \"threads\": {threads}, \"memory_kib\": {}, \"iterations\": {}}}",
        total as f64 / elapsed,
        settings.memory_kib,
        settings.iterations
    );
}
