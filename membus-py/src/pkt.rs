//! `mempkt`: the variable-length record ring, with libmembus's random access by index.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, Record, RecordMeta};
use membus::Identity;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::aio::{ClosedError, Links, Op};
use crate::{errc, failed, name_arg, poll_until, record, set_error, str_arg, PktKindEnum};

enum Pkt {
    Writer { w: PacketWriter, identity: Identity },
    Reader(PacketReader),
}

impl Pkt {
    fn layout(&self) -> &membus::layout::media::PktLayout {
        match self {
            Pkt::Writer { w, .. } => w.layout(),
            Pkt::Reader(r) => r.layout(),
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Pkt::Writer { w, .. } => w.seq(),
            Pkt::Reader(r) => r.seq(),
        }
    }

    fn ptr(&self) -> membus::Result<usize> {
        match self {
            Pkt::Writer { w, .. } => Ok(w.ptr()),
            Pkt::Reader(r) => r.write_ptr(),
        }
    }

    fn slot_seq(&self, slot: usize) -> membus::Result<u64> {
        match self {
            Pkt::Writer { w, .. } => w.slot_seq(slot),
            Pkt::Reader(r) => r.slot_seq(slot),
        }
    }

    fn record_at(&self, slot: usize) -> membus::Result<Option<Record>> {
        match self {
            Pkt::Writer { w, .. } => w.record_at(slot),
            Pkt::Reader(r) => r.record_at(slot),
        }
    }

    fn slot(&self, idx: i64) -> usize {
        idx.rem_euclid(self.layout().bufs as i64) as usize
    }
}

/// `getRecord`'s result: payload, metadata and the descriptor's fields.
type RecordTuple<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyDict>);

/// pymembus `mempkt`.
#[pyclass(frozen, name = "mempkt", module = "pymembus.pymembus")]
pub(crate) struct MemPkt {
    state: Mutex<Option<Pkt>>,
    /// `pymembus.aio` waits on this handle (locked after `state`).
    aio: Arc<Links>,
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
        let r = match st.take() {
            Some(Pkt::Reader(r)) => r,
            Some(w @ Pkt::Writer { .. }) => {
                *st = Some(w);
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "mempkt: aio waits need a reader handle (open_existing)",
                ));
            }
            None => return Err(ClosedError::new_err("mempkt is not open")),
        };
        let Ok(last) = u64::try_from(last) else {
            // The sequence (never negative) already exceeds `last`: nothing to wait for.
            *st = Some(Pkt::Reader(r));
            return Ok(Op::done("mempkt", 0));
        };
        let gen = h.aio.lend("mempkt")?;
        drop(st);
        let owner = slf.clone().unbind();
        Ok(Op::lent(
            "mempkt",
            r,
            last,
            Arc::clone(&h.aio),
            gen,
            move |r, gen| {
                let h = owner.get();
                let mut st = h.lock();
                if h.aio.restore(gen) && st.is_none() {
                    *st = Some(Pkt::Reader(r));
                }
            },
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Pkt>> {
        crate::lock(&self.state)
    }

    fn with<T>(&self, closed: T, f: impl FnOnce(&Pkt) -> T) -> T {
        self.lock().as_ref().map_or(closed, f)
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
    /// `bCreate=False` attaches and checks the parameters; the handle is then read-only.
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
        let identity = Identity {
            fourcc,
            guid: [0; 16],
            meta,
        };
        let mut p = PacketParams::new(bufs, arenasz, maxrec);
        p.align = align;
        p.identity = identity.clone();
        p.mode = 0o644;
        let opened = if bCreate {
            PacketWriter::create(name.as_str(), &p).map(|w| Pkt::Writer { w, identity })
        } else {
            let opts = membus::mempkt::ReaderOptions {
                expect: Some(p),
                ..Default::default()
            };
            PacketReader::attach_with(name.as_str(), &opts).map(Pkt::Reader)
        };
        Ok(match opened {
            Ok(h) => {
                *st = Some(h);
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
                *st = Some(Pkt::Reader(r));
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
        self.with(false, |h| matches!(h, Pkt::Reader(_)))
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
        Ok(match st.as_mut() {
            None => -1,
            Some(Pkt::Reader(_)) => {
                set_error(errc::ACCESS_DENIED);
                -1
            }
            // An empty record: -1 with the last error unchanged (libmembus).
            Some(Pkt::Writer { .. }) if payload.is_empty() && meta.is_empty() => -1,
            Some(Pkt::Writer { w, .. }) => {
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

    /// `waitForFrame(wait_ms, lastSeq) -> bool` (GIL released while waiting).
    fn waitForFrame(&self, py: Python<'_>, wait_ms: u64, lastSeq: i64) -> bool {
        let is_reader = match self.lock().as_ref() {
            None => {
                set_error(errc::NOT_OPEN);
                return false;
            }
            Some(h) => matches!(h, Pkt::Reader(_)),
        };
        let ok = if is_reader && lastSeq >= 0 && wait_ms > 0 {
            // Event-driven (the share's futex), in slices so other threads using this
            // handle wait for its lock at most one slice.
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            py.detach(|| loop {
                let slice = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(10));
                let done = self.with(false, |h| match h {
                    Pkt::Reader(r) => r.wait_seq_above(lastSeq as u64, slice),
                    Pkt::Writer { .. } => false,
                });
                if done {
                    break true;
                }
                if Instant::now() >= deadline || self.lock().is_none() {
                    break false;
                }
            })
        } else {
            poll_until(py, wait_ms, || {
                self.with(false, |h| h.seq() as i64 > lastSeq)
            })
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
            Pkt::Writer { w, .. } => w.wcursor(),
            Pkt::Reader(r) => r.wcursor(),
        })
    }

    /// `getSessionId() -> int`.
    fn getSessionId(&self) -> i64 {
        self.with(0, |h| match h {
            Pkt::Writer { w, .. } => w.session_id(),
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
            Pkt::Writer { identity, .. } => i64::from(identity.fourcc),
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
                Pkt::Writer { identity, .. } => identity.meta.clone(),
                Pkt::Reader(r) => r.meta().unwrap_or_default(),
            })
        });
        m.map(|m| PyBytes::new(py, &m))
    }
}
