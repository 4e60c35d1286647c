//! memmsg: a single-producer broadcast message queue, byte-compatible with
//! libmembus 2.1 and pymembus 2.2.
//!
//! A [`Writer`] appends variable-length messages to a ring; any number of [`Reader`]s each
//! follow it at their own pace. A reader that falls a whole ring behind is told how many
//! messages it lost ([`Received::Overrun`]). The two roles are different types: a reader
//! has no write method.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::memmsg::{Reader, Writer};
//! use membus::Received;
//!
//! # fn main() -> membus::Result<()> {
//! let writer = Writer::create("/hello", 1024)?;
//! let mut reader = Reader::attach("/hello")?;
//! writer.write(b"hello")?;
//! if let Received::Message { seq, payload } = reader.read(Duration::from_millis(100))? {
//!     println!("#{seq}: {}", String::from_utf8_lossy(&payload));
//! }
//! # Ok(()) }
//! ```
//!
//! Differences from libmembus that a peer cannot observe on the wire: a message whose frame
//! would not fit in the ring is refused at write time; a new reader starts at the
//! current write position unless [`Start::Oldest`](crate::Start::Oldest) is asked for;
//! exact laps and a read position at exactly the capacity are detected as overruns; a
//! reader from the oldest message is told how many were overwritten before it started;
//! waits sleep on a futex (never in the share's glibc condition, where a killed waiter
//! would block every later broadcast) and loop over spurious wake-ups until their
//! deadline; a peer that died holding the lock of a share membus created is recovered
//! from.

use crate::error::Result;
use crate::layout::ring::RingKind;
use crate::name::{IntoShareName, ShareName};
use crate::ring::{reader_methods, QueueOptions, Ring, RingReader};
#[allow(unused_imports)] // named by the generated docs
use crate::{ErrorKind, Received};

/// The writing end of a memmsg share. Creating it creates the share; dropping the creator
/// removes the name (if it still refers to this share).
pub struct Writer {
    ring: Ring,
}

impl Writer {
    /// Creates the share `name` with ring capacity `capacity` bytes (owner-only mode).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a bad name or capacity 0;
    /// [`ErrorKind::CreateFailed`] when the name exists (see
    /// [`has_live_owner`](crate::has_live_owner) and [`remove`](crate::remove)) or /dev/shm
    /// is full.
    pub fn create(name: impl IntoShareName, capacity: usize) -> Result<Writer> {
        Self::create_with(name, capacity, &QueueOptions::new())
    }

