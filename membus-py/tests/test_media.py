"""memvid, memaud, vidview, audview: every method, buffer shapes, reader-side mutators,
close/reopen rules, NumPy views across processes."""

import threading

import numpy
import pytest

from conftest import pm, stop

VF, AF = pm.video_format, pm.audio_format

VIDEO_SHAPES = [
    (VF.gray8, (4, 8), (8, 1)),
    (VF.rgb24, (4, 8, 3), (24, 3, 1)),
    (VF.bgr24, (4, 8, 3), (24, 3, 1)),
    (VF.rgba32, (4, 8, 4), (32, 4, 1)),
    (VF.bgra32, (4, 8, 4), (32, 4, 1)),
    (VF.yuyv422, (4, 16), (16, 1)),
    (VF.uyvy422, (4, 16), (16, 1)),
]


@pytest.mark.parametrize("fmt,shape,strides", VIDEO_SHAPES)
def test_video_buffer_shapes(names, fmt, shape, strides):
    n = names()
    w, r = pm.memvid(), pm.memvid()
    assert w.open(n, True, 8, 4, fmt, 30, 2)
    wv = memoryview(w[0])
    assert (wv.format, wv.itemsize, wv.shape, wv.strides) == ("B", 1, shape, strides)
    assert not wv.readonly and wv.c_contiguous
    assert r.open_existing(n)
    rv = memoryview(r.getBuf(0))
    assert rv.readonly and rv.shape == shape and rv.strides == strides
    view = w.getBuf(1)
    assert (view.width, view.height, view.format) == (8, 4, fmt)
    assert view.size == view.scanwidth * 4 == 8 * 4 * pm.video_format_bytes_per_pixel(fmt)
    del wv, rv, view
    r.close()
    w.close()


def test_video_padded_and_usertype_shapes(names):
    n = names()
    w = pm.memvid()
    assert w.open(n, True, 8, 4, VF.rgb24, 30, 2, 32)
    v = memoryview(w[0])
    assert v.shape == (4, 8, 3) and v.strides == (32, 3, 1) and not v.c_contiguous
    arr = numpy.asarray(w[0])
    arr[...] = 9
    assert w[0].size == 128 and bytes(memoryview(w[0]).tobytes()) == b"\x09" * 96
    del v, arr
    assert w.open(n, True, 8, 4, VF.userType, 30, 2, 40)
    v = memoryview(w[0])
    assert v.shape == (160,) and v.strides == (1,) and v.format == "B"
    del v
    assert not w.open(n, True, 8, 4, VF.userType, 30, 2)  # userType needs a scanwidth
    assert not w.open(n, True, 7, 4, VF.yuyv422, 30, 2)  # odd width with YUV
    assert w.open(n, True, 8, 4, 24, 30, 2)
    assert w.getFormat() == VF.rgb24 and w.getBpp() == 24
    with pytest.raises(ValueError, match="unsupported bpp"):
        w.open(n, True, 8, 4, 12, 30, 2)
    with pytest.raises(ValueError, match="guid must be exactly 16 bytes"):
        w.open(n, True, 8, 4, VF.gray8, 30, 2, guid=b"short")
    w.close()


AUDIO_SHAPES = [
    (AF.u8, "B", 1), (AF.s16le, "h", 2), (AF.s32le, "i", 4), (AF.f32le, "f", 4),
    (AF.f64le, "d", 8),
]


@pytest.mark.parametrize("fmt,code,item", AUDIO_SHAPES)
def test_audio_buffer_shapes(names, fmt, code, item):
    n = names()
    w, r = pm.memaud(), pm.memaud()
    assert w.open(n, True, 2, fmt, 48000, 50, 2)
    v = memoryview(w[0])
    assert (v.format, v.itemsize, v.shape, v.strides) == (code, item, (960, 2), (2 * item, item))
    assert r.open_existing(n)
    rv = memoryview(r[1])
    assert rv.readonly and rv.shape == (960, 2)
    view = w.getBuf(0)
    assert (view.channels, view.format, view.size) == (2, fmt, 960 * 2 * item)
    del v, rv, view
    r.close()
    w.close()


def test_audio_raw_shapes(names):
    n = names()
    w = pm.memaud()
    assert w.open(n, True, 2, AF.s24le, 48000, 100, 2)
    v = memoryview(w[0])
    assert (v.format, v.shape, v.strides) == ("B", (480 * 2 * 3,), (1,))
    del v
    assert not w.open(n, True, 2, AF.userType, 48000, 100, 2)
    assert w.open(n, True, 2, AF.userType, 48000, 100, 2, payloadSize=123)
    v = memoryview(w[0])
    assert v.shape == (123,) and w.getBufSize() == 123 and w.getBitRate() == 0
    del v
    assert w.open(n, True, 2, 16, 44100, 30, 2)
    assert w.getFormat() == AF.s16le and w.getBufSize() == 1470 * 2 * 2
    assert w.getBitRate() == 44100 * 2 * 16 and w.getBps() == 16
    with pytest.raises(ValueError, match="unsupported bps"):
        w.open(n, True, 2, 12, 44100, 30, 2)
    w.close()


