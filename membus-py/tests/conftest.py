"""Shared helpers for the membus Python module's tests.

Share names start with `/membus-test-` and every test removes what it creates. The Rust
side of the cross-process tests is the test package's `membus-py-peer` binary
(`MEMBUS_PY_PEER`, or built with cargo on first use).
"""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

import pymembus

pm = pymembus.pymembus if hasattr(pymembus, "pymembus") else pymembus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def names():
    """Unique share names; every one is removed afterwards, whatever the test did."""
    made = []

    def make(tag="s"):
        n = f"/membus-test-py-{tag}-{uuid.uuid4().hex[:12]}"
        made.append(n)
        return n

    yield make
    for n in made:
        pm.memmap.remove(n)


@pytest.fixture(scope="session")
def peer_path():
    p = os.environ.get("MEMBUS_PY_PEER")
    if not p:
        subprocess.run(
            ["cargo", "build", "-q", "-p", "membus-tests", "--bin", "membus-py-peer"],
            cwd=REPO,
            check=True,
        )
        p = str(REPO / "target" / "debug" / "membus-py-peer")
    assert os.path.exists(p), p
    return p


class Peer:
    """A Rust child process (membus-py-peer)."""

    def __init__(self, path):
        self.path = path

    def run(self, *args):
        """Runs a role to completion and returns its result line."""
        r = subprocess.run(
            [self.path, *map(str, args)], capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def serve(self, *args):
        """Starts a role that owns a share; returns (process, result line). Write a line
        to its stdin (or call `stop`) to let it exit and remove the share."""
        p = subprocess.Popen(
            [self.path, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = p.stdout.readline().strip()
        if not line:
            p.kill()
            raise AssertionError(p.stderr.read())
        return p, line


def stop(p):
    p.stdin.write("\n")
    p.stdin.flush()
    assert p.wait(timeout=30) == 0, p.stderr.read()


@pytest.fixture
def peer(peer_path):
    return Peer(peer_path)
