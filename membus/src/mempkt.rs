//! mempkt: a variable-length record ring (spec §10): a descriptor ring plus a byte arena,
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
//! before rewriting it (W2: readers never accept a mix of old and new fields), publishes the
//! arena cursor *before* copying a record (W3: the lap check accounts for a write in
//! flight), and publishes in the order descriptor, pointer, global sequence (W1). Readers
//! copy a record out, then check its descriptor and the arena cursor again, so a record is
//! delivered intact or reported lost.

use std::sync::atomic::{fence, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::align_up;
use crate::layout::media::{off, MediaKind, PktLayout, DESC_STRIDE};
use crate::media::{Identity, MediaSeg, Next, ReadFrom};
use crate::name::{IntoShareName, ShareName};

/// Descriptor field offsets (spec §10.2).
const D_OFFSET: usize = 0;
const D_LEN: usize = 8;
const D_WCURSOR: usize = 16;
const D_PTS: usize = 24;
const D_KIND: usize = 32;
const D_TRACK: usize = 40;
const D_USERLEN: usize = 48;
const D_SEQ: usize = 56;
/// Header field offsets after the prefix (spec §10.1).
const H_MAXREC: usize = 176;
const H_WCURSOR: usize = 184;

/// `pkt_kind` (spec §11.3).
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
    share: MediaSeg,
    layout: PktLayout,
    ptr: usize,
    seq: i64,
    wcursor: i64,
}

