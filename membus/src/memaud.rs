//! memaud: a fixed-size audio buffer ring (spec §9), one writer and any number of readers,
//! lock-free, byte-compatible with libmembus 2.1 and pymembus 2.2.
//!
//! The same roles and guarantees as [`memvid`](crate::memvid): an [`AudioWriter`] fills the
//! current buffer through an [`AudioBufMut`] (interleaved samples as `&mut [i16]`, `&mut [f32]`,
//! ... or `&mut [S24]` for packed 24-bit), sets its pts and publishes it; an [`AudioReader`]
//! attaches read-only and gets the next buffer, an overrun with the number lost, or nothing
//! new; [`AudioBuf::is_intact`] tells whether the buffer was overwritten while in use.
//!
//! ```no_run
//! use membus::memaud::{AudioParams, AudioReader, AudioWriter};
//! use membus::{layout::media::AudioFormat, Next};
//!
//! # fn main() -> membus::Result<()> {
//! let mut w = AudioWriter::create("/mic", &AudioParams::new(2, AudioFormat::S16le, 48_000, 100, 8))?;
//! let mut r = AudioReader::attach("/mic")?;
//! {
//!     let mut buf = w.buffer();
//!     buf.samples_mut::<i16>()?.fill(0);
//!     buf.set_pts(42);
//! }
//! w.publish()?;
//! if let Next::Frame(b) = r.next()? {
//!     println!("buffer {} pts {}: {} frames", b.seq(), b.pts(), b.samples::<i16>()?.len() / 2);
//! }
//! # Ok(()) }
//! ```
use std::marker::PhantomData;
use std::sync::atomic::{fence, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::media::{off, AudLayout, AudioFormat, MediaKind};
use crate::media::{Identity, MediaSeg, Next, ReadFrom};
use crate::name::{IntoShareName, ShareName};
use crate::pixel::Sample;
use crate::sys::copy::fill_shared;

/// Slot header field offsets (spec §9.2).
const S_PTS: usize = 8;
const S_USERLEN: usize = 16;
const S_SEQ: usize = 24;

/// Parameters of a memaud share.
#[derive(Clone, Debug)]
pub struct AudioParams {
    /// Interleaved channels.
    pub channels: u32,
    /// Sample format.
    pub format: AudioFormat,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Buffers per second (a buffer holds ceil(rate / fps) samples per channel).
    pub fps: u32,
    /// Buffers in the ring.
    pub bufs: u32,
    /// Payload alignment, a power of two ≥ 8; 0 = 64.
    pub align: usize,
    /// Per-buffer user-data bytes (rounded up to 8); 0 = none.
    pub frameextra: usize,
    /// Buffer size in bytes for `UserType` (ignored for PCM formats).
    pub payload_size: usize,
    /// fourcc, GUID and main user buffer.
    pub identity: Identity,
    /// Permission bits for the share (default 0o600; libmembus uses 0o644).
    pub mode: u32,
}

impl AudioParams {
    /// The required parameters; the rest take their defaults.
    pub fn new(
        channels: u32,
        format: AudioFormat,
        sample_rate: u32,
        fps: u32,
        bufs: u32,
    ) -> AudioParams {
        AudioParams {
            channels,
            format,
            sample_rate,
            fps,
            bufs,
            align: 0,
            frameextra: 0,
            payload_size: 0,
            identity: Identity::default(),
            mode: 0o600,
        }
    }

    fn layout(&self) -> Result<AudLayout> {
        AudLayout::new(
            i64::from(self.channels),
            self.format,
            i64::from(self.sample_rate),
            i64::from(self.fps),
            i64::from(self.bufs),
            self.align as i64,
            self.frameextra as i64,
            self.identity.meta.len() as i64,
            self.payload_size as i64,
        )
    }
}

/// The writing end of a memaud share.
pub struct AudioWriter {
    share: MediaSeg,
    layout: AudLayout,
    ptr: usize,
    seq: i64,
}

impl AudioWriter {
    /// Creates the share. An existing share of the same name is replaced only if no live
    /// membus writer owns it (a crashed writer's share, or one libmembus/pymembus made).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for parameters libmembus rejects or the format rules
    /// it leaves unchecked (W11); [`ErrorKind::CreateFailed`] when a live writer owns the
    /// name or /dev/shm is full.
    pub fn create(name: impl IntoShareName, params: &AudioParams) -> Result<AudioWriter> {
        let name = name.into_share_name()?;
        let layout = params.layout().map_err(|e| e.with_share(name.as_str()))?;
        let share = MediaSeg::create(&name, layout.frames.size, params.mode)?;
        let f = &layout.frames;
        let class = [
            layout.channels as i64,
            layout.sample_rate,
            layout.format.value(),
            layout.fps,
            f.blocksz as i64,
            f.frameextra as i64,
            f.useroffset as i64,
            f.dataoffset as i64,
            f.payload as i64,
        ];
        share.write_header(
            MediaKind::Aud,
            f.size,
            f.bufs,
            f.align,
            &params.identity,
            &class,
            240,
        )?;
        Ok(AudioWriter {
            share,
            layout,
            ptr: 0,
            seq: 0,
        })
    }

    /// The current (unpublished) buffer to fill. Its stamp is zeroed first, so a reader
    /// still looking at this slot's previous buffer sees it as overwritten.
    pub fn buffer(&mut self) -> AudioBufMut<'_> {
        let at = self.layout.frames.slot(self.ptr) + S_SEQ;
        if let Ok(w) = self.share.word(at) {
            w.store(0, Ordering::Relaxed);
        }
        // Release fence: orders the zeroed stamp before the pixel stores that follow; pairs
        // with the Acquire fence in `Frame::is_intact`.
        fence(Ordering::Release);
        AudioBufMut { writer: self }
    }

    /// Publishes the current slot: stamps it with the next sequence number, advances the
    /// write pointer, then bumps the global sequence, each a Release store (W1: libmembus
    /// bumps the global sequence first). Returns the frame's sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] only if the share's words are out of reach (never for a
    /// share this writer created).
    pub fn publish(&mut self) -> Result<u64> {
        let s = self.seq + 1;
        let f = &self.layout.frames;
        // Release: the pixels, timestamps and user data written before are visible to a
        // reader whose Acquire load sees this stamp (`AudioReader::next`).
        self.share
            .word(f.slot(self.ptr) + S_SEQ)?
            .store(s, Ordering::Release);
        let next = (self.ptr + 1) % f.bufs;
        // Release: pairs with the reader's Acquire load of ptr on attach/resync.
        self.share
            .word(off::PTR)?
            .store(next as i64, Ordering::Release);
        // Release, last: a reader that sees seq s also sees slot stamp s and the new ptr.
        self.share.word(off::SEQ)?.store(s, Ordering::Release);
        self.seq = s;
        self.ptr = next;
        Ok(s as u64)
    }

    /// The layout.
    pub fn layout(&self) -> &AudLayout {
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

    /// Frames published so far.
    pub fn seq(&self) -> u64 {
        self.seq as u64
    }
}

/// The writer's current slot. Dropping it does not publish; call
/// [`AudioWriter::publish`].
pub struct AudioBufMut<'a> {
    writer: &'a mut AudioWriter,
}

