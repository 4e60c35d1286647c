//! memvid, memaud and mempkt layout: the "MBUS" prefix, formats, and the
//! layout formulas, computed from parameters or re-derived from a header snapshot.

use crate::error::{Error, ErrorKind, Result};
use crate::layout::align_up;

/// "MBUS" as a little-endian i64.
pub const MAGIC: i64 = 0x5355_424D;
/// The literal page size in libmembus's layout math.
pub const PAGE: u64 = 4096;

/// Prefix field offsets.
pub mod off {
    /// Magic.
    pub const MAGIC: usize = 0;
    /// Type: 1 memvid, 2 memaud, 3 mempkt.
    pub const TYPE: usize = 8;
    /// Version.
    pub const VERSION: usize = 16;
    /// Total size.
    pub const SIZE: usize = 24;
    /// Write pointer (slot index).
    pub const PTR: usize = 32;
    /// Global publish counter.
    pub const SEQ: usize = 40;
    /// Session id.
    pub const ID: usize = 48;
    /// Slots or descriptors.
    pub const BUFS: usize = 56;
    /// fourcc.
    pub const FOURCC: usize = 64;
    /// GUID bytes 0..16.
    pub const GUID: usize = 72;
    /// Payload alignment.
    pub const ALIGN: usize = 88;
    /// Main user buffer size.
    pub const METASIZE: usize = 96;
    /// First reserved word (reserved0..7 at 104..168).
    pub const RESERVED: usize = 104;
    /// Start of the class-specific fields.
    pub const CLASS: usize = 168;
}

/// Which media ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Video frames.
    Vid,
    /// Audio buffers.
    Aud,
    /// Variable-length packets.
    Pkt,
}

impl MediaKind {
    /// The type value stored at offset 8.
    pub const fn type_value(self) -> i64 {
        match self {
            MediaKind::Vid => 1,
            MediaKind::Aud => 2,
            MediaKind::Pkt => 3,
        }
    }
    /// The version stored at offset 16.
    pub const fn version(self) -> i64 {
        match self {
            MediaKind::Vid => 2,
            MediaKind::Aud => 3,
            MediaKind::Pkt => 2,
        }
    }
    /// Header size: 240 for memvid/memaud, 216 for mempkt.
    pub const fn header_size(self) -> usize {
        match self {
            MediaKind::Pkt => 216,
            _ => 240,
        }
    }
    /// libmembus's name for the type.
    pub const fn type_name(self) -> &'static str {
        match self {
            MediaKind::Vid => "memvid",
            MediaKind::Aud => "memaud",
            MediaKind::Pkt => "mempkt",
        }
    }
}

/// `video_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoFormat {
    /// 1 byte per pixel.
    Gray8,
    /// R, G, B.
    Rgb24,
    /// B, G, R.
    Bgr24,
    /// R, G, B, A.
    Rgba32,
    /// B, G, R, A.
    Bgra32,
    /// Y0 U Y1 V, two bytes per pixel; even width.
    Yuyv422,
    /// U Y0 V Y1, two bytes per pixel; even width.
    Uyvy422,
    /// Opaque frames of `scanwidth · height` bytes.
    UserType,
}

impl VideoFormat {
    /// The stored value.
    pub const fn value(self) -> i64 {
        match self {
            VideoFormat::Gray8 => 1,
            VideoFormat::Rgb24 => 2,
            VideoFormat::Bgr24 => 3,
            VideoFormat::Rgba32 => 4,
            VideoFormat::Bgra32 => 5,
            VideoFormat::Yuyv422 => 6,
            VideoFormat::Uyvy422 => 7,
            VideoFormat::UserType => 0x1000,
        }
    }
    /// The format for a stored value.
    pub const fn from_value(v: i64) -> Option<VideoFormat> {
        Some(match v {
            1 => VideoFormat::Gray8,
            2 => VideoFormat::Rgb24,
            3 => VideoFormat::Bgr24,
            4 => VideoFormat::Rgba32,
            5 => VideoFormat::Bgra32,
            6 => VideoFormat::Yuyv422,
            7 => VideoFormat::Uyvy422,
            0x1000 => VideoFormat::UserType,
            _ => return None,
        })
    }
    /// Bytes per pixel (0 for `UserType`).
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            VideoFormat::Gray8 => 1,
            VideoFormat::Rgb24 | VideoFormat::Bgr24 => 3,
            VideoFormat::Rgba32 | VideoFormat::Bgra32 => 4,
            VideoFormat::Yuyv422 | VideoFormat::Uyvy422 => 2,
            VideoFormat::UserType => 0,
        }
    }
}

