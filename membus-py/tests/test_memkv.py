"""memkv: every method, pymembus's rules, change waits, other processes."""

import threading

import pytest

from conftest import pm


def test_memkv_methods(names):
    n = names()
    kv = pm.memkv()
    assert kv.getEpoch() == -1 and kv.count() == 0 and kv.getAll() == {}
    assert kv.getValue(0) == ("", True) and kv.getChanged(0) == ({}, 0)
    assert not kv.create(n, 3, 8, 12) and pm.last_error() == pm.errc.invalid_layout
    assert not kv.create(n, 0, 8, 14) and pm.last_error() == pm.errc.invalid_argument
    for nl, vl in [(2**63 - 1, 1), (1, 2**63 - 1), (-(2**63), -(2**63)), (0, 22)]:
        assert not kv.create(n, 3, nl, vl) and pm.last_error() == pm.errc.invalid_layout
    assert kv.create(n, 3, 8, 14, True) and not kv.existing() and kv.isOpen()
    assert (kv.count(), kv.maxNameLen(), kv.maxValueLen()) == (3, 8, 14)
    assert kv.setName(0, "alpha") and kv.setName(1, "beta") and kv.setName(2, "gamma")
    assert not kv.setName(5, "x") and not kv.setName(0, "toolongname")
    assert kv.getName(1) == "beta" and kv.getName(9) == ""
    assert kv.findName("gamma") == 2 and kv.findName("nope") == -1
    e0 = kv.getEpoch()
    assert kv.setValue("alpha", "1") and kv.setValue(1, b"2")
    assert kv.getEpoch() == e0 + 2
    assert not kv.setValue(7, "x") and pm.last_error() == pm.errc.invalid_argument
    pm.memmap().open(n + "-none", 1)  # sets open_failed
    assert not kv.setValue("nope", "x") and pm.last_error() == pm.errc.open_failed
    assert not kv.setValue(0, "x" * 15) and pm.last_error() == pm.errc.message_too_large
    e1 = kv.getEpoch()
    assert kv.setAll({"gamma": "3", "nope": "x", "alpha": "y" * 99})
    assert kv.getEpoch() == e1 + 1
    assert kv.setAll({"nope": "x"}) and kv.getEpoch() == e1 + 1
    assert kv.getValue("alpha") == ("1", False) and kv.getValue(2) == ("3", False)
    assert kv.getValue("nope") == ("", True) and kv.getValue(3) == ("", True)
    assert kv.getValueString(1) == "2" and kv.getValueString("gamma") == "3"
    assert kv.getAll() == {"alpha": "1", "beta": "2", "gamma": "3"}
    assert kv.getChanged(e1) == ({"gamma": "3"}, e1 + 1)
    assert kv.getChanged(0, e1) == ({"gamma": "3"}, e1 + 1)
    assert kv.getChanged(0, e1 + 1) == ({}, e1 + 1)
    assert kv.waitForChange(0, e1 + 1) == (False, e1 + 1)
    assert kv.waitForChange(0, e1) == (True, e1 + 1)
    with pytest.raises(TypeError):
        kv.getChanged()
    # pymembus's keyword names
    assert kv.getChanged(epoch=e1) == kv.getChanged(wait_ms=0, epoch=e1) == ({"gamma": "3"}, e1 + 1)
    assert kv.getValue(name="alpha") == kv.getValue(idx=0) == ("1", False)
    assert kv.getValueString(name="gamma") == kv.getValueString(idx=2) == "3"
    assert kv.setValue(name="gamma", value="3") and kv.setValue(idx=2, value="3")
    assert kv.waitForChange(wait_ms=0, epoch=kv.getEpoch())[0] is False
    e1 = kv.getEpoch() - 1
    other = pm.memkv()
    assert other.open(n) and other.existing()
    assert other.getSessionId() == kv.getSessionId() != 0
    assert other.getValue("beta") == ("2", False)
    # a renamed slot is found under its new name (lookups are never stale)
    assert kv.getValue("beta") == ("2", False)
    assert kv.setName(1, "delta") and kv.setName(2, "beta")
    assert kv.getValue("beta") == ("3", False) and kv.getValue("delta") == ("2", False)
    assert kv.setName(1, "beta") and kv.setName(2, "gamma")
    same = pm.memkv()
    assert same.create(n, 3, 8, 14) and same.existing()
    assert not pm.memkv().create(n, 4, 8, 14) and pm.last_error() == pm.errc.size_mismatch
    for h in (same, other, kv):
        h.close()
    assert not pm.memkv().open(n) and pm.last_error() == pm.errc.open_failed


def test_wait_for_change_releases_gil(names):
    n = names()
    kv = pm.memkv()
    assert kv.create(n, 1, 8, 14, True) and kv.setName(0, "k")
    e = kv.getEpoch()
    threading.Timer(0.05, lambda: kv.setValue(0, "v")).start()
    assert kv.waitForChange(5000, e) == (True, e + 1)  # woken, not timed out
    threading.Timer(0.05, lambda: kv.setValue(0, "w")).start()
    assert kv.getChanged(5000, e + 1) == ({"k": "w"}, e + 2)
    kv.close()


def test_cross_process_both_ways(names, peer):
    n = names()
    kv = pm.memkv()
    assert kv.create(n, 2, 8, 14, True)
    kv.setName(0, "from_py")
    kv.setName(1, "from_rs")
    assert kv.setValue("from_py", "python")
    assert peer.run("kv-get", n, "from_py") == "python"
    assert peer.run("kv-set", n, "from_rs", "rust") == "done"
    assert kv.getValue("from_rs") == ("rust", False)
    kv.close()
