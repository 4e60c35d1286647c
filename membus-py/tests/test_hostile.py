"""Corrupt or foreign shares give pymembus's failure values, never a crash."""

import struct

import pytest

from conftest import pm


@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"\x5a"])
def test_garbage_shares_are_refused(names, fill):
    n = names()
    m = pm.memmap()
    assert m.open(n, 8192, True, True)
    m.write(fill * 8192)
    for cls in (pm.memvid, pm.memaud, pm.mempkt):
        h = cls()
        assert not h.open_existing(n)
        assert pm.last_error() != pm.errc.ok
        assert h.getSeq() == -1 and h.getBufs() == 0
    assert not pm.memkv().open(n) and pm.last_error() != pm.errc.ok
    assert not pm.memmsg().open(n, 256, False, False) and pm.last_error() != pm.errc.ok
    assert not pm.memcmd().open(n, 256) and pm.last_error() != pm.errc.ok
    m.close()


def test_hostile_media_header_after_attach(names):
    """A peer that corrupts the write pointer after we attached: -1 / None, no crash."""
    n = names()
    w = pm.memvid()
    assert w.open(n, True, 8, 4, pm.video_format.gray8, 30, 2)
    r = pm.memvid()
    assert r.open_existing(n)
    m = pm.memmap()
    assert m.open(n, 0)
    view = memoryview(m).cast("B")
    ptr_offset = 32  # the header's write pointer (libmembus-wire.md, media prefix)
    view[ptr_offset:ptr_offset + 8] = struct.pack("<q", 1 << 40)
    assert r.getPtr(0) == -1 and pm.last_error() == pm.errc.invalid_layout
    assert r.getPtrErr(0, 0) == 0
    assert r.getBuf(0) is not None  # slot views stay bounded by the validated layout
    view.release()
    m.close()
    r.close()
    w.close()
