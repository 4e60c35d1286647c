//! memcmd: a multi-producer broadcast command channel, byte-compatible with
//! libmembus 2.1 and pymembus 2.2.
//!
//! Every [`MemCmd`] handle may write; writers are serialised by the share's lock and each
//! message takes the next global sequence number. Every handle also reads, at its own
//! position. Handles opened as readers (the default) are counted in the share's reader
//! count while they live.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::memcmd::MemCmd;
//!
//! # fn main() -> membus::Result<()> {
//! let mut control = MemCmd::create("/camera-cmd", 4096)?;
//! let sender = MemCmd::attach("/camera-cmd")?;
//! sender.write(b"pan-left")?;
//! let (_seq, cmd) = control.read(Duration::from_secs(1))?.into_result()?;
//! assert_eq!(cmd, b"pan-left");
//! # Ok(()) }
//! ```
//!
//! The same improvements over libmembus as [`memmsg`](crate::memmsg) apply.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::layout::ring::RingKind;
use crate::name::{IntoShareName, ShareName};
use crate::ring::{reader_methods, QueueOptions, Ring, RingReader};
#[allow(unused_imports)] // named by the generated docs
use crate::{ErrorKind, Received};

/// A handle on a memcmd share: writes commands and reads everyone's.
pub struct MemCmd {
    reader: RingReader,
    registered: bool,
}

impl MemCmd {
    /// Creates the share `name` with ring capacity `capacity` bytes, registered as a reader.
    ///
    /// # Errors
    /// As for [`memmsg::Writer::create`](crate::memmsg::Writer::create).
    pub fn create(name: impl IntoShareName, capacity: usize) -> Result<MemCmd> {
        Self::create_with(name, capacity, &QueueOptions::new())
    }

    /// [`create`](Self::create) with options.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub fn create_with(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<MemCmd> {
        let name = name.into_share_name()?;
        Self::register(Ring::create(&name, RingKind::Cmd, capacity, opts)?, opts)
    }

    /// Attaches to an existing share.
    ///
    /// # Errors
    /// As for [`memmsg::Reader::attach`](crate::memmsg::Reader::attach).
    pub fn attach(name: impl IntoShareName) -> Result<MemCmd> {
        Self::attach_with(name, &QueueOptions::new())
    }

    /// [`attach`](Self::attach) with options (registration, start position, capacity).
    ///
    /// # Errors
    /// As for [`attach`](Self::attach), and [`ErrorKind::SizeMismatch`].
    pub fn attach_with(name: impl IntoShareName, opts: &QueueOptions) -> Result<MemCmd> {
        let name = name.into_share_name()?;
        Self::register(Ring::attach(&name, RingKind::Cmd, opts)?, opts)
    }

    /// Attaches, or creates the share when it does not exist yet: libmembus's
    /// `memcmd.open(name, size, bReader, true)`.
    ///
    /// # Errors
    /// As for [`memmsg::Writer::open_or_create`](crate::memmsg::Writer::open_or_create).
    pub fn open_or_create(name: impl IntoShareName, capacity: usize) -> Result<MemCmd> {
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
    ) -> Result<MemCmd> {
        let name = name.into_share_name()?;
        Self::register(
            Ring::open_or_create(&name, RingKind::Cmd, capacity, opts)?.0,
            opts,
        )
    }

    fn register(ring: Ring, opts: &QueueOptions) -> Result<MemCmd> {
        let reader = RingReader::new(ring, opts.start)?;
        if opts.register_reader {
            // Relaxed: the count is bookkeeping only, as in libmembus (relaxed RMW).
            reader.ring.readers_word().fetch_add(1, Ordering::Relaxed);
        }
        Ok(MemCmd {
            reader,
            registered: opts.register_reader,
        })
    }

    /// Appends one command and wakes waiting readers; returns its sequence number.
    ///
    /// # Errors
    /// As for [`memmsg::Writer::write`](crate::memmsg::Writer::write).
    pub fn write(&self, msg: &[u8]) -> Result<u64> {
        self.reader.ring.write(msg)
    }

    reader_methods!();

    /// How many registered reader handles the share counts. A crashed peer's registration
    /// is never withdrawn (libmembus behaviour), so this can be too high.
    pub fn reader_count(&self) -> i64 {
        // Relaxed: a statistic, as libmembus reads it.
        self.reader.ring.readers_word().load(Ordering::Relaxed)
    }

    /// The share's name.
    pub fn name(&self) -> &ShareName {
        self.reader.ring.name()
    }

    /// Ring capacity S in bytes.
    pub fn capacity(&self) -> usize {
        self.reader.ring.layout().capacity()
    }

    /// The longest command that fits.
    pub fn max_message_len(&self) -> usize {
        self.reader.ring.layout().max_message_len()
    }

    /// The creator's session id.
    pub fn session_id(&self) -> i64 {
        self.reader.ring.session_id()
    }

    /// The last sequence number issued.
    pub fn seq(&self) -> u64 {
        self.reader.ring.last_seq()
    }

    /// True if this handle created the share (and removes it on drop).
    pub fn is_creator(&self) -> bool {
        self.reader.ring.is_creator()
    }
}

impl Drop for MemCmd {
    fn drop(&mut self) {
        if self.registered {
            // Relaxed: bookkeeping only (libmembus: relaxed RMW on close).
            self.reader
                .ring
                .readers_word()
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

crate::select::impl_selectable!(MemCmd, reader);
