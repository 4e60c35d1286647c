//! `memvid` and `memaud` (media rings with libmembus's slot-index API) and their buffer
//! views `vidview` and `audview`.
//!
//! A view holds a raw pointer into its parent's mapping. That is sound because the parent
//! counts its live views and refuses to close or reopen (RuntimeError) while any exists,
//! and every view keeps its parent object alive.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use membus::layout::media::{AudLayout, AudioFormat, FrameLayout, VidLayout, VideoFormat};
use membus::memaud::{AudioParams, AudioReader, AudioWriter};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{Identity, SeqWatch};
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};

use crate::aio::{ClosedError, Lendable, Links, Op, WaitFuture};
use crate::enums::{audio_bps, audio_name, video_bpp, video_name};
use crate::{
    errc, failed, name_arg, poll_until, set_error, str_arg, AudioFormatEnum, VideoFormatEnum,
};

/// What the Python classes need from a media handle, writer or reader.
trait Handle: Send {
    fn frames(&self) -> &FrameLayout;
    /// What a view of this share needs to know, and the getters report.
    fn desc(&self) -> Desc;
    fn session_id(&self) -> i64;
    fn seq(&self) -> u64;
    /// The write pointer.
    fn ptr(&self) -> membus::Result<usize>;
    fn writer(&mut self) -> Option<&mut dyn WriterOps>;
    fn slot_seq(&mut self, slot: usize) -> membus::Result<u64>;
    fn user_data(&mut self, slot: usize) -> membus::Result<Vec<u8>>;
    /// Timestamp `which` of slot `slot` (0 = vpts/pts, 1 = apts); 0 when unreadable.
    fn pts(&mut self, slot: usize, which: u8) -> i64;
    /// Slot `slot`'s payload and whether it is read-only.
    ///
    /// # Safety
    /// As the crate's `payload_ptr`: valid while the handle lives.
    unsafe fn payload(&self, slot: usize) -> membus::Result<(*mut u8, bool)>;
    fn fourcc(&self) -> u32;
    fn guid(&self) -> [u8; 16];
    fn meta(&self) -> Vec<u8>;
    /// A watch on the publish counter that waits without this handle (and its lock).
    fn seq_watch(&self) -> membus::Result<SeqWatch>;
    /// Readers: waits (futex) until the global sequence exceeds `last`; writers: None.
    fn wait_seq_above(&self, last: u64, timeout: Duration) -> Option<bool>;
    /// The reader as a wait source (`pymembus.aio`); None for writers.
    fn source(&self) -> Option<&(dyn membus::select::Selectable + Sync)>;
}

/// The writer-only operations.
trait WriterOps {
    fn set_ptr(&mut self, slot: usize) -> membus::Result<()>;
    fn advance(&mut self, inc: i64) -> membus::Result<usize>;
    fn fill(&mut self, slot: usize, byte: u8) -> membus::Result<()>;
    fn set_user_data(&mut self, slot: usize, data: &[u8]) -> membus::Result<()>;
    /// Sets timestamp `which` (0 = vpts/pts, 1 = apts).
    fn set_pts(&mut self, slot: usize, which: u8, pts: i64) -> membus::Result<()>;
}

/// The members of `Handle` that read the same on writers and readers.
macro_rules! common_handle_fns {
    ($desc:expr) => {
        fn frames(&self) -> &FrameLayout {
            &self.layout().frames
        }
        fn desc(&self) -> Desc {
            $desc(self.layout())
        }
        fn session_id(&self) -> i64 {
            Self::session_id(self)
        }
        fn seq(&self) -> u64 {
            Self::seq(self)
        }
        fn slot_seq(&mut self, slot: usize) -> membus::Result<u64> {
            Self::slot_seq(self, slot)
        }
        fn fourcc(&self) -> u32 {
            Self::fourcc(self)
        }
        fn guid(&self) -> [u8; 16] {
            Self::guid(self)
        }
        fn meta(&self) -> Vec<u8> {
            Self::meta(self).unwrap_or_default()
        }
        fn seq_watch(&self) -> membus::Result<SeqWatch> {
            Self::seq_watch(self)
        }
    };
}

macro_rules! writer_impl {
    ($w:ty, $desc:expr, $pts:expr, $set_pts:expr) => {
        impl WriterOps for $w {
            fn set_ptr(&mut self, slot: usize) -> membus::Result<()> {
                Self::set_ptr(self, slot)
            }
            fn advance(&mut self, inc: i64) -> membus::Result<usize> {
                self.publish_advance(inc)
            }
            fn fill(&mut self, slot: usize, byte: u8) -> membus::Result<()> {
                self.slot_mut(slot)?.fill(byte)
            }
            fn set_user_data(&mut self, slot: usize, data: &[u8]) -> membus::Result<()> {
                self.slot_mut(slot)?.set_user_data(data)
            }
            fn set_pts(&mut self, slot: usize, which: u8, pts: i64) -> membus::Result<()> {
                $set_pts(&mut self.slot_mut(slot)?, which, pts);
                Ok(())
            }
        }

        impl Handle for $w {
            common_handle_fns!($desc);
            fn ptr(&self) -> membus::Result<usize> {
                Ok(Self::ptr(self))
            }
            fn writer(&mut self) -> Option<&mut dyn WriterOps> {
                Some(self)
            }
            fn user_data(&mut self, slot: usize) -> membus::Result<Vec<u8>> {
                Ok(self.slot_mut(slot)?.user_data())
            }
            fn pts(&mut self, slot: usize, which: u8) -> i64 {
                self.slot_mut(slot).map_or(0, |f| $pts(&f, which))
            }
            unsafe fn payload(&self, slot: usize) -> membus::Result<(*mut u8, bool)> {
                // SAFETY: the caller upholds payload_ptr's obligations (see the trait).
                Ok((unsafe { self.payload_ptr(slot) }?, false))
            }
            fn wait_seq_above(&self, _last: u64, _timeout: Duration) -> Option<bool> {
                None
            }
            fn source(&self) -> Option<&(dyn membus::select::Selectable + Sync)> {
                None
            }
        }
    };
}

