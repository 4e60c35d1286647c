//! The [`Message`] trait and the codec helpers the derive's generated code calls (through
//! `membus::__private`).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// A type with a wire form for memmsg/memcmd. Derive it with `#[derive(Message)]`.
pub trait Message: Sized {
    /// Appends the wire form of `self` to `out`.
    ///
    /// # Errors
    /// When a field cannot be encoded (for example a map with non-string keys).
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a wire form.
    ///
    /// # Errors
    /// When the bytes are not a wire form of this type; the reason says why.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;

    /// The full description of the wire form (`#[derive(Message)]` provides it; `None` for
    /// types without one, such as [`Pod`]). A channel created through a typed constructor
    /// ([`Sender::create_memmsg`](crate::typed::Sender::create_memmsg), ...) publishes it.
    fn schema() -> Option<crate::typed::Schema> {
        None
    }
}

/// Why a message could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    reason: String,
}

impl CodecError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> CodecError {
        CodecError {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for CodecError {}

/// A wire form split into its variant name and payload.
#[doc(hidden)]
pub enum Wire<'a> {
    /// A bare name: a unit variant or unit struct.
    Unit(&'a str),
    /// `{"name": payload}`.
    Tagged(String, Value),
}

#[doc(hidden)]
pub fn to_json_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, CodecError> {
    serde_json::to_value(v).map_err(|e| CodecError::new(format!("cannot encode: {e}")))
}

#[doc(hidden)]
pub fn from_json_value<T: DeserializeOwned>(v: Value) -> Result<T, CodecError> {
    serde_json::from_value(v).map_err(|e| CodecError::new(e.to_string()))
}

#[doc(hidden)]
pub fn write_json(out: &mut Vec<u8>, v: Value) -> Result<(), CodecError> {
    serde_json::to_writer(out, &v).map_err(|e| CodecError::new(format!("cannot encode: {e}")))
}

#[doc(hidden)]
pub fn write_tagged(out: &mut Vec<u8>, name: &str, payload: Value) -> Result<(), CodecError> {
    let mut m = Map::with_capacity(1);
    m.insert(name.to_string(), payload);
    write_json(out, Value::Object(m))
}

#[doc(hidden)]
pub fn parse_json(bytes: &[u8]) -> Result<Value, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| CodecError::new(format!("not JSON: {e}")))
}

/// A bare name, or a JSON object with exactly one key.
#[doc(hidden)]
pub fn parse_wire(bytes: &[u8]) -> Result<Wire<'_>, CodecError> {
    if bytes.first() == Some(&b'{') {
        let Value::Object(m) = parse_json(bytes)? else {
            return Err(CodecError::new("not a JSON object"));
        };
        if m.len() != 1 {
            return Err(CodecError::new(format!(
                "a tagged message has exactly one key, found {}",
                m.len()
            )));
        }
        let Some((k, v)) = m.into_iter().next() else {
            return Err(CodecError::new("empty JSON object"));
        };
        return Ok(Wire::Tagged(k, v));
    }
    std::str::from_utf8(bytes)
        .map(Wire::Unit)
        .map_err(|e| CodecError::new(format!("not UTF-8: {e}")))
}

#[doc(hidden)]
pub fn unknown_variant(name: &str, expected: &[&str]) -> CodecError {
    CodecError::new(format!(
        "unknown variant {name:?}, expected one of: {}",
        expected.join(", ")
    ))
}

#[doc(hidden)]
pub fn expect_null(v: Value) -> Result<(), CodecError> {
    if v.is_null() {
        Ok(())
    } else {
        Err(CodecError::new(format!(
            "a unit variant carries no payload, found {v}"
        )))
    }
}

#[doc(hidden)]
pub fn json_tuple<const N: usize>(v: Value) -> Result<[Value; N], CodecError> {
    match v {
        Value::Array(items) => {
            let n = items.len();
            <[Value; N]>::try_from(items)
                .map_err(|_| CodecError::new(format!("expected an array of {N} values, found {n}")))
        }
        other => Err(CodecError::new(format!(
            "expected an array of {N} values, found {other}"
        ))),
    }
}

#[doc(hidden)]
pub fn json_object(v: Value) -> Result<Map<String, Value>, CodecError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(CodecError::new(format!(
            "expected a JSON object, found {other}"
        ))),
    }
}

/// Takes field `key` out of `m`: a missing field is `None` for an `Option`, an error for
/// anything else.
#[doc(hidden)]
pub fn json_field<T: DeserializeOwned>(
    m: &mut Map<String, Value>,
    key: &str,
) -> Result<T, CodecError> {
    match m.remove(key) {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| CodecError::new(format!("field `{key}`: {e}")))
        }
        None => serde_json::from_value(Value::Null)
            .map_err(|_| CodecError::new(format!("missing field `{key}`"))),
    }
}

/// Plain data sent as its bytes: the fast path for fixed-size `T: bytemuck::Pod` messages
/// between Rust processes (same layout on both sides), with no serialisation.
///
/// ```
/// use membus::typed::{Message, Pod};
/// let mut wire = Vec::new();
/// Pod([1.0f32, 2.0, 3.0]).encode(&mut wire).unwrap();
/// assert_eq!(wire.len(), 12);
/// assert_eq!(Pod::<[f32; 3]>::decode(&wire).unwrap().0, [1.0, 2.0, 3.0]);
/// assert!(Pod::<[f32; 3]>::decode(&wire[..8]).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pod<T>(pub T);

impl<T: bytemuck::Pod> Message for Pod<T> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(bytemuck::bytes_of(&self.0));
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() != std::mem::size_of::<T>() {
            return Err(CodecError::new(format!(
                "expected {} bytes of {}, found {}",
                std::mem::size_of::<T>(),
                std::any::type_name::<T>(),
                bytes.len()
            )));
        }
        Ok(Pod(bytemuck::pod_read_unaligned(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_parsing() {
        assert!(matches!(
            parse_wire(b"pan-left"),
            Ok(Wire::Unit("pan-left"))
        ));
        assert!(matches!(parse_wire(br#"{"zoom":2}"#), Ok(Wire::Tagged(k, _)) if k == "zoom"));
        assert!(parse_wire(br#"{"a":1,"b":2}"#).is_err());
        assert!(parse_wire(b"{not json").is_err());
        assert!(parse_wire(&[0xff, 0xfe]).is_err());
        assert_eq!(json_tuple::<2>(serde_json::json!([1, 2])).unwrap().len(), 2);
        assert!(json_tuple::<2>(serde_json::json!([1])).is_err());
        let mut m = json_object(serde_json::json!({"a": 1})).unwrap();
        assert_eq!(json_field::<Option<u8>>(&mut m, "b").unwrap(), None);
        assert_eq!(json_field::<u8>(&mut m, "a").unwrap(), 1);
        assert_eq!(
            json_field::<u8>(&mut m, "a").unwrap_err().reason(),
            "missing field `a`"
        );
    }
}
