//! mempkt: a variable-length record ring: a descriptor ring plus a byte arena,
//! one writer and any number of readers, lock-free, byte-compatible with libmembus 2.1 and
//! pymembus 2.2.
//!
//! ```no_run
//! use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, RecordMeta};
//! use membus::Next;
//!
//! # fn main() -> membus::Result<()> {
//! let mut w = PacketWriter::create("/rtp", &PacketParams::new(64, 1 << 20, 64 * 1024))?;
//! let mut r = PacketReader::attach("/rtp")?;
//! w.write(b"access unit", &RecordMeta { kind: PktKind::Video, track: 1, pts: 9000, meta: b"key" })?;
//! let (mut payload, mut meta) = (Vec::new(), Vec::new());
//! if let Next::Frame(info) = r.next_into(&mut payload, &mut meta)? {
//!     println!("#{} {:?} track {} pts {}: {} bytes", info.seq, info.kind, info.track, info.pts, payload.len());
//! }
//! # Ok(()) }
//! ```
//!
//! Beyond libmembus, invisibly to its peers: a membus writer zeroes a descriptor's sequence
//! before rewriting it (readers never accept a mix of old and new fields), publishes the
//! arena cursor *before* copying a record (the lap check accounts for a write in
//! flight), and publishes in the order descriptor, pointer, global sequence. Readers
//! copy a record out, then check its descriptor and the arena cursor again, so a record is
//! delivered intact or reported lost.

use std::sync::atomic::{fence, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::media::{MediaKind, PktLayout, DESC_STRIDE};
use crate::media::{check_params, Identity, MediaSeg, Next, ReadFrom, SlotRing, SlotWriter, Slots};
use crate::name::{IntoShareName, ShareName};
use crate::sys::copy::copy_to_shared;
use crate::sys::shm::Access;

/// Descriptor field offsets.
const D_OFFSET: usize = 0;
const D_LEN: usize = 8;
const D_WCURSOR: usize = 16;
const D_PTS: usize = 24;
const D_KIND: usize = 32;
const D_TRACK: usize = 40;
const D_USERLEN: usize = 48;
const D_SEQ: usize = 56;
/// Header field offsets after the prefix.
const H_MAXREC: usize = 176;
const H_WCURSOR: usize = 184;

/// `pkt_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PktKind {
    /// 0: plain data.
    Data,
    /// 1: a compressed video access unit.
    Video,
    /// 2: a compressed audio frame.
    Audio,
    /// Any other stored value.
    Other(i64),
}

impl PktKind {
    /// The stored value.
    pub fn value(self) -> i64 {
        match self {
            PktKind::Data => 0,
            PktKind::Video => 1,
            PktKind::Audio => 2,
            PktKind::Other(v) => v,
        }
    }

    /// The kind for a stored value.
    pub fn from_value(v: i64) -> PktKind {
        match v {
            0 => PktKind::Data,
            1 => PktKind::Video,
            2 => PktKind::Audio,
            v => PktKind::Other(v),
        }
    }
}

/// Per-record fields for [`PacketWriter::write`].
#[derive(Clone, Copy, Debug)]
pub struct RecordMeta<'a> {
    /// Record kind.
    pub kind: PktKind,
    /// Stream or track id.
    pub track: i64,
    /// Presentation timestamp.
    pub pts: i64,
    /// Per-record metadata bytes (stored before the payload).
    pub meta: &'a [u8],
}

impl Default for RecordMeta<'_> {
    fn default() -> Self {
        RecordMeta {
            kind: PktKind::Data,
            track: 0,
            pts: 0,
            meta: &[],
        }
    }
}

/// What a reader learns about a record besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Sequence number.
    pub seq: u64,
    /// Arena cursor at the record's start.
    pub wcursor: i64,
    /// Presentation timestamp.
    pub pts: i64,
    /// Record kind.
    pub kind: PktKind,
    /// Stream or track id.
    pub track: i64,
    /// Payload bytes.
    pub len: usize,
    /// Metadata bytes.
    pub meta_len: usize,
}