macro_rules! reader_impl {
    ($r:ty, $desc:expr, $pts:expr) => {
        impl Handle for $r {
            common_handle_fns!($desc);
            fn ptr(&self) -> membus::Result<usize> {
                self.write_ptr()
            }
            fn writer(&mut self) -> Option<&mut dyn WriterOps> {
                None
            }
            fn user_data(&mut self, slot: usize) -> membus::Result<Vec<u8>> {
                Ok(self.slot(slot)?.user_data())
            }
            fn pts(&mut self, slot: usize, which: u8) -> i64 {
                self.slot(slot).map_or(0, |f| $pts(&f, which))
            }
            unsafe fn payload(&self, slot: usize) -> membus::Result<(*mut u8, bool)> {
                // SAFETY: the caller upholds payload_ptr's obligations (see the trait);
                // the pointer is exported read-only, so nothing writes through it.
                Ok((unsafe { self.payload_ptr(slot) }?.cast_mut(), true))
            }
            fn wait_seq_above(&self, last: u64, timeout: Duration) -> Option<bool> {
                Some(<$r>::wait_seq_above(self, last, timeout))
            }
            fn source(&self) -> Option<&(dyn membus::select::Selectable + Sync)> {
                Some(self)
            }
        }
    };
}

fn vid_desc(l: &VidLayout) -> Desc {
    Desc::Vid {
        width: l.video.width,
        height: l.video.height,
        scanwidth: l.video.scanwidth,
        format: l.video.format.value(),
        fps: l.video.fps,
    }
}

fn aud_desc(l: &AudLayout) -> Desc {
    Desc::Aud {
        channels: l.channels,
        sample_rate: l.sample_rate,
        format: l.format.value(),
        fps: l.fps,
    }
}

writer_impl!(
    VideoWriter,
    vid_desc,
    |f: &membus::memvid::FrameMut<'_>, w: u8| if w == 0 { f.vpts() } else { f.apts() },
    |f: &mut membus::memvid::FrameMut<'_>, w: u8, pts: i64| if w == 0 {
        f.set_vpts(pts)
    } else {
        f.set_apts(pts)
    }
);
writer_impl!(
    AudioWriter,
    aud_desc,
    |f: &membus::memaud::AudioBufMut<'_>, _w: u8| f.pts(),
    |f: &mut membus::memaud::AudioBufMut<'_>, _w: u8, pts: i64| f.set_pts(pts)
);
reader_impl!(
    VideoReader,
    vid_desc,
    |f: &membus::memvid::Frame<'_>, w: u8| if w == 0 { f.vpts() } else { f.apts() }
);
reader_impl!(
    AudioReader,
    aud_desc,
    |f: &membus::memaud::AudioBuf<'_>, _w: u8| f.pts()
);

/// The open handle of a memvid or memaud object.
#[derive(Default)]
struct MediaState {
    h: Option<Box<dyn Handle>>,
    /// For memvid: geometry; for memaud: channels etc. (kept to describe views).
    desc: Desc,
    /// Attached to a share that existed (`open_existing`, or `open` with bCreate=False).
    existing: bool,
    /// Made on the first `waitForFrame`: waits without holding the handle's lock.
    watch: Option<Arc<SeqWatch>>,
    /// `pymembus.aio` waits on this handle (kept across resets: see `MediaState::reset`).
    aio: Arc<Links>,
}

impl MediaState {
    /// Closes: the default state, with the same `aio` record, whose pending waits end.
    fn reset(&mut self) {
        let aio = Arc::clone(&self.aio);
        *self = MediaState::default();
        self.aio = aio;
        self.aio.invalidate();
    }
}

impl Lendable for Box<dyn Handle> {
    fn wait(&self, last: u64) -> WaitFuture<'_> {
        match self.source() {
            Some(s) => Box::pin(membus::aio::seq_above(s, last)),
            // Only readers are lent (`Media::aio_op`); a writer would never be woken.
            None => Box::pin(std::future::pending()),
        }
    }
}

#[derive(Clone, Copy, Default)]
enum Desc {
    #[default]
    None,
    Vid {
        width: usize,
        height: usize,
        scanwidth: usize,
        format: i64,
        fps: i64,
    },
    Aud {
        channels: usize,
        sample_rate: i64,
        format: i64,
        fps: i64,
    },
}

/// What memvid and memaud share: the handle and the live-view count.
struct Media {
    state: Mutex<MediaState>,
    views: Arc<AtomicUsize>,
    kind: &'static str,
}