/// `audio_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// Unsigned 8-bit.
    U8,
    /// Signed 16-bit little-endian.
    S16le,
    /// Signed 24-bit little-endian, packed (3 bytes).
    S24le,
    /// Signed 32-bit little-endian.
    S32le,
    /// 32-bit float.
    F32le,
    /// 64-bit float.
    F64le,
    /// Opaque buffers of `payload_size` bytes.
    UserType,
}

impl AudioFormat {
    /// The stored value.
    pub const fn value(self) -> i64 {
        match self {
            AudioFormat::U8 => 1,
            AudioFormat::S16le => 2,
            AudioFormat::S24le => 3,
            AudioFormat::S32le => 4,
            AudioFormat::F32le => 5,
            AudioFormat::F64le => 6,
            AudioFormat::UserType => 0x1000,
        }
    }
    /// The format for a stored value.
    pub const fn from_value(v: i64) -> Option<AudioFormat> {
        Some(match v {
            1 => AudioFormat::U8,
            2 => AudioFormat::S16le,
            3 => AudioFormat::S24le,
            4 => AudioFormat::S32le,
            5 => AudioFormat::F32le,
            6 => AudioFormat::F64le,
            0x1000 => AudioFormat::UserType,
            _ => return None,
        })
    }
    /// Bytes per sample (0 for `UserType`).
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::U8 => 1,
            AudioFormat::S16le => 2,
            AudioFormat::S24le => 3,
            AudioFormat::S32le | AudioFormat::F32le => 4,
            AudioFormat::F64le => 8,
            AudioFormat::UserType => 0,
        }
    }
}

fn bad(kind: ErrorKind, msg: String) -> Error {
    Error::new(kind, msg)
}

fn pos(v: i64, what: &str, kind: ErrorKind) -> Result<u64> {
    u64::try_from(v)
        .ok()
        .filter(|&x| x > 0)
        .ok_or_else(|| bad(kind, format!("{what} must be > 0, found {v}")))
}

fn nonneg(v: i64, what: &str, kind: ErrorKind) -> Result<u64> {
    u64::try_from(v).map_err(|_| bad(kind, format!("{what} must be ≥ 0, found {v}")))
}

fn up(v: u64, unit: u64, kind: ErrorKind) -> Result<u64> {
    align_up(v, unit).ok_or_else(|| bad(kind, "layout overflows".into()))
}

fn add(a: u64, b: u64, kind: ErrorKind) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| bad(kind, "layout overflows".into()))
}

fn mul(a: u64, b: u64, kind: ErrorKind) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| bad(kind, "layout overflows".into()))
}

/// `align`: 0 means 64; otherwise a power of two ≥ 8.
fn check_align(align: i64, kind: ErrorKind) -> Result<u64> {
    match align {
        0 => Ok(64),
        a if a >= 8 && (a as u64).is_power_of_two() => Ok(a as u64),
        a => Err(bad(
            kind,
            format!("align must be 0 or a power of two ≥ 8, found {a}"),
        )),
    }
}

/// The slot region and per-frame user buffers shared by memvid and memaud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    /// Number of slots.
    pub bufs: usize,
    /// Payload alignment.
    pub align: usize,
    /// Bytes of slot header before the payload: `align_up(40 or 32, align)`.
    pub fv_hdr: usize,
    /// Payload bytes per slot.
    pub payload: usize,
    /// Slot stride.
    pub blocksz: usize,
    /// Per-frame user-buffer stride (rounded to 8; 0 = none).
    pub frameextra: usize,
    /// Offset of the per-frame user buffers.
    pub useroffset: usize,
    /// Offset of slot 0.
    pub dataoffset: usize,
    /// Main user buffer size.
    pub metasize: usize,
    /// Total object size.
    pub size: usize,
}