/// A record copied out of the ring: its info, payload and metadata (the items of
/// [`PacketReader::stream`]).
#[cfg(feature = "async")]
pub type OwnedRecord = (RecordInfo, Vec<u8>, Vec<u8>);

/// Parameters of a mempkt share.
#[derive(Clone, Debug)]
pub struct PacketParams {
    /// Descriptors (records the ring remembers).
    pub bufs: u32,
    /// Arena bytes (rounded up to `align`).
    pub arenasz: usize,
    /// Largest record, payload plus metadata.
    pub maxrec: usize,
    /// Record alignment, a power of two ≥ 8; 0 = 64.
    pub align: usize,
    /// fourcc and main user buffer (libmembus's mempkt takes a GUID too).
    pub identity: Identity,
    /// Permission bits (default 0o600; libmembus uses 0o644).
    pub mode: u32,
}

impl PacketParams {
    /// The required parameters; the rest take their defaults.
    pub fn new(bufs: u32, arenasz: usize, maxrec: usize) -> PacketParams {
        PacketParams {
            bufs,
            arenasz,
            maxrec,
            align: 0,
            identity: Identity::default(),
            mode: 0o600,
        }
    }

    fn layout(&self) -> Result<PktLayout> {
        PktLayout::new(
            i64::from(self.bufs),
            self.arenasz as i64,
            self.maxrec as i64,
            self.align as i64,
            self.identity.meta.len() as i64,
        )
    }
}

/// The writing end of a mempkt share.
pub struct PacketWriter {
    w: SlotWriter,
    layout: PktLayout,
    wcursor: i64,
    /// `(wcursor, wcursor % arenasz)` as of the last write, so the next write needs no
    /// division while no other writer moved the cursor.
    phys: (i64, i64),
}

impl PacketWriter {
    /// Creates the share; an existing one is replaced only if no live membus writer owns
    /// it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for parameters libmembus rejects;
    /// [`ErrorKind::CreateFailed`] when a live writer owns the name or /dev/shm is full.
    pub fn create(name: impl IntoShareName, params: &PacketParams) -> Result<PacketWriter> {
        let name = name.into_share_name()?;
        let l = params.layout().map_err(|e| e.with_share(name.as_str()))?;
        let share = MediaSeg::create(&name, l.size, params.mode)?;
        let class = [
            l.arenasz as i64,
            l.maxrec as i64,
            0,
            DESC_STRIDE as i64,
            l.descoffset as i64,
            l.arenaoffset as i64,
        ];
        share.write_header(
            MediaKind::Pkt,
            l.size,
            l.bufs,
            l.align,
            &params.identity,
            &class,
            216,
        )?;
        Ok(PacketWriter {
            w: SlotWriter::new(share, slots(&l))?,
            layout: l,
            wcursor: 0,
            phys: (0, 0),
        })
    }

    /// Attaches read-write to an existing share and continues it, as
    /// [`VideoWriter::attach`](crate::memvid::VideoWriter::attach) does for memvid: the
    /// header is validated exactly as [`PacketReader::attach_with`] validates it, `params`
    /// must match it, writing continues from the header's write pointer, global sequence
    /// and arena cursor, and the owner lock is never taken (only the creator removes the
    /// share; writers taking turns continue one another's ring, writers at the same time are
    /// not coordinated).
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS
    /// ([`ErrorKind::AccessDenied`] when the share's mode forbids writing);
    /// [`ErrorKind::InvalidLayout`] for a header that is not a valid mempkt header or
    /// whose write pointer, sequence or arena cursor is out of range;
    /// [`ErrorKind::SizeMismatch`] naming every parameter that differs from `params`;
    /// [`ErrorKind::InvalidArgument`] for invalid `params`.
    pub fn attach(name: impl IntoShareName, params: &PacketParams) -> Result<PacketWriter> {
        let name = name.into_share_name()?;
        let (share, l) = MediaSeg::attach_layout(
            &name,
            MediaKind::Pkt,
            Access::ReadWrite,
            PktLayout::from_header,
            |l| check_expected(&name, l, params),
        )?;
        // Acquire: pairs with the Release store of the cursor in `write` of the writer
        // that wrote last.
        let wcursor = share.load_acquire(H_WCURSOR)?;
        // Half the range: the cursor grows by at most a record plus the arena per write,
        // so this never limits a real ring, and `write`'s sums cannot overflow.
        if !(0..=i64::MAX / 2).contains(&wcursor) {
            return Err(share.invalid(format!(
                "arena cursor {wcursor} is outside 0..={}",
                i64::MAX / 2
            )));
        }
        Ok(PacketWriter {
            w: SlotWriter::resume(share, slots(&l))?,
            layout: l,
            wcursor,
            // No cursor is negative: the first write computes the remainder.
            phys: (-1, 0),
        })
    }

