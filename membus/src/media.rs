//! What memvid, memaud and mempkt share: the "MBUS" prefix, creation that replaces only a
//! stale share (W13) and publishes the header last (W14), validated attachment (read-only
//! for readers, W10; read-write for writers that continue a ring), checked word access,
//! and waits on the publish counter that borrow no handle ([`SeqWatch`]).

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::identify::{wrong_type, ShareType, HEAD_LEN};
use crate::layout::media::{header_words, off, MediaKind, MAGIC};
use crate::name::ShareName;
use crate::sys::copy::{copy_from_shared, copy_to_shared};
use crate::sys::shm::{Access, FileId, PrefixMap, Replace, Segment};
use crate::wait::{low_half, Registry, Waker};

/// Where a new reader starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// At the newest frame: only frames published after attaching are delivered. The
    /// default.
    #[default]
    Newest,
    /// At the oldest frame still intact in the ring.
    Oldest,
}

/// What a reader's `next` found: exactly one of these.
#[must_use]
#[derive(Debug)]
pub enum Next<F> {
    /// The next frame (or record) in order.
    Frame(F),
    /// The writer overtook the reader: `lost` frames were skipped; the next call delivers
    /// the newest one.
    Overrun {
        /// How many frames this reader will never see.
        lost: u64,
    },
    /// Nothing new has been published.
    Empty,
}

/// Common creation options for media writers.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// fourcc (stored zero-extended; 0 = none).
    pub fourcc: u32,
    /// GUID bytes (all zero = none).
    pub guid: [u8; 16],
    /// Main user buffer, written once at creation.
    pub meta: Vec<u8>,
}

/// Process slots of a media ring's waiter registry: reserved1..7.
const REGISTRY_SLOTS: usize = 7;

/// A mapped media share.
pub(crate) struct MediaSeg {
    pub(crate) seg: Segment,
    /// For a read-only reader that waits: the header page mapped read-write, to register in
    /// the waiter registry. Made on the first wait; `None` when the share's mode forbids it.
    wait_map: OnceLock<Option<PrefixMap>>,
}

impl MediaSeg {
    fn new(seg: Segment) -> MediaSeg {
        MediaSeg {
            seg,
            wait_map: OnceLock::new(),
        }
    }

