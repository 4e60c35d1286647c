//! Named POSIX shared-memory objects and their mappings.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::name::ShareName;
use crate::sys::last_os_error;

/// Identity of a file: device and inode. Two handles name the same object iff they match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open descriptor owned by the caller; `st` is valid and writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_os_error());
    }
    Ok(st)
}

fn file_id(st: &libc::stat) -> FileId {
    FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

fn shm_open(name: &ShareName, flags: libc::c_int, mode: libc::mode_t) -> std::io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated C string that outlives the call. glibc's
    // shm_open adds O_NOFOLLOW and O_CLOEXEC itself.
    let fd = unsafe { libc::shm_open(name.as_c_str().as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unlinks `name` only if it still refers to the object `id`.
///
/// There is an unavoidable window between the identity check and the unlink in which
/// another process could replace the object; it is a few instructions wide, where libmembus
/// unlinks by name unconditionally.
fn unlink_if_same(name: &ShareName, id: FileId) {
    let Ok(fd) = shm_open(name, libc::O_RDONLY, 0) else {
        return;
    };
    let same = fstat(&fd).map(|st| file_id(&st) == id).unwrap_or(false);
    drop(fd);
    if same {
        // SAFETY: valid NUL-terminated name; failure (already gone) is harmless.
        unsafe { libc::shm_unlink(name.as_c_str().as_ptr()) };
    }
}

/// One mapped named shared-memory object.
///
/// This is the private owner of the raw mapping pointer: it hands out bounds-checked
/// pointers and atomics, never plain references to bytes other processes may write.
pub(crate) struct Segment {
    ptr: NonNull<u8>,
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

// SAFETY: the mapping is process-wide memory, valid on any thread until `Drop` unmaps it;
// Segment exposes it only through raw pointers and atomics, whose users state their own
// synchronisation, so moving or sharing the owner between threads adds no data race.
unsafe impl Send for Segment {}
// SAFETY: see `Send`; `&Segment` only gives out raw pointers and `&AtomicI64`.
unsafe impl Sync for Segment {}

/// Which access an attacher asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
}

impl Segment {
    /// Creates `name` exclusively (O_CREAT|O_EXCL) with `size` bytes reserved up front and
    /// the permission bits `mode` exactly (whatever the umask), takes the owner lock, and
    /// maps it read-write. On any failure nothing is left behind.
    pub(crate) fn create(name: &ShareName, size: usize, mode: u32) -> Result<Segment> {
        let err = |kind, what: &'static str| Error::new(kind, what).with_share(name.as_str());
        if size == 0 || i64::try_from(size).is_err() {
            return Err(err(
                ErrorKind::InvalidArgument,
                "share size must be between 1 and i64::MAX",
            )
            .with_sizes(1, size as u64));
        }
        if mode & !0o777 != 0 {
            return Err(err(
                ErrorKind::InvalidArgument,
                "permission mode has bits outside 0o777",
            )
            .with_sizes(0o777, u64::from(mode)));
        }
        let fd = shm_open(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, mode as libc::mode_t)
            .map_err(|e| {
                let what = if e.raw_os_error() == Some(libc::EEXIST) {
                    "a share with this name already exists (another creator won the race, or a stale share is left)"
                } else {
                    "shm_open(O_CREAT|O_EXCL)"
                };
                let kind = if e.raw_os_error() == Some(libc::EACCES) {
                    ErrorKind::AccessDenied
                } else {
                    ErrorKind::CreateFailed
                };
                err(kind, what).with_os_error(e)
            })?;
        // From here on the object exists: every failure must unlink it.
        let id = match fstat(&fd) {
            Ok(st) => file_id(&st),
            Err(e) => {
                // Without an identity we cannot unlink safely; unlink by name, which is ours
                // a moment ago (O_EXCL), rather than leave an orphan.
                // SAFETY: valid NUL-terminated name.
                unsafe { libc::shm_unlink(name.as_c_str().as_ptr()) };
                return Err(err(ErrorKind::CreateFailed, "fstat").with_os_error(e));
            }
        };
        let fail = |e: Error| {
            unlink_if_same(name, id);
            Err(e)
        };
        // SAFETY: `fd` is open; fchmod only changes the permission bits.
        if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
            return fail(err(ErrorKind::CreateFailed, "fchmod").with_os_error(last_os_error()));
        }
        // SAFETY: `fd` is open; a non-blocking exclusive flock on a fresh object cannot block.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return fail(
                err(ErrorKind::CreateFailed, "taking the owner lock (flock)")
                    .with_os_error(last_os_error()),
            );
        }
        // Reserve the memory now, so a full /dev/shm is this error, not a SIGBUS later.
        // SAFETY: `fd` is open for writing; offset 0 and a positive length that fits off_t.
        let rc = unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, size as libc::off_t) };
        if rc != 0 {
            let e = last_os_error();
            let what = if e.raw_os_error() == Some(libc::ENOSPC) {
                "no room in /dev/shm to reserve the share"
            } else {
                "reserving the share's memory (fallocate)"
            };
            return fail(
                err(ErrorKind::CreateFailed, what)
                    .with_sizes(size as u64, 0)
                    .with_os_error(e),
            );
        }
        match Self::map(&fd, size, true) {
            Ok(ptr) => Ok(Segment {
                ptr,
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
    pub(crate) fn attach(name: &ShareName, access: Access) -> Result<Segment> {
        let err = |kind, what: &'static str| Error::new(kind, what).with_share(name.as_str());
        let flags = match access {
            Access::ReadOnly => libc::O_RDONLY,
            Access::ReadWrite => libc::O_RDWR,
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
        let len = match usize::try_from(st.st_size) {
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
        let ptr = Self::map(&fd, len, writable)
            .map_err(|e| err(ErrorKind::MapFailed, "mmap").with_os_error(e))?;
        Ok(Segment {
            ptr,
            len,
            writable,
            fd,
            name: name.clone(),
            id: file_id(&st),
            created: false,
            released: AtomicBool::new(false),
        })
    }

    fn map(fd: &OwnedFd, len: usize, writable: bool) -> std::io::Result<NonNull<u8>> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of an open descriptor at a kernel-chosen address;
        // it aliases no Rust object. `len` > 0 is checked by both callers.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_os_error());
        }
        NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Removes `name`. `Ok(false)` when no such share exists.
    pub(crate) fn remove(name: &ShareName) -> Result<bool> {
        // SAFETY: valid NUL-terminated name.
        if unsafe { libc::shm_unlink(name.as_c_str().as_ptr()) } == 0 {
            return Ok(true);
        }
        let e = last_os_error();
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
        let fd = shm_open(name, libc::O_RDONLY, 0).map_err(|e| {
            let kind = if e.raw_os_error() == Some(libc::EACCES) {
                ErrorKind::AccessDenied
            } else {
                ErrorKind::OpenFailed
            };
            Error::new(kind, "shm_open")
                .with_share(name.as_str())
                .with_os_error(e)
        })?;
        // SAFETY: `fd` is open; a non-blocking shared flock returns at once.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            // Nobody holds it exclusively. Closing `fd` releases our shared lock.
            return Ok(false);
        }
        let e = last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(true)
        } else {
            Err(Error::new(ErrorKind::OpenFailed, "flock")
                .with_share(name.as_str())
                .with_os_error(e))
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
        // SAFETY: `fd` is open; unlocking a held flock cannot fail in a way we could act on.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
    }

    /// For a creator: keeps the name and gives up ownership, so neither this handle's drop
    /// nor [`release`](Segment::release) removes it (a companion object an attacher had to
    /// create outlives that attacher). Gives up the owner lock too.
    pub(crate) fn disown(&self) {
        if !self.created || self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: `fd` is open; unlocking a held flock cannot fail in a way we could act on.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
    }

    /// The object's permission bits now.
    pub(crate) fn mode(&self) -> std::io::Result<u32> {
        fstat(&self.fd).map(|st| st.st_mode & 0o777)
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
        let path = std::ffi::CString::new(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid NUL-terminated path; the returned descriptor is owned below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_os_error());
        }
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let same = fstat(&fd).map(|st| file_id(&st) == self.id)?;
        if !same {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        let ptr = Self::map(&fd, len, true)?;
        Ok(PrefixMap { ptr, len })
    }

    /// Start of the mapping. Valid for `len()` bytes while `self` lives.
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Pointer to `len` bytes at `offset`, or `None` if they are not all inside the mapping.
    #[inline]
    pub(crate) fn range(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: offset ≤ end ≤ self.len, so the result stays inside (or one past) the
        // mapping, which is a single allocation of `self.len` bytes.
        Some(unsafe { self.ptr.as_ptr().add(offset) })
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
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: as for Segment: process-wide memory used only through atomics.
unsafe impl Send for PrefixMap {}
// SAFETY: as above.
unsafe impl Sync for PrefixMap {}

impl PrefixMap {
    /// The 8-byte word at `offset` as an atomic, if in bounds and aligned. Every bit
    /// pattern is a valid i64 and atomic accesses tolerate other processes' writes.
    pub(crate) fn atomic_i64(&self, offset: usize) -> Option<&AtomicI64> {
        let end = offset.checked_add(8)?;
        if end > self.len || offset % 8 != 0 {
            return None;
        }
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping, offset % 8 ==
        // 0), and the mapping lives as long as the borrow of `self`.
        Some(unsafe { AtomicI64::from_ptr(self.ptr.as_ptr().add(offset).cast::<i64>()) })
    }
}

impl PrefixMap {
    /// `n` consecutive words at `offset` as atomics, if in bounds and aligned (see
    /// [`Segment::atomic_i64_slice`]).
    pub(crate) fn atomic_i64_slice(&self, offset: usize, n: usize) -> Option<&[AtomicI64]> {
        let end = offset.checked_add(n.checked_mul(8)?)?;
        if end > self.len || offset % 8 != 0 {
            return None;
        }
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping, offset % 8 ==
        // 0), any bit pattern is a valid AtomicI64, and the mapping lives as long as the
        // borrow of `self`.
        Some(unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<AtomicI64>(), n)
        })
    }
}

impl Drop for PrefixMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping made in `map_prefix_rw`; references from
        // `atomic_i64` borrow `self`, so none outlive it.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap failed");
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.release();
        // SAFETY: `ptr`/`len` describe the mapping made in `map`; nothing borrowed from it can
        // outlive `self` (all views borrow the segment).
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap failed");
        // `fd` closes after this, which releases the owner lock.
        let _ = self.fd.as_raw_fd();
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
