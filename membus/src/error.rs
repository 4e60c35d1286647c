//! The one error type of membus.
//!
//! [`ErrorKind`] has a kind for each of libmembus's `errc` codes 1–12 and three that membus
//! adds (`LockFailed`, `SchemaMismatch`, `InvalidValue`), which report the nearest libmembus
//! code ([`ErrorKind::code`]). The [`Display`](fmt::Display) text of an [`Error`] starts with
//! the kind's message (libmembus's for its codes: "open failed", "size mismatch", ...) and
//! goes on with the share name and the detail a caller needs to act: expected and found
//! sizes, the offending field, the OS error.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// What went wrong, as libmembus classifies it, plus the kinds membus adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A parameter is out of range or malformed (bad share name, zero size, empty message).
    InvalidArgument,
    /// The named share could not be opened (for example it does not exist).
    OpenFailed,
    /// The share could not be created: the name is taken, or /dev/shm has no room.
    CreateFailed,
    /// The share exists but could not be mapped (for example it has size 0).
    MapFailed,
    /// The share's recorded size differs from the one the caller expected.
    SizeMismatch,
    /// The share's header is corrupt, hostile, or of another type.
    InvalidLayout,
    /// The handle is not open. membus handles are open for their whole life, so membus
    /// never produces this kind; it exists so that every libmembus code has a kind.
    NotOpen,
    /// The operation is not permitted: the OS refused access to the share.
    AccessDenied,
    /// The message can never fit in the ring.
    MessageTooLarge,
    /// The share's lock could not be taken before its deadline.
    LockTimeout,
    /// Nothing arrived before the deadline.
    Timeout,
    /// The reader was overtaken by the writer and messages were lost.
    Overrun,
    /// The share's lock is unusable: a peer left it unrecoverable, or the OS rejected it.
    /// libmembus throws an exception here; its nearest code is `lock_timeout` (10).
    LockFailed,
    /// A typed store's schema differs from the one the caller expects (slot count, names,
    /// order, lengths or fingerprint); the detail lists every difference. libmembus reports
    /// a memkv schema difference on create as `size_mismatch` (5), its nearest code.
    SchemaMismatch,
    /// A slot holds text that does not parse as its field's type (a foreign peer wrote
    /// it); the detail names the field and carries the raw text. Nearest libmembus code:
    /// `invalid_layout` (6), the share's content is not what the schema says.
    InvalidValue,
}

impl ErrorKind {
    /// libmembus's numeric `errc` value for this kind.
    ///
    /// Kinds that membus adds map to the nearest libmembus code, as documented on each.
    pub const fn code(self) -> i32 {
        match self {
            ErrorKind::InvalidArgument => 1,
            ErrorKind::OpenFailed => 2,
            ErrorKind::CreateFailed => 3,
            ErrorKind::MapFailed => 4,
            ErrorKind::SizeMismatch | ErrorKind::SchemaMismatch => 5,
            ErrorKind::InvalidLayout | ErrorKind::InvalidValue => 6,
            ErrorKind::NotOpen => 7,
            ErrorKind::AccessDenied => 8,
            ErrorKind::MessageTooLarge => 9,
            ErrorKind::LockTimeout | ErrorKind::LockFailed => 10,
            ErrorKind::Timeout => 11,
            ErrorKind::Overrun => 12,
        }
    }

    /// The kind for a libmembus `errc` value, or `None` for 0 (`ok`) and unknown values.
    pub const fn from_code(code: i32) -> Option<ErrorKind> {
        Some(match code {
            1 => ErrorKind::InvalidArgument,
            2 => ErrorKind::OpenFailed,
            3 => ErrorKind::CreateFailed,
            4 => ErrorKind::MapFailed,
            5 => ErrorKind::SizeMismatch,
            6 => ErrorKind::InvalidLayout,
            7 => ErrorKind::NotOpen,
            8 => ErrorKind::AccessDenied,
            9 => ErrorKind::MessageTooLarge,
            10 => ErrorKind::LockTimeout,
            11 => ErrorKind::Timeout,
            12 => ErrorKind::Overrun,
            _ => return None,
        })
    }