    /// The waiter registry in the reserved header words (reserved0: the bitmap of waiting
    /// processes; reserved1..7: their process ids; libmembus writes these words 0 at
    /// creation and never reads them), where this handle can write it: the writer's own
    /// mapping, or a reader's read-write header page.
    pub(crate) fn registry(&self) -> Option<Registry<'_>> {
        let (active, pids) = if self.seg.is_writable() {
            (
                self.seg.atomic_i64(off::RESERVED)?,
                self.seg
                    .atomic_i64_slice(off::RESERVED + 8, REGISTRY_SLOTS)?,
            )
        } else {
            let m = self
                .wait_map
                .get_or_init(|| self.seg.map_prefix_rw(off::CLASS).ok())
                .as_ref()?;
            (
                m.atomic_i64(off::RESERVED)?,
                m.atomic_i64_slice(off::RESERVED + 8, REGISTRY_SLOTS)?,
            )
        };
        Some(Registry::new(
            self.seg.file_id(),
            off::RESERVED,
            active,
            pids,
        ))
    }

    /// Creates `name` with `size` bytes; an existing share of that name is replaced only when
    /// no live membus owner holds it.
    pub(crate) fn create(name: &ShareName, size: usize, mode: u32) -> Result<MediaSeg> {
        // Without a live membus owner the share is stale: left by a crashed writer, or made
        // by libmembus/pymembus, whose media writers replace a share unconditionally (a
        // media share has one writer). Replace it.
        Segment::create_replacing(name, size, mode, Replace::AnyStale).map(MediaSeg::new)
    }

    /// Attaches with `access` (readers: read-only; writers that continue a ring:
    /// read-write) and returns the header words once the "MBUS" magic and type word match
    /// `kind`, waiting briefly for a live creator that has not published its header yet.
    /// The caller validates the rest of the header (the layout's `from_header`).
    pub(crate) fn attach(
        name: &ShareName,
        kind: MediaKind,
        access: Access,
    ) -> Result<(MediaSeg, [i64; 30])> {
        let started = Instant::now();
        loop {
            let attempt = Segment::attach(name, access).map(|seg| {
                let m = MediaSeg::new(seg);
                let h = m.header();
                (m, h)
            });
            let initialising = match &attempt {
                Ok((_, h)) => h[0] == 0,
                Err(e) => e.kind() == ErrorKind::MapFailed && e.os_error().is_none(),
            };
            if !initialising
                || started.elapsed() >= Duration::from_millis(500)
                || !Segment::has_live_owner(name).unwrap_or(false)
            {
                let (m, h) = attempt?;
                let expected = match kind {
                    MediaKind::Vid => ShareType::MemVid,
                    MediaKind::Aud => ShareType::MemAud,
                    MediaKind::Pkt => ShareType::MemPkt,
                };
                if h[0] != MAGIC || h[1] != kind.type_value() {
                    let head = m.seg.head(HEAD_LEN);
                    let detail =
                        wrong_type(&head, m.seg.len() as u64, expected).unwrap_or_else(|| {
                            if h[0] == MAGIC {
                                format!(
                                    "not a {} share: its \"MBUS\" header has type word {} \
                                     (expected {})",
                                    kind.type_name(),
                                    h[1],
                                    kind.type_value()
                                )
                            } else {
                                format!("not a {} share: no \"MBUS\" magic", kind.type_name())
                            }
                        });
                    return Err(
                        Error::new(ErrorKind::InvalidLayout, detail).with_share(name.as_str())
                    );
                }
                return Ok((m, h));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`attach`](Self::attach), then the layout read from the header (`from_header`,
    /// which checks every offset against the mapping) and the caller's check of it.
    pub(crate) fn attach_layout<L>(
        name: &ShareName,
        kind: MediaKind,
        access: Access,
        from_header: impl FnOnce(&[i64; 30], usize) -> Result<L>,
        check: impl FnOnce(&L) -> Result<()>,
    ) -> Result<(MediaSeg, L)> {
        let (share, h) = Self::attach(name, kind, access)?;
        let layout = from_header(&h, share.seg.len()).map_err(|e| e.with_share(name.as_str()))?;
        check(&layout)?;
        Ok((share, layout))
    }

    /// The first 240 bytes (fewer if the object is smaller) as words, read atomically.
    pub(crate) fn header(&self) -> [i64; 30] {
        // The magic first; the Acquire fence after it pairs with the creator's Release fence
        // before its magic store (`write_header`), so a header with the magic is complete.
        let _ = self.load(off::MAGIC);
        fence(Ordering::Acquire);
        let n = self.seg.len().min(240);
        let mut bytes = [0u8; 240];
        // SAFETY: `base()..base()+n` lies inside the mapping (n ≤ len); the copy uses atomic
        // loads, so concurrent writers only make it torn, which validation then rejects.
        unsafe { copy_from_shared(self.seg.base(), &mut bytes[..n]) };
        header_words(&bytes)
    }

    pub(crate) fn name(&self) -> &ShareName {
        self.seg.name()
    }

    #[cold]
    pub(crate) fn invalid(&self, what: String) -> Error {
        Error::new(ErrorKind::InvalidLayout, what).with_share(self.name().as_str())
    }

    /// The word at `offset`, bounds- and alignment-checked now.
    #[inline]
    pub(crate) fn word(&self, offset: usize) -> Result<&AtomicI64> {
        self.seg.atomic_i64(offset).ok_or_else(|| {
            self.invalid(format!(
                "word at offset {offset} is outside the share or unaligned"
            ))
        })
    }

    /// `n` consecutive words from `offset`, bounds- and alignment-checked once, now.
    #[inline]
    pub(crate) fn words(&self, offset: usize, n: usize) -> Result<&[AtomicI64]> {
        self.seg.atomic_i64_slice(offset, n).ok_or_else(|| {
            self.invalid(format!(
                "{n} words at offset {offset} run past the share or are unaligned"
            ))
        })
    }

    /// Acquire load of the word at `offset`. Done as a Relaxed load and an Acquire fence,
    /// which Rust allows on a read-only mapping (a plain Acquire load it does not promise).
    #[inline]
    pub(crate) fn load_acquire(&self, offset: usize) -> Result<i64> {
        let v = self.word(offset)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        Ok(v)
    }

    /// Relaxed load of the word at `offset`.
    #[inline]
    pub(crate) fn load(&self, offset: usize) -> Result<i64> {
        Ok(self.word(offset)?.load(Ordering::Relaxed))
    }

    /// Pointer to `len` bytes at `offset`, bounds-checked now.
    #[inline]
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Result<*mut u8> {
        self.seg.range(offset, len).ok_or_else(|| {
            self.invalid(format!("{len} bytes at offset {offset} run past the share"))
        })
    }

    /// Copies `len` bytes at `offset` out.
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let src = self.bytes(offset, dst.len())?;
        // SAFETY: `src` is bounds-checked for dst.len() bytes of the mapping owned by `self`.
        unsafe { copy_from_shared(src, dst) };
        Ok(())
    }

    /// Replaces `dst`'s contents with the `len` bytes at `offset`, writing straight into its
    /// spare capacity (no zero-fill first; no allocation once it is large enough).
    /// A copy of nothing (a record without metadata) only clears `dst`.
    #[inline]
    pub(crate) fn copy_out_vec(&self, offset: usize, len: usize, dst: &mut Vec<u8>) -> Result<()> {
        if len == 0 {
            dst.clear();
            return Ok(());
        }
        let src = self.bytes(offset, len)?;
        dst.clear();
        dst.reserve(len);
        // SAFETY: `src` is bounds-checked for `len` bytes of the mapping; the spare
        // capacity holds at least `len` bytes after `reserve`.
        unsafe {
            crate::sys::copy::copy_from_shared_uninit(src, &mut dst.spare_capacity_mut()[..len])
        };
        // SAFETY: the copy initialised the first `len` bytes.
        unsafe { dst.set_len(len) };
        Ok(())
    }

    /// Copies `src` in at `offset` (writers only: the mapping must be writable).
    #[inline]
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) -> Result<()> {
        debug_assert!(self.seg.is_writable());
        let dst = self.bytes(offset, src.len())?;
        // SAFETY: `dst` is bounds-checked for src.len() bytes of this writable mapping.
        unsafe { copy_to_shared(dst, src) };
        Ok(())
    }

    /// Writes the "MBUS" prefix and `class` words (from offset 168) and the meta bytes at
    /// `meta_at`, then publishes the magic with a Release store (W14): an attacher that sees
    /// the magic (Acquire) sees the whole header.
    #[allow(clippy::too_many_arguments)] // one per prefix field group; all required
    pub(crate) fn write_header(
        &self,
        kind: MediaKind,
        size: usize,
        bufs: usize,
        align: usize,
        identity: &Identity,
        class: &[i64],
        meta_at: usize,
    ) -> Result<()> {
        let w = |offset: usize, v: i64| -> Result<()> {
            self.word(offset)?.store(v, Ordering::Relaxed);
            Ok(())
        };
        w(off::TYPE, kind.type_value())?;
        w(off::VERSION, kind.version())?;
        w(off::SIZE, size as i64)?;
        w(off::PTR, 0)?;
        w(off::SEQ, 0)?;
        w(off::ID, crate::sys::random_session_id())?;
        w(off::BUFS, bufs as i64)?;
        w(off::FOURCC, i64::from(identity.fourcc))?;
        self.copy_in(off::GUID, &identity.guid)?;
        w(off::ALIGN, align as i64)?;
        w(off::METASIZE, identity.meta.len() as i64)?;
        for (i, v) in class.iter().enumerate() {
            w(off::CLASS + 8 * i, *v)?;
        }
        self.copy_in(meta_at, &identity.meta)?;
        // Release: publishes everything above; pairs with the Acquire fence after the
        // magic load in `header` (and with libmembus readers' validation).
        fence(Ordering::Release);
        w(off::MAGIC, MAGIC)
    }

    pub(crate) fn session_id(&self) -> i64 {
        self.load(off::ID).unwrap_or(0)
    }

    pub(crate) fn fourcc(&self) -> u32 {
        self.load(off::FOURCC).unwrap_or(0) as u32
    }

    pub(crate) fn guid(&self) -> [u8; 16] {
        let mut g = [0u8; 16];
        let _ = self.copy_out(off::GUID, &mut g);
        g
    }

    pub(crate) fn meta(&self, at: usize, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.copy_out(at, &mut v)?;
        Ok(v)
    }
}