impl FrameLayout {
    /// Computes the layout from the payload and the common parameters.
    fn compute(
        slot_hdr: u64,
        payload: u64,
        bufs: i64,
        align: i64,
        frameextra: i64,
        metasize: i64,
        kind: ErrorKind,
    ) -> Result<FrameLayout> {
        let bufs = pos(bufs, "bufs", kind)?;
        let align = check_align(align, kind)?;
        let frameextra = nonneg(frameextra, "frameextra", kind)?;
        let metasize = nonneg(metasize, "metasize", kind)?;
        let fv_hdr = up(slot_hdr, align, kind)?;
        let blocksz = up(add(fv_hdr, payload, kind)?, align, kind)?;
        let fx = if frameextra > 0 {
            up(frameextra, 8, kind)?
        } else {
            0
        };
        let useroffset = up(add(up(240, 8, kind)?, metasize, kind)?, 8, kind)?;
        let dataoffset = up(
            up(add(useroffset, mul(fx, bufs, kind)?, kind)?, align, kind)?,
            PAGE,
            kind,
        )?;
        let size = add(dataoffset, mul(blocksz, bufs, kind)?, kind)?;
        if size > i64::MAX as u64 {
            return Err(bad(kind, "layout overflows".into()));
        }
        let z = |v: u64| v as usize;
        Ok(FrameLayout {
            bufs: z(bufs),
            align: z(align),
            fv_hdr: z(fv_hdr),
            payload: z(payload),
            blocksz: z(blocksz),
            frameextra: z(fx),
            useroffset: z(useroffset),
            dataoffset: z(dataoffset),
            metasize: z(metasize),
            size: z(size),
        })
    }

    /// Offset of slot `i` (i < bufs).
    pub fn slot(&self, i: usize) -> usize {
        self.dataoffset + i * self.blocksz
    }

    /// Offset of slot `i`'s payload.
    pub fn payload_at(&self, i: usize) -> usize {
        self.slot(i) + self.fv_hdr
    }

    /// Offset of slot `i`'s per-frame user buffer.
    pub fn user_at(&self, i: usize) -> usize {
        self.useroffset + i * self.frameextra
    }
}

/// Video parameters as stored in (or to be written to) a memvid header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoGeometry {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes per row (≥ width · bytes per pixel).
    pub scanwidth: usize,
    /// Pixel format.
    pub format: VideoFormat,
    /// Nominal frame rate.
    pub fps: i64,
}

/// A validated memvid layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VidLayout {
    /// Geometry and format.
    pub video: VideoGeometry,
    /// Slots and regions.
    pub frames: FrameLayout,
}

