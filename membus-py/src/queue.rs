//! `memmsg` (single-writer broadcast queue) and `memcmd` (multi-writer command channel).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received, Start};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::aio::{ClosedError, Links, Op};
use crate::{errc, failed, maybe_detached, name_arg, record, set_error, str_arg};

/// What both queue readers offer.
trait ReadQueue: Send {
    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> membus::Result<Received<usize>>;
}

impl ReadQueue for Reader {
    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> membus::Result<Received<usize>> {
        Reader::read_into(self, buf, timeout)
    }
}

impl ReadQueue for MemCmd {
    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> membus::Result<Received<usize>> {
        MemCmd::read_into(self, buf, timeout)
    }
}

/// The outcome of a read, as pymembus reports it.
enum Got {
    /// A message, in the state's buffer.
    Message,
    Timeout,
    Overrun,
    /// Closed handle or a failure (the error is recorded).
    Failed,
}

/// Reads into `buf` with the GIL released while waiting; records the error code.
fn read_queue<Q: ReadQueue>(py: Python<'_>, q: &mut Q, buf: &mut Vec<u8>, wait: u64) -> Got {
    let r = maybe_detached(py, wait, || q.read_into(buf, Duration::from_millis(wait)));
    match r {
        Ok(Received::Message { .. }) => {
            set_error(errc::OK);
            Got::Message
        }
        Ok(Received::Timeout) => {
            set_error(errc::TIMEOUT);
            Got::Timeout
        }
        Ok(Received::Overrun { .. }) => {
            set_error(errc::OVERRUN);
            Got::Overrun
        }
        Err(e) => failed(&e, Got::Failed),
    }
}

/// The `#[pymethods]` of memmsg or memcmd: the class's own methods plus the shared ones.
macro_rules! queue_class {
    ($cls:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $cls {
            $($extra)*

            /// `read(wait=0) -> str`: `""` on timeout or overrun.
            #[pyo3(signature = (wait = 0))]
            fn read<'py>(&self, py: Python<'py>, wait: u64) -> PyResult<Bound<'py, PyString>> {
                self.with_read(py, wait, |py, got, buf| match got {
                    Got::Message => crate::to_str(py, buf),
                    _ => Ok(PyString::new(py, "")),
                })
            }

            /// `read_bytes(wait=0) -> bytes`: `b""` on timeout or overrun.
            #[pyo3(signature = (wait = 0))]
            fn read_bytes<'py>(&self, py: Python<'py>, wait: u64) -> PyResult<Bound<'py, PyBytes>> {
                self.with_read(py, wait, |py, got, buf| {
                    Ok(match got {
                        Got::Message => PyBytes::new(py, buf),
                        _ => PyBytes::new(py, b""),
                    })
                })
            }

            /// `read_with_overrun(wait=0) -> (str, bool)`.
            #[pyo3(signature = (wait = 0))]
            fn read_with_overrun<'py>(
                &self,
                py: Python<'py>,
                wait: u64,
            ) -> PyResult<(Bound<'py, PyString>, bool)> {
                self.with_read(py, wait, |py, got, buf| {
                    Ok(match got {
                        Got::Message => (crate::to_str(py, buf)?, false),
                        Got::Overrun => (PyString::new(py, ""), true),
                        _ => (PyString::new(py, ""), false),
                    })
                })
            }

            /// `read_bytes_with_overrun(wait=0) -> (bytes, bool)`.
            #[pyo3(signature = (wait = 0))]
            fn read_bytes_with_overrun<'py>(
                &self,
                py: Python<'py>,
                wait: u64,
            ) -> PyResult<(Bound<'py, PyBytes>, bool)> {
                self.with_read(py, wait, |py, got, buf| {
                    Ok(match got {
                        Got::Message => (PyBytes::new(py, buf), false),
                        Got::Overrun => (PyBytes::new(py, b""), true),
                        _ => (PyBytes::new(py, b""), false),
                    })
                })
            }

            /// `write(sMsg) -> bool` (str, bytes or bytearray).
            fn write(&self, sMsg: &Bound<'_, PyAny>) -> PyResult<bool> {
                let data = str_arg(sMsg)?;
                Ok(self.write_raw(&data))
            }

            /// `write_bytes(data: bytes) -> bool`.
            fn write_bytes(&self, data: &Bound<'_, PyBytes>) -> bool {
                self.write_raw(data.as_bytes())
            }

            /// `remove(sName) -> bool` (static).
            #[staticmethod]
            fn remove(sName: &Bound<'_, PyAny>) -> PyResult<bool> {
                crate::map::remove_share(sName)
            }

            /// `close() -> None` (the creator unlinks the share).
            fn close(&self) {
                let mut st = self.lock();
                st.q = None;
                st.aio.invalidate();
            }

            /// `isOpen() -> bool` (true while the reader is lent to a `pymembus.aio` wait).
            fn isOpen(&self) -> bool {
                let st = self.lock();
                st.q.is_some() || st.aio.is_lent()
            }
        }
    };
}

