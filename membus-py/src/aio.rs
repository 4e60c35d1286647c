//! The Rust half of `pymembus.aio`: awaitable waits for asyncio on membus's async reactor
//! (the `membus` crate's feature `async`), without a thread per share and without polling.
//!
//! - An [`Op`] wraps one pending membus future (`membus::aio::ready`,
//!   `membus::aio::seq_above`, `MemKv::wait_for_change_async`). It only *waits*: the item
//!   is taken afterwards, on the event loop's thread, by the handle's own non-blocking
//!   method. Cancelling an op therefore loses nothing.
//! - A reader that owns a cursor or a mapping a wait must outlive (memmsg, memcmd, memvid,
//!   memaud, mempkt) is *lent* to its op while it waits: the op's future owns it, so closing
//!   the handle cannot unmap memory under the wait. Meanwhile the handle's other methods
//!   behave as on a closed handle (last error `not_open`) and `isOpen()` stays true. When
//!   the op ends (ready, cancelled, or dropped), the reader goes back to its handle, unless
//!   the handle was closed or reopened meanwhile: then the reader is dropped and the op
//!   fails with `ClosedError`. A memkv handle holds its store through an `Arc`, so its
//!   ops lend nothing and any number of them may wait on one handle.
//! - An op's waker never touches the interpreter (the reactor thread calls it while holding
//!   the reactor's lock, and the loop thread polls ops holding the GIL): it queues the op's
//!   id on its [`Driver`] (one per event loop) and writes one byte to the driver's socket
//!   pair, which the loop watches with `loop.add_reader`. The loop's callback resolves the
//!   asyncio futures of the woken ops, whose coroutines then poll them again.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

pyo3::create_exception!(
    pymembus,
    ClosedError,
    PyRuntimeError,
    "The handle is not open, or was closed or reopened while a coroutine awaited it."
);
pyo3::create_exception!(
    pymembus,
    BusyError,
    PyRuntimeError,
    "Another coroutine already awaits this handle (its reader is lent to that wait)."
);

/// Locks without caring about poisoning: every critical section here is a push, a take or
/// a counter update, so the state stays consistent after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle's record of the ops that wait on it.
#[derive(Default)]
pub(crate) struct Links(Mutex<LinksInner>);

#[derive(Default)]
struct LinksInner {
    /// Bumped by every close and reopen: ops made before end with `ClosedError`.
    gen: u64,
    /// The handle's reader is lent to an op.
    lent: bool,
    /// The wakers of the pending ops, by op id (to end them at close).
    waiting: Vec<(u64, Waker)>,
}

impl Links {
    /// The handle was closed or reopened (called with the handle's state locked, after its
    /// handle was dropped or replaced): pending ops wake up and end with `ClosedError`.
    pub(crate) fn invalidate(&self) {
        let wakers = {
            let mut l = lock(&self.0);
            l.gen = l.gen.wrapping_add(1);
            l.lent = false;
            std::mem::take(&mut l.waiting)
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Whether the handle's reader is lent to an op (the handle is open meanwhile).
    pub(crate) fn is_lent(&self) -> bool {
        lock(&self.0).lent
    }

    /// The current generation.
    pub(crate) fn gen(&self) -> u64 {
        lock(&self.0).gen
    }

    /// Marks the reader lent; returns the generation it was lent in.
    ///
    /// # Errors
    /// `BusyError` when it already is.
    pub(crate) fn lend(&self, kind: &str) -> PyResult<u64> {
        let mut l = lock(&self.0);
        if l.lent {
            return Err(BusyError::new_err(format!(
                "{kind}: another coroutine already awaits this handle (use one handle per \
                 awaiting task)"
            )));
        }
        l.lent = true;
        Ok(l.gen)
    }

    /// Whether a reader lent in generation `gen` may go back to the handle (it was neither
    /// closed nor reopened since); clears the lent mark if so. Called with the handle's
    /// state locked.
    pub(crate) fn restore(&self, gen: u64) -> bool {
        let mut l = lock(&self.0);
        if l.gen == gen && l.lent {
            l.lent = false;
            true
        } else {
            false
        }
    }

    /// Records op `id`'s waker; false when the handle was closed or reopened since `gen`.
    fn watch(&self, gen: u64, id: u64, waker: &Waker) -> bool {
        let mut l = lock(&self.0);
        if l.gen != gen {
            return false;
        }
        match l.waiting.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => w.clone_from(waker),
            None => l.waiting.push((id, waker.clone())),
        }
        true
    }

    fn unwatch(&self, id: u64) {
        lock(&self.0).waiting.retain(|(i, _)| *i != id);
    }
}

/// A future that waits for a lent reader.
pub(crate) type WaitFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A reader an op can own while it waits.
pub(crate) trait Lendable: Send + 'static {
    /// Waits until a read may find something; `last` is the last sequence seen, for the
    /// media readers (which pymembus addresses by index, not through a cursor).
    fn wait(&self, last: u64) -> WaitFuture<'_>;
}

