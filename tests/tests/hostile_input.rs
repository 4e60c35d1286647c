//! Hostile inputs that used to abort, panic or stall (issue "No peer can wedge a share"):
//! lock bytes glibc would assert on, condition words that would block untimed, media
//! sequence words at the extremes, absurd creation arguments, and a memkv slot whose seq
//! stays odd. Each case must end in a value or a clear error; an abort or a panic fails
//! the whole test binary.

use std::time::Duration;

use membus::layout::media::{AudioFormat, VideoFormat};
use membus::memaud::{AudioParams, AudioReader, AudioWriter};
use membus::memcmd::MemCmd;
use membus::memkv::{KvOptions, MemKv};
use membus::memmsg::{Reader, Writer};
use membus::mempkt::{PacketParams, PacketReader, PacketWriter, RecordMeta};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{ErrorKind, Next, QueueOptions, ReadFrom, Received};
use membus_tests::{RawShare, ShmGuard};

/// Mutex and condition offsets of each lock-based share type (spec §4–§6).
const MSG_MUTEX: usize = 32;
const CMD_MUTEX: usize = 40;
const KV_MUTEX: usize = 40;
/// Offsets inside the glibc objects.
const KIND: usize = 16;
const COND_G_REFS: usize = 16;
const COND_G1_ORIG: usize = 32;
const COND_WREFS: usize = 36;
const MUTEX_LEN: usize = 40;

/// A share's write call, whichever ring type it is.
type WriteFn = dyn Fn(&[u8]) -> membus::Result<u64>;

fn put_u32(raw: &RawShare, off: usize, v: u32) {
    // Keep the other half of the aligned i64 word as it is.
    let word = off & !7;
    let mut b = raw.get_i64(word).to_le_bytes();
    b[off - word..off - word + 4].copy_from_slice(&v.to_le_bytes());
    raw.put_i64(word, i64::from_le_bytes(b));
}

fn get_u32(raw: &RawShare, off: usize) -> u32 {
    let word = off & !7;
    let b = raw.get_i64(word).to_le_bytes();
    u32::from_le_bytes(b[off - word..off - word + 4].try_into().unwrap())
}

fn short_locks() -> QueueOptions {
    QueueOptions::new().lock_timeout(Duration::from_millis(200))
}

fn assert_invalid<T>(r: membus::Result<T>, field: &str, share: &str) {
    let Err(e) = r else {
        panic!("hostile lock bytes must be refused ({field})")
    };
    assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}");
    assert!(e.to_string().contains(field), "{e} should name {field}");
    assert_eq!(e.share(), Some(share), "{e}");
}

/// The mutex kinds that made glibc abort (PP 0x40 in tpp.c, PI 0x20 in
/// pthread_mutex_timedlock.c), and other kinds no peer creates.
const HOSTILE_KINDS: [u32; 6] = [0x40, 0x20, 0xc0, 0xa0, 0x81, 0x1];

#[test]
fn hostile_mutex_kinds_are_refused_at_attach_and_at_lock() {
    for &kind in &HOSTILE_KINDS {
        // memkv
        let g = ShmGuard::new("kv-kind");
        let kv = MemKv::create_named(g.name(), &["a"], 8, 14).unwrap();
        let raw = RawShare::open(g.name()).unwrap();
        let old = get_u32(&raw, KV_MUTEX + KIND);
        put_u32(&raw, KV_MUTEX + KIND, kind);
        assert_invalid(MemKv::attach(g.name()), "mutex __kind", g.name());
        assert_invalid(kv.set(0, "x"), "mutex __kind", g.name());
        // Waiting takes no lock, and lock-free reads still work.
        assert_eq!(
            kv.wait_for_change(i64::MAX, Duration::from_millis(5))
                .unwrap(),
            None
        );
        assert_eq!(kv.get(0).unwrap().value, b"");
        put_u32(&raw, KV_MUTEX + KIND, old);
        kv.set(0, "y").unwrap();

        // memcmd
        let g = ShmGuard::new("cmd-kind");
        let cmd = MemCmd::create_with(g.name(), 256, &short_locks()).unwrap();
        let raw = RawShare::open(g.name()).unwrap();
        put_u32(&raw, CMD_MUTEX + KIND, kind);
        assert_invalid(MemCmd::attach(g.name()), "mutex __kind", g.name());
        assert_invalid(cmd.write(b"go"), "mutex __kind", g.name());

        // memmsg
        let g = ShmGuard::new("msg-kind");
        let w = Writer::create_with(g.name(), 256, &short_locks()).unwrap();
        let mut r = Reader::attach_with(g.name(), &short_locks()).unwrap();
        let raw = RawShare::open(g.name()).unwrap();
        put_u32(&raw, MSG_MUTEX + KIND, kind);
        assert_invalid(Reader::attach(g.name()), "mutex __kind", g.name());
        assert_invalid(w.write(b"go"), "mutex __kind", g.name());
        // A reader with nothing to read waits without the lock: a plain timeout.
        assert_eq!(r.read(Duration::from_millis(5)).unwrap(), Received::Timeout);
    }
}

