//! memkv: a fixed-schema key/value store of named string slots, byte-compatible
//! with libmembus 2.1 and pymembus 2.2.
//!
//! The creator fixes the number of slots and the name and value limits, names the slots,
//! then publishes the store. Writers take the share's mutex and update one slot or a batch
//! of slots under one epoch; readers never lock: each slot is a seqlock.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::memkv::MemKv;
//!
//! # fn main() -> membus::Result<()> {
//! let kv = MemKv::create_named("/camera", &["mode", "count"], 14, 64)?;
//! kv.set_by_name("mode", "auto")?;
//! kv.set_many(&[(0, "manual".as_bytes()), (1, b"42")])?;
//!
//! let peer = MemKv::attach("/camera")?;
//! assert_eq!(peer.get(1)?.value, b"42");
//! let snap = peer.snapshot()?;
//! if let Some(epoch) = peer.wait_for_change(snap.epoch, Duration::from_secs(1))? {
//!     for change in peer.changed_since(snap.epoch)?.changes {
//!         println!("slot {} is now {:?} (epoch {epoch})", change.index, change.value);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Differences from libmembus that a peer cannot observe on the wire: slot strides are
//! always a multiple of 8 (V is rounded up) and misaligned C++ stores are refused;
//! readers spin with a pause and yield and report a stuck writer as `stale`; name
//! lookup is exact; names and values with NUL bytes are refused; the slot count is
//! read once at attach and validated against the mapping; a snapshot is consistent
//! (it falls back to the lock instead of returning a torn best effort); waits loop over
//! spurious wake-ups until their deadline; a peer that died holding the lock is
//! recovered from.

use std::sync::atomic::{fence, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{explain_wrong_type, Error, ErrorKind, Result};
use crate::layout::identify::ShareType;
use crate::layout::kv::{
    until_nul, KvLayout, COND_SIZE, MUTEX_SIZE, OFF_COND, OFF_COUNT, OFF_EPOCH, OFF_ID,
    OFF_MAX_NAME, OFF_MAX_VALUE, OFF_MUTEX, SLOT_LAST_EPOCH, SLOT_NAME, SLOT_SEQ,
};
use crate::name::{IntoShareName, ShareName};
use crate::sys::copy::{
    copy_from_shared, copy_to_shared, read_cstr_from_shared, write_padded_to_shared,
};
use crate::sys::pthread::{LockGuard, LockPair};
use crate::sys::shm::{Access, Replace, Segment, SharedSegment};
use crate::wait::CondWaits;

/// libmembus's lock deadline.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an attacher waits for a live membus creator to publish the header.
const INIT_WAIT: Duration = Duration::from_millis(500);
/// Read attempts per value before it is reported stale (libmembus: 1000).
const READ_ATTEMPTS: u32 = 1000;
/// Attempts that only pause the CPU before a reader starts yielding its time slice. These
/// are made even when the call's time budget is spent, so a slot that is merely busy is
/// still read.
const SPIN_ATTEMPTS: u32 = 64;
/// Lock-free snapshot passes before a snapshot takes the lock instead.
const SNAPSHOT_PASSES: u32 = 100;
/// Time budget of the lock-free retries of one read call (`get`, `get_into`, `snapshot`'s
/// lock-free passes, `changed_since`): past it, a slot whose seq stays odd (a writer died
/// mid-write, or a hostile peer) is reported stale instead of stalling the caller.
const READ_BUDGET: Duration = Duration::from_millis(1);

/// Options for memkv handles. `KvOptions::new()` gives libmembus's defaults except for the
/// creation mode, which is owner-only.
#[derive(Clone, Debug)]
pub struct KvOptions {
    pub(crate) mode: u32,
    pub(crate) lock_timeout: Duration,
    pub(crate) replace_stale: bool,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions {
            mode: 0o600,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            replace_stale: false,
        }
    }
}

impl KvOptions {
    /// The defaults: mode 0600, 5 s lock deadline, replace only a stale share membus made.
    pub fn new() -> KvOptions {
        KvOptions::default()
    }

    /// Permission bits for a share this handle creates. Default 0o600; libmembus uses 0o644.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How long to wait for the share's lock before [`ErrorKind::LockTimeout`]. Default 5 s.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// On create, also replace an existing store that libmembus or pymembus made, as long as
    /// no live membus process owns it (see [`has_live_owner`](crate::has_live_owner)).
    /// Default false.
    ///
    /// Whatever this says, a create replaces a store that membus created and whose creator
    /// has died (a restart after a crash just works), and never replaces one whose membus
    /// creator is alive. A store made by libmembus or pymembus carries no owner lock, so
    /// membus cannot tell whether it is in use; by default it is reported
    /// ([`ErrorKind::CreateFailed`]), and this option says "it is not, replace it".
    #[must_use]
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }
}

/// One value read lock-free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The value bytes up to the first NUL (empty for a never-written slot).
    pub value: Vec<u8>,
    /// True when every read attempt overlapped a write, for 1,000 attempts or about 1 ms (a
    /// writer seems stuck or died mid-write, leaving the slot's seq odd): `value` is then
    /// the last, possibly torn, copy.
    pub stale: bool,
}

/// A consistent copy of every slot's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The epoch the values belong to: every batch up to it and none after it.
    pub epoch: i64,
    /// Value of slot `i` at index `i`.
    pub values: Vec<Vec<u8>>,
}

/// One changed slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Slot index.
    pub index: usize,
    /// The slot's epoch (the batch that last wrote it).
    pub epoch: i64,
    /// The value now.
    pub value: Vec<u8>,
    /// True when every read attempt overlapped a write, until the call's read budget (about
    /// 1 ms) was spent (a writer seems stuck or died mid-write): `value` and `epoch` are then
    /// the last, possibly torn, copy.
    pub stale: bool,
}

/// The slots changed since some epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The store's epoch when the scan started: pass it to the next call.
    pub epoch: i64,
    /// Changed slots in index order. A change may be reported twice, never lost.
    pub changes: Vec<Change>,
}

/// A handle on a memkv share. Creating it creates the share; dropping the creator removes
/// the name (if it still refers to this share).
pub struct MemKv {
    /// Reference-counted so the foreign-waiter broadcaster can keep using the mapping; only
    /// the `primary` (user's) handle gives up the name on drop.
    seg: SharedSegment,
    layout: KvLayout,
    lock: LockPair,
    lock_timeout: Duration,
    waits: CondWaits,
    /// Mapped read-only ([`KvReader`]): never locks, never writes.
    read_only: bool,
}

impl std::fmt::Debug for MemKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemKv")
            .field("name", &self.seg.name())
            .field("layout", &self.layout)
            .finish()
    }
}