impl Lendable for membus::memmsg::Reader {
    fn wait(&self, _last: u64) -> WaitFuture<'_> {
        Box::pin(membus::aio::ready(self))
    }
}

impl Lendable for membus::memcmd::MemCmd {
    fn wait(&self, _last: u64) -> WaitFuture<'_> {
        Box::pin(membus::aio::ready(self))
    }
}

impl Lendable for membus::mempkt::PacketReader {
    fn wait(&self, last: u64) -> WaitFuture<'_> {
        Box::pin(membus::aio::seq_above(self, last))
    }
}

/// Why an op ended without its result.
enum Stop {
    /// `Op::cancel` (the coroutine was cancelled or the op dropped).
    Cancelled,
    /// The handle was closed or reopened.
    Closed,
    /// membus reported an error.
    Failed(membus::Error),
}

type OpFuture = Pin<Box<dyn Future<Output = Result<i64, Stop>> + Send>>;

/// Ids of ops (wakers name them to their driver).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Runs `fut` until it completes, the op is cancelled, or the handle is closed or
/// reopened; registers the op's waker with the handle at every poll (so a close wakes it).
async fn guarded<F: Future>(
    fut: F,
    links: &Links,
    gen: u64,
    id: u64,
    cancel: &AtomicBool,
) -> Result<F::Output, Stop> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        // Acquire: pairs with the Release store in `Op::stop` (same thread in practice).
        if cancel.load(Ordering::Acquire) {
            return Poll::Ready(Err(Stop::Cancelled));
        }
        if !links.watch(gen, id, cx.waker()) {
            return Poll::Ready(Err(Stop::Closed));
        }
        fut.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// One pending wait (`pymembus.pymembus._AioOp`), made by `_aio_op(handle, last)`.
#[pyclass(frozen, name = "_AioOp", module = "pymembus.pymembus")]
pub(crate) struct Op {
    id: u64,
    kind: &'static str,
    cancel: Arc<AtomicBool>,
    fut: Mutex<Option<OpFuture>>,
}

impl Op {
    fn new(kind: &'static str, id: u64, cancel: Arc<AtomicBool>, fut: OpFuture) -> Op {
        Op {
            id,
            kind,
            cancel,
            fut: Mutex::new(Some(fut)),
        }
    }

    /// An op that is ready at once (nothing to wait for).
    pub(crate) fn done(kind: &'static str, value: i64) -> Op {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Op::new(
            kind,
            id,
            Arc::new(AtomicBool::new(false)),
            Box::pin(std::future::ready(Ok(value))),
        )
    }

    /// An op that owns the lent reader `r` (lent in generation `gen` of `links`) while it
    /// waits, then hands it to `give_back` (which puts it back into the handle if
    /// `links.restore(gen)` allows, or drops it).
    pub(crate) fn lent<R: Lendable>(
        kind: &'static str,
        r: R,
        last: u64,
        links: Arc<Links>,
        gen: u64,
        give_back: impl FnOnce(R, u64) + Send + 'static,
    ) -> Op {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let fut = async move {
            let out = guarded(r.wait(last), &links, gen, id, &flag).await;
            links.unwatch(id);
            give_back(r, gen);
            out.map(|()| 0)
        };
        Op::new(kind, id, cancel, Box::pin(fut))
    }

    /// An op over a memkv store: resolves with the epoch once it exceeds `since`.
    pub(crate) fn kv(kv: Arc<membus::memkv::MemKv>, since: i64, links: Arc<Links>, gen: u64) -> Op {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let fut = async move {
            let out = guarded(kv.wait_for_change_async(since), &links, gen, id, &flag).await;
            links.unwatch(id);
            match out {
                Ok(Ok(epoch)) => Ok(epoch),
                Ok(Err(e)) => Err(Stop::Failed(e)),
                Err(stop) => Err(stop),
            }
        };
        Op::new("memkv", id, cancel, Box::pin(fut))
    }

    /// Ends the op if it is pending: its future sees the flag on this poll and returns
    /// the lent reader to its handle.
    fn stop(&self) {
        // Release: pairs with the Acquire load in `guarded`.
        self.cancel.store(true, Ordering::Release);
        let fut = crate::lock(&self.fut).take();
        if let Some(mut fut) = fut {
            // Every await point of an op's future is inside `guarded`, which checks the
            // flag first, so this poll completes it (and runs the give-back). This runs in
            // `Drop` too: a panic must not unwind out of it (into the interpreter's
            // deallocation); had one happened, the reader would be dropped with the future.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            }));
        }
    }
}