/// Where a ring's slots (memvid/memaud) or descriptors (mempkt) are, and where each one's
/// publish stamp sits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slots {
    /// Offset of slot 0.
    pub(crate) base: usize,
    /// Slot stride.
    pub(crate) stride: usize,
    /// Number of slots.
    pub(crate) bufs: usize,
    /// Offset of the stamp (sequence word) inside a slot.
    pub(crate) stamp_at: usize,
}

impl Slots {
    /// Offset of slot `i` (i < bufs; validated layouts keep every slot in the mapping).
    pub(crate) fn slot(&self, i: usize) -> usize {
        self.base + i * self.stride
    }
}

/// The reader's side of the slot protocol shared by memvid, memaud and mempkt: follow the
/// global sequence and the slots' stamps, report overruns and "nothing new" (W6), and
/// tolerate libmembus's publish order (global sequence before the stamp, spec §15.7).
pub(crate) struct SlotRing {
    pub(crate) share: MediaSeg,
    pub(crate) slots: Slots,
    pos: usize,
    last: i64,
    /// Learned while waiting: the writer publishes without waking (libmembus).
    polling_writer: AtomicBool,
}

impl SlotRing {
    pub(crate) fn new(share: MediaSeg, slots: Slots, from: ReadFrom) -> Result<SlotRing> {
        let mut r = SlotRing {
            share,
            slots,
            pos: 0,
            last: 0,
            polling_writer: AtomicBool::new(false),
        };
        // A share without a live membus owner has a libmembus/pymembus writer (or none):
        // poll from the start instead of learning it on the first frame.
        let foreign = !Segment::has_live_owner(r.share.seg.name()).unwrap_or(false);
        r.polling_writer.store(foreign, Ordering::Relaxed);
        match from {
            ReadFrom::Newest => r.resync_newest()?,
            ReadFrom::Oldest => r.resync_oldest()?,
        }
        Ok(r)
    }

    /// Slot `i`'s stamp (Acquire).
    pub(crate) fn stamp(&self, i: usize) -> Result<i64> {
        self.share
            .load_acquire(self.slots.slot(i) + self.slots.stamp_at)
    }

    fn ptr(&self) -> Result<usize> {
        let p = self.share.load_acquire(off::PTR)?;
        usize::try_from(p)
            .ok()
            .filter(|&p| p < self.slots.bufs)
            .ok_or_else(|| {
                self.share.invalid(format!(
                    "write pointer {p} is outside 0..{}",
                    self.slots.bufs
                ))
            })
    }

    /// The global sequence (Acquire), which counts frames from 0 and is never negative. A
    /// negative value is hostile; refusing it keeps every later difference of sequence
    /// numbers (all then in 0..=i64::MAX) free of overflow.
    fn global_seq(&self) -> Result<i64> {
        let now = self.share.load_acquire(off::SEQ)?;
        if now < 0 {
            return Err(self
                .share
                .invalid(format!("global sequence {now} is negative")));
        }
        Ok(now)
    }

    /// The slot count as a sequence distance (validated layouts keep it far below i64::MAX).
    fn bufs_i64(&self) -> i64 {
        i64::try_from(self.slots.bufs).unwrap_or(i64::MAX)
    }

    /// After this the next frame published is the first delivered. ptr is read before seq
    /// (spec §15.7), so no published frame is skipped.
    fn resync_newest(&mut self) -> Result<()> {
        self.pos = self.ptr()?;
        self.last = self.global_seq()?;
        Ok(())
    }

    /// Positions at the oldest slot whose stamp is still one of the last `bufs` frames.
    fn resync_oldest(&mut self) -> Result<()> {
        let now = self.global_seq()?;
        // now ≥ 0, so this cannot overflow; saturating all the same.
        let floor = now.saturating_sub(self.bufs_i64()).saturating_add(1);
        let mut best: Option<(i64, usize)> = None;
        for i in 0..self.slots.bufs {
            let s = self.stamp(i)?;
            if s > 0 && s >= floor && s <= now && best.is_none_or(|(b, _)| s < b) {
                best = Some((s, i));
            }
        }
        match best {
            Some((s, i)) => {
                self.pos = i;
                self.last = s - 1;
                Ok(())
            }
            None => self.resync_newest(),
        }
    }

    /// After an overrun: the next call delivers the newest published frame. Returns how
    /// many frames were skipped.
    fn resync_after_overrun(&mut self) -> Result<u64> {
        let old = self.last;
        // ptr < bufs (checked by `ptr`), so this neither overflows nor wraps.
        let newest = (self.ptr()? + self.slots.bufs - 1) % self.slots.bufs;
        let s = self.stamp(newest)?;
        if s > old {
            self.pos = newest;
            self.last = s - 1;
            // old ≥ 0 (it comes from the non-negative global sequence or a positive stamp
            // minus 1) and s > old, so s - 1 - old is in 0..i64::MAX.
            Ok(u64::try_from(s.saturating_sub(1).saturating_sub(old)).unwrap_or(0))
        } else {
            self.resync_newest()?;
            Ok(self.last.saturating_sub(old).max(0) as u64)
        }
    }