impl AudioBufMut<'_> {
    fn slot(&self) -> usize {
        self.writer.ptr
    }

    fn payload_at(&self) -> usize {
        self.writer.layout.frames.payload_at(self.slot())
    }

    /// The whole payload as bytes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] if the slot is out of reach (never for a created share).
    pub fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        let len = self.writer.layout.frames.payload;
        let p = self.writer.share.bytes(self.payload_at(), len)?;
        // SAFETY: `p` is bounds-checked for `len` bytes of the writer's writable mapping,
        // which outlives the borrow of `self`. The slot is the writer's unpublished slot:
        // readers in this or other processes may still read its previous frame, racing with
        // these writes; they only ever read it as plain bytes (Pod) and detect the rewrite
        // with `is_intact` (its stamp was zeroed in `frame`).
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// The buffer's interleaved samples as `S` (which must match the format's sample size).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `S` does not fit the format.
    pub fn samples_mut<S: Sample>(&mut self) -> Result<&mut [S]> {
        let n = sample_count::<S>(&self.writer.layout)?;
        let p = self.writer.share.bytes(self.payload_at(), n * S::SIZE)?;
        // SAFETY: as in `bytes_mut`; additionally `S: Pod` and `S::SIZE` divides the checked
        // range into exactly `n` values. Alignment: `S::ALIGN` ≤ 8 and the payload starts
        // at a multiple of the slot alignment (≥ 8), which `sample_count` relies on.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<S>(), n) })
    }

    /// Sets every payload byte to `byte`.
    ///
    /// # Errors
    /// As for [`bytes_mut`](Self::bytes_mut).
    pub fn fill(&mut self, byte: u8) -> Result<()> {
        let len = self.writer.layout.frames.payload;
        let p = self.writer.share.bytes(self.payload_at(), len)?;
        // SAFETY: `p` is bounds-checked for `len` bytes of the writable mapping.
        unsafe { fill_shared(p, byte, len) };
        Ok(())
    }

    /// Sets the buffer's timestamp.
    pub fn set_pts(&mut self, pts: i64) {
        self.store(S_PTS, pts);
    }

    fn store(&self, field: usize, v: i64) {
        let at = self.writer.layout.frames.slot(self.slot()) + field;
        if let Ok(w) = self.writer.share.word(at) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Sets the frame's user data (at most `frameextra` bytes).
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] when `data` exceeds the per-frame user buffer.
    pub fn set_user_data(&mut self, data: &[u8]) -> Result<()> {
        let fx = self.writer.layout.frames.frameextra;
        if data.len() > fx {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                "user data exceeds the per-frame buffer",
            )
            .with_share(self.writer.name().as_str())
            .with_sizes(fx as u64, data.len() as u64));
        }
        self.writer
            .share
            .copy_in(self.writer.layout.frames.user_at(self.slot()), data)?;
        self.store(S_USERLEN, data.len() as i64);
        Ok(())
    }
}

