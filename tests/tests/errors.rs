//! Every `ErrorKind` that memmap, memmsg and memcmd can produce, provoked and asserted.
//! (`NotOpen` cannot happen: a membus handle is open for its whole life.)

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{ErrorKind, MapOptions, MemMap, QueueOptions, Received, Start};
use membus_tests::{install_fixture, install_share, peer_bin, RawShare, ShmGuard};

fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm{name}")).exists()
}

#[test]
fn invalid_argument() {
    for bad in ["", "/", "a/b", "x\0y"] {
        let e = Writer::create(bad, 64).err().unwrap();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::InvalidArgument, 1),
            "{bad:?}"
        );
        assert!(e.to_string().starts_with("invalid argument"), "{e}");
    }
    let g = ShmGuard::new("inval");
    assert_eq!(
        Writer::create(g.name(), 0).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        MemMap::create(g.name(), 0).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
    let e = MemMap::create_with(g.name(), 8, &MapOptions::new().mode(0o4755))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        !exists(g.name()),
        "nothing is created for a rejected request"
    );
    let w = Writer::create(g.name(), 64).unwrap();
    assert_eq!(w.write(b"").unwrap_err().kind(), ErrorKind::InvalidArgument);
    let e = Reader::attach_with(g.name(), &QueueOptions::new().expect_capacity(0))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn open_failed() {
    let g = ShmGuard::new("missing");
    for e in [
        Reader::attach(g.name()).err().unwrap(),
        MemCmd::attach(g.name()).err().unwrap(),
        MemMap::attach(g.name()).err().unwrap(),
    ] {
        assert_eq!((e.kind(), e.code()), (ErrorKind::OpenFailed, 2));
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert_eq!(e.share(), Some(g.name()));
        assert!(
            e.to_string()
                .starts_with(&format!("open failed: share {}", g.name())),
            "{e}"
        );
    }
}

#[test]
fn create_failed_when_the_name_is_taken_or_dev_shm_is_full() {
    let g = ShmGuard::new("taken");
    let _w = Writer::create(g.name(), 64).unwrap();
    let e = Writer::create(g.name(), 64).err().unwrap();
    assert_eq!((e.kind(), e.code()), (ErrorKind::CreateFailed, 3));
    assert_eq!(e.errno(), Some(libc::EEXIST));

    // 16 TiB cannot be reserved in /dev/shm: a clean error now, not a SIGBUS later, and no
    // half-made object left behind.
    let g2 = ShmGuard::new("full");
    let e = MemMap::create(g2.name(), 1 << 44).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::CreateFailed, "{e}");
    assert!(e.os_error().is_some());
    assert!(!exists(g2.name()), "the failed create removed its object");
}

#[test]
fn map_failed_for_an_empty_object() {
    let g = install_share("empty", &[]);
    assert_eq!(
        MemMap::attach(g.name()).err().unwrap().kind(),
        ErrorKind::MapFailed
    );
    let e = Reader::attach(g.name()).err().unwrap();
    assert_eq!((e.kind(), e.code()), (ErrorKind::MapFailed, 4));
}

#[test]
fn size_mismatch() {
    let g = ShmGuard::new("size");
    let _w = Writer::create(g.name(), 1024).unwrap();
    let e = Reader::attach_with(g.name(), &QueueOptions::new().expect_capacity(2048))
        .err()
        .unwrap();
    assert_eq!((e.kind(), e.code()), (ErrorKind::SizeMismatch, 5));
    assert_eq!(e.sizes(), Some((2048, 1024)));
    assert!(
        e.to_string()
            .contains("the memmsg has capacity 1024, not the expected 2048"),
        "{e}"
    );
    assert!(!e.to_string().contains("(expected"), "no bare suffix: {e}");
}