#[test]
fn impossible_lock_words_are_refused() {
    let g = ShmGuard::new("kv-lockword");
    let kv = MemKv::create_named(g.name(), &["a"], 8, 14).unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    // __count = 7 on a non-recursive mutex.
    put_u32(&raw, KV_MUTEX + 4, 7);
    assert_invalid(kv.set(0, "x"), "mutex __count", g.name());
    put_u32(&raw, KV_MUTEX + 4, 0);
    // A robust lock word with only FUTEX_WAITERS (no owner, no owner-died).
    put_u32(&raw, KV_MUTEX, 0x8000_0000);
    assert_invalid(kv.set(0, "x"), "mutex __lock", g.name());
    put_u32(&raw, KV_MUTEX, 0);
    kv.set(0, "ok").unwrap();
    assert_eq!(kv.get(0).unwrap().value, b"ok");
}

#[test]
fn hostile_condition_words_are_refused_not_waited_on() {
    let cond = |mutex: usize| mutex + MUTEX_LEN;
    // CLOCK_MONOTONIC bit: a CLOCK_REALTIME deadline would mean a wait of decades.
    let g = ShmGuard::new("kv-clock");
    let kv = MemKv::create_with(
        g.name(),
        &["a"],
        8,
        14,
        &KvOptions::new().lock_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    // membus never waits on the condition (its waiters sleep on futex words) and only
    // broadcasts it, off the writer's thread, when it is valid: hostile condition words
    // cost nothing to a handle that has it open, and a new handle refuses the share.
    put_u32(&raw, cond(KV_MUTEX) + COND_WREFS, 3);
    assert_eq!(
        kv.wait_for_change(i64::MAX, Duration::from_millis(20))
            .unwrap(),
        None
    );
    assert_invalid(MemKv::attach(g.name()), "CLOCK_MONOTONIC", g.name());
    // Not process-shared.
    put_u32(&raw, cond(KV_MUTEX) + COND_WREFS, 0);
    assert_invalid(MemKv::attach(g.name()), "condition __wrefs", g.name());
    kv.set(0, "x").unwrap();
    put_u32(&raw, cond(KV_MUTEX) + COND_WREFS, 1);
    kv.set(0, "y").unwrap();
    MemKv::attach(g.name()).unwrap();

    // The condition's internal lock held for good (a peer died inside it), and group
    // references that no waiter holds: a broadcast or a wait would block in an untimed
    // futex wait. Writes go on; attaching refuses the share.
    for (tag, mutex) in [("msg", MSG_MUTEX), ("cmd", CMD_MUTEX)] {
        let g = ShmGuard::new(tag);
        let w: Box<WriteFn> = if mutex == MSG_MUTEX {
            let w = Writer::create_with(g.name(), 256, &short_locks()).unwrap();
            Box::new(move |m| w.write(m))
        } else {
            let c = MemCmd::create_with(g.name(), 256, &short_locks()).unwrap();
            Box::new(move |m| c.write(m))
        };
        let attach = |name: &str| {
            if mutex == MSG_MUTEX {
                Reader::attach(name).map(|_| ())
            } else {
                MemCmd::attach(name).map(|_| ())
            }
        };
        let raw = RawShare::open(g.name()).unwrap();
        put_u32(&raw, cond(mutex) + COND_G1_ORIG, (4 << 2) | 1);
        assert_invalid(attach(g.name()), "condition __g1_orig_size", g.name());
        assert_eq!(w(b"hello").unwrap(), 1);
        put_u32(&raw, cond(mutex) + COND_G1_ORIG, 0);
        put_u32(&raw, cond(mutex) + COND_G_REFS + 4, 0x80);
        assert_invalid(attach(g.name()), "condition __g_refs", g.name());
        assert_eq!(w(b"hello").unwrap(), 2);
        put_u32(&raw, cond(mutex) + COND_G_REFS + 4, 0);
        attach(g.name()).unwrap();
        assert_eq!(w(b"hello").unwrap(), 3);
    }
}

/// Writes `v` into the global sequence (and optionally the write pointer and every slot
/// stamp) of a media share, then attaches readers both ways and reads: never a panic.
fn poke_media<R>(
    name: &str,
    stamps: &[usize],
    attach: impl Fn(ReadFrom) -> membus::Result<R>,
    mut read: impl FnMut(&mut R) -> membus::Result<bool>,
) -> usize {
    const SEQ: usize = 40;
    const PTR: usize = 32;
    let raw = RawShare::open(name).unwrap();
    let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    let mut outcomes = 0;
    for &seq in &extremes {
        for &stamp in &[
            None,
            Some(i64::MIN),
            Some(i64::MAX),
            Some(seq),
            Some(seq.wrapping_add(1)),
        ] {
            for &ptr in &[0i64, -1, i64::MAX] {
                raw.put_i64(SEQ, seq);
                raw.put_i64(PTR, ptr);
                if let Some(s) = stamp {
                    for &at in stamps {
                        raw.put_i64(at, s);
                    }
                }
                for from in [ReadFrom::Oldest, ReadFrom::Newest] {
                    match attach(from) {
                        Ok(mut r) => {
                            for _ in 0..4 {
                                match read(&mut r) {
                                    Ok(_) => {}
                                    Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}"),
                                }
                            }
                        }
                        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}"),
                    }
                    outcomes += 1;
                }
            }
        }
    }
    // Size and slot-count words at the extremes: validated at attach.
    raw.put_i64(SEQ, 1);
    raw.put_i64(PTR, 0);
    for at in [24usize, 56] {
        let orig = raw.get_i64(at);
        for v in [
            i64::MIN,
            -1,
            0,
            i64::MAX,
            orig.wrapping_add(1),
            orig.wrapping_mul(2),
        ] {
            raw.put_i64(at, v);
            for from in [ReadFrom::Oldest, ReadFrom::Newest] {
                if let Err(e) = attach(from) {
                    assert_eq!(e.kind(), ErrorKind::InvalidLayout, "word {at} = {v}: {e}");
                }
                outcomes += 1;
            }
        }
        raw.put_i64(at, orig);
    }
    // Negative global sequences are refused with a clear error.
    raw.put_i64(SEQ, i64::MIN);
    raw.put_i64(PTR, 0);
    let e = attach(ReadFrom::Oldest)
        .err()
        .expect("negative seq refused");
    assert!(e.to_string().contains("global sequence"), "{e}");
    outcomes
}

