//! The typed store and messages of the cross-language schema tests: every supported memkv
//! field type, and a message enum with every variant shape.

use membus::{MemKv, MemKvEnum, Message};

/// An enum stored by name.
#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
pub enum Level {
    /// "Low".
    Low,
    /// "High".
    High,
    /// "off" on the wire.
    #[memkv(rename = "off")]
    Off,
}

/// Every field type a typed store supports.
#[derive(MemKv, Clone, Debug, PartialEq)]
#[memkv(max_len = 24)]
pub struct AllTypes {
    /// u8.
    pub a_u8: u8,
    /// u16.
    pub a_u16: u16,
    /// u32.
    pub a_u32: u32,
    /// u64.
    pub a_u64: u64,
    /// u128.
    pub a_u128: u128,
    /// usize.
    pub a_usize: usize,
    /// i8.
    pub a_i8: i8,
    /// i16.
    pub a_i16: i16,
    /// i32.
    pub a_i32: i32,
    /// i64.
    pub a_i64: i64,
    /// i128.
    pub a_i128: i128,
    /// isize.
    pub a_isize: isize,
    /// f32.
    pub a_f32: f32,
    /// f64.
    pub a_f64: f64,
    /// bool.
    pub a_bool: bool,
    /// char.
    pub a_char: char,
    /// String (renamed slot).
    #[memkv(rename = "label")]
    pub a_string: String,
    /// An enum.
    pub level: Level,
    /// Option of a number.
    pub maybe_u16: Option<u16>,
    /// Option of a string.
    #[memkv(max_len = 8)]
    pub maybe_text: Option<String>,
    /// A `FromStr + Display` type.
    #[memkv(text, max_len = 15, default = "0.0.0.0")]
    pub addr: std::net::Ipv4Addr,
}

impl AllTypes {
    /// The values a creator starts with.
    pub fn first() -> AllTypes {
        AllTypes {
            a_u8: 200,
            a_u16: 65535,
            a_u32: 4_000_000_000,
            a_u64: u64::MAX,
            a_u128: u128::MAX,
            a_usize: 12345,
            a_i8: -128,
            a_i16: -32768,
            a_i32: i32::MIN,
            a_i64: i64::MIN,
            a_i128: i128::MIN,
            a_isize: -5,
            a_f32: 0.1,
            a_f64: -1.5e-300,
            a_bool: true,
            a_char: 'é',
            a_string: "héllo wörld".into(),
            level: Level::Off,
            maybe_u16: None,
            maybe_text: Some("abc".into()),
            addr: std::net::Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    /// Other values of every field (what the other side writes).
    pub fn second() -> AllTypes {
        AllTypes {
            a_u8: 7,
            a_u16: 1,
            a_u32: 0,
            a_u64: 18_000_000_000_000_000_000,
            a_u128: 170_141_183_460_469_231_731_687_303_715_884_105_728,
            a_usize: 0,
            a_i8: 127,
            a_i16: 32767,
            a_i32: -1,
            a_i64: i64::MAX,
            a_i128: i128::MAX,
            a_isize: 99,
            a_f32: 3.25e-20,
            a_f64: 2.5,
            a_bool: false,
            a_char: '€',
            a_string: "∑ unicode ✓".into(),
            level: Level::High,
            maybe_u16: Some(443),
            maybe_text: None,
            addr: std::net::Ipv4Addr::new(192, 168, 1, 254),
        }
    }
}

/// A message with every variant shape.
#[derive(Message, Clone, Debug, PartialEq)]
pub enum Command {
    /// Unit.
    PanLeft,
    /// Newtype.
    Zoom(f32),
    /// Tuple.
    Move(i32, i32),
    /// Struct, with an optional field and an array.
    Expose {
        /// u32.
        us: u32,
        /// bool.
        auto: bool,
        /// Option.
        note: Option<String>,
        /// Array.
        gains: Vec<u8>,
    },
}

impl Command {
    /// One of each variant.
    pub fn all() -> Vec<Command> {
        vec![
            Command::PanLeft,
            Command::Zoom(2.5),
            Command::Move(1, -2),
            Command::Expose {
                us: 500,
                auto: false,
                note: Some("ok".into()),
                gains: vec![1, 2, 255],
            },
        ]
    }
}