    /// The next slot to deliver, with its sequence number, consumed (the reader moves
    /// past it); an overrun with the number of frames lost; or nothing new.
    pub(crate) fn next_slot(&mut self) -> Result<Next<(usize, u64)>> {
        let now = self.global_seq()?;
        if now <= self.last {
            return Ok(Next::Empty);
        }
        // Both are ≥ 0, so the difference cannot overflow; saturating all the same.
        if now.saturating_sub(self.last) > self.bufs_i64() {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let s = self.stamp(self.pos)?;
        // last < now ≤ i64::MAX, so last + 1 cannot overflow.
        if s == self.last + 1 {
            let slot = self.pos;
            self.last = s;
            // pos < bufs (every value it takes is checked or reduced), so this is
            // (pos + 1) % bufs without a division.
            self.pos = if self.pos + 1 >= self.slots.bufs {
                0
            } else {
                self.pos + 1
            };
            return Ok(Next::Frame((slot, s as u64)));
        }
        if s > self.last + 1 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        // Not stamped yet (libmembus bumps the global seq first), or zeroed because the
        // writer is rewriting it: not published yet.
        Ok(Next::Empty)
    }

    /// Whether `next_slot` would deliver a frame or an overrun now (not "nothing new"); an
    /// unreadable header counts as deliverable, so the error surfaces in `next_slot`.
    #[cfg(feature = "async")]
    pub(crate) fn deliverable(&self) -> bool {
        let Ok(now) = self.share.load_acquire(off::SEQ) else {
            return true;
        };
        if now <= self.last {
            return false;
        }
        if now.saturating_sub(self.last) > self.slots.bufs as i64 {
            return true;
        }
        self.stamp(self.pos).map_or(true, |s| s > self.last)
    }

    /// Whether `next_slot` would find something now.
    pub(crate) fn poll(&self) -> bool {
        self.share
            .load_acquire(off::SEQ)
            .is_ok_and(|s| s > self.last)
    }

    /// How [`select`](crate::select) sleeps on this ring: a futex on the global sequence.
    pub(crate) fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        match self.share.word(off::SEQ) {
            Ok(seq) => crate::select::WaitSpec::futex(crate::select::FutexSpec {
                seq,
                registry: self.share.registry(),
                polling_writer: &self.polling_writer,
                key: (self.share.seg.file_id(), off::SEQ),
                safety: crate::select::SAFETY_MEDIA,
            }),
            // Not reachable after attach (the header was validated), but never panic.
            Err(_) => crate::select::WaitSpec::poll(),
        }
    }

    /// The global publish counter.
    pub(crate) fn seq(&self) -> u64 {
        self.share.load_acquire(off::SEQ).unwrap_or(0).max(0) as u64
    }

    /// True if slot `slot` still carries stamp `seq`: not rewritten (nor, with a membus
    /// writer, being rewritten) since it was delivered.
    pub(crate) fn still(&self, slot: usize, seq: u64) -> bool {
        // Acquire fence: pairs with the writer's Release fence after zeroing the stamp
        // (`SlotWriter::begin`), so any payload read before this that saw new bytes is
        // followed by seeing the zeroed or a newer stamp here.
        fence(Ordering::Acquire);
        self.share
            .load(self.slots.slot(slot) + self.slots.stamp_at)
            .is_ok_and(|s| s == seq as i64)
    }
}

/// The writer's side of the slot protocol (W1, and the in-progress marker that makes
/// torn views detectable).
pub(crate) struct SlotWriter {
    /// Never replaced or moved out while the writer lives: `words` point into its mapping.
    share: MediaSeg,
    pub(crate) slots: Slots,
    pub(crate) ptr: usize,
    seq: i64,
    waker: Waker,
    words: WriterWords,
}

/// The header words every publish loads or stores, bounds- and alignment-checked once when
/// the writer is made (the header lies in every mapping a writer is made from), so that a
/// write pays neither the check nor its error path for them.
struct WriterWords {
    seq: NonNull<AtomicI64>,
    ptr: NonNull<AtomicI64>,
    /// The waiter registry's bitmap word in this (writable) mapping; `None` when the
    /// mapping is read-only, and then every publish asks the registry itself.
    active: Option<NonNull<AtomicI64>>,
}

impl WriterWords {
    fn new(share: &MediaSeg) -> Result<WriterWords> {
        Ok(WriterWords {
            seq: NonNull::from(share.word(off::SEQ)?),
            ptr: NonNull::from(share.word(off::PTR)?),
            active: share
                .seg
                .is_writable()
                .then(|| share.seg.atomic_i64(off::RESERVED).map(NonNull::from))
                .flatten(),
        })
    }
}

// SAFETY: `words` point into `share`'s mapping, which the writer owns for as long as it
// lives (the field is private and never replaced; moving the struct does not move the
// mapping); they are only used as `&AtomicI64`, which is thread-safe. MediaSeg, Slots and
// Waker are Send + Sync.
unsafe impl Send for SlotWriter {}
// SAFETY: see `Send`.
unsafe impl Sync for SlotWriter {}

impl SlotWriter {
    /// A writer of a ring just created, at slot 0 and sequence 0.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the header's words lie outside the mapping (not
    /// after a successful create).
    pub(crate) fn new(share: MediaSeg, slots: Slots) -> Result<SlotWriter> {
        Ok(SlotWriter {
            words: WriterWords::new(&share)?,
            share,
            slots,
            ptr: 0,
            seq: 0,
            waker: Waker::default(),
        })
    }

    /// The share this writer writes.
    #[inline]
    pub(crate) fn share(&self) -> &MediaSeg {
        &self.share
    }

    /// The global sequence word.
    #[inline(always)]
    fn seq_word(&self) -> &AtomicI64 {
        // SAFETY: checked in bounds and aligned in `WriterWords::new`, inside the mapping
        // `self.share` keeps alive for at least the returned borrow of `self`.
        unsafe { self.words.seq.as_ref() }
    }

    /// The write pointer word.
    #[inline(always)]
    fn ptr_word(&self) -> &AtomicI64 {
        // SAFETY: as for `seq_word`.
        unsafe { self.words.ptr.as_ref() }
    }

    /// Whether a waiter may be registered: the registry's bitmap word (SeqCst, the load the
    /// registry's own check makes; see [`Waker::publish`]), so that a writer with nobody
    /// waiting skips building the registry after every frame. `true` when this mapping
    /// cannot tell (read-only, or the word out of range): the caller then makes the full
    /// check.
    #[inline(always)]
    fn maybe_waiters(&self) -> bool {
        match self.words.active {
            // SAFETY: as for `seq_word`.
            Some(active) => unsafe { active.as_ref() }.load(Ordering::SeqCst) != 0,
            None => true,
        }
    }

    /// A writer that continues a ring it attached to: from the header's write pointer and
    /// global sequence, as libmembus's read-write attach does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the write pointer is outside `0..bufs` or the
    /// global sequence is negative or so large that counting on would overflow.
    pub(crate) fn resume(share: MediaSeg, slots: Slots) -> Result<SlotWriter> {
        // Acquire: pairs with the Release stores of ptr and seq in `publish` of the writer
        // that published last (a libmembus writer's plain stores are read all the same).
        let ptr = share.load_acquire(off::PTR)?;
        let seq = share.load_acquire(off::SEQ)?;
        let ptr = usize::try_from(ptr)
            .ok()
            .filter(|&p| p < slots.bufs)
            .ok_or_else(|| {
                share.invalid(format!("write pointer {ptr} is outside 0..{}", slots.bufs))
            })?;
        // Half the range: frames are counted one by one, so this never limits a real ring,
        // and `seq + 1` in `publish` cannot overflow.
        if !(0..=i64::MAX / 2).contains(&seq) {
            return Err(share.invalid(format!(
                "global sequence {seq} is outside 0..={}",
                i64::MAX / 2
            )));
        }
        Ok(SlotWriter {
            words: WriterWords::new(&share)?,
            share,
            slots,
            ptr,
            seq,
            waker: Waker::default(),
        })
    }

