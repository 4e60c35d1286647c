//! The bridge's framing: one small header in front of every Zenoh payload, then a body per
//! share type. Pure encode/decode functions, no I/O; decoding never panics and never trusts
//! a length it has not checked against the bytes it was given.
//!
//! Header (40 bytes, little-endian):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `MBR1` |
//! | 4 | 1 | [`Kind`] |
//! | 5 | 3 | reserved, zero |
//! | 8 | 8 | session: the sender's bridge session for this share (random per start) |
//! | 16 | 8 | seq: the sender's own item sequence, 1 for the first item of a session |
//! | 24 | 8 | skipped: how many of the items missing before this one the sender skipped on purpose |
//! | 32 | 8 | stamp: sender's wall clock, nanoseconds since the Unix epoch |
//!
//! `seq` advances for every item the source produced, including those the sender skipped
//! or lost, so a receiver counts every missing item from the gap alone.

use std::fmt;

/// Magic at offset 0.
pub const MAGIC: [u8; 4] = *b"MBR1";
/// Header length.
pub const HEADER_LEN: usize = 40;

/// Query parameter of a stall probe: the exporter answers with a bare [`Header`] of kind
/// [`Kind::Info`] (its session and last sequence number), without the description.
pub const PROBE_PARAM: &str = "probe";

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One memmsg message.
    Msg = 1,
    /// One memkv batch.
    KvBatch = 2,
    /// One memvid frame.
    Video = 3,
    /// One memcmd command (importer towards exporter).
    Cmd = 4,
    /// A share description (reply to an info query).
    Info = 5,
    /// One memaud buffer.
    Audio = 6,
    /// One mempkt record.
    Packet = 7,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Msg,
            2 => Kind::KvBatch,
            3 => Kind::Video,
            4 => Kind::Cmd,
            5 => Kind::Info,
            6 => Kind::Audio,
            7 => Kind::Packet,
            _ => return None,
        })
    }
}

/// A malformed frame: what was wrong, for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

/// The decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What follows.
    pub kind: Kind,
    /// Sender session.
    pub session: u64,
    /// Sender sequence.
    pub seq: u64,
    /// Items skipped on purpose before this one.
    pub skipped: u64,
    /// Sender wall clock (ns since the Unix epoch).
    pub stamp: u64,
}

impl Header {
    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.kind as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.skipped.to_le_bytes());
        out.extend_from_slice(&self.stamp.to_le_bytes());
    }

    /// Splits `frame` into its header and body.
    ///
    /// # Errors
    /// A [`WireError`] for a short frame, a wrong magic or an unknown kind.
    pub fn parse(frame: &[u8]) -> Result<(Header, &[u8]), WireError> {
        let mut c = Cursor::new(frame);
        let magic = c.bytes(4)?;
        if magic != MAGIC {
            return Err(bad(format!("bad magic {magic:02x?}")));
        }
        let k = c.u8()?;
        let kind = Kind::from_u8(k).ok_or_else(|| bad(format!("unknown kind {k}")))?;
        c.bytes(3)?;
        let h = Header {
            kind,
            session: c.u64()?,
            seq: c.u64()?,
            skipped: c.u64()?,
            stamp: c.u64()?,
        };
        Ok((h, c.rest()))
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A bounds-checked reader over a byte slice.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Reads `buf` from the start.
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// When fewer than `n` bytes are left.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "truncated: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.buf.len() - self.pos
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// One byte.
    ///
    /// # Errors
    /// When none is left.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    /// A little-endian u32.
    ///
    /// # Errors
    /// When fewer than 4 bytes are left.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian u64.
    ///
    /// # Errors
    /// When fewer than 8 bytes are left.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A little-endian i64.
    ///
    /// # Errors
    /// When fewer than 8 bytes are left.
    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(self.u64()? as i64)
    }

    /// A u32 length, then that many bytes, at most `max`.
    ///
    /// # Errors
    /// When the length exceeds `max` or the bytes are not there.
    pub fn blob(&mut self, max: usize, what: &str) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(bad(format!("{what}: length {n} exceeds {max}")));
        }
        self.bytes(n)
    }

    /// Everything not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails unless everything was read.
    ///
    /// # Errors
    /// When bytes are left over.
    pub fn finish(&self, what: &str) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(bad(format!(
                "{what}: {} trailing bytes",
                self.buf.len() - self.pos
            )))
        }
    }
}