impl Media {
    fn new(kind: &'static str) -> Media {
        Media {
            state: Mutex::new(MediaState::default()),
            views: Arc::new(AtomicUsize::new(0)),
            kind,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MediaState> {
        crate::lock(&self.state)
    }

    /// Refuses to reopen while views exist; otherwise closes the current handle.
    fn prepare_reopen(&self, st: &mut MediaState) -> PyResult<()> {
        // Acquire: pairs with the AcqRel increment in `ViewGuard::new` (made under the same
        // lock, held here) and the decrement in its Drop: a view released on another
        // thread is seen released.
        if self.views.load(Ordering::Acquire) > 0 {
            return Err(crate::runtime_error(&format!(
                "cannot reopen {} while exported buffer views exist",
                self.kind
            )));
        }
        st.reset();
        Ok(())
    }

    /// Opens through `make` (reopen rules first): stores the handle and returns True, or
    /// returns False with the error recorded (`quiet_invalid`: invalid parameters leave the
    /// error unchanged, as pymembus's create does).
    fn open(
        &self,
        existing: bool,
        quiet_invalid: bool,
        make: impl FnOnce() -> membus::Result<Box<dyn Handle>>,
    ) -> PyResult<bool> {
        let mut st = self.lock();
        self.prepare_reopen(&mut st)?;
        match make() {
            Ok(h) => {
                *st = MediaState {
                    desc: h.desc(),
                    h: Some(h),
                    existing,
                    watch: None,
                    aio: Arc::clone(&st.aio),
                };
                set_error(errc::OK);
                Ok(true)
            }
            Err(e) if quiet_invalid && e.kind() == membus::ErrorKind::InvalidArgument => Ok(false),
            Err(e) => Ok(failed(&e, false)),
        }
    }

    /// RuntimeError while views exist (before anything else is checked, as pymembus
    /// does); otherwise closes the current handle.
    fn check_reopen(&self) -> PyResult<()> {
        let mut st = self.lock();
        self.prepare_reopen(&mut st)
    }

    fn close(&self) -> PyResult<()> {
        let mut st = self.lock();
        // Acquire: as in `prepare_reopen`.
        if self.views.load(Ordering::Acquire) > 0 {
            return Err(crate::runtime_error(&format!(
                "cannot close {} while exported buffer views exist",
                self.kind
            )));
        }
        st.reset();
        Ok(())
    }

    /// A `pymembus.aio` wait until the global sequence exceeds `last`: lends the reader
    /// to the op, which `give_back` returns it through.
    fn aio_op(
        &self,
        last: i64,
        give_back: impl FnOnce(Box<dyn Handle>, u64) + Send + 'static,
    ) -> PyResult<Op> {
        let mut st = self.lock();
        if st.aio.is_lent() {
            st.aio.lend(self.kind)?;
        }
        let Some(h) = st.h.take() else {
            return Err(ClosedError::new_err(format!("{} is not open", self.kind)));
        };
        if h.source().is_none() {
            st.h = Some(h);
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{}: aio waits need a reader handle (open_existing)",
                self.kind
            )));
        }
        let Ok(last) = u64::try_from(last) else {
            // The sequence (never negative) already exceeds `last`: nothing to wait for.
            st.h = Some(h);
            return Ok(Op::done(self.kind, 0));
        };
        let gen = st.aio.lend(self.kind)?;
        Ok(Op::lent(
            self.kind,
            h,
            last,
            Arc::clone(&st.aio),
            gen,
            give_back,
        ))
    }

    /// Puts a reader lent in generation `gen` back, unless the handle was closed or
    /// reopened since (then it is dropped: no view can point into it, since close and
    /// reopen refuse while views exist).
    fn give_back(&self, h: Box<dyn Handle>, gen: u64) {
        let mut st = self.lock();
        if st.aio.restore(gen) && st.h.is_none() {
            st.h = Some(h);
        }
    }

    fn with<T>(&self, closed: T, f: impl FnOnce(&mut dyn Handle) -> T) -> T {
        let mut st = self.lock();
        match st.h.as_deref_mut() {
            Some(h) => f(h),
            None => closed,
        }
    }

    fn frames<T>(&self, closed: T, f: impl FnOnce(&FrameLayout) -> T) -> T {
        self.with(closed, |h| f(h.frames()))
    }

    /// A writer-only operation: access_denied on a reader.
    fn write_op<T>(&self, closed: T, f: impl FnOnce(&mut dyn WriterOps, usize) -> T) -> T {
        let mut st = self.lock();
        let Some(h) = st.h.as_deref_mut() else {
            return closed;
        };
        let bufs = h.frames().bufs;
        match h.writer() {
            Some(w) => f(w, bufs),
            None => {
                set_error(errc::ACCESS_DENIED);
                closed
            }
        }
    }

    /// `waitForFrame`: event-driven on writers and readers alike. The wait sleeps on a
    /// [`SeqWatch`] (the share's futex) with the GIL released and without this object's
    /// lock, so other threads, including one publishing through this very handle, carry
    /// on. Where no watch can be made (a reader whose share's mode forbids mapping the
    /// header read-write), a reader sleeps on its own handle in 10 ms slices and a writer
    /// polls.
    fn wait_for_frame(&self, py: Python<'_>, wait_ms: u64, last_seq: i64) -> bool {
        let watch = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(h) = st.h.as_deref() else {
                set_error(errc::NOT_OPEN);
                return false;
            };
            if st.watch.is_none() {
                st.watch = h.seq_watch().ok().map(Arc::new);
            }
            st.watch.clone()
        };
        let ok = match watch {
            _ if last_seq < 0 || wait_ms == 0 => self.with(false, |h| h.seq() as i64 > last_seq),
            Some(w) => {
                let current = |w: &Arc<SeqWatch>| {
                    self.lock()
                        .watch
                        .as_ref()
                        .is_some_and(|x| Arc::ptr_eq(x, w))
                };
                wait_on_watch(py, &w, wait_ms, last_seq, &current)
            }
            None => self.wait_on_handle(py, wait_ms, last_seq),
        };
        set_error(if ok { errc::OK } else { errc::TIMEOUT });
        ok
    }

    /// `waitForFrame` without a watch (see [`wait_without_watch`]).
    fn wait_on_handle(&self, py: Python<'_>, wait_ms: u64, last_seq: i64) -> bool {
        let is_reader = self.with(false, |h| h.writer().is_none());
        let slice = |d: Duration| self.with(None, |h| h.wait_seq_above(last_seq as u64, d));
        let arrived = || self.with(false, |h| h.seq() as i64 > last_seq);
        let slice: &(dyn Fn(Duration) -> Option<bool> + Sync) = &slice;
        wait_without_watch(py, wait_ms, is_reader.then_some(slice), &arrived)
    }

    fn get_ptr(&self, offset: i64) -> i64 {
        self.with(-1, |h| {
            let bufs = h.frames().bufs as i64;
            match h.ptr() {
                Ok(p) => (p as i64 + offset.rem_euclid(bufs)).rem_euclid(bufs),
                Err(e) => failed(&e, -1),
            }
        })
    }

    fn get_ptr_err(&self, pos: i64, bias: i64) -> i64 {
        self.with(0, |h| {
            let bufs = h.frames().bufs as i64;
            let Ok(ptr) = h.ptr() else { return 0 };
            let p = (ptr as i64).wrapping_add(bias).rem_euclid(bufs);
            let q = pos.rem_euclid(bufs);
            if q > p {
                let e = q - p;
                if e > bufs - e {
                    -(bufs - e)
                } else {
                    e
                }
            } else {
                let e = p - q;
                if e > bufs - e {
                    bufs - e
                } else {
                    -e
                }
            }
        })
    }

    fn set_ptr(&self, ptr: i64) -> i64 {
        self.write_op(-1, |w, bufs| {
            let p = ptr.rem_euclid(bufs as i64);
            match w.set_ptr(p as usize) {
                Ok(()) => p,
                Err(e) => failed(&e, -1),
            }
        })
    }

    fn next(&self, inc: i64) -> i64 {
        self.write_op(-1, |w, _| match w.advance(inc) {
            Ok(p) => p as i64,
            Err(e) => failed(&e, -1),
        })
    }

    fn fill(&self, idx: i64, col: i64) -> bool {
        self.write_op(false, |w, bufs| {
            match w.fill(idx.rem_euclid(bufs as i64) as usize, col as u8) {
                Ok(()) => true,
                Err(e) => failed(&e, false),
            }
        })
    }

    fn set_pts(&self, idx: i64, which: u8, pts: i64) -> bool {
        self.write_op(false, |w, bufs| {
            match w.set_pts(idx.rem_euclid(bufs as i64) as usize, which, pts) {
                Ok(()) => true,
                Err(e) => failed(&e, false),
            }
        })
    }

    /// Timestamp `which` (0 = vpts/pts, 1 = apts) of slot `idx mod bufs`; 0 when closed.
    fn slot_pts(&self, idx: i64, which: u8) -> i64 {
        self.with(0, |h| {
            let slot = idx.rem_euclid(h.frames().bufs as i64) as usize;
            h.pts(slot, which)
        })
    }

    fn frame_seq(&self, idx: i64) -> i64 {
        self.with(-1, |h| {
            let slot = idx.rem_euclid(h.frames().bufs as i64) as usize;
            h.slot_seq(slot).map_or(-1, |s| s as i64)
        })
    }

    fn set_user_data(&self, idx: i64, data: &[u8]) -> bool {
        self.write_op(false, |w, bufs| {
            w.set_user_data(idx.rem_euclid(bufs as i64) as usize, data)
                .is_ok()
        })
    }

    fn user_data(&self, idx: i64) -> Option<Vec<u8>> {
        self.with(None, |h| {
            if h.frames().frameextra == 0 {
                return None;
            }
            let slot = idx.rem_euclid(h.frames().bufs as i64) as usize;
            h.user_data(slot).ok()
        })
    }

    fn guid<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let g = self.with([0u8; 16], |h| h.guid());
        (g != [0u8; 16]).then(|| PyBytes::new(py, &g))
    }

    fn meta<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let m = self.with(None, |h| (h.frames().metasize > 0).then(|| h.meta()));
        m.map(|m| PyBytes::new(py, &m))
    }

    /// The raw payload of slot `idx mod bufs`, its length and read-only flag, and the
    /// description of the open share; counts a new view. RuntimeError when closed.
    fn new_view(&self, idx: i64) -> PyResult<(usize, usize, bool, Desc, ViewGuard)> {
        let st = self.lock();
        let Some(h) = st.h.as_deref() else {
            return Err(crate::runtime_error("std::exception"));
        };
        let f = h.frames();
        let slot = idx.rem_euclid(f.bufs as i64) as usize;
        // SAFETY: payload_ptr's obligations: the pointer is used only by the view this
        // creates, which counts itself in `views` (before the lock is released), and while
        // that count is non-zero the handle is neither closed nor replaced; readers' views
        // are exported read-only; Python accesses the bytes only as plain memory.
        let got = unsafe { h.payload(slot) };
        let (ptr, ro) = got.map_err(|_| crate::runtime_error("std::exception"))?;
        let guard = ViewGuard::new(self.views.clone());
        Ok((ptr as usize, f.payload, ro, st.desc, guard))
    }
}

