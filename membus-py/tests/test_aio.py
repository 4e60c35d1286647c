"""pymembus.aio: awaits across real processes for every share type, cancellation, close
while awaiting, idle cost (threads, CPU ticks) and event-loop responsiveness.

The writers are child processes: a Python interpreter with the module that executes the
statements it is sent (one per line) and answers "ok" after each. No test depends on
timing: where an await must be pending first, the test waits for it to be pending (or
for a ticker to have ticked) before the child writes.
"""

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from conftest import pm
from pymembus import aio

CHILD = r"""
import ast, sys, traceback
import pymembus
g = {"pm": pymembus.pymembus}
for line in sys.stdin:
    try:
        exec(ast.literal_eval(line), g)
        print("ok", flush=True)
    except BaseException:
        print("err " + traceback.format_exc().replace("\n", " | "), flush=True)
"""

# Generous bound on a whole test's awaits: only reached if something is broken.
LONG = 60


class Child:
    """A Python child process with the module; `do` runs statements in it."""

    def __init__(self):
        self.p = subprocess.Popen(
            [sys.executable, "-u", "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def do(self, code):
        self.p.stdin.write(repr(code) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line == "ok", line or "child died"

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=LONG) == 0


@pytest.fixture
def child():
    c = Child()
    yield c
    if c.p.poll() is None:
        c.p.stdin.close()
        c.p.wait(timeout=LONG)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LONG))


async def pending(task):
    """Lets `task` run until it waits (a few loop turns), and checks it does."""
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()


# ---- every share type across processes --------------------------------------------------


def test_memmsg_messages_across_processes(names, child):
    n = names("msg")
    r = pm.memmsg()
    assert r.open(n, 4096, False, True)
    child.do(f"w = pm.memmsg(); assert w.open({n!r}, 4096, True, False)")

    async def main():
        got = []
        t = asyncio.ensure_future(aio.read(r))
        await pending(t)
        child.do("assert w.write(b'one')")
        got.append(await t)
        child.do("assert w.write(b'two') and w.write(b'three')")
        async for m in aio.messages(r):
            got.append(m)
            if len(got) == 3:
                break
        return got

    assert run(main()) == [b"one", b"two", b"three"]
    assert r.isOpen() and r.read_bytes(0) == b""
    child.do("w.close()")
    r.close()


def test_memcmd_across_processes(names, child):
    n = names("cmd")
    c = pm.memcmd()
    assert c.open(n, 4096, True, True)
    child.do(f"w = pm.memcmd(); assert w.open({n!r}, 4096)")

    async def main():
        t = asyncio.ensure_future(aio.read_with_overrun(c))
        await pending(t)
        child.do("assert w.write('go left')")
        return await t

    assert run(main()) == (b"go left", False)
    child.do("w.close()")
    c.close()


def test_memkv_change_across_processes(names, child):
    n = names("kv")
    kv = pm.memkv()
    assert kv.create(n, 2, 8, 14, True) and kv.setName(0, "speed")
    child.do(f"kv = pm.memkv(); assert kv.open({n!r})")
    e0 = kv.getEpoch()

    async def main():
        t = asyncio.ensure_future(aio.wait_change(kv, e0))
        await pending(t)
        child.do("assert kv.setValue('speed', '42')")
        e1 = await t
        it = aio.changes(kv, e1)
        nxt = asyncio.ensure_future(it.__anext__())
        await pending(nxt)
        child.do("assert kv.setValue('speed', '43')")
        return e1, await nxt

    e1, (changed, e2) = run(main())
    assert e1 == e0 + 1 and changed == {"speed": "43"} and e2 == e1 + 1
    child.do("kv.close()")
    kv.close()


def test_memvid_frame_across_processes(names, child):
    n = names("vid")
    child.do(
        f"w = pm.memvid(); assert w.open({n!r}, True, 8, 4, pm.video_format.gray8, 30, 3)"
    )
    r = pm.memvid()
    assert r.open_existing(n)
    s0 = r.getSeq()

    async def main():
        t = asyncio.ensure_future(aio.frame(r, s0))
        await pending(t)
        child.do(
            "m = memoryview(w.getBuf(w.getPtr(0))).cast('B'); m[:] = bytes([7]) * len(m); "
            "m.release(); assert w.next(1) == 1"
        )
        seq, view = await t
        with memoryview(view) as m:
            data = m.tobytes()
        del view
        t = asyncio.ensure_future(anext(aio.frames(r)))
        await pending(t)
        child.do("assert w.next(1) == 2")
        return seq, data, await t

    seq, data, seq2 = run(main())
    assert seq == s0 + 1 and data and set(data) == {7} and seq2 == s0 + 2
    r.close()
    child.do("w.close()")


