//! Mirror notes: a share that mirrors a share of another host says so.
//!
//! The Zenoh bridge (`membus-bridge import`) creates a local share that follows a share
//! exported on another host. Locally that mirror has a live owner (the bridge), so its
//! owner lock alone cannot tell a reader that the *source* is gone. The bridge therefore
//! keeps a small text note beside the mirror, the object `<name>.membus-mirror`, with the
//! source's key, whether the source is live, since when, and the bridge's pid. `membus ls`
//! and `membus info` show it (a mirror whose exporter is gone is "stale mirror"), and any
//! program can read it with [`MirrorNote::read`]. libmembus and pymembus peers never open
//! the note; they see the ordinary share.
//!
//! The note is replaced in one step (a temporary object renamed over it), so a reader sees
//! a whole note. [`crate::remove`] removes it with the share; `membus rm --stale` removes
//! notes whose share is gone.
//!
//! ```no_run
//! # fn main() -> membus::Result<()> {
//! if let Some(note) = membus::mirror::MirrorNote::read("/camera")? {
//!     if !note.live {
//!         eprintln!("/camera mirrors {}, whose exporter is gone", note.source);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::name::{IntoShareName, ShareName};
use crate::sys::shm::note;

/// Suffix of a mirror note's name.
pub const MIRROR_SUFFIX: &str = ".membus-mirror";

/// First line of a note.
const HEADER: &str = "membus-mirror 1";

/// A note longer than this is not one.
const MAX_NOTE: usize = 4096;

/// What the note beside a mirror says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorNote {
    /// The source, as the bridge names it (its Zenoh key, e.g. `membus/camera`).
    pub source: String,
    /// Whether the source's exporter is alive as far as the bridge knows.
    pub live: bool,
    /// When `live` last changed.
    pub since: SystemTime,
    /// The process that keeps the mirror (the bridge).
    pub pid: u32,
}

impl MirrorNote {
    /// A note for a mirror of `source` kept by this process, live or not, as of now.
    pub fn new(source: impl Into<String>, live: bool) -> MirrorNote {
        MirrorNote {
            source: source.into(),
            live,
            since: SystemTime::now(),
            pid: std::process::id(),
        }
    }

    /// The note's object name for share `share`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `share` is malformed or the note's name would be
    /// too long.
    pub fn name_for(share: impl IntoShareName) -> Result<ShareName> {
        let share = share.into_share_name()?;
        ShareName::new(&format!("{}{MIRROR_SUFFIX}", share.as_str()))
    }

    /// Writes (or replaces) the note beside share `share`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a malformed name or a source with a line break;
    /// [`ErrorKind::CreateFailed`] when /dev/shm refuses the write (full, no permission).
    pub fn write(&self, share: impl IntoShareName) -> Result<()> {
        let name = Self::name_for(share)?;
        if self.source.contains(['\n', '\r', '\0']) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a mirror's source may not contain line breaks or NUL",
            )
            .with_share(name.as_str()));
        }
        let secs = self
            .since
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let text = format!(
            "{HEADER}\nsource={}\nstate={}\nsince={secs}\npid={}\n",
            self.source,
            if self.live { "live" } else { "stale" },
            self.pid
        );
        note::write(&name, text.as_bytes()).map_err(|e| {
            Error::new(ErrorKind::CreateFailed, "writing the mirror note")
                .with_share(name.as_str())
                .with_os_error(e)
        })
    }

    /// The note beside share `share`, or `None` when it is not a mirror.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a malformed name; [`ErrorKind::InvalidLayout`]
    /// when the object is not a well-formed note (too long, not UTF-8, a missing or
    /// unparsable line); [`ErrorKind::OpenFailed`] when it cannot be read.
    pub fn read(share: impl IntoShareName) -> Result<Option<MirrorNote>> {
        let name = Self::name_for(share)?;
        let bytes = match note::read(&name, MAX_NOTE) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(Error::new(ErrorKind::OpenFailed, "reading the mirror note")
                    .with_share(name.as_str())
                    .with_os_error(e))
            }
        };
        Self::parse(&bytes).map(Some).map_err(|why| {
            Error::new(
                ErrorKind::InvalidLayout,
                format!("not a mirror note: {why}"),
            )
            .with_share(name.as_str())
        })
    }

    fn parse(bytes: &[u8]) -> std::result::Result<MirrorNote, String> {
        if bytes.len() > MAX_NOTE {
            return Err(format!("longer than {MAX_NOTE} bytes"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not {HEADER:?}"));
        }
        let (mut source, mut live, mut since, mut pid) = (None, None, None, None);
        for line in lines {
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {line:?} is not key=value"));
            };
            match k {
                "source" => source = Some(v.to_string()),
                "state" => {
                    live = Some(match v {
                        "live" => true,
                        "stale" => false,
                        _ => return Err(format!("state {v:?} is neither live nor stale")),
                    })
                }
                "since" => since = v.parse::<u64>().ok(),
                "pid" => pid = v.parse::<u32>().ok(),
                // Later versions may add lines.
                _ => {}
            }
        }
        let missing = |what: &str| format!("no valid {what} line");
        Ok(MirrorNote {
            source: source.ok_or_else(|| missing("source"))?,
            live: live.ok_or_else(|| missing("state"))?,
            since: UNIX_EPOCH + Duration::from_secs(since.ok_or_else(|| missing("since"))?),
            pid: pid.ok_or_else(|| missing("pid"))?,
        })
    }

    /// Removes the note beside share `share`; `Ok(false)` when there was none.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a malformed name; [`ErrorKind::AccessDenied`] or
    /// [`ErrorKind::OpenFailed`] when the OS refuses.
    pub fn remove(share: impl IntoShareName) -> Result<bool> {
        crate::sys::shm::Segment::remove(&Self::name_for(share)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trip_and_rejects() {
        let n = MirrorNote {
            source: "ns/membus/cam".into(),
            live: false,
            since: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            pid: 42,
        };
        let text = format!(
            "{HEADER}\nsource=ns/membus/cam\nstate=stale\nsince=1700000000\npid=42\nfuture=1\n"
        );
        assert_eq!(MirrorNote::parse(text.as_bytes()).unwrap(), n);
        for bad in [
            "".to_string(),
            "membus-mirror 2\nsource=a\nstate=live\nsince=1\npid=1\n".into(),
            format!("{HEADER}\nsource=a\nstate=maybe\nsince=1\npid=1\n"),
            format!("{HEADER}\nsource=a\nstate=live\nsince=x\npid=1\n"),
            format!("{HEADER}\nsource=a\nstate=live\npid=1\n"),
            format!("{HEADER}\nno equals sign\n"),
        ] {
            let e = MirrorNote::parse(bad.as_bytes()).unwrap_err();
            assert!(!e.is_empty(), "{bad:?}");
        }
        assert!(MirrorNote::parse(&[0xff, 0xfe])
            .unwrap_err()
            .contains("UTF-8"));
        assert!(MirrorNote::parse(&vec![b'a'; MAX_NOTE + 1])
            .unwrap_err()
            .contains("longer"));
    }
}
