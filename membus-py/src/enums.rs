//! `errc`, `video_format`, `audio_format` and `pkt_kind` with pybind11 `py::enum_`
//! semantics: `.name`/`.value`, `int()`, `operator.index()`, `hash(e) == value`,
//! `__members__`, `E(int)` (unknown values give a member named `"???"`), `==` only
//! between members of the same enum, no ordering.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use membus::layout::media::{AudioFormat, VideoFormat};

macro_rules! py_enum {
    ($ty:ident, $pyname:literal, [$(($member:literal, $value:expr)),* $(,)?]) => {
        #[doc = concat!("pymembus's `", $pyname, "` enum.")]
        #[pyclass(frozen, name = $pyname, module = "pymembus.pymembus")]
        pub(crate) struct $ty {
            v: i64,
        }

        impl $ty {
            pub(crate) const MEMBERS: &'static [(&'static str, i64)] = &[$(($member, $value)),*];

            pub(crate) fn value(&self) -> i64 {
                self.v
            }

            fn member_name(&self) -> &'static str {
                Self::MEMBERS
                    .iter()
                    .find(|m| m.1 == self.v)
                    .map_or("???", |m| m.0)
            }

            /// The member object for `v` (the class attribute itself, so returning one
            /// allocates nothing), or a new pseudo-member for an unknown value.
            pub(crate) fn member<'py>(py: Python<'py>, v: i64) -> PyResult<Bound<'py, $ty>> {
                if let Some(known) = Self::cache().get(py) {
                    if let Some(i) = Self::MEMBERS.iter().position(|m| m.1 == v) {
                        return Ok(known[i].bind(py).clone());
                    }
                }
                Bound::new(py, $ty { v })
            }

            fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
                let py = m.py();
                m.add_class::<$ty>()?;
                let cls = py.get_type::<$ty>();
                let members = PyDict::new(py);
                let mut objs = Vec::new();
                for (name, value) in Self::MEMBERS {
                    let member = Bound::new(py, $ty { v: *value })?;
                    cls.setattr(*name, &member)?;
                    members.set_item(*name, &member)?;
                    objs.push(member.unbind());
                }
                cls.setattr("__members__", members)?;
                let _ = Self::cache().set(py, objs);
                Ok(())
            }

            /// The member objects, in `MEMBERS` order, once the class is registered.
            fn cache() -> &'static PyOnceLock<Vec<Py<$ty>>> {
                static CACHE: PyOnceLock<Vec<Py<$ty>>> = PyOnceLock::new();
                &CACHE
            }
        }

        #[pymethods]
        impl $ty {
            #[new]
            fn py_new(value: i64) -> Self {
                $ty { v: value }
            }

            #[getter]
            fn name(&self) -> &'static str {
                self.member_name()
            }

            #[getter(value)]
            fn py_value(&self) -> i64 {
                self.v
            }

            fn __int__(&self) -> i64 {
                self.v
            }

            fn __index__(&self) -> i64 {
                self.v
            }

            fn __hash__(&self) -> isize {
                self.v as isize
            }

            fn __repr__(&self) -> String {
                format!("<{}.{}: {}>", $pyname, self.member_name(), self.v)
            }

            fn __str__(&self) -> String {
                format!("{}.{}", $pyname, self.member_name())
            }

            fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
                other.cast::<$ty>().is_ok_and(|o| o.get().v == self.v)
            }

            fn __ne__(&self, other: &Bound<'_, PyAny>) -> bool {
                !self.__eq__(other)
            }

        }
    };
}

py_enum!(
    Errc,
    "errc",
    [
        ("ok", 0),
        ("invalid_argument", 1),
        ("open_failed", 2),
        ("create_failed", 3),
        ("map_failed", 4),
        ("size_mismatch", 5),
        ("invalid_layout", 6),
        ("not_open", 7),
        ("access_denied", 8),
        ("message_too_large", 9),
        ("lock_timeout", 10),
        ("timeout", 11),
        ("overrun", 12),
    ]
);

