//! `memkv`: the fixed-schema key/value store, with pymembus's rules on top of
//! [`membus::memkv::MemKv`] (its alignment pre-check, `setAll`'s skipping, its failure
//! values and where it leaves the last error unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use membus::memkv::{KvOptions, MemKv};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString};

use crate::{errc, failed, name_arg, set_error, str_arg};

/// pymembus `memkv`.
#[pyclass(frozen, name = "memkv", module = "pymembus.pymembus")]
pub(crate) struct MemKvPy {
    kv: Mutex<KvState>,
}

#[derive(Default)]
struct KvState {
    kv: Option<Arc<MemKv>>,
    /// Reused for value reads (no allocation per read).
    buf: Vec<u8>,
    /// Reused for slot names by `getAll`.
    name_buf: Vec<u8>,
    /// name → slot, re-validated against the slot's current name on every use.
    names: HashMap<Vec<u8>, usize>,
    /// `pymembus.aio` waits on this handle.
    aio: Arc<crate::aio::Links>,
}

impl KvState {
    fn reset(&mut self, kv: Option<MemKv>) {
        self.kv = kv.map(Arc::new);
        self.names.clear();
        self.aio.invalidate();
    }

    /// The slot a key names, if any (an unknown name or an out-of-range index: None).
    fn slot(&mut self, k: &Key) -> Option<usize> {
        let kv = self.kv.as_ref()?;
        match k {
            Key::Index(i) => usize::try_from(*i).ok().filter(|&i| i < kv.count()),
            Key::Name(n) => {
                let name = std::str::from_utf8(n).ok()?;
                if let Some(&i) = self.names.get(n.as_ref()) {
                    if kv.slot_is_named(i, name) {
                        return Some(i);
                    }
                }
                let i = kv.find(name)?;
                self.names.insert(n.to_vec(), i);
                Some(i)
            }
        }
    }

    /// Reads the keyed value into `buf`; returns `stale`, or None when missing/closed.
    fn value(&mut self, k: &Key) -> Option<bool> {
        let slot = self.slot(k)?;
        let kv = self.kv.as_ref()?;
        kv.get_into(slot, &mut self.buf).ok()
    }
}

/// A slot argument: an index or a name.
enum Key<'a> {
    Index(i64),
    Name(std::borrow::Cow<'a, [u8]>),
}

/// The slot argument of an overloaded method: positional (an int index or a str name),
/// or the keyword `idx=` or `name=`.
fn key_arg<'a>(
    idx: Option<&'a Bound<'_, PyAny>>,
    name: Option<&'a Bound<'_, PyAny>>,
) -> PyResult<Key<'a>> {
    match (idx, name) {
        (Some(i), None) => key(i),
        (None, Some(n)) => Ok(Key::Name(str_arg(n)?)),
        _ => Err(PyTypeError::new_err(
            "memkv: pass one slot, as an int idx or a str name",
        )),
    }
}

fn key<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Key<'a>> {
    if obj.is_instance_of::<PyInt>() {
        return Ok(Key::Index(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() || obj.cast::<pyo3::types::PyBytes>().is_ok() {
        return Ok(Key::Name(str_arg(obj)?));
    }
    Err(PyTypeError::new_err(
        "memkv: the key must be an int index or a str name",
    ))
}

impl MemKvPy {
    fn lock(&self) -> MutexGuard<'_, KvState> {
        crate::lock(&self.kv)
    }

    fn get(&self) -> Option<Arc<MemKv>> {
        self.lock().kv.clone()
    }

    /// A `pymembus.aio` wait until the epoch exceeds `since` (the store is shared with the
    /// op through its `Arc`; nothing is lent).
    pub(crate) fn aio_op(&self, since: i64) -> PyResult<crate::aio::Op> {
        let st = self.lock();
        let Some(kv) = st.kv.clone() else {
            return Err(crate::aio::ClosedError::new_err("memkv is not open"));
        };
        let links = Arc::clone(&st.aio);
        let gen = links.gen();
        Ok(crate::aio::Op::kv(kv, since, links, gen))
    }
}

/// pymembus's `memkv_layout_is_aligned`: N > 0, V > 0, `18 + N + V` without overflow and
/// a multiple of 8.
fn layout_is_aligned(n: i64, v: i64) -> bool {
    n > 0
        && v > 0
        && n.checked_add(v)
            .and_then(|x| x.checked_add(18))
            .is_some_and(|s| s % 8 == 0)
}

fn changes_dict<'py>(py: Python<'py>, kv: &MemKv, since: i64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Ok(ch) = kv.changed_since(since) {
        for c in ch.changes {
            let name = kv.slot_name(c.index).unwrap_or_default();
            d.set_item(name, crate::to_str(py, &c.value)?)?;
        }
    }
    Ok(d)
}

