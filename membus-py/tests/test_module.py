"""Module level: metadata, errc/last_error, enums, format helpers, select, the CLI."""

import operator
import threading
import time

import pytest

from conftest import pm


def test_metadata():
    assert pm.__version__ == "2.2.0" == pm.version()
    assert pm.build() == pm.__build__
    assert pm.__doc__ == "Python shared memory library"
    for name in [
        "audio_format", "audio_format_bytes_per_sample", "audio_format_name", "audview",
        "build", "errc", "last_error", "last_error_message", "memaud", "memcmd", "memkv",
        "memmap", "memmsg", "mempkt", "memvid", "pkt_kind", "select", "version",
        "video_format", "video_format_bytes_per_pixel", "video_format_name", "vidview",
    ]:
        assert hasattr(pm, name), name


def test_errc_values_and_messages():
    expected = {
        "ok": (0, "ok"), "invalid_argument": (1, "invalid argument"),
        "open_failed": (2, "open failed"), "create_failed": (3, "create failed"),
        "map_failed": (4, "map failed"), "size_mismatch": (5, "size mismatch"),
        "invalid_layout": (6, "invalid shared-memory layout"), "not_open": (7, "not open"),
        "access_denied": (8, "access denied"), "message_too_large": (9, "message too large"),
        "lock_timeout": (10, "lock timeout"), "timeout": (11, "timeout"),
        "overrun": (12, "overrun"),
    }
    for name, (value, text) in expected.items():
        e = getattr(pm.errc, name)
        assert int(e) == value and e.value == value and e.name == name
        assert pm.last_error_message(e) == text
    assert pm.last_error_message(pm.errc(99)) == "unknown error"
    with pytest.raises(TypeError):
        pm.last_error_message(3)


def test_enum_semantics():
    vf = pm.video_format
    assert repr(vf.rgb24) == "<video_format.rgb24: 2>"
    assert str(vf.rgb24) == "video_format.rgb24"
    assert vf(2) == vf.rgb24 and vf(2) != vf.bgr24
    assert vf(99).name == "???" and int(vf(99)) == 99
    assert (pm.errc.timeout == 11) is False
    assert (vf.rgb24 == pm.audio_format.s16le) is False
    assert hash(vf.rgb24) == 2 and operator.index(vf.gray8) == 1
    assert set(vf.__members__) == {
        "gray8", "rgb24", "bgr24", "rgba32", "bgra32", "yuyv422", "uyvy422", "userType"}
    assert pm.pkt_kind.__members__["audio"] == pm.pkt_kind.audio
    assert pm.pkt_kind(7).name == "???"
    with pytest.raises(TypeError):
        _ = vf.rgb24 < vf.bgr24
    assert vf.rgb24 in (vf.gray8, vf.rgb24)
    assert {vf.rgb24: 1}[vf(2)] == 1


def test_format_helpers():
    vf, af = pm.video_format, pm.audio_format
    names = ["GRAY8", "RGB24", "BGR24", "RGBA32", "BGRA32", "YUYV422", "UYVY422"]
    bpp = [1, 3, 3, 4, 4, 2, 2]
    for i, (n, b) in enumerate(zip(names, bpp), start=1):
        assert pm.video_format_name(vf(i)) == n
        assert pm.video_format_bytes_per_pixel(vf(i)) == b
    assert pm.video_format_name(vf.userType) == "USERTYPE"
    assert pm.video_format_bytes_per_pixel(vf.userType) == 0
    assert pm.video_format_name(vf(0)) == "unknown"
    anames = ["U8", "S16LE", "S24LE", "S32LE", "F32LE", "F64LE"]
    abps = [1, 2, 3, 4, 4, 8]
    for i, (n, b) in enumerate(zip(anames, abps), start=1):
        assert pm.audio_format_name(af(i)) == n
        assert pm.audio_format_bytes_per_sample(af(i)) == b
    assert pm.audio_format_name(af.userType) == "USERTYPE"
    assert pm.audio_format_bytes_per_sample(af.userType) == 0
    with pytest.raises(TypeError):
        pm.video_format_name(2)


def test_last_error_is_thread_local(names):
    assert not pm.memmap().open(names(), 16)
    assert pm.last_error() == pm.errc.open_failed
    seen = []
    t = threading.Thread(target=lambda: seen.append(pm.last_error()))
    t.start()
    t.join()
    assert seen == [pm.errc.ok]
    assert pm.last_error() == pm.errc.open_failed
    assert pm.last_error_message() == "open failed"


def test_select_semantics():
    f, t = (lambda: False), (lambda: True)
    assert pm.select(0, []) == -1
    assert pm.select(0, [f]) == -1
    assert pm.select(0, [f, t, t]) == 1
    assert pm.select(0, (f, lambda: 1)) == 1
    assert pm.select(0, [lambda: None]) == -1
    with pytest.raises(ZeroDivisionError):
        pm.select(10, [f, lambda: 1 / 0])
    with pytest.raises(TypeError):
        pm.select(0, [1])
    with pytest.raises(TypeError):
        pm.select(0, (x for x in [t]))
    start = time.monotonic()
    assert pm.select(30, [f]) == -1
    assert time.monotonic() - start >= 0.025


def test_select_lets_other_threads_run():
    flag = threading.Event()
    threading.Timer(0.02, flag.set).start()
    assert pm.select(5000, [flag.is_set]) == 0


def test_console_script(capsys):
    from pymembus import _cli

    assert _cli.main(["info", "version"]) == 0
    assert capsys.readouterr().out.strip() == "2.2.0"
    assert _cli.main(["info", "name"]) == 0
    assert capsys.readouterr().out.strip() == "pymembus"
    assert _cli.main(["help"]) == 0
    assert "membus" in capsys.readouterr().out
    assert _cli.main(["files"]) == 0
    assert _cli.main(["nonsense"]) == 1
    assert "Invalid command" in capsys.readouterr().err
    assert _cli.main([]) == 0
    assert "usage" in capsys.readouterr().out
