//! Restart after a crash: a creator replaces a share whose membus creator is dead, never one
//! whose membus creator is alive, and never (by default) one made by libmembus/pymembus,
//! which may still be in use. Every "already exists" error says what to do.

use std::process::{Child, Command, Stdio};

use membus::memcmd::MemCmd;
use membus::memkv::{KvOptions, MemKv};
use membus::memmsg::{Reader, Writer};
use membus::{ErrorKind, MemMap, QueueOptions, Received};
use membus_tests::{first_line, install_fixture, peer_bin, tiny_video, ShmGuard};

/// A `membus-peer` child that created a share of `ty` and waits (until its standard input
/// closes, which the test never does before killing it).
fn creator(ty: &str, name: &str) -> Child {
    let mut child = Command::new(peer_bin!())
        .args(["create-and-wait", ty, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(
        first_line(&mut child),
        "created",
        "the {ty} creator did not start"
    );
    child
}

/// SIGKILL and reap: the creator dies without any cleanup.
fn kill(mut child: Child) {
    child.kill().expect("SIGKILL the creator");
    let status = child.wait().expect("reap the creator");
    assert!(!status.success(), "the creator should have been killed");
}

fn assert_live_owner_error(e: &membus::Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::CreateFailed, "{what}: {e}");
    assert!(
        e.to_string().contains("a live membus process owns it"),
        "{what}: the error should say a live process owns the share: {e}"
    );
}

#[test]
fn memmsg_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-msg");
    let child = creator("memmsg", g.name());
    let e = Writer::create(g.name(), 4096)
        .err()
        .expect("a live owner's share");
    assert_live_owner_error(&e, "memmsg");
    kill(child);
    let w = Writer::create(g.name(), 4096).expect("restart replaces the stale share");
    let mut r = Reader::attach(g.name()).unwrap();
    w.write(b"after restart").unwrap();
    assert_eq!(
        r.read(std::time::Duration::ZERO).unwrap(),
        membus_tests::msg(1, "after restart"),
        "the new share starts afresh"
    );
}

#[test]
fn memcmd_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-cmd");
    let child = creator("memcmd", g.name());
    let e = MemCmd::create(g.name(), 4096)
        .err()
        .expect("a live owner's share");
    assert_live_owner_error(&e, "memcmd");
    kill(child);
    let mut c = MemCmd::create(g.name(), 4096).expect("restart replaces the stale share");
    c.write(b"cmd").unwrap();
    assert!(matches!(
        c.read(std::time::Duration::ZERO).unwrap(),
        Received::Message { seq: 1, .. }
    ));
}

#[test]
fn memkv_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-kv");
    let child = creator("memkv", g.name());
    let e = MemKv::create_named(g.name(), &["x"], 8, 16).expect_err("a live owner\'s share");
    assert_live_owner_error(&e, "memkv");
    kill(child);
    let kv = MemKv::create_named(g.name(), &["x"], 8, 16).expect("restart replaces it");
    assert_eq!(kv.count(), 1, "the new store has the new layout");
    kv.set(0, "1").unwrap();
    assert_eq!(kv.get(0).unwrap().value, b"1");
}

#[derive(membus::MemKv, Clone, Debug, Default, PartialEq)]
struct Restarted {
    frames: u64,
}

#[test]
fn typed_memkv_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-typed");
    kill(creator("memkv", g.name()));
    let kv = membus::Kv::<Restarted>::create(g.name(), &Restarted { frames: 7 })
        .expect("restart replaces the stale share");
    assert_eq!(kv.get(Restarted::FRAMES).unwrap(), 7);
}

#[test]
fn memvid_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-vid");
    let child = creator("memvid", g.name());
    let e = membus::memvid::VideoWriter::create(
        g.name(),
        &membus::memvid::VideoParams::new(8, 4, membus::layout::media::VideoFormat::Gray8, 200, 8),
    )
    .err()
    .expect("a live owner's share");
    assert_live_owner_error(&e, "memvid");
    kill(child);
    let _w = tiny_video(g.name());
}

#[test]
fn memaud_and_mempkt_restart_after_their_creator_is_killed() {
    let ga = ShmGuard::new("restart-aud");
    let child = creator("memaud", ga.name());
    let e = membus::memaud::AudioWriter::create(ga.name(), &membus_tests::small_audio_params())
        .err()
        .expect("a live owner's share");
    assert_live_owner_error(&e, "memaud");
    kill(child);
    let _a = membus::memaud::AudioWriter::create(ga.name(), &membus_tests::small_audio_params())
        .expect("restart replaces the stale memaud");

    let gp = ShmGuard::new("restart-pkt");
    let params = membus::mempkt::PacketParams::new(8, 1 << 16, 4096);
    let child = creator("mempkt", gp.name());
    let e = membus::mempkt::PacketWriter::create(gp.name(), &params)
        .err()
        .expect("a live owner's share");
    assert_live_owner_error(&e, "mempkt");
    kill(child);
    let _p = membus::mempkt::PacketWriter::create(gp.name(), &params)
        .expect("restart replaces the stale mempkt");
}

