//! memmap: a raw named shared-memory block with no header, the user's own layout.
//!
//! Access is by copying reads and writes at offsets ([`MemMap::read_at`],
//! [`MemMap::write_at`]), plus aligned 64-bit atomics ([`MemMap::atomic_u64`]) for
//! lock-free flags and counters. No plain `&[u8]` into the block is ever handed out: other
//! processes may write it at any time, and a Rust slice over such bytes would be a data
//! race. Copies racing with another writer may see torn bytes, never undefined behaviour
//! (see the crate's notes on shared memory).
//!
//! A read-only handle ([`MemMap<ReadOnly>`], from [`MemMap::attach_read_only`]) maps the
//! block without write permission and has no write methods.
//!
//! ```no_run
//! use membus::MemMap;
//! # fn main() -> membus::Result<()> {
//! let map = MemMap::create("/scratch", 4096)?;
//! map.write_at(16, b"state")?;
//! let mut buf = [0u8; 5];
//! MemMap::attach_read_only("/scratch")?.read_at(16, &mut buf)?;
//! assert_eq!(&buf, b"state");
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::name::{IntoShareName, ShareName};
use crate::sys::copy::{copy_from_shared, copy_to_shared, fill_shared};
use crate::sys::shm::{Access, Replace, Segment};

mod sealed {
    pub trait Sealed {}
}

/// Access mode of a [`MemMap`]: [`ReadWrite`] or [`ReadOnly`].
pub trait MapAccess: sealed::Sealed {}

/// Type state: the block is mapped readable and writable.
#[derive(Debug)]
pub enum ReadWrite {}
/// Type state: the block is mapped read-only; no write method exists.
#[derive(Debug)]
pub enum ReadOnly {}
impl sealed::Sealed for ReadWrite {}
impl sealed::Sealed for ReadOnly {}
impl MapAccess for ReadWrite {}
impl MapAccess for ReadOnly {}

/// Options for creating a [`MemMap`].
#[derive(Clone, Debug)]
pub struct MapOptions {
    mode: u32,
    replace_stale: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            mode: 0o600,
            replace_stale: false,
        }
    }
}

impl MapOptions {
    /// Owner-only mode (0o600).
    pub fn new() -> MapOptions {
        MapOptions::default()
    }

    /// Permission bits, applied exactly whatever the umask (libmembus uses 0o644).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// On create, also replace an existing block that membus did not create (libmembus,
    /// pymembus or any other program), as long as no live membus process owns it. Default
    /// false.
    ///
    /// Whatever this says, a create replaces a block membus created whose creator has died
    /// (a restart after a crash just works), and never one whose membus creator is alive.
    #[must_use]
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }
}

/// A mapped raw shared-memory block.
pub struct MemMap<A: MapAccess = ReadWrite> {
    seg: Segment,
    _access: PhantomData<A>,
}

impl MemMap<ReadWrite> {
    /// Creates the block `name` of `size` bytes (zero-filled, memory reserved up front,
    /// owner-only mode). The creator removes the name on drop if it still refers to this
    /// block.
    ///
    /// A block of that name left by a membus creator that died is replaced; see
    /// [`MapOptions::replace_stale`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a bad name or size 0; [`ErrorKind::CreateFailed`]
    /// when a live membus process owns a block of that name, when one not made by membus
    /// exists, or when /dev/shm has no room (nothing is left behind).
    pub fn create(name: impl IntoShareName, size: usize) -> Result<MemMap> {
        Self::create_with(name, size, &MapOptions::new())
    }