impl VidLayout {
    /// The layout for creation parameters; `scanwidth` 0 = derived.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for anything the spec rejects, and the format rules
    /// libmembus leaves unchecked: a known format, `width · bpp ≤ scanwidth`, an even
    /// width for the YUV 4:2:2 formats.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        width: i64,
        height: i64,
        format: VideoFormat,
        fps: i64,
        bufs: i64,
        scanwidth: i64,
        align: i64,
        frameextra: i64,
        metasize: i64,
    ) -> Result<VidLayout> {
        Self::compute(
            width,
            height,
            format.value(),
            fps,
            bufs,
            scanwidth,
            align,
            frameextra,
            metasize,
            ErrorKind::InvalidArgument,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn compute(
        width: i64,
        height: i64,
        format: i64,
        fps: i64,
        bufs: i64,
        scanwidth: i64,
        align: i64,
        frameextra: i64,
        metasize: i64,
        kind: ErrorKind,
    ) -> Result<VidLayout> {
        let w = pos(width, "width", kind)?;
        let h = pos(height, "height", kind)?;
        pos(fps, "fps", kind)?;
        let format = VideoFormat::from_value(format)
            .ok_or_else(|| bad(kind, format!("unknown video format {format}")))?;
        let sw_arg = nonneg(scanwidth, "scanwidth", kind)?;
        let sw = if format == VideoFormat::UserType {
            if sw_arg == 0 {
                return Err(bad(kind, "userType video needs a scanwidth > 0".into()));
            }
            sw_arg
        } else {
            if matches!(format, VideoFormat::Yuyv422 | VideoFormat::Uyvy422) && w % 2 != 0 {
                return Err(bad(
                    kind,
                    format!("YUV 4:2:2 needs an even width, found {w}"),
                ));
            }
            let derived = mul(w, format.bytes_per_pixel() as u64, kind)?;
            let sw = if sw_arg > 0 { sw_arg } else { derived };
            if sw < derived {
                return Err(bad(
                    kind,
                    format!("scanwidth {sw} is less than width × bytes per pixel = {derived}"),
                ));
            }
            sw
        };
        let payload = mul(sw, h, kind)?;
        let frames = FrameLayout::compute(40, payload, bufs, align, frameextra, metasize, kind)?;
        Ok(VidLayout {
            video: VideoGeometry {
                width: w as usize,
                height: h as usize,
                scanwidth: sw as usize,
                format,
                fps,
            },
            frames,
        })
    }

    /// Validates a header snapshot (the first 240 bytes as little-endian words) against
    /// the mapped length (plus format checks libmembus leaves out).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] saying what is wrong.
    pub fn from_header(h: &[i64; 30], mapped: usize) -> Result<VidLayout> {
        check_prefix(h, MediaKind::Vid, mapped)?;
        let k = ErrorKind::InvalidLayout;
        let l = Self::compute(
            h[21], h[22], h[24], h[25], h[7], h[23], h[11], h[27], h[12], k,
        )?;
        let stored = [
            ("scanwidth", h[23]),
            ("blocksz", h[26]),
            ("frameextra", h[27]),
            ("useroffset", h[28]),
            ("dataoffset", h[29]),
        ];
        let derived = [
            l.video.scanwidth,
            l.frames.blocksz,
            l.frames.frameextra,
            l.frames.useroffset,
            l.frames.dataoffset,
        ];
        check_stored(&stored, &derived, h[3], l.frames.size, mapped)?;
        Ok(l)
    }
}

/// A validated memaud layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudLayout {
    /// Channels.
    pub channels: usize,
    /// Sample rate in Hz.
    pub sample_rate: i64,
    /// Sample format.
    pub format: AudioFormat,
    /// Buffers per second.
    pub fps: i64,
    /// Slots and regions; `frames.payload` is the buffer size in bytes.
    pub frames: FrameLayout,
}