/// `waitForFrame(wait_ms, last_seq)` on a watch (`last_seq` ≥ 0): true at once if the
/// publish counter already exceeds it, else sleeps on the share's futex with the GIL
/// released. The sleep is cut in slices of at most 250 ms (a frame wakes it at once
/// whatever the slice); after each it gives up if `current` says the handle no longer
/// uses this watch (closed or reopened meanwhile).
pub(crate) fn wait_on_watch(
    py: Python<'_>,
    w: &Arc<SeqWatch>,
    wait_ms: u64,
    last_seq: i64,
    current: &(dyn Fn(&Arc<SeqWatch>) -> bool + Sync),
) -> bool {
    let last = u64::try_from(last_seq).unwrap_or(0);
    if w.seq() > last {
        return true;
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    py.detach(|| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if w.wait_seq_above(last, left.min(Duration::from_millis(250))) {
            break true;
        }
        if Instant::now() >= deadline || !current(w) {
            break false;
        }
    })
}

/// `waitForFrame(wait_ms, ..)` where no [`SeqWatch`] could be made (a reader whose
/// share's mode forbids mapping the header read-write, or no `/proc`): a reader sleeps on
/// its own futex in 10 ms slices through `slice` (which holds the handle's lock, so other
/// threads using the handle wait for it at most one slice, and returns `None` once the
/// handle is closed); a writer (`slice` is `None`) polls `arrived`.
pub(crate) fn wait_without_watch(
    py: Python<'_>,
    wait_ms: u64,
    slice: Option<&(dyn Fn(Duration) -> Option<bool> + Sync)>,
    arrived: &(dyn Fn() -> bool + Sync),
) -> bool {
    let Some(slice) = slice else {
        return poll_until(py, wait_ms, arrived);
    };
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    py.detach(|| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match slice(left.min(Duration::from_millis(10))) {
            Some(true) => break true,
            None => break false,
            Some(false) if Instant::now() >= deadline => break false,
            Some(false) => {}
        }
    })
}

/// One live view in its parent's count; released on drop.
struct ViewGuard(Arc<AtomicUsize>);

impl ViewGuard {
    fn new(count: Arc<AtomicUsize>) -> ViewGuard {
        // AcqRel: pairs with the Acquire loads in close/reopen (done under the same lock,
        // which already orders them; the ordering documents the intent).
        count.fetch_add(1, Ordering::AcqRel);
        ViewGuard(count)
    }
}