impl MemKv {
    fn from_segment(seg: Segment, layout: KvLayout, opts: &KvOptions) -> Result<MemKv> {
        let bad = || {
            Error::new(ErrorKind::InvalidLayout, "memkv header out of bounds")
                .with_share(seg.name().as_str())
        };
        if layout.object_size() > seg.len() {
            return Err(Error::new(
                ErrorKind::InvalidLayout,
                format!(
                    "the memkv layout needs {} bytes, more than the object's {}",
                    layout.object_size(),
                    seg.len()
                ),
            )
            .with_share(seg.name().as_str())
            .with_sizes(layout.object_size() as u64, seg.len() as u64));
        }
        let mutex = seg.range(OFF_MUTEX, MUTEX_SIZE).ok_or_else(bad)?;
        let cond = seg.range(OFF_COND, COND_SIZE).ok_or_else(bad)?;
        // SAFETY: both ranges were bounds-checked above and are 8-byte aligned (page-aligned
        // mapping, offsets 40 and 80); they live in `seg`, which every MemKv holding this
        // LockPair (or a clone of it) keeps alive through its SharedSegment.
        let lock = unsafe { LockPair::new(mutex, cond) };
        let seg_writable = seg.is_writable();
        let seg = SharedSegment::new(seg);
        let waits = CondWaits::new(&seg, &lock);
        Ok(MemKv {
            seg,
            layout,
            lock,
            lock_timeout: opts.lock_timeout,
            waits,
            read_only: !seg_writable,
        })
    }

    /// Creates the store `name` with `count` unnamed slots (owner-only mode). Name them with
    /// [`set_name`](Self::set_name), or use [`create_named`](Self::create_named), which
    /// names them before the store is published.
    ///
    /// `max_value_len` is rounded up so the slot stride `18 + N + V` is a multiple of 8;
    /// [`max_value_len`](Self::max_value_len) reports the effective limit.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a bad name, a zero limit, or a layout whose size
    /// overflows an i64 (checked before anything is allocated);
    /// [`ErrorKind::CreateFailed`] when the name exists or /dev/shm cannot hold the store.
    pub fn create(
        name: impl IntoShareName,
        count: usize,
        max_name_len: usize,
        max_value_len: usize,
    ) -> Result<MemKv> {
        // No per-slot allocation: the layout is checked first, so an absurd count is an
        // error, never a huge allocation.
        Self::create_inner(
            name.into_share_name()?,
            count,
            &[],
            None,
            max_name_len,
            max_value_len,
            &KvOptions::new(),
        )
    }

    /// Creates the store with one slot per entry of `names`, named before the store is
    /// published, so no attacher ever sees an unnamed slot.
    ///
    /// # Errors
    /// As for [`create`](Self::create), and [`ErrorKind::InvalidArgument`] /
    /// [`ErrorKind::MessageTooLarge`] for a name with a NUL byte or longer than
    /// `max_name_len`.
    pub fn create_named(
        name: impl IntoShareName,
        names: &[&str],
        max_name_len: usize,
        max_value_len: usize,
    ) -> Result<MemKv> {
        Self::create_with(name, names, max_name_len, max_value_len, &KvOptions::new())
    }

    /// [`create_named`](Self::create_named) with options (mode, lock timeout, replacing a
    /// stale share).
    ///
    /// # Errors
    /// As for [`create_named`](Self::create_named). With
    /// [`replace_stale`](KvOptions::replace_stale), an existing share with a live membus
    /// owner still gives [`ErrorKind::CreateFailed`].
    pub fn create_with(
        name: impl IntoShareName,
        names: &[&str],
        max_name_len: usize,
        max_value_len: usize,
        opts: &KvOptions,
    ) -> Result<MemKv> {
        Self::create_inner(
            name.into_share_name()?,
            names.len(),
            names,
            None,
            max_name_len,
            max_value_len,
            opts,
        )
    }