/// How many values of sample type `S` the payload holds.
fn sample_count<S: Sample>(l: &AudLayout) -> Result<usize> {
    if !S::FORMATS.contains(&l.format) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "sample type {} does not match the share's format {:?}",
                std::any::type_name::<S>(),
                l.format
            ),
        ));
    }
    // Payload offsets are multiples of the slot alignment (≥ 8), so every sample type
    // (alignment ≤ 8) is aligned.
    debug_assert!(l.frames.align >= std::mem::align_of::<S>());
    Ok(l.frames.payload / S::SIZE)
}

/// Options for attaching a reader.
#[derive(Clone, Debug, Default)]
pub struct ReaderOptions {
    /// Where to start.
    pub from: ReadFrom,
    /// Require these parameters; a mismatch error lists every difference.
    pub expect: Option<AudioParams>,
}

/// The reading end of a memaud share: mapped read-only, no way to write.
pub struct AudioReader {
    share: MediaSeg,
    layout: AudLayout,
    pos: usize,
    last: i64,
}

impl AudioReader {
    /// Attaches read-only without knowing the parameters; starts at the newest frame.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS;
    /// [`ErrorKind::InvalidLayout`] when the header is not a valid memaud header (format,
    /// geometry and every offset are checked against the mapping, W11).
    pub fn attach(name: impl IntoShareName) -> Result<AudioReader> {
        Self::attach_with(name, &ReaderOptions::default())
    }