impl Drop for ViewGuard {
    fn drop(&mut self) {
        // AcqRel: pairs with the Acquire loads in close/reopen.
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A buffer export's geometry.
struct Export {
    ptr: usize,
    len: isize,
    readonly: bool,
    itemsize: isize,
    format: &'static CStr,
    ndim: c_int,
    shape: [isize; 3],
    strides: [isize; 3],
    contiguous: bool,
}

/// Fills `view` from `ex`, with `obj` as the exporter (kept alive by the view).
///
/// # Safety
/// `view` must be the non-null `Py_buffer` CPython passed to `__getbuffer__`; `ex` must
/// live inside `obj` (its shape and strides are pointed at), and `ex.ptr` must stay valid
/// for `ex.len` bytes while `obj` lives.
unsafe fn fill_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ex: &Export,
    obj: Bound<'_, PyAny>,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("View is null"));
    }
    if ex.readonly && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err("Object is not writable"));
    }
    if !ex.contiguous && flags & ffi::PyBUF_STRIDES != ffi::PyBUF_STRIDES {
        return Err(PyBufferError::new_err(
            "the buffer is not contiguous (padded rows): request strides",
        ));
    }
    if !ex.contiguous
        && flags
            & (ffi::PyBUF_C_CONTIGUOUS | ffi::PyBUF_F_CONTIGUOUS | ffi::PyBUF_ANY_CONTIGUOUS)
            & !ffi::PyBUF_STRIDES
            != 0
    {
        return Err(PyBufferError::new_err("the buffer is not contiguous"));
    }
    let nd = flags & ffi::PyBUF_ND == ffi::PyBUF_ND;
    // SAFETY: `view` is non-null and ours to fill for this call (caller's obligation);
    // shape/strides point into `ex`, which lives in `obj`, kept alive by `view.obj`; the
    // format string is static; `buf` is valid as long as `obj` (caller's obligation).
    unsafe {
        (*view).buf = ex.ptr as *mut c_void;
        (*view).len = ex.len;
        (*view).readonly = c_int::from(ex.readonly);
        (*view).itemsize = if nd { ex.itemsize } else { 1 };
        (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            ex.format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = if nd { ex.ndim } else { 1 };
        (*view).shape = if nd {
            ex.shape.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            ex.strides.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        (*view).obj = obj.into_ptr();
    }
    Ok(())
}

/// pymembus `vidview`: one video slot, exported as a buffer.
#[pyclass(frozen, name = "vidview", module = "pymembus.pymembus")]
pub(crate) struct VidView {
    ex: Export,
    size: usize,
    width: usize,
    height: usize,
    scanwidth: usize,
    format: i64,
    _count: ViewGuard,
    _parent: Py<PyAny>,
}

#[pymethods]
impl VidView {
    /// Payload bytes (`scanwidth × height`).
    #[getter]
    fn size(&self) -> usize {
        self.size
    }
    #[getter]
    fn width(&self) -> usize {
        self.width
    }
    #[getter]
    fn height(&self) -> usize {
        self.height
    }
    #[getter]
    fn scanwidth(&self) -> usize {
        self.scanwidth
    }
    #[getter]
    fn format<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, VideoFormatEnum>> {
        VideoFormatEnum::member(py, self.format)
    }

    /// The buffer protocol (see the module's notes on soundness).
    ///
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let ex: *const Export = &slf.get().ex;
        // SAFETY: `view` comes from CPython; `ex` lives in `slf`, which becomes the view's
        // `obj`; its pointer stays valid while `slf` lives (the view count it holds keeps
        // the parent's mapping in place).
        unsafe { fill_view(view, flags, &*ex, slf.into_any()) }
    }

    /// Nothing to release: shape and format live in the view object.
    ///
    /// # Safety
    /// Called by CPython.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

/// pymembus `audview`: one audio buffer, exported typed `(samples, channels)`.
#[pyclass(frozen, name = "audview", module = "pymembus.pymembus")]
pub(crate) struct AudView {
    ex: Export,
    channels: usize,
    format: i64,
    _count: ViewGuard,
    _parent: Py<PyAny>,
}

#[pymethods]
impl AudView {
    #[getter]
    fn size(&self) -> isize {
        self.ex.len
    }
    #[getter]
    fn channels(&self) -> usize {
        self.channels
    }
    #[getter]
    fn format<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, AudioFormatEnum>> {
        AudioFormatEnum::member(py, self.format)
    }

    /// The buffer protocol (see the module's notes on soundness).
    ///
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let ex: *const Export = &slf.get().ex;
        // SAFETY: as for vidview.
        unsafe { fill_view(view, flags, &*ex, slf.into_any()) }
    }

    /// Nothing to release.
    ///
    /// # Safety
    /// Called by CPython.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

/// The buffer geometry of a video slot (spec 1.7).
fn video_export(
    ptr: usize,
    len: usize,
    ro: bool,
    w: usize,
    h: usize,
    sw: usize,
    fmt: i64,
) -> Export {
    let bpp = video_bpp(fmt) as usize;
    let (ndim, shape, strides) = match VideoFormat::from_value(fmt) {
        Some(VideoFormat::Gray8) => (2, [h, w, 0], [sw, 1, 0]),
        Some(VideoFormat::Yuyv422 | VideoFormat::Uyvy422) => (2, [h, sw, 0], [sw, 1, 0]),
        Some(VideoFormat::UserType) | None => (1, [len, 0, 0], [1, 0, 0]),
        Some(_) => (3, [h, w, bpp], [sw, bpp, 1]),
    };
    let contiguous = match ndim {
        1 => true,
        2 => shape[1] == sw,
        _ => w * bpp == sw,
    };
    // The buffer protocol's `len` is the product of the shape (padding excluded).
    let exported: usize = shape[..ndim as usize].iter().product();
    Export {
        ptr,
        len: exported as isize,
        readonly: ro,
        itemsize: 1,
        format: c"B",
        ndim,
        shape: shape.map(|x| x as isize),
        strides: strides.map(|x| x as isize),
        contiguous,
    }
}

/// The buffer geometry of an audio buffer (spec 1.8).
fn audio_export(ptr: usize, len: usize, ro: bool, ch: usize, fmt: i64) -> Export {
    let typed: Option<(&'static CStr, usize)> = match AudioFormat::from_value(fmt) {
        Some(AudioFormat::U8) => Some((c"B", 1)),
        Some(AudioFormat::S16le) => Some((c"h", 2)),
        Some(AudioFormat::S32le) => Some((c"i", 4)),
        Some(AudioFormat::F32le) => Some((c"f", 4)),
        Some(AudioFormat::F64le) => Some((c"d", 8)),
        _ => None,
    };
    match typed {
        Some((format, item)) if ch > 0 => {
            let samples = len / (ch * item);
            Export {
                ptr,
                len: (samples * ch * item) as isize,
                readonly: ro,
                itemsize: item as isize,
                format,
                ndim: 2,
                shape: [samples as isize, ch as isize, 0],
                strides: [(ch * item) as isize, item as isize, 0],
                contiguous: true,
            }
        }
        _ => Export {
            ptr,
            len: len as isize,
            readonly: ro,
            itemsize: 1,
            format: c"B",
            ndim: 1,
            shape: [len as isize, 0, 0],
            strides: [1, 0, 0],
            contiguous: true,
        },
    }
}

/// guid argument: empty or exactly 16 bytes.
/// pymembus's `format` argument of `open`: a member of the format enum (`member`, its
/// value), or a numeric bit depth listed in `bits` as (depth, format value). Another
/// number raises ValueError ("unsupported bpp; use a video_format value", with `names`
/// = ("bpp", "video_format")), anything else TypeError.
fn format_arg(
    format: &Bound<'_, PyAny>,
    member: Option<i64>,
    bits: &[(i64, i64)],
    names: (&str, &str),
) -> PyResult<i64> {
    if let Some(v) = member {
        return Ok(v);
    }
    let (depth, enum_name) = names;
    if !format.is_instance_of::<PyInt>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "format must be a {enum_name} or an int {depth}"
        )));
    }
    let n = format.extract::<i64>()?;
    bits.iter()
        .find(|(b, _)| *b == n)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let article = if enum_name.starts_with('a') {
                "an"
            } else {
                "a"
            };
            PyValueError::new_err(format!(
                "unsupported {depth}; use {article} {enum_name} value"
            ))
        })
}