#[test]
fn media_sequence_words_at_the_extremes_never_panic() {
    // memvid
    let g = ShmGuard::new("vid-seq");
    let mut w =
        VideoWriter::create(g.name(), &VideoParams::new(8, 4, VideoFormat::Gray8, 30, 3)).unwrap();
    for _ in 0..4 {
        w.frame().fill(1).unwrap();
        w.publish().unwrap();
    }
    let l = w.layout().clone();
    let stamps: Vec<usize> = (0..3).map(|i| l.frames.slot(i) + 32).collect();
    let n = poke_media(
        g.name(),
        &stamps,
        |from| {
            VideoReader::attach_with(
                g.name(),
                &membus::memvid::ReaderOptions { from, expect: None },
            )
        },
        |r| Ok(matches!(r.next()?, Next::Frame(_))),
    );
    assert!(n > 100);

    // memaud
    let g = ShmGuard::new("aud-seq");
    let mut w = AudioWriter::create(
        g.name(),
        &AudioParams::new(2, AudioFormat::S16le, 48000, 100, 3),
    )
    .unwrap();
    for _ in 0..4 {
        w.buffer().fill(1).unwrap();
        w.publish().unwrap();
    }
    let l = w.layout().clone();
    let stamps: Vec<usize> = (0..3).map(|i| l.frames.slot(i) + 24).collect();
    poke_media(
        g.name(),
        &stamps,
        |from| {
            AudioReader::attach_with(
                g.name(),
                &membus::memaud::ReaderOptions { from, expect: None },
            )
        },
        |r| Ok(matches!(r.next()?, Next::Frame(_))),
    );

    // mempkt
    let g = ShmGuard::new("pkt-seq");
    let mut w = PacketWriter::create(g.name(), &PacketParams::new(4, 4096, 512)).unwrap();
    for i in 0..5u8 {
        w.write(&[i; 50], &RecordMeta::default()).unwrap();
    }
    let l = *w.layout();
    let stamps: Vec<usize> = (0..4).map(|i| l.desc(i) + 56).collect();
    let mut buf = Vec::new();
    let mut meta = Vec::new();
    poke_media(
        g.name(),
        &stamps,
        |from| {
            PacketReader::attach_with(
                g.name(),
                &membus::mempkt::ReaderOptions { from, expect: None },
            )
        },
        |r| Ok(matches!(r.next_into(&mut buf, &mut meta)?, Next::Frame(_))),
    );
}

