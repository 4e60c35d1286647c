"""memmap: flags, reads and writes, the buffer export, close/reopen rules, other processes."""

import pytest

from conftest import pm


def test_open_flags_and_io(names):
    n = names()
    m = pm.memmap()
    assert not m.isOpen() and not m.existing()
    assert not m.open(n, 64)
    assert pm.last_error() == pm.errc.open_failed
    assert m.open(n, 64, True, True)
    assert pm.last_error() == pm.errc.ok
    assert m.isOpen() and not m.existing() and m.name() == n and m.size() == 64
    assert m.write("hello") == 5 and m.read(5) == "hello"
    assert m.write(b"\xff\x00z") == 3 and m.read_bytes(3) == b"\xff\x00z"
    assert m.write(bytearray(b"ab")) == 2
    assert len(m.read_bytes()) == 64 and len(m.read_bytes(0)) == 64
    assert m.write(b"x" * 100) == 64
    m.write(b"\xff")
    with pytest.raises(UnicodeDecodeError):
        m.read(1)
    other = pm.memmap()
    assert other.open(n, 9999)  # attach ignores the size
    assert other.existing() and other.size() == 64
    ro = pm.memmap()
    assert ro.open(n, 0, True, True, True)  # bReadOnly wins over bCreate/bNew
    assert ro.existing() and ro.read_bytes(1) == b"\xff"
    assert ro.write(b"no") == 0 and pm.last_error() == pm.errc.access_denied
    assert not pm.memmap().open(n + "-x", 0, True)
    assert pm.last_error() == pm.errc.map_failed
    for h in (m, other, ro):
        h.close()
    assert not m.isOpen()
    with pytest.raises(RuntimeError, match="memmap is closed"):
        m.size()
    with pytest.raises(RuntimeError, match="memmap is closed"):
        m.write("x")


def test_remove(names):
    n = names()
    m = pm.memmap()
    assert m.open(n, 16, True)
    assert pm.memmap.remove(n)
    assert not pm.memmap.remove(n) and pm.last_error() == pm.errc.ok
    assert not pm.memmap().open(n, 16) and pm.last_error() == pm.errc.open_failed
    m.close()


def test_buffer_export(names):
    n = names()
    m = pm.memmap()
    assert m.open(n, 32, True, True)
    v = memoryview(m)
    assert (v.format, v.itemsize, v.ndim, v.shape, v.strides) == ("b", 1, 1, (32,), (1,))
    assert not v.readonly and v.c_contiguous
    v[0] = 42
    assert m.read_bytes(1) == b"*"
    ro = pm.memmap()
    assert ro.open(n, 0, False, False, True)
    rv = memoryview(ro)
    assert rv.readonly and rv[0] == 42
    with pytest.raises(TypeError):
        rv[0] = 1
    del rv
    ro.close()
    del v
    m.close()


def test_close_defers_while_viewed_and_reopen_refused(names):
    n = names()
    m = pm.memmap()
    assert m.open(n, 16, True, True)
    v = memoryview(m)
    with pytest.raises(RuntimeError, match="cannot reopen"):
        m.open(n, 16, True)
    m.close()
    assert not m.isOpen()
    v[1] = 7  # still mapped
    assert v[1] == 7
    with pytest.raises(BufferError):
        memoryview(m)
    del v
    m.close()
    assert m.open(n, 16, True, True)  # after the last view, reopening works
    m.close()


def test_cross_process_both_ways(names, peer):
    n = names()
    m = pm.memmap()
    assert m.open(n, 64, True, True)
    m.write("from-python")
    assert peer.run("map-read", n, 11) == "from-python"
    assert peer.run("map-write", n, "from-rust!!") == "done"
    assert m.read(11) == "from-rust!!"
    v = memoryview(m)
    assert bytes(v[:4]) == b"from"
    del v
    m.close()
