//! The text form of typed memkv values: what a pymembus peer reads and writes.
//!
//! Integers are decimal, floats their shortest round-trip form (`1.5`, `1e-45`), `bool`s
//! `true`/`false`, `char`s the character itself, enums their variant name, `Option::None`
//! the empty slot.

use crate::typed::schema::ValueDesc;

/// A type that a memkv slot can hold as text.
///
/// Implemented for every integer type, `f32`, `f64`, `bool`, `char`, `String` and
/// `Option<T>` of those, and by `#[derive(MemKvEnum)]` for enums of unit variants. For any
/// other `T: FromStr + Display`, mark the field `#[memkv(text, max_len = N)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a memkv slot",
    label = "unsupported memkv field type",
    note = "supported: integers, f32, f64, bool, char, String, Option<T> of those, enums with #[derive(MemKvEnum)]; for a `FromStr + Display` type use #[memkv(text, max_len = N)]"
)]
pub trait KvValue: Sized {
    /// The longest text this type can produce, or `None` when unbounded (then the field
    /// needs `#[memkv(max_len = N)]`).
    const MAX_LEN: Option<usize>;
    /// The type's name as recorded in the schema fingerprint.
    const TYPE_NAME: &'static str;
    /// How the schema description ([`Schema`](crate::typed::schema::Schema)) shows this
    /// type.
    const DESC: ValueDesc = ValueDesc::of_type_name(Self::TYPE_NAME);
    /// Appends the text form of `self` to `out`.
    fn encode(&self, out: &mut String);
    /// Parses the text form.
    ///
    /// # Errors
    /// A message saying why `text` is not a value of this type.
    fn decode(text: &str) -> Result<Self, String>;
}

macro_rules! int_value {
    ($($t:ty => $len:expr),* $(,)?) => {$(
        impl KvValue for $t {
            const MAX_LEN: Option<usize> = Some($len);
            const TYPE_NAME: &'static str = stringify!($t);
            fn encode(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{self}");
            }
            fn decode(text: &str) -> Result<Self, String> {
                text.parse::<$t>().map_err(|e| e.to_string())
            }
        }
    )*};
}

int_value! {
    i8 => 4, u8 => 3, i16 => 6, u16 => 5, i32 => 11, u32 => 10, i64 => 20, u64 => 20,
    i128 => 40, u128 => 39, isize => 20, usize => 20,
}

macro_rules! float_value {
    ($($t:ty => $len:expr),*) => {$(
        impl KvValue for $t {
            /// The longest `{:e}` form, e.g. `-2.2250738585072014e-308` for f64.
            const MAX_LEN: Option<usize> = Some($len);
            const TYPE_NAME: &'static str = stringify!($t);
            fn encode(&self, out: &mut String) {
                use std::fmt::Write;
                // Rust's Display is the shortest round-trip form but never uses an
                // exponent; beyond MAX_LEN characters use the (also shortest) exponent form.
                let plain = format!("{self}");
                if plain.len() <= $len {
                    out.push_str(&plain);
                } else {
                    let _ = write!(out, "{self:e}");
                }
            }
            fn decode(text: &str) -> Result<Self, String> {
                text.trim().parse::<$t>().map_err(|e| e.to_string())
            }
        }
    )*};
}

float_value! { f32 => 15, f64 => 24 }

impl KvValue for bool {
    const MAX_LEN: Option<usize> = Some(5);
    const TYPE_NAME: &'static str = "bool";
    fn encode(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn decode(text: &str) -> Result<Self, String> {
        // Python's str(True) is "True"; accept it and 1/0 too.
        match text {
            "true" | "True" | "1" => Ok(true),
            "false" | "False" | "0" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
}

impl KvValue for char {
    const MAX_LEN: Option<usize> = Some(4);
    const TYPE_NAME: &'static str = "char";
    fn encode(&self, out: &mut String) {
        out.push(*self);
    }
    fn decode(text: &str) -> Result<Self, String> {
        let mut it = text.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(c),
            _ => Err("expected exactly one character".into()),
        }
    }
}

impl KvValue for String {
    const MAX_LEN: Option<usize> = None;
    const TYPE_NAME: &'static str = "String";
    const DESC: ValueDesc = ValueDesc::plain("string");
    fn encode(&self, out: &mut String) {
        out.push_str(self);
    }
    fn decode(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

/// `None` is the empty slot. `Some` of a value whose text is empty (an empty `String`)
/// therefore reads back as `None`.
impl<T: KvValue> KvValue for Option<T> {
    const MAX_LEN: Option<usize> = T::MAX_LEN;
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    const DESC: ValueDesc = T::DESC.optional();
    fn encode(&self, out: &mut String) {
        if let Some(v) = self {
            v.encode(out);
        }
    }
    fn decode(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            T::decode(text).map(Some)
        }
    }
}

/// An enum of unit variants stored by variant name; implemented by `#[derive(MemKvEnum)]`,
/// which also implements [`KvValue`].
pub trait MemKvEnum: Sized {
    /// Every variant's wire name, in declaration order.
    const VARIANTS: &'static [&'static str];
    /// This variant's wire name.
    fn variant_name(&self) -> &'static str;
    /// The variant with wire name `name`.
    fn from_variant_name(name: &str) -> Option<Self>;
}

/// Text codec for `FromStr + Display` fields marked `#[memkv(text)]`.
pub fn text_encode<T: std::fmt::Display>(v: &T, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{v}");
}

/// Text codec for `FromStr + Display` fields marked `#[memkv(text)]`.
///
/// # Errors
/// The type's parse error, as text.
pub fn text_decode<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| e.to_string())
}

