//! `pymembus.pymembus`: pymembus 2.2's Python API on the membus core.
//!
//! A drop-in for the pybind11 extension of pymembus 2.2.0: the same classes, methods,
//! keyword names, defaults, overloads, failure values, thread-local `last_error()` and
//! buffer exports, over shares that stay byte-compatible with libmembus 2.1 and pymembus.
//! The protocol work is the `membus` crate's; this crate converts arguments and results,
//! keeps pymembus's error bookkeeping and enforces its close/reopen rules, so that no
//! Python object can ever point at unmapped memory.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// pymembus's keyword argument names (`sName`, `bCreate`, ...) and method names (`getBuf`)
// are its public API; PyO3 takes both from the Rust names.
#![allow(non_snake_case)]

use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};

mod aio;
mod enums;
mod kv;
mod map;
mod media;
mod pkt;
mod queue;

pub(crate) use enums::{AudioFormatEnum, Errc, PktKindEnum, VideoFormatEnum};

/// pymembus's version, which this module reproduces.
pub(crate) const VERSION: &str = "2.2.0";
/// pymembus's build string (`__build__`).
pub(crate) const BUILD: &str = "0";

/// libmembus `errc` codes used directly by the binding.
pub(crate) mod errc {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 1;
    pub const INVALID_LAYOUT: i32 = 6;
    pub const NOT_OPEN: i32 = 7;
    pub const ACCESS_DENIED: i32 = 8;
    pub const TIMEOUT: i32 = 11;
    pub const OVERRUN: i32 = 12;
}

thread_local! {
    /// libmembus's `static thread_local errc g_last_error`.
    static LAST_ERROR: Cell<i32> = const { Cell::new(0) };
}

/// Sets this thread's last error code.
pub(crate) fn set_error(code: i32) {
    LAST_ERROR.with(|c| c.set(code));
}

/// Records a membus error as this thread's last error (its libmembus `errc` code).
pub(crate) fn record(e: &membus::Error) {
    set_error(e.code());
}

/// Records `e` and returns `value` (pymembus's failure return values).
pub(crate) fn failed<T>(e: &membus::Error, value: T) -> T {
    record(e);
    value
}

/// The bytes of a pymembus `std::string` argument: `str` (UTF-8), `bytes` or `bytearray`.
pub(crate) fn str_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Cow::Borrowed(s.to_str()?.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "expected str, bytes or bytearray, not {}",
        obj.get_type().name()?
    )))
}

/// A share name argument as text (names are paths; invalid UTF-8 cannot name a share).
pub(crate) fn name_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(String::from_utf8_lossy(&str_arg(obj)?).into_owned())
}

/// A `str` from bytes with strict UTF-8 decoding (UnicodeDecodeError otherwise), as
/// pybind11 converts a returned `std::string`.
pub(crate) fn to_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // CPython decodes strictly and raises UnicodeDecodeError itself.
    PyString::from_bytes(py, bytes)
}

/// Locks a handle's mutex without ever blocking while attached to the interpreter.
///
/// A blocking call (a read that waits) holds its handle's mutex with the GIL released; a
/// second thread that blocked on that mutex while holding the GIL would keep the first
/// from re-attaching when its wait ends: a deadlock. So a contended lock is waited for
/// detached, then taken again attached.
pub(crate) fn lock<T: Send>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        Python::attach(|py| {
            py.detach(|| {
                let _free = m.lock();
            })
        });
    }
}

/// `RuntimeError(msg)`.
pub(crate) fn runtime_error(msg: &str) -> PyErr {
    PyRuntimeError::new_err(msg.to_owned())
}

/// Runs `f` with the GIL released when it may block (`wait_ms > 0`); a zero wait runs
/// it directly, saving the thread-state switch on polling calls.
pub(crate) fn maybe_detached<T: Send, F: FnOnce() -> T + Send>(
    py: Python<'_>,
    wait_ms: u64,
    f: F,
) -> T {
    if wait_ms == 0 {
        f()
    } else {
        py.detach(f)
    }
}

/// Polls `cond` until it holds or `wait_ms` pass (at least once), sleeping with the GIL
/// released: briefly spinning first, then in steps growing to 1 ms.
pub(crate) fn poll_until(
    py: Python<'_>,
    wait_ms: u64,
    cond: impl Fn() -> bool + Send + Sync,
) -> bool {
    if cond() || wait_ms == 0 {
        return cond();
    }
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let mut nap = Duration::from_micros(20);
        loop {
            if cond() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return cond();
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    })
}

/// `last_error() -> errc`: this thread's last error.
#[pyfunction]
fn last_error(py: Python<'_>) -> PyResult<Bound<'_, Errc>> {
    Errc::member(py, i64::from(LAST_ERROR.with(Cell::get)))
}

/// `last_error_message()` / `last_error_message(error: errc)`: the text of this thread's
/// last error, or of `error`.
#[pyfunction]
#[pyo3(signature = (error = None))]
fn last_error_message(error: Option<PyRef<'_, Errc>>) -> &'static str {
    let code = match error {
        Some(e) => e.value(),
        None => i64::from(LAST_ERROR.with(Cell::get)),
    };
    errc_message(code)
}

/// libmembus's text for an `errc` value.
pub(crate) fn errc_message(code: i64) -> &'static str {
    if code == 0 {
        return "ok";
    }
    i32::try_from(code)
        .ok()
        .and_then(membus::ErrorKind::from_code)
        .map_or("unknown error", membus::ErrorKind::message)
}

/// `version() -> str`.
#[pyfunction]
fn version() -> &'static str {
    VERSION
}

/// `build() -> str`.
#[pyfunction]
fn build() -> &'static str {
    BUILD
}

/// `select(wait_ms, conditions) -> int`: the lowest index whose callable returns a true
/// value on a pass, or -1 when `wait_ms` pass first (0 makes one pass). Exceptions raised
/// by the callables propagate. Between passes it sleeps up to 1 ms with the GIL released,
/// so other threads run.
#[pyfunction]
fn select(py: Python<'_>, wait_ms: u64, conditions: &Bound<'_, PyAny>) -> PyResult<i64> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = conditions.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = conditions.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Err(PyTypeError::new_err(
            "select(): conditions must be a list or tuple of callables",
        ));
    };
    if let Some(bad) = items.iter().find(|c| !c.is_callable()) {
        return Err(PyTypeError::new_err(format!(
            "select(): {} object is not callable",
            bad.get_type().name()?
        )));
    }
    if items.is_empty() {
        return Ok(-1);
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    loop {
        for (i, c) in items.iter().enumerate() {
            if c.call0()?.is_truthy()? {
                return Ok(i as i64);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(-1);
        }
        let nap = (deadline - now).min(Duration::from_millis(1));
        py.detach(|| std::thread::sleep(nap));
    }
}

/// The extension module `pymembus.pymembus`.
#[pymodule]
fn pymembus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__doc__", "Python shared memory library")?;
    m.add("__version__", VERSION)?;
    m.add("__build__", BUILD)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add_function(wrap_pyfunction!(last_error, m)?)?;
    m.add_function(wrap_pyfunction!(last_error_message, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    enums::register(m)?;
    m.add_class::<map::MemMapPy>()?;
    m.add_class::<queue::MemMsg>()?;
    m.add_class::<queue::MemCmdPy>()?;
    m.add_class::<kv::MemKvPy>()?;
    media::register(m)?;
    m.add_class::<pkt::MemPkt>()?;
    aio::register(m)?;
    Ok(())
}