impl AudLayout {
    /// The layout for creation parameters; `payload_size` is used for
    /// `UserType` only.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for anything the spec rejects.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channels: i64,
        format: AudioFormat,
        sample_rate: i64,
        fps: i64,
        bufs: i64,
        align: i64,
        frameextra: i64,
        metasize: i64,
        payload_size: i64,
    ) -> Result<AudLayout> {
        Self::compute(
            channels,
            format.value(),
            sample_rate,
            fps,
            bufs,
            align,
            frameextra,
            metasize,
            payload_size,
            ErrorKind::InvalidArgument,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn compute(
        channels: i64,
        format: i64,
        sample_rate: i64,
        fps: i64,
        bufs: i64,
        align: i64,
        frameextra: i64,
        metasize: i64,
        payload_size: i64,
        kind: ErrorKind,
    ) -> Result<AudLayout> {
        let ch = pos(channels, "channels", kind)?;
        let rate = pos(sample_rate, "sample rate", kind)?;
        let f = pos(fps, "fps", kind)?;
        let format = AudioFormat::from_value(format)
            .ok_or_else(|| bad(kind, format!("unknown audio format {format}")))?;
        let payload = if format == AudioFormat::UserType {
            pos(payload_size, "payload size (userType)", kind)?
        } else {
            let samples = add(rate, f - 1, kind)? / f;
            mul(
                mul(samples, format.bytes_per_sample() as u64, kind)?,
                ch,
                kind,
            )?
        };
        let frames = FrameLayout::compute(32, payload, bufs, align, frameextra, metasize, kind)?;
        Ok(AudLayout {
            channels: ch as usize,
            sample_rate,
            format,
            fps,
            frames,
        })
    }

    /// Validates a header snapshot.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] saying what is wrong.
    pub fn from_header(h: &[i64; 30], mapped: usize) -> Result<AudLayout> {
        check_prefix(h, MediaKind::Aud, mapped)?;
        let k = ErrorKind::InvalidLayout;
        let l = Self::compute(
            h[21], h[23], h[22], h[24], h[7], h[11], h[26], h[12], h[29], k,
        )?;
        if h[29] != l.frames.payload as i64 {
            return Err(bad(
                k,
                format!(
                    "stored payload size {} differs from the computed {}",
                    h[29], l.frames.payload
                ),
            ));
        }
        let stored = [
            ("blocksz", h[25]),
            ("frameextra", h[26]),
            ("useroffset", h[27]),
            ("dataoffset", h[28]),
        ];
        let derived = [
            l.frames.blocksz,
            l.frames.frameextra,
            l.frames.useroffset,
            l.frames.dataoffset,
        ];
        check_stored(&stored, &derived, h[3], l.frames.size, mapped)?;
        Ok(l)
    }
}

/// A validated mempkt layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PktLayout {
    /// Descriptors.
    pub bufs: usize,
    /// Arena size (rounded up to align).
    pub arenasz: usize,
    /// Largest record (payload + meta).
    pub maxrec: usize,
    /// Record alignment.
    pub align: usize,
    /// Offset of the descriptor ring.
    pub descoffset: usize,
    /// Offset of the arena.
    pub arenaoffset: usize,
    /// Main user buffer size.
    pub metasize: usize,
    /// Total object size.
    pub size: usize,
}

/// Descriptor stride.
pub const DESC_STRIDE: usize = 64;

impl PktLayout {
    /// The layout for creation parameters.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for anything the spec rejects.
    pub fn new(
        bufs: i64,
        arenasz: i64,
        maxrec: i64,
        align: i64,
        metasize: i64,
    ) -> Result<PktLayout> {
        Self::compute(
            bufs,
            arenasz,
            maxrec,
            align,
            metasize,
            ErrorKind::InvalidArgument,
        )
    }

    fn compute(
        bufs: i64,
        arenasz: i64,
        maxrec: i64,
        align: i64,
        metasize: i64,
        kind: ErrorKind,
    ) -> Result<PktLayout> {
        let bufs = pos(bufs, "bufs", kind)?;
        let arena_arg = pos(arenasz, "arena size", kind)?;
        let maxrec = pos(maxrec, "maxrec", kind)?;
        let align = check_align(align, kind)?;
        let metasize = nonneg(metasize, "metasize", kind)?;
        let arenasz = up(arena_arg, align, kind)?;
        if up(maxrec, align, kind)? > arenasz {
            return Err(bad(
                kind,
                format!("maxrec {maxrec} (aligned) exceeds the arena {arenasz}"),
            ));
        }
        let descoffset = up(add(up(216, 8, kind)?, metasize, kind)?, 8, kind)?;
        let arenaoffset = up(
            up(
                add(descoffset, mul(DESC_STRIDE as u64, bufs, kind)?, kind)?,
                align,
                kind,
            )?,
            PAGE,
            kind,
        )?;
        let size = add(arenaoffset, arenasz, kind)?;
        if size > i64::MAX as u64 {
            return Err(bad(kind, "layout overflows".into()));
        }
        let z = |v: u64| v as usize;
        Ok(PktLayout {
            bufs: z(bufs),
            arenasz: z(arenasz),
            maxrec: z(maxrec),
            align: z(align),
            descoffset: z(descoffset),
            arenaoffset: z(arenaoffset),
            metasize: z(metasize),
            size: z(size),
        })
    }