/// Decoding helper for `#[derive(MemKvEnum)]`.
///
/// # Errors
/// When `text` is not a variant name.
pub fn enum_decode<E: MemKvEnum>(text: &str) -> Result<E, String> {
    E::from_variant_name(text).ok_or_else(|| format!("expected one of {}", E::VARIANTS.join(", ")))
}

/// `const` maximum of variant name lengths, for `#[derive(MemKvEnum)]`.
pub const fn max_name_len(names: &[&str]) -> usize {
    let mut i = 0;
    let mut m = 0;
    while i < names.len() {
        if names[i].len() > m {
            m = names[i].len();
        }
        i += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round<T: KvValue + PartialEq + std::fmt::Debug>(v: T) -> Result<(), TestCaseError> {
        let mut s = String::new();
        v.encode(&mut s);
        if let Some(max) = T::MAX_LEN {
            prop_assert!(s.len() <= max, "{:?} → {:?} longer than {}", v, s, max);
        }
        prop_assert!(!s.contains('\0'));
        prop_assert_eq!(T::decode(&s).map_err(TestCaseError::fail)?, v);
        Ok(())
    }

    #[test]
    fn wire_text_is_what_python_writes() {
        let enc = |v: &dyn Fn(&mut String)| {
            let mut s = String::new();
            v(&mut s);
            s
        };
        assert_eq!(enc(&|s| 42u32.encode(s)), "42");
        assert_eq!(enc(&|s| (-7i8).encode(s)), "-7");
        assert_eq!(enc(&|s| 0.1f64.encode(s)), "0.1");
        assert_eq!(enc(&|s| 1e-300f64.encode(s)), "1e-300");
        assert_eq!(enc(&|s| f64::MIN.encode(s)), "-1.7976931348623157e308");
        assert_eq!(enc(&|s| true.encode(s)), "true");
        assert_eq!(enc(&|s| None::<u8>.encode(s)), "");
        assert_eq!(f64::decode("1e3"), Ok(1000.0));
        assert_eq!(bool::decode("True"), Ok(true));
        assert!(u8::decode("256").is_err());
        assert!(char::decode("ab").is_err());
        assert_eq!(Option::<i32>::decode(""), Ok(None));
        // What Python's str(float) writes for the special values.
        assert!(f64::decode("nan").unwrap().is_nan());
        assert_eq!(f64::decode("inf"), Ok(f64::INFINITY));
        assert_eq!(f64::decode("-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(f64::decode("3.0"), Ok(3.0));
    }

    proptest! {
        #[test] fn ints(a in any::<i8>(), b in any::<u8>(), c in any::<i16>(), d in any::<u16>(), e in any::<i32>(), f in any::<u32>()) {
            round(a)?; round(b)?; round(c)?; round(d)?; round(e)?; round(f)?;
        }
        #[test] fn wide_ints(a in any::<i64>(), b in any::<u64>(), c in any::<i128>(), d in any::<u128>(), e in any::<isize>(), f in any::<usize>()) {
            round(a)?; round(b)?; round(c)?; round(d)?; round(e)?; round(f)?;
        }
        #[test] fn floats(a in any::<f64>(), b in any::<f32>()) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            round(a)?; round(b)?;
        }
        #[test] fn float_bits(a in any::<u64>(), b in any::<u32>()) {
            let (a, b) = (f64::from_bits(a), f32::from_bits(b));
            prop_assume!(!a.is_nan() && !b.is_nan());
            round(a)?; round(b)?;
        }
        #[test] fn others(a in any::<bool>(), c in any::<char>(), s in "[^\0]{0,40}", o in any::<Option<i64>>()) {
            prop_assume!(c != '\0');
            round(a)?; round(c)?; round(s)?; round(o)?;
        }
    }
}