py_enum!(
    VideoFormatEnum,
    "video_format",
    [
        ("gray8", 1),
        ("rgb24", 2),
        ("bgr24", 3),
        ("rgba32", 4),
        ("bgra32", 5),
        ("yuyv422", 6),
        ("uyvy422", 7),
        ("userType", 0x1000),
    ]
);

py_enum!(
    AudioFormatEnum,
    "audio_format",
    [
        ("u8", 1),
        ("s16le", 2),
        ("s24le", 3),
        ("s32le", 4),
        ("f32le", 5),
        ("f64le", 6),
        ("userType", 0x1000),
    ]
);

py_enum!(
    PktKindEnum,
    "pkt_kind",
    [("data", 0), ("video", 1), ("audio", 2)]
);

/// libmembus's `video_format_name`.
pub(crate) fn video_name(v: i64) -> &'static str {
    match VideoFormat::from_value(v) {
        Some(VideoFormat::Gray8) => "GRAY8",
        Some(VideoFormat::Rgb24) => "RGB24",
        Some(VideoFormat::Bgr24) => "BGR24",
        Some(VideoFormat::Rgba32) => "RGBA32",
        Some(VideoFormat::Bgra32) => "BGRA32",
        Some(VideoFormat::Yuyv422) => "YUYV422",
        Some(VideoFormat::Uyvy422) => "UYVY422",
        Some(VideoFormat::UserType) => "USERTYPE",
        None => "unknown",
    }
}

/// libmembus's `audio_format_name`.
pub(crate) fn audio_name(v: i64) -> &'static str {
    match AudioFormat::from_value(v) {
        Some(AudioFormat::U8) => "U8",
        Some(AudioFormat::S16le) => "S16LE",
        Some(AudioFormat::S24le) => "S24LE",
        Some(AudioFormat::S32le) => "S32LE",
        Some(AudioFormat::F32le) => "F32LE",
        Some(AudioFormat::F64le) => "F64LE",
        Some(AudioFormat::UserType) => "USERTYPE",
        None => "unknown",
    }
}

/// Bytes per pixel (0 for userType and unknown values).
pub(crate) fn video_bpp(v: i64) -> i64 {
    VideoFormat::from_value(v).map_or(0, |f| f.bytes_per_pixel() as i64)
}

/// Bytes per sample (0 for userType and unknown values).
pub(crate) fn audio_bps(v: i64) -> i64 {
    AudioFormat::from_value(v).map_or(0, |f| f.bytes_per_sample() as i64)
}

/// `video_format_name(format: video_format) -> str`.
#[pyfunction]
fn video_format_name(format: PyRef<'_, VideoFormatEnum>) -> &'static str {
    video_name(format.value())
}

/// `video_format_bytes_per_pixel(format: video_format) -> int`.
#[pyfunction]
fn video_format_bytes_per_pixel(format: PyRef<'_, VideoFormatEnum>) -> i64 {
    video_bpp(format.value())
}

/// `audio_format_name(format: audio_format) -> str`.
#[pyfunction]
fn audio_format_name(format: PyRef<'_, AudioFormatEnum>) -> &'static str {
    audio_name(format.value())
}

/// `audio_format_bytes_per_sample(format: audio_format) -> int`.
#[pyfunction]
fn audio_format_bytes_per_sample(format: PyRef<'_, AudioFormatEnum>) -> i64 {
    audio_bps(format.value())
}

/// Adds the enums and the format helpers to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    Errc::register(m)?;
    VideoFormatEnum::register(m)?;
    AudioFormatEnum::register(m)?;
    PktKindEnum::register(m)?;
    m.add_function(wrap_pyfunction!(video_format_name, m)?)?;
    m.add_function(wrap_pyfunction!(video_format_bytes_per_pixel, m)?)?;
    m.add_function(wrap_pyfunction!(audio_format_name, m)?)?;
    m.add_function(wrap_pyfunction!(audio_format_bytes_per_sample, m)?)?;
    Ok(())
}