#[pymethods]
impl Op {
    /// `poll(driver) -> (done, value)`: polls the wait once; when pending, `driver` is
    /// told (`driver.take()` lists this op's id) once it is worth polling again. `value`
    /// is the new epoch for memkv ops, else 0.
    ///
    /// Raises `ClosedError` when the handle was closed or reopened meanwhile,
    /// `RuntimeError` when the op already ended.
    fn poll(&self, driver: &Driver) -> PyResult<(bool, i64)> {
        let mut slot = crate::lock(&self.fut);
        let Some(fut) = slot.as_mut() else {
            return Err(PyRuntimeError::new_err(format!(
                "{}: this wait already ended",
                self.kind
            )));
        };
        let waker = Waker::from(Arc::new(OpWaker {
            id: self.id,
            shared: Arc::clone(&driver.shared),
        }));
        let out = match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Pending => return Ok((false, 0)),
            Poll::Ready(out) => out,
        };
        *slot = None;
        drop(slot);
        match out {
            Ok(v) => Ok((true, v)),
            Err(Stop::Closed | Stop::Cancelled) => Err(ClosedError::new_err(format!(
                "{} was closed or reopened while a coroutine awaited it",
                self.kind
            ))),
            Err(Stop::Failed(e)) => {
                crate::record(&e);
                Err(PyRuntimeError::new_err(format!("{}: {e}", self.kind)))
            }
        }
    }

    /// `cancel()`: ends the wait (idempotent); a lent reader goes back to its handle.
    fn cancel(&self) {
        self.stop();
    }

    /// The op's id, as `Driver.take()` reports it.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a driver's wakers share.
struct DriverShared {
    /// Ids of ops woken since the last `take`.
    queue: Mutex<Vec<u64>>,
    /// A byte is (or is about to be) in the socket.
    signalled: AtomicBool,
    tx: UnixStream,
}

/// Wakes one op: queues its id and makes the driver's socket readable.
struct OpWaker {
    id: u64,
    shared: Arc<DriverShared>,
}

impl Wake for OpWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.shared.queue).push(self.id);
        // SeqCst: pairs with the store in `Driver::take`, which precedes its take of the
        // queue: a swap that still reads `true` is ordered before that store, so the id
        // pushed above is in the queue that take empties; otherwise a byte is written.
        if !self.shared.signalled.swap(true, Ordering::SeqCst) {
            // Errors: WouldBlock means bytes are pending anyway; a closed peer means the
            // event loop is gone and nobody waits. Neither may panic here (the reactor
            // thread calls this).
            let _ = (&self.shared.tx).write(&[1]);
        }
    }
}

/// The readiness channel of one asyncio event loop (`pymembus.pymembus._AioDriver`): a
/// socket pair the loop watches, and the ids of the ops woken since the last `take()`.
#[pyclass(frozen, name = "_AioDriver", module = "pymembus.pymembus")]
pub(crate) struct Driver {
    shared: Arc<DriverShared>,
    rx: UnixStream,
}

#[pymethods]
impl Driver {
    #[new]
    fn new() -> PyResult<Driver> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Driver {
            shared: Arc::new(DriverShared {
                queue: Mutex::new(Vec::new()),
                signalled: AtomicBool::new(false),
                tx,
            }),
            rx,
        })
    }

    /// `fileno() -> int`: readable when ops were woken.
    fn fileno(&self) -> i32 {
        self.rx.as_raw_fd()
    }

    /// `take() -> list[int]`: the ids of the ops woken since the last call.
    fn take(&self) -> Vec<u64> {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        // SeqCst: see `OpWaker::wake_by_ref`.
        self.shared.signalled.store(false, Ordering::SeqCst);
        let mut ids = std::mem::take(&mut *lock(&self.shared.queue));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// `_aio_op(handle, last=-1) -> _AioOp`: a wait on `handle` (see the module docs):
/// memmsg/memcmd: until a read may find a message; memkv: until the epoch exceeds `last`;
/// memvid/memaud/mempkt: until the global sequence exceeds `last`.
///
/// Raises `ClosedError` for a closed handle, `BusyError` when another op holds its
/// reader, `TypeError` for other objects or a writer-only handle kind.
#[pyfunction]
#[pyo3(name = "_aio_op", signature = (handle, last = -1))]
pub(crate) fn aio_op(handle: &Bound<'_, PyAny>, last: i64) -> PyResult<Op> {
    if let Ok(h) = handle.cast::<crate::queue::MemMsg>() {
        return crate::queue::MemMsg::aio_op(h);
    }
    if let Ok(h) = handle.cast::<crate::queue::MemCmdPy>() {
        return crate::queue::MemCmdPy::aio_op(h);
    }
    if let Ok(h) = handle.cast::<crate::kv::MemKvPy>() {
        return h.get().aio_op(last);
    }
    if let Ok(h) = handle.cast::<crate::media::MemVid>() {
        return crate::media::MemVid::aio_op(h, last);
    }
    if let Ok(h) = handle.cast::<crate::media::MemAud>() {
        return crate::media::MemAud::aio_op(h, last);
    }
    if let Ok(h) = handle.cast::<crate::pkt::MemPkt>() {
        return crate::pkt::MemPkt::aio_op(h, last);
    }
    Err(PyTypeError::new_err(format!(
        "aio: expected a memmsg, memcmd, memkv, memvid, memaud or mempkt handle, not {}",
        handle.get_type().name()?
    )))
}

/// Registers the classes, exceptions and `_aio_op` in the extension module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Op>()?;
    m.add_class::<Driver>()?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add_function(pyo3::wrap_pyfunction!(aio_op, m)?)?;
    Ok(())
}
