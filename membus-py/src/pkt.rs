//! `mempkt`: the variable-length record ring, with libmembus's random access by index.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, Record, RecordMeta};
use membus::{Identity, SeqWatch};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::aio::{ClosedError, Lendable, Links, Op, WaitFuture};
use crate::{errc, failed, name_arg, record, set_error, str_arg, PktKindEnum};

enum Pkt {
    Writer(PacketWriter),
    Reader(PacketReader),
}

/// An open handle.
struct Open {
    h: Pkt,
    /// Attached to a share that existed (`open_existing`, or `open` with bCreate=False).
    existing: bool,
    /// Made on the first `waitForFrame`: waits without holding the handle's lock.
    watch: Option<Arc<SeqWatch>>,
}

impl Open {
    fn new(h: Pkt, existing: bool) -> Open {
        Open {
            h,
            existing,
            watch: None,
        }
    }
}

impl Pkt {
    fn layout(&self) -> &membus::layout::media::PktLayout {
        match self {
            Pkt::Writer(w) => w.layout(),
            Pkt::Reader(r) => r.layout(),
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Pkt::Writer(w) => w.seq(),
            Pkt::Reader(r) => r.seq(),
        }
    }

    fn ptr(&self) -> membus::Result<usize> {
        match self {
            Pkt::Writer(w) => Ok(w.ptr()),
            Pkt::Reader(r) => r.write_ptr(),
        }
    }

    fn slot_seq(&self, slot: usize) -> membus::Result<u64> {
        match self {
            Pkt::Writer(w) => w.slot_seq(slot),
            Pkt::Reader(r) => r.slot_seq(slot),
        }
    }

    fn record_at(&self, slot: usize) -> membus::Result<Option<Record>> {
        match self {
            Pkt::Writer(w) => w.record_at(slot),
            Pkt::Reader(r) => r.record_at(slot),
        }
    }

    fn slot(&self, idx: i64) -> usize {
        idx.rem_euclid(self.layout().bufs as i64) as usize
    }

    fn seq_watch(&self) -> membus::Result<SeqWatch> {
        match self {
            Pkt::Writer(w) => w.seq_watch(),
            Pkt::Reader(r) => r.seq_watch(),
        }
    }
}

/// `getRecord`'s result: payload, metadata and the descriptor's fields.
type RecordTuple<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyDict>);

/// pymembus `mempkt`.
#[pyclass(frozen, name = "mempkt", module = "pymembus.pymembus")]
pub(crate) struct MemPkt {
    state: Mutex<Option<Open>>,
    /// `pymembus.aio` waits on this handle (locked after `state`).
    aio: Arc<Links>,
}

impl Lendable for Open {
    fn wait(&self, last: u64) -> WaitFuture<'_> {
        match &self.h {
            Pkt::Reader(r) => Box::pin(membus::aio::seq_above(r, last)),
            // Only readers are lent (`MemPkt::aio_op`); a writer would never be woken.
            Pkt::Writer(_) => Box::pin(std::future::pending()),
        }
    }
}