    /// [`attach`](Self::attach) with options.
    ///
    /// # Errors
    /// As for [`attach`](Self::attach), and [`ErrorKind::SizeMismatch`] naming every
    /// parameter that differs from `opts.expect`.
    pub fn attach_with(name: impl IntoShareName, opts: &ReaderOptions) -> Result<AudioReader> {
        let name = name.into_share_name()?;
        let (share, h) = MediaSeg::attach_read_only(&name, MediaKind::Aud)?;
        let layout =
            AudLayout::from_header(&h, share.seg.len()).map_err(|e| e.with_share(name.as_str()))?;
        if let Some(p) = &opts.expect {
            let want = p.layout().map_err(|e| e.with_share(name.as_str()))?;
            let mut diffs = Vec::new();
            let mut cmp = |what: &str, x: i64, y: i64| {
                if x != y {
                    diffs.push(format!("{what}: expected {x}, found {y}"));
                }
            };
            cmp("channels", want.channels as i64, layout.channels as i64);
            cmp("format", want.format.value(), layout.format.value());
            cmp("sample_rate", want.sample_rate, layout.sample_rate);
            cmp("fps", want.fps, layout.fps);
            cmp("bufs", want.frames.bufs as i64, layout.frames.bufs as i64);
            cmp(
                "payload",
                want.frames.payload as i64,
                layout.frames.payload as i64,
            );
            cmp(
                "blocksz",
                want.frames.blocksz as i64,
                layout.frames.blocksz as i64,
            );
            cmp("size", want.frames.size as i64, layout.frames.size as i64);
            if !diffs.is_empty() {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!("memaud parameters differ: {}", diffs.join("; ")),
                )
                .with_share(name.as_str()));
            }
        }
        let mut r = AudioReader {
            share,
            layout,
            pos: 0,
            last: 0,
        };
        match opts.from {
            ReadFrom::Newest => r.resync_newest()?,
            ReadFrom::Oldest => r.resync_oldest()?,
        }
        Ok(r)
    }

    fn stamp(&self, slot: usize) -> Result<i64> {
        self.share
            .load_acquire(self.layout.frames.slot(slot) + S_SEQ)
    }

    fn ptr(&self) -> Result<usize> {
        let p = self.share.load_acquire(off::PTR)?;
        usize::try_from(p)
            .ok()
            .filter(|&p| p < self.layout.frames.bufs)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidLayout,
                    format!(
                        "write pointer {p} is outside 0..{}",
                        self.layout.frames.bufs
                    ),
                )
                .with_share(self.share.name().as_str())
            })
    }

    /// After this, `next` delivers the first frame published from now on. ptr is read
    /// before seq (spec §15.7), so no published frame is skipped.
    fn resync_newest(&mut self) -> Result<()> {
        self.pos = self.ptr()?;
        self.last = self.share.load_acquire(off::SEQ)?;
        Ok(())
    }

    /// Positions at the oldest slot whose stamp is still one of the last `bufs` frames.
    fn resync_oldest(&mut self) -> Result<()> {
        let now = self.share.load_acquire(off::SEQ)?;
        let floor = now - self.layout.frames.bufs as i64 + 1;
        let mut best: Option<(i64, usize)> = None;
        for i in 0..self.layout.frames.bufs {
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

    /// Resync after an overrun: the next call delivers the newest published frame.
    fn resync_after_overrun(&mut self) -> Result<u64> {
        let old = self.last;
        let bufs = self.layout.frames.bufs;
        let newest = (self.ptr()? + bufs - 1) % bufs;
        let s = self.stamp(newest)?;
        if s > old {
            self.pos = newest;
            self.last = s - 1;
            Ok((s - 1 - old) as u64)
        } else {
            self.resync_newest()?;
            Ok(self.last.saturating_sub(old).max(0) as u64)
        }
    }

    /// The next frame in order, an overrun (with how many frames were lost), or nothing new.
    ///
    /// Not an `Iterator`: the frame borrows the reader, and "nothing new" is not the end.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the header's write pointer is corrupt.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Next<AudioBuf<'_>>> {
        let now = self.share.load_acquire(off::SEQ)?;
        if now <= self.last {
            return Ok(Next::Empty);
        }
        if now - self.last > self.layout.frames.bufs as i64 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        let s = self.stamp(self.pos)?;
        if s == self.last + 1 {
            let slot = self.pos;
            self.last = s;
            self.pos = (self.pos + 1) % self.layout.frames.bufs;
            return Ok(Next::Frame(AudioBuf {
                reader: self,
                slot,
                seq: s as u64,
                _p: PhantomData,
            }));
        }
        if s > self.last + 1 {
            return Ok(Next::Overrun {
                lost: self.resync_after_overrun()?,
            });
        }
        // Stamp not written yet (libmembus bumps the global seq before stamping, §15.7),
        // or zeroed because the writer is rewriting it: not published yet.
        Ok(Next::Empty)
    }

    /// Whether [`next`](Self::next) would find something now.
    pub fn poll(&self) -> bool {
        self.share
            .load_acquire(off::SEQ)
            .is_ok_and(|s| s > self.last)
    }

    /// The layout.
    pub fn layout(&self) -> &AudLayout {
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

    /// GUID bytes (all zero = none).
    pub fn guid(&self) -> [u8; 16] {
        self.share.guid()
    }

    /// The main user buffer.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] if it does not fit the share.
    pub fn meta(&self) -> Result<Vec<u8>> {
        self.share.meta(240, self.layout.frames.metasize)
    }

    /// Slot `i`'s frame as it is now, whatever its stamp (for inspection and fixtures).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `i` ≥ bufs.
    pub fn slot(&self, i: usize) -> Result<AudioBuf<'_>> {
        if i >= self.layout.frames.bufs {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("slot {i} ≥ bufs {}", self.layout.frames.bufs),
            ));
        }
        let seq = self.stamp(i)?.max(0) as u64;
        Ok(AudioBuf {
            reader: self,
            slot: i,
            seq,
            _p: PhantomData,
        })
    }
}