    /// [`create`](Self::create) with options (mode, lock timeout).
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub fn create_with(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Writer> {
        let name = name.into_share_name()?;
        Ok(Writer {
            ring: Ring::create(&name, RingKind::Msg, capacity, opts)?,
        })
    }

    /// Attaches to the share if it exists (checking that its capacity is `capacity`),
    /// creates it otherwise: libmembus's `memmsg.open(name, size, true, true)`.
    ///
    /// # Errors
    /// [`ErrorKind::SizeMismatch`] when the existing share has another capacity, and the
    /// errors of [`create`](Self::create) and [`attach`](Self::attach).
    pub fn open_or_create(name: impl IntoShareName, capacity: usize) -> Result<Writer> {
        Self::open_or_create_with(name, capacity, &QueueOptions::new())
    }

    /// [`open_or_create`](Self::open_or_create) with options.
    ///
    /// # Errors
    /// As for [`open_or_create`](Self::open_or_create).
    pub fn open_or_create_with(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Writer> {
        let name = name.into_share_name()?;
        Ok(Writer {
            ring: Ring::open_or_create(&name, RingKind::Msg, capacity, opts)?.0,
        })
    }

    /// Attaches to an existing share as its writer (for shares a reader created).
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`] when it does not exist, [`ErrorKind::MapFailed`] for an
    /// empty object, [`ErrorKind::InvalidLayout`] when it is not a memmsg share.
    pub fn attach(name: impl IntoShareName) -> Result<Writer> {
        Self::attach_with(name, &QueueOptions::new())
    }

    /// [`attach`](Self::attach) with options (expected capacity, lock timeout).
    ///
    /// # Errors
    /// As for [`attach`](Self::attach), and [`ErrorKind::SizeMismatch`].
    pub fn attach_with(name: impl IntoShareName, opts: &QueueOptions) -> Result<Writer> {
        let name = name.into_share_name()?;
        Ok(Writer {
            ring: Ring::attach(&name, RingKind::Msg, opts)?,
        })
    }

    /// Appends one message and wakes waiting readers; returns its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an empty message; [`ErrorKind::MessageTooLarge`]
    /// when `msg.len()` exceeds [`max_message_len`](Self::max_message_len) (nothing is
    /// written); [`ErrorKind::LockTimeout`]/[`ErrorKind::LockFailed`] when the lock cannot
    /// be taken.
    pub fn write(&self, msg: &[u8]) -> Result<u64> {
        self.ring.write(msg)
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.ring.name()
    }

    /// Ring capacity S in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.layout().capacity()
    }

    /// The longest message that fits: `capacity` rounded down to 8, minus 16.
    pub fn max_message_len(&self) -> usize {
        self.ring.layout().max_message_len()
    }

    /// The creator's session id.
    pub fn session_id(&self) -> i64 {
        self.ring.session_id()
    }

    /// The last sequence number issued.
    pub fn seq(&self) -> u64 {
        self.ring.last_seq()
    }

    /// True if this handle created the share (and removes it on drop).
    pub fn is_creator(&self) -> bool {
        self.ring.is_creator()
    }
}

/// The reading end of a memmsg share. It has no way to write.
pub struct Reader {
    reader: RingReader,
}

impl Reader {
    /// Attaches to an existing share; reading starts at the current write position.
    ///
    /// # Errors
    /// [`ErrorKind::OpenFailed`] when it does not exist, [`ErrorKind::MapFailed`] for an
    /// empty object, [`ErrorKind::InvalidLayout`] when it is not a memmsg share.
    pub fn attach(name: impl IntoShareName) -> Result<Reader> {
        Self::attach_with(name, &QueueOptions::new())
    }

    /// [`attach`](Self::attach) with options (start position, expected capacity, spin).
    ///
    /// # Errors
    /// As for [`attach`](Self::attach), and [`ErrorKind::SizeMismatch`].
    pub fn attach_with(name: impl IntoShareName, opts: &QueueOptions) -> Result<Reader> {
        let name = name.into_share_name()?;
        let ring = Ring::attach(&name, RingKind::Msg, opts)?;
        Ok(Reader {
            reader: RingReader::new(ring, opts.start)?,
        })
    }

    /// Attaches, or creates the share when it does not exist yet (libmembus's
    /// `memmsg.open(name, size, false, true)`); the creator removes it on drop.
    ///
    /// # Errors
    /// As for [`Writer::open_or_create`].
    pub fn open_or_create(name: impl IntoShareName, capacity: usize) -> Result<Reader> {
        Self::open_or_create_with(name, capacity, &QueueOptions::new())
    }

    /// [`open_or_create`](Self::open_or_create) with options.
    ///
    /// # Errors
    /// As for [`Writer::open_or_create`].
    pub fn open_or_create_with(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Reader> {
        let name = name.into_share_name()?;
        let ring = Ring::open_or_create(&name, RingKind::Msg, capacity, opts)?.0;
        Ok(Reader {
            reader: RingReader::new(ring, opts.start)?,
        })
    }

    reader_methods!();

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.reader.ring.name()
    }

    /// Ring capacity S in bytes.
    pub fn capacity(&self) -> usize {
        self.reader.ring.layout().capacity()
    }

    /// The creator's session id: compare it to notice that the share was re-created.
    pub fn session_id(&self) -> i64 {
        self.reader.ring.session_id()
    }
}

/// Ownership, as on the writer.
impl Reader {
    /// True if this handle created the share ([`open_or_create`](Self::open_or_create)
    /// found none) and removes it on drop.
    pub fn is_creator(&self) -> bool {
        self.reader.ring.is_creator()
    }
}

crate::select::impl_selectable!(Reader, reader);
