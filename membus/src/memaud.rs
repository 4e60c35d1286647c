//! memaud: a fixed-size audio buffer ring, one writer and any number of readers,
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
use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorKind, Result};
use crate::layout::media::{AudLayout, AudioFormat, MediaKind};
use crate::media::{check_params, Identity, MediaSeg, Next, ReadFrom, SlotRing, SlotWriter, Slots};
use crate::name::{IntoShareName, ShareName};
use crate::pixel::Sample;
use crate::sys::copy::fill_shared;
use crate::sys::shm::Access;

/// Slot header field offsets.
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
    w: SlotWriter,
    layout: AudLayout,
}

impl AudioWriter {
    /// Creates the share. An existing share of the same name is replaced only if no live
    /// membus writer owns it (a crashed writer's share, or one libmembus/pymembus made).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for parameters libmembus rejects or the format rules
    /// it leaves unchecked; [`ErrorKind::CreateFailed`] when a live writer owns the
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
        let slots = slots(&layout);
        Ok(AudioWriter {
            w: SlotWriter::new(share, slots)?,
            layout,
        })
    }

    /// Attaches read-write to an existing share and continues it, as
    /// [`VideoWriter::attach`](crate::memvid::VideoWriter::attach) does for memvid: the
    /// header is validated exactly as [`AudioReader::attach_with`] validates it, `params`
    /// must match it, publishing continues from the header's write pointer and global
    /// sequence, and the owner lock is never taken (only the creator removes the share;
    /// writers taking turns continue one another's ring, writers at the same time are not
    /// coordinated).
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS
    /// ([`ErrorKind::AccessDenied`] when the share's mode forbids writing);
    /// [`ErrorKind::InvalidLayout`] for a header that is not a valid memaud header or
    /// whose write pointer or sequence is out of range; [`ErrorKind::SizeMismatch`] naming
    /// every parameter that differs from `params`; [`ErrorKind::InvalidArgument`] for
    /// invalid `params`.
    pub fn attach(name: impl IntoShareName, params: &AudioParams) -> Result<AudioWriter> {
        let name = name.into_share_name()?;
        let (share, layout) = MediaSeg::attach_layout(
            &name,
            MediaKind::Aud,
            Access::ReadWrite,
            AudLayout::from_header,
            |l| check_expected(&name, l, params),
        )?;
        let slots = slots(&layout);
        Ok(AudioWriter {
            w: SlotWriter::resume(share, slots)?,
            layout,
        })
    }

    /// The current (unpublished) buffer to fill. Its stamp is zeroed first, so a reader
    /// still looking at this slot's previous buffer sees it as overwritten.
    pub fn buffer(&mut self) -> AudioBufMut<'_> {
        self.w.begin();
        AudioBufMut {
            slot: self.w.ptr,
            writer: self,
        }
    }

    /// Publishes the current buffer: stamp, write pointer, then global sequence, each a
    /// Release store. Returns its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] only if the share's words are out of reach (never for a
    /// share this writer created).
    pub fn publish(&mut self) -> Result<u64> {
        self.w.publish()
    }

    /// The layout.
    pub fn layout(&self) -> &AudLayout {
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

    /// Buffers published so far.
    pub fn seq(&self) -> u64 {
        self.w.seq()
    }
}

fn slots(l: &AudLayout) -> Slots {
    Slots {
        base: l.frames.dataoffset,
        stride: l.frames.blocksz,
        bufs: l.frames.bufs,
        stamp_at: S_SEQ,
    }
}

/// The writer's current slot. Dropping it does not publish; call
/// [`AudioWriter::publish`].
pub struct AudioBufMut<'a> {
    slot: usize,
    writer: &'a mut AudioWriter,
}

impl AudioBufMut<'_> {
    fn slot(&self) -> usize {
        self.slot
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
        let p = self.writer.w.share().bytes(self.payload_at(), len)?;
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
        let p = self
            .writer
            .w
            .share()
            .bytes(self.payload_at(), n * S::SIZE)?;
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
        let p = self.writer.w.share().bytes(self.payload_at(), len)?;
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
        if let Ok(w) = self.writer.w.share().word(at) {
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
                format!(
                    "{} bytes of user data exceed the per-frame buffer of {fx} bytes",
                    data.len()
                ),
            )
            .with_share(self.writer.name().as_str())
            .with_sizes(fx as u64, data.len() as u64));
        }
        self.writer
            .w
            .share()
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

/// Checks an attached share's layout against the parameters the caller expects; the
/// error names every difference.
fn check_expected(name: &ShareName, layout: &AudLayout, p: &AudioParams) -> Result<()> {
    let want = p.layout().map_err(|e| e.with_share(name.as_str()))?;
    check_params(
        name,
        MediaKind::Aud,
        &[
            ("channels", want.channels as i64, layout.channels as i64),
            ("format", want.format.value(), layout.format.value()),
            ("sample_rate", want.sample_rate, layout.sample_rate),
            ("fps", want.fps, layout.fps),
            ("bufs", want.frames.bufs as i64, layout.frames.bufs as i64),
            (
                "payload",
                want.frames.payload as i64,
                layout.frames.payload as i64,
            ),
            (
                "blocksz",
                want.frames.blocksz as i64,
                layout.frames.blocksz as i64,
            ),
            ("size", want.frames.size as i64, layout.frames.size as i64),
        ],
    )
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
    ring: SlotRing,
    layout: AudLayout,
}

