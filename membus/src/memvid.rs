//! memvid: a raw video frame ring, one writer and any number of readers, lock-free,
//! byte-compatible with libmembus 2.1 and pymembus 2.2.
//!
//! A [`VideoWriter`] creates the share and fills the current slot through a [`FrameMut`]
//! (typed rows such as `&mut [Rgb]`), then [`publish`](VideoWriter::publish)es it. A
//! [`VideoReader`] attaches read-only (it cannot write, by type and by mapping), and
//! [`next`](VideoReader::next) gives the next frame in order, an overrun with the number of
//! frames lost, or nothing new. A [`Frame`] view borrows the reader, so the share cannot be
//! closed while a view lives, and [`Frame::is_intact`] tells afterwards whether the writer
//! overwrote the slot while the view was in use. [`VideoWriter::attach`] continues an
//! existing share read-write (libmembus's and pymembus's `open(name, false, ...)`).
//!
//! [`VideoReader::wait_ready`] (and [`select`](crate::select)) sleep on a futex that
//! membus writers wake. To register as a waiter, a waiting reader also maps the header's
//! first 168 bytes read-write through a second descriptor (only the waiter registry in the
//! reserved words is ever written through it); if the share's mode forbids that, it polls
//! every millisecond instead, as it does against libmembus writers.
//!
//! ```no_run
//! use membus::memvid::{VideoParams, VideoReader, VideoWriter};
//! use membus::pixel::Rgb;
//! use membus::{layout::media::VideoFormat, Next};
//!
//! # fn main() -> membus::Result<()> {
//! let mut writer = VideoWriter::create("/camera", &VideoParams::new(640, 480, VideoFormat::Rgb24, 30, 4))?;
//! let mut reader = VideoReader::attach("/camera")?;
//! {
//!     let mut frame = writer.frame();
//!     for y in 0..480 {
//!         frame.row_mut::<Rgb>(y)?.fill(Rgb { r: 255, g: 0, b: 0 });
//!     }
//!     frame.set_vpts(1_000);
//! }
//! writer.publish()?;
//! if let Next::Frame(f) = reader.next()? {
//!     let red = f.row::<Rgb>(0)?[0].r;
//!     assert!(f.is_intact(), "not overwritten while we looked");
//!     println!("frame {} at {}: red {red}", f.seq(), f.vpts());
//! }
//! # Ok(()) }
//! ```
//!
//! ## Soundness of zero-copy views
//!
//! [`Frame::row`] hands out `&[P]` over live shared memory for pixel types `P` that are
//! bytemuck `Pod` (every bit pattern is a valid value), so a concurrent overwrite can make
//! the pixels wrong but never invalid. A writer that laps the reader may change them while
//! the slice is held; membus writers zero the slot's stamp before they start rewriting it,
//! so [`Frame::is_intact`] (a re-check of the stamp after an Acquire fence) reports both a
//! rewrite in progress and a completed one. libmembus writers do not mark a slot in
//! progress, so against them only a completed rewrite is detected. For a copy
//! that is either whole or reported torn, use [`Frame::copy_to`] and then `is_intact`.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorKind, Result};
use crate::layout::media::{MediaKind, VidLayout, VideoFormat};
use crate::media::{check_params, Identity, MediaSeg, Next, ReadFrom, SlotRing, SlotWriter, Slots};
use crate::name::{IntoShareName, ShareName};
use crate::pixel::Pixel;
use crate::sys::copy::fill_shared;
use crate::sys::shm::Access;

/// Slot header field offsets.
const S_VPTS: usize = 8;
const S_APTS: usize = 16;
const S_USERLEN: usize = 24;
const S_SEQ: usize = 32;

/// Parameters of a memvid share.
#[derive(Clone, Debug)]
pub struct VideoParams {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Pixel format.
    pub format: VideoFormat,
    /// Nominal frame rate.
    pub fps: u32,
    /// Slots in the ring.
    pub bufs: u32,
    /// Bytes per row; 0 = width × bytes per pixel. Required for `UserType`.
    pub scanwidth: usize,
    /// Payload alignment, a power of two ≥ 8; 0 = 64.
    pub align: usize,
    /// Per-frame user-data bytes (rounded up to 8); 0 = none.
    pub frameextra: usize,
    /// fourcc, GUID and main user buffer.
    pub identity: Identity,
    /// Permission bits for the share (default 0o600; libmembus uses 0o644).
    pub mode: u32,
}

impl VideoParams {
    /// The required parameters; the rest take their defaults.
    pub fn new(width: u32, height: u32, format: VideoFormat, fps: u32, bufs: u32) -> VideoParams {
        VideoParams {
            width,
            height,
            format,
            fps,
            bufs,
            scanwidth: 0,
            align: 0,
            frameextra: 0,
            identity: Identity::default(),
            mode: 0o600,
        }
    }