impl PacketWriter {
    /// Creates the share; an existing one is replaced only if no live membus writer owns
    /// it (W13).
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
            share,
            layout: l,
            ptr: 0,
            seq: 0,
            wcursor: 0,
        })
    }

    fn store(&self, at: usize, v: i64, order: Ordering) -> Result<()> {
        self.share.word(at)?.store(v, order);
        Ok(())
    }

    /// Writes one record; returns its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an empty record; [`ErrorKind::MessageTooLarge`]
    /// when payload plus metadata exceed `maxrec` (nothing is written).
    pub fn write(&mut self, payload: &[u8], rec: &RecordMeta<'_>) -> Result<u64> {
        let l = self.layout;
        let total = payload.len() + rec.meta.len();
        if total == 0 {
            return Err(
                Error::new(ErrorKind::InvalidArgument, "empty records are not allowed")
                    .with_share(self.share.name().as_str()),
            );
        }
        if total > l.maxrec {
            return Err(
                Error::new(ErrorKind::MessageTooLarge, "record exceeds maxrec")
                    .with_share(self.share.name().as_str())
                    .with_sizes(l.maxrec as u64, total as u64),
            );
        }
        let stride = align_up(total as u64, l.align as u64).unwrap_or(u64::MAX) as i64;
        let arena = l.arenasz as i64;
        let mut wc = self.wcursor;
        let mut phys = wc % arena;
        if phys + stride > arena {
            wc += arena - phys;
            phys = 0;
        }
        // W3: publish the reservation first. Release: pairs with the reader's Acquire fence
        // before its lap check, so a reader whose copy overlapped these bytes sees a cursor
        // that reveals it.
        self.store(H_WCURSOR, wc + stride, Ordering::Release)?;
        let d = l.desc(self.ptr);
        // W2: mark the descriptor in progress before rewriting it; the Release fence orders
        // the zero before the stores below (pairs with the reader's Acquire fence before its
        // second look at the descriptor's seq).
        self.store(d + D_SEQ, 0, Ordering::Relaxed)?;
        fence(Ordering::Release);
        let at = l.arenaoffset + phys as usize;
        self.share.copy_in(at, rec.meta)?;
        self.share.copy_in(at + rec.meta.len(), payload)?;
        for (field, v) in [
            (D_OFFSET, phys),
            (D_LEN, payload.len() as i64),
            (D_WCURSOR, wc),
            (D_PTS, rec.pts),
            (D_KIND, rec.kind.value()),
            (D_TRACK, rec.track),
            (D_USERLEN, rec.meta.len() as i64),
        ] {
            self.store(d + field, v, Ordering::Relaxed)?;
        }
        let s = self.seq + 1;
        // Release: the record and its fields are visible to a reader that sees this seq.
        self.store(d + D_SEQ, s, Ordering::Release)?;
        let next = (self.ptr + 1) % l.bufs;
        self.store(off::PTR, next as i64, Ordering::Release)?;
        // Release, last (W1): a reader that sees global seq s sees descriptor s.
        self.store(off::SEQ, s, Ordering::Release)?;
        self.seq = s;
        self.ptr = next;
        self.wcursor = wc + stride;
        Ok(s as u64)
    }

    /// The layout.
    pub fn layout(&self) -> &PktLayout {
        &self.layout
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.share.name()
    }

    /// The session id.
    pub fn session_id(&self) -> i64 {
        self.share.session_id()
    }
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
    share: MediaSeg,
    layout: PktLayout,
    pos: usize,
    last: i64,
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
        let (share, h) = MediaSeg::attach_read_only(&name, MediaKind::Pkt)?;
        let layout =
            PktLayout::from_header(&h, share.seg.len()).map_err(|e| e.with_share(name.as_str()))?;
        if let Some(p) = &opts.expect {
            let want = p.layout().map_err(|e| e.with_share(name.as_str()))?;
            let diffs: Vec<String> = [
                ("bufs", want.bufs, layout.bufs),
                ("arenasz", want.arenasz, layout.arenasz),
                ("maxrec", want.maxrec, layout.maxrec),
                ("align", want.align, layout.align),
                ("size", want.size, layout.size),
            ]
            .iter()
            .filter(|(_, a, b)| a != b)
            .map(|(what, a, b)| format!("{what}: expected {a}, found {b}"))
            .collect();
            if !diffs.is_empty() {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!("mempkt parameters differ: {}", diffs.join("; ")),
                )
                .with_share(name.as_str()));
            }
        }
        let mut r = PacketReader {
            share,
            layout,
            pos: 0,
            last: 0,
        };
        match opts.from {
            ReadFrom::Newest => r.resync_newest()?,
            ReadFrom::Oldest => {
                let now = r.share.load_acquire(off::SEQ)?;
                let floor = now - r.layout.bufs as i64 + 1;
                let mut best: Option<(i64, usize)> = None;
                for i in 0..r.layout.bufs {
                    let s = r.desc_seq(i)?;
                    if s > 0 && s >= floor && s <= now && best.is_none_or(|(b, _)| s < b) {
                        best = Some((s, i));
                    }
                }
                match best {
                    Some((s, i)) => (r.pos, r.last) = (i, s - 1),
                    None => r.resync_newest()?,
                }
            }
        }
        Ok(r)
    }

    fn desc_seq(&self, i: usize) -> Result<i64> {
        self.share.load_acquire(self.layout.desc(i) + D_SEQ)
    }

    fn ptr(&self) -> Result<usize> {
        let p = self.share.load_acquire(off::PTR)?;
        usize::try_from(p)
            .ok()
            .filter(|&p| p < self.layout.bufs)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidLayout,
                    format!("write pointer {p} is outside 0..{}", self.layout.bufs),
                )
                .with_share(self.share.name().as_str())
            })
    }

    fn resync_newest(&mut self) -> Result<()> {
        self.pos = self.ptr()?;
        self.last = self.share.load_acquire(off::SEQ)?;
        Ok(())
    }

    fn resync_after_overrun(&mut self) -> Result<u64> {
        let old = self.last;
        let newest = (self.ptr()? + self.layout.bufs - 1) % self.layout.bufs;
        let s = self.desc_seq(newest)?;
        if s > old {
            self.pos = newest;
            self.last = s - 1;
            Ok((s - 1 - old) as u64)
        } else {
            self.resync_newest()?;
            Ok(self.last.saturating_sub(old).max(0) as u64)
        }
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
        let now = self.share.load_acquire(off::SEQ)?;
        if now <= self.last {
            return Ok(Next::Empty);
        }
        if now - self.last > self.layout.bufs as i64 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let d = self.layout.desc(self.pos);
        let s1 = self.desc_seq(self.pos)?;
        if s1 <= self.last {
            // Not stamped yet (libmembus publishes the global seq first), or being
            // rewritten (seq zeroed): nothing new yet.
            return Ok(Next::Empty);
        }
        if s1 > self.last + 1 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let w = |f: usize| self.share.load(d + f);
        let (offset, len, wcur, pts, kind, track, userlen) = (
            w(D_OFFSET)?,
            w(D_LEN)?,
            w(D_WCURSOR)?,
            w(D_PTS)?,
            w(D_KIND)?,
            w(D_TRACK)?,
            w(D_USERLEN)?,
        );
        // Consume this sequence number whatever happens next: it is delivered or lost.
        self.last = s1;
        self.pos = (self.pos + 1) % self.layout.bufs;
        let arena = self.layout.arenasz as i64;
        let fits = offset >= 0
            && len >= 0
            && userlen >= 0
            && offset
                .checked_add(userlen)
                .and_then(|x| x.checked_add(len))
                .is_some_and(|end| end <= arena);
        if !fits {
            // A torn descriptor (libmembus writers do not mark it in progress) or a
            // hostile one: the record cannot be read.
            return Ok(Next::Overrun { lost: 1 });
        }
        let at = self.layout.arenaoffset + offset as usize;
        self.share.copy_out_vec(at, userlen as usize, meta)?;
        self.share
            .copy_out_vec(at + userlen as usize, len as usize, payload)?;
        // Acquire fence: pairs with the writer's Release fence after zeroing the descriptor
        // seq and with its Release store of the reservation cursor: if the copy saw any byte
        // of a newer record, one of the two checks below fails.
        fence(Ordering::Acquire);
        let cursor = self.share.load(H_WCURSOR)?;
        if self.share.load(d + D_SEQ)? != s1 || cursor - wcur > arena {
            return Ok(Next::Overrun { lost: 1 });
        }
        Ok(Next::Frame(RecordInfo {
            seq: s1 as u64,
            wcursor: wcur,
            pts,
            kind: PktKind::from_value(kind),
            track,
            len: len as usize,
            meta_len: userlen as usize,
        }))
    }

    /// The next record as a zero-copy view of the arena, checked like
    /// [`next_into`](Self::next_into) except that the bytes are not copied: read them
    /// through the view, then call [`RecordView::is_intact`] to learn whether the writer
    /// overwrote them meanwhile.
    ///
    /// # Errors
    /// As for [`next_into`](Self::next_into).
    pub fn next_view(&mut self) -> Result<Next<RecordView<'_>>> {
        let now = self.share.load_acquire(off::SEQ)?;
        if now <= self.last {
            return Ok(Next::Empty);
        }
        if now - self.last > self.layout.bufs as i64 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let d = self.layout.desc(self.pos);
        let s1 = self.desc_seq(self.pos)?;
        if s1 <= self.last {
            return Ok(Next::Empty);
        }
        if s1 > self.last + 1 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let w = |f: usize| self.share.load(d + f);
        let (offset, len, wcur, pts, kind, track, userlen) = (
            w(D_OFFSET)?,
            w(D_LEN)?,
            w(D_WCURSOR)?,
            w(D_PTS)?,
            w(D_KIND)?,
            w(D_TRACK)?,
            w(D_USERLEN)?,
        );
        self.last = s1;
        self.pos = (self.pos + 1) % self.layout.bufs;
        let arena = self.layout.arenasz as i64;
        let fits = offset >= 0
            && len >= 0
            && userlen >= 0
            && offset
                .checked_add(userlen)
                .and_then(|x| x.checked_add(len))
                .is_some_and(|end| end <= arena);
        if !fits {
            return Ok(Next::Overrun { lost: 1 });
        }
        let at = self.layout.arenaoffset + offset as usize;
        let meta = self.share.bytes(at, userlen as usize)?;
        let payload = self.share.bytes(at + userlen as usize, len as usize)?;
        Ok(Next::Frame(RecordView {
            reader: self,
            desc: d,
            meta,
            payload,
            info: RecordInfo {
                seq: s1 as u64,
                wcursor: wcur,
                pts,
                kind: PktKind::from_value(kind),
                track,
                len: len as usize,
                meta_len: userlen as usize,
            },
        }))
    }

    /// Whether [`next_into`](Self::next_into) would find something now.
    pub fn poll(&self) -> bool {
        self.share
            .load_acquire(off::SEQ)
            .is_ok_and(|s| s > self.last)
    }

    /// The layout.
    pub fn layout(&self) -> &PktLayout {
        &self.layout
    }

    /// The writer's session id.
    pub fn session_id(&self) -> i64 {
        self.share.session_id()
    }

    /// The global publish counter.
    pub fn seq(&self) -> u64 {
        self.share.load_acquire(off::SEQ).unwrap_or(0).max(0) as u64
    }

    /// fourcc (0 = none).
    pub fn fourcc(&self) -> u32 {
        self.share.fourcc()
    }

    /// The main user buffer.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] if it does not fit the share.
    pub fn meta(&self) -> Result<Vec<u8>> {
        self.share.meta(216, self.layout.metasize)
    }

    /// The arena cursor.
    pub fn wcursor(&self) -> i64 {
        self.share.load_acquire(H_WCURSOR).unwrap_or(0)
    }

    /// The largest record.
    pub fn maxrec(&self) -> usize {
        self.share.load(H_MAXREC).map_or(0, |v| v.max(0) as usize)
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
        // Acquire fence: pairs with the writer's Release fence after zeroing a descriptor
        // and its Release store of the reservation cursor (see `next_into`).
        fence(Ordering::Acquire);
        let same = self
            .reader
            .share
            .load(self.desc + D_SEQ)
            .is_ok_and(|s| s == self.info.seq as i64);
        let cursor = self.reader.share.load(H_WCURSOR).unwrap_or(i64::MAX);
        same && cursor - self.info.wcursor <= self.reader.layout.arenasz as i64
    }
}
