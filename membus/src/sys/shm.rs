//! Named POSIX shared-memory objects and their mappings.
//!
//! Every system call here goes through `rustix` (open, unlink, fstat, fchmod, flock,
//! fallocate, lseek, fstatvfs) and every mapping is a `memmap2::MmapRaw`, an owner of a raw
//! pointer that never hands out `&[u8]`/`&mut [u8]` over bytes other processes write; both
//! are safe APIs, so this module has no unsafe code of its own except where it turns the
//! mapping into the atomics and bounds-checked pointers its users need. The byte copies
//! over shared memory (`sys::copy`), the glibc pthread objects (`sys::pthread`) and the
//! futex calls (`sys::futex`) stay hand-written: no crate offers copies made of atomic
//! accesses, glibc's process-shared mutex and condition as they sit inside a share, or a
//! futex on another process's word.
//!
//! Named objects live in /dev/shm, as glibc's `shm_open` puts them; like glibc, opens add
//! `O_NOFOLLOW` and `O_CLOEXEC`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, FlockOperation, Mode, OFlags, SeekFrom};

use crate::error::{Error, ErrorKind, Result};
use crate::name::ShareName;

/// Identity of a file: device and inode. Two handles name the same object iff they match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

/// What membus needs of `fstat`.
struct Stat {
    id: FileId,
    mode: u32,
    size: i64,
}

fn fstat(fd: &OwnedFd) -> std::io::Result<Stat> {
    let st = rustix::fs::fstat(fd)?;
    Ok(Stat {
        id: FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
        mode: st.st_mode,
        size: st.st_size,
    })
}

/// The object's path: glibc keeps POSIX shared memory in /dev/shm.
fn shm_path(name: &ShareName) -> String {
    format!("/dev/shm{}", name.as_str())
}

fn shm_open(name: &ShareName, flags: OFlags, mode: u32) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        shm_path(name),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

fn shm_unlink(name: &ShareName) -> std::io::Result<()> {
    Ok(rustix::fs::unlink(shm_path(name))?)
}

/// Unlinks `name` only if it still refers to the object `id`.
///
/// There is an unavoidable window between the identity check and the unlink in which
/// another process could replace the object; it is a few instructions wide, where libmembus
/// unlinks by name unconditionally.
fn unlink_if_same(name: &ShareName, id: FileId) {
    let Ok(fd) = shm_open(name, OFlags::RDONLY, 0) else {
        return;
    };
    let same = fstat(&fd).map(|st| st.id == id).unwrap_or(false);
    drop(fd);
    if same {
        // Failure (already gone) is harmless.
        let _ = shm_unlink(name);
    }
}

/// Bytes of `fd`'s first `len` bytes that have no memory allocated (holes, as `ftruncate`
/// leaves them), found with SEEK_DATA/SEEK_HOLE.
fn hole_bytes(fd: &OwnedFd, len: u64) -> std::io::Result<u64> {
    let mut holes = 0u64;
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d.min(len),
            // ENXIO: no data at or after `pos`.
            Err(rustix::io::Errno::NXIO) => len,
            Err(e) => return Err(e.into()),
        };
        holes += data - pos;
        if data >= len {
            break;
        }
        pos = rustix::fs::seek(fd, SeekFrom::Hole(data))?.max(data + 1);
    }
    Ok(holes)
}

/// The mark of a share membus created: the sticky bit on the object's mode. It means nothing
/// for a regular file on Linux, libmembus and pymembus never set it, and only the object's
/// owner (or root) can change it, so a share that carries it was made by membus.
pub(crate) const MEMBUS_MARK: u32 = libc::S_ISVTX;

/// What a creator does when a share of its name already exists (and no live membus process
/// holds its owner lock; a live owner's share is never replaced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Replace a share that membus created ([`MEMBUS_MARK`]) whose creator is dead. A share
    /// without the mark (made by libmembus or pymembus, whose users may still be using it)
    /// is reported, not replaced.
    StaleMembus,
    /// Replace any share without a live membus owner, including a foreign one.
    AnyStale,
}

