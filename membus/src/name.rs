//! Share names, validated the way libmembus (through Boost and `shm_open`) treats them.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// Longest name after the leading `/`: one file name in /dev/shm (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// A validated POSIX shared-memory name, always with its leading `/`.
///
/// libmembus adds a missing leading `/`, so `cam` and `/cam` are the same share. Any further
/// `/`, an empty name, a NUL byte, `.`/`..`, or more than [`MAX_NAME_LEN`] bytes after the
/// slash is an [`ErrorKind::InvalidArgument`].
///
/// ```
/// # fn main() -> membus::Result<()> {
/// let n = membus::ShareName::new("cam")?;
/// assert_eq!(n.as_str(), "/cam");
/// assert!(membus::ShareName::new("a/b").is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShareName {
    full: String,
}

impl ShareName {
    /// Validates `name`, adding the leading `/` if it is missing.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for the names described on the type.
    pub fn new(name: &str) -> Result<ShareName> {
        let bare = name.strip_prefix('/').unwrap_or(name);
        let invalid = |why: &'static str| {
            Err(Error::new(ErrorKind::InvalidArgument, why)
                .with_share(name.escape_debug().to_string()))
        };
        if bare.is_empty() {
            return invalid("share name is empty");
        }
        if bare.contains('/') {
            return invalid("share name may contain '/' only as its first character");
        }
        if bare.contains('\0') {
            return invalid("share name contains a NUL byte");
        }
        if bare == "." || bare == ".." {
            return invalid("share name may not be '.' or '..'");
        }
        if bare.len() > MAX_NAME_LEN {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "share name is {} bytes, longer than the limit of {MAX_NAME_LEN}",
                    bare.len()
                ),
            )
            .with_share(format!(
                "/{}...",
                &bare[..bare.floor_char_boundary_compat(32)]
            ))
            .with_sizes(MAX_NAME_LEN as u64, bare.len() as u64));
        }
        Ok(ShareName {
            full: format!("/{bare}"),
        })
    }

    /// The name with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

/// `str::floor_char_boundary` is unstable; this is the small piece of it we need.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, index: usize) -> usize {
        let mut i = index.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

impl fmt::Display for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl AsRef<str> for ShareName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

/// Anything that names a share: `&str`, `String` or an already validated [`ShareName`].
pub trait IntoShareName {
    /// Validates and converts.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a malformed name.
    fn into_share_name(self) -> Result<ShareName>;
}

impl IntoShareName for &str {
    fn into_share_name(self) -> Result<ShareName> {
        ShareName::new(self)
    }
}

impl IntoShareName for &String {
    fn into_share_name(self) -> Result<ShareName> {
        ShareName::new(self)
    }
}

impl IntoShareName for String {
    fn into_share_name(self) -> Result<ShareName> {
        ShareName::new(&self)
    }
}

impl IntoShareName for ShareName {
    fn into_share_name(self) -> Result<ShareName> {
        Ok(self)
    }
}

impl IntoShareName for &ShareName {
    fn into_share_name(self) -> Result<ShareName> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slash_is_added_once() {
        assert_eq!(ShareName::new("foo").unwrap().as_str(), "/foo");
        assert_eq!(ShareName::new("/foo").unwrap().as_str(), "/foo");
    }

    #[test]
    fn malformed_names_are_invalid_arguments() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "/",
            "//a",
            "a/b",
            "/a/",
            "a\0b",
            ".",
            "/..",
            long.as_str(),
        ] {
            let e = ShareName::new(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
        }
        assert!(ShareName::new(&"y".repeat(MAX_NAME_LEN)).is_ok());
        let e = ShareName::new(&"é".repeat(200)).unwrap_err();
        assert_eq!(e.sizes(), Some((255, 400)));
    }
}
