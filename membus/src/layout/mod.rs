//! Pure layout math: sizes, offsets and validation of header values read from a share.
//!
//! No unsafe code and no I/O here: every function takes plain numbers (snapshots of header
//! fields, the mapped length) and returns checked offsets or an error. The share modules
//! call these at the moment of use, so a hostile or corrupted header can only ever produce
//! an [`ErrorKind::InvalidLayout`](crate::ErrorKind::InvalidLayout).

pub mod identify;
pub mod kv;
pub mod media;
pub mod pthread;
pub mod ring;

/// `align_up(v, unit)`: the smallest multiple of `unit` that is ≥ `v`, or `None` on overflow.
pub const fn align_up(v: u64, unit: u64) -> Option<u64> {
    if unit == 0 {
        return None;
    }
    match v.checked_add(unit - 1) {
        // A power of two (every alignment the wire format allows): a mask, not a division.
        Some(x) if unit.is_power_of_two() => Some(x & !(unit - 1)),
        Some(x) => Some(x / unit * unit),
        None => None,
    }
}
