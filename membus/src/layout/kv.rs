//! memkv layout: a 128-byte header followed by `count` slots of stride
//! `T = 18 + N + V`, each `seq | lastEpoch | name[N+1] | value[V+1]`.

use crate::error::{Error, ErrorKind, Result};

/// Header field: number of slots C.
pub const OFF_COUNT: usize = 0;
/// Header field: N, the usable name bytes per slot.
pub const OFF_MAX_NAME: usize = 8;
/// Header field: V, the usable value bytes per slot.
pub const OFF_MAX_VALUE: usize = 16;
/// Header field: number of committed write batches.
pub const OFF_EPOCH: usize = 24;
/// Header field: session id.
pub const OFF_ID: usize = 32;
/// Offset of the glibc mutex (40 bytes on x86_64).
pub const OFF_MUTEX: usize = 40;
/// Offset of the glibc condition (48 bytes on x86_64).
pub const OFF_COND: usize = 80;
/// Size of the glibc mutex.
pub const MUTEX_SIZE: usize = 40;
/// Size of the glibc condition.
pub const COND_SIZE: usize = 48;
/// Header length: where slot 0 begins.
pub const HEADER_LEN: usize = 128;
/// Slot field: the seqlock counter (even = stable, odd = write in progress).
pub const SLOT_SEQ: usize = 0;
/// Slot field: the epoch of the batch that last wrote the slot (0 = never).
pub const SLOT_LAST_EPOCH: usize = 8;
/// Slot field: the NUL-padded name (N + 1 bytes).
pub const SLOT_NAME: usize = 16;

/// The layout of one memkv share: slot count C, name length N and value length V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    count: usize,
    max_name: usize,
    max_value: usize,
}

/// Slot stride `18 + N + V`, or `None` on overflow.
pub fn stride(max_name: u64, max_value: u64) -> Option<u64> {
    max_name.checked_add(max_value)?.checked_add(18)
}

impl KvLayout {
    /// The layout for a new share with `count` slots, names of up to `max_name` bytes and
    /// values of up to `max_value` bytes.
    ///
    /// When the stride `18 + N + V` is not a multiple of 8 the slots' atomic words would be
    /// misaligned and pymembus could not open the share, so V is rounded up until it
    /// is; [`max_value_len`](Self::max_value_len) reports the effective limit.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when any of the three is 0 or the object size overflows
    /// an i64.
    pub fn new(count: u64, max_name: u64, max_value: u64) -> Result<KvLayout> {
        if count == 0 || max_name == 0 || max_value == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "memkv count, max name length and max value length must all be > 0 (got {count}, {max_name}, {max_value})"
                ),
            ));
        }
        let t = stride(max_name, max_value).ok_or_else(|| too_big(count, max_name, max_value))?;
        let pad = (8 - t % 8) % 8;
        let max_value = max_value
            .checked_add(pad)
            .ok_or_else(|| too_big(count, max_name, max_value))?;
        Self::checked(count, max_name, max_value).ok_or_else(|| too_big(count, max_name, max_value))
    }

    fn checked(count: u64, max_name: u64, max_value: u64) -> Option<KvLayout> {
        let t = stride(max_name, max_value)?;
        let size = t.checked_mul(count)?.checked_add(HEADER_LEN as u64)?;
        if size > i64::MAX as u64 || usize::try_from(size).is_err() {
            return None;
        }
        Some(KvLayout {
            count: usize::try_from(count).ok()?,
            max_name: usize::try_from(max_name).ok()?,
            max_value: usize::try_from(max_value).ok()?,
        })
    }

    /// Validates the header fields of an existing share against the mapped length.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] when a field is ≤ 0, the layout overflows, the slots do
    /// not fit the object, or the stride is not a multiple of 8 (a libmembus C++ peer may
    /// make such a store; its slot words are misaligned for atomics).
    pub fn from_header(
        count: i64,
        max_name: i64,
        max_value: i64,
        object_size: usize,
    ) -> Result<KvLayout> {
        let bad = |what: String| Error::new(ErrorKind::InvalidLayout, what);
        if count <= 0 || max_name <= 0 || max_value <= 0 {
            return Err(bad(format!(
                "header count {count}, max name length {max_name}, max value length {max_value}: all must be > 0"
            )));
        }
        let (c, n, v) = (count as u64, max_name as u64, max_value as u64);
        let layout = Self::checked(c, n, v).ok_or_else(|| {
            bad(format!(
                "header count {count} × stride 18+{max_name}+{max_value} overflows"
            ))
        })?;
        let t = layout.stride();
        if t % 8 != 0 {
            return Err(bad(format!(
                "slot stride 18+N+V = 18+{max_name}+{max_value} = {t} is not a multiple of 8, so the seq and lastEpoch words of slots ≥ 1 are misaligned for atomic access (libmembus allows this, pymembus and membus refuse it; re-create the store with N+V+18 a multiple of 8)"
            ))
            .with_sizes(t.next_multiple_of(8) as u64, t as u64));
        }
        if layout.object_size() > object_size {
            return Err(bad(format!(
                "{count} slots of {t} bytes need {} bytes, more than the object's {object_size}",
                layout.object_size()
            ))
            .with_sizes(layout.object_size() as u64, object_size as u64));
        }
        Ok(layout)
    }

    /// Number of slots C.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Usable name bytes N.
    pub fn max_name_len(&self) -> usize {
        self.max_name
    }

    /// Usable value bytes V.
    pub fn max_value_len(&self) -> usize {
        self.max_value
    }

    /// Slot stride `18 + N + V`.
    pub fn stride(&self) -> usize {
        18 + self.max_name + self.max_value
    }

    /// Object size `128 + C·T`.
    pub fn object_size(&self) -> usize {
        HEADER_LEN + self.count * self.stride()
    }

    /// Offset of slot `idx`, or `None` when `idx ≥ C`.
    #[inline]
    pub fn slot(&self, idx: usize) -> Option<usize> {
        (idx < self.count).then(|| HEADER_LEN + idx * self.stride())
    }

    /// Offset of the value bytes within a slot (`17 + N`).
    pub fn value_offset(&self) -> usize {
        SLOT_NAME + self.max_name + 1
    }

    /// Checks a name for a slot: at most N bytes, no NUL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a NUL byte or an empty name,
    /// [`ErrorKind::MessageTooLarge`] when longer than N.
    pub fn check_name(&self, name: &[u8]) -> Result<()> {
        check_text("slot name", name, self.max_name)
    }

    /// Checks a value: at most V bytes, no NUL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a NUL byte, [`ErrorKind::MessageTooLarge`] when
    /// longer than V.
    pub fn check_value(&self, value: &[u8]) -> Result<()> {
        check_text("value", value, self.max_value)
    }
}