#[test]
fn absurd_creation_arguments_are_refused_without_allocating() {
    let g = ShmGuard::new("absurd");
    // 10^12 slots: a 16 TB Vec of names used to abort the process before any check.
    let e = MemKv::create(g.name(), 1_000_000_000_000, 30, 50).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::CreateFailed | ErrorKind::InvalidArgument
        ),
        "{e}"
    );
    for (c, n, v) in [
        (usize::MAX, 30, 50),
        (1, usize::MAX, 50),
        (1, 30, usize::MAX),
        (usize::MAX / 2, usize::MAX / 2, usize::MAX / 2),
        (1 << 40, 1 << 20, 1 << 20),
    ] {
        let e = MemKv::create(g.name(), c, n, v).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "({c}, {n}, {v}): {e}"
        );
    }
    for cap in [usize::MAX, i64::MAX as usize, 1 << 50] {
        let e = Writer::create(g.name(), cap)
            .err()
            .expect("absurd capacity refused");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "{cap}: {e}"
        );
        let e = MemCmd::create(g.name(), cap)
            .err()
            .expect("absurd capacity refused");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "{cap}: {e}"
        );
    }
    for (wd, ht, bufs) in [
        (u32::MAX, u32::MAX, u32::MAX),
        (1 << 20, 1 << 20, 64),
        (1, 1, u32::MAX),
    ] {
        let e = VideoWriter::create(
            g.name(),
            &VideoParams::new(wd, ht, VideoFormat::Rgba32, 30, bufs),
        )
        .err()
        .expect("absurd video geometry refused");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "{wd}x{ht}x{bufs}: {e}"
        );
    }
    let e = AudioWriter::create(
        g.name(),
        &AudioParams::new(u32::MAX, AudioFormat::S32le, u32::MAX, 1, u32::MAX),
    )
    .err()
    .expect("absurd audio geometry refused");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::CreateFailed | ErrorKind::InvalidArgument
        ),
        "{e}"
    );
    for (bufs, arena, maxrec) in [
        (u32::MAX, usize::MAX, usize::MAX),
        (4, 1 << 50, 512),
        (u32::MAX, 4096, 512),
    ] {
        let e = PacketWriter::create(g.name(), &PacketParams::new(bufs, arena, maxrec))
            .err()
            .expect("absurd packet geometry refused");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "{bufs}/{arena}/{maxrec}: {e}"
        );
    }
    for size in [usize::MAX, i64::MAX as usize, 1 << 50] {
        let e = membus::MemMap::create(g.name(), size)
            .err()
            .expect("absurd memmap size refused");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::CreateFailed | ErrorKind::InvalidArgument
            ),
            "{size}: {e}"
        );
    }
    // Nothing was left behind by the refused creations.
    assert!(!std::path::Path::new(&format!("/dev/shm{}", g.name())).exists());
}