    /// Creates the store with `count` slots, the first `names.len()` of them named (callers
    /// pass no names or one per slot) and, if given, initial values (one per slot), all
    /// written before the store is published; initial values form batch 1.
    pub(crate) fn create_inner(
        name: ShareName,
        count: usize,
        names: &[&str],
        values: Option<&[&[u8]]>,
        max_name_len: usize,
        max_value_len: usize,
        opts: &KvOptions,
    ) -> Result<MemKv> {
        let layout = KvLayout::new(count as u64, max_name_len as u64, max_value_len as u64)
            .map_err(|e| e.with_share(name.as_str()))?;
        if !names.is_empty() && names.len() != count {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "either no slot names or one per slot are needed",
            )
            .with_share(name.as_str())
            .with_sizes(count as u64, names.len() as u64));
        }
        for n in names {
            layout
                .check_name(n.as_bytes())
                .map_err(|e| e.with_share(name.as_str()))?;
        }
        let replace = if opts.replace_stale {
            Replace::AnyStale
        } else {
            Replace::StaleMembus
        };
        let seg = Segment::create_replacing(&name, layout.object_size(), opts.mode, replace)?;
        let kv = MemKv::from_segment(seg, layout, opts)?;
        // The object is fresh and zero-filled: epoch 0, every seq and lastEpoch 0, every
        // name and value empty. Set N, V, the id, the names and the lock pair; publish the
        // count last.
        kv.header(OFF_MAX_NAME)
            .store(layout.max_name_len() as i64, Ordering::Relaxed);
        kv.header(OFF_MAX_VALUE)
            .store(layout.max_value_len() as i64, Ordering::Relaxed);
        kv.header(OFF_ID)
            .store(crate::sys::random_session_id(), Ordering::Relaxed);
        for (i, n) in names.iter().enumerate() {
            kv.write_name(i, n.as_bytes())?;
        }
        if let Some(values) = values {
            if values.len() != count {
                return Err(kv
                    .err(
                        ErrorKind::InvalidArgument,
                        format!(
                            "one initial value per slot is needed: {} slots, {} values",
                            names.len(),
                            values.len()
                        ),
                    )
                    .with_sizes(count as u64, values.len() as u64));
            }
            for (i, v) in values.iter().enumerate() {
                kv.layout
                    .check_value(v)
                    .map_err(|e| e.with_share(name.as_str()))?;
                kv.write_slot(i, v, 1)?;
            }
            kv.header(OFF_EPOCH).store(1, Ordering::Relaxed);
        }
        // SAFETY: nobody else uses the lock pair yet: the count word is still 0, and every
        // attacher (membus, libmembus and pymembus) refuses a header whose count is ≤ 0.
        unsafe { kv.lock.init(true) }.map_err(|e| {
            Error::new(
                ErrorKind::CreateFailed,
                "initialising the share's mutex and condition",
            )
            .with_share(name.as_str())
            .with_os_error(e)
        })?;
        // Release: publishes N, V, the id, the names and the lock pair; pairs with the
        // Acquire load of the count word in `attach_once`.
        kv.header(OFF_COUNT)
            .store(layout.count() as i64, Ordering::Release);
        Ok(kv)
    }

    /// Attaches to an existing store (libmembus's `open(name)`).
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`] when it does not exist, [`ErrorKind::MapFailed`] for an
    /// empty object, [`ErrorKind::InvalidLayout`] for a header that is not a valid memkv
    /// header for the object's size, including a slot stride that is not a multiple of 8.
    pub fn attach(name: impl IntoShareName) -> Result<MemKv> {
        Self::attach_with(name, &KvOptions::new())
    }

    /// [`attach`](Self::attach) with options (lock timeout).
    ///
    /// # Errors
    /// As for [`attach`](Self::attach).
    pub fn attach_with(name: impl IntoShareName, opts: &KvOptions) -> Result<MemKv> {
        Self::attach_access(&name.into_share_name()?, opts, Access::ReadWrite)
    }

    fn attach_access(name: &ShareName, opts: &KvOptions, access: Access) -> Result<MemKv> {
        let name = name.clone();
        let started = Instant::now();
        loop {
            let outcome = Self::attach_once(&name, opts, access);
            let initialising = match &outcome {
                Err(e) if e.kind() == ErrorKind::MapFailed && e.os_error().is_none() => true,
                Err(e)
                    if e.kind() == ErrorKind::InvalidLayout
                        && e.detail().starts_with("header count 0,") =>
                {
                    true
                }
                _ => false,
            };
            if !initialising
                || started.elapsed() >= INIT_WAIT
                || !Segment::has_live_owner(&name).unwrap_or(false)
            {
                return outcome.map_err(|e| explain_wrong_type(&name, ShareType::MemKv, e));
            }
            // A live membus creator is between O_EXCL and publishing the header.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn attach_once(name: &ShareName, opts: &KvOptions, access: Access) -> Result<MemKv> {
        let seg = Segment::attach(name, access)?;
        let word = |off| {
            seg.atomic_i64(off).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidLayout,
                    format!(
                        "the object has {} bytes, fewer than a memkv header's {}",
                        seg.len(),
                        crate::layout::kv::HEADER_LEN
                    ),
                )
                .with_share(name.as_str())
                .with_sizes(crate::layout::kv::HEADER_LEN as u64, seg.len() as u64)
            })
        };
        // Acquire: pairs with the creator's Release store of the count word.
        let count = word(OFF_COUNT)?.load(Ordering::Acquire);
        let n = word(OFF_MAX_NAME)?.load(Ordering::Relaxed);
        let v = word(OFF_MAX_VALUE)?.load(Ordering::Relaxed);
        // `from_header` checks 128 + C·T ≤ the mapped length, which covers the header.
        let layout = KvLayout::from_header(count, n, v, seg.len())
            .map_err(|e| e.with_share(name.as_str()))?;
        let kv = MemKv::from_segment(seg, layout, opts)?;
        // Refuse lock bytes glibc would abort or block on before any call reaches glibc.
        kv.lock.check(name.as_str())?;
        Ok(kv)
    }

    /// Removes the store `name`. `Ok(false)` when it did not exist.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a malformed name, [`ErrorKind::AccessDenied`].
    pub fn remove(name: impl IntoShareName) -> Result<bool> {
        crate::wait::remove_with_companion(&name.into_share_name()?)
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.seg.name()
    }

    /// True if this handle created the store.
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// Number of slots (read once at attach).
    pub fn count(&self) -> usize {
        self.layout.count()
    }

    /// Usable name bytes per slot (N).
    pub fn max_name_len(&self) -> usize {
        self.layout.max_name_len()
    }

    /// Usable value bytes per slot (V; for a store this handle created, after rounding).
    pub fn max_value_len(&self) -> usize {
        self.layout.max_value_len()
    }

    /// The creator's session id.
    pub fn session_id(&self) -> i64 {
        self.header(OFF_ID).load(Ordering::Relaxed)
    }

    /// Number of committed write batches.
    pub fn epoch(&self) -> i64 {
        // Acquire: pairs with the writers' Release store of the epoch in `commit`, so the
        // slots of every batch up to the returned epoch are visible afterwards.
        self.header(OFF_EPOCH).load(Ordering::Acquire)
    }

    /// A header word below the mutex (checked at construction: the object is ≥ 128 bytes).
    fn header(&self, off: usize) -> &AtomicI64 {
        debug_assert!(off <= OFF_ID);
        self.seg
            .atomic_i64(off)
            .unwrap_or_else(|| unreachable!("header word checked at construction"))
    }

    fn err(&self, kind: ErrorKind, detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        Error::new(kind, detail).with_share(self.name().as_str())
    }

    #[inline]
    fn slot_off(&self, idx: usize) -> Result<usize> {
        match self.layout.slot(idx) {
            Some(off) => Ok(off),
            None => Err(self.bad_index(idx)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_index(&self, idx: usize) -> Error {
        self.err(
            ErrorKind::InvalidArgument,
            format!(
                "slot index {idx} is out of range (the store has {} slots)",
                self.count()
            ),
        )
        .with_sizes(self.count() as u64, idx as u64)
    }

    #[cold]
    #[inline(never)]
    fn bad_slot_range(&self, idx: usize, off: usize) -> Error {
        self.err(
            ErrorKind::InvalidLayout,
            format!("slot {idx} field at {off} is out of bounds or misaligned"),
        )
    }

    /// The seq or lastEpoch word of slot `idx` (in bounds: the layout was validated against
    /// the mapping; 8-byte aligned: the stride is a multiple of 8).
    #[inline]
    fn slot_word(&self, idx: usize, field: usize) -> Result<&AtomicI64> {
        let off = self.slot_off(idx)? + field;
        match self.seg.atomic_i64(off) {
            Some(w) => Ok(w),
            None => Err(self.bad_slot_range(idx, off)),
        }
    }

    #[inline]
    fn slot_bytes(&self, idx: usize, field: usize, len: usize) -> Result<*mut u8> {
        let off = self.slot_off(idx)? + field;
        match self.seg.range(off, len) {
            Some(p) => Ok(p),
            None => Err(self.bad_slot_range(idx, off)),
        }
    }

    fn write_name(&self, idx: usize, name: &[u8]) -> Result<()> {
        let n = self.layout.max_name_len();
        let mut buf = vec![0u8; n + 1];
        if let Some(dst) = buf.get_mut(..name.len()) {
            dst.copy_from_slice(name);
        }
        let dst = self.slot_bytes(idx, SLOT_NAME, n + 1)?;
        // SAFETY: `dst` is bounds-checked for N+1 bytes of the writable mapping.
        unsafe { copy_to_shared(dst, &buf) };
        Ok(())
    }

    /// Names slot `idx` (libmembus's `setName`). Like libmembus this is not synchronised
    /// with readers: name slots before peers use them (or use
    /// [`create_named`](Self::create_named)).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range or a NUL byte,
    /// [`ErrorKind::MessageTooLarge`] for a name longer than N.
    pub fn set_name(&self, idx: usize, name: &str) -> Result<()> {
        self.slot_off(idx)?;
        self.layout
            .check_name(name.as_bytes())
            .map_err(|e| e.with_share(self.name().as_str()))?;
        self.write_name(idx, name.as_bytes())
    }

    /// The name of slot `idx` (empty for an unnamed slot).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range.
    pub fn slot_name(&self, idx: usize) -> Result<String> {
        let mut buf = Vec::new();
        self.slot_name_into(idx, &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The name of slot `idx` into `out` (cleared first): its bytes up to the NUL, not
    /// checked as UTF-8. [`slot_name`](Self::slot_name) without an allocation once `out`
    /// has grown, for a caller that lists names often.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range.
    pub fn slot_name_into(&self, idx: usize, out: &mut Vec<u8>) -> Result<()> {
        let n = self.layout.max_name_len();
        let src = self.slot_bytes(idx, SLOT_NAME, n + 1)?;
        out.clear();
        // SAFETY: `src` starts the name field, bounds-checked for N+1 bytes; slots are
        // 8-byte aligned with a stride that is a multiple of 8 (checked at attach), so
        // every aligned word overlapping the field lies inside its slot, in the mapping.
        // The loads are atomic: a peer renaming the slot meanwhile can only tear the name.
        unsafe { read_cstr_from_shared(src, n + 1, out) };
        Ok(())
    }

    /// All slot names in index order.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] for a corrupt mapping (not expected after attach).
    pub fn slot_names(&self) -> Result<Vec<String>> {
        (0..self.count()).map(|i| self.slot_name(i)).collect()
    }

    /// Whether slot `idx` is named exactly `name`: its name field holds the bytes of `name`
    /// followed by a NUL (the whole name compared, byte for byte). Reads only those bytes
    /// and allocates nothing for names under 128 bytes, so a caller that remembers which
    /// slot a name had can confirm it cheaply before each use. `false` for an empty name,
    /// one longer than the share allows or containing a NUL, and an index out of range.
    pub fn slot_is_named(&self, idx: usize, name: &str) -> bool {
        let len = name.len();
        if len == 0 || len > self.layout.max_name_len() || name.contains('\0') {
            return false;
        }
        // The name and the byte after it, which must end the stored name.
        let Ok(src) = self.slot_bytes(idx, SLOT_NAME, len + 1) else {
            return false;
        };
        let mut stack = [0u8; 128];
        let mut heap = Vec::new();
        let buf = if len < stack.len() {
            &mut stack[..len + 1]
        } else {
            heap.resize(len + 1, 0);
            &mut heap[..]
        };
        // SAFETY: `src` is bounds-checked for len + 1 bytes of the mapping, `buf` holds
        // len + 1 bytes; `copy_from_shared` tolerates a peer writing the name meanwhile.
        unsafe { copy_from_shared(src, buf) };
        buf[len] == 0 && &buf[..len] == name.as_bytes()
    }

    /// The index of the first slot whose name is exactly `name` (libmembus compares only
    /// the first N bytes; membus compares the whole name, byte for byte).
    pub fn find(&self, name: &str) -> Option<usize> {
        (0..self.count()).find(|&i| self.slot_is_named(i, name))
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.find(name).ok_or_else(|| {
            self.err(
                ErrorKind::InvalidArgument,
                format!("no slot is named {name:?}"),
            )
        })
    }

    /// Repairs the store after a peer died holding the lock (EOWNERDEAD): the header must
    /// still describe this layout, no slot may be left mid-write (odd seq), and the epoch
    /// must cover every slot's lastEpoch.
    fn repair(&self) -> Result<()> {
        let c = self.header(OFF_COUNT).load(Ordering::Relaxed);
        let n = self.header(OFF_MAX_NAME).load(Ordering::Relaxed);
        let v = self.header(OFF_MAX_VALUE).load(Ordering::Relaxed);
        let l = &self.layout;
        if (c, n, v)
            != (
                l.count() as i64,
                l.max_name_len() as i64,
                l.max_value_len() as i64,
            )
        {
            return Err(self.err(
                ErrorKind::InvalidLayout,
                format!("after a peer died holding the lock the header reads count {c}, N {n}, V {v}, not the attached layout"),
            ));
        }
        let mut max_epoch = self.header(OFF_EPOCH).load(Ordering::Relaxed);
        for i in 0..self.count() {
            let seq = self.slot_word(i, SLOT_SEQ)?;
            if seq.load(Ordering::Relaxed) & 1 != 0 {
                // The dead writer left this slot mid-write (seq still odd, so readers retry):
                // its value may be torn, so it is emptied, then the seq is made even again.
                // Release: pairs with readers' Acquire load of seq in `read_slot`.
                self.fill_value(i, &[])?;
                seq.fetch_add(1, Ordering::Release);
            }
            max_epoch = max_epoch.max(self.slot_word(i, SLOT_LAST_EPOCH)?.load(Ordering::Relaxed));
        }
        // Release: as in `commit`.
        self.header(OFF_EPOCH).store(max_epoch, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock
            .lock(self.lock_timeout, self.name().as_str(), || self.repair())
    }

    /// Writes `value` into slot `idx`'s value field and zero-fills the rest of its V+1 bytes,
    /// without allocating.
    fn fill_value(&self, idx: usize, value: &[u8]) -> Result<()> {
        let v = self.layout.max_value_len();
        let dst = self.slot_bytes(idx, self.layout.value_offset(), v + 1)?;
        let n = value.len().min(v);
        // SAFETY: `dst` is bounds-checked for V+1 bytes of the writable mapping; the value
        // (at most V bytes) goes first, then NUL padding up to and including byte V.
        unsafe { write_padded_to_shared(dst, &value[..n], v + 1) };
        Ok(())
    }

    /// With the lock held: the seqlock write of one slot.
    fn write_slot(&self, idx: usize, value: &[u8], epoch: i64) -> Result<()> {
        let seq = self.slot_word(idx, SLOT_SEQ)?;
        let last = self.slot_word(idx, SLOT_LAST_EPOCH)?;
        // Every writer (membus or libmembus) holds the share's mutex here, so nobody else
        // changes seq meanwhile: plain atomic stores of seq+1 and seq+2 do what libmembus's
        // two increments do, without two locked read-modify-writes.
        let s = seq.load(Ordering::Relaxed);
        // Odd: a write is in progress. The Release fence orders this store before the value
        // stores below; it pairs with the reader's Acquire fence after its copy in
        // `read_slot`/`get_into` (a reader that copied any of the new bytes then sees the
        // odd or a later seq on its re-check).
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.fill_value(idx, value)?;
        last.store(epoch, Ordering::Relaxed);
        // Even again. Release: pairs with the reader's Acquire load of seq at the start of
        // `read_slot`/`get_into`, which then sees the whole value and lastEpoch.
        seq.store(s.wrapping_add(2), Ordering::Release);
        Ok(())
    }

    /// With the lock held: publish epoch `e`. The caller wakes waiters once it has released
    /// the lock ([`CondWaits::after_write`]).
    fn commit(&self, _guard: &LockGuard<'_>, e: i64) {
        // SeqCst swap: a release store that pairs with the Acquire loads of the epoch in
        // `epoch`, `snapshot` and `changed_since` (whoever sees epoch `e` sees every slot of
        // batch `e`), and the SeqCst half of the waiter handshake in `Waker::publish`.
        self.header(OFF_EPOCH).swap(e, Ordering::SeqCst);
    }

    /// Sets the value of slot `idx` as one batch; returns the new epoch.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range or a NUL byte in `value`;
    /// [`ErrorKind::MessageTooLarge`] for a value longer than V;
    /// [`ErrorKind::LockTimeout`]/[`ErrorKind::LockFailed`] when the lock cannot be taken.
    pub fn set(&self, idx: usize, value: impl AsRef<[u8]>) -> Result<i64> {
        self.set_many(&[(idx, value.as_ref())])
    }

    /// Sets the value of the slot named `name`; returns the new epoch.
    ///
    /// # Errors
    /// As for [`set`](Self::set); [`ErrorKind::InvalidArgument`] when no slot has that name.
    pub fn set_by_name(&self, name: &str, value: impl AsRef<[u8]>) -> Result<i64> {
        let idx = self.index_of(name)?;
        self.set(idx, value)
    }

    /// Sets several slots as one atomic batch under one epoch (libmembus's `setAll`, by
    /// index). Every entry is checked before anything is written: one bad entry writes
    /// nothing. Returns the new epoch (the current one for an empty batch).
    ///
    /// # Errors
    /// As for [`set`](Self::set), for any entry.
    pub fn set_many(&self, values: &[(usize, &[u8])]) -> Result<i64> {
        self.set_many_at_least(values, 0)
    }

    /// Sets several slots as one batch, like [`set_many`](Self::set_many), under epoch
    /// `max(epoch, current + 1)`: a mirror of another store (the Zenoh bridge's importer)
    /// passes the source's epoch, so its readers see the source's numbers. Epochs never go
    /// backwards: a source that restarted with smaller numbers continues from the current
    /// epoch + 1. Returns the new epoch (the current one for an empty batch).
    ///
    /// # Errors
    /// As for [`set`](Self::set), for any entry.
    pub fn set_many_at_least(&self, values: &[(usize, &[u8])], epoch: i64) -> Result<i64> {
        for &(idx, value) in values {
            self.slot_off(idx)?;
            self.layout.check_value(value).map_err(|e| {
                let d = format!("slot {idx}: {}", e.detail());
                let mut out = self.err(e.kind(), d);
                if let Some((a, b)) = e.sizes() {
                    out = out.with_sizes(a, b);
                }
                out
            })?;
        }
        let guard = self.lock()?;
        let e = self.header(OFF_EPOCH).load(Ordering::Relaxed);
        if values.is_empty() {
            return Ok(e);
        }
        let e = e.wrapping_add(1).max(1).max(epoch);
        for &(idx, value) in values {
            self.write_slot(idx, value, e)?;
        }
        self.commit(&guard, e);
        drop(guard);
        self.waits.after_write(self.header(OFF_EPOCH));
        Ok(e)
    }

    /// Sets several slots by name as one batch.
    ///
    /// # Errors
    /// As for [`set_many`](Self::set_many); [`ErrorKind::InvalidArgument`] for an unknown
    /// name (nothing is written).
    pub fn set_many_by_name(&self, values: &[(&str, &[u8])]) -> Result<i64> {
        let by_idx = values
            .iter()
            .map(|&(n, v)| Ok((self.index_of(n)?, v)))
            .collect::<Result<Vec<_>>>()?;
        self.set_many(&by_idx)
    }

    /// One lock-free seqlock read of slot `idx`: `(value bytes incl. terminator, lastEpoch,
    /// stable)`. `buf` receives V+1 bytes. Gives up (unstable) after [`READ_ATTEMPTS`]
    /// attempts or, once the spinning attempts are done, at `deadline`.
    fn read_slot(&self, idx: usize, buf: &mut Vec<u8>, deadline: Instant) -> Result<(i64, bool)> {
        let seq = self.slot_word(idx, SLOT_SEQ)?;
        let last = self.slot_word(idx, SLOT_LAST_EPOCH)?;
        let v = self.layout.max_value_len();
        let src = self.slot_bytes(idx, self.layout.value_offset(), v + 1)?;
        buf.resize(v + 1, 0);
        let mut epoch = 0;
        for attempt in 0..READ_ATTEMPTS {
            if attempt >= SPIN_ATTEMPTS {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::yield_now();
            } else if attempt > 0 {
                std::hint::spin_loop();
            }
            // Acquire: pairs with the writer's final Release increment in `write_slot`.
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                continue;
            }
            // SAFETY: `src` is bounds-checked for V+1 bytes of the mapping; the copy uses
            // atomic loads, so a racing writer can only tear the bytes, which the seq
            // re-check below detects.
            unsafe { copy_from_shared(src, buf) };
            epoch = last.load(Ordering::Relaxed);
            // Acquire fence: pairs with the writer's Release fence after its odd increment;
            // keeps the copy above from moving past the re-check (crossbeam's seq_lock).
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
                return Ok((epoch, true));
            }
        }
        Ok((epoch, false))
    }

    /// Reads slot `idx` without locking.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range.
    pub fn get(&self, idx: usize) -> Result<Value> {
        let mut value = Vec::new();
        let stale = self.get_into(idx, &mut value)?;
        Ok(Value { value, stale })
    }

    /// Like [`get`](Self::get), reading into `out` (cleared first; its capacity is reused,
    /// so a loop of reads does not allocate). Returns `stale`: `true` when every read
    /// attempt overlapped a write, for 1,000 attempts or about 1 ms (a writer seems stuck
    /// or died mid-write), and `out` then
    /// holds the last, possibly torn, copy.
    ///
    /// The value is read in whole words up to its terminating NUL, so short values cost
    /// little; the slot's seqlock validates the copy as in [`get`](Self::get).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an index out of range.
    pub fn get_into(&self, idx: usize, out: &mut Vec<u8>) -> Result<bool> {
        // The time budget starts only once the spinning attempts are spent, so an
        // uncontended read never reads the clock.
        let mut deadline = None;
        let seq = self.slot_word(idx, SLOT_SEQ)?;
        let v = self.layout.max_value_len();
        let src = self.slot_bytes(idx, self.layout.value_offset(), v + 1)?;
        for attempt in 0..READ_ATTEMPTS {
            if attempt >= SPIN_ATTEMPTS {
                let now = Instant::now();
                if now >= *deadline.get_or_insert(now + READ_BUDGET) {
                    break;
                }
                std::thread::yield_now();
            } else if attempt > 0 {
                std::hint::spin_loop();
            }
            // Acquire: pairs with the writer's final Release increment in `write_slot`.
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                continue;
            }
            out.clear();
            // SAFETY: `src` starts the value field, bounds-checked for V+1 bytes; slots are
            // 8-byte aligned with a stride that is a multiple of 8 (checked at attach), so
            // every aligned word overlapping the field lies inside its slot, in the mapping.
            // The loads are atomic: a racing writer can only tear the bytes, which the seq
            // re-check below detects.
            unsafe { read_cstr_from_shared(src, v, out) };
            // Acquire fence: pairs with the writer's Release fence after its odd increment;
            // keeps the copy above from moving past the re-check (crossbeam's seq_lock).
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the slot named `name` without locking.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when no slot has that name.
    pub fn get_by_name(&self, name: &str) -> Result<Value> {
        self.get(self.index_of(name)?)
    }

    /// A consistent copy of every value: all batches up to `epoch` and none after it.
    ///
    /// Lock-free while writers leave gaps; when writers keep overlapping it (after 100
    /// passes or about 1 ms of attempts) it takes the lock for one pass, so it always
    /// returns a consistent result or an error.
    ///
    /// # Errors
    /// [`ErrorKind::LockTimeout`]/[`ErrorKind::LockFailed`] when the fallback cannot lock;
    /// [`ErrorKind::InvalidLayout`] naming the slot when a slot's seq is odd while the lock
    /// is held (a writer that does not lock, or a hostile peer).
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut buf = Vec::new();
        let deadline = Instant::now() + READ_BUDGET;
        'pass: for pass in 0..SNAPSHOT_PASSES {
            if pass > 0 {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::yield_now();
            }
            let e1 = self.epoch();
            let mut values = Vec::with_capacity(self.count());
            for i in 0..self.count() {
                let (last, stable) = self.read_slot(i, &mut buf, deadline)?;
                // A slot of a later batch than e1 means the batch is not complete in this
                // pass (its epoch store comes after all its slots).
                if !stable || last > e1 {
                    continue 'pass;
                }
                values.push(until_nul(&buf).to_vec());
            }
            return Ok(Snapshot { epoch: e1, values });
        }
        if self.read_only {
            return Err(self.err(
                ErrorKind::Timeout,
                format!(
                    "no consistent pass in {SNAPSHOT_PASSES} tries: writers keep overlapping \
                     every read (or one died mid-write), and a read-only handle cannot lock"
                ),
            ));
        }
        let guard = self.lock()?;
        let epoch = self.header(OFF_EPOCH).load(Ordering::Relaxed);
        let mut values = Vec::with_capacity(self.count());
        for i in 0..self.count() {
            let (_, stable) = self.read_slot(i, &mut buf, Instant::now() + READ_BUDGET)?;
            if !stable {
                return Err(self.err(
                    ErrorKind::InvalidLayout,
                    format!("slot {i}'s seq is odd while the lock is held: a foreign writer does not lock"),
                ));
            }
            values.push(until_nul(&buf).to_vec());
        }
        drop(guard);
        Ok(Snapshot { epoch, values })
    }

    /// The slots whose lastEpoch is greater than `since` (non-blocking; libmembus's
    /// `getChanged(epoch)`). Pass the returned [`Changes::epoch`] to the next call; a change
    /// may then be reported twice but never lost. A negative `since` returns every slot.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] for a corrupt mapping (not expected after attach).
    pub fn changed_since(&self, since: i64) -> Result<Changes> {
        let deadline = Instant::now() + READ_BUDGET;
        let epoch = self.epoch();
        let mut buf = Vec::new();
        let mut changes = Vec::new();
        for i in 0..self.count() {
            // lastEpoch is stored relaxed inside the seqlock, so this load only selects
            // slots; the Acquire (the spec's reader does the same) orders it before the
            // seqlock read below. Nothing is lost: the Acquire load of the epoch above pairs
            // with `commit`'s Release, so every slot of a batch ≤ `epoch` shows at least
            // that batch here, and later batches have lastEpoch > `epoch` for the next call.
            if self.slot_word(i, SLOT_LAST_EPOCH)?.load(Ordering::Acquire) > since {
                let (last, stable) = self.read_slot(i, &mut buf, deadline)?;
                changes.push(Change {
                    index: i,
                    epoch: last,
                    value: until_nul(&buf).to_vec(),
                    stale: !stable,
                });
            }
        }
        Ok(Changes { epoch, changes })
    }

    /// Waits until the epoch exceeds `since` or `timeout` passes; returns the new epoch, or
    /// `None` on timeout. Sleeps on a futex on the epoch that membus writers wake (against
    /// libmembus/pymembus writers it polls every millisecond once it has seen one of their
    /// batches arrive unannounced; see [`select`](crate::select)). Takes no lock, so it
    /// works whatever state the share's mutex is in.
    ///
    /// # Errors
    /// None today; the `Result` is kept for future checks.
    pub fn wait_for_change(&self, since: i64, timeout: Duration) -> Result<Option<i64>> {
        let deadline = crate::select::deadline_after(timeout);
        loop {
            let now = self.epoch();
            if now > since {
                return Ok(Some(now));
            }
            if timeout.is_zero() || Instant::now() >= deadline {
                return Ok(None);
            }
            crate::select::wait_ready_until(&self.watch_from(since), deadline);
        }
    }
}

