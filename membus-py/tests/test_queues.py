"""memmsg and memcmd: every method, failure codes, GIL release, other processes."""

import threading
import time

import pytest

from conftest import pm


def test_memmsg_methods(names):
    n = names()
    w, r = pm.memmsg(), pm.memmsg()
    assert not r.isOpen() and r.getSessionId() == 0 and not r.poll()
    assert r.read(0) == "" and pm.last_error() == pm.errc.not_open
    assert not w.open(n, 0, True, True) and pm.last_error() == pm.errc.invalid_argument
    assert not r.open(n, 256, False, False) and pm.last_error() == pm.errc.open_failed
    assert w.open(n, 256, True, True) and w.isOpen() and not w.existing()
    assert r.open(n, 256, False, False) and r.existing()
    assert not pm.memmsg().open(n, 512, False, False)
    assert pm.last_error() in (pm.errc.size_mismatch, pm.errc.invalid_layout)
    assert r.getSessionId() == w.getSessionId() != 0
    assert not r.poll()
    assert r.read(0) == "" and pm.last_error() == pm.errc.timeout
    assert w.write("one") and w.write(b"two") and w.write(bytearray(b"three"))
    assert w.write_bytes(b"four\x00")
    with pytest.raises(TypeError):
        w.write_bytes("str")
    assert r.poll()
    assert r.read() == "one"
    assert r.read_bytes() == b"two"
    assert r.read_with_overrun(0) == ("three", False)
    assert r.read_bytes_with_overrun(wait=0) == (b"four\x00", False)
    assert r.read_with_overrun() == ("", False) and pm.last_error() == pm.errc.timeout
    assert not w.write("") and pm.last_error() == pm.errc.invalid_argument
    assert not w.write("x" * 512) and pm.last_error() == pm.errc.message_too_large
    assert not r.write("x") and pm.last_error() == pm.errc.access_denied
    # a writer handle reads too, from the oldest message
    assert w.read_bytes() == b"one"
    w.write(b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        r.read()
    assert r.read(0) == ""  # the bad message was consumed
    for h in (r, w):
        h.close()
    assert not w.write("x") and pm.last_error() == pm.errc.access_denied
    assert not pm.memmsg.remove(n)  # the creator removed it on close


def test_memmsg_overrun(names):
    n = names()
    w, r = pm.memmsg(), pm.memmsg()
    assert w.open(n, 1024, True, True) and r.open(n, 1024, False, False)
    w.write_bytes(b"first")
    assert r.read_bytes() == b"first"
    for _ in range(20):
        assert w.write_bytes(b"x" * 256)
    assert r.read_bytes_with_overrun() == (b"", True)
    assert pm.last_error() == pm.errc.overrun
    w.write_bytes(b"after")
    assert r.read_bytes(100) == b"after"
    r.close()
    w.close()


def test_memmsg_reader_creates(names):
    n = names()
    r, w = pm.memmsg(), pm.memmsg()
    assert r.open(n, 256, False, True) and not r.existing()
    assert w.open(n, 256, True, False) and w.existing()
    w.write("hi")
    assert r.read(100) == "hi"
    w.close()
    r.close()


def test_memcmd_methods(names):
    n = names()
    a, b, c = pm.memcmd(), pm.memcmd(), pm.memcmd()
    assert a.readerCount() == 0 and not a.poll() and a.getSessionId() == 0
    assert not a.write("x") and pm.last_error() == pm.errc.not_open
    assert not a.open(n, 0) and pm.last_error() == pm.errc.invalid_argument
    assert a.open(n, 256, True, True) and not a.existing() and a.isOpen()
    assert b.open(n, 256, True, False) and b.existing()
    assert c.open(n, 256)
    assert a.readerCount() == 2
    assert c.write("from-c") and b.write_bytes(b"from-b")
    assert a.read_with_overrun(0) == ("from-c", False)
    assert b.read_bytes_with_overrun(0) == (b"from-c", False)
    assert a.read_bytes() == b"from-b" and b.read() == "from-b"
    assert a.read(0) == "" and pm.last_error() == pm.errc.timeout
    assert not c.write("") and pm.last_error() == pm.errc.invalid_argument
    assert not c.write("y" * 512) and pm.last_error() == pm.errc.message_too_large
    assert a.getSessionId() == c.getSessionId()
    b.close()
    assert a.readerCount() == 1
    for h in (c, a):
        h.close()


@pytest.mark.parametrize("cls", ["memmsg", "memcmd"])
def test_blocking_read_releases_gil(names, cls):
    n = names()
    w, r = getattr(pm, cls)(), getattr(pm, cls)()
    if cls == "memmsg":
        assert w.open(n, 4096, True, True) and r.open(n, 4096, False, False)
    else:
        assert w.open(n, 4096, True, True) and r.open(n, 4096, True, False)
    got, ticks = [], [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    def read():
        got.append(r.read_bytes(5000))

    s = threading.Thread(target=spin)
    t = threading.Thread(target=read)
    s.start()
    t.start()
    time.sleep(0.1)
    before = ticks[0]
    time.sleep(0.1)
    assert ticks[0] > before  # the spinning thread ran while read() was blocked
    w.write_bytes(b"wake")
    t.join(5)
    stop.set()
    s.join()
    assert got == [b"wake"]
    r.close()
    w.close()


@pytest.mark.parametrize("cls", ["memmsg", "memcmd"])
def test_cross_process_both_ways(names, peer, cls):
    n = names()
    h = getattr(pm, cls)()
    if cls == "memmsg":
        assert h.open(n, 4096, True, True)
    else:
        assert h.open(n, 4096, True, True)
    for i in range(5):
        assert h.write(f"py-{i}")
    role = "msg" if cls == "memmsg" else "cmd"
    assert peer.run(f"{role}-read", n, 5) == ",".join(f"py-{i}" for i in range(5))
    r = getattr(pm, cls)()
    assert r.open(n, 4096, False, False)
    assert [r.read(0) for _ in range(5)] == [f"py-{i}" for i in range(5)]
    assert peer.run(f"{role}-write", n, 3) == "done"
    assert [r.read(1000) for _ in range(3)] == [f"rust-{i}" for i in range(3)]
    r.close()
    h.close()


@pytest.mark.parametrize("cls", ["memmsg", "memcmd"])
def test_same_handle_from_two_threads_while_one_blocks(names, cls):
    """A second thread using the handle a blocked read holds must not deadlock."""
    n = names()
    w, r = getattr(pm, cls)(), getattr(pm, cls)()
    if cls == "memmsg":
        assert w.open(n, 4096, True, True) and r.open(n, 4096, False, False)
    else:
        assert w.open(n, 4096, True, True) and r.open(n, 4096, True, False)
    got = []
    t = threading.Thread(target=lambda: got.append(r.read_bytes(3000)))
    t.start()
    time.sleep(0.05)
    threading.Timer(0.2, lambda: w.write_bytes(b"done")).start()
    sid = r.getSessionId()  # waits for the handle while the read blocks, GIL released
    t.join(10)
    assert not t.is_alive() and got == [b"done"] and sid == w.getSessionId()
    r.close()
    w.close()