#[test]
fn invalid_layout_for_corrupt_or_hostile_headers() {
    // Header capacity that does not match the object.
    let mut bytes = membus_tests::fixture_bytes("memmsg_basic.bin");
    bytes[0..8].copy_from_slice(&5000i64.to_le_bytes());
    let g = install_share("badsize", &bytes);
    let e = Reader::attach(g.name()).err().unwrap();
    assert_eq!((e.kind(), e.code()), (ErrorKind::InvalidLayout, 6));

    // Negative capacity.
    bytes[0..8].copy_from_slice(&(-1i64).to_le_bytes());
    let g = install_share("negsize", &bytes);
    assert_eq!(
        Reader::attach(g.name()).err().unwrap().kind(),
        ErrorKind::InvalidLayout
    );

    // A write offset outside the ring, set after attach by a hostile peer.
    let g = install_fixture("memmsg_basic.bin");
    let mut r = Reader::attach_with(g.name(), &QueueOptions::new().start(Start::Oldest)).unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    raw.put_i64(8, 1 << 40);
    let e = r.read(Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{e}");
    // Misaligned write offset.
    raw.put_i64(8, 13);
    assert_eq!(
        r.read(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidLayout
    );
    // A garbage length at ring offset 0.
    raw.put_i64(8, 48);
    raw.put_i64(120, i64::MAX);
    assert_eq!(
        r.read(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidLayout
    );
    // Repaired by the peer: reading works again.
    raw.put_i64(120, 5);
    assert_eq!(r.read(Duration::ZERO).unwrap().message().unwrap(), b"hello");

    // A memcmd opened as memmsg.
    let g = install_fixture("memcmd_basic.bin");
    assert_eq!(
        Writer::attach(g.name()).err().unwrap().kind(),
        ErrorKind::InvalidLayout
    );
}

#[test]
fn access_denied() {
    let g = ShmGuard::new("denied");
    let _m = MemMap::create(g.name(), 64).unwrap(); // mode 0600, owned by us
                                                    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = Command::new(peer_bin!());
    cmd.args(["attach-code", g.name()]).stdout(Stdio::piped());
    if root {
        // Root bypasses file modes; ask as an unprivileged user instead.
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(
            format!("/dev/shm{}", g.name()),
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )
        .unwrap();
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(line.trim(), "8", "access_denied is errc 8");
}

#[test]
fn message_too_large() {
    let g = ShmGuard::new("toolarge");
    let c = MemCmd::create(g.name(), 64).unwrap();
    let e = c.write(&[0u8; 64]).unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::MessageTooLarge, 9));
    assert_eq!(e.sizes(), Some((48, 64)));
}

fn kill_holding_lock(name: &str, mutex_offset: usize) {
    membus_tests::kill_holding_lock(&peer_bin!(), name, mutex_offset);
}

#[test]
fn lock_timeout_on_a_non_robust_mutex_whose_owner_died() {
    // The fixture was made with Boost 1.74: a non-robust mutex, as in the field.
    let g = install_fixture("memmsg_basic.bin");
    let opts = QueueOptions::new().lock_timeout(Duration::from_millis(100));
    let w = Writer::attach_with(g.name(), &opts).unwrap();
    kill_holding_lock(g.name(), 32);
    let e = w.write(b"x").unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::LockTimeout, 10));
    assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
    assert!(
        e.detail().contains("no longer exists"),
        "the error says the holder is dead: {e}"
    );
    // The handle now knows: later calls fail at once, without waiting out the timeout
    // (no errno: nothing was waited for), with the same explanation.
    for _ in 0..3 {
        let again = w.write(b"y").unwrap_err();
        assert_eq!(again.kind(), ErrorKind::LockTimeout);
        assert_eq!(again.errno(), None, "failed fast: {again}");
        assert!(again.detail().contains("no longer exists"));
    }
    // A new handle learns it the same way (a latest-first reader locks to find the write
    // position).
    let Err(e) = Reader::attach_with(g.name(), &opts) else {
        panic!("a latest-first reader cannot find the write position without the lock")
    };
    assert_eq!(e.kind(), ErrorKind::LockTimeout);
    assert!(e.detail().contains("no longer exists"), "{e}");
}

/// Kills a child holding the ring mutex of `name` (offset 32), then does what Boost >= 1.78
/// does on EOWNERDEAD: unlocks without `pthread_mutex_consistent`, so the mutex becomes
/// unrecoverable.
fn leave_mutex_unrecoverable(name: &str) {
    kill_holding_lock(name, 32);
    let raw = RawShare::open(name).unwrap();
    let m = raw.at(32).cast::<libc::pthread_mutex_t>();
    // SAFETY: `m` is the share's robust process-shared mutex, inside `raw`'s mapping.
    unsafe {
        assert_eq!(libc::pthread_mutex_lock(m), libc::EOWNERDEAD);
        assert_eq!(libc::pthread_mutex_unlock(m), 0);
    }
}

#[test]
fn lock_failed_when_a_peer_left_the_mutex_unrecoverable() {
    let g = ShmGuard::new("notrecoverable");
    let w = Writer::create(g.name(), 256).unwrap();
    leave_mutex_unrecoverable(g.name());
    let e = w.write(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LockFailed);
    assert_eq!(e.code(), 10, "nearest libmembus code: lock_timeout");
    assert_eq!(e.errno(), Some(libc::ENOTRECOVERABLE));
}