#[cfg(feature = "async")]
impl MemKv {
    /// Waits, without blocking a thread, until the epoch exceeds `since`; returns the new
    /// epoch. Cancellation-safe (it only waits).
    ///
    /// # Errors
    /// None today; the `Result` is kept for future checks.
    pub async fn wait_for_change_async(&self, since: i64) -> Result<i64> {
        let w = self.watch_from(since);
        crate::aio::ready(&w).await;
        Ok(self.epoch())
    }
}

impl MemKv {
    /// A watch on this store's changes, starting at the current epoch: it is ready (for
    /// [`select`](crate::select::select)) once a later batch is committed.
    pub fn watch(&self) -> Watch<'_> {
        self.watch_from(self.epoch())
    }

    /// A watch that is ready once the epoch exceeds `since`.
    pub fn watch_from(&self, since: i64) -> Watch<'_> {
        Watch { kv: self, since }
    }
}

/// Follows a store's changes from an epoch on ([`MemKv::watch`]).
///
/// Ready when a batch after its epoch is committed; [`changes`](Watch::changes) returns
/// the changed slots and moves the watch past them. Waiting sleeps as
/// [`MemKv::wait_for_change`] does.
#[derive(Debug)]
pub struct Watch<'a> {
    kv: &'a MemKv,
    since: i64,
}