/// Appends a u32 length and the bytes.
///
/// # Panics
/// Never for bytes taken from a share (every share limit is far below 4 GiB); a longer
/// slice is a programming error.
pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    let n = u32::try_from(b.len()).expect("blob shorter than 4 GiB");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
}

/// One memkv batch: the exporter's epoch and the slots it set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvBatch {
    /// The exporter's epoch for this batch.
    pub epoch: i64,
    /// `(slot index, value)` pairs.
    pub values: Vec<(usize, Vec<u8>)>,
}

impl KvBatch {
    /// Appends the body.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (idx, v) in &self.values {
            out.extend_from_slice(&(*idx as u32).to_le_bytes());
            put_blob(out, v);
        }
    }

    /// Decodes a body for a store of `count` slots with values up to `max_value` bytes.
    ///
    /// # Errors
    /// On any size or index out of range, or trailing bytes.
    pub fn parse(body: &[u8], count: usize, max_value: usize) -> Result<KvBatch, WireError> {
        let mut c = Cursor::new(body);
        let epoch = c.i64()?;
        let n = c.u32()? as usize;
        if n > count {
            return Err(bad(format!("kv batch of {n} slots, store has {count}")));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let idx = c.u32()? as usize;
            if idx >= count {
                return Err(bad(format!("kv slot {idx} out of range (count {count})")));
            }
            values.push((idx, c.blob(max_value, "kv value")?.to_vec()));
        }
        c.finish("kv batch")?;
        Ok(KvBatch { epoch, values })
    }
}

/// Longest name or value the bridge accepts in a memkv description (sanity bound).
pub const MAX_KV_TEXT: usize = 1 << 20;
/// Most slots the bridge accepts in a memkv description (sanity bound).
pub const MAX_KV_SLOTS: usize = 1 << 20;
/// Largest main user buffer accepted in a memvid description.
pub const MAX_META: usize = 1 << 24;

/// A share's description: enough to create a mirror of the same geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Info {
    /// memmsg with its ring capacity.
    Msg {
        /// Ring capacity in bytes.
        capacity: u64,
    },
    /// memcmd with its ring capacity.
    Cmd {
        /// Ring capacity in bytes.
        capacity: u64,
    },
    /// memkv with its limits, names and a consistent snapshot.
    Kv {
        /// Usable name bytes per slot.
        max_name: u32,
        /// Usable value bytes per slot.
        max_value: u32,
        /// Slot names.
        names: Vec<String>,
        /// The snapshot's epoch.
        epoch: i64,
        /// Slot values at `epoch`.
        values: Vec<Vec<u8>>,
    },
    /// memvid geometry and identity.
    Video(VideoInfo),
    /// memaud geometry and identity.
    Audio(AudioInfo),
    /// mempkt geometry and identity.
    Packet(PacketInfo),
}

/// A memaud share's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// Interleaved channels.
    pub channels: u32,
    /// Format value (spec's numbering).
    pub format: i64,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Buffers per second.
    pub fps: u32,
    /// Slots.
    pub bufs: u32,
    /// Payload alignment.
    pub align: u64,
    /// Per-buffer user bytes.
    pub frameextra: u64,
    /// Buffer size in bytes.
    pub payload: u64,
    /// fourcc.
    pub fourcc: u32,
    /// GUID.
    pub guid: [u8; 16],
    /// Main user buffer.
    pub meta: Vec<u8>,
}

/// A mempkt share's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// Descriptors.
    pub bufs: u32,
    /// Arena bytes.
    pub arenasz: u64,
    /// Largest record (payload + meta).
    pub maxrec: u64,
    /// Record alignment.
    pub align: u64,
    /// fourcc.
    pub fourcc: u32,
    /// GUID.
    pub guid: [u8; 16],
    /// Main user buffer.
    pub meta: Vec<u8>,
}