def test_memvid_methods(names):
    n = names()
    w, r = pm.memvid(), pm.memvid()
    assert w.getPtr(0) == -1 and w.getSeq() == -1 and w.getBufs() == 0
    assert w.getFormat() == VF(0) and w.getWidth() == -1 and not w.isOpen()
    with pytest.raises(RuntimeError, match="std::exception"):
        w.getBuf(0)
    guid = bytes(range(16))
    assert w.open(n, True, 8, 4, VF.rgb24, 25, 4, align=64, frameextra=20, fourcc=0x34325652,
                  guid=guid, meta=b"hello")
    assert (w.getWidth(), w.getHeight(), w.getFps(), w.getBufs(), len(w)) == (8, 4, 25, 4, 4)
    assert w.getFormatName() == "RGB24" and w.getVersion() == 2 and w.getAlign() == 64
    assert w.getFrameExtra() == 24 and w.getFourcc() == 0x34325652
    assert w.getGuid() == guid and w.getMeta() == b"hello" and w.getMetaSize() == 5
    assert not w.existing() and w.isOpen()
    assert w.fill(0, 200) and numpy.asarray(w[0]).min() == 200
    assert w.setVpts(0, 111) and w.setApts(0, 222)
    assert w.setUserData(0, b"abc") and not w.setUserData(0, b"x" * 25)
    assert w.getUserData(0) == b"abc" and w.getUserLen(0) == 3
    assert w.getPtr(0) == 0 and w.next(1) == 1 and w.getSeq() == 1
    assert w.getFrameSeq(0) == 1 and w.getFrameSeq(1) == 0
    assert w.getPtr(-1) == 0 and w.getPtr(5) == 2
    assert w.getVpts(0) == 111 and w.getApts(0) == 222 and w.getVpts(-4) == 111
    assert w.waitForFrame(0, 0) and pm.last_error() == pm.errc.ok
    assert not w.waitForFrame(0, 1) and pm.last_error() == pm.errc.timeout
    assert w.next(2) == 3 and w.getFrameSeq(1) == 2
    assert w.next(0) == 3 and w.getFrameSeq(3) == 3
    assert w.next(-1) == 2 and w.getSeq() == 4
    assert w.setPtr(5) == 1 and w.getPtr(0) == 1
    assert w.getPtrErr(2, 0) == 1 and w.getPtrErr(0, 0) == -1 and w.getPtrErr(3, 0) == 2
    assert r.open_existing(n) and r.existing()
    assert r.getSessionId() == w.getSessionId() and r.getSeq() == 4
    assert r.getFrameSeq(3) == 4 and r.getVpts(0) == 111 and r.getApts(0) == 222
    assert r.getUserData(0) == b"abc" and r.getGuid() == guid and r.getMeta() == b"hello"
    assert r.getPtr(0) == 1 and r.getFourcc() == 0x34325652
    assert r.waitForFrame(0, 3) and not r.waitForFrame(0, 4)
    a = pm.memvid()  # attach read-write with a parameter check
    assert a.open(n, False, 8, 4, VF.rgb24, 25, 4, frameextra=20, meta=b"hello")
    assert a.existing() and a.getGuid() == guid and a.getMeta() == b"hello"
    assert a.getFourcc() == 0x34325652 and a.getSessionId() == w.getSessionId()
    assert a.getSeq() == 4 and a.getPtr(0) == 1  # continues from the header
    assert a.fill(1, 9) and a.setVpts(1, 333) and a.next(1) == 2
    assert r.getSeq() == 5 and r.getFrameSeq(1) == 5 and r.getVpts(1) == 333
    assert numpy.asarray(r[1]).max() == 9
    assert not pm.memvid().open(n, False, 8, 4, VF.rgb24, 30, 4)
    assert pm.last_error() == pm.errc.size_mismatch
    for h in (a, r, w):
        h.close()