/// The advice every "already exists" error carries.
const EXISTS_HINT: &str = "if nothing uses it, remove it with `membus rm NAME` \
     (`membus rm --stale` removes every stale share of yours)";

/// One mapped named shared-memory object.
///
/// This is the private owner of the raw mapping pointer: it hands out bounds-checked
/// pointers and atomics, never plain references to bytes other processes may write.
pub(crate) struct Segment {
    /// The mapping; unmapped when the segment drops.
    map: MmapRaw,
    len: usize,
    writable: bool,
    fd: OwnedFd,
    name: ShareName,
    /// The object's identity.
    id: FileId,
    /// Set when this handle created the object: it holds the owner lock and removes the
    /// name on drop (or [`release`](Segment::release)) if the name still refers to it.
    created: bool,
    /// Set once the name and owner lock have been given up.
    released: AtomicBool,
}

// Segment is Send and Sync through its fields: the mapping is `MmapRaw`, which is, and it
// is exposed only through raw pointers and atomics whose users state their own
// synchronisation.

/// Which access an attacher asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
}

/// What taking an existing share's owner lock found.
enum OwnerLock {
    /// This process holds it now (exclusively).
    Taken,
    /// A live process holds it exclusively: its owner, or another replacer.
    Owned,
    /// Only shared holders stood in the way, for the whole patience period.
    Probed,
}

/// How long a replacer waits out processes that check the owner lock with a shared lock
/// ([`Segment::has_live_owner`]: `membus ls`, every attaching reader). Each holds it for
/// microseconds; only a process that checks without pause could hold off a replacer this
/// long.
const PROBE_PATIENCE: Duration = Duration::from_secs(1);

