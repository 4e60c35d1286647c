//! memmsg and memcmd layout.

use crate::error::{Error, ErrorKind, Result};
use crate::layout::align_up;

/// Size of the glibc mutex embedded in the header (x86_64).
pub const MUTEX_SIZE: usize = 40;
/// Size of the glibc condition embedded in the header (x86_64).
pub const COND_SIZE: usize = 48;

/// Slack after the logical capacity S: room for the trailing zero word and frame headers.
pub const SLACK: usize = 2 * (16 + 7);

/// Header field offsets shared by memmsg and memcmd.
pub const OFF_SIZE: usize = 0;
/// Byte offset W of the next frame, relative to the ring data area.
pub const OFF_WRITE: usize = 8;
/// Last sequence number issued (0 = none yet).
pub const OFF_SEQ: usize = 16;
/// Session id.
pub const OFF_ID: usize = 24;
/// memcmd only: registered reader count.
pub const OFF_READERS: usize = 32;

/// Bytes of a frame header: length word and sequence word.
pub const FRAME_HEADER: usize = 16;

/// Which of the two ring share types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingKind {
    /// Single-producer broadcast queue (header 120 bytes).
    Msg,
    /// Multi-producer command channel (header 128 bytes, with a reader count).
    Cmd,
}

impl RingKind {
    /// The share type's name as libmembus spells it.
    pub const fn type_name(self) -> &'static str {
        match self {
            RingKind::Msg => "memmsg",
            RingKind::Cmd => "memcmd",
        }
    }

    /// Offset of the mutex in the header.
    pub const fn mutex_offset(self) -> usize {
        match self {
            RingKind::Msg => 32,
            RingKind::Cmd => 40,
        }
    }

    /// Offset of the condition in the header.
    pub const fn cond_offset(self) -> usize {
        self.mutex_offset() + MUTEX_SIZE
    }

    /// Header length H = start of the ring data area (120 or 128).
    pub const fn header_len(self) -> usize {
        self.cond_offset() + COND_SIZE
    }

    /// Object size minus capacity (166 or 174).
    pub const fn overhead(self) -> usize {
        self.header_len() + SLACK
    }

    /// The other ring kind (used to explain a memmsg/memcmd mix-up).
    pub const fn other(self) -> RingKind {
        match self {
            RingKind::Msg => RingKind::Cmd,
            RingKind::Cmd => RingKind::Msg,
        }
    }
}

/// Where a frame at some ring offset stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The length word is the wrap marker (0), negative, or the frame would not fit before
    /// the end of the logical capacity: the next frame is at ring offset 0.
    Wrap,
    /// A frame of `len` payload bytes occupying `stride` bytes.
    Valid {
        /// Payload length.
        len: usize,
        /// Bytes the frame occupies, `align_up(16 + len, 8)`.
        stride: usize,
    },
}

/// The layout of one memmsg or memcmd share of capacity S.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    kind: RingKind,
    capacity: usize,
}

