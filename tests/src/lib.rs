//! Support for membus's integration tests: unique share names that are removed again,
//! the libmembus 2.1 fixtures, and the path of the `membus-peer` child-process binary.
//!
//! Every share a test makes is named `/membus-test-<pid>-<n>-<tag>` and removed by a
//! [`ShmGuard`] when the test ends (also when it fails), so tests run in parallel and leave
//! nothing in /dev/shm. CI checks that no `membus-test-` share survives a run.

use std::path::PathBuf;

/// The repository README's Rust snippets, compiled (not run) as doctests by
/// `cargo test --workspace`, so that every snippet a reader copies compiles.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeSnippets;
use std::sync::atomic::{AtomicU64, Ordering};

pub use serde_json;

pub mod mutate;
pub mod schema_types;

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

/// The folder with the pymembus 2.2.0 fixtures: `$MEMBUS_FIXTURES`, or the copy kept in
/// this repository at `tests/fixtures/libmembus-2.1`. Panics (failing the test) if it is
/// missing: fixture tests must never pass vacuously.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("MEMBUS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/libmembus-2.1")
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

/// The test payload for sequence number `seq`: 1 to 300 bytes whose content depends on
/// `seq`, so a reader can check that a delivered message is intact and is the one its
/// sequence number names.
pub fn payload(seq: u64) -> Vec<u8> {
    let len = 1 + (seq.wrapping_mul(7919) % 300) as usize;
    let mut v: Vec<u8> = (0..len)
        .map(|i| (seq as u8).wrapping_add(i as u8) ^ 0x5a)
        .collect();
    let tag = seq.to_le_bytes();
    let n = tag.len().min(len);
    v[..n].copy_from_slice(&tag[..n]);
    v
}

/// A raw POSIX mapping of a share, for tests and the peer binary that must poke at headers
/// the way a foreign (or crashing) process would. Unmapped on drop.
pub struct RawShare {
    ptr: *mut u8,
    len: usize,
}

impl RawShare {
    /// Maps `name` read-write.
    pub fn open(name: &str) -> std::io::Result<RawShare> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid NUL-terminated name.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: zeroed stat is valid; fd is open.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open and st writable.
        let rc = unsafe { libc::fstat(fd, &mut st) };
        let len = st.st_size as usize;
        let ptr = if rc == 0 && len > 0 {
            // SAFETY: fresh shared mapping of an open descriptor.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            }
        } else {
            libc::MAP_FAILED
        };
        // SAFETY: fd is ours to close; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(RawShare {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mapping a 0-byte object fails).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer to byte `off` (panics when out of bounds: test code).
    pub fn at(&self, off: usize) -> *mut u8 {
        assert!(off < self.len, "offset {off} outside {}", self.len);
        // SAFETY: off < len, inside the mapping.
        unsafe { self.ptr.add(off) }
    }

    /// Stores i64 `v` at `off` (little-endian, volatile).
    pub fn put_i64(&self, off: usize, v: i64) {
        assert!(off + 8 <= self.len);
        // SAFETY: in bounds; volatile so the store happens even if the process dies next.
        unsafe { std::ptr::write_volatile(self.at(off).cast::<[u8; 8]>(), v.to_le_bytes()) }
    }

    /// Loads the i64 at `off`.
    pub fn get_i64(&self, off: usize) -> i64 {
        assert!(off + 8 <= self.len);
        // SAFETY: in bounds.
        i64::from_le_bytes(unsafe { std::ptr::read_volatile(self.at(off).cast::<[u8; 8]>()) })
    }
}

impl Drop for RawShare {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Spawns the child binary `bin` with `args`, its stdout piped.
pub fn spawn(bin: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

/// Reads one line from a child's piped stdout, trimmed.
pub fn first_line(child: &mut std::process::Child) -> String {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut s = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut s)
        .expect("read child stdout");
    s.trim().to_string()
}

/// Has a `membus-peer` child lock the mutex at `mutex_offset` of `name` and die (SIGKILL)
/// holding it; returns once the child is dead.
pub fn kill_holding_lock(peer: &std::path::Path, name: &str, mutex_offset: usize) {
    let mut child = spawn(peer, &["lock-and-die", name, &mutex_offset.to_string()]);
    assert_eq!(first_line(&mut child), "locked");
    assert!(
        !child.wait().expect("wait child").success(),
        "the child should have been killed"
    );
}

/// `Received::Message` with a text payload, for assertions.
pub fn msg(seq: u64, text: &str) -> membus::Received<Vec<u8>> {
    membus::Received::Message {
        seq,
        payload: text.as_bytes().to_vec(),
    }
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

/// Fills a 640×480 rgb24 test frame for sequence number `seq`: every byte `seq % 251`,
/// except the first 8 bytes of each row, which hold `seq` (little-endian); vpts = seq.
///
/// # Errors
/// As for the frame accessors.
pub fn video_frame(seq: u64, f: &mut membus::memvid::FrameMut<'_>) -> membus::Result<()> {
    f.fill((seq % 251) as u8)?;
    for y in 0..480 {
        f.row_mut::<u8>(y)?[..8].copy_from_slice(&seq.to_le_bytes());
    }
    f.set_vpts(seq as i64);
    Ok(())
}

/// Checks a copied 640×480 rgb24 frame against [`video_frame`]'s pattern.
pub fn video_frame_ok(seq: u64, bytes: &[u8]) -> bool {
    bytes.len() == 640 * 480 * 3
        && bytes.chunks(640 * 3).all(|row| {
            row[..8] == seq.to_le_bytes() && row[8..].iter().all(|&b| b == (seq % 251) as u8)
        })
}

/// Per-record fields of [`packet`].
pub struct PacketMeta {
    /// The record's metadata bytes.
    pub meta: Vec<u8>,
    /// Its track.
    pub track: i64,
}

impl PacketMeta {
    /// As the writer's per-record fields (pts = track · 10).
    pub fn as_record(&self) -> membus::mempkt::RecordMeta<'_> {
        membus::mempkt::RecordMeta {
            kind: membus::mempkt::PktKind::Data,
            track: self.track,
            pts: self.track * 10,
            meta: &self.meta,
        }
    }
}

/// The test record for `seq`: a pseudo-random size of 1 to 12,000 bytes whose content,
/// metadata and track derive from `seq`.
pub fn packet(seq: u64) -> (Vec<u8>, PacketMeta) {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let len = 1 + (x % 12_000) as usize;
    let payload: Vec<u8> = (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    let meta = format!("rec-{seq}").into_bytes();
    (
        payload,
        PacketMeta {
            meta,
            track: (seq % 7) as i64,
        },
    )
}

/// Which of three sources (0 memmsg, 1 memkv, 2 memvid) carries event `i` of the
/// cross-process select test: a fixed pseudo-random sequence both processes compute.
pub fn select_source(i: u64) -> usize {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((x ^ (x >> 31)) % 3) as usize
}

/// A small gray8 memvid writer (8×4, 8 slots) for tests that need a media source.
pub fn tiny_video(name: &str) -> membus::memvid::VideoWriter {
    membus::memvid::VideoWriter::create(
        name,
        &membus::memvid::VideoParams::new(8, 4, membus::layout::media::VideoFormat::Gray8, 200, 8),
    )
    .unwrap()
}

/// Small stereo s16le memaud parameters (48 kHz, 100 buffers/s, 4 slots) for tests that need
/// an audio source.
pub fn small_audio_params() -> membus::memaud::AudioParams {
    membus::memaud::AudioParams::new(2, membus::layout::media::AudioFormat::S16le, 48_000, 100, 4)
}