/// pymembus's `fourcc`, `guid` and `meta` arguments (ValueError for a GUID that is not
/// empty or 16 bytes).
fn identity_args(
    fourcc: u32,
    guid: Option<&Bound<'_, PyAny>>,
    meta: Option<&Bound<'_, PyAny>>,
) -> PyResult<Identity> {
    Ok(Identity {
        fourcc,
        guid: match guid {
            Some(g) => guid_arg(g)?,
            None => [0; 16],
        },
        meta: match meta {
            Some(m) => str_arg(m)?.into_owned(),
            None => Vec::new(),
        },
    })
}

fn guid_arg(obj: &Bound<'_, PyAny>) -> PyResult<[u8; 16]> {
    let g = str_arg(obj)?;
    if g.is_empty() {
        return Ok([0; 16]);
    }
    <[u8; 16]>::try_from(&*g).map_err(|_| PyValueError::new_err("guid must be exactly 16 bytes"))
}

fn u32_arg(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

/// The methods memvid and memaud share, plus each class's own.
macro_rules! media_class {
    ($cls:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $cls {
            $($extra)*

            /// `remove(sName) -> bool` (static).
            #[staticmethod]
            fn remove(sName: &Bound<'_, PyAny>) -> PyResult<bool> {
                crate::map::remove_share(sName)
            }

            /// `close() -> None`; RuntimeError while views exist.
            fn close(&self) -> PyResult<()> {
                self.m.close()
            }

            /// `isOpen() -> bool`.
            fn isOpen(&self) -> bool {
                let st = self.m.lock();
                st.h.is_some() || st.aio.is_lent()
            }

            /// `existing() -> bool`: attached rather than created.
            fn existing(&self) -> bool {
                self.m.lock().existing
            }

            /// `getBufs() -> int` (0 when closed).
            fn getBufs(&self) -> usize {
                self.m.frames(0, |f| f.bufs)
            }

            fn __len__(&self) -> usize {
                self.getBufs()
            }

            /// `getPtr(offset) -> int`: `(ptr + offset) mod bufs`; -1 when closed.
            fn getPtr(&self, offset: i64) -> i64 {
                self.m.get_ptr(offset)
            }

            /// `setPtr(ptr) -> int`: stores `ptr mod bufs`; -1 when closed or a reader.
            fn setPtr(&self, ptr: i64) -> i64 {
                self.m.set_ptr(ptr)
            }

            /// `getPtrErr(pos, bias) -> int`: the signed circular distance from
            /// `ptr + bias` to `pos`.
            fn getPtrErr(&self, pos: i64, bias: i64) -> i64 {
                self.m.get_ptr_err(pos, bias)
            }

            /// `next(inc) -> int`: publishes the slot at ptr, moves ptr by `inc`, returns
            /// the new ptr; -1 when closed or a reader.
            fn next(&self, inc: i64) -> i64 {
                self.m.next(inc)
            }

            /// `waitForFrame(wait_ms, lastSeq) -> bool`: waits (GIL released) until the
            /// global sequence exceeds `lastSeq`.
            fn waitForFrame(&self, py: Python<'_>, wait_ms: u64, lastSeq: i64) -> bool {
                self.m.wait_for_frame(py, wait_ms, lastSeq)
            }

            /// `fill(idx, col) -> bool`.
            fn fill(&self, idx: i64, col: i64) -> bool {
                self.m.fill(idx, col)
            }

            /// `getFps() -> int` (-1 when closed).
            fn getFps(&self) -> i64 {
                match self.m.lock().desc {
                    Desc::Vid { fps, .. } | Desc::Aud { fps, .. } => fps,
                    Desc::None => -1,
                }
            }

            /// `getSessionId() -> int`.
            fn getSessionId(&self) -> i64 {
                self.m.with(0, |h| h.session_id())
            }

            /// `getSeq() -> int` (-1 when closed).
            fn getSeq(&self) -> i64 {
                self.m.with(-1, |h| h.seq() as i64)
            }

            /// `getFrameSeq(idx) -> int`: the slot's stamp; -1 when closed.
            fn getFrameSeq(&self, idx: i64) -> i64 {
                self.m.frame_seq(idx)
            }

            /// `getAlign() -> int`.
            fn getAlign(&self) -> i64 {
                self.m.frames(-1, |f| f.align as i64)
            }

            /// `getFourcc() -> int`.
            fn getFourcc(&self) -> i64 {
                self.m.with(0, |h| i64::from(h.fourcc()))
            }

            /// `getFrameExtra() -> int`.
            fn getFrameExtra(&self) -> i64 {
                self.m.frames(-1, |f| f.frameextra as i64)
            }

            /// `getMetaSize() -> int`.
            fn getMetaSize(&self) -> i64 {
                self.m.frames(-1, |f| f.metasize as i64)
            }

            /// `getGuid() -> bytes | None`.
            fn getGuid<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
                self.m.guid(py)
            }

            /// `getMeta() -> bytes | None`.
            fn getMeta<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
                self.m.meta(py)
            }

            /// `setUserData(idx, data) -> bool`.
            fn setUserData(&self, idx: i64, data: &Bound<'_, PyAny>) -> PyResult<bool> {
                let data = str_arg(data)?;
                Ok(self.m.set_user_data(idx, &data))
            }

            /// `getUserData(idx) -> bytes | None`.
            fn getUserData<'py>(&self, py: Python<'py>, idx: i64) -> Option<Bound<'py, PyBytes>> {
                self.m.user_data(idx).map(|d| PyBytes::new(py, &d))
            }

            /// `getUserLen(idx) -> int`.
            fn getUserLen(&self, idx: i64) -> i64 {
                self.m.user_data(idx).map_or(0, |d| d.len() as i64)
            }
        }
    };
}

