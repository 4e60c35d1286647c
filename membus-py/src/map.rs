//! `memmap`: a raw block exported through the buffer protocol.
//!
//! Close and reopen follow pymembus's observable rules with exact export counting:
//! `close()` while a buffer export exists marks the map closed but keeps it mapped until
//! the last export is released; `open()` while one exists raises RuntimeError.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Mutex;

use membus::{MapOptions, MemMap, ReadOnly};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{failed, name_arg, set_error, str_arg};

enum Map {
    Rw(MemMap),
    Ro(MemMap<ReadOnly>),
}

impl Map {
    fn len(&self) -> usize {
        match self {
            Map::Rw(m) => m.len(),
            Map::Ro(m) => m.len(),
        }
    }

    fn read(&self, n: usize) -> Vec<u8> {
        match self {
            Map::Rw(m) => m.read(n),
            Map::Ro(m) => m.read(n),
        }
    }
}

#[derive(Default)]
struct State {
    map: Option<Map>,
    /// `close()` was called while exports existed: unmapped when the last one goes.
    closed: bool,
    /// The name as given to `open`.
    name: String,
}

impl State {
    /// The map if open and not closed.
    fn open(&self) -> PyResult<&Map> {
        match &self.map {
            Some(m) if !self.closed => Ok(m),
            _ => Err(crate::runtime_error("memmap is closed")),
        }
    }
}

/// pymembus `memmap`.
#[pyclass(frozen, name = "memmap", module = "pymembus.pymembus")]
pub(crate) struct MemMapPy {
    state: Mutex<State>,
    /// Live buffer exports. Every access happens with `state` locked, so the mutex orders
    /// them; the atomic only lets the count live outside the guarded state.
    exports: AtomicUsize,
    /// The exported shape (the mapped size); stable while exports exist, since `open` is
    /// refused then.
    shape: AtomicIsize,
}

/// Strides of a 1-D byte buffer.
static STRIDES_1: [isize; 1] = [1];

impl MemMapPy {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

#[pymethods]
impl MemMapPy {
    #[new]
    fn new() -> Self {
        MemMapPy {
            state: Mutex::new(State::default()),
            exports: AtomicUsize::new(0),
            shape: AtomicIsize::new(0),
        }
    }

    /// `open(sName, nSize, bCreate=False, bNew=False, bReadOnly=False) -> bool`.
    #[pyo3(signature = (sName, nSize, bCreate = false, bNew = false, bReadOnly = false))]
    fn open(
        &self,
        sName: &Bound<'_, PyAny>,
        nSize: i64,
        bCreate: bool,
        bNew: bool,
        bReadOnly: bool,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        // Acquire: pairs with the AcqRel updates in __getbuffer__/__releasebuffer__ (all
        // under the same lock, which already orders them).
        if self.exports.load(Ordering::Acquire) > 0 {
            return Err(crate::runtime_error(
                "cannot reopen memmap while exported buffer views or aliases exist",
            ));
        }
        *st = State::default();
        let (create, new) = if bReadOnly {
            (false, false)
        } else {
            (bCreate, bNew)
        };
        let opened = if bReadOnly {
            MemMap::attach_read_only(name.as_str()).map(Map::Ro)
        } else if create && new {
            let _ = membus::remove(name.as_str());
            create_map(&name, nSize).map(Map::Rw)
        } else {
            match MemMap::attach(name.as_str()) {
                Ok(m) => Ok(Map::Rw(m)),
                Err(e) if create && e.kind() == membus::ErrorKind::OpenFailed => {
                    match create_map(&name, nSize) {
                        // Lost a creation race: attach to the winner's block.
                        Err(c) if c.errno() == Some(libc_eexist()) => {
                            MemMap::attach(name.as_str()).map(Map::Rw)
                        }
                        other => other.map(Map::Rw),
                    }
                }
                Err(e) => Err(e),
            }
        };
        match opened {
            Ok(m) => {
                // Relaxed: written and read only with `state` locked (the mutex orders it).
                self.shape.store(m.len() as isize, Ordering::Relaxed);
                st.map = Some(m);
                st.name = name;
                set_error(crate::errc::OK);
                Ok(true)
            }
            Err(e) => Ok(failed(&e, false)),
        }
    }

    /// `remove(sName) -> bool` (static).
    #[staticmethod]
    fn remove(sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        remove_share(sName)
    }

    /// `close() -> None`: unmaps now, or when the last buffer export is released.
    fn close(&self) {
        let mut st = self.lock();
        // Acquire: pairs with the AcqRel updates of the export count (all under the lock).
        if self.exports.load(Ordering::Acquire) > 0 {
            st.closed = true;
        } else {
            *st = State::default();
        }
    }

    /// `existing() -> bool`: attached to a share that existed before.
    fn existing(&self) -> bool {
        let st = self.lock();
        st.open().is_ok_and(|m| match m {
            Map::Rw(m) => !m.is_creator(),
            Map::Ro(_) => true,
        })
    }

    /// `isOpen() -> bool`.
    fn isOpen(&self) -> bool {
        self.lock().open().is_ok()
    }

    /// `name() -> str`.
    fn name(&self) -> PyResult<String> {
        let st = self.lock();
        st.open()?;
        Ok(st.name.clone())
    }