    /// libmembus's message for this kind (`last_error_message` in pymembus).
    pub const fn message(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::OpenFailed => "open failed",
            ErrorKind::CreateFailed => "create failed",
            ErrorKind::MapFailed => "map failed",
            ErrorKind::SizeMismatch => "size mismatch",
            ErrorKind::InvalidLayout => "invalid shared-memory layout",
            ErrorKind::NotOpen => "not open",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::MessageTooLarge => "message too large",
            ErrorKind::LockTimeout => "lock timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overrun => "overrun",
            ErrorKind::LockFailed => "lock failed",
            ErrorKind::SchemaMismatch => "schema mismatch",
            ErrorKind::InvalidValue => "invalid value",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A membus error: its [`ErrorKind`], the share it concerns, a detail, and the OS error.
///
/// ```
/// use membus::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::SizeMismatch, "the memmsg has capacity 2048, not the expected 1024")
///     .with_share("/cam")
///     .with_sizes(1024, 2048);
/// assert_eq!(e.code(), 5);
/// assert_eq!(e.sizes(), Some((1024, 2048)));
/// assert_eq!(
///     e.to_string(),
///     "size mismatch: share /cam: the memmsg has capacity 2048, not the expected 1024"
/// );
/// ```
pub struct Error(Box<Inner>);

/// Boxed so that `Result<T, Error>` stays one word wider than `T` on hot paths.
struct Inner {
    kind: ErrorKind,
    share: Option<String>,
    detail: Cow<'static, str>,
    sizes: Option<(u64, u64)>,
    source: Option<io::Error>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a detail text.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Error {
        Error(Box::new(Inner {
            kind,
            share: None,
            detail: detail.into(),
            sizes: None,
            source: None,
        }))
    }

    /// Names the share the error concerns.
    #[must_use]
    pub fn with_share(mut self, share: impl Into<String>) -> Error {
        self.0.share = Some(share.into());
        self
    }

    /// Records the expected and the found size (or count, or value), for callers that act
    /// on them ([`sizes`](Self::sizes)). The text of the error does not show them: the
    /// detail says in words what they mean.
    #[must_use]
    pub fn with_sizes(mut self, expected: u64, found: u64) -> Error {
        self.0.sizes = Some((expected, found));
        self
    }

    /// Attaches the OS error that caused this one.
    #[must_use]
    pub fn with_os_error(mut self, source: io::Error) -> Error {
        self.0.source = Some(source);
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// libmembus's numeric `errc` value ([`ErrorKind::code`]).
    pub fn code(&self) -> i32 {
        self.0.kind.code()
    }

    /// The share the error concerns, with its leading `/`, when there is one.
    pub fn share(&self) -> Option<&str> {
        self.0.share.as_deref()
    }

    /// The detail text, without the kind's message and the share name.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The expected and the found value, for size and layout mismatches.
    pub fn sizes(&self) -> Option<(u64, u64)> {
        self.0.sizes
    }

    /// The OS error behind this one, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        self.0.source.as_ref()
    }

    /// The raw OS error number behind this one, if any.
    pub fn errno(&self) -> Option<i32> {
        self.0.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

/// `e`, or, when the share `name` turns out to hold another type than `expected`, an
/// [`ErrorKind::InvalidLayout`] that names the type it holds.
pub(crate) fn explain_wrong_type(
    name: &crate::name::ShareName,
    expected: crate::layout::identify::ShareType,
    e: Error,
) -> Error {
    if e.kind() != ErrorKind::InvalidLayout && e.kind() != ErrorKind::SizeMismatch {
        return e;
    }
    let Ok(seg) = crate::sys::shm::Segment::attach(name, crate::sys::shm::Access::ReadOnly) else {
        return e;
    };
    let head = seg.head(crate::layout::identify::HEAD_LEN);
    match crate::layout::identify::wrong_type(&head, seg.len() as u64, expected) {
        Some(detail) => Error::new(ErrorKind::InvalidLayout, detail).with_share(name.as_str()),
        None => e,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.kind.message())?;
        if let Some(share) = &self.0.share {
            write!(f, ": share {share}")?;
        }
        if !self.0.detail.is_empty() {
            write!(f, ": {}", self.0.detail)?;
        }
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("code", &self.0.kind.code());
        if let Some(share) = &self.0.share {
            d.field("share", share);
        }
        d.field("detail", &self.0.detail);
        if let Some(sizes) = self.0.sizes {
            d.field("expected_found", &sizes);
        }
        if let Some(source) = &self.0.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_messages_match_libmembus() {
        let expected = [
            (1, "invalid argument"),
            (2, "open failed"),
            (3, "create failed"),
            (4, "map failed"),
            (5, "size mismatch"),
            (6, "invalid shared-memory layout"),
            (7, "not open"),
            (8, "access denied"),
            (9, "message too large"),
            (10, "lock timeout"),
            (11, "timeout"),
            (12, "overrun"),
        ];
        for (code, msg) in expected {
            let kind = ErrorKind::from_code(code).expect("known code");
            assert_eq!(kind.code(), code);
            assert_eq!(kind.message(), msg);
            assert!(Error::new(kind, "x").to_string().starts_with(msg));
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_code(13), None);
        assert_eq!(ErrorKind::LockFailed.code(), 10);
        assert_eq!(ErrorKind::SchemaMismatch.code(), 5);
        assert_eq!(ErrorKind::InvalidValue.code(), 6);
    }

    #[test]
    fn display_carries_share_detail_sizes_and_errno() {
        let e = Error::new(ErrorKind::OpenFailed, "shm_open")
            .with_share("/x")
            .with_os_error(io::Error::from_raw_os_error(libc::ENOENT));
        let s = e.to_string();
        assert!(s.starts_with("open failed: share /x: shm_open: "), "{s}");
        assert!(s.contains("os error 2"), "{s}");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(std::error::Error::source(&e).is_some());
    }
}