/// pymembus `memvid`.
#[pyclass(frozen, name = "memvid", module = "pymembus.pymembus")]
pub(crate) struct MemVid {
    m: Media,
}

impl MemVid {
    /// A `pymembus.aio` wait until the global sequence exceeds `last`.
    pub(crate) fn aio_op(slf: &Bound<'_, MemVid>, last: i64) -> PyResult<Op> {
        let owner = slf.clone().unbind();
        slf.get()
            .m
            .aio_op(last, move |h, gen| owner.get().m.give_back(h, gen))
    }

    fn vid_desc(&self) -> Option<(usize, usize, usize, i64, i64)> {
        match self.m.lock().desc {
            Desc::Vid {
                width,
                height,
                scanwidth,
                format,
                fps,
            } => Some((width, height, scanwidth, format, fps)),
            _ => None,
        }
    }

    fn view(slf: &Bound<'_, Self>, idx: i64) -> PyResult<VidView> {
        let (ptr, len, ro, desc, guard) = slf.get().m.new_view(idx)?;
        let Desc::Vid {
            width,
            height,
            scanwidth,
            format,
            ..
        } = desc
        else {
            return Err(crate::runtime_error("std::exception"));
        };
        Ok(VidView {
            ex: video_export(ptr, len, ro, width, height, scanwidth, format),
            size: len,
            width,
            height,
            scanwidth,
            format,
            _count: guard,
            _parent: slf.clone().into_any().unbind(),
        })
    }
}

media_class!(MemVid {
    #[new]
    fn new() -> Self {
        MemVid {
            m: Media::new("memvid"),
        }
    }

    /// `open(sName, bCreate, w, h, format, fps, bufs, scanwidth=0, align=0, frameextra=0,
    /// fourcc=0, guid='', meta='')`, or with a numeric `bpp` (8, 24, 32) in place of
    /// `format`. `bCreate=False` attaches read-write and checks every parameter, then
    /// publishes on from the share's write pointer and sequence.
    #[allow(clippy::too_many_arguments)] // pymembus's signature
    #[pyo3(signature = (sName, bCreate, w, h, format, fps, bufs, scanwidth = 0, align = 0,
        frameextra = 0, fourcc = 0, guid = None, meta = None))]
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        bCreate: bool,
        w: i64,
        h: i64,
        format: &Bound<'_, PyAny>,
        fps: i64,
        bufs: i64,
        scanwidth: i64,
        align: i64,
        frameextra: i64,
        fourcc: u32,
        guid: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let fmt = format_arg(
            format,
            format.cast::<VideoFormatEnum>().ok().map(|e| e.get().value()),
            &[
                (8, VideoFormat::Gray8.value()),
                (24, VideoFormat::Rgb24.value()),
                (32, VideoFormat::Rgba32.value()),
            ],
            ("bpp", "video_format"),
        )?;
        let identity = identity_args(fourcc, guid, meta)?;
        self.m.check_reopen()?;
        let (Some(w), Some(h), Some(fps), Some(bufs), Ok(sw), Ok(align), Ok(fx), Some(format)) = (
            u32_arg(w),
            u32_arg(h),
            u32_arg(fps),
            u32_arg(bufs),
            usize::try_from(scanwidth),
            usize::try_from(align),
            usize::try_from(frameextra),
            VideoFormat::from_value(fmt),
        ) else {
            return Ok(false);
        };
        let mut p = VideoParams::new(w, h, format, fps, bufs);
        p.scanwidth = sw;
        p.align = align;
        p.frameextra = fx;
        p.identity = identity;
        p.mode = 0o644;
        let name = name.as_str();
        if bCreate {
            self.m.open(false, true, || Ok(Box::new(VideoWriter::create(name, &p)?)))
        } else {
            self.m.open(true, false, || Ok(Box::new(VideoWriter::attach(name, &p)?)))
        }
    }

    /// `open_existing(sName) -> bool`: attaches read-only (header validated).
    fn open_existing(&self, sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        let name = name_arg(sName)?;
        self.m.open(true, false, || Ok(Box::new(VideoReader::attach(name.as_str())?)))
    }

    fn getBuf(slf: &Bound<'_, Self>, idx: i64) -> PyResult<VidView> {
        Self::view(slf, idx)
    }

    fn __getitem__(slf: &Bound<'_, Self>, arg0: i64) -> PyResult<VidView> {
        Self::view(slf, arg0)
    }

    /// `getWidth() -> int` (-1 when closed).
    fn getWidth(&self) -> i64 {
        self.vid_desc().map_or(-1, |d| d.0 as i64)
    }

    /// `getHeight() -> int` (-1 when closed).
    fn getHeight(&self) -> i64 {
        self.vid_desc().map_or(-1, |d| d.1 as i64)
    }

    /// `getFormat() -> video_format` (`video_format(0)` when closed).
    fn getFormat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, VideoFormatEnum>> {
        VideoFormatEnum::member(py, self.vid_desc().map_or(0, |d| d.3))
    }

    /// `getFormatName() -> str`.
    fn getFormatName(&self) -> &'static str {
        video_name(self.vid_desc().map_or(0, |d| d.3))
    }

    /// `getBpp() -> int`: bits per pixel (0 for userType).
    fn getBpp(&self) -> i64 {
        self.vid_desc().map_or(0, |d| video_bpp(d.3) * 8)
    }

    /// `getVersion() -> int`: 2.
    fn getVersion(&self) -> i64 {
        membus::layout::media::MediaKind::Vid.version()
    }

    /// `setVpts(idx, pts) -> bool`.
    fn setVpts(&self, idx: i64, pts: i64) -> bool {
        self.m.set_pts(idx, 0, pts)
    }

    /// `setApts(idx, pts) -> bool`.
    fn setApts(&self, idx: i64, pts: i64) -> bool {
        self.m.set_pts(idx, 1, pts)
    }

    /// `getVpts(idx) -> int` (0 when closed).
    fn getVpts(&self, idx: i64) -> i64 {
        self.m.slot_pts(idx, 0)
    }

    /// `getApts(idx) -> int` (0 when closed).
    fn getApts(&self, idx: i64) -> i64 {
        self.m.slot_pts(idx, 1)
    }
});

/// pymembus `memaud`.
#[pyclass(frozen, name = "memaud", module = "pymembus.pymembus")]
pub(crate) struct MemAud {
    m: Media,
}