    /// Takes up the header's write pointer and sequence where another writer moved them:
    /// a writer attached to the share (or the creator, seen from an attached writer), as
    /// libmembus's writers share the header's pointer and sequence. Writers that take
    /// turns so continue one another's ring; writers publishing at the same time are not
    /// coordinated (see `VideoWriter::attach`). Values out of range are ignored, and the
    /// sequence only moves forward, so a hostile header can neither steer this writer
    /// outside the ring nor make its sequence overflow.
    ///
    /// Returns whether another writer published since this one last did (only then is the
    /// pointer read: a sole writer pays one load per record). A pointer another writer
    /// moved with `set_ptr` alone, without publishing, is therefore taken up after its next
    /// publish.
    #[inline]
    pub(crate) fn sync(&mut self) -> bool {
        // Acquire: pairs with the Release store of seq in the other writer's `publish`, so
        // the pointer it stored before is seen below.
        if self.seq_word().load(Ordering::Acquire) == self.seq {
            return false;
        }
        self.take_up();
        true
    }

    /// The rest of [`sync`](Self::sync), when another writer has published.
    #[cold]
    #[inline(never)]
    fn take_up(&mut self) {
        // Acquire: pairs with the Release stores of ptr in the other writer's `publish` (or
        // `set_ptr`), so the slots it published are seen published.
        let p = self.ptr_word().load(Ordering::Acquire);
        if let Some(p) = usize::try_from(p).ok().filter(|&p| p < self.slots.bufs) {
            self.ptr = p;
        }
        self.seq = self.newest_seq();
    }

    /// This writer's sequence, or a larger one another writer published since: the
    /// header's, taken only when in range (never a smaller one, nor one over
    /// `i64::MAX / 2`, so counting on from it cannot overflow).
    #[inline(always)]
    fn newest_seq(&self) -> i64 {
        // Acquire: as in `sync`.
        let h = self.seq_word().load(Ordering::Acquire);
        if h > self.seq && h <= i64::MAX / 2 {
            h
        } else {
            self.seq
        }
    }

    /// Marks the current slot in progress (after [`sync`](Self::sync)): its stamp is
    /// zeroed, so a reader still looking at its previous frame sees it as overwritten.
    pub(crate) fn begin(&mut self) {
        let _ = self.sync();
        if let Ok(stamp) = self.stamp_word() {
            Self::begin_at(stamp);
        }
    }

    /// The current slot's stamp word, bounds-checked now.
    #[inline(always)]
    fn stamp_word(&self) -> Result<&AtomicI64> {
        self.share
            .word(self.slots.slot(self.ptr) + self.slots.stamp_at)
    }

    /// [`begin`](Self::begin) for a caller that has just called [`sync`](Self::sync) and
    /// holds the current slot's stamp word, checked (mempkt: a word of the descriptor it
    /// checked once for all its stores).
    #[inline(always)]
    pub(crate) fn begin_at(stamp: &AtomicI64) {
        stamp.store(0, Ordering::Relaxed);
        // Release fence: orders the zeroed stamp before the payload stores that follow;
        // pairs with the Acquire fence in `SlotRing::still`.
        fence(Ordering::Release);
    }

    /// Publishes the current slot: stamp, then write pointer, then global sequence, each a
    /// Release store (W1: libmembus bumps the global sequence first). Returns its sequence.
    #[inline]
    pub(crate) fn publish(&mut self) -> Result<u64> {
        let s = self.next_seq();
        let next = self.publish_at(self.stamp_word()?, s);
        Ok(self.published(s, next))
    }

    /// The sequence number the next publish carries: one past this writer's, or past a
    /// larger one another writer published since (never a smaller or out-of-range one), so
    /// it never goes backwards. The slot stays the one `begin` chose (it holds this
    /// writer's data); only the sequence is taken up.
    #[inline(always)]
    pub(crate) fn next_seq(&self) -> i64 {
        self.newest_seq() + 1
    }

    /// The stores of [`publish`](Self::publish), with sequence `s` from
    /// [`next_seq`](Self::next_seq) and `stamp`, the current slot's stamp word (checked by
    /// the caller). Returns the next write pointer; [`published`](Self::published) records
    /// both. `&self`, so that a caller can keep a checked borrow of the share (the stamp's
    /// descriptor) across it.
    #[inline(always)]
    pub(crate) fn publish_at(&self, stamp: &AtomicI64, s: i64) -> usize {
        // Release: the payload and slot fields written before are visible to a reader
        // whose Acquire load sees this stamp (`SlotRing::next_slot`).
        stamp.store(s, Ordering::Release);
        // ptr < bufs (every value it takes is checked or reduced), so this is
        // (ptr + 1) % bufs without a division.
        let next = if self.ptr + 1 >= self.slots.bufs {
            0
        } else {
            self.ptr + 1
        };
        // Release: pairs with the reader's Acquire load of ptr on attach/resync.
        self.ptr_word().store(next as i64, Ordering::Release);
        // Last, a SeqCst swap: a release store (a reader that sees seq s also sees stamp s
        // and the new ptr; pairs with the Acquire load in `SlotRing::next_slot`) and the
        // SeqCst half of the waiter handshake in `Waker::publish`, which wakes registered
        // waiters.
        self.seq_word().swap(s, Ordering::SeqCst);
        if self.maybe_waiters() {
            self.wake();
        }
        next
    }

    /// Records a publish made by [`publish_at`](Self::publish_at): sequence `s`, write
    /// pointer `next`. Returns `s`.
    #[inline(always)]
    pub(crate) fn published(&mut self, s: i64, next: usize) -> u64 {
        self.seq = s;
        self.ptr = next;
        s as u64
    }

    /// Wakes the registered waiters after a publish (out of line: a writer with nobody
    /// waiting never comes here).
    #[cold]
    #[inline(never)]
    fn wake(&self) {
        self.waker
            .publish(low_half(self.seq_word()), self.share.registry().as_ref());
    }