#[test]
/// Waiting never takes the lock, so a share whose mutex is unrecoverable is waited on like
/// any other: not ready while there is nothing to read, and it does not disturb the other
/// sources of a select.
fn select_waits_on_a_share_whose_lock_is_unrecoverable() {
    use membus::memvid::VideoReader;
    use membus::select::select;
    let (g, gv) = (ShmGuard::new("sel-notrec"), ShmGuard::new("sel-notrec-v"));
    let _w = Writer::create(g.name(), 256).unwrap();
    leave_mutex_unrecoverable(g.name());
    // Start::Oldest attaches without the lock.
    let r = Reader::attach_with(g.name(), &QueueOptions::new().start(Start::Oldest)).unwrap();
    let mut vw = membus_tests::tiny_video(gv.name());
    let vr = VideoReader::attach(gv.name()).unwrap();
    assert!(!r.wait_ready(Duration::from_millis(30)), "nothing to read");
    assert_eq!(select(&[&r, &vr], Duration::from_millis(30)), None);
    vw.publish().unwrap();
    assert_eq!(select(&[&r, &vr], Duration::from_secs(30)), Some(1));
}

#[test]
fn timeout_and_overrun_as_errors() {
    let g = ShmGuard::new("to-ov");
    let w = Writer::create(g.name(), 128).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    let e = r
        .read(Duration::from_millis(5))
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Timeout, 11));
    for _ in 0..20 {
        w.write(b"0123456789abcdef").unwrap();
    }
    let got = r.read(Duration::ZERO).unwrap();
    assert_eq!(got, Received::Overrun { lost: 20 });
    let e = got.into_result().unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Overrun, 12));
    assert!(e.to_string().contains("20 messages lost"), "{e}");
    assert!(
        !e.to_string().contains("(expected"),
        "no meaningless suffix: {e}"
    );
}

/// Attaching one share type's API to another type's share names the type the share holds,
/// for every pair (the pymembus fixtures, one per type).
#[test]
fn attaching_the_wrong_type_names_the_actual_type() {
    type Attach = fn(&str) -> membus::Result<()>;
    let apis: [(&str, Attach); 6] = [
        ("memmsg", |n| Reader::attach(n).map(drop)),
        ("memcmd", |n| MemCmd::attach(n).map(drop)),
        ("memkv", |n| membus::memkv::MemKv::attach(n).map(drop)),
        ("memvid", |n| {
            membus::memvid::VideoReader::attach(n).map(drop)
        }),
        ("memaud", |n| {
            membus::memaud::AudioReader::attach(n).map(drop)
        }),
        ("mempkt", |n| {
            membus::mempkt::PacketReader::attach(n).map(drop)
        }),
    ];
    let fixtures = [
        ("memmsg", "memmsg_basic.bin"),
        ("memcmd", "memcmd_basic.bin"),
        ("memkv", "memkv_basic.bin"),
        ("memvid", "memvid_rgb24.bin"),
        ("memaud", "memaud_s16le.bin"),
        ("mempkt", "mempkt_basic.bin"),
    ];
    for (actual, file) in fixtures {
        let g = install_fixture(file);
        for (api, attach) in apis {
            let got = attach(g.name());
            if api == actual {
                assert!(got.is_ok(), "{api} on its own fixture: {:?}", got.err());
                continue;
            }
            let e = got.expect_err("a share of another type must not attach");
            assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{api} on {actual}: {e}");
            let want = format!("this is a {actual} share, not a {api}");
            assert!(
                e.to_string().contains(&want),
                "{api} on a {actual} share should say {want:?}: {e}"
            );
        }
    }
}

#[test]
fn a_message_too_large_for_a_tiny_ring_says_why() {
    let g = ShmGuard::new("tiny");
    let w = Writer::create(g.name(), 10).unwrap();
    let e = w.write(b"hi").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    let text = e.to_string();
    assert!(
        text.contains("too small for any message") && !text.contains("(expected"),
        "{text}"
    );
    let g2 = ShmGuard::new("small");
    let w = Writer::create(g2.name(), 64).unwrap();
    let e = w.write(&[b'x'; 100]).unwrap_err();
    assert!(
        e.to_string()
            .contains("a message of 100 bytes does not fit: this ring (capacity 64) takes messages of at most"),
        "{e}"
    );
}

#[test]
fn a_media_header_with_an_unknown_type_word_says_so() {
    let mut bytes = membus_tests::fixture_bytes("memvid_rgb24.bin");
    bytes[8..16].copy_from_slice(&9i64.to_le_bytes());
    let g = install_share("vid-type9", &bytes);
    let e = membus::memvid::VideoReader::attach(g.name())
        .err()
        .expect("type word 9");
    assert_eq!(e.kind(), ErrorKind::InvalidLayout);
    assert!(e.to_string().contains("type word 9 (expected 1)"), "{e}");
}