    /// fourcc (0 = none), as stored in the share.
    pub fn fourcc(&self) -> u32 {
        self.w.share().fourcc()
    }

    /// The main user buffer, as stored in the share.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] if it does not fit the share.
    pub fn meta(&self) -> Result<Vec<u8>> {
        self.w.share().meta(216, self.layout.metasize)
    }

    /// A [`SeqWatch`](crate::SeqWatch) on this ring's publish counter: waits for records
    /// (from this writer on another thread, or another writer) without borrowing the
    /// writer.
    ///
    /// # Errors
    /// [`ErrorKind::MapFailed`] when the header page cannot be mapped a second time.
    pub fn seq_watch(&self) -> Result<crate::SeqWatch> {
        crate::media::SeqWatch::new(self.w.share())
    }

    fn store(&self, at: usize, v: i64, order: Ordering) -> Result<()> {
        self.w.share().word(at)?.store(v, order);
        Ok(())
    }

    /// The error for a record of `total` bytes that `write` refuses (out of line: the
    /// write's own path stays short).
    #[cold]
    #[inline(never)]
    fn bad_size(&self, total: usize) -> Error {
        let name = self.w.share().name().as_str();
        if total == 0 {
            return Error::new(ErrorKind::InvalidArgument, "empty records are not allowed")
                .with_share(name);
        }
        let maxrec = self.layout.maxrec;
        Error::new(
            ErrorKind::MessageTooLarge,
            format!(
                "a record of {total} bytes (payload and metadata) exceeds the share's \
                 maxrec of {maxrec} bytes"
            ),
        )
        .with_share(name)
        .with_sizes(maxrec as u64, total as u64)
    }