impl Watch<'_> {
    /// The epoch this watch has seen up to.
    pub fn since(&self) -> i64 {
        self.since
    }

    /// The slots changed after the watch's epoch; the watch then stands at the epoch the
    /// scan started from (a change may be reported twice, never lost).
    ///
    /// # Errors
    /// As for [`MemKv::changed_since`].
    pub fn changes(&mut self) -> Result<Changes> {
        let c = self.kv.changed_since(self.since)?;
        self.since = c.epoch;
        Ok(c)
    }

    /// Whether a batch after the watch's epoch has been committed.
    pub fn poll(&self) -> bool {
        self.kv.epoch() > self.since
    }

    /// Blocks until [`poll`](Self::poll) is true or `timeout` passes; returns `poll()`.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        crate::select::wait_ready(self, timeout)
    }

    /// Waits, without blocking a thread, for a batch after the watch's epoch, then returns
    /// the changes as [`changes`](Self::changes) does. Cancellation-safe: the watch moves
    /// only in the poll that returns.
    ///
    /// # Errors
    /// As for [`changes`](Self::changes).
    #[cfg(feature = "async")]
    pub async fn changes_async(&mut self) -> Result<Changes> {
        crate::aio::ready(&*self).await;
        self.changes()
    }

    /// The changes as a [`Stream`](crate::aio::Stream) that never ends, each item as from
    /// [`changes_async`](Self::changes_async).
    #[cfg(feature = "async")]
    pub fn stream(&mut self) -> crate::aio::ItemStream<'_, Self, Result<Changes>> {
        crate::aio::ItemStream::new(self, |w| {
            Box::pin(async move {
                let item = w.changes_async().await;
                (item, w)
            })
        })
    }
}