enum Msg {
    Writer {
        w: Writer,
        /// A writer handle reads too (pymembus): its own cursor, made on first use.
        r: Option<Box<Reader>>,
    },
    Reader(Reader),
}

struct MsgState {
    q: Option<Msg>,
    buf: Vec<u8>,
    /// `pymembus.aio` waits on this handle.
    aio: Arc<Links>,
}

/// pymembus `memmsg`.
#[pyclass(frozen, name = "memmsg", module = "pymembus.pymembus")]
pub(crate) struct MemMsg {
    state: Mutex<MsgState>,
}

impl MemMsg {
    fn lock(&self) -> MutexGuard<'_, MsgState> {
        crate::lock(&self.state)
    }

    fn with_read<'py, T>(
        &self,
        py: Python<'py>,
        wait: u64,
        f: impl FnOnce(Python<'py>, Got, &[u8]) -> PyResult<T>,
    ) -> PyResult<T> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let got = match &mut st.q {
            None => {
                set_error(errc::NOT_OPEN);
                Got::Failed
            }
            Some(Msg::Reader(r)) => read_queue(py, r, &mut st.buf, wait),
            Some(Msg::Writer { w, r }) => {
                if r.is_none() {
                    match oldest_reader(w) {
                        Ok(x) => *r = Some(Box::new(x)),
                        Err(e) => record(&e),
                    }
                }
                match r {
                    Some(r) => read_queue(py, &mut **r, &mut st.buf, wait),
                    None => Got::Failed,
                }
            }
        };
        f(py, got, &st.buf)
    }

    fn write_raw(&self, data: &[u8]) -> bool {
        let st = self.lock();
        match &st.q {
            Some(Msg::Writer { w, .. }) => match w.write(data) {
                Ok(_) => {
                    set_error(errc::OK);
                    true
                }
                Err(e) => failed(&e, false),
            },
            // pymembus: a reader or a closed handle has bWrite false.
            _ => {
                set_error(errc::ACCESS_DENIED);
                false
            }
        }
    }
}

impl MemMsg {
    /// A `pymembus.aio` wait: lends the handle's reader to the op until it ends.
    pub(crate) fn aio_op(slf: &Bound<'_, MemMsg>) -> PyResult<Op> {
        let h = slf.get();
        let mut st = h.lock();
        if st.aio.is_lent() {
            st.aio.lend("memmsg")?;
        }
        let r = match st.q.take() {
            Some(Msg::Reader(r)) => r,
            Some(w @ Msg::Writer { .. }) => {
                st.q = Some(w);
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "memmsg: aio reads need a handle opened as a reader (bWrite=False)",
                ));
            }
            None => return Err(ClosedError::new_err("memmsg is not open")),
        };
        let gen = st.aio.lend("memmsg")?;
        let links = Arc::clone(&st.aio);
        drop(st);
        let owner = slf.clone().unbind();
        Ok(Op::lent("memmsg", r, 0, links, gen, move |r, gen| {
            let h = owner.get();
            let mut st = h.lock();
            if st.aio.restore(gen) && st.q.is_none() {
                st.q = Some(Msg::Reader(r));
            }
        }))
    }
}

impl MemCmdPy {
    /// A `pymembus.aio` wait: lends the handle to the op until it ends.
    pub(crate) fn aio_op(slf: &Bound<'_, MemCmdPy>) -> PyResult<Op> {
        let h = slf.get();
        let mut st = h.lock();
        if st.aio.is_lent() {
            st.aio.lend("memcmd")?;
        }
        let Some(c) = st.q.take() else {
            return Err(ClosedError::new_err("memcmd is not open"));
        };
        let gen = st.aio.lend("memcmd")?;
        let links = Arc::clone(&st.aio);
        drop(st);
        let owner = slf.clone().unbind();
        Ok(Op::lent("memcmd", c, 0, links, gen, move |c, gen| {
            let h = owner.get();
            let mut st = h.lock();
            if st.aio.restore(gen) && st.q.is_none() {
                st.q = Some(c);
            }
        }))
    }
}

/// A reader of the writer's own share that starts at ring offset 0.
fn oldest_reader(w: &Writer) -> membus::Result<Reader> {
    Reader::attach_with(w.name(), &QueueOptions::new().start(Start::Oldest))
}

/// Validates pymembus's `size` argument.
fn capacity(size: i64) -> Option<usize> {
    usize::try_from(size).ok().filter(|&s| s > 0)
}