/// A memvid share's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Format value (spec's numbering).
    pub format: i64,
    /// Nominal rate.
    pub fps: u32,
    /// Slots.
    pub bufs: u32,
    /// Bytes per row.
    pub scanwidth: u64,
    /// Payload alignment.
    pub align: u64,
    /// Per-frame user bytes.
    pub frameextra: u64,
    /// fourcc.
    pub fourcc: u32,
    /// GUID.
    pub guid: [u8; 16],
    /// Main user buffer.
    pub meta: Vec<u8>,
}

impl Info {
    /// Appends the body (type tag first).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Info::Msg { capacity } => {
                out.push(1);
                out.extend_from_slice(&capacity.to_le_bytes());
            }
            Info::Cmd { capacity } => {
                out.push(4);
                out.extend_from_slice(&capacity.to_le_bytes());
            }
            Info::Kv {
                max_name,
                max_value,
                names,
                epoch,
                values,
            } => {
                out.push(2);
                out.extend_from_slice(&max_name.to_le_bytes());
                out.extend_from_slice(&max_value.to_le_bytes());
                out.extend_from_slice(&(names.len() as u32).to_le_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
                for (n, v) in names.iter().zip(values) {
                    put_blob(out, n.as_bytes());
                    put_blob(out, v);
                }
            }
            Info::Video(v) => {
                out.push(3);
                out.extend_from_slice(&v.width.to_le_bytes());
                out.extend_from_slice(&v.height.to_le_bytes());
                out.extend_from_slice(&v.format.to_le_bytes());
                out.extend_from_slice(&v.fps.to_le_bytes());
                out.extend_from_slice(&v.bufs.to_le_bytes());
                out.extend_from_slice(&v.scanwidth.to_le_bytes());
                out.extend_from_slice(&v.align.to_le_bytes());
                out.extend_from_slice(&v.frameextra.to_le_bytes());
                out.extend_from_slice(&v.fourcc.to_le_bytes());
                out.extend_from_slice(&v.guid);
                put_blob(out, &v.meta);
            }
            Info::Audio(a) => {
                out.push(5);
                out.extend_from_slice(&a.channels.to_le_bytes());
                out.extend_from_slice(&a.format.to_le_bytes());
                out.extend_from_slice(&a.sample_rate.to_le_bytes());
                out.extend_from_slice(&a.fps.to_le_bytes());
                out.extend_from_slice(&a.bufs.to_le_bytes());
                out.extend_from_slice(&a.align.to_le_bytes());
                out.extend_from_slice(&a.frameextra.to_le_bytes());
                out.extend_from_slice(&a.payload.to_le_bytes());
                out.extend_from_slice(&a.fourcc.to_le_bytes());
                out.extend_from_slice(&a.guid);
                put_blob(out, &a.meta);
            }
            Info::Packet(p) => {
                out.push(6);
                out.extend_from_slice(&p.bufs.to_le_bytes());
                out.extend_from_slice(&p.arenasz.to_le_bytes());
                out.extend_from_slice(&p.maxrec.to_le_bytes());
                out.extend_from_slice(&p.align.to_le_bytes());
                out.extend_from_slice(&p.fourcc.to_le_bytes());
                out.extend_from_slice(&p.guid);
                put_blob(out, &p.meta);
            }
        }
    }

    /// Decodes a description body.
    ///
    /// # Errors
    /// On an unknown type, any size out of range, or trailing bytes.
    pub fn parse(body: &[u8]) -> Result<Info, WireError> {
        let mut c = Cursor::new(body);
        let info = match c.u8()? {
            1 => Info::Msg { capacity: c.u64()? },
            4 => Info::Cmd { capacity: c.u64()? },
            2 => {
                let max_name = c.u32()?;
                let max_value = c.u32()?;
                let count = c.u32()? as usize;
                if count > MAX_KV_SLOTS {
                    return Err(bad(format!("kv description with {count} slots")));
                }
                let epoch = c.i64()?;
                let mut names = Vec::new();
                let mut values = Vec::new();
                for _ in 0..count {
                    let n = c.blob((max_name as usize).min(MAX_KV_TEXT), "kv name")?;
                    let n = std::str::from_utf8(n)
                        .map_err(|_| bad("kv name is not UTF-8"))?
                        .to_owned();
                    names.push(n);
                    values.push(
                        c.blob((max_value as usize).min(MAX_KV_TEXT), "kv value")?
                            .to_vec(),
                    );
                }
                Info::Kv {
                    max_name,
                    max_value,
                    names,
                    epoch,
                    values,
                }
            }
            3 => {
                let width = c.u32()?;
                let height = c.u32()?;
                let format = c.i64()?;
                let fps = c.u32()?;
                let bufs = c.u32()?;
                let scanwidth = c.u64()?;
                let align = c.u64()?;
                let frameextra = c.u64()?;
                let fourcc = c.u32()?;
                let mut guid = [0u8; 16];
                guid.copy_from_slice(c.bytes(16)?);
                let meta = c.blob(MAX_META, "video meta")?.to_vec();
                Info::Video(VideoInfo {
                    width,
                    height,
                    format,
                    fps,
                    bufs,
                    scanwidth,
                    align,
                    frameextra,
                    fourcc,
                    guid,
                    meta,
                })
            }
            5 => {
                let channels = c.u32()?;
                let format = c.i64()?;
                let sample_rate = c.u32()?;
                let fps = c.u32()?;
                let bufs = c.u32()?;
                let align = c.u64()?;
                let frameextra = c.u64()?;
                let payload = c.u64()?;
                let fourcc = c.u32()?;
                let mut guid = [0u8; 16];
                guid.copy_from_slice(c.bytes(16)?);
                let meta = c.blob(MAX_META, "audio meta")?.to_vec();
                Info::Audio(AudioInfo {
                    channels,
                    format,
                    sample_rate,
                    fps,
                    bufs,
                    align,
                    frameextra,
                    payload,
                    fourcc,
                    guid,
                    meta,
                })
            }
            6 => {
                let bufs = c.u32()?;
                let arenasz = c.u64()?;
                let maxrec = c.u64()?;
                let align = c.u64()?;
                let fourcc = c.u32()?;
                let mut guid = [0u8; 16];
                guid.copy_from_slice(c.bytes(16)?);
                let meta = c.blob(MAX_META, "packet meta")?.to_vec();
                Info::Packet(PacketInfo {
                    bufs,
                    arenasz,
                    maxrec,
                    align,
                    fourcc,
                    guid,
                    meta,
                })
            }
            t => return Err(bad(format!("unknown share type {t} in description"))),
        };
        c.finish("description")?;
        Ok(info)
    }

    /// The share type's name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Info::Msg { .. } => "memmsg",
            Info::Cmd { .. } => "memcmd",
            Info::Kv { .. } => "memkv",
            Info::Video(_) => "memvid",
            Info::Audio(_) => "memaud",
            Info::Packet(_) => "mempkt",
        }
    }
}