    /// `size() -> int`: the mapped size.
    fn size(&self) -> PyResult<usize> {
        Ok(self.lock().open()?.len())
    }

    /// `write(arg0) -> int`: copies at offset 0, truncated to the size.
    fn write(&self, arg0: &Bound<'_, PyAny>) -> PyResult<usize> {
        let data = str_arg(arg0)?;
        let st = self.lock();
        match st.open()? {
            Map::Rw(m) => {
                let n = m.write(&data);
                set_error(crate::errc::OK);
                Ok(n)
            }
            Map::Ro(_) => {
                set_error(crate::errc::ACCESS_DENIED);
                Ok(0)
            }
        }
    }

    /// `read(sz=-1) -> str`: the first `sz` bytes (all when `sz <= 0`).
    #[pyo3(signature = (sz = -1))]
    fn read<'py>(&self, py: Python<'py>, sz: i64) -> PyResult<Bound<'py, pyo3::types::PyString>> {
        let v = self.read_vec(sz)?;
        crate::to_str(py, &v)
    }

    /// `read_bytes(sz=-1) -> bytes`.
    #[pyo3(signature = (sz = -1))]
    fn read_bytes<'py>(&self, py: Python<'py>, sz: i64) -> PyResult<Bound<'py, PyBytes>> {
        let st = self.lock();
        let m = st.open()?;
        let n = match usize::try_from(sz) {
            Ok(n) if n > 0 => n.min(m.len()),
            _ => m.len(),
        };
        // Copied straight into the new bytes object (no intermediate buffer).
        let b = PyBytes::new_with(py, n, |buf| {
            match m {
                Map::Rw(m) => m.read_at(0, buf),
                Map::Ro(m) => m.read_at(0, buf),
            }
            .map_err(|e| crate::runtime_error(&e.to_string()))
        })?;
        set_error(crate::errc::OK);
        Ok(b)
    }

    /// The buffer protocol: 1-D signed bytes, read-only for a read-only map.
    ///
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("View is null"));
        }
        let me = slf.get();
        let st = me.lock();
        let (ptr, readonly) = match st.open() {
            // SAFETY: as_ptr's obligations: the pointer is used only while the map is
            // mapped (an export counted in `exports` keeps it mapped: close defers and
            // open refuses while exports > 0), and it is written only through a writable
            // export of a read-write map; Python reads and writes it as plain bytes.
            Ok(Map::Rw(m)) => (unsafe { m.as_ptr() }, false),
            // SAFETY: as above; the export is read-only, so nothing writes through it.
            Ok(Map::Ro(m)) => (unsafe { m.as_ptr() }, true),
            Err(_) => return Err(PyBufferError::new_err("Error getting buffer")),
        };
        if readonly && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("Object is not writable"));
        }
        // AcqRel: pairs with the Acquire loads in open/close (all under the lock).
        me.exports.fetch_add(1, Ordering::AcqRel);
        // Relaxed: set by `open` with the lock held, which is held here too.
        let len = me.shape.load(Ordering::Relaxed);
        drop(st);
        // SAFETY: `view` is non-null and CPython hands it to us to fill for this call.
        // `buf` points at `len` mapped bytes kept mapped by the export count; `shape`
        // lives in the exporter, which `obj` keeps alive as long as the view; `strides`
        // and `format` are static.
        unsafe {
            (*view).buf = ptr.cast::<c_void>();
            (*view).len = len;
            (*view).readonly = c_int::from(readonly);
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"b".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                me.shape.as_ptr()
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                STRIDES_1.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
            (*view).obj = slf.into_any().into_ptr();
        }
        Ok(())
    }

    /// Releases an export; the last one unmaps a map closed meanwhile.
    ///
    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut st = self.lock();
        // AcqRel: pairs with the Acquire loads in open/close (all under the lock).
        if self.exports.fetch_sub(1, Ordering::AcqRel) == 1 && st.closed {
            *st = State::default();
        }
    }
}

impl MemMapPy {
    fn read_vec(&self, sz: i64) -> PyResult<Vec<u8>> {
        let st = self.lock();
        let m = st.open()?;
        let v = m.read(usize::try_from(sz).unwrap_or(0));
        set_error(crate::errc::OK);
        Ok(v)
    }
}

/// Creates a block as libmembus does (mode 0644).
fn create_map(name: &str, size: i64) -> membus::Result<MemMap> {
    let size = usize::try_from(size).unwrap_or(0);
    if size == 0 {
        // libmembus: a 0-byte block cannot be mapped.
        return Err(membus::Error::new(
            membus::ErrorKind::MapFailed,
            "a block of 0 bytes cannot be mapped",
        )
        .with_share(name));
    }
    MemMap::create_with(name, size, &MapOptions::new().mode(0o644))
}

const fn libc_eexist() -> i32 {
    17
}

/// pymembus's static `remove(sName)`: True if it unlinked the share.
pub(crate) fn remove_share(sName: &Bound<'_, PyAny>) -> PyResult<bool> {
    let name = name_arg(sName)?;
    Ok(match membus::remove(name.as_str()) {
        Ok(r) => {
            set_error(crate::errc::OK);
            r
        }
        Err(e) => failed(&e, false),
    })
}