    /// Validates a header snapshot.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] saying what is wrong.
    pub fn from_header(h: &[i64; 30], mapped: usize) -> Result<PktLayout> {
        check_prefix(h, MediaKind::Pkt, mapped)?;
        let k = ErrorKind::InvalidLayout;
        // The stored arena size is already rounded; recomputing rounds it again (a no-op).
        let l = Self::compute(h[7], h[21], h[22], h[11], h[12], k)?;
        if h[21] != l.arenasz as i64 {
            return Err(bad(
                k,
                format!(
                    "stored arena size {} is not a multiple of align {}",
                    h[21], l.align
                ),
            ));
        }
        let stored = [
            ("descstride", h[24]),
            ("descoffset", h[25]),
            ("arenaoffset", h[26]),
        ];
        let derived = [DESC_STRIDE, l.descoffset, l.arenaoffset];
        check_stored(&stored, &derived, h[3], l.size, mapped)?;
        Ok(l)
    }

    /// Offset of descriptor `i` (i < bufs).
    pub fn desc(&self, i: usize) -> usize {
        self.descoffset + i * DESC_STRIDE
    }
}

fn check_prefix(h: &[i64; 30], kind: MediaKind, mapped: usize) -> Result<()> {
    let k = ErrorKind::InvalidLayout;
    if mapped < kind.header_size() {
        return Err(bad(
            k,
            format!(
                "object of {mapped} bytes is smaller than a {} header",
                kind.type_name()
            ),
        ));
    }
    if h[0] != MAGIC {
        return Err(bad(k, format!("magic is {:#x}, not \"MBUS\"", h[0])));
    }
    if h[1] != kind.type_value() {
        return Err(bad(
            k,
            format!(
                "type {} is not {} ({})",
                h[1],
                kind.type_value(),
                kind.type_name()
            ),
        ));
    }
    if h[2] != kind.version() {
        return Err(bad(
            k,
            format!(
                "{} version {} is not {}",
                kind.type_name(),
                h[2],
                kind.version()
            ),
        ));
    }
    Ok(())
}

fn check_stored(
    stored: &[(&str, i64)],
    derived: &[usize],
    size_field: i64,
    size: usize,
    mapped: usize,
) -> Result<()> {
    let k = ErrorKind::InvalidLayout;
    for ((name, s), d) in stored.iter().zip(derived) {
        if *s != *d as i64 {
            return Err(bad(
                k,
                format!("stored {name} {s} differs from the computed {d}"),
            )
            .with_sizes(*d as u64, *s as u64));
        }
    }
    if size_field != size as i64 {
        return Err(bad(
            k,
            format!("stored size {size_field} differs from the computed {size}"),
        )
        .with_sizes(size as u64, size_field as u64));
    }
    if size > mapped {
        return Err(bad(
            k,
            format!("layout of {size} bytes exceeds the {mapped}-byte object"),
        )
        .with_sizes(size as u64, mapped as u64));
    }
    Ok(())
}

