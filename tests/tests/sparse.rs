//! Shares made the libmembus way (`ftruncate`, no pages allocated): a read-write attach
//! allocates the pages, so a full /dev/shm is an error at attach instead of a SIGBUS later;
//! a read-only attach measures the holes and refuses when /dev/shm cannot cover them.
//!
//! "/dev/shm cannot cover them" is made real without root: a sparse object much larger than
//! the free space of /dev/shm (tmpfs lets `ftruncate` go beyond it).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;

use membus::{ErrorKind, MemMap};
use membus_tests::ShmGuard;

/// A sparse object of `len` bytes, as libmembus makes it: create and `ftruncate`.
fn sparse(tag: &str, len: u64) -> ShmGuard {
    let g = ShmGuard::new(tag);
    let f = std::fs::File::create_new(format!("/dev/shm{}", g.name())).expect("create");
    f.set_len(len).expect("ftruncate");
    g
}

/// Bytes of memory the object has.
fn allocated(name: &str) -> u64 {
    std::fs::metadata(format!("/dev/shm{name}"))
        .expect("stat")
        .blocks()
        * 512
}

/// Free bytes of /dev/shm, or `None` when it has no size limit.
fn free_bytes() -> Option<u64> {
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a valid NUL-terminated string and `v` is writable.
    let rc = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut v) };
    assert_eq!(rc, 0, "statvfs /dev/shm");
    (v.f_blocks > 0).then(|| v.f_bavail * v.f_frsize)
}

#[test]
fn a_read_write_attach_allocates_a_sparse_share() {
    let len = 1 << 20;
    let g = sparse("sparse-rw", len);
    assert_eq!(allocated(g.name()), 0, "ftruncate allocates nothing");
    let m = MemMap::attach(g.name()).expect("attach read-write");
    assert!(
        allocated(g.name()) >= len,
        "the attach allocated every page: {} of {len} bytes",
        allocated(g.name())
    );
    m.write_at(len as usize - 8, b"end page").unwrap();
    assert_eq!(m.read(0)[len as usize - 8..], *b"end page");
}

#[test]
fn a_read_only_attach_of_a_coverable_sparse_share_allocates_nothing() {
    let len = 1 << 20;
    let g = sparse("sparse-ro", len);
    let m = MemMap::attach_read_only(g.name()).expect("free space covers the holes");
    assert_eq!(m.len(), len as usize);
    assert_eq!(allocated(g.name()), 0, "a read-only attach writes nothing");
}

#[test]
fn a_sparse_share_larger_than_free_dev_shm_is_an_error_at_attach() {
    let Some(free) = free_bytes() else {
        // Straight to stderr (not captured by the test harness), so a skip is always seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: /dev/shm has no size limit, so it cannot be outgrown safely"
        );
        return;
    };
    // Four times the free space, at least 1 GiB; tmpfs accepts it as a size.
    let len = free.saturating_mul(4).max(1 << 30);
    let g = sparse("sparse-full", len);

    let e = MemMap::attach(g.name())
        .err()
        .expect("no room to allocate the pages");
    assert_eq!(e.kind(), ErrorKind::MapFailed, "{e}");
    assert_eq!(e.errno(), Some(libc::ENOSPC), "{e}");
    assert!(
        e.to_string().contains("no room to allocate"),
        "the error says why: {e}"
    );
    assert_eq!(
        allocated(g.name()),
        0,
        "a failed allocation leaves nothing allocated"
    );

    let e = MemMap::attach_read_only(g.name())
        .err()
        .expect("holes larger than the free space");
    assert_eq!(e.kind(), ErrorKind::MapFailed, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("are not allocated") && text.contains("SIGBUS"),
        "the error says why: {text}"
    );
    let (holes, free) = e.sizes().expect("holes and free space");
    assert_eq!(holes, len);
    assert!(free < holes);
}

/// The same with a real full /dev/shm: a private 1 MiB tmpfs mounted over it in a new mount
/// namespace, where a `membus-peer` child makes the checks (root only; skipped, saying so,
/// otherwise or where mounting is not allowed).
#[test]
fn a_full_dev_shm_is_an_error_at_create_and_attach() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_full_dev_shm_is_an_error_at_create_and_attach: needs root (mount namespace)"
        );
        return;
    }
    let peer = membus_tests::peer_bin!();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs /dev/shm || exit 77; exec '{}' full-shm-check",
        peer.display()
    );
    let out = match std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_full_dev_shm_is_an_error_at_create_and_attach: no unshare ({e})"
            );
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) || (out.stdout.is_empty() && stderr.contains("unshare")) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_full_dev_shm_is_an_error_at_create_and_attach: cannot mount a tmpfs \
             here: {stderr}"
        );
        return;
    }
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "the checks in a full /dev/shm failed ({}): {stderr}",
        out.status
    );
}