    /// Writes one record; returns its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an empty record; [`ErrorKind::MessageTooLarge`]
    /// when payload plus metadata exceed `maxrec` (nothing is written).
    pub fn write(&mut self, payload: &[u8], rec: &RecordMeta<'_>) -> Result<u64> {
        let l = &self.layout;
        let total = payload.len() + rec.meta.len();
        if total == 0 || total > l.maxrec {
            return Err(self.bad_size(total));
        }
        // Take up another writer's pointer, sequence and arena cursor (see
        // `SlotWriter::sync`; the cursor, like the sequence, only moves forward and is
        // ignored when out of range). Acquire: pairs with the Release store of the cursor
        // below in the other writer's `write`.
        if self.w.sync() {
            if let Ok(hw) = self.w.share().load_acquire(H_WCURSOR) {
                if hw > self.wcursor && hw <= i64::MAX / 2 {
                    self.wcursor = hw;
                }
            }
        }
        // `align` is a power of two (`PktLayout` checks it) and `total` ≤ maxrec ≤ the
        // arena, so rounding up is a mask and cannot overflow.
        debug_assert!(l.align.is_power_of_two());
        let stride = ((total + (l.align - 1)) & !(l.align - 1)) as i64;
        let arena = l.arenasz as i64;
        let mut wc = self.wcursor;
        let mut phys = if self.phys.0 == wc {
            self.phys.1
        } else {
            wc % arena
        };
        if phys + stride > arena {
            wc += arena - phys;
            phys = 0;
        }
        // Every place this record touches, checked before anything is written: the
        // descriptor's words (one check for all of them) and the record's bytes.
        // The descriptor is the writer's current slot (`slots` below lays them out alike).
        debug_assert_eq!(l.desc(self.w.ptr), self.w.slots.slot(self.w.ptr));
        let desc = self.w.share().words(l.desc(self.w.ptr), DESC_STRIDE / 8)?;
        let at = l.arenaoffset + phys as usize;
        let dst = self.w.share().bytes(at, total)?;
        // W3: publish the reservation first. Release: pairs with the reader's Acquire fence
        // before its lap check, so a reader whose copy overlapped these bytes sees a cursor
        // that reveals it.
        self.store(H_WCURSOR, wc + stride, Ordering::Release)?;
        // W2: mark the descriptor in progress (its seq zeroed, with a Release fence) before
        // rewriting it (synced above). The descriptor's seq is the slot's stamp.
        let stamp = &desc[D_SEQ / 8];
        SlotWriter::begin_at(stamp);
        // SAFETY: `dst` was bounds-checked above for `total` = meta + payload bytes of this
        // writer's writable mapping, which `self` keeps mapped; the two copies fill it
        // back to back; `copy_to_shared` tolerates readers of other processes reading
        // the bytes meanwhile (they detect it by the cursor stored above).
        unsafe {
            if !rec.meta.is_empty() {
                copy_to_shared(dst, rec.meta);
            }
            copy_to_shared(dst.add(rec.meta.len()), payload);
        }
        for (field, v) in [
            (D_OFFSET, phys),
            (D_LEN, payload.len() as i64),
            (D_WCURSOR, wc),
            (D_PTS, rec.pts),
            (D_KIND, rec.kind.value()),
            (D_TRACK, rec.track),
            (D_USERLEN, rec.meta.len() as i64),
        ] {
            desc[field / 8].store(v, Ordering::Relaxed);
        }
        // Descriptor seq, ptr, then global seq, each Release (W1).
        let s = self.w.next_seq();
        let next = self.w.publish_at(stamp, s);
        let s = self.w.published(s, next);
        self.wcursor = wc + stride;
        // phys + stride ≤ arena (checked above), so this is (wc + stride) % arena.
        self.phys = (
            self.wcursor,
            if phys + stride == arena {
                0
            } else {
                phys + stride
            },
        );
        Ok(s)
    }

    /// The layout.
    pub fn layout(&self) -> &PktLayout {
        &self.layout
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.w.share().name()
    }

    /// The session id.
    pub fn session_id(&self) -> i64 {
        self.w.share().session_id()
    }
}

fn slots(l: &PktLayout) -> Slots {
    Slots {
        base: l.descoffset,
        stride: DESC_STRIDE,
        bufs: l.bufs,
        stamp_at: D_SEQ,
    }
}

/// Checks an attached share's layout against the parameters the caller expects; the
/// error names every difference.
fn check_expected(name: &ShareName, layout: &PktLayout, p: &PacketParams) -> Result<()> {
    let want = p.layout().map_err(|e| e.with_share(name.as_str()))?;
    check_params(
        name,
        MediaKind::Pkt,
        &[
            ("bufs", want.bufs as i64, layout.bufs as i64),
            ("arenasz", want.arenasz as i64, layout.arenasz as i64),
            ("maxrec", want.maxrec as i64, layout.maxrec as i64),
            ("align", want.align as i64, layout.align as i64),
            ("size", want.size as i64, layout.size as i64),
        ],
    )
}

/// Options for attaching a reader.
#[derive(Clone, Debug, Default)]
pub struct ReaderOptions {
    /// Where to start.
    pub from: ReadFrom,
    /// Require these parameters; a mismatch error lists every difference.
    pub expect: Option<PacketParams>,
}

/// The reading end of a mempkt share: mapped read-only.
pub struct PacketReader {
    ring: SlotRing,
    layout: PktLayout,
}