/// The first 240 bytes of a media header as little-endian words (missing bytes read as 0).
pub fn header_words(bytes: &[u8]) -> [i64; 30] {
    let mut h = [0i64; 30];
    for (i, w) in h.iter_mut().enumerate() {
        if let Some(b) = bytes.get(i * 8..i * 8 + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            *w = i64::from_le_bytes(a);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_examples_from_the_spec() {
        let v = VidLayout::new(16, 8, VideoFormat::Rgb24, 30, 2, 0, 0, 0, 0).unwrap();
        let f = v.frames;
        assert_eq!(
            (
                v.video.scanwidth,
                f.payload,
                f.fv_hdr,
                f.blocksz,
                f.useroffset,
                f.dataoffset,
                f.size
            ),
            (48, 384, 64, 448, 240, 4096, 4992)
        );
        let v = VidLayout::new(641, 481, VideoFormat::Gray8, 25, 3, 0, 0, 20, 5).unwrap();
        assert_eq!(
            (
                v.frames.frameextra,
                v.frames.useroffset,
                v.frames.blocksz,
                v.frames.dataoffset,
                v.frames.size
            ),
            (24, 248, 308416, 4096, 929344)
        );
        let a = AudLayout::new(2, AudioFormat::S16le, 44100, 30, 3, 0, 0, 0, 0).unwrap();
        assert_eq!(
            (
                a.frames.payload,
                a.frames.blocksz,
                a.frames.dataoffset,
                a.frames.size
            ),
            (5880, 5952, 4096, 21952)
        );
        let p = PktLayout::new(8, 65541, 4096, 0, 5).unwrap();
        assert_eq!(
            (p.arenasz, p.descoffset, p.arenaoffset, p.size),
            (65600, 224, 4096, 69696)
        );
    }

    #[test]
    fn w11_format_rules_are_enforced() {
        assert!(VidLayout::new(5, 4, VideoFormat::Yuyv422, 30, 2, 0, 0, 0, 0).is_err());
        assert!(VidLayout::new(16, 4, VideoFormat::Rgb24, 30, 2, 40, 0, 0, 0).is_err());
        assert!(VidLayout::new(16, 4, VideoFormat::UserType, 30, 2, 0, 0, 0, 0).is_err());
        assert!(VidLayout::new(16, 4, VideoFormat::UserType, 30, 2, 100, 0, 0, 0).is_ok());
        assert!(
            VidLayout::new(16, 4, VideoFormat::Rgb24, 30, 2, 0, 24, 0, 0).is_err(),
            "align not a power of two"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_validate_without_panicking(words in proptest::array::uniform30(any::<i64>()), mapped in any::<usize>(), kind in 0u8..3, small in proptest::array::uniform16(0i64..5000)) {
            let mut h = words;
            // Half the cases keep a plausible prefix and small fields, to reach the deep checks.
            if small[0] % 2 == 0 {
                h[0] = MAGIC;
                h[1] = i64::from(kind) + 1;
                h[2] = if kind == 1 { 3 } else { 2 };
                for (i, s) in small.iter().enumerate().skip(1) {
                    let idx = [3, 7, 11, 12, 21, 22, 23, 24, 25, 26, 27, 28, 29, 4, 5][i - 1];
                    h[idx] = *s;
                }
            }
            match kind {
                0 => if let Ok(l) = VidLayout::from_header(&h, mapped) {
                    prop_assert!(l.frames.size <= mapped);
                    prop_assert!(l.frames.payload_at(l.frames.bufs - 1) + l.frames.payload <= mapped);
                    prop_assert!(l.video.width * l.video.format.bytes_per_pixel() <= l.video.scanwidth);
                },
                1 => if let Ok(l) = AudLayout::from_header(&h, mapped) {
                    prop_assert!(l.frames.payload_at(l.frames.bufs - 1) + l.frames.payload <= mapped);
                    prop_assert!(l.frames.user_at(l.frames.bufs) <= l.frames.dataoffset);
                },
                _ => if let Ok(l) = PktLayout::from_header(&h, mapped) {
                    prop_assert!(l.desc(l.bufs) <= l.arenaoffset);
                    prop_assert!(l.arenaoffset + l.arenasz <= mapped);
                },
            }
        }

        #[test]
        fn computed_layouts_round_trip_through_their_headers(w in 1i64..2000, h in 1i64..1200, fmt in 1i64..8, bufs in 1i64..9, extra in 0i64..100, meta in 0i64..300, al in 0u32..5) {
            let align = if al == 0 { 0 } else { 8i64 << al };
            let format = VideoFormat::from_value(fmt).unwrap();
            let w = if matches!(format, VideoFormat::Yuyv422 | VideoFormat::Uyvy422) { (w & !1).max(2) } else { w };
            let l = VidLayout::new(w, h, format, 30, bufs, 0, align, extra, meta).unwrap();
            let mut hw = [0i64; 30];
            hw[0] = MAGIC; hw[1] = 1; hw[2] = 2; hw[3] = l.frames.size as i64; hw[7] = bufs;
            hw[11] = l.frames.align as i64; hw[12] = meta;
            hw[21] = w; hw[22] = h; hw[23] = l.video.scanwidth as i64; hw[24] = fmt; hw[25] = 30;
            hw[26] = l.frames.blocksz as i64; hw[27] = l.frames.frameextra as i64; hw[28] = l.frames.useroffset as i64; hw[29] = l.frames.dataoffset as i64;
            prop_assert_eq!(VidLayout::from_header(&hw, l.frames.size).unwrap(), l.clone());
            prop_assert!(VidLayout::from_header(&hw, l.frames.size - 1).is_err());
        }
    }
}