impl MemPkt {
    /// A `pymembus.aio` wait until the global sequence exceeds `last`: lends the handle's
    /// reader to the op until it ends.
    pub(crate) fn aio_op(slf: &Bound<'_, MemPkt>, last: i64) -> PyResult<Op> {
        let h = slf.get();
        let mut st = h.lock();
        if h.aio.is_lent() {
            h.aio.lend("mempkt")?;
        }
        let o = match st.take() {
            Some(o) if matches!(o.h, Pkt::Reader(_)) => o,
            Some(w) => {
                *st = Some(w);
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "mempkt: aio waits need a reader handle (open_existing)",
                ));
            }
            None => return Err(ClosedError::new_err("mempkt is not open")),
        };
        let Ok(last) = u64::try_from(last) else {
            // The sequence (never negative) already exceeds `last`: nothing to wait for.
            *st = Some(o);
            return Ok(Op::done("mempkt", 0));
        };
        let gen = h.aio.lend("mempkt")?;
        drop(st);
        let owner = slf.clone().unbind();
        Ok(Op::lent(
            "mempkt",
            o,
            last,
            Arc::clone(&h.aio),
            gen,
            move |o, gen| {
                let h = owner.get();
                let mut st = h.lock();
                if h.aio.restore(gen) && st.is_none() {
                    *st = Some(o);
                }
            },
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Open>> {
        crate::lock(&self.state)
    }

    fn with<T>(&self, closed: T, f: impl FnOnce(&Pkt) -> T) -> T {
        self.lock().as_ref().map_or(closed, |o| f(&o.h))
    }

    /// `waitForFrame` without a watch (see `media::wait_without_watch`).
    fn wait_on_handle(&self, py: Python<'_>, wait_ms: u64, last_seq: i64) -> bool {
        let is_reader = self.with(false, |h| matches!(h, Pkt::Reader(_)));
        let slice = |d: Duration| {
            self.with(None, |h| match h {
                Pkt::Reader(r) => Some(r.wait_seq_above(last_seq as u64, d)),
                Pkt::Writer(_) => None,
            })
        };
        let arrived = || self.with(false, |h| h.seq() as i64 > last_seq);
        let slice: &(dyn Fn(Duration) -> Option<bool> + Sync) = &slice;
        crate::media::wait_without_watch(py, wait_ms, is_reader.then_some(slice), &arrived)
    }
}

#[pymethods]
impl MemPkt {
    #[new]
    fn new() -> Self {
        MemPkt {
            state: Mutex::new(None),
            aio: Arc::default(),
        }
    }

    /// `open(sName, bCreate, bufs, arenasz, maxrec, align=0, fourcc=0, meta='') -> bool`.
    /// `bCreate=False` attaches read-write and checks the parameters, then writes on from
    /// the share's write pointer, sequence and arena cursor.
    #[allow(clippy::too_many_arguments)] // pymembus's signature
    #[pyo3(signature = (sName, bCreate, bufs, arenasz, maxrec, align = 0, fourcc = 0, meta = None))]
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        bCreate: bool,
        bufs: i64,
        arenasz: i64,
        maxrec: i64,
        align: i64,
        fourcc: u32,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let meta = match meta {
            Some(m) => str_arg(m)?.into_owned(),
            None => Vec::new(),
        };
        let name = name.as_str();
        let mut st = self.lock();
        *st = None;
        self.aio.invalidate();
        let (Ok(bufs), Ok(arenasz), Ok(maxrec), Ok(align)) = (
            u32::try_from(bufs),
            usize::try_from(arenasz),
            usize::try_from(maxrec),
            usize::try_from(align),
        ) else {
            return Ok(false);
        };
        let mut p = PacketParams::new(bufs, arenasz, maxrec);
        p.align = align;
        p.identity = Identity {
            fourcc,
            guid: [0; 16],
            meta,
        };
        p.mode = 0o644;
        let opened = if bCreate {
            PacketWriter::create(name, &p)
        } else {
            PacketWriter::attach(name, &p)
        };
        Ok(match opened {
            Ok(w) => {
                *st = Some(Open::new(Pkt::Writer(w), !bCreate));
                set_error(errc::OK);
                true
            }
            Err(e) => {
                // Parameter validation leaves the last error unchanged, as in libmembus.
                if e.kind() != membus::ErrorKind::InvalidArgument {
                    record(&e);
                }
                false
            }
        })
    }

    /// `open_existing(sName) -> bool`: attaches read-only.
    fn open_existing(&self, sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        *st = None;
        self.aio.invalidate();
        Ok(match PacketReader::attach(name.as_str()) {
            Ok(r) => {
                *st = Some(Open::new(Pkt::Reader(r), true));
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `remove(sName) -> bool` (static).
    #[staticmethod]
    fn remove(sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        crate::map::remove_share(sName)
    }

    /// `close() -> None`.
    fn close(&self) {
        let mut st = self.lock();
        *st = None;
        self.aio.invalidate();
    }

    /// `isOpen() -> bool`.
    fn isOpen(&self) -> bool {
        let st = self.lock();
        st.is_some() || self.aio.is_lent()
    }

    /// `existing() -> bool`.
    fn existing(&self) -> bool {
        self.lock().as_ref().is_some_and(|o| o.existing)
    }

    /// `write(payload, kind=pkt_kind.data, track=0, pts=0, meta='') -> int`: the new
    /// write pointer, or -1.
    #[pyo3(signature = (payload, kind = None, track = 0, pts = 0, meta = None))]
    fn write(
        &self,
        payload: &Bound<'_, PyAny>,
        kind: Option<PyRef<'_, PktKindEnum>>,
        track: i64,
        pts: i64,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let payload = str_arg(payload)?;
        let meta = match meta {
            Some(m) => str_arg(m)?,
            None => std::borrow::Cow::Borrowed(&b""[..]),
        };
        let kind = PktKind::from_value(kind.map_or(0, |k| k.value()));
        let mut st = self.lock();
        Ok(match st.as_mut().map(|o| &mut o.h) {
            None => -1,
            Some(Pkt::Reader(_)) => {
                set_error(errc::ACCESS_DENIED);
                -1
            }
            // An empty record: -1 with the last error unchanged (libmembus).
            Some(Pkt::Writer(_)) if payload.is_empty() && meta.is_empty() => -1,
            Some(Pkt::Writer(w)) => {
                let rec = RecordMeta {
                    kind,
                    track,
                    pts,
                    meta: &meta,
                };
                match w.write(&payload, &rec) {
                    Ok(_) => w.ptr() as i64,
                    Err(e) => failed(&e, -1),
                }
            }
        })
    }

    /// `getRecord(idx) -> (payload, meta, info) | None`: random access to descriptor
    /// `idx mod bufs`; None if never published, torn, lapped or closed.
    fn getRecord<'py>(&self, py: Python<'py>, idx: i64) -> PyResult<Option<RecordTuple<'py>>> {
        let rec = self.with(None, |h| h.record_at(h.slot(idx)).ok().flatten());
        let Some(r) = rec else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item(intern!(py, "seq"), r.info.seq)?;
        d.set_item(intern!(py, "wcursor"), r.info.wcursor)?;
        d.set_item(intern!(py, "pts"), r.info.pts)?;
        d.set_item(
            intern!(py, "kind"),
            PktKindEnum::member(py, r.info.kind.value())?,
        )?;
        d.set_item(intern!(py, "track"), r.info.track)?;
        d.set_item(intern!(py, "len"), r.info.len)?;
        d.set_item(intern!(py, "userlen"), r.info.meta_len)?;
        Ok(Some((
            PyBytes::new(py, &r.payload),
            PyBytes::new(py, &r.meta),
            d,
        )))
    }

    /// `getBufs() -> int`.
    fn getBufs(&self) -> i64 {
        self.with(0, |h| h.layout().bufs as i64)
    }

    fn __len__(&self) -> usize {
        self.with(0, |h| h.layout().bufs)
    }

    /// `getPtr(offset) -> int`: `(ptr + offset) mod bufs`; -1 when closed.
    fn getPtr(&self, offset: i64) -> i64 {
        self.with(-1, |h| match h.ptr() {
            Ok(p) => h.slot(p as i64 + offset.rem_euclid(h.layout().bufs as i64)) as i64,
            Err(e) => failed(&e, -1),
        })
    }

    /// `getSeq() -> int` (-1 when closed).
    fn getSeq(&self) -> i64 {
        self.with(-1, |h| h.seq() as i64)
    }

    /// `getFrameSeq(idx) -> int`: the descriptor's stamp; -1 when closed.
    fn getFrameSeq(&self, idx: i64) -> i64 {
        self.with(-1, |h| h.slot_seq(h.slot(idx)).map_or(-1, |s| s as i64))
    }

    /// `waitForFrame(wait_ms, lastSeq) -> bool`: sleeps on the share's futex with the GIL
    /// released and without this object's lock, on writers and readers alike (see
    /// `memvid.waitForFrame`).
    fn waitForFrame(&self, py: Python<'_>, wait_ms: u64, lastSeq: i64) -> bool {
        let watch = {
            let mut st = self.lock();
            let Some(o) = st.as_mut() else {
                set_error(errc::NOT_OPEN);
                return false;
            };
            if o.watch.is_none() {
                o.watch = o.h.seq_watch().ok().map(Arc::new);
            }
            o.watch.clone()
        };
        let ok = match watch {
            _ if lastSeq < 0 || wait_ms == 0 => self.with(false, |h| h.seq() as i64 > lastSeq),
            Some(w) => {
                let current = |w: &Arc<SeqWatch>| {
                    self.lock()
                        .as_ref()
                        .and_then(|o| o.watch.as_ref())
                        .is_some_and(|x| Arc::ptr_eq(x, w))
                };
                crate::media::wait_on_watch(py, &w, wait_ms, lastSeq, &current)
            }
            None => self.wait_on_handle(py, wait_ms, lastSeq),
        };
        set_error(if ok { errc::OK } else { errc::TIMEOUT });
        ok
    }

    /// `getArenaSize() -> int`.
    fn getArenaSize(&self) -> i64 {
        self.with(0, |h| h.layout().arenasz as i64)
    }

    /// `getMaxRec() -> int`.
    fn getMaxRec(&self) -> i64 {
        self.with(0, |h| h.layout().maxrec as i64)
    }

    /// `getWcursor() -> int`.
    fn getWcursor(&self) -> i64 {
        self.with(0, |h| match h {
            Pkt::Writer(w) => w.wcursor(),
            Pkt::Reader(r) => r.wcursor(),
        })
    }

    /// `getSessionId() -> int`.
    fn getSessionId(&self) -> i64 {
        self.with(0, |h| match h {
            Pkt::Writer(w) => w.session_id(),
            Pkt::Reader(r) => r.session_id(),
        })
    }

    /// `getVersion() -> int`: 2.
    fn getVersion(&self) -> i64 {
        membus::layout::media::MediaKind::Pkt.version()
    }

    /// `getFourcc() -> int`.
    fn getFourcc(&self) -> i64 {
        self.with(0, |h| match h {
            Pkt::Writer(w) => i64::from(w.fourcc()),
            Pkt::Reader(r) => i64::from(r.fourcc()),
        })
    }

    /// `getMetaSize() -> int`.
    fn getMetaSize(&self) -> i64 {
        self.with(0, |h| h.layout().metasize as i64)
    }

    /// `getGuid() -> None` (pymembus passes no GUID to mempkt).
    fn getGuid(&self) -> Option<Vec<u8>> {
        None
    }

    /// `getMeta() -> bytes | None`.
    fn getMeta<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let m = self.with(None, |h| {
            if h.layout().metasize == 0 {
                return None;
            }
            Some(match h {
                Pkt::Writer(w) => w.meta().unwrap_or_default(),
                Pkt::Reader(r) => r.meta().unwrap_or_default(),
            })
        });
        m.map(|m| PyBytes::new(py, &m))
    }
}