    fn layout(&self) -> Result<VidLayout> {
        VidLayout::new(
            i64::from(self.width),
            i64::from(self.height),
            self.format,
            i64::from(self.fps),
            i64::from(self.bufs),
            self.scanwidth as i64,
            self.align as i64,
            self.frameextra as i64,
            self.identity.meta.len() as i64,
        )
    }
}

/// The writing end of a memvid share.
pub struct VideoWriter {
    w: SlotWriter,
    layout: VidLayout,
}

impl VideoWriter {
    /// Creates the share. An existing share of the same name is replaced only if no live
    /// membus writer owns it (a crashed writer's share, or one libmembus/pymembus made).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for parameters libmembus rejects or the format rules
    /// it leaves unchecked; [`ErrorKind::CreateFailed`] when a live writer owns the
    /// name or /dev/shm is full.
    pub fn create(name: impl IntoShareName, params: &VideoParams) -> Result<VideoWriter> {
        let name = name.into_share_name()?;
        let layout = params.layout().map_err(|e| e.with_share(name.as_str()))?;
        let share = MediaSeg::create(&name, layout.frames.size, params.mode)?;
        let v = &layout.video;
        let f = &layout.frames;
        let class = [
            v.width as i64,
            v.height as i64,
            v.scanwidth as i64,
            v.format.value(),
            v.fps,
            f.blocksz as i64,
            f.frameextra as i64,
            f.useroffset as i64,
            f.dataoffset as i64,
        ];
        share.write_header(
            MediaKind::Vid,
            f.size,
            f.bufs,
            f.align,
            &params.identity,
            &class,
            240,
        )?;
        let slots = slots(&layout);
        Ok(VideoWriter {
            w: SlotWriter::new(share, slots)?,
            layout,
        })
    }

    /// Attaches read-write to an existing share and continues it: the header is validated
    /// exactly as [`VideoReader::attach_with`] validates it (magic, type, format, geometry
    /// and every offset against the mapping), `params` must match it (fourcc, GUID, meta
    /// and mode are not compared), and publishing continues from the header's write
    /// pointer and global sequence (libmembus's and pymembus's `open(name, false, ...)`).
    ///
    /// The attached writer never takes the share's owner lock: it does not make the share
    /// "live" for [`create`](Self::create)'s replacement rule, and dropping it leaves the
    /// share in place (only the creator removes it). A second writer is allowed while the
    /// creator (membus or libmembus) is alive, as libmembus allows it. Writers share the
    /// header's write pointer and sequence as libmembus's writers do: each takes them up
    /// before it fills or publishes a slot, so writers that take turns continue one
    /// another's ring. Writers publishing at the same time are not coordinated: they can
    /// fill the same slot and reuse sequence numbers, which readers see as overruns or
    /// rewritten frames (never as undefined behaviour). Readers that attach while no
    /// membus creator is alive poll every millisecond instead of sleeping on the futex
    /// (they cannot know that this writer wakes them); waits already running learn it.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS
    /// ([`ErrorKind::AccessDenied`] when the share's mode forbids writing);
    /// [`ErrorKind::InvalidLayout`] for a header that is not a valid memvid header or
    /// whose write pointer or sequence is out of range; [`ErrorKind::SizeMismatch`] naming
    /// every parameter that differs from `params`; [`ErrorKind::InvalidArgument`] for
    /// invalid `params`.
    pub fn attach(name: impl IntoShareName, params: &VideoParams) -> Result<VideoWriter> {
        let name = name.into_share_name()?;
        let (share, layout) = MediaSeg::attach_layout(
            &name,
            MediaKind::Vid,
            Access::ReadWrite,
            VidLayout::from_header,
            |l| check_expected(&name, l, params),
        )?;
        let slots = slots(&layout);
        Ok(VideoWriter {
            w: SlotWriter::resume(share, slots)?,
            layout,
        })
    }

    /// The current (unpublished) slot to fill. Its stamp is zeroed first, so a reader still
    /// looking at this slot's previous frame sees it as overwritten.
    pub fn frame(&mut self) -> FrameMut<'_> {
        self.w.begin();
        FrameMut {
            slot: self.w.ptr,
            writer: self,
        }
    }

    /// Publishes the current slot: stamps it with the next sequence number, advances the
    /// write pointer, then bumps the global sequence, each a Release store (libmembus
    /// bumps the global sequence first). Returns the frame's sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] only if the share's words are out of reach (never for a
    /// share this writer created).
    pub fn publish(&mut self) -> Result<u64> {
        self.w.publish()
    }

    /// The layout.
    pub fn layout(&self) -> &VidLayout {
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

    /// Frames published so far.
    pub fn seq(&self) -> u64 {
        self.w.seq()
    }
}