fn too_big(count: u64, n: u64, v: u64) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("memkv layout {count} slots × (18+{n}+{v}) bytes overflows"),
    )
}

fn check_text(what: &str, bytes: &[u8], max: usize) -> Result<()> {
    // `contains` on bytes is a memchr; the position is only needed for the message.
    if bytes.contains(&0) {
        let pos = bytes.iter().position(|&b| b == 0).unwrap_or(0);
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} contains a NUL byte at {pos}; memkv stores C strings, which cannot hold NUL"),
        ));
    }
    if bytes.len() > max {
        return Err(Error::new(
            ErrorKind::MessageTooLarge,
            format!(
                "{what} is {} bytes, longer than the store's limit of {max}",
                bytes.len()
            ),
        )
        .with_sizes(max as u64, bytes.len() as u64));
    }
    Ok(())
}

/// The bytes of a NUL-padded field up to its first NUL (all of it when there is none).
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(p) => bytes.get(..p).unwrap_or(bytes),
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_the_spec() {
        // C=3, N=14, V=64: the fixture's layout, stride 96.
        let l = KvLayout::new(3, 14, 64).unwrap();
        assert_eq!(l.stride(), 96);
        assert_eq!(l.object_size(), 128 + 3 * 96);
        assert_eq!(l.slot(2), Some(128 + 192));
        assert_eq!(l.slot(3), None);
        assert_eq!(l.value_offset(), 31);
        // C=2, N=8, V=14: T=40, 208 bytes (spec §6.2).
        assert_eq!(KvLayout::new(2, 8, 14).unwrap().object_size(), 208);
        // 8/12 gives T=38: V is rounded up to 14.
        let l = KvLayout::new(1, 8, 12).unwrap();
        assert_eq!((l.max_value_len(), l.stride()), (14, 40));
        assert_eq!(
            KvLayout::new(0, 1, 1).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(KvLayout::new(u64::MAX, 8, 14).is_err());
    }

    #[test]
    fn misaligned_stores_are_refused_with_a_reason() {
        let e = KvLayout::from_header(2, 8, 12, 128 + 2 * 38).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidLayout);
        assert!(e.detail().contains("not a multiple of 8"), "{e}");
        assert_eq!(e.sizes(), Some((40, 38)));
        let e = KvLayout::from_header(3, 14, 64, 128 + 2 * 96).unwrap_err();
        assert_eq!(e.sizes(), Some((416, 320)));
        assert!(KvLayout::from_header(3, 14, 64, 416).is_ok());
    }

    #[test]
    fn text_checks() {
        let l = KvLayout::new(1, 6, 10).unwrap();
        assert_eq!(
            l.check_name(b"a\0b").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            l.check_name(b"1234567").unwrap_err().kind(),
            ErrorKind::MessageTooLarge
        );
        assert!(l.check_name(b"123456").is_ok());
        assert_eq!(until_nul(b"ab\0c"), b"ab");
        assert_eq!(until_nul(b"abc"), b"abc");
    }

    proptest! {
        #[test]
        fn any_header_validates_without_panicking(c in any::<i64>(), n in any::<i64>(), v in any::<i64>(), obj in any::<usize>()) {
            if let Ok(l) = KvLayout::from_header(c, n, v, obj) {
                prop_assert!(l.object_size() <= obj);
                prop_assert_eq!(l.stride() % 8, 0);
                let last = l.slot(l.count() - 1).unwrap();
                prop_assert!(last + l.stride() <= obj);
                prop_assert!(last + l.value_offset() + l.max_value_len() < obj);
            }
        }

        #[test]
        fn new_layouts_are_aligned_and_valid(c in 1u64..1000, n in 1u64..300, v in 1u64..5000) {
            let l = KvLayout::new(c, n, v).unwrap();
            prop_assert_eq!(l.stride() % 8, 0);
            prop_assert!(l.max_value_len() as u64 >= v && l.max_value_len() as u64 <= v + 7);
            let back = KvLayout::from_header(c as i64, n as i64, l.max_value_len() as i64, l.object_size()).unwrap();
            prop_assert_eq!(back, l);
        }
    }
}
