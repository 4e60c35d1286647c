"""mempkt: every method, random access by index, reader denial, other processes."""

import threading

import pytest

from conftest import pm, stop

K = pm.pkt_kind


def test_mempkt_methods(names):
    n = names()
    w, r = pm.mempkt(), pm.mempkt()
    assert w.getSeq() == -1 and w.getRecord(0) is None and w.write("x") == -1
    assert w.open(n, True, 8, 1000, 256, 0, 0x50, b"pkt-meta")
    assert not w.existing() and w.getBufs() == 8 and len(w) == 8
    assert w.getArenaSize() == 1024 and w.getMaxRec() == 256 and w.getVersion() == 2
    assert w.getMeta() == b"pkt-meta" and w.getMetaSize() == 8 and w.getFourcc() == 0x50
    assert w.getGuid() is None
    assert r.open_existing(n) and r.existing() and r.getSessionId() == w.getSessionId()
    assert w.write(b"payload", K.video, track=7, pts=4242, meta=b"mm") == 1
    assert w.write("hello-world") == 2
    assert w.write("", meta="only-meta") == 3
    assert w.write("") == -1
    assert w.write(b"x" * 300) == -1 and pm.last_error() == pm.errc.message_too_large
    with pytest.raises(TypeError):
        w.write("x", 1)
    assert w.getSeq() == 3 and w.getFrameSeq(0) == 1 and w.getPtr(0) == 3
    assert w.waitForFrame(0, 2) and not w.waitForFrame(0, 3)
    payload, meta, info = r.getRecord(0)
    assert (payload, meta) == (b"payload", b"mm")
    assert info["kind"] == K.video and info["track"] == 7 and info["pts"] == 4242
    assert info["len"] == 7 and info["userlen"] == 2 and info["seq"] == 1
    assert set(info) == {"seq", "wcursor", "pts", "kind", "track", "len", "userlen"}
    assert w.getRecord(w.getPtr(0) - 2)[0] == b"hello-world"
    assert r.getRecord(2)[:2] == (b"", b"only-meta")
    assert r.getRecord(5) is None and r.getRecord(-7)[0] == b"hello-world"
    assert r.getSeq() == 3 and r.getFrameSeq(1) == 2 and r.getPtr(-1) == 2
    assert r.getWcursor() == w.getWcursor() > 0
    pm.memmap.remove(n + "-none")
    assert r.write("denied") == -1 and pm.last_error() == pm.errc.access_denied
    a = pm.mempkt()  # attach read-write with a parameter check
    assert a.open(n, False, 8, 1000, 256) and a.existing() and not w.existing()
    assert a.getSeq() == 3 and a.getWcursor() == w.getWcursor()
    assert a.write(b"from-a", meta=b"am") == 4 and r.getSeq() == 4
    assert r.getRecord(3)[:2] == (b"from-a", b"am")
    assert not pm.mempkt().open(n, False, 8, 2048, 256)
    for h in (a, r, w):
        h.close()
    assert not w.isOpen() and w.getRecord(0) is None


def test_rust_creates_python_attaches_and_writes(names, peer):
    n = names()
    proc, line = peer.serve("pkt-serve", n, 2)
    assert line == "done"
    try:
        a = pm.mempkt()
        assert a.open(n, False, 8, 4096, 512)
        assert a.getSeq() == 2
        threading.Timer(0.05, lambda: a.write(b"py-2", K.audio, 3, 2, b"pm")).start()
        assert a.waitForFrame(5000, 2)
        assert peer.run("pkt-read", n, 3) == "rust-0/m-0/0,rust-1/m-1/1,py-2/pm/2"
        a.close()
    finally:
        stop(proc)


def test_lapped_records_are_none(names):
    n = names()
    w = pm.mempkt()
    assert w.open(n, True, 4, 256, 128)
    for i in range(6):
        assert w.write(b"r%d" % i + b"." * 60) >= 0
    # descriptors 0 and 1 now hold records 5 and 6; all four are readable or lapped
    got = [w.getRecord(i) for i in range(4)]
    assert got[1][0].startswith(b"r5")
    assert all(g is None or g[2]["seq"] >= 3 for g in got)
    w.close()


def test_cross_process_both_ways(names, peer):
    n = names()
    w = pm.mempkt()
    assert w.open(n, True, 8, 4096, 512)
    for i in range(3):
        w.write(f"py-{i}", K.data, pts=i, meta=f"pm-{i}")
    assert peer.run("pkt-read", n, 3) == "py-0/pm-0/0,py-1/pm-1/1,py-2/pm-2/2"
    w.close()
    proc, line = peer.serve("pkt-serve", n, 4)
    assert line == "done"
    try:
        r = pm.mempkt()
        assert r.open_existing(n) and r.getSeq() == 4
        recs = [r.getRecord(i) for i in range(4)]
        assert [x[0] for x in recs] == [f"rust-{i}".encode() for i in range(4)]
        assert [x[1] for x in recs] == [f"m-{i}".encode() for i in range(4)]
        assert all(x[2]["kind"] == K.video and x[2]["track"] == 3 for x in recs)
        r.close()
    finally:
        stop(proc)


def test_reader_wait_for_frame_wakes_and_releases_gil(names):
    import threading

    n = names()
    w, r = pm.mempkt(), pm.mempkt()
    assert w.open(n, True, 4, 1024, 128) and r.open_existing(n)
    assert not r.waitForFrame(10, 0) and pm.last_error() == pm.errc.timeout
    threading.Timer(0.05, lambda: w.write(b"wake")).start()
    assert r.waitForFrame(5000, 0) and pm.last_error() == pm.errc.ok
    assert r.getRecord(0)[0] == b"wake"
    r.close()
    w.close()