/// A frame in the ring, borrowed from its reader.
pub struct AudioBuf<'a> {
    reader: &'a AudioReader,
    slot: usize,
    seq: u64,
    _p: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for AudioBuf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioBuf")
            .field("seq", &self.seq)
            .field("slot", &self.slot)
            .field("pts", &self.pts())
            .finish()
    }
}

impl AudioBuf<'_> {
    fn word(&self, field: usize) -> i64 {
        self.reader
            .share
            .load(self.reader.layout.frames.slot(self.slot) + field)
            .unwrap_or(0)
    }

    fn payload_at(&self) -> usize {
        self.reader.layout.frames.payload_at(self.slot)
    }

    /// The frame's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The slot it occupies.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The buffer's timestamp.
    pub fn pts(&self) -> i64 {
        self.word(S_PTS)
    }

    /// The per-frame user data (its recorded length, clamped to the buffer).
    pub fn user_data(&self) -> Vec<u8> {
        let fx = self.reader.layout.frames.frameextra;
        let len = usize::try_from(self.word(S_USERLEN)).unwrap_or(0).min(fx);
        self.reader
            .share
            .meta(self.reader.layout.frames.user_at(self.slot), len)
            .unwrap_or_default()
    }

    /// Payload bytes (the buffer size).
    pub fn len(&self) -> usize {
        self.reader.layout.frames.payload
    }

    /// Always false: a buffer has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the payload into `dst` (which must be [`len`](Self::len) bytes).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a wrong-sized `dst`.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.len() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "destination size differs from the frame",
            )
            .with_sizes(self.len() as u64, dst.len() as u64));
        }
        self.reader.share.copy_out(self.payload_at(), dst)
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len()];
        let _ = self.copy_to(&mut v);
        v
    }

    /// The interleaved samples as `S`, zero-copy (see [`memvid`](crate::memvid)'s notes on
    /// soundness; check [`is_intact`](Self::is_intact) after use).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `S` does not fit the format.
    pub fn samples<S: Sample>(&self) -> Result<&[S]> {
        let n = sample_count::<S>(&self.reader.layout)?;
        let p = self.reader.share.bytes(self.payload_at(), n * S::SIZE)?;
        // SAFETY: `p` is bounds-checked for n·S::SIZE bytes of the reader's mapping, which
        // lives as long as the borrow of the reader; it is aligned for `S` (see
        // `sample_count`); `S: Pod` accepts any bit pattern, so a concurrent overwrite can
        // only give wrong samples, which `is_intact` reports.
        Ok(unsafe { std::slice::from_raw_parts(p.cast::<S>().cast_const(), n) })
    }

    /// True if the slot still holds this frame: not rewritten (nor, with a membus writer,
    /// being rewritten) since `next` returned it.
    pub fn is_intact(&self) -> bool {
        // Acquire fence: pairs with the writer's Release fence after zeroing the stamp
        // (`AudioWriter::frame`), so any pixel read above that saw new bytes is followed
        // by seeing the zeroed or a newer stamp here.
        fence(Ordering::Acquire);
        self.word(S_SEQ) == self.seq as i64
    }
}
