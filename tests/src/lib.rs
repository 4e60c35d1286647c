//! Support for membus's integration tests: unique share names that are removed again,
//! the libmembus 2.1 fixtures, and the path of the `membus-peer` child-process binary.
//!
//! Every share a test makes is named `/membus-test-<pid>-<n>-<tag>` and removed by a
//! [`ShmGuard`] when the test ends (also when it fails), so tests run in parallel and leave
//! nothing in /dev/shm. CI checks that no `membus-test-` share survives a run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub use serde_json;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A share name unique to this process and call, e.g. `/membus-test-4242-7-ring`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/membus-test-{}-{n}-{tag}", std::process::id())
}

/// Removes its share name on drop (ignoring "already gone").
#[must_use]
pub struct ShmGuard(pub String);

impl ShmGuard {
    /// A fresh unique name with a guard that removes it.
    pub fn new(tag: &str) -> ShmGuard {
        ShmGuard(unique_name(tag))
    }

    /// The guarded name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = membus::remove(self.0.as_str());
    }
}

/// The folder with the pymembus 2.2.0 fixtures: `$MEMBUS_FIXTURES`, or
/// `shared/fixtures/libmembus-2.1` beside the repository. Panics (failing the test) if
/// it is missing: fixture tests must never pass vacuously.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("MEMBUS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/libmembus-2.1")
        });
    assert!(
        dir.join("manifest.json").is_file(),
        "fixtures not found at {} (set MEMBUS_FIXTURES)",
        dir.display()
    );
    dir
}

/// `manifest.json` parsed.
pub fn manifest() -> serde_json::Value {
    let text =
        std::fs::read_to_string(fixtures_dir().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

/// The manifest entry for fixture `file`.
pub fn fixture_entry(file: &str) -> serde_json::Value {
    manifest()["fixtures"]
        .as_array()
        .expect("fixtures array")
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in manifest.json"))
        .clone()
}

/// The raw bytes of fixture `file`.
pub fn fixture_bytes(file: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(file)).unwrap_or_else(|e| panic!("read fixture {file}: {e}"))
}

/// Copies raw `bytes` into a new share under a unique name, as if a libmembus process had
/// made it, and returns the guard for that name.
pub fn install_share(tag: &str, bytes: &[u8]) -> ShmGuard {
    let guard = ShmGuard::new(tag);
    let path = format!("/dev/shm{}", guard.name());
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {path}: {e}"));
    guard
}

/// Installs fixture `file` into /dev/shm under a unique name.
pub fn install_fixture(file: &str) -> ShmGuard {
    install_share(file.trim_end_matches(".bin"), &fixture_bytes(file))
}

/// The raw bytes of a share as they are now in /dev/shm.
pub fn share_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("/dev/shm{name}")).unwrap_or_else(|e| panic!("read share {name}: {e}"))
}

/// Path of the `membus-peer` child-process binary; usable in this package's integration
/// tests, for which cargo builds it.
#[macro_export]
macro_rules! peer_bin {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_membus-peer"))
    };
}

/// Little-endian i64 at `off` in `bytes`.
pub fn le_i64(bytes: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
}

/// The typed store shared by the cross-process memkv test and its `membus-kv-peer` child:
/// every batch sets `a`, `b`, `c` and `round` to the same number; the parent acknowledges
/// rounds in `ack`.
#[derive(membus::MemKv, Debug, Clone, PartialEq)]
pub struct Counters {
    /// Round number.
    pub a: u64,
    /// Round number.
    pub b: u64,
    /// Round number, signed.
    pub c: i64,
    /// Round number.
    pub round: u32,
    /// The last round the parent has seen (written by the parent).
    pub ack: u32,
}

/// Path of the `membus-kv-peer` child-process binary (for this package's integration tests).
#[macro_export]
macro_rules! kv_peer_bin {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_membus-kv-peer"))
    };
}