impl AudioReader {
    /// Attaches read-only without knowing the parameters; starts at the newest frame.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS;
    /// [`ErrorKind::InvalidLayout`] when the header is not a valid memaud header (format,
    /// geometry and every offset are checked against the mapping).
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
        let (share, layout) = MediaSeg::attach_layout(
            &name,
            MediaKind::Aud,
            Access::ReadOnly,
            AudLayout::from_header,
            |l| match &opts.expect {
                Some(p) => check_expected(&name, l, p),
                None => Ok(()),
            },
        )?;
        let ring = SlotRing::new(share, slots(&layout), opts.from)?;
        Ok(AudioReader { ring, layout })
    }

    /// The next buffer in order, an overrun (with how many were lost), or nothing new.
    ///
    /// Not an `Iterator`: the buffer borrows the reader, and "nothing new" is not the end.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the header's write pointer is corrupt.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Next<AudioBuf<'_>>> {
        Ok(match self.ring.next_slot()? {
            Next::Frame((slot, seq)) => Next::Frame(AudioBuf {
                reader: self,
                slot,
                seq,
                _p: PhantomData,
            }),
            Next::Overrun { lost } => Next::Overrun { lost },
            Next::Empty => Next::Empty,
        })
    }

    /// Waits, without blocking a thread, for the next buffer or an overrun (never
    /// [`Next::Empty`]). Cancellation-safe: the reader moves only in the poll that returns.
    ///
    /// # Errors
    /// As for [`next`](Self::next).
    #[cfg(feature = "async")]
    pub async fn next_async(&mut self) -> Result<Next<AudioBuf<'_>>> {
        crate::aio::until(&*self, || self.ring.deliverable()).await;
        self.next()
    }

    /// The layout.
    pub fn layout(&self) -> &AudLayout {
        &self.layout
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
        let seq = self.ring.stamp(i)?.max(0) as u64;
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
            .ring
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
            .ring
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
                format!(
                    "the destination has {} bytes, the frame {}",
                    dst.len(),
                    self.len()
                ),
            )
            .with_sizes(self.len() as u64, dst.len() as u64));
        }
        self.reader.ring.share.copy_out(self.payload_at(), dst)
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
        let p = self
            .reader
            .ring
            .share
            .bytes(self.payload_at(), n * S::SIZE)?;
        // SAFETY: `p` is bounds-checked for n·S::SIZE bytes of the reader's mapping, which
        // lives as long as the borrow of the reader; it is aligned for `S` (see
        // `sample_count`); `S: Pod` accepts any bit pattern, so a concurrent overwrite can
        // only give wrong samples, which `is_intact` reports.
        Ok(unsafe { std::slice::from_raw_parts(p.cast::<S>().cast_const(), n) })
    }

    /// True if the slot still holds this frame: not rewritten (nor, with a membus writer,
    /// being rewritten) since `next` returned it.
    pub fn is_intact(&self) -> bool {
        self.reader.ring.still(self.slot, self.seq)
    }
}

crate::media::ring_api!(writer AudioWriter, "buffer");

impl AudioWriter {
    /// Slot `slot` as it is now, to read or change in place. Unlike
    /// [`buffer`](Self::buffer), its stamp is left alone (as libmembus's `getBuf(idx)`
    /// does), so a reader cannot tell that it is being rewritten.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn slot_mut(&mut self, slot: usize) -> Result<AudioBufMut<'_>> {
        crate::media::checked_slot(&self.w.slots, slot)?;
        Ok(AudioBufMut { slot, writer: self })
    }
}

/// Reads of the slot's fields, for the slot-index API ([`AudioWriter::slot_mut`]).
impl AudioBufMut<'_> {
    fn load(&self, field: usize) -> i64 {
        let at = self.writer.layout.frames.slot(self.slot()) + field;
        // Relaxed: the writer reads back slot fields that only it stores.
        self.writer
            .w
            .share()
            .word(at)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    /// The slot's index in the ring.
    pub fn index(&self) -> usize {
        self.slot()
    }

    /// The slot's publish stamp (0 = never published, or marked in progress).
    pub fn seq(&self) -> u64 {
        self.load(S_SEQ).max(0) as u64
    }

    /// The buffer's timestamp.
    pub fn pts(&self) -> i64 {
        self.load(S_PTS)
    }

    /// The per-frame user data (its recorded length, clamped to the buffer).
    pub fn user_data(&self) -> Vec<u8> {
        let fx = self.writer.layout.frames.frameextra;
        let len = usize::try_from(self.load(S_USERLEN)).unwrap_or(0).min(fx);
        self.writer
            .w
            .share()
            .meta(self.writer.layout.frames.user_at(self.slot()), len)
            .unwrap_or_default()
    }
}

crate::media::ring_api!(reader AudioReader);

crate::select::impl_selectable!(AudioReader, ring);