impl crate::select::sealed::Sealed for Watch<'_> {}

impl crate::select::Selectable for Watch<'_> {
    fn is_ready(&self) -> bool {
        self.poll()
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        crate::select::WaitSpec::futex(self.kv.waits.spec(self.kv.header(OFF_EPOCH)))
    }
}

/// A read-only handle on a memkv store: the share is mapped read-only, so this handle
/// cannot change it (it has no write methods, takes no lock and never repairs anything).
/// Reads are the same lock-free seqlock reads as [`MemKv`]'s; waiting sleeps on the same
/// futex. Needs only read permission on the share (registering as a waiter needs write
/// permission on its companion object; without it, waits poll every millisecond).
///
/// ```no_run
/// # fn main() -> membus::Result<()> {
/// use std::time::Duration;
/// let kv = membus::memkv::KvReader::attach("/camera-state")?;
/// let snap = kv.snapshot()?;
/// if let Some(epoch) = kv.wait_for_change(snap.epoch, Duration::from_secs(1))? {
///     println!("{} slots changed by epoch {epoch}", kv.changed_since(snap.epoch)?.changes.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KvReader {
    kv: MemKv,
}

impl KvReader {
    /// Attaches read-only to an existing store.
    ///
    /// # Errors
    /// As for [`MemKv::attach`].
    pub fn attach(name: impl IntoShareName) -> Result<KvReader> {
        let kv = MemKv::attach_access(
            &name.into_share_name()?,
            &KvOptions::new(),
            Access::ReadOnly,
        )?;
        Ok(KvReader { kv })
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.kv.name()
    }

