"""Awaitable reads for asyncio (membus extension; not part of pymembus 2.2's API).

A coroutine awaits a message, a memkv change, a media frame or a mempkt record without
blocking the event loop and without a thread per share. The waits run on membus's async
reactor: one thread per process, whatever the number of shares and pending awaits,
sleeping in the kernel on the shares' futex words. Pending awaits use no CPU: nothing
polls, except as in blocking waits against a libmembus/pymembus 2.2 writer, which wakes
nobody: the reactor's safety-net re-read (every 50 ms for memmsg, memcmd and memkv, 250 ms
for media rings) sees its first change, then it re-reads every millisecond while such a
source is pending.

Handles map as follows (``h`` is an open pymembus handle):

- memmsg (opened as a reader) and memcmd: ``await read(h)`` gives the next message as
  ``bytes`` (overruns are skipped); ``await read_with_overrun(h)`` gives
  ``(bytes, overrun)`` as ``read_bytes_with_overrun`` does; ``async for m in
  messages(h)`` gives every next message.
- memkv: ``await wait_change(kv, epoch)`` waits for the epoch to exceed ``epoch`` and gives
  the new one; ``async for changed, epoch in changes(kv, epoch=None)`` gives every change
  after ``epoch`` (default: the current one) as ``getChanged`` does.
- memvid, memaud and mempkt (readers, ``open_existing``): ``await wait_frame(h, last_seq)``
  waits for ``getSeq() > last_seq`` (``waitForFrame``) and gives the new ``getSeq()``;
  ``await frame(h, last_seq)`` (memvid, memaud) gives ``(seq, view)``, the newest frame as
  ``getBuf(getPtr(-1))`` gives it; ``await record(p, last_seq)`` (mempkt) gives
  ``(seq, getRecord(getPtr(-1)))``; ``async for seq in frames(h)`` gives every new global
  sequence (frames published faster than the loop takes them are coalesced).

The awaitable calls (not the async iterators, which compose with ``asyncio.timeout``)
take ``timeout=None`` (seconds); when it passes, ``TimeoutError`` is raised (as
``asyncio.timeout`` does) and nothing is consumed.

**Cancellation loses nothing.** An await only *waits*; the item is read afterwards by the
handle's own non-blocking method, on the loop's thread, in the same step that resolves the
await. ``task.cancel()`` or an ``asyncio.wait_for`` timeout therefore leaves the item in
place for the next read, async or blocking.

**One awaiting task per reader handle.** While a memmsg, memcmd, memvid, memaud or mempkt
handle is awaited, its reader is lent to the wait (so that nothing can unmap it meanwhile):
its other methods behave as on a closed handle (last error ``not_open``), ``isOpen()``
stays true, and a second concurrent await on it raises ``BusyError``. Open one handle per
awaiting task (a memcmd handle that a task awaits cannot write meanwhile: write through
another handle). memkv handles lend nothing: any number of tasks may await one.

**Closing.** Closing (or reopening) a handle while a task awaits it ends that await with
``ClosedError`` (a ``RuntimeError``); awaiting a closed handle raises it at once. Writer
handles cannot be awaited (``TypeError``). Media handles refuse to close while buffer views
exist, as always.

Readiness reaches the event loop through one socket per loop (``loop.add_reader``), which
the reactor's wakers write to; they never take the interpreter lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from . import pymembus as _pm

ClosedError = _pm.ClosedError
BusyError = _pm.BusyError

__all__ = [
    "BusyError",
    "ClosedError",
    "changes",
    "frame",
    "frames",
    "messages",
    "read",
    "read_with_overrun",
    "record",
    "wait_change",
    "wait_frame",
]

_OK = int(_pm.errc.ok)
_TIMEOUT = int(_pm.errc.timeout)
_OVERRUN = int(_pm.errc.overrun)
_NOT_OPEN = int(_pm.errc.not_open)

# A source can be ready before its item is deliverable (a libmembus writer between its two
# stores); the next look is this much later instead of at once.
_RETRY = 0.0005


class _LoopState:
    """The driver of one event loop and the asyncio futures of its pending ops."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.driver = _pm._AioDriver()
        self.futures: dict[int, asyncio.Future] = {}
        futures = self.futures
        take = self.driver.take

        def on_readable() -> None:
            for op_id in take():
                fut = futures.pop(op_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

        loop.add_reader(self.driver.fileno(), on_readable)


_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
    weakref.WeakKeyDictionary()
)


def _state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    st = _states.get(loop)
    if st is None:
        st = _LoopState(loop)
        _states[loop] = st
    return st