def test_memaud_methods(names):
    n = names()
    w, r = pm.memaud(), pm.memaud()
    assert w.open(n, True, 2, AF.s16le, 48000, 100, 3, frameextra=16, fourcc=7, meta="m")
    assert (w.getChannels(), w.getSampleRate(), w.getFps(), w.getBufs()) == (2, 48000, 100, 3)
    assert w.getFormatName() == "S16LE" and w.getBytesPerSample() == 2 and w.getBps() == 16
    assert w.getBufSize() == 480 * 4 and w.getVersion() == 3 and w.getFourcc() == 7
    assert w.getMeta() == b"m" and w.getGuid() is None and w.getFrameExtra() == 16
    assert w.setPts(0, 5) and w.setUserData(0, "xyz") and w.getUserLen(0) == 3
    assert w.fill(0, 1) and numpy.asarray(w[0])[0, 0] == 0x0101
    assert w.next(1) == 1 and w.getPts(0) == 5 and w.getFrameSeq(0) == 1
    assert r.open_existing(n) and r.getPts(0) == 5 and r.getUserData(0) == b"xyz"
    assert r.getFormat() == AF.s16le and r.getSeq() == 1
    r.close()
    w.close()


@pytest.mark.parametrize("cls", ["memvid", "memaud"])
def test_reader_mutators_are_denied(names, cls):
    n = names()
    w, r = getattr(pm, cls)(), getattr(pm, cls)()
    if cls == "memvid":
        assert w.open(n, True, 8, 4, VF.rgb24, 30, 2, frameextra=8)
        setters = [lambda: r.setVpts(0, 1), lambda: r.setApts(0, 1)]
    else:
        assert w.open(n, True, 2, AF.s16le, 48000, 100, 2, frameextra=8)
        setters = [lambda: r.setPts(0, 1)]
    assert r.open_existing(n)
    calls = [lambda: r.next(1), lambda: r.fill(0, 1), lambda: r.setPtr(1),
             lambda: r.setUserData(0, b"x")] + setters
    for call in calls:
        pm.memmap.remove(n + "-none")  # resets the last error to ok
        assert call() in (False, -1)
        assert pm.last_error() == pm.errc.access_denied
    with pytest.raises(TypeError):
        memoryview(r[0])[0] = 1  # read-only export
    with pytest.raises(ValueError):
        numpy.asarray(r[0]).setflags(write=True)
    r.close()
    w.close()


@pytest.mark.parametrize("cls", ["memvid", "memaud"])
def test_close_and_reopen_refused_while_views_live(names, cls):
    n = names()
    h = getattr(pm, cls)()

    def open_():
        if cls == "memvid":
            return h.open(n, True, 8, 4, VF.gray8, 30, 2)
        return h.open(n, True, 1, AF.u8, 8000, 10, 2)

    assert open_()
    view = h[0]
    mv = memoryview(view)
    mv[0, 0] = 77
    del view  # the memoryview keeps the view object alive
    with pytest.raises(RuntimeError, match=f"cannot close {cls}"):
        h.close()
    with pytest.raises(RuntimeError, match=f"cannot reopen {cls}"):
        open_()
    with pytest.raises(RuntimeError, match=f"cannot reopen {cls}"):
        h.open_existing(n)
    assert h.isOpen() and mv[0, 0] == 77
    del mv
    assert open_()
    h.close()
    h.close()  # closing a closed handle is a no-op


@pytest.mark.parametrize("cls", ["memvid", "memaud"])
def test_open_without_create_attaches_read_write(names, cls):
    n = names()
    c, a, r = getattr(pm, cls)(), getattr(pm, cls)(), getattr(pm, cls)()
    if cls == "memvid":
        args = (8, 4, VF.gray8, 30, 3)
    else:
        args = (1, AF.u8, 8000, 10, 3)
    assert c.open(n, True, *args) and c.next(1) == 1
    assert a.open(n, False, *args) and a.existing() and not c.existing()
    assert r.open_existing(n)
    view = numpy.asarray(a[a.getPtr(0)])
    assert view.flags.writeable
    view[...] = 42
    assert a.next(1) == 2 and a.getSeq() == 2 and c.getSeq() == 2 == r.getSeq()
    assert numpy.asarray(r[1]).min() == 42 and r.getFrameSeq(1) == 2
    del view
    a.close()
    # The attached handle never owned the share: closing it leaves the share in place.
    assert r.open_existing(n) and r.getSeq() == 2
    r.close()
    c.close()


def test_writer_wait_for_frame_is_woken_by_another_thread(names):
    n = names()
    w = pm.memvid()
    assert w.open(n, True, 8, 4, VF.gray8, 30, 2)
    assert not w.waitForFrame(20, 0) and pm.last_error() == pm.errc.timeout
    # The waiting thread holds neither the GIL nor the handle's lock: next(1) on the same
    # handle from another thread goes through and wakes it.
    t = threading.Timer(0.05, lambda: w.next(1))
    t.start()
    assert w.waitForFrame(5000, 0) and pm.last_error() == pm.errc.ok
    t.join()
    w.close()