/// A descriptor taken by the reader: its fields and where its bytes are, or why it cannot
/// be read.
enum Taken {
    Record {
        desc: usize,
        at: usize,
        info: RecordInfo,
    },
    Unreadable,
}

impl PacketReader {
    /// Attaches read-only; starts at the newest record.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS;
    /// [`ErrorKind::InvalidLayout`] when the header is not a valid mempkt header.
    pub fn attach(name: impl IntoShareName) -> Result<PacketReader> {
        Self::attach_with(name, &ReaderOptions::default())
    }

    /// [`attach`](Self::attach) with options.
    ///
    /// # Errors
    /// As for [`attach`](Self::attach).
    pub fn attach_with(name: impl IntoShareName, opts: &ReaderOptions) -> Result<PacketReader> {
        let name = name.into_share_name()?;
        let (share, layout) = MediaSeg::attach_layout(
            &name,
            MediaKind::Pkt,
            Access::ReadOnly,
            PktLayout::from_header,
            |l| match &opts.expect {
                Some(p) => check_expected(&name, l, p),
                None => Ok(()),
            },
        )?;
        let ring = SlotRing::new(share, slots(&layout), opts.from)?;
        Ok(PacketReader { ring, layout })
    }

    /// Takes the next descriptor: checks its fields against the arena, consuming its
    /// sequence number whatever the outcome (it is delivered or reported lost).
    fn take(&mut self) -> Result<Next<Taken>> {
        let (slot, seq) = match self.ring.next_slot()? {
            Next::Frame(x) => x,
            Next::Overrun { lost } => return Ok(Next::Overrun { lost }),
            Next::Empty => return Ok(Next::Empty),
        };
        let desc = self.layout.desc(slot);
        // Relaxed field loads: ordered by the Acquire load of the stamp in `next_slot`.
        match read_desc(&self.ring.share, &self.layout, desc, seq)? {
            Some((at, info)) => Ok(Next::Frame(Taken::Record { desc, at, info })),
            // A torn descriptor (libmembus writers do not mark it in progress) or a hostile
            // one: the record cannot be read.
            None => Ok(Next::Frame(Taken::Unreadable)),
        }
    }

    /// True if descriptor `desc` still carries `info.seq` and the arena cursor shows no
    /// rewrite of its bytes (a membus writer publishes its reservation before copying).
    fn intact(&self, desc: usize, info: &RecordInfo) -> bool {
        // Acquire fence: pairs with the writer's Release fence after zeroing a descriptor
        // (`SlotWriter::begin`) and its Release store of the reservation cursor: if a copy
        // before this saw any byte of a newer record, one of the checks fails.
        fence(Ordering::Acquire);
        let same = self
            .ring
            .share
            .load(desc + D_SEQ)
            .is_ok_and(|s| s == info.seq as i64);
        let cursor = self.ring.share.load(H_WCURSOR).unwrap_or(i64::MAX);
        same && cursor.saturating_sub(info.wcursor) <= self.layout.arenasz as i64
    }

    /// Copies the next record's payload and metadata into the caller's buffers (cleared
    /// first; no allocation once they are large enough), or reports an overrun (records
    /// lost, including one torn while it was copied) or nothing new.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the write pointer is corrupt.
    pub fn next_into(
        &mut self,
        payload: &mut Vec<u8>,
        meta: &mut Vec<u8>,
    ) -> Result<Next<RecordInfo>> {
        let (desc, at, info) = match self.take()? {
            Next::Frame(Taken::Record { desc, at, info }) => (desc, at, info),
            Next::Frame(Taken::Unreadable) => return Ok(Next::Overrun { lost: 1 }),
            Next::Overrun { lost } => return Ok(Next::Overrun { lost }),
            Next::Empty => return Ok(Next::Empty),
        };
        self.ring.share.copy_out_vec(at, info.meta_len, meta)?;
        self.ring
            .share
            .copy_out_vec(at + info.meta_len, info.len, payload)?;
        if !self.intact(desc, &info) {
            return Ok(Next::Overrun { lost: 1 });
        }
        Ok(Next::Frame(info))
    }

