//! Crash points for the crash-in-the-middle tests. `TUTELA_TEST_CRASH_AT=NAME:N` makes the
//! process abort, as a power cut would stop it, at the Nth time it passes point NAME. Unset,
//! a point costs one relaxed atomic load.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "test-hooks")]
use std::sync::OnceLock;

pub const ENV: &str = "TUTELA_TEST_CRASH_AT";

#[cfg(feature = "test-hooks")]
static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
#[cfg(feature = "test-hooks")]
static HITS: AtomicU64 = AtomicU64::new(0);

#[cfg(feature = "test-hooks")]
fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (name, n) = v.rsplit_once(':').unwrap_or((v.as_str(), "1"));
        Some((name.to_string(), n.parse().ok()?))
    })
}

/// `TUTELA_TEST_PAUSE_AT=NAME:MS`: every pass of point NAME sleeps MS milliseconds (to make
/// a long operation long enough for a test to act in the middle of it).
pub const PAUSE_ENV: &str = "TUTELA_TEST_PAUSE_AT";

#[cfg(feature = "test-hooks")]
static PAUSE: OnceLock<Option<(String, u64)>> = OnceLock::new();

#[cfg(feature = "test-hooks")]
fn pause() -> &'static Option<(String, u64)> {
    PAUSE.get_or_init(|| {
        let v = std::env::var(PAUSE_ENV).ok()?;
        let (name, ms) = v.rsplit_once(':')?;
        Some((name.to_string(), ms.parse().ok()?))
    })
}

/// Aborts here if this is the chosen point and pass (and pauses if asked). Without the
/// `test-hooks` feature (release builds) it does nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Aborts here if this is the chosen point and pass (and pauses if asked).
#[cfg(feature = "test-hooks")]
pub fn point(name: &str) {
    if let Some((want, ms)) = pause() {
        if want == name {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
    }
    if let Some((want, n)) = target() {
        if want == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            eprintln!("tutela: test crash at {name}:{n}");
            std::process::abort();
        }
    }
}