def test_memaud_frame_across_processes(names, child):
    n = names("aud")
    child.do(
        f"w = pm.memaud(); assert w.open({n!r}, True, 2, pm.audio_format.s16le, 48000, 50, 2)"
    )
    r = pm.memaud()
    assert r.open_existing(n)
    s0 = r.getSeq()

    async def main():
        t = asyncio.ensure_future(aio.wait_frame(r, s0))
        await pending(t)
        child.do("assert w.next(1) == 1")
        return await t

    assert run(main()) == s0 + 1
    r.close()
    child.do("w.close()")


def test_mempkt_record_across_processes(names, child):
    n = names("pkt")
    child.do(f"w = pm.mempkt(); assert w.open({n!r}, True, 8, 1000, 256)")
    r = pm.mempkt()
    assert r.open_existing(n)
    s0 = r.getSeq()

    async def main():
        t = asyncio.ensure_future(aio.record(r, s0))
        await pending(t)
        child.do("assert w.write(b'payload', pm.pkt_kind.video, track=3, pts=99) == 1")
        return await t

    seq, (payload, meta, info) = run(main())
    assert seq == s0 + 1 and payload == b"payload" and info["track"] == 3
    r.close()
    child.do("w.close()")


# ---- cancellation, timeouts, closing ------------------------------------------------------


def test_cancelled_reads_lose_nothing(names, child):
    n = names("cancel")
    r = pm.memmsg()
    assert r.open(n, 4096, False, True)
    child.do(f"w = pm.memmsg(); assert w.open({n!r}, 4096, True, False)")

    async def main():
        # task.cancel() while pending; then a message; a blocking read gets it.
        t = asyncio.ensure_future(aio.read(r))
        await pending(t)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert r.isOpen()
        child.do("assert w.write(b'kept')")
        assert r.read_bytes(10_000) == b"kept"
        # A timeout; then a message; the next await gets it.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(aio.read(r), 0.01)
        with pytest.raises(TimeoutError):
            await aio.read(r, timeout=0.01)
        child.do("assert w.write(b'also kept')")
        # Cancelled after the message is there but before the task ran again.
        t = asyncio.ensure_future(aio.read(r))
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return await aio.read(r)

    assert run(main()) == b"also kept"
    child.do("w.close()")
    r.close()


def test_cancelled_media_and_kv_waits_lose_nothing(names, child):
    n, k = names("cvid"), names("ckv")
    child.do(f"w = pm.memvid(); assert w.open({n!r}, True, 8, 4, pm.video_format.gray8, 30, 3)")
    kv = pm.memkv()
    assert kv.create(k, 1, 8, 14, True) and kv.setName(0, "x")
    child.do(f"kv = pm.memkv(); assert kv.open({k!r})")
    r = pm.memvid()
    assert r.open_existing(n)
    s0, e0 = r.getSeq(), kv.getEpoch()

    async def main():
        tasks = [
            asyncio.ensure_future(aio.wait_frame(r, s0)),
            asyncio.ensure_future(aio.wait_change(kv, e0)),
        ]
        for t in tasks:
            await pending(t)
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        child.do("assert w.next(1) == 1 and kv.setValue('x', '1')")
        return await aio.wait_frame(r, s0), await aio.wait_change(kv, e0)

    assert run(main()) == (s0 + 1, e0 + 1)
    assert r.waitForFrame(0, s0) and kv.getChanged(e0) == ({"x": "1"}, e0 + 1)
    r.close()
    kv.close()
    child.do("w.close(); kv.close()")


def test_close_while_awaiting_raises(names):
    n, k = names("close"), names("closekv")
    r = pm.memmsg()
    assert r.open(n, 4096, False, True)
    kv = pm.memkv()
    assert kv.create(k, 1, 8, 14, True)

    async def main():
        t = asyncio.ensure_future(aio.read(r))
        u = asyncio.ensure_future(aio.wait_change(kv, kv.getEpoch()))
        await pending(t)
        await pending(u)
        r.close()
        kv.close()
        for x in (t, u):
            with pytest.raises(aio.ClosedError):
                await x
        assert not r.isOpen()
        with pytest.raises(aio.ClosedError):
            await aio.read(r)
        with pytest.raises(aio.ClosedError):
            await aio.wait_change(kv, 0)
        # Reopened while awaiting: the wait ends, the new share is untouched.
        assert r.open(n, 4096, False, True)
        t = asyncio.ensure_future(aio.read(r))
        await pending(t)
        assert r.open(n, 4096, False, True)
        with pytest.raises(aio.ClosedError):
            await t
        assert r.isOpen() and r.write(b"x") is False  # a reader handle

    run(main())
    r.close()