fn slots(l: &VidLayout) -> Slots {
    Slots {
        base: l.frames.dataoffset,
        stride: l.frames.blocksz,
        bufs: l.frames.bufs,
        stamp_at: S_SEQ,
    }
}

/// The writer's current slot. Dropping it does not publish; call
/// [`VideoWriter::publish`].
pub struct FrameMut<'a> {
    slot: usize,
    writer: &'a mut VideoWriter,
}

impl FrameMut<'_> {
    fn slot(&self) -> usize {
        self.slot
    }

    fn payload_at(&self) -> usize {
        self.writer.layout.frames.payload_at(self.slot())
    }

    /// The whole payload (`scanwidth × height` bytes, padding included).
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

    /// Row `y` as `width` pixels of type `P` (which must match the format's pixel size).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `y` ≥ height or `P` does not fit the format.
    pub fn row_mut<P: Pixel>(&mut self, y: usize) -> Result<&mut [P]> {
        let (at, n) = row_span::<P>(&self.writer.layout, y)?;
        let p = self
            .writer
            .w
            .share()
            .bytes(self.payload_at() + at, n * P::SIZE)?;
        // SAFETY: as in `bytes_mut`; additionally `P: Pod` has alignment 1 (all pixel
        // types are byte arrays or structs of u8) and size P::SIZE, so `n` values fit the
        // checked range exactly.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<P>(), n) })
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

    /// Sets the frame's video timestamp.
    pub fn set_vpts(&mut self, pts: i64) {
        self.store(S_VPTS, pts);
    }

    /// Sets the frame's companion audio timestamp.
    pub fn set_apts(&mut self, pts: i64) {
        self.store(S_APTS, pts);
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

/// Byte offset in the payload and pixel count of row `y` for pixel type `P`.
fn row_span<P: Pixel>(l: &VidLayout, y: usize) -> Result<(usize, usize)> {
    let v = &l.video;
    if y >= v.height {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("row {y} ≥ height {}", v.height),
        ));
    }
    if !P::FORMATS.contains(&v.format) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "pixel type {} does not match the share's format {:?}",
                std::any::type_name::<P>(),
                v.format
            ),
        ));
    }
    let n = if v.format == VideoFormat::UserType {
        v.scanwidth / P::SIZE
    } else {
        v.width * v.format.bytes_per_pixel() / P::SIZE
    };
    Ok((y * v.scanwidth, n))
}

/// Checks an attached share's layout against the parameters the caller expects; the
/// error names every difference.
fn check_expected(name: &ShareName, layout: &VidLayout, p: &VideoParams) -> Result<()> {
    let want = p.layout().map_err(|e| e.with_share(name.as_str()))?;
    let (a, b) = (&want.video, &layout.video);
    check_params(
        name,
        MediaKind::Vid,
        &[
            ("width", a.width as i64, b.width as i64),
            ("height", a.height as i64, b.height as i64),
            ("format", a.format.value(), b.format.value()),
            ("fps", a.fps, b.fps),
            ("bufs", want.frames.bufs as i64, layout.frames.bufs as i64),
            ("scanwidth", a.scanwidth as i64, b.scanwidth as i64),
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
    pub expect: Option<VideoParams>,
}

/// The reading end of a memvid share: mapped read-only, no way to write.
pub struct VideoReader {
    ring: SlotRing,
    layout: VidLayout,
}

impl VideoReader {
    /// Attaches read-only without knowing the parameters; starts at the newest frame.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`]/[`ErrorKind::MapFailed`] from the OS;
    /// [`ErrorKind::InvalidLayout`] when the header is not a valid memvid header (format,
    /// geometry and every offset are checked against the mapping).
    pub fn attach(name: impl IntoShareName) -> Result<VideoReader> {
        Self::attach_with(name, &ReaderOptions::default())
    }

    /// [`attach`](Self::attach) with options.
    ///
    /// # Errors
    /// As for [`attach`](Self::attach), and [`ErrorKind::SizeMismatch`] naming every
    /// parameter that differs from `opts.expect`.
    pub fn attach_with(name: impl IntoShareName, opts: &ReaderOptions) -> Result<VideoReader> {
        let name = name.into_share_name()?;
        let (share, layout) = MediaSeg::attach_layout(
            &name,
            MediaKind::Vid,
            Access::ReadOnly,
            VidLayout::from_header,
            |l| match &opts.expect {
                Some(p) => check_expected(&name, l, p),
                None => Ok(()),
            },
        )?;
        let ring = SlotRing::new(share, slots(&layout), opts.from)?;
        Ok(VideoReader { ring, layout })
    }

    /// The next frame in order, an overrun (with how many frames were lost), or nothing new.
    ///
    /// Not an `Iterator`: the frame borrows the reader, and "nothing new" is not the end.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when the header's write pointer is corrupt.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Next<Frame<'_>>> {
        Ok(match self.ring.next_slot()? {
            Next::Frame((slot, seq)) => Next::Frame(Frame {
                reader: self,
                slot,
                seq,
                _p: PhantomData,
            }),
            Next::Overrun { lost } => Next::Overrun { lost },
            Next::Empty => Next::Empty,
        })
    }

    /// Waits, without blocking a thread, for the next frame or an overrun (never
    /// [`Next::Empty`]). Cancellation-safe: the reader moves only in the poll that returns.
    ///
    /// # Errors
    /// As for [`next`](Self::next).
    #[cfg(feature = "async")]
    pub async fn next_async(&mut self) -> Result<Next<Frame<'_>>> {
        crate::aio::until(&*self, || self.ring.deliverable()).await;
        self.next()
    }

    /// The layout.
    pub fn layout(&self) -> &VidLayout {
        &self.layout
    }

    /// Slot `i`'s frame as it is now, whatever its stamp (for inspection and fixtures).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `i` ≥ bufs.
    pub fn slot(&self, i: usize) -> Result<Frame<'_>> {
        if i >= self.layout.frames.bufs {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("slot {i} ≥ bufs {}", self.layout.frames.bufs),
            ));
        }
        let seq = self.ring.stamp(i)?.max(0) as u64;
        Ok(Frame {
            reader: self,
            slot: i,
            seq,
            _p: PhantomData,
        })
    }
}