    /// Frames published so far, by this writer and any other (the header's sequence
    /// where it is ahead; see [`sync`](Self::sync)).
    pub(crate) fn seq(&self) -> u64 {
        self.newest_seq() as u64
    }

    /// The write pointer: the header's when it is in range (another writer may have
    /// moved it; see [`sync`](Self::sync)), else this writer's own.
    pub(crate) fn current_ptr(&self) -> usize {
        // Acquire: as in `take_up`.
        usize::try_from(self.ptr_word().load(Ordering::Acquire))
            .ok()
            .filter(|&p| p < self.slots.bufs)
            .unwrap_or(self.ptr)
    }
}

/// Compares expected and found parameters; the error lists every difference.
pub(crate) fn check_params(
    name: &ShareName,
    kind: MediaKind,
    pairs: &[(&str, i64, i64)],
) -> Result<()> {
    let diffs: Vec<String> = pairs
        .iter()
        .filter(|(_, want, got)| want != got)
        .map(|(what, want, got)| format!("{what}: expected {want}, found {got}"))
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::SizeMismatch,
        format!(
            "{} parameters differ: {}",
            kind.type_name(),
            diffs.join("; ")
        ),
    )
    .with_share(name.as_str()))
}

/// libmembus's slot-index API (spec §8.5, §9.5): reads of the header's write pointer and of
/// any slot's stamp, for readers and writers alike.
impl SlotRing {
    /// The header's write pointer (Acquire; pairs with the writer's Release store of ptr in
    /// `SlotWriter::publish`), checked to lie in `0..bufs`.
    pub(crate) fn write_ptr(&self) -> Result<usize> {
        self.ptr()
    }

    /// `slot`'s offset, or `InvalidArgument` when `slot` ≥ bufs.
    pub(crate) fn checked_slot(&self, slot: usize) -> Result<usize> {
        checked_slot(&self.slots, slot)
    }
}

/// `slot`'s offset in `slots`, or `InvalidArgument` when `slot` ≥ bufs.
pub(crate) fn checked_slot(slots: &Slots, slot: usize) -> Result<usize> {
    if slot >= slots.bufs {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("slot {slot} ≥ bufs {}", slots.bufs),
        ));
    }
    Ok(slots.slot(slot))
}

/// libmembus's write-pointer control on the writer (`setPtr`, `next(inc)`).
impl SlotWriter {
    /// Moves the write pointer to `slot` (< bufs) and stores it in the header, as
    /// libmembus's `setPtr` does. Nothing is published.
    pub(crate) fn set_ptr(&mut self, slot: usize) -> Result<()> {
        checked_slot(&self.slots, slot)?;
        // Release: pairs with the reader's Acquire load of ptr (`SlotRing::ptr`).
        self.ptr_word().store(slot as i64, Ordering::Release);
        self.ptr = slot;
        Ok(())
    }

    /// Publishes the current slot like [`publish`](Self::publish), then moves the write
    /// pointer by `inc` slots (any sign; 0 republishes the same slot next time) instead of
    /// one. Returns the new write pointer.
    pub(crate) fn publish_advance(&mut self, inc: i64) -> Result<usize> {
        let _ = self.sync();
        let bufs = self.slots.bufs as i64;
        let next = (self.ptr as i64 + inc.rem_euclid(bufs)).rem_euclid(bufs) as usize;
        self.publish()?;
        if next != self.ptr {
            self.set_ptr(next)?;
        }
        Ok(self.ptr)
    }

    /// Slot `slot`'s stamp (0 = never published or being rewritten).
    pub(crate) fn stamp(&self, slot: usize) -> Result<i64> {
        let at = checked_slot(&self.slots, slot)? + self.slots.stamp_at;
        // Relaxed: the stamp is only reported (this writer's own, or a second writer's),
        // never used to read slot data.
        Ok(self.share.word(at)?.load(Ordering::Relaxed))
    }
}

/// "The global sequence exceeds `last`" as a [`select`](crate::select) source: libmembus's
/// `waitForFrame(ms, lastSeq)` condition, slept on with the ring's futex (woken by membus
/// writers; bounded polling against libmembus writers).
pub(crate) struct SeqAbove<'a> {
    pub(crate) ring: &'a SlotRing,
    pub(crate) last: i64,
}

impl crate::select::sealed::Sealed for SeqAbove<'_> {}

impl crate::select::Selectable for SeqAbove<'_> {
    fn is_ready(&self) -> bool {
        self.ring
            .share
            .load_acquire(off::SEQ)
            .is_ok_and(|s| s > self.last)
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        self.ring.wait_spec()
    }
}

impl SlotRing {
    /// Blocks until the global sequence exceeds `last` or `timeout` passes; returns
    /// whether it does.
    pub(crate) fn wait_seq_above(&self, last: u64, timeout: Duration) -> bool {
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        crate::select::wait_ready(&SeqAbove { ring: self, last }, timeout)
    }
}

/// A watch on a media ring's publish counter that borrows no handle: libmembus's
/// `waitForFrame(ms, lastSeq)` for code that must not hold the writer or reader while it
/// waits (another thread can publish through the same writer meanwhile).
///
/// Made by `seq_watch()` on any memvid, memaud or mempkt writer or reader. It maps the
/// share's header page read-write through a second descriptor of its own (only the waiter
/// registry in the reserved words is written through it), so it stays valid after the
/// handle it came from is dropped, and sleeps on the same futex as the handle's own waits:
/// membus writers wake it; against a libmembus/pymembus writer it polls every millisecond.
///
/// ```no_run
/// use membus::memvid::{VideoParams, VideoWriter};
/// use membus::layout::media::VideoFormat;
/// use std::time::Duration;
///
/// # fn main() -> membus::Result<()> {
/// let mut writer = VideoWriter::create("/camera", &VideoParams::new(64, 48, VideoFormat::Gray8, 30, 4))?;
/// let watch = writer.seq_watch()?;
/// std::thread::scope(|s| {
///     s.spawn(|| watch.wait_seq_above(0, Duration::from_secs(1)));
///     writer.publish()
/// })?;
/// assert_eq!(watch.seq(), 1);
/// # Ok(()) }
/// ```
pub struct SeqWatch {
    map: PrefixMap,
    file: FileId,
    /// Learned while waiting: the writer publishes without waking (libmembus).
    polling_writer: AtomicBool,
}