def test_busy_and_wrong_handles(names):
    n = names("busy")
    r = pm.memmsg()
    assert r.open(n, 4096, False, True)
    w = pm.memmsg()
    assert w.open(n, 4096, True, False)

    async def main():
        t = asyncio.ensure_future(aio.read(r))
        await pending(t)
        # While lent, the handle's own reads see it as not open; a second await is refused.
        assert r.isOpen() and r.read_bytes(0) == b"" and pm.last_error() == pm.errc.not_open
        with pytest.raises(aio.BusyError):
            await aio.read(r)
        with pytest.raises(TypeError):
            await aio.read(w)
        with pytest.raises(TypeError):
            await aio.wait_frame(object(), 0)
        assert w.write(b"hello")
        assert await t == b"hello"

    run(main())
    w.close()
    r.close()


# ---- idle cost and responsiveness -------------------------------------------------------


def threads():
    return len(os.listdir("/proc/self/task"))


def cpu_ticks():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_many_idle_awaits_add_no_threads_and_no_cpu(names):
    shares = [names(f"idle{i}") for i in range(4)]
    handles = []
    for n in shares:
        for _ in range(50):
            h = pm.memmsg()
            assert h.open(n, 4096, False, True)
            handles.append(h)
    kv = pm.memkv()
    k = names("idlekv")
    assert kv.create(k, 1, 8, 14, True)

    async def main():
        first = asyncio.ensure_future(aio.read(handles[0]))
        await pending(first)  # the reactor thread exists from here on
        before = threads(), threading.active_count()
        rest = [asyncio.ensure_future(aio.read(h)) for h in handles[1:]]
        rest += [asyncio.ensure_future(aio.wait_change(kv, kv.getEpoch())) for _ in range(50)]
        for t in rest:
            await pending(t)
        after = threads(), threading.active_count()
        t0 = cpu_ticks()
        await asyncio.sleep(1.0)
        used = cpu_ticks() - t0
        all_pending = not any(t.done() for t in [first, *rest])
        for t in [first, *rest]:
            t.cancel()
        await asyncio.gather(first, *rest, return_exceptions=True)
        return before, after, used, all_pending

    before, after, used, all_pending = run(main())
    assert all_pending
    assert after == before, (before, after)
    # 250 pending awaits over a second: a poller would burn ~100 ticks (one core); they
    # sleep in the kernel. The bound is generous (a fifth of a core).
    assert used <= 20, used
    assert all(h.isOpen() for h in handles)
    for h in handles:
        h.close()
    kv.close()


def test_event_loop_stays_responsive(names, child):
    n = names("tick")
    r = pm.memmsg()
    assert r.open(n, 4096, False, True)
    child.do(f"w = pm.memmsg(); assert w.open({n!r}, 4096, True, False)")

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        tk = asyncio.ensure_future(ticker())
        t = asyncio.ensure_future(aio.read(r))
        while ticks < 20:  # the loop keeps running other tasks while the read waits
            await asyncio.sleep(0.001)
        assert not t.done()
        child.do("assert w.write(b'late')")
        got = await t
        tk.cancel()
        return ticks, got

    ticks, got = run(main())
    assert ticks >= 20 and got == b"late"
    child.do("w.close()")
    r.close()


def test_awaits_in_several_event_loops_in_threads(names):
    n = names("loops")
    w = pm.memmsg()
    assert w.open(n, 4096, True, True)
    readers = []
    for _ in range(3):
        h = pm.memmsg()
        assert h.open(n, 4096, False, False)
        readers.append(h)
    results = [None] * 3
    started = threading.Barrier(4)

    def worker(i):
        async def main():
            t = asyncio.ensure_future(aio.read(readers[i]))
            await pending(t)
            started.wait()
            return await t

        results[i] = run(main())

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    started.wait()
    assert w.write(b"all")
    for t in ts:
        t.join(LONG)
    assert results == [b"all"] * 3
    for h in readers:
        h.close()
    w.close()

