
# ---- runtime helpers (the same in every generated module) -----------------------------

import dataclasses
import enum
import json
import math
import re
import struct
from typing import Any, List, Optional, Tuple

import pymembus

_pm = pymembus.pymembus if hasattr(pymembus, "pymembus") else pymembus


class SchemaError(Exception):
    """The share does not match this module's schema (the message names each difference)."""


_INT = {
    "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1), "usize": (0, 2**64 - 1), "u128": (0, 2**128 - 1),
    "i8": (-(2**7), 2**7 - 1), "i16": (-(2**15), 2**15 - 1), "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1), "isize": (-(2**63), 2**63 - 1),
    "i128": (-(2**127), 2**127 - 1),
}
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_F32_MAX = 3.4028234663852886e38


def _allowed(f):
    t = f["type"]
    if t in _INT:
        a = "an integer from %d to %d" % _INT[t]
    elif t in ("f32", "f64"):
        a = "a number (%s)" % t
    elif t == "bool":
        a = "True or False"
    elif t == "char":
        a = "exactly one character"
    elif t == "enum":
        a = "one of " + ", ".join(f["variants"])
    else:
        a = "text of at most %d bytes" % f["max_len"]
    return a + (", or None" if f["optional"] else "")


def _refuse(f, value, why=""):
    raise ValueError(
        "field `%s` (slot %r) does not accept %r%s: expected %s"
        % (f["name"], f["slot"], value, why, _allowed(f))
    )