queue_class!(MemMsg {
    #[new]
    fn new() -> Self {
        MemMsg {
            state: Mutex::new(MsgState {
                q: None,
                buf: Vec::new(),
                aio: Arc::default(),
            }),
        }
    }

    /// `open(sName, size, bWrite, bCreate) -> bool`.
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        size: i64,
        bWrite: bool,
        bCreate: bool,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        st.q = None;
        st.aio.invalidate();
        let Some(cap) = capacity(size) else {
            set_error(errc::INVALID_ARGUMENT);
            return Ok(false);
        };
        let oldest = QueueOptions::new().start(Start::Oldest).mode(0o644);
        let opened = match (bWrite, bCreate) {
            (true, true) => Writer::open_or_create_with(name.as_str(), cap, &oldest)
                .map(|w| Msg::Writer { w, r: None }),
            (true, false) => Writer::attach_with(name.as_str(), &oldest.expect_capacity(cap))
                .map(|w| Msg::Writer { w, r: None }),
            (false, true) => {
                Reader::open_or_create_with(name.as_str(), cap, &oldest).map(Msg::Reader)
            }
            (false, false) => {
                Reader::attach_with(name.as_str(), &oldest.expect_capacity(cap)).map(Msg::Reader)
            }
        };
        Ok(match opened {
            Ok(q) => {
                st.q = Some(q);
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `poll() -> bool`: a message (or an overrun) is waiting.
    fn poll(&self) -> bool {
        let mut st = self.lock();
        match &mut st.q {
            Some(Msg::Reader(r)) => r.poll(),
            Some(Msg::Writer { w, r }) => {
                if r.is_none() {
                    *r = oldest_reader(w).ok().map(Box::new);
                }
                r.as_ref().is_some_and(|r| r.poll())
            }
            None => false,
        }
    }

    /// `getSessionId() -> int` (0 when closed).
    fn getSessionId(&self) -> i64 {
        match &self.lock().q {
            Some(Msg::Reader(r)) => r.session_id(),
            Some(Msg::Writer { w, .. }) => w.session_id(),
            None => 0,
        }
    }

    /// `existing() -> bool`: attached to a share that existed before.
    fn existing(&self) -> bool {
        match &self.lock().q {
            Some(Msg::Reader(r)) => !r.is_creator(),
            Some(Msg::Writer { w, .. }) => !w.is_creator(),
            None => false,
        }
    }
});

struct CmdState {
    q: Option<MemCmd>,
    buf: Vec<u8>,
    /// `pymembus.aio` waits on this handle.
    aio: Arc<Links>,
}

/// pymembus `memcmd`.
#[pyclass(frozen, name = "memcmd", module = "pymembus.pymembus")]
pub(crate) struct MemCmdPy {
    state: Mutex<CmdState>,
}

impl MemCmdPy {
    fn lock(&self) -> MutexGuard<'_, CmdState> {
        crate::lock(&self.state)
    }

    fn with_read<'py, T>(
        &self,
        py: Python<'py>,
        wait: u64,
        f: impl FnOnce(Python<'py>, Got, &[u8]) -> PyResult<T>,
    ) -> PyResult<T> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let got = match &mut st.q {
            None => {
                set_error(errc::NOT_OPEN);
                Got::Failed
            }
            Some(c) => read_queue(py, c, &mut st.buf, wait),
        };
        f(py, got, &st.buf)
    }

    fn write_raw(&self, data: &[u8]) -> bool {
        match &self.lock().q {
            Some(c) => match c.write(data) {
                Ok(_) => {
                    set_error(errc::OK);
                    true
                }
                Err(e) => failed(&e, false),
            },
            None => {
                set_error(errc::NOT_OPEN);
                false
            }
        }
    }
}

queue_class!(MemCmdPy {
    #[new]
    fn new() -> Self {
        MemCmdPy {
            state: Mutex::new(CmdState {
                q: None,
                buf: Vec::new(),
                aio: Arc::default(),
            }),
        }
    }

    /// `open(sName, size, bReader=False, bCreate=False) -> bool`.
    #[pyo3(signature = (sName, size, bReader = false, bCreate = false))]
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        size: i64,
        bReader: bool,
        bCreate: bool,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        st.q = None;
        st.aio.invalidate();
        let Some(cap) = capacity(size) else {
            set_error(errc::INVALID_ARGUMENT);
            return Ok(false);
        };
        let opts = QueueOptions::new()
            .start(Start::Oldest)
            .mode(0o644)
            .register_reader(bReader);
        let opened = if bCreate {
            MemCmd::open_or_create_with(name.as_str(), cap, &opts)
        } else {
            MemCmd::attach_with(name.as_str(), &opts.expect_capacity(cap))
        };
        Ok(match opened {
            Ok(c) => {
                st.q = Some(c);
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `poll() -> bool`.
    fn poll(&self) -> bool {
        self.lock().q.as_ref().is_some_and(MemCmd::poll)
    }

    /// `getSessionId() -> int` (0 when closed).
    fn getSessionId(&self) -> i64 {
        self.lock().q.as_ref().map_or(0, MemCmd::session_id)
    }

    /// `readerCount() -> int` (0 when closed).
    fn readerCount(&self) -> i64 {
        self.lock().q.as_ref().map_or(0, MemCmd::reader_count)
    }

    /// `existing() -> bool`.
    fn existing(&self) -> bool {
        self.lock().q.as_ref().is_some_and(|c| !c.is_creator())
    }
});