    /// The next record as a zero-copy view of the arena, checked like
    /// [`next_into`](Self::next_into) except that the bytes are not copied: read them
    /// through the view, then call [`RecordView::is_intact`] to learn whether the writer
    /// overwrote them meanwhile.
    ///
    /// # Errors
    /// As for [`next_into`](Self::next_into).
    pub fn next_view(&mut self) -> Result<Next<RecordView<'_>>> {
        let (desc, at, info) = match self.take()? {
            Next::Frame(Taken::Record { desc, at, info }) => (desc, at, info),
            Next::Frame(Taken::Unreadable) => return Ok(Next::Overrun { lost: 1 }),
            Next::Overrun { lost } => return Ok(Next::Overrun { lost }),
            Next::Empty => return Ok(Next::Empty),
        };
        let meta = self.ring.share.bytes(at, info.meta_len)?;
        let payload = self.ring.share.bytes(at + info.meta_len, info.len)?;
        Ok(Next::Frame(RecordView {
            reader: self,
            desc,
            meta,
            payload,
            info,
        }))
    }

    /// Waits, without blocking a thread, for the next record (copied into the buffers as by
    /// [`next_into`](Self::next_into)) or an overrun; never [`Next::Empty`].
    /// Cancellation-safe: the reader moves only in the poll that returns.
    ///
    /// # Errors
    /// As for [`next_into`](Self::next_into).
    #[cfg(feature = "async")]
    pub async fn next_into_async(
        &mut self,
        payload: &mut Vec<u8>,
        meta: &mut Vec<u8>,
    ) -> Result<Next<RecordInfo>> {
        loop {
            crate::aio::until(&*self, || self.ring.deliverable()).await;
            match self.next_into(payload, meta)? {
                Next::Empty => {}
                got => return Ok(got),
            }
        }
    }

    /// The records as a [`Stream`](crate::aio::Stream) that never ends: each item is a
    /// record (info, payload, metadata) or an overrun.
    #[cfg(feature = "async")]
    pub fn stream(&mut self) -> crate::aio::ItemStream<'_, Self, Result<Next<OwnedRecord>>> {
        crate::aio::ItemStream::new(self, |r| {
            Box::pin(async move {
                let (mut payload, mut meta) = (Vec::new(), Vec::new());
                let item = r
                    .next_into_async(&mut payload, &mut meta)
                    .await
                    .map(|n| match n {
                        Next::Frame(info) => Next::Frame((info, payload, meta)),
                        Next::Overrun { lost } => Next::Overrun { lost },
                        Next::Empty => Next::Empty,
                    });
                (item, r)
            })
        })
    }

    /// The layout.
    pub fn layout(&self) -> &PktLayout {
        &self.layout
    }

    /// The main user buffer.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] if it does not fit the share.
    pub fn meta(&self) -> Result<Vec<u8>> {
        self.ring.share.meta(216, self.layout.metasize)
    }

    /// The arena cursor.
    pub fn wcursor(&self) -> i64 {
        self.ring.share.load_acquire(H_WCURSOR).unwrap_or(0)
    }

    /// The largest record.
    pub fn maxrec(&self) -> usize {
        self.ring
            .share
            .load(H_MAXREC)
            .map_or(0, |v| v.max(0) as usize)
    }
}

/// A record copied out of the ring by index ([`PacketReader::record_at`],
/// [`PacketWriter::record_at`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The descriptor's fields (`seq` is its stamp).
    pub info: RecordInfo,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The record's metadata bytes.
    pub meta: Vec<u8>,
}

