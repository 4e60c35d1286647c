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

/// The mark of a share membus created: the sticky bit on the object's mode. It means nothing
/// for a regular file on Linux, libmembus and pymembus never set it, and only the object's
/// owner (or root) can change it, so a share that carries it was made by membus.
pub(crate) const MEMBUS_MARK: u32 = libc::S_ISVTX;

/// What a creator does when a share of its name already exists (and no live membus process
/// holds its owner lock; a live owner's share is never replaced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Never replace: report the existing share.
    Never,
    /// Replace a share that membus created ([`MEMBUS_MARK`]) whose creator is dead. A share
    /// without the mark (made by libmembus or pymembus, whose users may still be using it)
    /// is reported, not replaced.
    StaleMembus,
    /// Replace any share without a live membus owner, including a foreign one.
    AnyStale,
}

/// The advice every "already exists" error carries.
const EXISTS_HINT: &str = "if its creator crashed, remove it with `membus rm --stale NAME`";

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
            Err(e)
                if replace != Replace::Never
                    && e.kind() == ErrorKind::CreateFailed
                    && e.errno() == Some(libc::EEXIST) => {}
            _ => return first,
        }
        let err = |kind, what: String| Error::new(kind, what).with_share(name.as_str());
        let old = match shm_open(name, libc::O_RDONLY, 0) {
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
        // SAFETY: `old` is open; a non-blocking exclusive flock returns at once.
        if unsafe { libc::flock(old.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(err(
                ErrorKind::CreateFailed,
                "a share with this name already exists and a live membus process owns it \
                 (or is replacing it right now); it is not replaced: stop that process or \
                 use another name"
                    .into(),
            )
            .with_os_error(std::io::Error::from_raw_os_error(libc::EEXIST)));
        }
        let st = fstat(&old).map_err(|e| {
            err(
                ErrorKind::CreateFailed,
                "fstat of the existing share".into(),
            )
            .with_os_error(e)
        })?;
        if replace == Replace::StaleMembus && st.st_mode & MEMBUS_MARK == 0 {
            return Err(err(
                ErrorKind::CreateFailed,
                "a share with this name already exists and was not created by membus \
                 (libmembus or pymembus made it, and may still be using it); it is not \
                 replaced: if nothing uses it, remove it with `membus rm NAME`, or create \
                 with the `replace_stale(true)` option"
                    .into(),
            )
            .with_os_error(std::io::Error::from_raw_os_error(libc::EEXIST)));
        }
        // Holding the old object's owner lock: nobody else replaces it meanwhile.
        unlink_if_same(name, file_id(&st));
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
        let fd = shm_open(
            name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode as libc::mode_t,
        )
        .map_err(|e| {
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
        // The owner lock first, then the mark: a share that carries the mark but whose lock
        // is free is one whose creator is gone.
        // SAFETY: `fd` is open; a non-blocking exclusive flock on a fresh object cannot block.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return fail(
                err(ErrorKind::CreateFailed, "taking the owner lock (flock)")
                    .with_os_error(last_os_error()),
            );
        }
        // SAFETY: `fd` is open; fchmod only changes the permission bits.
        if unsafe { libc::fchmod(fd.as_raw_fd(), (mode | MEMBUS_MARK) as libc::mode_t) } != 0 {
            return fail(err(ErrorKind::CreateFailed, "fchmod").with_os_error(last_os_error()));
        }
        // Reserve the memory now, so a full /dev/shm is this error, not a SIGBUS later.
        // SAFETY: `fd` is open for writing; offset 0 and a positive length that fits off_t.
        let rc = unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, size as libc::off_t) };
        if rc != 0 {
            let e = last_os_error();
            let what = if e.raw_os_error() == Some(libc::ENOSPC) {
                format!("no room in /dev/shm to reserve the share's {size} bytes")
            } else {
                format!("reserving the share's {size} bytes (fallocate)")
            };
            return fail(err(ErrorKind::CreateFailed, &what).with_os_error(e));
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
    /// mapping stays valid. Handles whose mapping is shared with a background waiter call
    /// this when the user drops them.
    pub(crate) fn release(&self) {
        if !self.created || self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        unlink_if_same(&self.name, self.id);
        // SAFETY: `fd` is open; unlocking a held flock cannot fail in a way we could act on.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
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

/// A reference-counted [`Segment`] with one *primary* handle, the user's. Dropping the
/// primary gives up the name at once ([`Segment::release`]); the mapping itself goes with
/// the last handle, so a background waiter of [`crate::select`] can keep using it meanwhile.
pub(crate) struct SharedSegment {
    seg: Arc<Segment>,
    primary: bool,
}

impl SharedSegment {
    /// The primary handle on `seg`.
    pub(crate) fn new(seg: Segment) -> SharedSegment {
        SharedSegment {
            seg: Arc::new(seg),
            primary: true,
        }
    }

    /// A secondary handle on the same mapping; its drop never gives up the name.
    pub(crate) fn secondary(&self) -> SharedSegment {
        SharedSegment {
            seg: Arc::clone(&self.seg),
            primary: false,
        }
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
        if self.primary {
            self.seg.release();
        }
    }
}