#[test]
fn a_libmembus_share_is_not_replaced_unless_asked() {
    for (file, create) in [
        (
            "memmsg_basic.bin",
            (|n: &str, o: &QueueOptions| Writer::create_with(n, 4096, o).map(drop))
                as fn(&str, &QueueOptions) -> membus::Result<()>,
        ),
        ("memcmd_basic.bin", |n, o| {
            MemCmd::create_with(n, 4096, o).map(drop)
        }),
    ] {
        let g = install_fixture(file);
        let e = create(g.name(), &QueueOptions::new())
            .err()
            .unwrap_or_else(|| panic!("{file}: a foreign share was replaced silently"));
        assert_eq!(e.kind(), ErrorKind::CreateFailed);
        let text = e.to_string();
        assert!(
            text.contains("not created by membus")
                && text.contains("replace_stale(true)")
                && text.contains("membus rm"),
            "{file}: the error should say why and what to do: {text}"
        );
        create(g.name(), &QueueOptions::new().replace_stale(true))
            .unwrap_or_else(|e| panic!("{file}: replace_stale(true) should replace it: {e}"));
    }
    let g = install_fixture("memkv_basic.bin");
    let e = MemKv::create_with(g.name(), &["x"], 8, 16, &KvOptions::new())
        .expect_err("a foreign memkv is not replaced silently");
    assert!(e.to_string().contains("replace_stale(true)"), "{e}");
    MemKv::create_with(
        g.name(),
        &["x"],
        8,
        16,
        &KvOptions::new().replace_stale(true),
    )
    .expect("replace_stale(true) replaces a foreign store");
}

#[test]
fn memmap_restarts_after_its_creator_is_killed() {
    let g = ShmGuard::new("restart-map");
    let first = MemMap::create(g.name(), 64).unwrap();
    let e = MemMap::create(g.name(), 64)
        .err()
        .expect("a live owner's block");
    assert_live_owner_error(&e, "memmap");
    assert!(
        e.to_string()
            .contains("stop that process or use another name"),
        "the error says what to do: {e}"
    );
    drop(first);
    let mut child = Command::new(peer_bin!())
        .args(["create-and-die", g.name()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(first_line(&mut child), "created");
    assert!(!child.wait().unwrap().success(), "the creator was killed");
    let m = MemMap::create(g.name(), 128).expect("restart replaces the stale block");
    assert_eq!(m.len(), 128);
}

#[test]
fn a_membus_share_carries_the_mark_and_exact_mode() {
    use std::os::unix::fs::PermissionsExt;
    let g = ShmGuard::new("mark");
    let _w = Writer::create_with(g.name(), 64, &QueueOptions::new().mode(0o640)).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm{}", g.name()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o640,
        "the permission bits are exactly the asked mode"
    );
    assert_ne!(
        mode & 0o1000,
        0,
        "membus marks its shares with the sticky bit"
    );
}

/// A shared `flock` on `name`'s object, as `membus ls` and every attaching reader take for
/// a moment to check whether the owner is alive; released when the descriptor is dropped.
fn probe_lock(name: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd as _;
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated name.
    let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDONLY, 0) };
    assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just opened and nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: `fd` is an open descriptor.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::LOCK_SH) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    fd
}

/// A process checking whether the owner is alive (a shared lock for a moment) is not a live
/// owner: a restart that meets one waits it out instead of refusing.
#[test]
fn a_restart_waits_out_a_process_checking_the_owner() {
    let g = install_fixture("memmsg_basic.bin");
    let probe = probe_lock(g.name());
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        drop(probe);
    });
    Writer::create_with(g.name(), 4096, &QueueOptions::new().replace_stale(true))
        .expect("a shared probe lock does not make the share owned");
    release.join().unwrap();
}

/// One that never lets go is reported as such after a while, not as a live owner.
#[test]
fn a_restart_reports_a_check_that_never_ends() {
    let g = install_fixture("memmsg_basic.bin");
    let _probe = probe_lock(g.name());
    let e = Writer::create_with(g.name(), 4096, &QueueOptions::new().replace_stale(true))
        .err()
        .expect("the lock stayed shared-held");
    assert_eq!(e.kind(), ErrorKind::CreateFailed);
    assert!(
        e.to_string().contains("kept checking")
            && !e.to_string().contains("live membus process owns"),
        "{e}"
    );
}