def test_wait_for_frame_ends_when_another_thread_closes_the_handle(names):
    n = names()
    w = pm.memvid()
    assert w.open(n, True, 8, 4, VF.gray8, 30, 2)
    got = []
    t = threading.Thread(target=lambda: got.append(w.waitForFrame(60_000, 0)))
    t.start()
    threading.Event().wait(0.05)
    w.close()
    t.join(timeout=30)  # a wait that ignored the close would run for 60 s
    assert not t.is_alive() and got == [False]


def test_attached_writer_wait_for_frame_sees_the_other_writers_frames(names, peer):
    n = names()
    proc, line = peer.serve("vid-serve", n, 1)
    assert line == "done"
    try:
        a = pm.memvid()
        assert a.open(n, False, 8, 4, VF.rgb24, 30, 3, 32)
        assert a.getSeq() == 1
        w = pm.memvid()  # a second writer handle (this process) publishes
        assert w.open(n, False, 8, 4, VF.rgb24, 30, 3, 32)
        threading.Timer(0.05, lambda: w.next(1)).start()
        assert a.waitForFrame(5000, 1)
        w.close()
        a.close()
    finally:
        stop(proc)


def test_rust_creates_python_attaches_and_publishes(names, peer):
    n = names()
    proc, line = peer.serve("vid-serve", n, 5)
    assert line == "done"
    try:
        w = pm.memvid()
        assert not w.open(n, False, 8, 4, VF.rgb24, 30, 3)  # scanwidth differs
        assert w.open(n, False, 8, 4, VF.rgb24, 30, 3, 32)
        assert w.getSeq() == 5 and w.getPtr(0) == 5 % 3
        frame = numpy.asarray(w[w.getPtr(0)])
        frame[...] = 2
        w.setVpts(w.getPtr(0), 77)
        assert w.next(1) == 0
        assert peer.run("vid-read", n) == f"seq=6 sum={2 * 96} vpts=77"
        del frame
        w.close()
    finally:
        stop(proc)


def test_wait_for_frame_releases_gil(names):
    n = names()
    w, r = pm.memvid(), pm.memvid()
    assert w.open(n, True, 8, 4, VF.gray8, 30, 2) and r.open_existing(n)
    threading.Timer(0.05, lambda: w.next(1)).start()
    assert r.waitForFrame(5000, 0)  # woken by the other thread's next(1)
    r.close()
    w.close()


def test_numpy_views_across_processes_rust_writer(names, peer):
    n = names()
    proc, line = peer.serve("vid-serve", n, 5)
    assert line == "done"
    try:
        r = pm.memvid()
        assert r.open_existing(n)
        assert r.getSeq() == 5 and r.getFormat() == VF.rgb24
        newest = r.getPtr(-1)
        frame = numpy.asarray(r[newest])
        assert frame.shape == (4, 8, 3) and frame.strides == (32, 3, 1)
        assert not frame.flags.writeable
        seq = r.getFrameSeq(newest)
        assert seq == 5 and r.getVpts(newest) == 500
        expect = numpy.array([(seq * 7 + y * 32 + x) % 251 for y in range(4) for x in range(24)],
                             dtype=numpy.uint8).reshape(4, 8, 3)
        assert (frame == expect).all()
        del frame
        r.close()
    finally:
        stop(proc)


def test_numpy_views_across_processes_python_writer(names, peer):
    n = names()
    w = pm.memvid()
    assert w.open(n, True, 8, 4, VF.rgb24, 30, 3, 32)
    frame = numpy.asarray(w[w.getPtr(0)])
    frame[...] = 3
    w.setVpts(w.getPtr(0), 42)
    w.next(1)
    assert peer.run("vid-read", n) == f"seq=1 sum={3 * 96} vpts=42"
    frame2 = numpy.asarray(w[w.getPtr(0)])
    frame2[:, :, 0] = 1
    frame2[:, :, 1:] = 0
    w.next(1)
    assert peer.run("vid-read", n) == "seq=2 sum=32 vpts=0"
    del frame, frame2
    w.close()


def test_audio_across_processes_both_ways(names, peer):
    n = names()
    proc, line = peer.serve("aud-serve", n, 2)
    assert line == "done"
    try:
        r = pm.memaud()
        assert r.open_existing(n)
        a = numpy.asarray(r[r.getPtr(-1)])
        assert a.shape == (480, 2) and a.dtype == numpy.int16
        assert a[0, 0] == 2000 and a[479, 1] == 2000 + 959
        del a
        r.close()
    finally:
        stop(proc)
    w = pm.memaud()
    assert w.open(n, True, 2, AF.s16le, 48000, 100, 3)
    a = numpy.asarray(w[0])
    a[...] = numpy.arange(960, dtype=numpy.int16).reshape(480, 2)
    w.setPts(0, 9)
    w.next(1)
    assert peer.run("aud-read", n) == "seq=1 first=0 last=959 pts=9"
    del a
    w.close()