#[pymethods]
impl MemKvPy {
    #[new]
    fn new() -> Self {
        MemKvPy {
            kv: Mutex::new(KvState::default()),
        }
    }

    /// `create(sName, count, maxNameLen, maxValueLen, bNew=False) -> bool`.
    #[pyo3(signature = (sName, count, maxNameLen, maxValueLen, bNew = false))]
    fn create(
        &self,
        sName: &Bound<'_, PyAny>,
        count: i64,
        maxNameLen: i64,
        maxValueLen: i64,
        bNew: bool,
    ) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        st.reset(None);
        if !layout_is_aligned(maxNameLen, maxValueLen) {
            set_error(errc::INVALID_LAYOUT);
            return Ok(false);
        }
        let Some(count) = usize::try_from(count).ok().filter(|&c| c > 0) else {
            set_error(errc::INVALID_ARGUMENT);
            return Ok(false);
        };
        let (n, v) = (maxNameLen as usize, maxValueLen as usize);
        if bNew {
            let _ = membus::remove(name.as_str());
        }
        let names = vec![""; count];
        let opts = KvOptions::new().mode(0o644);
        let made = match MemKv::create_with(name.as_str(), &names, n, v, &opts) {
            Err(e) if !bNew && e.errno() == Some(17) => {
                MemKv::attach(name.as_str()).and_then(|kv| {
                    if kv.count() != count || kv.max_name_len() != n || kv.max_value_len() != v {
                        Err(membus::Error::new(
                            membus::ErrorKind::SizeMismatch,
                            "the existing store has another count, name or value length",
                        )
                        .with_share(name.as_str()))
                    } else {
                        Ok(kv)
                    }
                })
            }
            other => other,
        };
        Ok(match made {
            Ok(kv) => {
                st.reset(Some(kv));
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `open(sName) -> bool`.
    fn open(&self, sName: &Bound<'_, PyAny>) -> PyResult<bool> {
        let name = name_arg(sName)?;
        let mut st = self.lock();
        st.reset(None);
        Ok(match MemKv::attach(name.as_str()) {
            Ok(kv) => {
                st.reset(Some(kv));
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
        self.lock().reset(None);
    }

    /// `isOpen() -> bool`.
    fn isOpen(&self) -> bool {
        self.lock().kv.is_some()
    }

    /// `existing() -> bool`.
    fn existing(&self) -> bool {
        self.lock().kv.as_ref().is_some_and(|kv| !kv.is_creator())
    }

    /// `setName(idx, name) -> bool` (the last error is left unchanged).
    fn setName(&self, idx: i64, name: &Bound<'_, PyAny>) -> PyResult<bool> {
        let name = str_arg(name)?;
        let st = self.lock();
        let (Some(kv), Ok(idx), Ok(name)) = (
            st.kv.as_ref(),
            usize::try_from(idx),
            std::str::from_utf8(&name),
        ) else {
            return Ok(false);
        };
        Ok(kv.set_name(idx, name).is_ok())
    }

    /// `getName(idx) -> str` (`""` out of range).
    fn getName(&self, idx: i64) -> String {
        let st = self.lock();
        match (st.kv.as_ref(), usize::try_from(idx)) {
            (Some(kv), Ok(i)) => kv.slot_name(i).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// `findName(name) -> int` (-1 if missing).
    fn findName(&self, name: &Bound<'_, PyAny>) -> PyResult<i64> {
        let name = str_arg(name)?;
        let st = self.lock();
        Ok(match (st.kv.as_ref(), std::str::from_utf8(&name)) {
            (Some(kv), Ok(n)) => kv.find(n).map_or(-1, |i| i as i64),
            _ => -1,
        })
    }

    /// `setValue(idx: int, value)` / `setValue(name: str, value) -> bool`.
    #[pyo3(signature = (idx = None, value = None, *, name = None))]
    fn setValue(
        &self,
        idx: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let k = key_arg(idx, name)?;
        let Some(value) = value else {
            return Err(PyTypeError::new_err(
                "setValue() missing the value argument",
            ));
        };
        let value = str_arg(value)?;
        let mut st = self.lock();
        if st.kv.is_none() {
            set_error(errc::NOT_OPEN);
            return Ok(false);
        }
        let idx = match (&k, st.slot(&k)) {
            (_, Some(i)) => i,
            (Key::Index(_), None) => {
                set_error(errc::INVALID_ARGUMENT);
                return Ok(false);
            }
            // An unknown name: False, the last error unchanged.
            (Key::Name(_), None) => return Ok(false),
        };
        let Some(kv) = st.kv.as_ref() else {
            return Ok(false);
        };
        Ok(match kv.set(idx, &*value) {
            Ok(_) => {
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `setAll(values: dict[str, str]) -> bool`: one batch; unknown names and too-long
    /// values are skipped.
    fn setAll(&self, values: &Bound<'_, PyDict>) -> PyResult<bool> {
        let mut owned: Vec<(usize, Vec<u8>)> = Vec::with_capacity(values.len());
        let st = self.lock();
        let Some(kv) = st.kv.as_ref() else {
            set_error(errc::NOT_OPEN);
            return Ok(false);
        };
        for (k, v) in values.iter() {
            let name = str_arg(&k)?;
            let val = str_arg(&v)?;
            let found = std::str::from_utf8(&name).ok().and_then(|n| kv.find(n));
            if let Some(i) = found {
                if val.len() <= kv.max_value_len() {
                    owned.push((i, val.into_owned()));
                }
            }
        }
        if owned.is_empty() {
            set_error(errc::OK);
            return Ok(true);
        }
        let batch: Vec<(usize, &[u8])> = owned.iter().map(|(i, v)| (*i, v.as_slice())).collect();
        Ok(match kv.set_many(&batch) {
            Ok(_) => {
                set_error(errc::OK);
                true
            }
            Err(e) => failed(&e, false),
        })
    }

    /// `getValue(idx | name) -> (str, stale)`; `("", True)` when missing or closed.
    #[pyo3(signature = (idx = None, *, name = None))]
    fn getValue<'py>(
        &self,
        py: Python<'py>,
        idx: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Bound<'py, PyString>, bool)> {
        let k = key_arg(idx, name)?;
        let mut st = self.lock();
        match st.value(&k) {
            Some(stale) => Ok((crate::to_str(py, &st.buf)?, stale)),
            None => Ok((PyString::new(py, ""), true)),
        }
    }

    /// `getValueString(idx | name) -> str`.
    #[pyo3(signature = (idx = None, *, name = None))]
    fn getValueString<'py>(
        &self,
        py: Python<'py>,
        idx: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyString>> {
        let k = key_arg(idx, name)?;
        let mut st = self.lock();
        match st.value(&k) {
            Some(_) => crate::to_str(py, &st.buf),
            None => Ok(PyString::new(py, "")),
        }
    }

    /// `getAll() -> dict[str, str]`: every slot's name and value, each read lock-free (a
    /// best-effort snapshot, as in pymembus; for a consistent one use the Rust
    /// `MemKv::snapshot`).
    fn getAll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(kv) = st.kv.as_ref() {
            for i in 0..kv.count() {
                if kv.slot_name_into(i, &mut st.name_buf).is_err() {
                    continue;
                }
                if kv.get_into(i, &mut st.buf).is_ok() {
                    // As `slot_name`: a name that is not UTF-8 is decoded lossily.
                    let name = String::from_utf8_lossy(&st.name_buf);
                    d.set_item(name.as_ref(), crate::to_str(py, &st.buf)?)?;
                }
            }
        }
        Ok(d)
    }

    /// `getChanged(epoch)` / `getChanged(wait_ms, epoch) -> (dict, int)`: the slots
    /// changed after `epoch` and the current epoch; the two-argument form first waits up
    /// to `wait_ms` for a change (GIL released).
    #[pyo3(signature = (a = None, b = None, *, wait_ms = None, epoch = None))]
    fn getChanged<'py>(
        &self,
        py: Python<'py>,
        a: Option<i64>,
        b: Option<i64>,
        wait_ms: Option<u64>,
        epoch: Option<i64>,
    ) -> PyResult<(Bound<'py, PyDict>, i64)> {
        let (wait_ms, epoch): (Option<u64>, i64) = match (a, b, wait_ms, epoch) {
            (Some(e), None, None, None) | (None, None, None, Some(e)) => (None, e),
            (Some(w), Some(e), None, None) | (Some(w), None, None, Some(e)) => {
                let w = u64::try_from(w)
                    .map_err(|_| PyTypeError::new_err("getChanged(): wait_ms must be >= 0"))?;
                (Some(w), e)
            }
            (None, None, Some(w), Some(e)) => (Some(w), e),
            _ => {
                return Err(PyTypeError::new_err(
                    "getChanged(epoch) or getChanged(wait_ms, epoch)",
                ))
            }
        };
        let Some(kv) = self.get() else {
            return Ok((PyDict::new(py), 0));
        };
        if let Some(ms) = wait_ms {
            let k = kv.clone();
            let _ = py.detach(move || k.wait_for_change(epoch, Duration::from_millis(ms)));
        }
        let d = changes_dict(py, &kv, epoch)?;
        Ok((d, kv.epoch()))
    }

    /// `waitForChange(wait_ms, epoch) -> (changed, current_epoch)` (GIL released).
    fn waitForChange(&self, py: Python<'_>, wait_ms: u64, epoch: i64) -> (bool, i64) {
        let Some(kv) = self.get() else {
            return (false, -1);
        };
        let k = kv.clone();
        match py.detach(move || k.wait_for_change(epoch, Duration::from_millis(wait_ms))) {
            Ok(Some(e)) => {
                set_error(errc::OK);
                (true, e)
            }
            Ok(None) => {
                set_error(errc::TIMEOUT);
                (false, kv.epoch())
            }
            Err(e) => failed(&e, (false, kv.epoch())),
        }
    }

    /// `getEpoch() -> int` (-1 when closed).
    fn getEpoch(&self) -> i64 {
        self.lock().kv.as_ref().map_or(-1, |kv| kv.epoch())
    }

    /// `getSessionId() -> int` (0 when closed).
    fn getSessionId(&self) -> i64 {
        self.lock().kv.as_ref().map_or(0, |kv| kv.session_id())
    }

    /// `count() -> int` (0 when closed).
    fn count(&self) -> i64 {
        self.lock().kv.as_ref().map_or(0, |kv| kv.count() as i64)
    }

    /// `maxNameLen() -> int` (0 when closed).
    fn maxNameLen(&self) -> i64 {
        self.lock()
            .kv
            .as_ref()
            .map_or(0, |kv| kv.max_name_len() as i64)
    }

    /// `maxValueLen() -> int` (0 when closed).
    fn maxValueLen(&self) -> i64 {
        self.lock()
            .kv
            .as_ref()
            .map_or(0, |kv| kv.max_value_len() as i64)
    }
}