/// Takes the owner lock of an existing share (`fd`), telling a live owner (an exclusive
/// holder: fail at once) from processes that are only checking whether there is one (a
/// shared holder: retry until [`PROBE_PATIENCE`] has passed).
fn take_owner_lock(fd: &OwnedFd) -> OwnerLock {
    let deadline = Instant::now() + PROBE_PATIENCE;
    loop {
        if rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return OwnerLock::Taken;
        }
        // A shared lock is refused only while someone holds the lock exclusively. If it is
        // granted, the holders were shared ones: give ours up and try again shortly.
        if rustix::fs::flock(fd, FlockOperation::NonBlockingLockShared).is_err() {
            return OwnerLock::Owned;
        }
        let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
        if Instant::now() >= deadline {
            return OwnerLock::Probed;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

impl Segment {
    /// [`create`](Self::create), and when a share of that name exists, replaces it as
    /// `replace` allows. The old object is removed only while this process holds its owner
    /// lock, and only if the name still refers to it, so two creators restarting at once
    /// cannot remove each other's new share: one of them gets an error.
    pub(crate) fn create_replacing(
        name: &ShareName,
        size: usize,
        mode: u32,
        replace: Replace,
    ) -> Result<Segment> {
        let first = Self::create(name, size, mode);
        match &first {
            Err(e) if e.kind() == ErrorKind::CreateFailed && e.errno() == Some(libc::EEXIST) => {}
            _ => return first,
        }
        let err = |kind, what: String| Error::new(kind, what).with_share(name.as_str());
        let exists = || std::io::Error::from_raw_os_error(libc::EEXIST);
        let old = match shm_open(name, OFlags::RDONLY, 0) {
            Ok(fd) => fd,
            // Removed meanwhile: try once more.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Self::create(name, size, mode)
            }
            Err(e) => {
                let kind = if e.raw_os_error() == Some(libc::EACCES) {
                    ErrorKind::AccessDenied
                } else {
                    ErrorKind::CreateFailed
                };
                return Err(err(
                    kind,
                    "a share with this name already exists and cannot be opened to check \
                     whether it is stale (another user's?)"
                        .into(),
                )
                .with_os_error(e));
            }
        };
        match take_owner_lock(&old) {
            OwnerLock::Taken => {}
            OwnerLock::Owned => {
                return Err(err(
                    ErrorKind::CreateFailed,
                    "a share with this name already exists and a live membus process owns \
                     it (or is replacing it right now); it is not replaced: stop that \
                     process or use another name"
                        .into(),
                )
                .with_os_error(exists()))
            }
            OwnerLock::Probed => {
                return Err(err(
                    ErrorKind::CreateFailed,
                    "a share with this name already exists and other processes kept checking \
                     whether its owner is alive (`membus ls`, attaching readers) for a whole \
                     second; it was not replaced: try again"
                        .into(),
                )
                .with_os_error(exists()))
            }
        }
        let st = fstat(&old).map_err(|e| {
            err(
                ErrorKind::CreateFailed,
                "fstat of the existing share".into(),
            )
            .with_os_error(e)
        })?;
        if replace == Replace::StaleMembus && st.mode & MEMBUS_MARK == 0 {
            return Err(err(
                ErrorKind::CreateFailed,
                "a share with this name already exists and was not created by membus \
                 (libmembus or pymembus made it, and may still be using it); it is not \
                 replaced: if nothing uses it, remove it with `membus rm NAME`, or create \
                 with the `replace_stale(true)` option"
                    .into(),
            )
            .with_os_error(exists()));
        }
        // Holding the old object's owner lock: nobody else replaces it meanwhile.
        unlink_if_same(name, st.id);
        drop(old);
        Self::create(name, size, mode)
    }

    /// Creates `name` exclusively (O_CREAT|O_EXCL) with `size` bytes reserved up front and
    /// the permission bits `mode` exactly (whatever the umask) plus [`MEMBUS_MARK`], takes
    /// the owner lock, and maps it read-write. On any failure nothing is left behind.
    pub(crate) fn create(name: &ShareName, size: usize, mode: u32) -> Result<Segment> {
        let err = |kind, what: &str| Error::new(kind, what.to_string()).with_share(name.as_str());
        if size == 0 || i64::try_from(size).is_err() {
            return Err(err(
                ErrorKind::InvalidArgument,
                &format!("share size {size} is not between 1 and i64::MAX"),
            ));
        }
        if mode & !0o777 != 0 {
            return Err(err(
                ErrorKind::InvalidArgument,
                &format!("permission mode {mode:#o} has bits outside 0o777"),
            ));
        }
        let fd =
            shm_open(name, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, mode).map_err(|e| {
                let what = if e.raw_os_error() == Some(libc::EEXIST) {
                    format!("a share with this name already exists; {EXISTS_HINT}")
                } else {
                    "shm_open(O_CREAT|O_EXCL)".to_string()
                };
                let kind = if e.raw_os_error() == Some(libc::EACCES) {
                    ErrorKind::AccessDenied
                } else {
                    ErrorKind::CreateFailed
                };
                err(kind, &what).with_os_error(e)
            })?;
        // From here on the object exists: every failure must unlink it.
        let id = match fstat(&fd) {
            Ok(st) => st.id,
            Err(e) => {
                // Without an identity we cannot unlink safely; unlink by name, which is ours
                // a moment ago (O_EXCL), rather than leave an orphan.
                let _ = shm_unlink(name);
                return Err(err(ErrorKind::CreateFailed, "fstat").with_os_error(e));
            }
        };
        let fail = |e: Error| {
            unlink_if_same(name, id);
            Err(e)
        };
        // The owner lock first, then the mark: a share that carries the mark but whose lock
        // is free is one whose creator is gone. A fresh object's lock cannot be held.
        if let Err(e) = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            return fail(
                err(ErrorKind::CreateFailed, "taking the owner lock (flock)")
                    .with_os_error(e.into()),
            );
        }
        if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode | MEMBUS_MARK)) {
            return fail(err(ErrorKind::CreateFailed, "fchmod").with_os_error(e.into()));
        }
        // Reserve the memory now, so a full /dev/shm is this error, not a SIGBUS later.
        if let Err(e) = rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, size as u64) {
            let e: std::io::Error = e.into();
            let what = if e.raw_os_error() == Some(libc::ENOSPC) {
                format!("no room in /dev/shm to reserve the share's {size} bytes")
            } else {
                format!("reserving the share's {size} bytes (fallocate)")
            };
            return fail(err(ErrorKind::CreateFailed, &what).with_os_error(e));
        }
        match Self::map(&fd, size, true) {
            Ok(map) => Ok(Segment {
                map,
                len: size,
                writable: true,
                fd,
                name: name.clone(),
                id,
                created: true,
                released: AtomicBool::new(false),
            }),
            Err(e) => fail(err(ErrorKind::MapFailed, "mmap").with_os_error(e)),
        }
    }

    /// Attaches to the existing object `name` and maps all of it.
    ///
    /// Memory for the whole object is made sure of first, so that a share whose pages were
    /// never allocated (libmembus sizes objects with `ftruncate`, which leaves holes) cannot
    /// fault later when /dev/shm is full: a read-write attach allocates the holes
    /// (`fallocate` keeps the contents); a read-only attach, which cannot, measures them
    /// (SEEK_HOLE) and fails if /dev/shm has less free space than they need.
    pub(crate) fn attach(name: &ShareName, access: Access) -> Result<Segment> {
        let err = |kind, what: &str| Error::new(kind, what.to_string()).with_share(name.as_str());
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd = shm_open(name, flags, 0).map_err(|e| {
            let (kind, what) = match e.raw_os_error() {
                Some(libc::ENOENT) => (ErrorKind::OpenFailed, "no share of this name exists"),
                Some(libc::EACCES) => (
                    ErrorKind::AccessDenied,
                    "permission denied by the share's mode",
                ),
                _ => (ErrorKind::OpenFailed, "shm_open"),
            };
            err(kind, what).with_os_error(e)
        })?;
        let st = fstat(&fd).map_err(|e| err(ErrorKind::OpenFailed, "fstat").with_os_error(e))?;
        let len = match usize::try_from(st.size) {
            Ok(0) => {
                return Err(err(
                    ErrorKind::MapFailed,
                    "the share has size 0 (its creator has not sized it)",
                ))
            }
            Ok(len) => len,
            Err(_) => {
                return Err(err(
                    ErrorKind::MapFailed,
                    "the share's size is negative or too large to map",
                ))
            }
        };
        let writable = access == Access::ReadWrite;
        Self::ensure_backed(&fd, len as u64, writable).map_err(|e| e.with_share(name.as_str()))?;
        let map = Self::map(&fd, len, writable)
            .map_err(|e| err(ErrorKind::MapFailed, "mmap").with_os_error(e))?;
        Ok(Segment {
            map,
            len,
            writable,
            fd,
            name: name.clone(),
            id: st.id,
            created: false,
            released: AtomicBool::new(false),
        })
    }

    /// Makes sure every page of the object's `len` bytes has (or can get) memory.
    ///
    /// The holes are measured first (two `lseek` calls for an object without any), so an
    /// attach to an allocated share, the usual case, costs no walk over its pages.
    fn ensure_backed(fd: &OwnedFd, len: u64, writable: bool) -> Result<()> {
        let holes = match hole_bytes(fd, len) {
            Ok(0) => return Ok(()),
            Ok(h) => Some(h),
            // SEEK_HOLE unsupported: the holes cannot be measured.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::MapFailed,
                    "looking for unallocated pages (SEEK_HOLE)",
                )
                .with_os_error(e))
            }
        };
        if writable {
            return match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len) {
                Ok(()) => Ok(()),
                Err(rustix::io::Errno::NOSPC) => Err(Error::new(
                    ErrorKind::MapFailed,
                    format!(
                        "the share's {len} bytes are not all allocated (a share made with \
                         ftruncate, as libmembus does) and /dev/shm has no room to allocate \
                         them; using it would fault (SIGBUS)"
                    ),
                )
                .with_os_error(rustix::io::Errno::NOSPC.into())),
                // A file system without fallocate: nothing to make sure of this way.
                Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
                Err(e) => Err(Error::new(
                    ErrorKind::MapFailed,
                    "allocating the share's pages (fallocate)",
                )
                .with_os_error(e.into())),
            };
        }
        let Some(holes) = holes else {
            return Ok(());
        };
        let free = rustix::fs::fstatvfs(fd)
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
            .unwrap_or(u64::MAX);
        if holes > free {
            return Err(Error::new(
                ErrorKind::MapFailed,
                format!(
                    "{holes} of the share's {len} bytes are not allocated (a share made with \
                     ftruncate, as libmembus does) and /dev/shm has only {free} bytes free; \
                     reading it would fault (SIGBUS)"
                ),
            )
            .with_sizes(holes, free));
        }
        Ok(())
    }

    fn map(fd: &OwnedFd, len: usize, writable: bool) -> std::io::Result<MmapRaw> {
        let mut opts = MmapOptions::new();
        opts.len(len);
        if writable {
            opts.map_raw(fd.as_raw_fd())
        } else {
            opts.map_raw_read_only(fd.as_raw_fd())
        }
    }

    /// Removes `name`. `Ok(false)` when no such share exists.
    pub(crate) fn remove(name: &ShareName) -> Result<bool> {
        let e = match shm_unlink(name) {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(false),
            Some(libc::EACCES | libc::EPERM) => {
                Err(Error::new(ErrorKind::AccessDenied, "shm_unlink")
                    .with_share(name.as_str())
                    .with_os_error(e))
            }
            _ => Err(Error::new(ErrorKind::OpenFailed, "shm_unlink")
                .with_share(name.as_str())
                .with_os_error(e)),
        }
    }

    /// Whether a live membus creator holds `name`'s owner lock.
    ///
    /// The creator takes an exclusive `flock` on its descriptor for as long as it lives; the
    /// kernel drops it when the process dies. libmembus and pymembus creators take no such
    /// lock, so `false` means "no live membus owner", not "unused".
    pub(crate) fn has_live_owner(name: &ShareName) -> Result<bool> {
        let fd = shm_open(name, OFlags::RDONLY, 0).map_err(|e| {
            let kind = if e.raw_os_error() == Some(libc::EACCES) {
                ErrorKind::AccessDenied
            } else {
                ErrorKind::OpenFailed
            };
            Error::new(kind, "shm_open")
                .with_share(name.as_str())
                .with_os_error(e)
        })?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
            // Nobody holds it exclusively. Closing `fd` releases our shared lock.
            Ok(()) => Ok(false),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
            Err(e) => Err(Error::new(ErrorKind::OpenFailed, "flock")
                .with_share(name.as_str())
                .with_os_error(e.into())),
        }
    }

    pub(crate) fn name(&self) -> &ShareName {
        &self.name
    }

    /// Mapped length in bytes (the object's size when it was mapped).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    /// True if this handle created the object.
    pub(crate) fn is_creator(&self) -> bool {
        self.created
    }

    /// The object's device and inode.
    pub(crate) fn file_id(&self) -> FileId {
        self.id
    }

    /// For a creator: removes the name (if it still refers to this object) and gives up
    /// the owner lock, now rather than when the mapping goes. Later calls do nothing; the
    /// mapping stays valid. Handles whose mapping is shared with a helper thread call
    /// this when the user drops them.
    pub(crate) fn release(&self) {
        if !self.created || self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        unlink_if_same(&self.name, self.id);
        // Unlocking a held flock cannot fail in a way we could act on.
        let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
    }

    /// For a creator: keeps the name and gives up ownership, so neither this handle's drop
    /// nor [`release`](Segment::release) removes it (a companion object an attacher had to
    /// create outlives that attacher). Gives up the owner lock too.
    pub(crate) fn disown(&self) {
        if !self.created || self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        // Unlocking a held flock cannot fail in a way we could act on.
        let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
    }

    /// The object's permission bits now.
    pub(crate) fn mode(&self) -> std::io::Result<u32> {
        fstat(&self.fd).map(|st| st.mode & 0o777)
    }

    /// `n` consecutive 8-byte words at `offset` as atomics, if all are in bounds and the
    /// first is 8-byte aligned. Sound for any bytes, as [`atomic_i64`](Self::atomic_i64).
    pub(crate) fn atomic_i64_slice(&self, offset: usize, n: usize) -> Option<&[AtomicI64]> {
        let p = self.range(offset, n.checked_mul(8)?)?;
        if (p as usize) % 8 != 0 {
            return None;
        }
        // SAFETY: `p` is in bounds for n * 8 bytes and 8-byte aligned; AtomicI64 has the size
        // and alignment of i64 and accepts any bit pattern; the mapping outlives the borrow
        // of `self`; atomics tolerate other processes' concurrent writes.
        Some(unsafe { std::slice::from_raw_parts(p.cast::<AtomicI64>(), n) })
    }

    /// Maps the first `len` bytes (at most the mapped length) read-write through a second
    /// descriptor for the same object, reopened via `/proc/self/fd` so it cannot be another
    /// object of the same name. Fails when the object's mode does not let this process
    /// write it.
    pub(crate) fn map_prefix_rw(&self, len: usize) -> std::io::Result<PrefixMap> {
        let len = len.min(self.len);
        if len == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        if fstat(&fd)?.id != self.id {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        Ok(PrefixMap {
            map: Self::map(&fd, len, true)?,
            len,
        })
    }

    /// A copy of the first `n` bytes (fewer if the object is smaller), read with atomic
    /// loads: bytes other processes write meanwhile may be torn.
    pub(crate) fn head(&self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n.min(self.len)];
        // SAFETY: `base()..base() + out.len()` lies inside the mapping (out.len() ≤ len),
        // which lives as long as `self`; the copy uses atomic loads, so concurrent writers
        // only make the copy torn.
        unsafe { crate::sys::copy::copy_from_shared(self.base(), &mut out) };
        out
    }

    /// Start of the mapping. Valid for `len()` bytes while `self` lives.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Pointer to `len` bytes at `offset`, or `None` if they are not all inside the mapping.
    #[inline]
    pub(crate) fn range(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // wrapping_add cannot wrap here (offset ≤ end ≤ len, inside one mapping) and needs no
        // unsafe: the pointer is only dereferenced by callers within those bounds.
        Some(self.base().wrapping_add(offset))
    }

    /// The 8-byte word at `offset` as an atomic, if it is in bounds and 8-byte aligned.
    ///
    /// Handing out `&AtomicI64` is sound for any bytes: every bit pattern is a valid i64,
    /// and atomic accesses tolerate concurrent writes by other processes. On a read-only
    /// mapping only loads may be used (callers with read-only segments never store).
    #[inline]
    pub(crate) fn atomic_i64(&self, offset: usize) -> Option<&AtomicI64> {
        let p = self.range(offset, 8)?;
        if (p as usize) % 8 != 0 {
            return None;
        }
        // SAFETY: `p` is in bounds for 8 bytes, 8-byte aligned, and the mapping outlives the
        // returned reference (it borrows `self`); AtomicI64 has the layout of i64.
        Some(unsafe { AtomicI64::from_ptr(p.cast::<i64>()) })
    }
}

