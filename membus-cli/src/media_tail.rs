//! Following a memvid, memaud or mempkt ring for `membus tail`: one line per frame or
//! record, in sequence order, with gaps reported as overruns.
//!
//! The ring is mapped read-only and every word is read through [`MemMap::load_u64`], which
//! bounds-checks it against the mapping: a corrupt header gives an error, never a crash.
//! Frames are found by their slot's sequence stamp, so the writer's publish order (libmembus
//! bumps the global seq first, membus last) does not matter.

use std::io::Write;
use std::time::{Duration, Instant};

use membus::{MemMap, ReadOnly};

use crate::probe::Kind;

type TailResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Where each slot's fields live, per ring type (spec 8.2, 9.2, 10.2).
struct Geometry {
    kind: Kind,
    /// Offsets of slot (or descriptor) i's start.
    slots: Vec<usize>,
    /// Offset of the sequence stamp inside a slot.
    seq_at: usize,
    /// memvid/memaud payload bytes per frame.
    frame_size: u64,
}

pub struct MediaTail {
    map: MemMap<ReadOnly>,
    geo: Geometry,
    last: u64,
}

fn word(map: &MemMap<ReadOnly>, off: usize) -> TailResult<i64> {
    Ok(map.load_u64(off)? as i64)
}

fn offset(v: i64, what: &str) -> TailResult<usize> {
    usize::try_from(v).map_err(|_| format!("header field {what} is negative ({v})").into())
}

impl MediaTail {
    pub fn attach(name: &str, kind: Kind, from_start: bool) -> TailResult<MediaTail> {
        let map = MemMap::attach_read_only(name)?;
        let bad = |why: String| -> Box<dyn std::error::Error> {
            format!("share {name}: invalid layout: {why}").into()
        };
        let size = word(&map, 24)?;
        if usize::try_from(size).ok() != Some(map.len()) {
            return Err(bad(format!(
                "header size {size} differs from the object size {}",
                map.len()
            )));
        }
        let bufs = word(&map, 56)?;
        if !(1..=1 << 20).contains(&bufs) {
            return Err(bad(format!("bufs {bufs} is out of range")));
        }
        let bufs = bufs as usize;
        let (base, stride, seq_at, frame_size) = match kind {
            Kind::MemVid => {
                let sw = word(&map, 184)?;
                let h = word(&map, 176)?;
                (
                    offset(word(&map, 232)?, "dataoffset")?,
                    offset(word(&map, 208)?, "blocksz")?,
                    32,
                    sw.saturating_mul(h).max(0) as u64,
                )
            }
            Kind::MemAud => (
                offset(word(&map, 224)?, "dataoffset")?,
                offset(word(&map, 200)?, "blocksz")?,
                24,
                word(&map, 232)?.max(0) as u64,
            ),
            Kind::MemPkt => (offset(word(&map, 200)?, "descoffset")?, 64, 56, 0),
            other => {
                return Err(format!("share {name}: {} is not a media ring", other.as_str()).into())
            }
        };
        let mut slots = Vec::with_capacity(bufs);
        for i in 0..bufs {
            let at = stride
                .checked_mul(i)
                .and_then(|x| x.checked_add(base))
                .filter(|&at| at.checked_add(64).is_some_and(|end| end <= map.len()))
                .ok_or_else(|| bad(format!("slot {i} lies outside the share")))?;
            slots.push(at);
        }
        let last = if from_start {
            0
        } else {
            word(&map, 40)?.max(0) as u64
        };
        Ok(MediaTail {
            map,
            geo: Geometry {
                kind,
                slots,
                seq_at,
                frame_size,
            },
            last,
        })
    }

    /// Prints what was published since the last call; returns how many frames or records.
    pub fn poll(&mut self, out: &mut impl Write) -> TailResult<u64> {
        let mut fresh: Vec<(u64, usize)> = Vec::new();
        for (i, &at) in self.geo.slots.iter().enumerate() {
            let s = word(&self.map, at + self.geo.seq_at)?;
            if s > 0 && s as u64 > self.last {
                fresh.push((s as u64, i));
            }
        }
        fresh.sort_unstable();
        let mut printed = 0;
        for (seq, i) in fresh {
            if seq > self.last + 1 {
                writeln!(out, "overrun: {} lost", seq - self.last - 1)?;
            }
            if let Some(line) = self.describe(seq, i)? {
                writeln!(out, "{line}")?;
                printed += 1;
            }
            self.last = seq;
        }
        out.flush()?;
        Ok(printed)
    }

    /// One frame's line, or `None` when the slot was rewritten while we read it.
    fn describe(&self, seq: u64, i: usize) -> TailResult<Option<String>> {
        let at = self.geo.slots[i];
        let w = |off: usize| word(&self.map, at + off);
        let line = match self.geo.kind {
            Kind::MemVid => format!(
                "seq={seq} slot={i} vpts={} apts={} size={} user={}",
                w(8)?,
                w(16)?,
                self.geo.frame_size,
                w(24)?
            ),
            Kind::MemAud => format!(
                "seq={seq} slot={i} pts={} size={} user={}",
                w(8)?,
                self.geo.frame_size,
                w(16)?
            ),
            _ => {
                let kind = match w(32)? {
                    0 => "data".to_string(),
                    1 => "video".to_string(),
                    2 => "audio".to_string(),
                    k => format!("kind-{k}"),
                };
                format!(
                    "seq={seq} slot={i} pts={} size={} kind={kind} track={} meta={}",
                    w(24)?,
                    w(8)?,
                    w(40)?,
                    w(48)?
                )
            }
        };
        // The stamp must be unchanged after reading the fields, or the slot was reused.
        Ok((w(self.geo.seq_at)? as u64 == seq).then_some(line))
    }
}

/// Follows the ring until `count` items or the deadline; returns how many were printed.
pub fn follow(
    name: &str,
    kind: Kind,
    from_start: bool,
    count: Option<u64>,
    deadline: Option<Instant>,
) -> TailResult<u64> {
    let mut t = MediaTail::attach(name, kind, from_start)?;
    let mut out = std::io::stdout().lock();
    let mut seen = 0;
    loop {
        seen += t.poll(&mut out)?;
        if count.is_some_and(|c| seen >= c) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(seen);
        }
        // libmembus writers wake no one; 1 ms polling is what its own readers do.
        std::thread::sleep(Duration::from_millis(1));
    }
}