/// One memvid frame's metadata; the payload follows it in the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame<'a> {
    /// Video timestamp.
    pub vpts: i64,
    /// Companion audio timestamp.
    pub apts: i64,
    /// The source share's sequence number for this frame.
    pub src_seq: u64,
    /// Per-frame user data.
    pub user: &'a [u8],
    /// The pixels (`scanwidth × height` bytes).
    pub payload: &'a [u8],
}

impl<'a> VideoFrame<'a> {
    /// Appends the metadata and the payload.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.vpts.to_le_bytes());
        out.extend_from_slice(&self.apts.to_le_bytes());
        out.extend_from_slice(&self.src_seq.to_le_bytes());
        put_blob(out, self.user);
        put_blob(out, self.payload);
    }

    /// Decodes a body whose payload must be exactly `payload_len` bytes and user data at
    /// most `max_user` bytes.
    ///
    /// # Errors
    /// On a wrong payload size, oversized user data, or trailing bytes.
    pub fn parse(
        body: &'a [u8],
        payload_len: usize,
        max_user: usize,
    ) -> Result<VideoFrame<'a>, WireError> {
        let mut c = Cursor::new(body);
        let vpts = c.i64()?;
        let apts = c.i64()?;
        let src_seq = c.u64()?;
        let user = c.blob(max_user, "frame user data")?;
        let payload = c.blob(usize::MAX, "frame payload")?;
        if payload.len() != payload_len {
            return Err(bad(format!(
                "frame payload of {} bytes, share frames are {payload_len}",
                payload.len()
            )));
        }
        c.finish("frame")?;
        Ok(VideoFrame {
            vpts,
            apts,
            src_seq,
            user,
            payload,
        })
    }
}