impl RingLayout {
    /// The layout for capacity `capacity` (S). Accepted: `1 ≤ S ≤ i64::MAX − overhead`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] outside that range.
    pub fn new(kind: RingKind, capacity: u64) -> Result<RingLayout> {
        let max = i64::MAX as u64 - kind.overhead() as u64;
        if capacity == 0 || capacity > max || usize::try_from(capacity).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} capacity {capacity} is not in 1..={max}",
                    kind.type_name()
                ),
            )
            .with_sizes(max, capacity));
        }
        Ok(RingLayout {
            kind,
            capacity: capacity as usize,
        })
    }

    /// Validates the capacity recorded in a header (`size_field`) against the object's size.
    ///
    /// libmembus always sizes the object to exactly S + overhead, so anything else is a
    /// foreign or corrupt object; a size that fits the other ring type exactly is named.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`].
    pub fn from_header(kind: RingKind, size_field: i64, object_size: usize) -> Result<RingLayout> {
        let layout = u64::try_from(size_field)
            .ok()
            .and_then(|s| RingLayout::new(kind, s).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidLayout,
                    format!(
                        "header capacity {size_field} is not a valid {} capacity",
                        kind.type_name()
                    ),
                )
            })?;
        if layout.object_size() != object_size {
            let other = kind.other();
            let hint = if layout.capacity.checked_add(other.overhead()) == Some(object_size) {
                format!(
                    "object size fits a {} share, not a {}",
                    other.type_name(),
                    kind.type_name()
                )
            } else {
                format!(
                    "the object has {object_size} bytes, not capacity {} + {} bytes of overhead",
                    layout.capacity,
                    kind.overhead()
                )
            };
            return Err(Error::new(ErrorKind::InvalidLayout, hint)
                .with_sizes(layout.object_size() as u64, object_size as u64));
        }
        Ok(layout)
    }

    /// The share type.
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    /// Logical capacity S.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Size of the shared-memory object: S + overhead.
    pub fn object_size(&self) -> usize {
        self.capacity + self.kind.overhead()
    }

    /// Offset of the ring data area in the object.
    pub fn ring_offset(&self) -> usize {
        self.kind.header_len()
    }

    /// Bytes of the ring data area: S + 46.
    pub fn ring_len(&self) -> usize {
        self.capacity + SLACK
    }

    /// Bytes a frame of `len` payload bytes occupies: `align_up(16 + len, 8)`.
    pub fn stride(len: usize) -> Option<usize> {
        let s = align_up((len as u64).checked_add(FRAME_HEADER as u64)?, 8)?;
        usize::try_from(s).ok()
    }

    /// The longest message a reader can ever read back: stride(len) ≤ S . 0 when
    /// S is too small for any frame.
    pub fn max_message_len(&self) -> usize {
        (self.capacity / 8 * 8).saturating_sub(FRAME_HEADER)
    }

    /// Checks a message length before writing.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an empty message (length 0 is the wrap marker);
    /// [`ErrorKind::MessageTooLarge`] when the frame would not fit in the capacity.
    #[inline]
    pub fn check_message(&self, len: usize) -> Result<usize> {
        let max = self.max_message_len();
        if len == 0 || len > max {
            return Err(self.bad_message(len));
        }
        // len ≤ max < capacity: rounding up to 8 is a mask and cannot overflow.
        Ok((len + FRAME_HEADER + 7) & !7)
    }

    /// The error for a message `check_message` refuses (out of line: a write's own path
    /// stays short).
    #[cold]
    #[inline(never)]
    fn bad_message(&self, len: usize) -> Error {
        if len == 0 {
            return Error::new(
                ErrorKind::InvalidArgument,
                "empty messages cannot be sent (length 0 marks the ring's wrap point)",
            );
        }
        let max = self.max_message_len();
        Error::new(
            ErrorKind::MessageTooLarge,
            if max == 0 {
                format!(
                    "a message of {len} bytes does not fit: the ring capacity {} is too \
                     small for any message (a frame takes 16 bytes plus the message, \
                     rounded up to 8)",
                    self.capacity
                )
            } else {
                format!(
                    "a message of {len} bytes does not fit: this ring (capacity {}) \
                     takes messages of at most {max} bytes",
                    self.capacity
                )
            },
        )
        .with_sizes(max as u64, len as u64)
    }

    /// Validates a write offset W read from the header: 0 ≤ W ≤ S and 8-aligned.
    pub fn check_write(&self, w: i64) -> Option<usize> {
        let w = usize::try_from(w).ok()?;
        (w <= self.capacity && w % 8 == 0).then_some(w)
    }

    /// Classifies the frame at ring offset `r` (0 ≤ r ≤ S) whose length word is `len_word`.
    /// A `Valid` frame satisfies `r + stride ≤ S`, so its header and payload are inside the
    /// ring data area.
    pub fn frame_at(&self, r: usize, len_word: i64) -> Frame {
        let Ok(len) = usize::try_from(len_word) else {
            return Frame::Wrap;
        };
        if len == 0 || r > self.capacity {
            return Frame::Wrap;
        }
        match Self::stride(len) {
            Some(stride) if stride <= self.capacity - r => Frame::Valid { len, stride },
            _ => Frame::Wrap,
        }
    }

    /// Where the writer puts a frame of `stride` bytes when the header says W = `w`:
    /// `None` means wrap to 0 first (W invalid, or the frame does not fit before S).
    pub fn place(&self, w: i64, stride: usize) -> Option<usize> {
        let w = self.check_write(w)?;
        (stride <= self.capacity - w).then_some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_the_spec() {
        assert_eq!(RingKind::Msg.header_len(), 120);
        assert_eq!(RingKind::Cmd.header_len(), 128);
        assert_eq!(
            RingLayout::new(RingKind::Msg, 128).unwrap().object_size(),
            294
        );
        assert_eq!(
            RingLayout::new(RingKind::Cmd, 128).unwrap().object_size(),
            302
        );
        assert_eq!(RingLayout::stride(3), Some(24));
        assert_eq!(RingLayout::stride(10), Some(32));
        // W4: S=128, len=120 is accepted by libmembus but unreadable; we refuse it.
        let l = RingLayout::new(RingKind::Msg, 128).unwrap();
        assert_eq!(l.max_message_len(), 112);
        assert_eq!(
            l.check_message(120).unwrap_err().kind(),
            ErrorKind::MessageTooLarge
        );
        assert_eq!(l.check_message(112).unwrap(), 128);
        assert_eq!(
            l.check_message(0).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(RingLayout::new(RingKind::Msg, 0).is_err());
        assert!(RingLayout::new(RingKind::Msg, i64::MAX as u64 - 165).is_err());
        assert!(RingLayout::new(RingKind::Msg, i64::MAX as u64 - 166).is_ok());
    }

    #[test]
    fn header_validation_names_the_other_type() {
        let e = RingLayout::from_header(RingKind::Msg, 128, 302).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidLayout);
        assert!(e.to_string().contains("memcmd"), "{e}");
        assert!(RingLayout::from_header(RingKind::Msg, 0, 166).is_err());
        assert!(RingLayout::from_header(RingKind::Msg, -5, 166).is_err());
        assert!(RingLayout::from_header(RingKind::Cmd, 128, 302).is_ok());
    }

    proptest! {
        #[test]
        fn any_header_value_validates_without_panicking(size in any::<i64>(), obj in any::<usize>(), cmd in any::<bool>()) {
            let kind = if cmd { RingKind::Cmd } else { RingKind::Msg };
            if let Ok(l) = RingLayout::from_header(kind, size, obj) {
                prop_assert_eq!(l.object_size(), obj);
                prop_assert!(l.ring_offset() + l.ring_len() <= obj);
            }
        }

        #[test]
        fn valid_frames_stay_inside_the_ring(cap in 1u64..1_000_000, r in any::<u32>(), len_word in any::<i64>(), w in any::<i64>()) {
            let l = RingLayout::new(RingKind::Msg, cap).unwrap();
            let r = r as usize % (l.capacity() + 1);
            if let Frame::Valid { len, stride } = l.frame_at(r, len_word) {
                prop_assert!(r + stride <= l.capacity());
                prop_assert!(r + FRAME_HEADER + len <= l.ring_len());
            }
            if let Some(w) = l.check_write(w) {
                // The writer's trailing zero word at W always fits in the slack.
                prop_assert!(w + 8 <= l.ring_len());
            }
            if let Ok(stride) = l.check_message(len_word.unsigned_abs() as usize % (2 * l.capacity() + 1)) {
                if let Some(at) = l.place(w, stride) {
                    prop_assert!(at + stride <= l.capacity());
                }
                prop_assert!(stride <= l.capacity());
            }
        }
    }
}