async def _drive(op) -> int:
    """Awaits one op; returns its value. Cancelling ends the op (nothing is consumed)."""
    loop = asyncio.get_running_loop()
    st = _state(loop)
    try:
        while True:
            done, value = op.poll(st.driver)
            if done:
                return value
            fut = loop.create_future()
            st.futures[op.id] = fut
            try:
                await fut
            finally:
                st.futures.pop(op.id, None)
    finally:
        op.cancel()


def _timeout(timeout: float | None):
    if timeout is None:
        return contextlib.nullcontext()
    return asyncio.timeout(timeout)


def _raise_for(h, err: int) -> None:
    if err == _NOT_OPEN:
        # Closed, or lent to another task: `_aio_op` raises the precise error.
        _pm._aio_op(h).cancel()
        return
    raise RuntimeError(f"{type(h).__name__}: {_pm.last_error_message()}")


async def read_with_overrun(h, *, timeout: float | None = None) -> tuple[bytes, bool]:
    """The next message of a memmsg reader or memcmd handle, as
    ``read_bytes_with_overrun`` gives it: ``(message, False)``, or ``(b"", True)`` when the
    writer lapped this reader (which then resumes at the oldest message left)."""
    async with _timeout(timeout):
        while True:
            data, overrun = h.read_bytes_with_overrun(0)
            err = int(_pm.last_error())
            if err == _OK or overrun:
                return data, overrun
            if err != _TIMEOUT:
                _raise_for(h, err)
                continue
            await _drive(_pm._aio_op(h))
            data, overrun = h.read_bytes_with_overrun(0)
            err = int(_pm.last_error())
            if err == _OK or overrun:
                return data, overrun
            if err == _TIMEOUT:
                await asyncio.sleep(_RETRY)


async def read(h, *, timeout: float | None = None) -> bytes:
    """The next message of a memmsg reader or memcmd handle (overruns are skipped; use
    :func:`read_with_overrun` to see them)."""
    async with _timeout(timeout):
        while True:
            data, overrun = await read_with_overrun(h)
            if not overrun:
                return data


async def messages(h):
    """Every next message of a memmsg reader or memcmd handle, forever (overruns are
    skipped)."""
    while True:
        yield await read(h)


async def wait_change(kv, epoch: int, *, timeout: float | None = None) -> int:
    """Waits until the memkv epoch exceeds ``epoch``; returns the new epoch (as
    ``waitForChange`` does, without blocking)."""
    async with _timeout(timeout):
        return await _drive(_pm._aio_op(kv, epoch))


async def changes(kv, epoch: int | None = None):
    """Every change of a memkv store after ``epoch`` (default: the current epoch), as
    ``(dict, epoch)`` pairs from ``getChanged``, forever."""
    if epoch is None:
        epoch = kv.getEpoch()
        if epoch < 0:
            raise ClosedError("memkv is not open")
    while True:
        await wait_change(kv, epoch)
        d, epoch = kv.getChanged(epoch)
        if d:
            yield d, epoch


async def wait_frame(h, last_seq: int, *, timeout: float | None = None) -> int:
    """Waits until a memvid, memaud or mempkt reader's ``getSeq()`` exceeds ``last_seq``
    (``waitForFrame`` without blocking); returns the new ``getSeq()``."""
    async with _timeout(timeout):
        while True:
            await _drive(_pm._aio_op(h, last_seq))
            seq = h.getSeq()
            if seq > last_seq:
                return seq
            if seq < 0:
                _raise_for(h, _NOT_OPEN)
            await asyncio.sleep(_RETRY)


async def frame(h, last_seq: int = -1, *, timeout: float | None = None):
    """The newest frame of a memvid or memaud reader once ``getSeq()`` exceeds
    ``last_seq``: ``(seq, view)``, the view as ``getBuf(getPtr(-1))`` gives it."""
    seq = await wait_frame(h, last_seq, timeout=timeout)
    return seq, h.getBuf(h.getPtr(-1))


async def record(p, last_seq: int = -1, *, timeout: float | None = None):
    """The newest record of a mempkt reader once ``getSeq()`` exceeds ``last_seq``:
    ``(seq, (payload, meta, info))`` as ``getRecord(getPtr(-1))`` gives it (``None`` in
    place of the tuple if it was overwritten meanwhile)."""
    seq = await wait_frame(p, last_seq, timeout=timeout)
    return seq, p.getRecord(p.getPtr(-1))


async def frames(h, last_seq: int | None = None):
    """Every new global sequence of a memvid, memaud or mempkt reader (after
    ``last_seq``; default: the current one), forever. Frames published faster than the
    loop takes them are coalesced (as with ``waitForFrame``)."""
    if last_seq is None:
        last_seq = h.getSeq()
    while True:
        last_seq = await wait_frame(h, last_seq)
        yield last_seq