impl std::fmt::Debug for SeqWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqWatch")
            .field("seq", &self.seq())
            .finish()
    }
}

impl SeqWatch {
    /// A watch on `share`'s global sequence.
    pub(crate) fn new(share: &MediaSeg) -> Result<SeqWatch> {
        let map = share.seg.map_prefix_rw(off::CLASS).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ErrorKind::AccessDenied
            } else {
                ErrorKind::MapFailed
            };
            Error::new(kind, "mapping the header's wait words read-write")
                .with_share(share.name().as_str())
                .with_os_error(e)
        })?;
        let w = SeqWatch {
            map,
            file: share.seg.file_id(),
            // Without a live membus owner the writer is libmembus/pymembus (or a membus
            // writer attached to its share, which wakes, and is then learned): poll.
            polling_writer: AtomicBool::new(
                !Segment::has_live_owner(share.name()).unwrap_or(false),
            ),
        };
        if w.map.atomic_i64(off::SEQ).is_none()
            || w.map
                .atomic_i64_slice(off::RESERVED + 8, REGISTRY_SLOTS)
                .is_none()
        {
            return Err(share.invalid("the header page is shorter than its wait words".into()));
        }
        Ok(w)
    }

    fn seq_word(&self) -> Option<&AtomicI64> {
        self.map.atomic_i64(off::SEQ)
    }

    /// The global publish counter (Acquire: pairs with the writer's Release swap of the
    /// global sequence in its publish). 0 if the share's counter is negative (hostile).
    pub fn seq(&self) -> u64 {
        self.seq_word()
            .map_or(0, |w| w.load(Ordering::Acquire).max(0) as u64)
    }

    /// Blocks until the global publish counter exceeds `last` or `timeout` passes; returns
    /// whether it does.
    pub fn wait_seq_above(&self, last: u64, timeout: Duration) -> bool {
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        crate::select::wait_ready(&WatchAbove { watch: self, last }, timeout)
    }
}

/// "The watched global sequence exceeds `last`" as a [`select`](crate::select) source.
struct WatchAbove<'a> {
    watch: &'a SeqWatch,
    last: i64,
}

impl crate::select::sealed::Sealed for WatchAbove<'_> {}

impl crate::select::Selectable for WatchAbove<'_> {
    fn is_ready(&self) -> bool {
        // Acquire: as in `SeqWatch::seq`.
        self.watch
            .seq_word()
            .is_some_and(|w| w.load(Ordering::Acquire) > self.last)
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        let m = &self.watch.map;
        match (
            m.atomic_i64(off::SEQ),
            m.atomic_i64(off::RESERVED),
            m.atomic_i64_slice(off::RESERVED + 8, REGISTRY_SLOTS),
        ) {
            (Some(seq), Some(active), Some(pids)) => {
                crate::select::WaitSpec::futex(crate::select::FutexSpec {
                    seq,
                    registry: Some(Registry::new(self.watch.file, off::RESERVED, active, pids)),
                    polling_writer: &self.watch.polling_writer,
                    key: (self.watch.file, off::SEQ),
                    safety: crate::select::SAFETY_MEDIA,
                })
            }
            // Checked in `SeqWatch::new`; never panic all the same.
            _ => crate::select::WaitSpec::poll(),
        }
    }
}