impl MemAud {
    /// A `pymembus.aio` wait until the global sequence exceeds `last`.
    pub(crate) fn aio_op(slf: &Bound<'_, MemAud>, last: i64) -> PyResult<Op> {
        let owner = slf.clone().unbind();
        slf.get()
            .m
            .aio_op(last, move |h, gen| owner.get().m.give_back(h, gen))
    }

    fn aud_desc(&self) -> Option<(usize, i64, i64)> {
        match self.m.lock().desc {
            Desc::Aud {
                channels,
                sample_rate,
                format,
                ..
            } => Some((channels, sample_rate, format)),
            _ => None,
        }
    }

    fn view(slf: &Bound<'_, Self>, idx: i64) -> PyResult<AudView> {
        let (ptr, len, ro, desc, guard) = slf.get().m.new_view(idx)?;
        let Desc::Aud {
            channels, format, ..
        } = desc
        else {
            return Err(crate::runtime_error("std::exception"));
        };
        Ok(AudView {
            ex: audio_export(ptr, len, ro, channels, format),
            channels,
            format,
            _count: guard,
            _parent: slf.clone().into_any().unbind(),
        })
    }
}

media_class!(MemAud {
    #[new]
    fn new() -> Self {
        MemAud {
            m: Media::new("memaud"),
        }
    }

    /// `open(sName, bCreate, ch, format, sampleRate, fps, bufs, align=0, frameextra=0,
    /// fourcc=0, guid='', meta='', payloadSize=0)`, or with a numeric `bps` (8, 16, 24,
    /// 32) in place of `format`. `bCreate=False` attaches read-write and checks every
    /// parameter, then publishes on from the share's write pointer and sequence.
    #[allow(clippy::too_many_arguments)] // pymembus's signature
    #[pyo3(signature = (sName, bCreate, ch, format, sampleRate, fps, bufs, align = 0,
        frameextra = 0, fourcc = 0, guid = None, meta = None, payloadSize = 0))]
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        bCreate: bool,
        ch: i64,
        format: &Bound<'_, PyAny>,
        sampleRate: i64,
        fps: i64,
        bufs: i64,
        align: i64,
        frameextra: i64,
        fourcc: u32,
        guid: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
        payloadSize: i64,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let fmt = format_arg(
            format,
            format.cast::<AudioFormatEnum>().ok().map(|e| e.get().value()),
            &[
                (8, AudioFormat::U8.value()),
                (16, AudioFormat::S16le.value()),
                (24, AudioFormat::S24le.value()),
                (32, AudioFormat::S32le.value()),
            ],
            ("bps", "audio_format"),
        )?;
        let identity = identity_args(fourcc, guid, meta)?;
        self.m.check_reopen()?;
        let (Some(ch), Some(rate), Some(fps), Some(bufs), Ok(align), Ok(fx), Ok(ps), Some(format)) = (
            u32_arg(ch),
            u32_arg(sampleRate),
            u32_arg(fps),
            u32_arg(bufs),
            usize::try_from(align),
            usize::try_from(frameextra),
            usize::try_from(payloadSize),
            AudioFormat::from_value(fmt),
        ) else {
            return Ok(false);
        };
        let mut p = AudioParams::new(ch, format, rate, fps, bufs);
        p.align = align;
        p.frameextra = fx;
        p.payload_size = if format == AudioFormat::UserType { ps } else { 0 };
        p.identity = identity;
        p.mode = 0o644;
        let name = name.as_str();
        if bCreate {
            self.m.open(false, true, || Ok(Box::new(AudioWriter::create(name, &p)?)))
        } else {
            self.m.open(true, false, || Ok(Box::new(AudioWriter::attach(name, &p)?)))
        }
    }

    /// `open_existing(sName) -> bool`: attaches read-only (header validated).
    fn open_existing(&self, sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        let name = name_arg(sName)?;
        self.m.open(true, false, || Ok(Box::new(AudioReader::attach(name.as_str())?)))
    }

    /// `getBuf(idx) -> audview`: a view of buffer `idx mod bufs`.
    fn getBuf(slf: &Bound<'_, Self>, idx: i64) -> PyResult<AudView> {
        Self::view(slf, idx)
    }

    fn __getitem__(slf: &Bound<'_, Self>, arg0: i64) -> PyResult<AudView> {
        Self::view(slf, arg0)
    }

    /// `getChannels() -> int` (-1 when closed).
    fn getChannels(&self) -> i64 {
        self.aud_desc().map_or(-1, |d| d.0 as i64)
    }

    /// `getSampleRate() -> int` (-1 when closed).
    fn getSampleRate(&self) -> i64 {
        self.aud_desc().map_or(-1, |d| d.1)
    }

    /// `getFormat() -> audio_format` (`audio_format(0)` when closed).
    fn getFormat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, AudioFormatEnum>> {
        AudioFormatEnum::member(py, self.aud_desc().map_or(0, |d| d.2))
    }

    /// `getFormatName() -> str`.
    fn getFormatName(&self) -> &'static str {
        audio_name(self.aud_desc().map_or(0, |d| d.2))
    }

    /// `getBytesPerSample() -> int`.
    fn getBytesPerSample(&self) -> i64 {
        self.aud_desc().map_or(0, |d| audio_bps(d.2))
    }

    /// `getBps() -> int`: bits per sample.
    fn getBps(&self) -> i64 {
        self.aud_desc().map_or(0, |d| audio_bps(d.2) * 8)
    }

    /// `getBitRate() -> int`: rate × channels × bits (0 for userType).
    fn getBitRate(&self) -> i64 {
        self.aud_desc()
            .map_or(0, |(ch, rate, f)| rate * ch as i64 * audio_bps(f) * 8)
    }

    /// `getBufSize() -> int`: payload bytes per buffer.
    fn getBufSize(&self) -> i64 {
        self.m.frames(0, |f| f.payload as i64)
    }

    /// `getVersion() -> int`: 3.
    fn getVersion(&self) -> i64 {
        membus::layout::media::MediaKind::Aud.version()
    }

    /// `setPts(idx, pts) -> bool`.
    fn setPts(&self, idx: i64, pts: i64) -> bool {
        self.m.set_pts(idx, 0, pts)
    }

    /// `getPts(idx) -> int` (0 when closed).
    fn getPts(&self, idx: i64) -> i64 {
        self.m.slot_pts(idx, 0)
    }
});

/// Adds the media classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MemVid>()?;
    m.add_class::<MemAud>()?;
    m.add_class::<VidView>()?;
    m.add_class::<AudView>()?;
    Ok(())
}
