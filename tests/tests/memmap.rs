//! memmap: creation, attachment, copying access, ownership and the owner lock.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use membus::{ErrorKind, MapOptions, MemMap};
use membus_tests::{peer_bin, share_bytes, ShmGuard};

fn mode_of(name: &str) -> u32 {
    std::fs::metadata(format!("/dev/shm{name}"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm{name}")).exists()
}

#[test]
fn create_write_read_and_attach() {
    let g = ShmGuard::new("map");
    let m = MemMap::create(g.name(), 4096).unwrap();
    assert_eq!(m.len(), 4096);
    assert!(m.is_creator() && m.is_writable());
    assert_eq!(m.read(0), vec![0u8; 4096], "fresh memory is zero");
    m.write_at(100, b"membus").unwrap();
    let other = MemMap::attach(g.name()).unwrap();
    let mut buf = [0u8; 6];
    other.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"membus");
    assert!(!other.is_creator());
    // libmembus-style whole-block write and read.
    assert_eq!(other.write(&[1u8; 10_000]), 4096);
    assert_eq!(m.read(10), vec![1u8; 10]);
    m.fill(0, 4096, 0x42).unwrap();
    assert!(share_bytes(g.name()).iter().all(|&b| b == 0x42));
    // Large copies (the rep-movsb path) round-trip too.
    let big: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    m.write_at(50, &big).unwrap();
    let mut back = vec![0u8; 4000];
    other.read_at(50, &mut back).unwrap();
    assert_eq!(back, big);
}

#[test]
fn read_only_handles_read_and_share_atomics() {
    let g = ShmGuard::new("map-ro");
    let m = MemMap::create(g.name(), 64).unwrap();
    let ro = MemMap::attach_read_only(g.name()).unwrap();
    assert!(!ro.is_writable());
    m.atomic_u64(8)
        .unwrap()
        .store(0xdead_beef, Ordering::Release);
    assert_eq!(ro.load_u64(8).unwrap(), 0xdead_beef);
    assert_eq!(
        m.atomic_u64(8).unwrap().fetch_add(1, Ordering::AcqRel),
        0xdead_beef
    );
    assert_eq!(ro.load_u64(8).unwrap(), 0xdead_bef0);
    assert_eq!(
        ro.load_u64(3).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        ro.load_u64(64).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // `ro.write_at(..)` does not exist: MemMap<ReadOnly> has no write methods.
}

#[test]
fn out_of_range_access_is_refused_without_writing() {
    let g = ShmGuard::new("map-oob");
    let m = MemMap::create(g.name(), 100).unwrap();
    let e = m.write_at(90, &[1u8; 11]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.sizes(), Some((100, 101)));
    assert_eq!(
        m.write_at(usize::MAX, b"x").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        m.read_at(99, &mut [0u8; 2]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(share_bytes(g.name()).iter().all(|&b| b == 0));
}

#[test]
fn creation_mode_is_exact_whatever_the_umask() {
    let g = ShmGuard::new("mode-default");
    let _a = MemMap::create(g.name(), 10).unwrap();
    assert_eq!(mode_of(g.name()), 0o600);
    let g2 = ShmGuard::new("mode-644");
    let _b = MemMap::create_with(g2.name(), 10, &MapOptions::new().mode(0o644)).unwrap();
    assert_eq!(mode_of(g2.name()), 0o644);
    let g3 = ShmGuard::new("mode-666");
    let _c = MemMap::create_with(g3.name(), 10, &MapOptions::new().mode(0o666)).unwrap();
    assert_eq!(mode_of(g3.name()), 0o666, "the umask does not narrow it");
}

#[test]
fn the_creator_never_removes_a_newer_share_of_the_same_name() {
    let g = ShmGuard::new("inode");
    let first = MemMap::create(g.name(), 10).unwrap();
    assert!(membus::remove(g.name()).unwrap());
    assert!(!membus::remove(g.name()).unwrap(), "already gone");
    let second = MemMap::create(g.name(), 20).unwrap();
    drop(first);
    assert!(
        exists(g.name()),
        "dropping the first creator left the second share alone"
    );
    assert_eq!(MemMap::attach(g.name()).unwrap().len(), 20);
    drop(second);
    assert!(
        !exists(g.name()),
        "the second creator removed its own share"
    );
}

#[test]
fn the_owner_lock_tells_a_live_creator_from_a_crashed_one() {
    let g = ShmGuard::new("owner");
    let m = MemMap::create(g.name(), 10).unwrap();
    assert!(membus::has_live_owner(g.name()).unwrap());
    let _attached = MemMap::attach(g.name()).unwrap();
    assert!(
        membus::has_live_owner(g.name()).unwrap(),
        "attaching does not disturb the lock"
    );
    drop(m);
    assert_eq!(
        membus::has_live_owner(g.name()).unwrap_err().kind(),
        ErrorKind::OpenFailed
    );

    let g2 = ShmGuard::new("owner-dead");
    let mut child = Command::new(peer_bin!())
        .args(["create-and-die", g2.name()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "created");
    assert!(!child.wait().unwrap().success());
    assert!(
        exists(g2.name()),
        "a killed creator leaves its share behind..."
    );
    assert!(
        !membus::has_live_owner(g2.name()).unwrap(),
        "...and it is recognisably stale"
    );
}