/// The fields of the descriptor at `desc` (stamped `seq`), its eight words bounds-checked
/// once and loaded Relaxed (the caller's Acquire load of the stamp orders them), and the
/// record's offset in the share; `None` when the record does not lie inside the arena (a
/// torn or hostile descriptor).
#[inline]
fn read_desc(
    share: &MediaSeg,
    l: &PktLayout,
    desc: usize,
    seq: u64,
) -> Result<Option<(usize, RecordInfo)>> {
    let d = share.words(desc, DESC_STRIDE / 8)?;
    let w = |f: usize| d[f / 8].load(Ordering::Relaxed);
    let (offset, len, userlen) = (w(D_OFFSET), w(D_LEN), w(D_USERLEN));
    let fits = offset >= 0
        && len >= 0
        && userlen >= 0
        && offset
            .checked_add(userlen)
            .and_then(|x| x.checked_add(len))
            .is_some_and(|end| end <= l.arenasz as i64);
    if !fits {
        return Ok(None);
    }
    let info = RecordInfo {
        seq,
        wcursor: w(D_WCURSOR),
        pts: w(D_PTS),
        kind: PktKind::from_value(w(D_KIND)),
        track: w(D_TRACK),
        len: len as usize,
        meta_len: userlen as usize,
    };
    Ok(Some((l.arenaoffset + offset as usize, info)))
}

/// Random access to descriptor `slot` (libmembus's `getRecord(idx)`): a seqlock read of the
/// descriptor, a copy of its bytes, then a re-check of its stamp and of the arena cursor
/// (the lap check). `None` when the slot was never published, is being rewritten, was torn
/// while copied, points outside the arena, or its bytes were overwritten by a later lap.
fn record_at(share: &MediaSeg, l: &PktLayout, slot: usize) -> Result<Option<Record>> {
    crate::media::checked_slot(&slots(l), slot)?;
    let desc = l.desc(slot);
    // Acquire: pairs with the writer's Release store of the stamp in `SlotWriter::publish`
    // (the descriptor fields and arena bytes written before it are visible).
    let s1 = share.load_acquire(desc + D_SEQ)?;
    if s1 <= 0 {
        return Ok(None);
    }
    // Relaxed field loads: ordered by the Acquire load of the stamp above.
    let Some((at, info)) = read_desc(share, l, desc, s1 as u64)? else {
        return Ok(None);
    };
    let mut meta = Vec::new();
    let mut payload = Vec::new();
    share.copy_out_vec(at, info.meta_len, &mut meta)?;
    share.copy_out_vec(at + info.meta_len, info.len, &mut payload)?;
    // Acquire fence: pairs with the writer's Release fence after zeroing a descriptor
    // (`SlotWriter::begin`) and its Release store of the reservation cursor (`write`): if
    // the copies above saw any byte of a newer record, one of the checks below fails.
    fence(Ordering::Acquire);
    let same = share.load(desc + D_SEQ).is_ok_and(|s| s == s1);
    let cursor = share.load(H_WCURSOR).unwrap_or(i64::MAX);
    if !same || cursor.saturating_sub(info.wcursor) > l.arenasz as i64 {
        return Ok(None);
    }
    Ok(Some(Record {
        info,
        payload,
        meta,
    }))
}

/// libmembus's index API on the writer (pymembus's `getRecord(idx)`, `getPtr`,
/// `getFrameSeq(idx)`, `getSeq`, `getWcursor` on a writer handle).
impl PacketWriter {
    /// The record in descriptor `slot`, copied out, or `None` (see
    /// [`PacketReader::record_at`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn record_at(&self, slot: usize) -> Result<Option<Record>> {
        record_at(self.w.share(), &self.layout, slot)
    }

    /// The write pointer: the descriptor the next [`write`](Self::write) fills.
    pub fn ptr(&self) -> usize {
        self.w.current_ptr()
    }

    /// Records written so far (the global sequence).
    pub fn seq(&self) -> u64 {
        self.w.seq()
    }

    /// Descriptor `slot`'s stamp: the sequence number of the record it holds (0 = none).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn slot_seq(&self, slot: usize) -> Result<u64> {
        Ok(self.w.stamp(slot)?.max(0) as u64)
    }

    /// The arena cursor: bytes reserved so far, wrap padding included (the header's where
    /// another writer moved it further).
    pub fn wcursor(&self) -> i64 {
        // Acquire: pairs with the Release store of the cursor in `write`.
        match self.w.share().load_acquire(H_WCURSOR) {
            Ok(hw) if hw > self.wcursor && hw <= i64::MAX / 2 => hw,
            _ => self.wcursor,
        }
    }
}

