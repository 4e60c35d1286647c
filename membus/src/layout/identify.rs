//! Telling which share type an object holds from its first bytes, so that attaching the
//! wrong type can say what the share is ("this is a memkv share, not a memmsg").
//!
//! Media shares say it outright (the "MBUS" magic and a type word). memmsg, memcmd and memkv
//! carry no magic: they are told apart by their size formulas (libmembus sizes each object
//! exactly) and by where their process-shared mutex sits, which differs for each of them.

use super::kv::KvLayout;
use super::media::MAGIC;
use super::ring::{RingKind, RingLayout};

/// How many leading bytes [`identify`] looks at.
pub const HEAD_LEN: usize = 128;

/// The share types of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareType {
    /// Single-producer broadcast queue.
    MemMsg,
    /// Multi-producer command channel.
    MemCmd,
    /// Key/value store.
    MemKv,
    /// Video frame ring.
    MemVid,
    /// Audio frame ring.
    MemAud,
    /// Packet ring.
    MemPkt,
}

impl ShareType {
    /// The type's name as libmembus spells it.
    pub const fn name(self) -> &'static str {
        match self {
            ShareType::MemMsg => "memmsg",
            ShareType::MemCmd => "memcmd",
            ShareType::MemKv => "memkv",
            ShareType::MemVid => "memvid",
            ShareType::MemAud => "memaud",
            ShareType::MemPkt => "mempkt",
        }
    }
}

impl std::fmt::Display for ShareType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn i64_at(b: &[u8], off: usize) -> Option<i64> {
    let bytes: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    let bytes: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_le_bytes(bytes))
}

/// Whether the glibc mutex at `off` has its process-shared bit (`__kind` & 128).
fn pshared_mutex(head: &[u8], off: usize) -> bool {
    i32_at(head, off + 16).is_some_and(|k| k & 0x80 != 0)
}

/// The type `head` (the first bytes of an object of `object_size` bytes) holds, or `None`
/// when it is none of them or cannot be told. Never panics, whatever the bytes.
pub fn identify(head: &[u8], object_size: u64) -> Option<ShareType> {
    if i64_at(head, 0)? == MAGIC {
        return match i64_at(head, 8)? {
            1 => Some(ShareType::MemVid),
            2 => Some(ShareType::MemAud),
            3 => Some(ShareType::MemPkt),
            _ => None,
        };
    }
    let obj = usize::try_from(object_size).ok()?;
    let word0 = i64_at(head, 0)?;
    for (kind, ty) in [
        (RingKind::Msg, ShareType::MemMsg),
        (RingKind::Cmd, ShareType::MemCmd),
    ] {
        if RingLayout::from_header(kind, word0, obj).is_ok()
            && pshared_mutex(head, kind.mutex_offset())
        {
            return Some(ty);
        }
    }
    let (c, n, v) = (word0, i64_at(head, 8)?, i64_at(head, 16)?);
    let kv = KvLayout::from_header(c, n, v, obj).ok()?;
    (kv.object_size() == obj && pshared_mutex(head, super::kv::OFF_MUTEX))
        .then_some(ShareType::MemKv)
}

/// The detail text for attaching `expected` to an object that holds another type, or
/// `None` when the object's type cannot be told or is `expected`.
pub fn wrong_type(head: &[u8], object_size: u64, expected: ShareType) -> Option<String> {
    let found = identify(head, object_size)?;
    (found != expected).then(|| {
        format!(
            "this is a {found} share, not a {expected}: open it with the {found} API \
             (`membus info NAME` shows what a share is)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &mut [u8], off: usize, v: i64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn each_type_is_told_from_the_others() {
        let mut media = vec![0u8; HEAD_LEN];
        put(&mut media, 0, MAGIC);
        for (t, ty) in [
            (1, ShareType::MemVid),
            (2, ShareType::MemAud),
            (3, ShareType::MemPkt),
        ] {
            put(&mut media, 8, t);
            assert_eq!(identify(&media, 1 << 20), Some(ty));
        }
        put(&mut media, 8, 9);
        assert_eq!(identify(&media, 1 << 20), None);

        for (kind, ty) in [
            (RingKind::Msg, ShareType::MemMsg),
            (RingKind::Cmd, ShareType::MemCmd),
        ] {
            let mut h = vec![0u8; HEAD_LEN];
            put(&mut h, 0, 4096);
            h[kind.mutex_offset() + 16] = 0x80;
            let size = 4096 + kind.overhead() as u64;
            assert_eq!(identify(&h, size), Some(ty));
            let other = if ty == ShareType::MemMsg {
                ShareType::MemCmd
            } else {
                ShareType::MemMsg
            };
            assert!(wrong_type(&h, size, other)
                .is_some_and(|t| t.starts_with(&format!("this is a {ty} share, not a {other}"))));
            assert_eq!(wrong_type(&h, size, ty), None);
            assert_eq!(identify(&h, size + 8), None, "size formula must match");
        }

        let mut kv = vec![0u8; HEAD_LEN];
        put(&mut kv, 0, 3);
        put(&mut kv, 8, 30);
        put(&mut kv, 16, 48);
        kv[super::super::kv::OFF_MUTEX + 16] = 0x80;
        let size = 128 + 3 * (18 + 30 + 48);
        assert_eq!(identify(&kv, size), Some(ShareType::MemKv));
        assert!(wrong_type(&kv, size, ShareType::MemMsg)
            .is_some_and(|t| t.starts_with("this is a memkv share, not a memmsg")));
    }

    #[test]
    fn garbage_never_panics() {
        for len in [0usize, 1, 7, 8, 16, 24, 100, HEAD_LEN] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            for size in [0u64, len as u64, u64::MAX, i64::MAX as u64] {
                let _ = identify(&bytes, size);
            }
        }
        let mut big = vec![0xffu8; HEAD_LEN];
        put(&mut big, 0, i64::MAX);
        let _ = identify(&big, u64::MAX);
    }
}
