//! Crash points for fault-injection tests: in debug builds, setting
//! `PORTCULLIS_INSECURE_CRASH_POINT=<name>` aborts the process at the named point, as a
//! `kill -9` would, so tests can prove start-up is crash-safe at exactly that step.
//! Release builds compile this to nothing.

#[cfg(debug_assertions)]
pub fn crash_point(name: &str) {
    if std::env::var("PORTCULLIS_INSECURE_CRASH_POINT").as_deref() == Ok(name) {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn crash_point(_name: &str) {}