/// A frame in the ring, borrowed from its reader.
pub struct Frame<'a> {
    reader: &'a VideoReader,
    slot: usize,
    seq: u64,
    _p: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq)
            .field("slot", &self.slot)
            .field("vpts", &self.vpts())
            .finish()
    }
}

impl Frame<'_> {
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

    /// Video timestamp.
    pub fn vpts(&self) -> i64 {
        self.word(S_VPTS)
    }

    /// Companion audio timestamp.
    pub fn apts(&self) -> i64 {
        self.word(S_APTS)
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

    /// Payload bytes (`scanwidth × height`).
    pub fn len(&self) -> usize {
        self.reader.layout.frames.payload
    }

    /// Always false: a frame has at least one row.
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

    /// Row `y` as `width` pixels of type `P`, zero-copy (see the module's notes on
    /// soundness; check [`is_intact`](Self::is_intact) after use).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `y` ≥ height or `P` does not fit the format.
    pub fn row<P: Pixel>(&self, y: usize) -> Result<&[P]> {
        let (at, n) = row_span::<P>(&self.reader.layout, y)?;
        let p = self
            .reader
            .ring
            .share
            .bytes(self.payload_at() + at, n * P::SIZE)?;
        // SAFETY: `p` is bounds-checked for n·P::SIZE bytes of the reader's mapping, which
        // lives as long as the borrow of the reader; `P: Pod` accepts any bit pattern and
        // has alignment 1, so a concurrent overwrite can only give wrong (never invalid)
        // pixels, which `is_intact` reports. The slice is read-only (read-only mapping).
        Ok(unsafe { std::slice::from_raw_parts(p.cast::<P>().cast_const(), n) })
    }

    /// True if the slot still holds this frame: not rewritten (nor, with a membus writer,
    /// being rewritten) since `next` returned it.
    pub fn is_intact(&self) -> bool {
        self.reader.ring.still(self.slot, self.seq)
    }
}

crate::media::ring_api!(writer VideoWriter, "frame");

impl VideoWriter {
    /// Slot `slot` as it is now, to read or change in place. Unlike
    /// [`frame`](Self::frame), its stamp is left alone (as libmembus's `getBuf(idx)`
    /// does), so a reader cannot tell that it is being rewritten.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `slot` ≥ bufs.
    pub fn slot_mut(&mut self, slot: usize) -> Result<FrameMut<'_>> {
        crate::media::checked_slot(&self.w.slots, slot)?;
        Ok(FrameMut { slot, writer: self })
    }
}

/// Reads of the slot's fields, for the slot-index API ([`VideoWriter::slot_mut`]).
impl FrameMut<'_> {
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

    /// The frame's video timestamp.
    pub fn vpts(&self) -> i64 {
        self.load(S_VPTS)
    }

    /// The frame's companion audio timestamp.
    pub fn apts(&self) -> i64 {
        self.load(S_APTS)
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

crate::media::ring_api!(reader VideoReader);

crate::select::impl_selectable!(VideoReader, ring);