def _f32_round(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _f32_text(v):
    if math.isnan(v) or math.isinf(v):
        return repr(v)
    r = _f32_round(v)
    for p in range(1, 10):
        s = "%.*g" % (p, r)
        if _f32_round(float(s)) == r:
            return s
    return repr(r)


def _encode(f, v):
    """A Python value -> the slot text a Rust reader parses; ValueError naming the field."""
    t = f["type"]
    if v is None:
        if f["optional"]:
            return ""
        _refuse(f, v)
    if t in _INT:
        if isinstance(v, bool) or not isinstance(v, int):
            _refuse(f, v)
        lo, hi = _INT[t]
        if not lo <= v <= hi:
            _refuse(f, v, " (out of range)")
        s = str(v)
    elif t in ("f32", "f64"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _refuse(f, v)
        v = float(v)
        if t == "f32":
            if math.isfinite(v) and abs(v) > _F32_MAX:
                _refuse(f, v, " (out of range)")
            s = _f32_text(v)
        else:
            s = repr(v)
    elif t == "bool":
        if not isinstance(v, bool):
            _refuse(f, v)
        s = "true" if v else "false"
    elif t == "char":
        if not isinstance(v, str) or len(v) != 1:
            _refuse(f, v)
        s = v
    elif t == "enum":
        if isinstance(v, enum.Enum):
            v = v.value
        if not isinstance(v, str) or v not in f["variants"]:
            _refuse(f, v)
        s = v
    else:
        if not isinstance(v, str):
            _refuse(f, v)
        s = v
    if "\0" in s:
        _refuse(f, v, " (it contains a NUL character)")
    n = len(s.encode("utf-8"))
    if n > f["max_len"]:
        _refuse(f, v, " (%d bytes, longer than max_len = %d)" % (n, f["max_len"]))
    if s == "" and f["optional"] and t in ("string", "text"):
        _refuse(f, v, " (empty text reads back as None)")
    return s


def _decode(f, s, enum_cls=None):
    """A slot text -> the Python value; ValueError naming the field."""
    t = f["type"]
    if s == "" and f["optional"]:
        return None

    def bad():
        raise ValueError(
            "field `%s` (slot %r) holds %r, which does not parse: expected %s"
            % (f["name"], f["slot"], s, _allowed(f))
        )

    if t in _INT:
        if not _INT_RE.match(s):
            bad()
        v = int(s)
        lo, hi = _INT[t]
        if not lo <= v <= hi:
            bad()
        return v
    if t in ("f32", "f64"):
        try:
            return float(s.strip())
        except ValueError:
            bad()
    if t == "bool":
        if s in ("true", "True", "1"):
            return True
        if s in ("false", "False", "0"):
            return False
        bad()
    if t == "char":
        if len(s) != 1:
            bad()
        return s
    if t == "enum":
        if s not in f["variants"]:
            bad()
        return enum_cls(s) if enum_cls is not None else s
    return s


def _read_store_schema(name):
    """The description a membus creator published beside share `name`, or None."""
    try:
        with open("/dev/shm" + name + ".membus-schema", "rb") as fh:
            data = fh.read(16 + (1 << 20))
    except OSError:
        return None
    if len(data) < 16 or data[:8] != b"MBSCHEM1":
        raise SchemaError("share %s: its schema object is not a membus schema object" % name)
    n = int.from_bytes(data[8:16], "little")
    if n == 0 or n > len(data) - 16:
        raise SchemaError("share %s: its schema object is truncated or corrupt" % name)
    try:
        return json.loads(data[16 : 16 + n].decode("utf-8"))
    except ValueError as e:
        raise SchemaError("share %s: its schema description is corrupt: %s" % (name, e))


def _compare_fields(mine, theirs):
    """(differences, additions) between this module's fields and a store's description."""
    diffs, adds = [], []
    for i, m in enumerate(mine):
        if i >= len(theirs):
            if m.get("default") is None:
                diffs.append("field `%s` (slot %d) is missing from the store and has no default" % (m["name"], i))
            continue
        t = theirs[i]
        if t.get("name") != m["name"]:
            diffs.append("slot %d: field `%s` renamed or removed (the store has `%s`)" % (i, m["name"], t.get("name")))
            continue
        if t.get("slot") != m["slot"]:
            diffs.append("field `%s`: slot renamed from %r to %r" % (m["name"], m["slot"], t.get("slot")))
        if (t.get("type"), bool(t.get("optional")), t.get("enum_name")) != (m["type"], m["optional"], m.get("enum_name")):
            diffs.append("field `%s`: type changed from %s to %s" % (m["name"], m["rust"], t.get("rust")))
            continue
        only_mine = [v for v in m.get("variants", []) if v not in t.get("variants", [])]
        only_theirs = [v for v in t.get("variants", []) if v not in m.get("variants", [])]
        if only_mine and only_theirs:
            for v in only_mine:
                diffs.append("field `%s`: enum variant %r renamed or removed" % (m["name"], v))
        else:
            for v in only_theirs:
                adds.append("field `%s`: new enum variant %r" % (m["name"], v))
        if int(t.get("max_len", 0)) < m["max_len"]:
            diffs.append("field `%s`: bound shrank from %d to %s bytes" % (m["name"], m["max_len"], t.get("max_len")))
    for i, t in enumerate(theirs[len(mine):], start=len(mine)):
        if t.get("default") is None:
            diffs.append("field `%s` (slot %d) appended without a default" % (t.get("name"), i))
        else:
            adds.append("field `%s` (slot %d, %s) appended" % (t.get("name"), i, t.get("rust")))
    return diffs, adds


class _KvBase:
    """Typed access to a memkv store over pymembus (generated subclasses add the fields)."""

    _FIELDS: List[dict] = []
    _FINGERPRINT: Optional[str] = None
    _ENUMS: dict = {}

    def __init__(self, name: str):
        self.name = name
        self.additions: List[str] = []
        self._kv = _pm.memkv()
        if not self._kv.open(name):
            e = _pm.last_error()
            raise OSError("share %s: cannot open the store: %s" % (name, _pm.last_error_message(e)))
        try:
            self._check()
        except BaseException:
            self._kv.close()
            raise

    def _check(self):
        n = self._kv.count()
        names = [self._kv.getName(i) for i in range(n)]
        mine = [f["slot"] for f in self._FIELDS]
        want = mine + (["__schema"] if self._FINGERPRINT is not None else [])
        fp = self._kv.getValueString(n - 1) if n else ""
        if names == want and (self._FINGERPRINT is None or fp == self._FINGERPRINT):
            # The description still tells what the fingerprint cannot see (enum variants);
            # an unreadable one does not stand in the way of a matching store.
            try:
                theirs = _read_store_schema(self.name) if self._FINGERPRINT is not None else None
            except SchemaError:
                theirs = None
            if theirs is None:
                return
            diffs, adds = _compare_fields(self._FIELDS, theirs.get("fields", []))
            if diffs:
                raise SchemaError("share %s does not match %s (created for %s): %s"
                                  % (self.name, self._TYPE, theirs.get("type_name"), "; ".join(diffs)))
            self.additions = adds
            return
        theirs = _read_store_schema(self.name) if self._FINGERPRINT is not None else None
        if theirs is None:
            diffs = []
            for i in range(max(len(want), len(names))):
                w = want[i] if i < len(want) else None
                f = names[i] if i < len(names) else None
                if w != f:
                    diffs.append("slot %d: expected %r, found %r" % (i, w, f))
            if not diffs:
                diffs.append("schema fingerprint: expected %s, found %r (field types differ)" % (self._FINGERPRINT, fp))
            raise SchemaError("share %s does not match %s: %s" % (self.name, self._TYPE, "; ".join(diffs)))
        diffs, adds = _compare_fields(self._FIELDS, theirs.get("fields", []))
        if names != [f.get("slot") for f in theirs.get("fields", [])] + ["__schema"]:
            diffs.append("the store's schema description does not describe its slots (stale or foreign)")
        if diffs:
            raise SchemaError("share %s does not match %s (created for %s): %s"
                              % (self.name, self._TYPE, theirs.get("type_name"), "; ".join(diffs)))
        self.additions = adds
        # Fields of this module that an older schema's store lacks read as their default.
        self._present = min(len(self._FIELDS), len(theirs.get("fields", [])))
        self.defaulted = [f["name"] for f in self._FIELDS[self._present:]]

    _present = None
    defaulted: List[str] = []

    def close(self) -> None:
        self._kv.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def epoch(self) -> int:
        return self._kv.getEpoch()

    def _missing(self, i):
        return self._present is not None and i >= self._present

    def _get(self, i):
        f = self._FIELDS[i]
        if self._missing(i):
            return _decode(f, f["default"], self._ENUMS.get(f.get("enum_name")))
        s, stale = self._kv.getValue(i)
        if stale:
            raise TimeoutError("share %s: field `%s`: every read overlapped a write" % (self.name, f["name"]))
        return _decode(f, s, self._ENUMS.get(f.get("enum_name")))

    def _set(self, i, v) -> int:
        s = _encode(self._FIELDS[i], v)
        if self._missing(i):
            raise ValueError("field `%s` is not in this store (an older schema created it); it reads as its default and cannot be written"
                             % self._FIELDS[i]["name"])
        if not self._kv.setValue(i, s):
            e = _pm.last_error()
            raise OSError("share %s: field `%s`: write failed: %s"
                          % (self.name, self._FIELDS[i]["name"], _pm.last_error_message(e)))
        return self._kv.getEpoch()

    def _snapshot(self):
        raw = self._kv.getAll()
        out = []
        for i, f in enumerate(self._FIELDS):
            text = f["default"] if self._missing(i) else raw.get(f["slot"], "")
            out.append(_decode(f, text, self._ENUMS.get(f.get("enum_name"))))
        return out

    def _store(self, values) -> int:
        texts = {f["slot"]: _encode(f, v) for i, (f, v) in enumerate(zip(self._FIELDS, values))
                 if not self._missing(i)}
        if not self._kv.setAll(texts):
            e = _pm.last_error()
            raise OSError("share %s: write failed: %s" % (self.name, _pm.last_error_message(e)))
        return self._kv.getEpoch()


def _check_json(ty, v, where):
    """Checks a message payload value against its JSON type; ValueError naming `where`."""
    if ty.startswith("option<"):
        return None if v is None else _check_json(ty[7:-1], v, where)
    if ty.startswith("array<"):
        if not isinstance(v, (list, tuple)):
            raise ValueError("%s: expected a list, found %r" % (where, v))
        return [_check_json(ty[6:-1], x, "%s[%d]" % (where, i)) for i, x in enumerate(v)]
    if ty == "any":
        return v
    if ty in _INT:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("%s: expected an integer (%s), found %r" % (where, ty, v))
        lo, hi = _INT[ty]
        if not lo <= v <= hi:
            raise ValueError("%s: %r is out of range for %s (%d to %d)" % (where, v, ty, lo, hi))
        return v
    if ty in ("f32", "f64"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("%s: expected a number (%s), found %r" % (where, ty, v))
        if not math.isfinite(v):
            raise ValueError("%s: %r has no JSON form" % (where, v))
        return float(v)
    if ty == "bool":
        if not isinstance(v, bool):
            raise ValueError("%s: expected True or False, found %r" % (where, v))
        return v
    if ty == "char":
        if not isinstance(v, str) or len(v) != 1:
            raise ValueError("%s: expected one character, found %r" % (where, v))
        return v
    if ty == "string":
        if not isinstance(v, str):
            raise ValueError("%s: expected a str, found %r" % (where, v))
        return v
    return v


def _dumps(v) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _encode_msg(tagged, wire, shape, fields, values, rust):
    checked = [
        _check_json(t, v, "variant %r field %s" % (wire, n or i))
        for i, ((n, t), v) in enumerate(zip(fields, values))
    ]
    if shape == "unit":
        return wire.encode("utf-8")
    if shape == "newtype":
        payload = checked[0]
    elif shape == "tuple":
        payload = checked
    else:
        payload = {n: v for (n, _), v in zip(fields, checked)}
    return _dumps({wire: payload} if tagged else payload)


def _decode_msg(tagged, variants, data):
    """bytes -> (variant spec, payload values in field order); ValueError saying why."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    names = ", ".join(v[0] for v in variants)
    if tagged:
        if data[:1] == b"{":
            try:
                obj = json.loads(data.decode("utf-8"))
            except ValueError as e:
                raise ValueError("not JSON: %s" % e)
            if not isinstance(obj, dict) or len(obj) != 1:
                raise ValueError("a tagged message is an object with exactly one key")
            (key, payload), = obj.items()
        else:
            key, payload = data.decode("utf-8"), None
        spec = next((v for v in variants if v[0] == key), None)
        if spec is None:
            raise ValueError("unknown variant %r; expected one of: %s" % (key, names))
    else:
        spec = variants[0]
        if spec[2] == "unit":
            if data.decode("utf-8") != spec[0]:
                raise ValueError("expected %r" % spec[0])
            payload = None
        else:
            try:
                payload = json.loads(data.decode("utf-8"))
            except ValueError as e:
                raise ValueError("not JSON: %s" % e)
    wire, _rust, shape, fields = spec
    if shape == "unit":
        if payload is not None:
            raise ValueError("variant %r carries no payload" % wire)
        return spec, []
    if shape == "newtype":
        return spec, [_check_json(fields[0][1], payload, "variant %r field 0" % wire)]
    if shape == "tuple":
        if not isinstance(payload, list) or len(payload) != len(fields):
            raise ValueError("variant %r: expected a list of %d values" % (wire, len(fields)))
        return spec, [_check_json(t, x, "variant %r field %d" % (wire, i)) for i, ((_, t), x) in enumerate(zip(fields, payload))]
    if not isinstance(payload, dict):
        raise ValueError("variant %r: expected an object" % wire)
    out = []
    for n, t in fields:
        if n not in payload and not t.startswith("option<"):
            raise ValueError("variant %r field %s: missing" % (wire, n))
        out.append(_check_json(t, payload.get(n), "variant %r field %s" % (wire, n)))
    return spec, out

# ---- end of runtime helpers -----------------------------------------------------------