/// A read-write mapping of the start of an object that is otherwise mapped read-only
/// ([`Segment::map_prefix_rw`]). Unmapped on drop.
pub(crate) struct PrefixMap {
    map: MmapRaw,
    len: usize,
}

impl PrefixMap {
    /// The 8-byte word at `offset` as an atomic, if in bounds and aligned. Every bit
    /// pattern is a valid i64 and atomic accesses tolerate other processes' writes.
    pub(crate) fn atomic_i64(&self, offset: usize) -> Option<&AtomicI64> {
        let end = offset.checked_add(8)?;
        if end > self.len || offset % 8 != 0 {
            return None;
        }
        let p = self.map.as_mut_ptr().wrapping_add(offset);
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping, offset % 8 ==
        // 0), and the mapping lives as long as the borrow of `self`.
        Some(unsafe { AtomicI64::from_ptr(p.cast::<i64>()) })
    }

    /// `n` consecutive words at `offset` as atomics, if in bounds and aligned (see
    /// [`Segment::atomic_i64_slice`]).
    pub(crate) fn atomic_i64_slice(&self, offset: usize, n: usize) -> Option<&[AtomicI64]> {
        let end = offset.checked_add(n.checked_mul(8)?)?;
        if end > self.len || offset % 8 != 0 {
            return None;
        }
        let p = self.map.as_mut_ptr().wrapping_add(offset);
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping, offset % 8 ==
        // 0), any bit pattern is a valid AtomicI64, and the mapping lives as long as the
        // borrow of `self`.
        Some(unsafe { std::slice::from_raw_parts(p.cast::<AtomicI64>(), n) })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.release();
        // The mapping is unmapped when `map` drops (nothing borrowed from it outlives
        // `self`: all views borrow the segment), then `fd` closes, which releases the owner
        // lock.
    }
}