/// One memaud buffer; the payload follows its metadata in the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioBuffer<'a> {
    /// Timestamp.
    pub pts: i64,
    /// The source share's sequence number for this buffer.
    pub src_seq: u64,
    /// Per-buffer user data.
    pub user: &'a [u8],
    /// The samples.
    pub payload: &'a [u8],
}

impl<'a> AudioBuffer<'a> {
    /// Appends the body.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pts.to_le_bytes());
        out.extend_from_slice(&self.src_seq.to_le_bytes());
        put_blob(out, self.user);
        put_blob(out, self.payload);
    }

    /// Decodes a body whose payload must be exactly `payload_len` bytes.
    ///
    /// # Errors
    /// On a wrong payload size, oversized user data, or trailing bytes.
    pub fn parse(
        body: &'a [u8],
        payload_len: usize,
        max_user: usize,
    ) -> Result<AudioBuffer<'a>, WireError> {
        let mut c = Cursor::new(body);
        let pts = c.i64()?;
        let src_seq = c.u64()?;
        let user = c.blob(max_user, "buffer user data")?;
        let payload = c.blob(usize::MAX, "buffer payload")?;
        if payload.len() != payload_len {
            return Err(bad(format!(
                "audio payload of {} bytes, share buffers are {payload_len}",
                payload.len()
            )));
        }
        c.finish("audio buffer")?;
        Ok(AudioBuffer {
            pts,
            src_seq,
            user,
            payload,
        })
    }
}

