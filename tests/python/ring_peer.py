"""A memmsg/memcmd peer in Python with only the standard library, following the wire
specification (sections 2, 4, 5) the way libmembus/pymembus do: map the share, lock its
glibc process-shared mutex through ctypes, append or read frames, broadcast the condition.

Usage:
  ring_peer.py write KIND NAME MSG...      append each MSG (UTF-8) as one message
  ring_peer.py read KIND NAME COUNT        read COUNT messages from ring offset 0 and print
                                           them as JSON lines {"seq": n, "text": "..."}
  ring_peer.py waiters KIND NAME           for each line "wait" on stdin, fork a child that
                                           locks the mutex, prints "waiting PID" and sleeps
                                           in pthread_cond_timedwait (60 s in all, waiting
                                           again when woken earlier), as a libmembus reader
                                           does; exits at end of input
KIND is memmsg or memcmd (memkv too for waiters). Exit status 1 with a message on stderr on
any error.
"""
import ctypes
import json
import mmap
import os
import struct
import sys
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
EOWNERDEAD = 130

LAYOUT = {
    "memmsg": {"mutex": 32, "cond": 72, "ring": 120},
    "memcmd": {"mutex": 40, "cond": 80, "ring": 128},
    "memkv": {"mutex": 40, "cond": 80, "ring": None},
}


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Share:
    def __init__(self, kind, name):
        self.lay = LAYOUT[kind]
        fd = os.open("/dev/shm/" + name.lstrip("/"), os.O_RDWR)
        try:
            self.size = os.fstat(fd).st_size
            self.mm = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.cap = self.i64(0)
        if self.lay["ring"] is not None and (self.cap <= 0 or self.cap + self.lay["ring"] + 46 != self.size):
            raise SystemExit(f"not a {kind} share: capacity {self.cap}, size {self.size}")

    def i64(self, off):
        return struct.unpack_from("<q", self.mm, off)[0]

    def put(self, off, v):
        struct.pack_into("<q", self.mm, off, v)

    def lock(self):
        rc = libc.pthread_mutex_lock(ctypes.c_void_p(self.base + self.lay["mutex"]))
        if rc == EOWNERDEAD:
            libc.pthread_mutex_consistent(ctypes.c_void_p(self.base + self.lay["mutex"]))
        elif rc != 0:
            raise SystemExit(f"pthread_mutex_lock: {rc}")

    def unlock(self):
        libc.pthread_mutex_unlock(ctypes.c_void_p(self.base + self.lay["mutex"]))

    def write(self, payload):
        # Section 4.5: wrap when the frame does not fit; seq, frame, write offset, zero word.
        S, R = self.cap, self.lay["ring"]
        n = len(payload)
        stride = (16 + n + 7) // 8 * 8
        if n == 0 or stride > S:
            raise SystemExit(f"message of {n} bytes does not fit capacity {S}")
        self.lock()
        try:
            w = self.i64(8)
            if w < 0 or stride > S - w:
                if 0 < w < S:
                    self.put(R + w, 0)
                w = 0
            seq = self.i64(16) + 1
            self.put(16, seq)
            self.put(R + w, n)
            self.put(R + w + 8, seq)
            self.mm[R + w + 16:R + w + 16 + n] = payload
            self.put(8, w + stride)
            self.put(R + w + stride, 0)
            libc.pthread_cond_broadcast(ctypes.c_void_p(self.base + self.lay["cond"]))
        finally:
            self.unlock()
        return seq

    def read_from_start(self, count, timeout=10.0):
        # Section 4.6, polling with the lock held only while reading.
        S, R = self.cap, self.lay["ring"]
        r, out, deadline = 0, [], time.monotonic() + timeout
        while len(out) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"timeout after {len(out)} of {count} messages")
            self.lock()
            try:
                if r == self.i64(8):
                    got = None
                else:
                    n = self.i64(R + r)
                    if n <= 0 or (16 + n + 7) // 8 * 8 > S - r:
                        r = 0
                        n = self.i64(R)
                    seq = self.i64(R + r + 8)
                    got = (seq, bytes(self.mm[R + r + 16:R + r + 16 + n]))
                    r += (16 + n + 7) // 8 * 8
            finally:
                self.unlock()
            if got is None:
                time.sleep(0.001)
            else:
                out.append(got)
        return out


def wait_asleep(share, seconds):
    """Sleep in the share's condition the way libmembus's read does (after the caller locked),
    for up to `seconds` in all, then unlock. A wake-up before that (a broadcast for a write
    made before this waiter arrived can land after it, and glibc may wake spuriously) waits
    again, as a libmembus reader whose message has not come does, so the waiter stays asleep
    in the condition until it is killed."""
    until = time.time() + seconds
    ts = Timespec(int(until), int((until % 1) * 1e9))
    cond = ctypes.c_void_p(share.base + share.lay["cond"])
    mutex = ctypes.c_void_p(share.base + share.lay["mutex"])
    while time.time() < until:
        libc.pthread_cond_timedwait(cond, mutex, ctypes.byref(ts))
    share.unlock()


def waiters(share):
    for line in sys.stdin:
        if line.strip() != "wait":
            continue
        pid = os.fork()
        if pid == 0:
            share.lock()
            print(f"waiting {os.getpid()}", flush=True)
            wait_asleep(share, 60.0)
            os._exit(0)
    # Reap whatever is left; the parent kills the waiters it was told about.
    try:
        while True:
            os.wait()
    except ChildProcessError:
        pass


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    op, kind, name = argv[1], argv[2], argv[3]
    share = Share(kind, name)
    if op == "write":
        for m in argv[4:]:
            print(share.write(m.encode()))
    elif op == "waiters":
        waiters(share)
    elif op == "read":
        for seq, payload in share.read_from_start(int(argv[4])):
            print(json.dumps({"seq": seq, "text": payload.decode("utf-8", "backslashreplace")}))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
