//! Recognising a share from its bytes: the "MBUS" prefix for media rings, header
//! self-consistency with the object size for memmsg, memcmd and memkv (which carry no
//! magic, so they are reported as "likely").

use std::io::Read;

use membus::layout::ring::{RingKind, RingLayout};
use serde_json::{json, Value};

/// How many header bytes a probe reads.
const PROBE_LEN: usize = 4096;
const MBUS_MAGIC: i64 = 0x5355_424D;

/// The share types the probe tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MemMsg,
    MemCmd,
    MemKv,
    MemVid,
    MemAud,
    MemPkt,
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MemMsg => "memmsg",
            Kind::MemCmd => "memcmd",
            Kind::MemKv => "memkv",
            Kind::MemVid => "memvid",
            Kind::MemAud => "memaud",
            Kind::MemPkt => "mempkt",
            Kind::Unknown => "unknown",
        }
    }
}

/// What the header bytes say.
pub struct Probe {
    pub name: String,
    pub size: u64,
    pub kind: Kind,
    /// Identified by self-consistency only (no magic in the format).
    pub likely: bool,
    pub session_id: Option<i64>,
    /// Every decoded header field and derived layout value, in header order.
    pub fields: Vec<(&'static str, Value)>,
    /// The live counters `ls` shows.
    pub counters: Vec<(&'static str, i64)>,
    /// Why the header looks wrong, if it does.
    pub problem: Option<String>,
}

impl Probe {
    pub fn type_label(&self) -> String {
        if self.likely {
            format!("{} (likely)", self.kind.as_str())
        } else {
            self.kind.as_str().to_string()
        }
    }

    pub fn to_json(&self) -> Value {
        let fields: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        json!({
            "name": self.name,
            "type": self.kind.as_str(),
            "likely": self.likely,
            "size": self.size,
            "session_id": self.session_id,
            "header": fields,
            "problem": self.problem,
        })
    }
}

/// Path of a share in /dev/shm (`name` has its leading `/`).
pub fn path_of(name: &str) -> String {
    format!("/dev/shm{name}")
}

fn i64_at(b: &[u8], off: usize) -> Option<i64> {
    b.get(off..off + 8)
        .map(|s| i64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    b.get(off..off + 4)
        .map(|s| i32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

/// Reads the first bytes of the share `name` and classifies it.
pub fn probe(name: &str) -> std::io::Result<Probe> {
    let mut f = std::fs::File::open(path_of(name))?;
    let size = f.metadata()?.len();
    let mut head = Vec::with_capacity(PROBE_LEN);
    f.by_ref().take(PROBE_LEN as u64).read_to_end(&mut head)?;
    Ok(classify(name, size, &head))
}

/// Classifies `head` (the first bytes of an object of `size` bytes).
pub fn classify(name: &str, size: u64, head: &[u8]) -> Probe {
    let mut p = Probe {
        name: name.to_string(),
        size,
        kind: Kind::Unknown,
        likely: false,
        session_id: None,
        fields: Vec::new(),
        counters: Vec::new(),
        problem: None,
    };
    if i64_at(head, 0) == Some(MBUS_MAGIC) {
        media(&mut p, head);
    } else if !ring(&mut p, head, RingKind::Cmd) && !ring(&mut p, head, RingKind::Msg) {
        kv(&mut p, head);
    }
    p
}

fn media(p: &mut Probe, h: &[u8]) {
    let g = |off| i64_at(h, off).unwrap_or(0);
    p.kind = match g(8) {
        1 => Kind::MemVid,
        2 => Kind::MemAud,
        3 => Kind::MemPkt,
        t => {
            p.problem = Some(format!("MBUS magic with unknown type {t}"));
            return;
        }
    };
    p.session_id = Some(g(48));
    let names = [
        "magic", "type", "version", "size", "ptr", "seq", "id", "bufs", "fourcc", "guid_lo",
        "guid_hi", "align", "metasize",
    ];
    for (i, n) in names.iter().enumerate() {
        p.fields.push((n, json!(g(i * 8))));
    }
    let fourcc = g(64) as u32;
    if fourcc != 0 {
        let text: String = fourcc
            .to_le_bytes()
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        p.fields.push(("fourcc_text", json!(text)));
    }
    // Class fields from offset 168 (spec 8.1, 9.1, 10.1).
    let class: &[&str] = match p.kind {
        Kind::MemVid => &[
            "width",
            "height",
            "scanwidth",
            "format",
            "fps",
            "blocksz",
            "frameextra",
            "useroffset",
            "dataoffset",
        ],
        Kind::MemAud => &[
            "channels",
            "sample_rate",
            "format",
            "fps",
            "blocksz",
            "frameextra",
            "useroffset",
            "dataoffset",
            "payloadsize",
        ],
        _ => &[
            "arenasz",
            "maxrec",
            "wcursor",
            "descstride",
            "descoffset",
            "arenaoffset",
        ],
    };
    for (i, n) in class.iter().enumerate() {
        p.fields.push((n, json!(g(168 + i * 8))));
    }
    // Derived: the format's name and size per pixel or sample (spec 11.1, 11.2).
    let (fmt, named): (i64, &[(i64, &str, i64)]) = match p.kind {
        Kind::MemVid => (
            g(192),
            &[
                (1, "gray8", 1),
                (2, "rgb24", 3),
                (3, "bgr24", 3),
                (4, "rgba32", 4),
                (5, "bgra32", 4),
                (6, "yuyv422", 2),
                (7, "uyvy422", 2),
                (0x1000, "userType", 0),
            ],
        ),
        Kind::MemAud => (
            g(184),
            &[
                (1, "u8", 1),
                (2, "s16le", 2),
                (3, "s24le", 3),
                (4, "s32le", 4),
                (5, "f32le", 4),
                (6, "f64le", 8),
                (0x1000, "userType", 0),
            ],
        ),
        _ => (0, &[]),
    };
    if p.kind != Kind::MemPkt {
        let (name, bytes) = named
            .iter()
            .find(|(v, _, _)| *v == fmt)
            .map_or(("unknown", 0), |(_, n, b)| (*n, *b));
        p.fields.push(("format_name", json!(name)));
        p.fields.push((
            if p.kind == Kind::MemVid {
                "bytes_per_pixel"
            } else {
                "bytes_per_sample"
            },
            json!(bytes),
        ));
        if name == "unknown" && p.problem.is_none() {
            p.problem = Some(format!("format value {fmt} is not a known format"));
        }
    }
    p.counters = vec![("seq", g(40)), ("ptr", g(32))];
    if g(24) as u64 != p.size {
        p.problem = Some(format!(
            "header size {} differs from the object size {}",
            g(24),
            p.size
        ));
    }
}

/// memmsg/memcmd: the capacity must account for the object size exactly, the mutex and
/// condition must carry the process-shared bits, and the write offset must be valid.
fn ring(p: &mut Probe, h: &[u8], kind: RingKind) -> bool {
    let Some(size_field) = i64_at(h, 0) else {
        return false;
    };
    let Ok(obj) = usize::try_from(p.size) else {
        return false;
    };
    let Ok(layout) = RingLayout::from_header(kind, size_field, obj) else {
        return false;
    };
    let pshared_mutex = i32_at(h, kind.mutex_offset() + 16).is_some_and(|k| k & 0x80 != 0);
    let pshared_cond = i32_at(h, kind.cond_offset() + 36).is_some_and(|w| w & 1 != 0);
    if !pshared_mutex || !pshared_cond {
        return false;
    }
    let g = |off| i64_at(h, off).unwrap_or(0);
    p.kind = if kind == RingKind::Msg {
        Kind::MemMsg
    } else {
        Kind::MemCmd
    };
    p.likely = true;
    p.session_id = Some(g(24));
    p.fields = vec![
        ("capacity", json!(layout.capacity())),
        ("write", json!(g(8))),
        ("seq", json!(g(16))),
        ("id", json!(g(24))),
    ];
    p.counters = vec![("seq", g(16))];
    if kind == RingKind::Cmd {
        p.fields.push(("readers", json!(g(32))));
        p.counters.push(("readers", g(32)));
    }
    let kind_word = i32_at(h, kind.mutex_offset() + 16).unwrap_or(0);
    p.fields
        .push(("mutex_robust", json!(kind_word & 0x10 != 0)));
    p.fields.push(("header_len", json!(layout.ring_offset())));
    p.fields
        .push(("max_message_len", json!(layout.max_message_len())));
    if layout.check_write(g(8)).is_none() {
        p.problem = Some(format!("write offset {} is invalid", g(8)));
    }
    true
}

/// memkv: count, name and value lengths positive, 128 + C·(18+N+V) = object size, and a
/// process-shared mutex at 40.
fn kv(p: &mut Probe, h: &[u8]) {
    let g = |off| i64_at(h, off).unwrap_or(0);
    let (c, n, v) = (g(0), g(8), g(16));
    if c <= 0 || n <= 0 || v <= 0 {
        return;
    }
    let stride = 18i64.checked_add(n).and_then(|x| x.checked_add(v));
    let total = stride
        .and_then(|t| t.checked_mul(c))
        .and_then(|x| x.checked_add(128));
    if total != i64::try_from(p.size).ok() || i32_at(h, 56).is_none_or(|k| k & 0x80 == 0) {
        return;
    }
    p.kind = Kind::MemKv;
    p.likely = true;
    p.session_id = Some(g(32));
    let stride = stride.unwrap_or(0);
    p.fields = vec![
        ("count", json!(c)),
        ("max_name_len", json!(n)),
        ("max_value_len", json!(v)),
        ("epoch", json!(g(24))),
        ("id", json!(g(32))),
        ("slot_stride", json!(stride)),
    ];
    p.counters = vec![("epoch", g(24))];
    if stride % 8 != 0 {
        p.problem = Some(format!(
            "slot stride {stride} is not a multiple of 8 (pymembus and membus refuse it)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unknown_and_never_panics() {
        for len in [0usize, 1, 7, 8, 100, 200, 4096] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            for size in [0u64, len as u64, u64::MAX] {
                let p = classify("/x", size, &bytes);
                let _ = p.to_json();
            }
        }
        let mut mbus = vec![0u8; 300];
        mbus[0..8].copy_from_slice(&MBUS_MAGIC.to_le_bytes());
        mbus[8..16].copy_from_slice(&9i64.to_le_bytes());
        let p = classify("/y", 300, &mbus);
        assert_eq!(p.kind, Kind::Unknown);
        assert!(p.problem.is_some());
    }
}
