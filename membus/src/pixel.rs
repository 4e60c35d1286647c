//! Pixel and sample types for typed frames: plain data (`bytemuck::Pod`) with alignment 1,
//! so rows of them can be viewed directly in a frame.

use crate::layout::media::VideoFormat;

/// A pixel type: `Pod` with alignment 1, and the formats whose rows it can view.
///
/// # Safety
/// Implementors must have alignment 1 and size `SIZE`, and accept every bit pattern
/// (`Pod`): frames hand out slices of them over shared memory.
pub unsafe trait Pixel: bytemuck::Pod {
    /// Bytes per value.
    const SIZE: usize;
    /// Formats whose rows are sequences of this type.
    const FORMATS: &'static [VideoFormat];
}

macro_rules! pixel {
    ($(#[$doc:meta])* $name:ident { $($field:ident),+ } => $($fmt:ident),+) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: u8,
            )+
        }
        // SAFETY: a #[repr(C)] struct of only u8 fields has no padding, alignment 1, and
        // accepts every bit pattern; all-zero is a valid value.
        unsafe impl bytemuck::Zeroable for $name {}
        // SAFETY: as above; the type is Copy and 'static.
        unsafe impl bytemuck::Pod for $name {}
        // SAFETY: alignment 1 (u8 fields only), size = number of fields, Pod (above).
        unsafe impl Pixel for $name {
            const SIZE: usize = std::mem::size_of::<$name>();
            const FORMATS: &'static [VideoFormat] = &[$(VideoFormat::$fmt),+];
        }
    };
}

pixel!(
    /// One gray8 pixel.
    Gray { v } => Gray8
);
pixel!(
    /// One rgb24 pixel.
    Rgb { r, g, b } => Rgb24
);
pixel!(
    /// One bgr24 pixel.
    Bgr { b, g, r } => Bgr24
);
pixel!(
    /// One rgba32 pixel.
    Rgba { r, g, b, a } => Rgba32
);
pixel!(
    /// One bgra32 pixel.
    Bgra { b, g, r, a } => Bgra32
);
pixel!(
    /// One YUV 4:2:2 pixel as its byte pair (Y then U or V for yuyv422; U or V then Y for
    /// uyvy422): two pixels share one chroma pair.
    Yuv422 { first, second } => Yuyv422, Uyvy422
);

// SAFETY: u8 has alignment 1 and size 1 and is Pod; any format's rows are bytes.
unsafe impl Pixel for u8 {
    const SIZE: usize = 1;
    const FORMATS: &'static [VideoFormat] = &[
        VideoFormat::Gray8,
        VideoFormat::Rgb24,
        VideoFormat::Bgr24,
        VideoFormat::Rgba32,
        VideoFormat::Bgra32,
        VideoFormat::Yuyv422,
        VideoFormat::Uyvy422,
        VideoFormat::UserType,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignment() {
        assert_eq!((Rgb::SIZE, std::mem::align_of::<Rgb>()), (3, 1));
        assert_eq!((Bgra::SIZE, std::mem::align_of::<Bgra>()), (4, 1));
        assert_eq!(Yuv422::SIZE, 2);
        let px: &[Rgb] = bytemuck::cast_slice(&[1u8, 2, 3, 4, 5, 6]);
        assert_eq!(px[1], Rgb { r: 4, g: 5, b: 6 });
    }
}

/// An audio sample type: `Pod`, alignment at most 8, and the formats whose interleaved
/// buffers it can view.
///
/// # Safety
/// Implementors must have size `SIZE`, alignment ≤ 8, and accept every bit pattern (`Pod`):
/// buffers hand out slices of them over shared memory.
pub unsafe trait Sample: bytemuck::Pod {
    /// Bytes per value.
    const SIZE: usize;
    /// Formats whose buffers are sequences of this type.
    const FORMATS: &'static [crate::layout::media::AudioFormat];
}

/// One packed little-endian 24-bit sample (s24le).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct S24(pub [u8; 3]);

impl S24 {
    /// The sample's value, sign-extended.
    pub fn get(self) -> i32 {
        i32::from_le_bytes([self.0[0], self.0[1], self.0[2], 0]) << 8 >> 8
    }

    /// The sample for `v` (its low 24 bits).
    pub fn new(v: i32) -> S24 {
        let b = v.to_le_bytes();
        S24([b[0], b[1], b[2]])
    }
}

// SAFETY: a #[repr(C)] wrapper of [u8; 3]: no padding, alignment 1, every bit pattern valid.
unsafe impl bytemuck::Zeroable for S24 {}
// SAFETY: as above; Copy and 'static.
unsafe impl bytemuck::Pod for S24 {}

macro_rules! sample {
    ($t:ty => $($fmt:ident),+) => {
        // SAFETY: a primitive Pod type with alignment ≤ 8 and size_of::<$t>() bytes.
        unsafe impl Sample for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const FORMATS: &'static [crate::layout::media::AudioFormat] = &[$(crate::layout::media::AudioFormat::$fmt),+];
        }
    };
}

sample!(u8 => U8, S16le, S24le, S32le, F32le, F64le, UserType);
sample!(i16 => S16le);
sample!(S24 => S24le);
sample!(i32 => S32le);
sample!(f32 => F32le);
sample!(f64 => F64le);

#[cfg(test)]
mod sample_tests {
    use super::*;

    #[test]
    fn s24_round_trips_signed_values() {
        for v in [0, 1, -1, 8_388_607, -8_388_608, 12345, -54321] {
            assert_eq!(S24::new(v).get(), v);
        }
        assert_eq!(S24::SIZE, 3);
    }
}