/// The user's handle on a reference-counted [`Segment`]. Dropping it gives up the name at
/// once ([`Segment::release`]); the mapping itself goes with the last reference, so a helper
/// thread (the foreign-waiter broadcaster) can keep using it meanwhile.
pub(crate) struct SharedSegment {
    seg: Arc<Segment>,
}

impl SharedSegment {
    /// The user's handle on `seg`.
    pub(crate) fn new(seg: Segment) -> SharedSegment {
        SharedSegment { seg: Arc::new(seg) }
    }

    /// The mapping itself, for a helper that must keep it alive (never gives up the name).
    pub(crate) fn mapping(&self) -> Arc<Segment> {
        Arc::clone(&self.seg)
    }
}

impl std::ops::Deref for SharedSegment {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.seg
    }
}

impl Drop for SharedSegment {
    fn drop(&mut self) {
        self.seg.release();
    }
}

/// Small notes kept beside a share (see `crate::mirror`): whole-file writes and bounded
/// reads of a named object in /dev/shm, never mapped.
pub(crate) mod note {
    use std::io::{Read, Write};

    use rustix::fs::{Mode, OFlags};

    use super::shm_path;
    use crate::name::ShareName;

    /// Replaces the object `name` with `bytes` in one step: a private temporary object is
    /// written and renamed over it, so a reader sees the old note or the new one, never a
    /// mix.
    pub(crate) fn write(name: &ShareName, bytes: &[u8]) -> std::io::Result<()> {
        let path = shm_path(name);
        let tmp = format!("{path}.tmp{}", std::process::id());
        let fd = rustix::fs::open(
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        let mut f = std::fs::File::from(fd);
        let r = f
            .write_all(bytes)
            .and_then(|()| std::fs::rename(&tmp, &path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// The object's first `max + 1` bytes at most (so the caller can tell "too long"), or
    /// `None` when it does not exist.
    pub(crate) fn read(name: &ShareName, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let fd = match rustix::fs::open(
            shm_path(name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let f = std::fs::File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut out = Vec::new();
        f.take(max as u64 + 1).read_to_end(&mut out)?;
        Ok(Some(out))
    }
}