#[test]
fn an_odd_slot_seq_is_reported_not_stalled_on() {
    let g = ShmGuard::new("kv-odd");
    let kv = MemKv::create_with(
        g.name(),
        &["a", "b", "c"],
        8,
        14,
        &KvOptions::new().lock_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    kv.set(0, "zero").unwrap();
    kv.set(1, "one").unwrap();
    kv.set(2, "two").unwrap();
    // Slot 1's seq forced odd, as a writer that died mid-write leaves it (or a hostile
    // peer). Slot layout: header 128, stride 18 + 8 + 14 = 40.
    let raw = RawShare::open(g.name()).unwrap();
    let seq_at = 128 + 40;
    let old = raw.get_i64(seq_at);
    raw.put_i64(seq_at, old | 1);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..20 {
                    let v = kv.get(1).unwrap();
                    assert!(v.stale, "an odd seq must be reported stale");
                    let v = kv.get(0).unwrap();
                    assert_eq!((v.value.as_slice(), v.stale), (&b"zero"[..], false));
                    let e = kv.snapshot().unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}");
                    assert!(e.to_string().contains("slot 1"), "{e}");
                    let ch = kv.changed_since(0).unwrap();
                    let stale: Vec<(usize, bool)> =
                        ch.changes.iter().map(|c| (c.index, c.stale)).collect();
                    assert_eq!(stale, [(0, false), (1, true), (2, false)]);
                }
            });
        }
    });
    raw.put_i64(seq_at, old);
    assert_eq!(kv.snapshot().unwrap().values[1], b"one");
}

/// A condition image no validation can tell from a live one: `__wrefs` claims one waiter
/// and `__g_refs` of the group a broadcast must quiesce holds one reference, but no waiter
/// exists (a dead waiter leaves exactly this). glibc 2.36's `pthread_cond_broadcast` then
/// waits for that reference in an untimed futex wait. membus broadcasts for foreign
/// waiters on a helper thread, without the mutex, so only that helper waits; the writer
/// returns. The watchdog keeps a regression from hanging the suite.
#[test]
fn a_condition_with_a_phantom_waiter_does_not_wedge_a_writer() {
    const COND: usize = KV_MUTEX + MUTEX_LEN;
    let g = ShmGuard::new("kv-phantom");
    let kv = MemKv::create_with(
        g.name(),
        &["a"],
        8,
        14,
        &KvOptions::new().lock_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    put_u32(&raw, COND + COND_WREFS, 1 | (1 << 3)); // one waiter reference
    put_u32(&raw, COND + COND_G_REFS + 4, 2); // one reference to group 1 (G1)
    put_u32(&raw, COND + 24, 7); // __g_size[0]: G2 has waiters, so G1 is quiesced
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(kv.set(0, "x").map(|_| ()).map_err(|e| e.kind()));
    });
    // Any outcome but a hang is acceptable: a clean write, or an error.
    let outcome = rx.recv_timeout(Duration::from_secs(8));
    assert!(
        outcome.is_ok(),
        "MemKv::set blocked for 8 s in pthread_cond_broadcast"
    );
}

/// A memvid share whose first word is patched so that its size passes memmsg's check:
/// attaching it as memmsg used to hand media bytes to glibc as a mutex (SIGABRT).
#[test]
fn a_media_share_posing_as_a_ring_never_reaches_glibc() {
    let mut bytes = membus_tests::fixture_bytes("memvid_rgb24.bin");
    for (overhead, tag) in [(166usize, "vid-as-msg"), (174, "vid-as-cmd")] {
        let cap = (bytes.len() - overhead) as i64;
        bytes[..8].copy_from_slice(&cap.to_le_bytes());
        let g = membus_tests::install_share(tag, &bytes);
        let r = if overhead == 166 {
            Reader::attach(g.name()).map(|_| ())
        } else {
            MemCmd::attach(g.name()).map(|_| ())
        };
        let e = r.expect_err("media bytes are not a glibc mutex");
        assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}");
        assert!(e.to_string().contains("mutex"), "{e}");
    }
}