    /// Number of slots.
    pub fn count(&self) -> usize {
        self.kv.count()
    }

    /// Longest slot name (N).
    pub fn max_name_len(&self) -> usize {
        self.kv.max_name_len()
    }

    /// Longest value (V).
    pub fn max_value_len(&self) -> usize {
        self.kv.max_value_len()
    }

    /// The store's session id.
    pub fn session_id(&self) -> i64 {
        self.kv.session_id()
    }

    /// Committed batches so far.
    pub fn epoch(&self) -> i64 {
        self.kv.epoch()
    }

    /// Slot `idx`'s name.
    ///
    /// # Errors
    /// As for [`MemKv::slot_name`].
    pub fn slot_name(&self, idx: usize) -> Result<String> {
        self.kv.slot_name(idx)
    }

    /// Every slot's name.
    ///
    /// # Errors
    /// As for [`MemKv::slot_names`].
    pub fn slot_names(&self) -> Result<Vec<String>> {
        self.kv.slot_names()
    }

    /// The index of the slot named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.kv.find(name)
    }

    /// Reads slot `idx` ([`MemKv::get`]).
    ///
    /// # Errors
    /// As for [`MemKv::get`].
    pub fn get(&self, idx: usize) -> Result<Value> {
        self.kv.get(idx)
    }

    /// Reads slot `idx` into `out` ([`MemKv::get_into`]).
    ///
    /// # Errors
    /// As for [`MemKv::get_into`].
    pub fn get_into(&self, idx: usize, out: &mut Vec<u8>) -> Result<bool> {
        self.kv.get_into(idx, out)
    }

    /// Reads the slot named `name`.
    ///
    /// # Errors
    /// As for [`MemKv::get_by_name`].
    pub fn get_by_name(&self, name: &str) -> Result<Value> {
        self.kv.get_by_name(name)
    }

    /// A consistent copy of every value ([`MemKv::snapshot`]), without the lock fallback:
    /// when writers overlap every pass it fails with [`ErrorKind::Timeout`] instead.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] as described.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.kv.snapshot()
    }

    /// The slots changed after `since` ([`MemKv::changed_since`]).
    ///
    /// # Errors
    /// As for [`MemKv::changed_since`].
    pub fn changed_since(&self, since: i64) -> Result<Changes> {
        self.kv.changed_since(since)
    }

    /// Waits until the epoch exceeds `since` ([`MemKv::wait_for_change`]).
    ///
    /// # Errors
    /// As for [`MemKv::wait_for_change`].
    pub fn wait_for_change(&self, since: i64, timeout: Duration) -> Result<Option<i64>> {
        self.kv.wait_for_change(since, timeout)
    }

    /// Waits without blocking a thread until the epoch exceeds `since`
    /// ([`MemKv::wait_for_change_async`]).
    ///
    /// # Errors
    /// As for [`MemKv::wait_for_change_async`].
    #[cfg(feature = "async")]
    pub async fn wait_for_change_async(&self, since: i64) -> Result<i64> {
        self.kv.wait_for_change_async(since).await
    }

    /// A watch from the current epoch ([`MemKv::watch`]).
    pub fn watch(&self) -> Watch<'_> {
        self.kv.watch()
    }

    /// A watch from `since` ([`MemKv::watch_from`]).
    pub fn watch_from(&self, since: i64) -> Watch<'_> {
        self.kv.watch_from(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        format!(
            "/membus-test-{}-kvunit{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    fn set_get_batch_and_changes() {
        let name = unique("basic");
        let kv = MemKv::create_named(&name, &["a", "b", "c"], 6, 9).unwrap();
        assert_eq!(kv.max_value_len(), 16); // 18+6+9 = 33 → V rounded to 16 (T = 40)
        assert_eq!(kv.set(0, "x").unwrap(), 1);
        assert_eq!(kv.set_many(&[(1, b"yy"), (2, b"zzz")]).unwrap(), 2);
        let peer = MemKv::attach(&name).unwrap();
        assert_eq!(peer.slot_names().unwrap(), ["a", "b", "c"]);
        assert_eq!(
            peer.get_by_name("c").unwrap(),
            Value {
                value: b"zzz".to_vec(),
                stale: false
            }
        );
        let snap = peer.snapshot().unwrap();
        assert_eq!(snap.epoch, 2);
        assert_eq!(
            snap.values,
            [b"x".to_vec(), b"yy".to_vec(), b"zzz".to_vec()]
        );
        let ch = peer.changed_since(1).unwrap();
        assert_eq!(ch.epoch, 2);
        assert_eq!(
            ch.changes.iter().map(|c| c.index).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(peer.wait_for_change(2, Duration::ZERO).unwrap(), None);
        assert_eq!(peer.wait_for_change(1, Duration::ZERO).unwrap(), Some(2));
        assert_eq!(peer.session_id(), kv.session_id());
        assert_ne!(kv.session_id(), 0);
        // a bad entry writes nothing
        let e = kv.set_many(&[(0, b"ok"), (1, b"bad\0")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(kv.get(0).unwrap().value, b"x");
        assert_eq!(kv.epoch(), 2);
        drop(peer);
        drop(kv);
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
    }

    #[test]
    fn slot_names_compare_whole_and_exact() {
        let name = unique("names");
        let long = "n".repeat(200);
        let kv = MemKv::create_named(&name, &["key3", "", &long, "k\u{e9}y"], 200, 8).unwrap();
        assert!(kv.slot_is_named(0, "key3"));
        for other in ["key", "key33", "Key3", "key\x003", ""] {
            assert!(!kv.slot_is_named(0, other), "{other:?}");
        }
        assert!(!kv.slot_is_named(1, ""), "an unnamed slot is named nothing");
        // Names from 128 bytes up are compared through the heap buffer.
        assert!(kv.slot_is_named(2, &long));
        assert!(!kv.slot_is_named(2, &long[1..]));
        assert!(
            !kv.slot_is_named(2, &"n".repeat(201)),
            "longer than the share allows"
        );
        assert!(kv.slot_is_named(3, "k\u{e9}y"));
        assert!(!kv.slot_is_named(4, "key3"), "index out of range");
        assert_eq!(kv.find("key3"), Some(0));
        assert_eq!(kv.find(&long), Some(2));
        // A renamed slot stops answering to its old name at once.
        kv.set_name(0, "key").unwrap();
        assert!(!kv.slot_is_named(0, "key3"));
        assert!(kv.slot_is_named(0, "key"));
        assert_eq!(kv.find("key3"), None);
        // A stored name that is not UTF-8 matches no name (the comparison is of bytes).
        let field = kv.slot_bytes(1, SLOT_NAME, 2).unwrap();
        // SAFETY: two bytes of this store's writable mapping, bounds-checked above.
        unsafe { copy_to_shared(field, &[0xff, 0]) };
        assert!(!kv.slot_is_named(1, "\u{fffd}"));
        assert_eq!(kv.slot_name(1).unwrap(), "\u{fffd}");
        // slot_name_into: the raw bytes up to the NUL, into a cleared buffer.
        let mut buf = vec![1, 2, 3];
        kv.slot_name_into(1, &mut buf).unwrap();
        assert_eq!(buf, [0xff]);
        kv.slot_name_into(2, &mut buf).unwrap();
        assert_eq!(buf, long.as_bytes());
        kv.slot_name_into(3, &mut buf).unwrap();
        assert_eq!(buf, "k\u{e9}y".as_bytes());
        assert!(kv.slot_name_into(4, &mut buf).is_err());
        drop(kv);
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
    }

    #[test]
    fn repair_makes_odd_slots_even_and_covers_epochs() {
        let name = unique("repair");
        let kv = MemKv::create_named(&name, &["a", "b"], 6, 10).unwrap();
        kv.set(0, "v").unwrap();
        // Simulate a writer that died mid-write of batch 2 on slot 1.
        kv.slot_word(1, SLOT_SEQ)
            .unwrap()
            .store(3, Ordering::Relaxed);
        kv.slot_word(1, SLOT_LAST_EPOCH)
            .unwrap()
            .store(2, Ordering::Relaxed);
        assert!(kv.get(1).unwrap().stale);
        kv.repair().unwrap();
        assert_eq!(
            kv.slot_word(1, SLOT_SEQ).unwrap().load(Ordering::Relaxed),
            4
        );
        assert_eq!(kv.epoch(), 2);
        assert_eq!(
            kv.get(1).unwrap(),
            Value {
                value: vec![],
                stale: false
            }
        );
        kv.header(OFF_COUNT).store(7, Ordering::Relaxed);
        assert_eq!(kv.repair().unwrap_err().kind(), ErrorKind::InvalidLayout);
        kv.header(OFF_COUNT).store(2, Ordering::Relaxed);
    }

    #[test]
    fn a_writer_that_died_holding_the_lock_is_recovered_from() {
        let name = unique("ownerdead");
        let kv = MemKv::create_named(&name, &["a", "b"], 6, 10).unwrap();
        kv.set(0, "before").unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // Die mid-write of batch 2: slot 1 odd and half written, lock held. The
                // thread's exit is what a robust mutex reports as EOWNERDEAD.
                let guard = kv.lock().unwrap();
                let seq = kv.slot_word(1, SLOT_SEQ).unwrap();
                seq.fetch_add(1, Ordering::Relaxed);
                kv.fill_value(1, b"half").unwrap();
                kv.slot_word(1, SLOT_LAST_EPOCH)
                    .unwrap()
                    .store(2, Ordering::Relaxed);
                std::mem::forget(guard);
            });
        });
        assert!(kv.get(1).unwrap().stale, "readers see the slot mid-write");
        // The next locker repairs the store, makes the mutex consistent and carries on.
        assert_eq!(kv.set(0, "after").unwrap(), 3);
        assert_eq!(
            kv.get(1).unwrap(),
            Value {
                value: vec![],
                stale: false
            }
        );
        assert_eq!(kv.get(0).unwrap().value, b"after");
        assert_eq!(kv.snapshot().unwrap().epoch, 3);
        // And the lock works normally afterwards.
        assert_eq!(kv.set(1, "x").unwrap(), 4);
    }
}