/// The API memvid and memaud writers (and readers) share: the share's identity and
/// libmembus's slot-index API (pymembus's `getPtr`, `setPtr`, `next(inc)`,
/// `getFrameSeq(idx)`, `getBuf(idx)`, `waitForFrame`). `writer` is for a type with fields
/// `w: SlotWriter` and `layout` (with `.frames`), `reader` for one with `ring: SlotRing`
/// and `layout`. `$fill` names the writer's method that fills the current slot (for the
/// docs).
macro_rules! ring_api {
    (writer $t:ty, $fill:literal) => {
        /// libmembus's slot-index API on the writer (pymembus's `getBuf(idx)`, `getPtr`,
        /// `setPtr`, `next(inc)`, `getFrameSeq(idx)`): any slot, not only the current
        /// one; and the share's identity (`getFourcc`, `getGuid`, `getMeta`).
        impl $t {
            #[doc = concat!("The write pointer: the slot [`", $fill, "`](Self::", $fill, ") fills and")]
            /// [`publish`](Self::publish) publishes next.
            pub fn ptr(&self) -> usize {
                self.w.current_ptr()
            }

            /// Moves the write pointer to `slot` (libmembus's `setPtr`); nothing is
            /// published.
            ///
            /// # Errors
            /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
            /// `slot` ≥ bufs.
            pub fn set_ptr(&mut self, slot: usize) -> $crate::Result<()> {
                self.w.set_ptr(slot)
            }

            /// Publishes the current slot as [`publish`](Self::publish) does, then moves
            /// the write pointer by `inc` slots instead of one (libmembus's `next(inc)`: 0
            /// stays on the slot, negative values go back). Returns the new write pointer.
            ///
            /// # Errors
            /// As for [`publish`](Self::publish).
            pub fn publish_advance(&mut self, inc: i64) -> $crate::Result<usize> {
                self.w.publish_advance(inc)
            }

            /// Slot `slot`'s publish stamp: the sequence number of the frame it holds, 0 if
            /// none was published there (or it is being rewritten).
            ///
            /// # Errors
            /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
            /// `slot` ≥ bufs.
            pub fn slot_seq(&self, slot: usize) -> $crate::Result<u64> {
                Ok(self.w.stamp(slot)?.max(0) as u64)
            }

            /// A raw pointer to slot `slot`'s payload (`layout().frames.payload` bytes),
            /// for exporting it to code that cannot borrow (a Python buffer, a GPU upload).
            ///
            /// # Errors
            /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
            /// `slot` ≥ bufs.
            ///
            /// # Safety
            /// The pointer is valid for reads and writes of `layout().frames.payload` bytes
            /// only while this writer is alive (dropping it unmaps the share); the caller
            /// must not use it afterwards. The bytes are shared with other processes, which
            /// may read and write them at any time: the caller must not create Rust
            /// references to them except to types for which any bit pattern is valid and
            /// concurrent changes are acceptable (`u8` and other bytemuck `Pod` types), and
            /// must not rely on them staying unchanged.
            pub unsafe fn payload_ptr(&self, slot: usize) -> $crate::Result<*mut u8> {
                $crate::media::checked_slot(&self.w.slots, slot)?;
                self.w.share().bytes(
                    self.layout.frames.payload_at(slot),
                    self.layout.frames.payload,
                )
            }

            /// fourcc (0 = none), as stored in the share.
            pub fn fourcc(&self) -> u32 {
                self.w.share().fourcc()
            }

            /// GUID bytes (all zero = none), as stored in the share.
            pub fn guid(&self) -> [u8; 16] {
                self.w.share().guid()
            }

            /// The main user buffer, as stored in the share.
            ///
            /// # Errors
            /// [`ErrorKind::InvalidLayout`](crate::ErrorKind::InvalidLayout) if it does
            /// not fit the share.
            pub fn meta(&self) -> $crate::Result<Vec<u8>> {
                self.w.share().meta(240, self.layout.frames.metasize)
            }

            /// A [`SeqWatch`](crate::SeqWatch) on this ring's publish counter: waits for
            /// frames (from this writer on another thread, or another writer) without
            /// borrowing the writer.
            ///
            /// # Errors
            /// [`ErrorKind::MapFailed`](crate::ErrorKind::MapFailed) when the header page
            /// cannot be mapped a second time.
            pub fn seq_watch(&self) -> $crate::Result<$crate::SeqWatch> {
                $crate::media::SeqWatch::new(self.w.share())
            }
        }
    };
    (reader_identity $t:ty, $next:literal) => {
        /// What every media reader (memvid, memaud, mempkt) shares: polling, waiting and
        /// the share's identity.
        impl $t {
            #[doc = concat!("Whether [`", $next, "`](Self::", $next, ") would find something now.")]
            pub fn poll(&self) -> bool {
                self.ring.poll()
            }

            /// Blocks until [`poll`](Self::poll) is true or `timeout` passes, without
            /// consuming anything; returns `poll()`. A membus writer wakes the waiter
            /// through a futex in the share; against a libmembus writer this polls every
            /// millisecond. Also a source for [`select`](crate::select::select).
            pub fn wait_ready(&self, timeout: std::time::Duration) -> bool {
                $crate::select::wait_ready(self, timeout)
            }

            /// The writer's session id.
            pub fn session_id(&self) -> i64 {
                self.ring.share.session_id()
            }

            /// The global publish counter.
            pub fn seq(&self) -> u64 {
                self.ring.seq()
            }

            /// fourcc (0 = none).
            pub fn fourcc(&self) -> u32 {
                self.ring.share.fourcc()
            }

            /// GUID bytes (all zero = none).
            pub fn guid(&self) -> [u8; 16] {
                self.ring.share.guid()
            }
        }
    };
    (reader $t:ty) => {
        $crate::media::ring_api!(reader_identity $t, "next");

        /// What memvid and memaud readers share besides: libmembus's slot-index API (the
        /// header's write pointer, raw payload pointers and waits on the publish counter:
        /// pymembus's `getPtr`, `getBuf(idx)`, `waitForFrame`).
        impl $t {
            /// The main user buffer.
            ///
            /// # Errors
            /// [`ErrorKind::InvalidLayout`](crate::ErrorKind::InvalidLayout) if it does
            /// not fit the share.
            pub fn meta(&self) -> $crate::Result<Vec<u8>> {
                self.ring.share.meta(240, self.layout.frames.metasize)
            }

            /// Blocks until the global publish counter ([`seq`](Self::seq)) exceeds `last`
            /// or `timeout` passes, and returns whether it does: libmembus's
            /// `waitForFrame(ms, lastSeq)`, independent of this reader's own position.
            /// Sleeps on the share's futex like [`wait_ready`](Self::wait_ready) (membus
            /// writers wake it; against a libmembus writer it polls every millisecond).
            pub fn wait_seq_above(&self, last: u64, timeout: std::time::Duration) -> bool {
                self.ring.wait_seq_above(last, timeout)
            }

            /// The header's write pointer: the slot the writer fills next (the newest
            /// published frame is one before it).
            ///
            /// # Errors
            /// [`ErrorKind::InvalidLayout`](crate::ErrorKind::InvalidLayout) when the
            /// header's pointer is outside `0..bufs`.
            pub fn write_ptr(&self) -> $crate::Result<usize> {
                self.ring.write_ptr()
            }

            /// Slot `slot`'s publish stamp: the sequence number of the frame it holds, 0 if
            /// none was published there (or it is being rewritten).
            ///
            /// # Errors
            /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
            /// `slot` ≥ bufs.
            pub fn slot_seq(&self, slot: usize) -> $crate::Result<u64> {
                self.ring.checked_slot(slot)?;
                Ok(self.ring.stamp(slot)?.max(0) as u64)
            }

            /// A raw read-only pointer to slot `slot`'s payload (`layout().frames.payload`
            /// bytes), for exporting it to code that cannot borrow (a Python buffer).
            ///
            /// # Errors
            /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when
            /// `slot` ≥ bufs.
            ///
            /// # Safety
            /// The pointer is valid for reads of `layout().frames.payload` bytes only while
            /// this reader is alive (dropping it unmaps the share); the mapping is
            /// read-only, so writing through it faults. The writer may change the bytes at
            /// any time: the caller must not create Rust references to them except to types
            /// for which any bit pattern is valid (`u8` and other bytemuck `Pod` types), and
            /// must not rely on them staying unchanged.
            pub unsafe fn payload_ptr(&self, slot: usize) -> $crate::Result<*const u8> {
                self.ring.checked_slot(slot)?;
                self.ring
                    .share
                    .bytes(
                        self.layout.frames.payload_at(slot),
                        self.layout.frames.payload,
                    )
                    .map(|p| p.cast_const())
            }

            /// A [`SeqWatch`](crate::SeqWatch) on this ring's publish counter, usable
            /// without borrowing the reader.
            ///
            /// # Errors
            /// [`ErrorKind::AccessDenied`](crate::ErrorKind::AccessDenied) when the share's
            /// mode does not let this process map its header read-write (then use
            /// [`wait_seq_above`](Self::wait_seq_above));
            /// [`ErrorKind::MapFailed`](crate::ErrorKind::MapFailed) for other failures.
            pub fn seq_watch(&self) -> $crate::Result<$crate::SeqWatch> {
                $crate::media::SeqWatch::new(&self.ring.share)
            }
        }
    };
}
pub(crate) use ring_api;