/// One mempkt record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRecord<'a> {
    /// Record kind value.
    pub kind: i64,
    /// Track.
    pub track: i64,
    /// Timestamp.
    pub pts: i64,
    /// Per-record metadata.
    pub meta: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> PacketRecord<'a> {
    /// Appends the body.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.track.to_le_bytes());
        out.extend_from_slice(&self.pts.to_le_bytes());
        put_blob(out, self.meta);
        put_blob(out, self.payload);
    }

    /// Decodes a body whose payload plus metadata are at most `maxrec` bytes.
    ///
    /// # Errors
    /// On oversized parts or trailing bytes.
    pub fn parse(body: &'a [u8], maxrec: usize) -> Result<PacketRecord<'a>, WireError> {
        let mut c = Cursor::new(body);
        let kind = c.i64()?;
        let track = c.i64()?;
        let pts = c.i64()?;
        let meta = c.blob(maxrec, "record meta")?;
        let payload = c.blob(maxrec - meta.len(), "record payload")?;
        c.finish("record")?;
        Ok(PacketRecord {
            kind,
            track,
            pts,
            meta,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(kind: Kind) -> Header {
        Header {
            kind,
            session: 7,
            seq: 42,
            skipped: 3,
            stamp: 99,
        }
    }

    #[test]
    fn header_round_trip() {
        let mut v = Vec::new();
        hdr(Kind::Video).write(&mut v);
        v.extend_from_slice(b"body");
        assert_eq!(v.len(), HEADER_LEN + 4);
        let (h, body) = Header::parse(&v).unwrap();
        assert_eq!(h, hdr(Kind::Video));
        assert_eq!(body, b"body");
    }

    #[test]
    fn header_rejects_bad_magic_kind_and_short() {
        let mut v = Vec::new();
        hdr(Kind::Msg).write(&mut v);
        let mut m = v.clone();
        m[0] = b'X';
        assert!(Header::parse(&m).unwrap_err().0.contains("magic"));
        let mut k = v.clone();
        k[4] = 77;
        assert!(Header::parse(&k).unwrap_err().0.contains("unknown kind 77"));
        assert!(Header::parse(&v[..HEADER_LEN - 1])
            .unwrap_err()
            .0
            .contains("truncated"));
    }

    #[test]
    fn info_round_trip() {
        let infos = [
            Info::Msg { capacity: 4096 },
            Info::Cmd { capacity: 512 },
            Info::Kv {
                max_name: 14,
                max_value: 64,
                names: vec!["a".into(), "bb".into()],
                epoch: 9,
                values: vec![b"1".to_vec(), Vec::new()],
            },
            Info::Video(VideoInfo {
                width: 640,
                height: 480,
                format: 2,
                fps: 30,
                bufs: 4,
                scanwidth: 1920,
                align: 64,
                frameextra: 8,
                fourcc: 0x3432_5652,
                guid: [5; 16],
                meta: b"meta".to_vec(),
            }),
            Info::Audio(AudioInfo {
                channels: 2,
                format: 1,
                sample_rate: 48_000,
                fps: 100,
                bufs: 8,
                align: 64,
                frameextra: 0,
                payload: 1920,
                fourcc: 0,
                guid: [1; 16],
                meta: Vec::new(),
            }),
            Info::Packet(PacketInfo {
                bufs: 64,
                arenasz: 1 << 16,
                maxrec: 4096,
                align: 8,
                fourcc: 7,
                guid: [2; 16],
                meta: b"m".to_vec(),
            }),
        ];
        for info in infos {
            let mut v = Vec::new();
            info.write(&mut v);
            assert_eq!(Info::parse(&v).unwrap(), info);
            // Every truncation is an error, never a panic.
            for cut in 0..v.len() {
                assert!(Info::parse(&v[..cut]).is_err(), "cut at {cut}");
            }
            let mut long = v.clone();
            long.push(0);
            assert!(Info::parse(&long).is_err());
        }
    }

    #[test]
    fn kv_batch_checks_indices_and_sizes() {
        let b = KvBatch {
            epoch: 5,
            values: vec![(0, b"x".to_vec()), (2, b"yy".to_vec())],
        };
        let mut v = Vec::new();
        b.write(&mut v);
        assert_eq!(KvBatch::parse(&v, 3, 8).unwrap(), b);
        assert!(KvBatch::parse(&v, 2, 8)
            .unwrap_err()
            .0
            .contains("out of range"));
        assert!(KvBatch::parse(&v, 3, 1).unwrap_err().0.contains("exceeds"));
    }

    #[test]
    fn video_frame_checks_payload_size() {
        let f = VideoFrame {
            vpts: 1,
            apts: 2,
            src_seq: 3,
            user: b"u",
            payload: &[9; 12],
        };
        let mut v = Vec::new();
        f.write(&mut v);
        assert_eq!(VideoFrame::parse(&v, 12, 8).unwrap(), f);
        assert!(VideoFrame::parse(&v, 13, 8).is_err());
        assert!(VideoFrame::parse(&v, 12, 0).is_err());
    }

    #[test]
    fn audio_and_packet_bodies() {
        let a = AudioBuffer {
            pts: 5,
            src_seq: 6,
            user: b"",
            payload: &[1; 8],
        };
        let mut v = Vec::new();
        a.write(&mut v);
        assert_eq!(AudioBuffer::parse(&v, 8, 0).unwrap(), a);
        assert!(AudioBuffer::parse(&v, 9, 0).is_err());
        let p = PacketRecord {
            kind: 1,
            track: 2,
            pts: 3,
            meta: b"mm",
            payload: b"ppp",
        };
        let mut v = Vec::new();
        p.write(&mut v);
        assert_eq!(PacketRecord::parse(&v, 5).unwrap(), p);
        assert!(PacketRecord::parse(&v, 4).is_err());
        assert!(PacketRecord::parse(&v, 1).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic pseudo-random sweep (xorshift) over lengths and contents.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            // Give some inputs a valid type tag so the deeper paths run.
            if let Some(b) = buf.first_mut() {
                *b = (len % 7) as u8;
            }
            let _ = Header::parse(&buf);
            let _ = Info::parse(&buf);
            let _ = KvBatch::parse(&buf, 16, 64);
            let _ = VideoFrame::parse(&buf, 16, 16);
            let _ = AudioBuffer::parse(&buf, 16, 16);
            let _ = PacketRecord::parse(&buf, 64);
        }
    }
}