/// libmembus's index API on the reader (pymembus's `getRecord(idx)`, `getPtr`,
/// `getFrameSeq(idx)`): random access that does not move the reader's cursor.
impl PacketReader {
    /// The record in descriptor `slot`, copied out, or `None` when the slot was never
    /// published, is being rewritten, was torn while copied, points outside the arena
    /// (a hostile descriptor), or its bytes were overwritten by a later lap of the arena.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn record_at(&self, slot: usize) -> Result<Option<Record>> {
        record_at(&self.ring.share, &self.layout, slot)
    }

    /// Blocks until the global publish counter ([`seq`](Self::seq)) exceeds `last` or
    /// `timeout` passes, and returns whether it does: libmembus's `waitForFrame(ms,
    /// lastSeq)`, independent of this reader's own position. Sleeps on the share's futex
    /// like [`wait_ready`](Self::wait_ready) (membus writers wake it; against a libmembus
    /// writer it polls every millisecond).
    pub fn wait_seq_above(&self, last: u64, timeout: std::time::Duration) -> bool {
        self.ring.wait_seq_above(last, timeout)
    }

    /// A [`SeqWatch`](crate::SeqWatch) on this ring's publish counter, usable without
    /// borrowing the reader.
    ///
    /// # Errors
    /// [`ErrorKind::AccessDenied`] when the share's mode does not let this process map its
    /// header read-write (then use [`wait_seq_above`](Self::wait_seq_above));
    /// [`ErrorKind::MapFailed`] for other failures.
    pub fn seq_watch(&self) -> Result<crate::SeqWatch> {
        crate::media::SeqWatch::new(&self.ring.share)
    }

    /// The header's write pointer: the descriptor the writer fills next.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the header's pointer is outside `0..bufs`.
    pub fn write_ptr(&self) -> Result<usize> {
        self.ring.write_ptr()
    }

    /// Descriptor `slot`'s stamp (0 = none).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn slot_seq(&self, slot: usize) -> Result<u64> {
        self.ring.checked_slot(slot)?;
        Ok(self.ring.stamp(slot)?.max(0) as u64)
    }
}

/// A record in the arena, borrowed from its reader (see [`PacketReader::next_view`]).
pub struct RecordView<'a> {
    reader: &'a PacketReader,
    desc: usize,
    meta: *mut u8,
    payload: *mut u8,
    info: RecordInfo,
}

impl std::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordView")
            .field("info", &self.info)
            .finish()
    }
}

impl RecordView<'_> {
    /// The record's fields.
    pub fn info(&self) -> &RecordInfo {
        &self.info
    }

    /// The payload bytes, zero-copy.
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `payload` was bounds-checked for `info.len` bytes of the reader's mapping
        // (inside the arena), which lives as long as the borrow of the reader; u8 accepts
        // every bit pattern, so a concurrent overwrite can only give wrong bytes, which
        // `is_intact` reports; the mapping is read-only.
        unsafe { std::slice::from_raw_parts(self.payload.cast_const(), self.info.len) }
    }

    /// The per-record metadata bytes, zero-copy.
    pub fn meta(&self) -> &[u8] {
        // SAFETY: as for `payload`, for `info.meta_len` bytes.
        unsafe { std::slice::from_raw_parts(self.meta.cast_const(), self.info.meta_len) }
    }

    /// True if the writer has not rewritten (nor started rewriting) this record's
    /// descriptor or arena bytes since the view was taken.
    pub fn is_intact(&self) -> bool {
        self.reader.intact(self.desc, &self.info)
    }
}

crate::select::impl_selectable!(PacketReader, ring);

crate::media::ring_api!(reader_identity PacketReader, "next_into");