    /// [`create`](Self::create) with options.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub fn create_with(name: impl IntoShareName, size: usize, opts: &MapOptions) -> Result<MemMap> {
        let name = name.into_share_name()?;
        Ok(MemMap {
            seg: Segment::create_replacing(
                &name,
                size,
                opts.mode,
                if opts.replace_stale {
                    Replace::AnyStale
                } else {
                    Replace::StaleMembus
                },
            )?,
            _access: PhantomData,
        })
    }

    /// Attaches read-write to an existing block of any size.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`] when it does not exist, [`ErrorKind::AccessDenied`] when
    /// its mode forbids writing, [`ErrorKind::MapFailed`] for a 0-byte object.
    pub fn attach(name: impl IntoShareName) -> Result<MemMap> {
        let name = name.into_share_name()?;
        Ok(MemMap {
            seg: Segment::attach(&name, Access::ReadWrite)?,
            _access: PhantomData,
        })
    }

    /// Attaches read-only: the mapping has no write permission and the handle no write
    /// methods.
    ///
    /// # Errors
    /// As for [`attach`](Self::attach).
    pub fn attach_read_only(name: impl IntoShareName) -> Result<MemMap<ReadOnly>> {
        let name = name.into_share_name()?;
        Ok(MemMap {
            seg: Segment::attach(&name, Access::ReadOnly)?,
            _access: PhantomData,
        })
    }

    /// Copies `data` into the block at `offset`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `offset + data.len()` exceeds the block; nothing
    /// is written then.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.bounds(offset, data.len())?;
        // SAFETY: `dst` is bounds-checked for data.len() bytes of this writable mapping,
        // which lives as long as `self`.
        unsafe { copy_to_shared(dst, data) };
        Ok(())
    }

    /// libmembus's `write(s)`: copies `min(data.len(), len())` bytes to offset 0 and returns
    /// that count.
    pub fn write(&self, data: &[u8]) -> usize {
        let n = data.len().min(self.len());
        // SAFETY: n ≤ len(), so the range is inside this writable mapping.
        unsafe { copy_to_shared(self.seg.base(), &data[..n]) };
        n
    }

    /// Sets `len` bytes at `offset` to `byte`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when the range exceeds the block.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        let dst = self.bounds(offset, len)?;
        // SAFETY: `dst` is bounds-checked for `len` bytes of this writable mapping.
        unsafe { fill_shared(dst, byte, len) };
        Ok(())
    }

    /// The aligned 64-bit word at `offset` as an atomic, for flags, counters and
    /// hand-rolled protocols between processes.
    ///
    /// Sound because every bit pattern is a valid `u64` and atomic operations tolerate
    /// concurrent access from other processes; the reference borrows `self`, so the block
    /// stays mapped while it lives.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `offset` is not a multiple of 8 or the word is
    /// outside the block.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let p = self.word(offset)?;
        // SAFETY: `p` is in bounds for 8 bytes and 8-aligned (checked by `word`), the mapping
        // is writable and outlives the returned borrow of `self`.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }
}

impl<A: MapAccess> MemMap<A> {
    fn bounds(&self, offset: usize, len: usize) -> Result<*mut u8> {
        self.seg.range(offset, len).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{len} bytes at offset {offset} run past the end of the {}-byte block",
                    self.len()
                ),
            )
            .with_share(self.name().as_str())
            .with_sizes(self.len() as u64, offset.saturating_add(len) as u64)
        })
    }

    fn word(&self, offset: usize) -> Result<*mut u8> {
        if offset % 8 != 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("offset {offset} is not 8-byte aligned"),
            )
            .with_share(self.name().as_str()));
        }
        self.bounds(offset, 8)
    }

    /// The block's name.
    pub fn name(&self) -> &ShareName {
        self.seg.name()
    }

    /// Size of the block in bytes (the object's size when it was mapped).
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// Always false: a share has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.seg.len() == 0
    }

    /// True if the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.seg.is_writable()
    }

    /// True if this handle created the block (and removes it on drop).
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when the range exceeds the block.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src = self.bounds(offset, buf.len())?;
        // SAFETY: `src` is bounds-checked for buf.len() bytes of the mapping, which lives as
        // long as `self`; concurrent writers can only make the copy torn.
        unsafe { copy_from_shared(src, buf) };
        Ok(())
    }

    /// libmembus's `read(sz)`: the first `min(n, len())` bytes, or the whole block when
    /// `n` is 0.
    pub fn read(&self, n: usize) -> Vec<u8> {
        let n = if n == 0 {
            self.len()
        } else {
            n.min(self.len())
        };
        let mut v = vec![0u8; n];
        // SAFETY: n ≤ len(): the range is inside the mapping.
        unsafe { copy_from_shared(self.seg.base(), &mut v) };
        v
    }

    /// Atomically loads the aligned 64-bit word at `offset`, with Acquire semantics: pairs
    /// with whatever Release store the writing process used (e.g. [`AtomicU64::store`]
    /// through [`MemMap::atomic_u64`]).
    ///
    /// # Errors
    /// As for [`MemMap::atomic_u64`].
    pub fn load_u64(&self, offset: usize) -> Result<u64> {
        let p = self.word(offset)?;
        // SAFETY: in bounds and aligned (checked by `word`). The mapping may be read-only:
        // Rust allows only Relaxed loads of at most register width there, so the load is
        // Relaxed and the fence below supplies the Acquire ordering.
        let v = unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed);
        // Acquire fence after the Relaxed load = an Acquire load (pairs as documented above).
        fence(Ordering::Acquire);
        Ok(v)
    }
}

/// Raw access for exporting the block to code that cannot borrow (a Python buffer).
impl<A: MapAccess> MemMap<A> {
    /// A raw pointer to the block's first byte; [`len`](Self::len) bytes follow.
    ///
    /// # Safety
    /// The pointer is valid only while this handle is alive (dropping it unmaps the block);
    /// the caller must not use it afterwards. Writing through it is allowed only for a
    /// [`ReadWrite`] handle (a read-only mapping faults). Other processes may read and
    /// write the bytes at any time: the caller must not create Rust references to them
    /// except to types for which any bit pattern is valid and concurrent changes are
    /// acceptable (`u8` and other bytemuck `Pod` types), and must not rely on them staying
    /// unchanged.
    pub unsafe fn as_ptr(&self) -> *mut u8 {
        self.seg.base()
    }
}
