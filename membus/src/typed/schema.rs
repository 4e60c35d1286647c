//! Self-describing typed shares: the schema description, the companion object that carries
//! it, and the compatibility rules applied on attach.
//!
//! A store created with [`Kv::create`](crate::Kv::create), or a channel created with
//! [`Sender::create_memmsg`](crate::typed::Sender::create_memmsg) /
//! [`Receiver::create_memcmd`](crate::typed::Receiver::create_memcmd) and friends, gets a
//! companion object `<name>.membus-schema` next to it holding a [`Schema`] as JSON. libmembus
//! and pymembus never open it, so they keep seeing only the ordinary slots or messages. The
//! creator owns it: it is removed with the share (the creator's drop, [`crate::remove`],
//! `membus rm`), replaced when a new creator makes the share again, and `membus rm --stale`
//! removes one whose share is gone.
//!
//! Layout of the companion (all little-endian):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `MBSCHEM1` |
//! | 8 | 8 | JSON length L; 0 while the creator is still writing |
//! | 16 | L | the [`Schema`] as UTF-8 JSON |
//!
//! The creator writes the JSON, then publishes L (release); a reader loads L (acquire),
//! bounds-checks it against the mapped length and [`MAX_SCHEMA_BYTES`], and parses the copy.
//! Anything else (a foreign object under that name, a truncated or hostile one) is an
//! [`ErrorKind::InvalidLayout`] error that says what is wrong.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::name::{IntoShareName, ShareName};
use crate::sys::shm::{Access, Segment};

/// Suffix of the companion object that holds a share's schema.
pub const SCHEMA_SUFFIX: &str = ".membus-schema";
/// Largest schema description accepted (1 MiB).
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// Version of the description's format ([`Schema::format`]).
pub const FORMAT: u32 = 1;

const MAGIC: &[u8; 8] = b"MBSCHEM1";
const OFF_LEN: usize = 8;
const HEADER: usize = 16;

/// What kind of share a schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// A memkv store typed by `#[derive(MemKv)]`.
    Memkv,
    /// A memmsg/memcmd channel typed by `#[derive(Message)]`.
    Message,
}

/// The full description of a typed share's schema: readable without the Rust type.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// Store or channel.
    pub kind: SchemaKind,
    /// The Rust type's name (`CameraState`).
    pub type_name: String,
    /// The 16-hex fingerprint recorded in the store's `__schema` slot (memkv, if any).
    pub fingerprint: Option<String>,
    /// The store's fields in slot order (memkv).
    pub fields: Vec<FieldDesc>,
    /// The message's form (message).
    pub message: Option<MessageDesc>,
}

/// One field of a memkv schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    /// The Rust field name.
    pub name: String,
    /// The slot name on the wire.
    pub slot: String,
    /// The value type: `u8` … `u128`, `i8` … `i128`, `usize`, `isize`, `f32`, `f64`,
    /// `bool`, `char`, `string`, `enum` (see [`variants`](Self::variants)) or `text` (any
    /// `FromStr + Display` type: only the length is checked).
    pub ty: String,
    /// The Rust type as written (`Option<u16>`).
    pub rust: String,
    /// Whether the empty slot means `None`.
    pub optional: bool,
    /// The longest value text in bytes.
    pub max_len: usize,
    /// The enum's Rust name, for `enum` fields.
    pub enum_name: Option<String>,
    /// The enum's wire names, in declaration order, for `enum` fields.
    pub variants: Vec<String>,
    /// The wire text assumed when a store made by an older schema lacks this field
    /// (`#[memkv(default = "...")]`).
    pub default: Option<String>,
}

/// The wire form of a `#[derive(Message)]` type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDesc {
    /// `true` for an enum (`name` or `{"name": payload}`), `false` for a struct (its
    /// payload alone, or its name for a unit struct).
    pub tagged: bool,
    /// The variants (one for a struct), in declaration order.
    pub variants: Vec<VariantDesc>,
}

/// One variant of a message (or the struct itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantDesc {
    /// The wire name.
    pub name: String,
    /// The Rust name.
    pub rust: String,
    /// `unit`, `newtype` (one unnamed field: the payload is the value), `tuple` (a JSON
    /// array) or `struct` (a JSON object).
    pub shape: String,
    /// The payload's fields, in order (names are empty for `newtype` and `tuple`).
    pub fields: Vec<MsgFieldDesc>,
}

/// One field of a message payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgFieldDesc {
    /// The JSON key (empty for unnamed fields).
    pub name: String,
    /// The JSON type: `bool`, `u8` … `u64`, `i8` … `i64`, `f32`, `f64`, `char`, `string`,
    /// `option<T>`, `array<T>`, or `any` (a type serde encodes some other way).
    pub ty: String,
    /// The Rust type as written.
    pub rust: String,
}

/// How a field's value type is described; generated by the derives through
/// [`KvValue::DESC`](crate::KvValue::DESC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueDesc {
    /// As [`FieldDesc::ty`].
    pub ty: &'static str,
    /// As [`FieldDesc::optional`].
    pub optional: bool,
    /// As [`FieldDesc::enum_name`].
    pub enum_name: Option<&'static str>,
    /// As [`FieldDesc::variants`].
    pub variants: &'static [&'static str],
}

impl ValueDesc {
    /// A plain (non-enum, non-optional) type.
    pub const fn plain(ty: &'static str) -> ValueDesc {
        ValueDesc {
            ty,
            optional: false,
            enum_name: None,
            variants: &[],
        }
    }

    /// A type by its [`KvValue::TYPE_NAME`](crate::KvValue::TYPE_NAME): the scalar types
    /// by name, anything else (a hand-written `KvValue`) as `text`.
    pub const fn of_type_name(name: &'static str) -> ValueDesc {
        let mut i = 0;
        while i < KV_TYPES.len() {
            if const_eq(KV_TYPES[i], name) && !const_eq(name, "enum") {
                return ValueDesc::plain(KV_TYPES[i]);
            }
            i += 1;
        }
        ValueDesc::plain("text")
    }

    /// The same type, optional.
    pub const fn optional(self) -> ValueDesc {
        ValueDesc {
            optional: true,
            ..self
        }
    }
}

impl Schema {
    /// The description of a `#[derive(MemKv)]` struct.
    pub fn of_kv<S: crate::typed::KvSchema>() -> Schema {
        S::schema()
    }

    /// The description as pretty JSON (what `membus schema --json` prints and
    /// `membus codegen --from` reads).
    pub fn to_json(&self) -> String {
        // Serialising a `Value` of strings, numbers and arrays cannot fail.
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_default()
    }

    /// The description as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("format".into(), json!(self.format));
        m.insert(
            "kind".into(),
            json!(match self.kind {
                SchemaKind::Memkv => "memkv",
                SchemaKind::Message => "message",
            }),
        );
        m.insert("type_name".into(), json!(self.type_name));
        if let Some(fp) = &self.fingerprint {
            m.insert("fingerprint".into(), json!(fp));
        }
        if self.kind == SchemaKind::Memkv {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|f| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(f.name));
                    o.insert("slot".into(), json!(f.slot));
                    o.insert("type".into(), json!(f.ty));
                    o.insert("rust".into(), json!(f.rust));
                    o.insert("optional".into(), json!(f.optional));
                    o.insert("max_len".into(), json!(f.max_len));
                    if let Some(e) = &f.enum_name {
                        o.insert("enum_name".into(), json!(e));
                    }
                    if !f.variants.is_empty() {
                        o.insert("variants".into(), json!(f.variants));
                    }
                    if let Some(d) = &f.default {
                        o.insert("default".into(), json!(d));
                    }
                    Value::Object(o)
                })
                .collect();
            m.insert("fields".into(), Value::Array(fields));
        }
        if let Some(msg) = &self.message {
            let variants: Vec<Value> = msg
                .variants
                .iter()
                .map(|v| {
                    json!({
                        "name": v.name,
                        "rust": v.rust,
                        "shape": v.shape,
                        "fields": v.fields.iter().map(|f| json!({
                            "name": f.name, "type": f.ty, "rust": f.rust,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            m.insert(
                "message".into(),
                json!({"tagged": msg.tagged, "variants": variants}),
            );
        }
        Value::Object(m)
    }

    fn from_value(v: &Value) -> std::result::Result<Schema, String> {
        let o = v.as_object().ok_or("expected a JSON object")?;
        let kind = match get_str(o, "kind", "schema")? {
            "memkv" => SchemaKind::Memkv,
            "message" => SchemaKind::Message,
            k => return Err(format!("unknown kind {k:?} (expected memkv or message)")),
        };
        let fingerprint = match o.get("fingerprint") {
            None | Some(Value::Null) => None,
            Some(_) => Some(get_str(o, "fingerprint", "schema")?.to_owned()),
        };
        let mut fields = Vec::new();
        for (i, f) in get_arr(o, "fields", "schema")?.iter().enumerate() {
            let at = format!("fields[{i}]");
            let f = f.as_object().ok_or(format!("{at}: expected an object"))?;
            fields.push(FieldDesc {
                name: get_str(f, "name", &at)?.to_owned(),
                slot: get_str(f, "slot", &at)?.to_owned(),
                ty: get_str(f, "type", &at)?.to_owned(),
                rust: get_str(f, "rust", &at)?.to_owned(),
                optional: f
                    .get("optional")
                    .map(|b| {
                        b.as_bool()
                            .ok_or(format!("{at}.optional: expected true or false"))
                    })
                    .transpose()?
                    .unwrap_or(false),
                max_len: f
                    .get("max_len")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(format!("{at}.max_len: expected a non-negative integer"))?,
                enum_name: match f.get("enum_name") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(get_str(f, "enum_name", &at)?.to_owned()),
                },
                variants: get_arr(f, "variants", &at)?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!("{at}.variants: expected strings"))?,
                default: match f.get("default") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(get_str(f, "default", &at)?.to_owned()),
                },
            });
        }
        let message = match o.get("message") {
            None | Some(Value::Null) => None,
            Some(m) => {
                let m = m.as_object().ok_or("message: expected an object")?;
                let tagged = m
                    .get("tagged")
                    .and_then(Value::as_bool)
                    .ok_or("message.tagged: expected true or false")?;
                let mut variants = Vec::new();
                for (i, v) in get_arr(m, "variants", "message")?.iter().enumerate() {
                    let at = format!("message.variants[{i}]");
                    let v = v.as_object().ok_or(format!("{at}: expected an object"))?;
                    let mut fs = Vec::new();
                    for (j, f) in get_arr(v, "fields", &at)?.iter().enumerate() {
                        let at = format!("{at}.fields[{j}]");
                        let f = f.as_object().ok_or(format!("{at}: expected an object"))?;
                        fs.push(MsgFieldDesc {
                            name: match f.get("name") {
                                None => String::new(),
                                Some(_) => get_str(f, "name", &at)?.to_owned(),
                            },
                            ty: get_str(f, "type", &at)?.to_owned(),
                            rust: get_str(f, "rust", &at)?.to_owned(),
                        });
                    }
                    variants.push(VariantDesc {
                        name: get_str(v, "name", &at)?.to_owned(),
                        rust: get_str(v, "rust", &at)?.to_owned(),
                        shape: get_str(v, "shape", &at)?.to_owned(),
                        fields: fs,
                    });
                }
                Some(MessageDesc { tagged, variants })
            }
        };
        Ok(Schema {
            format: o
                .get("format")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("format: expected a version number")?,
            kind,
            type_name: get_str(o, "type_name", "schema")?.to_owned(),
            fingerprint,
            fields,
            message,
        })
    }

    /// Parses and checks a description (from a companion object or a file).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] naming what is malformed.
    pub fn from_json(text: &str) -> Result<Schema> {
        let bad = |e: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("not a membus schema description: {e}"),
            )
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let s = Schema::from_value(&v).map_err(bad)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::new(ErrorKind::InvalidArgument, m));
        if self.format != FORMAT {
            return bad(format!(
                "schema format {} is not supported (this membus reads format {FORMAT})",
                self.format
            ));
        }
        if !is_ident(&self.type_name) {
            return bad(format!(
                "type name {:?} is not an identifier",
                self.type_name
            ));
        }
        match self.kind {
            SchemaKind::Memkv => {
                if self.message.is_some() {
                    return bad("a memkv schema has no message description".into());
                }
                for f in &self.fields {
                    if !is_ident(&f.name) {
                        return bad(format!("field name {:?} is not an identifier", f.name));
                    }
                    if f.slot.is_empty() || f.slot.contains('\0') {
                        return bad(format!("field `{}`: empty or NUL slot name", f.name));
                    }
                    if !KV_TYPES.contains(&f.ty.as_str()) {
                        return bad(format!(
                            "field `{}`: unknown type {:?} (expected one of {})",
                            f.name,
                            f.ty,
                            KV_TYPES.join(", ")
                        ));
                    }
                    if f.ty == "enum" {
                        if f.variants.is_empty() {
                            return bad(format!("field `{}`: an enum with no variants", f.name));
                        }
                        if !f.enum_name.as_deref().is_some_and(is_ident) {
                            return bad(format!("field `{}`: enum name missing", f.name));
                        }
                    }
                    if f.max_len == 0 {
                        return bad(format!("field `{}`: max_len is 0", f.name));
                    }
                }
            }
            SchemaKind::Message => {
                let Some(m) = &self.message else {
                    return bad("a message schema needs its message description".into());
                };
                if m.variants.is_empty() || (!m.tagged && m.variants.len() != 1) {
                    return bad(
                        "a message has one variant per case (exactly one for a struct)".into(),
                    );
                }
                for v in &m.variants {
                    if !is_ident(&v.rust) || v.name.is_empty() {
                        return bad(format!("variant {:?}: bad name", v.rust));
                    }
                    let n = v.fields.len();
                    let ok = match v.shape.as_str() {
                        "unit" => n == 0,
                        "newtype" => n == 1,
                        "tuple" => n >= 2,
                        "struct" => v.fields.iter().all(|f| is_ident(&f.name)),
                        _ => false,
                    };
                    if !ok {
                        return bad(format!(
                            "variant `{}`: shape {:?} with {n} fields is not valid",
                            v.rust, v.shape
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Compares the schema a reader was built with (`self`) to the one a share carries
    /// (`found`), following the evolution rules in [`typed`](crate::typed).
    pub fn compare(&self, found: &Schema) -> Compat {
        let mut c = Compat::default();
        if self.kind != found.kind {
            c.differences.push(format!(
                "share kind: expected {:?}, found {:?}",
                self.kind, found.kind
            ));
            return c;
        }
        if self.type_name != found.type_name {
            c.notes.push(format!(
                "type name: {} here, {} on the share",
                self.type_name, found.type_name
            ));
        }
        match self.kind {
            SchemaKind::Memkv => compare_fields(&self.fields, &found.fields, &mut c),
            SchemaKind::Message => {
                if let (Some(a), Some(b)) = (&self.message, &found.message) {
                    compare_messages(a, b, &mut c);
                }
            }
        }
        c
    }
}

fn get_str<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> std::result::Result<&'a str, String> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.{key}: expected a string"))
}

/// An optional array (missing is empty).
fn get_arr<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> std::result::Result<&'a [Value], String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{at}.{key}: expected an array")),
    }
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const KV_TYPES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char", "string", "enum", "text",
];

fn is_ident(s: &str) -> bool {
    let mut it = s.chars();
    it.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The verdict of comparing a reader's schema with a share's ([`Schema::compare`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compat {
    /// Incompatible differences (renames, removals, type changes, …): attaching fails.
    pub differences: Vec<String>,
    /// Compatible additions on the share that this reader does not know (appended fields,
    /// new enum variants, new message variants).
    pub additions: Vec<String>,
    /// Fields this reader has that the share lacks but that have a default: they read as
    /// their default and cannot be written.
    pub defaulted: Vec<String>,
    /// Other remarks (a different type name, a longer bound on the share).
    pub notes: Vec<String>,
}

impl Compat {
    /// Whether a reader may attach.
    pub fn is_compatible(&self) -> bool {
        self.differences.is_empty()
    }

    /// Whether the schemas are the same as far as the wire is concerned.
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty() && self.additions.is_empty() && self.defaulted.is_empty()
    }

    /// One line: the differences, else what is new.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let mut part = |label: &str, items: &[String]| {
            if items.is_empty() {
                return;
            }
            if !s.is_empty() {
                s.push_str("; ");
            }
            let _ = write!(s, "{label}: {}", items.join("; "));
        };
        part("incompatible", &self.differences);
        part("new on the share", &self.additions);
        part("missing, read as default", &self.defaulted);
        part("note", &self.notes);
        s
    }
}

fn compare_fields(mine: &[FieldDesc], found: &[FieldDesc], c: &mut Compat) {
    for (i, m) in mine.iter().enumerate() {
        let Some(f) = found.get(i) else {
            match &m.default {
                Some(d) => c.defaulted.push(format!(
                    "field `{}` (slot {i}) is not in this store; it reads as its default {d:?}",
                    m.name
                )),
                None => c.differences.push(format!(
                    "field `{}` (slot {i}) is missing from the store and has no default",
                    m.name
                )),
            }
            continue;
        };
        if m.name != f.name {
            if found.iter().any(|x| x.name == m.name) {
                c.differences.push(format!(
                    "slot {i}: expected field `{}`, found `{}` (fields reordered or removed)",
                    m.name, f.name
                ));
            } else {
                c.differences.push(format!(
                    "slot {i}: field `{}` renamed or removed (the store has `{}`)",
                    m.name, f.name
                ));
            }
            continue;
        }
        if m.slot != f.slot {
            c.differences.push(format!(
                "field `{}`: slot renamed from {:?} to {:?}",
                m.name, m.slot, f.slot
            ));
        }
        if m.ty != f.ty || m.optional != f.optional || m.enum_name != f.enum_name {
            c.differences.push(format!(
                "field `{}`: type changed from {} to {}",
                m.name, m.rust, f.rust
            ));
            continue;
        }
        if m.ty == "enum" {
            // Variants only one side has are additions by the newer side; variants each
            // side lacks are renames or removals.
            let only_mine: Vec<&String> = m
                .variants
                .iter()
                .filter(|v| !f.variants.contains(v))
                .collect();
            let only_theirs: Vec<&String> = f
                .variants
                .iter()
                .filter(|v| !m.variants.contains(v))
                .collect();
            if !only_mine.is_empty() && !only_theirs.is_empty() {
                for v in only_mine {
                    c.differences.push(format!(
                        "field `{}`: enum variant {v:?} renamed or removed (the store has {})",
                        m.name,
                        f.variants.join(", ")
                    ));
                }
            } else {
                for v in only_theirs {
                    c.additions
                        .push(format!("field `{}`: new enum variant {v:?}", m.name));
                }
                for v in only_mine {
                    c.notes.push(format!(
                        "field `{}`: enum variant {v:?} is newer than the store's schema (its older readers cannot parse it)",
                        m.name
                    ));
                }
            }
        }
        if f.max_len < m.max_len {
            c.differences.push(format!(
                "field `{}`: bound shrank from {} to {} bytes",
                m.name, m.max_len, f.max_len
            ));
        } else if f.max_len > m.max_len && m.ty != "enum" {
            c.notes.push(format!(
                "field `{}`: the store allows {} bytes, this reader {}",
                m.name, f.max_len, m.max_len
            ));
        }
    }
    for (i, f) in found.iter().enumerate().skip(mine.len()) {
        if mine.iter().any(|m| m.name == f.name) {
            continue; // already reported as a reorder
        }
        match &f.default {
            Some(_) => c.additions.push(format!(
                "field `{}` (slot {i}, {}) appended",
                f.name, f.rust
            )),
            None => c.differences.push(format!(
                "field `{}` (slot {i}) appended without a default",
                f.name
            )),
        }
    }
}

fn compare_messages(mine: &MessageDesc, found: &MessageDesc, c: &mut Compat) {
    if mine.tagged != found.tagged {
        c.differences.push(format!(
            "message form: expected {}, found {}",
            if mine.tagged { "an enum" } else { "a struct" },
            if found.tagged { "an enum" } else { "a struct" }
        ));
        return;
    }
    for m in &mine.variants {
        let Some(f) = found.variants.iter().find(|v| v.name == m.name) else {
            c.differences
                .push(format!("variant {:?} renamed or removed", m.name));
            continue;
        };
        if m.shape != f.shape || m.fields != f.fields {
            let show = |v: &VariantDesc| {
                let fs: Vec<String> = v
                    .fields
                    .iter()
                    .map(|x| {
                        if x.name.is_empty() {
                            x.rust.clone()
                        } else {
                            format!("{}: {}", x.name, x.rust)
                        }
                    })
                    .collect();
                format!("{} ({})", v.shape, fs.join(", "))
            };
            c.differences.push(format!(
                "variant {:?}: payload changed from {} to {}",
                m.name,
                show(m),
                show(f)
            ));
        }
    }
    for f in &found.variants {
        if !mine.variants.iter().any(|m| m.name == f.name) {
            c.additions.push(format!("new variant {:?}", f.name));
        }
    }
}

/// The companion object's name for `share`, if it fits in a share name.
pub fn companion_name(share: &ShareName) -> Option<ShareName> {
    ShareName::new(&format!("{}{SCHEMA_SUFFIX}", share.as_str())).ok()
}

/// The companion object that holds a share's schema, owned by the share's creator: it is
/// removed when this handle is dropped.
pub struct SchemaObject {
    seg: Segment,
}

impl std::fmt::Debug for SchemaObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaObject")
            .field("name", &self.seg.name().as_str())
            .finish()
    }
}

/// Publishes `schema` beside `share` (replacing any companion a previous share of that name
/// left). Call it right after creating the share; the returned handle removes the companion
/// when dropped, so keep it as long as the share.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] when the share name leaves no room for the suffix or the
/// description is larger than [`MAX_SCHEMA_BYTES`]; the creation errors of a share
/// (permissions, a full /dev/shm).
pub fn publish(share: &ShareName, schema: &Schema, mode: u32) -> Result<SchemaObject> {
    let name = companion_name(share).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("the share name leaves no room for the suffix {SCHEMA_SUFFIX:?}"),
        )
        .with_share(share.as_str())
    })?;
    let json = schema.to_json();
    if json.len() > MAX_SCHEMA_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "schema description is {} bytes, more than {MAX_SCHEMA_BYTES}",
                json.len()
            ),
        )
        .with_share(share.as_str()));
    }
    let _ = Segment::remove(&name);
    let seg = Segment::create(&name, HEADER + json.len(), mode)?;
    let (Some(magic), Some(body), Some(len)) = (
        seg.range(0, MAGIC.len()),
        seg.range(HEADER, json.len()),
        seg.atomic_i64(OFF_LEN),
    ) else {
        return Err(
            Error::new(ErrorKind::InvalidLayout, "schema object too small")
                .with_share(name.as_str()),
        );
    };
    // SAFETY: `magic` and `body` come from `range`, so each lies inside this writable
    // mapping, which lives until `seg` drops (after the calls); the object was just created
    // (O_EXCL) and its length word is still 0, so no reader copies these bytes yet.
    unsafe {
        crate::sys::copy::copy_to_shared(magic, MAGIC);
        crate::sys::copy::copy_to_shared(body, json.as_bytes());
    }
    // Release: pairs with the Acquire load in `read_object`, which then sees the magic and
    // the JSON written above.
    len.store(json.len() as i64, Ordering::Release);
    Ok(SchemaObject { seg })
}

/// Reads the schema a share carries: `Ok(None)` when it has no companion object (a share
/// made by libmembus, pymembus, or a raw membus handle).
///
/// # Errors
/// [`ErrorKind::InvalidLayout`] for a companion that is not a complete schema object (wrong
/// magic, truncated, length out of bounds, bad JSON): the message says which;
/// [`ErrorKind::AccessDenied`] when its mode forbids reading.
pub fn read(share: impl IntoShareName) -> Result<Option<Schema>> {
    let share = share.into_share_name()?;
    let Some(name) = companion_name(&share) else {
        return Ok(None);
    };
    let seg = match Segment::attach(&name, Access::ReadOnly) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::OpenFailed && e.errno() == Some(libc::ENOENT) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    read_object(&seg)
        .map(Some)
        .map_err(|e| e.with_share(name.as_str()))
}

fn read_object(seg: &Segment) -> Result<Schema> {
    let bad = |m: String| Error::new(ErrorKind::InvalidLayout, m);
    if seg.len() < HEADER {
        return Err(bad(format!(
            "schema object is {} bytes, shorter than its {HEADER}-byte header",
            seg.len()
        )));
    }
    let len = seg
        .atomic_i64(OFF_LEN)
        .ok_or_else(|| bad("schema object header out of bounds".into()))?
        // Acquire: pairs with the Release store in `publish`.
        .load(Ordering::Acquire);
    let head = seg.head(HEADER);
    if head.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(bad(
            "not a membus schema object (wrong magic): something else uses this name".into(),
        ));
    }
    if len == 0 {
        return Err(bad(
            "schema object is empty (its creator is still writing it, or died doing so)".into(),
        ));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_SCHEMA_BYTES && l <= seg.len() - HEADER)
        .ok_or_else(|| {
            bad(format!(
                "schema object claims {len} bytes of description but holds {} (truncated or corrupt)",
                seg.len() - HEADER
            ))
        })?;
    let bytes = seg.head(HEADER + len);
    let text = std::str::from_utf8(&bytes[HEADER..])
        .map_err(|e| bad(format!("schema description is not UTF-8: {e}")))?;
    Schema::from_json(text)
        .map_err(|e| bad(format!("schema description is corrupt: {}", e.detail())))
}

/// Removes the schema companion of `share`, if any.
pub(crate) fn remove_companion(share: &ShareName) {
    if let Some(n) = companion_name(share) {
        let _ = Segment::remove(&n);
    }
}

/// A message field as the derive emits it (static strings); see [`MsgFieldDesc`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct MsgFieldStatic {
    pub name: &'static str,
    pub ty: &'static str,
    pub rust: &'static str,
}

/// A message variant as the derive emits it; see [`VariantDesc`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct VariantStatic {
    pub name: &'static str,
    pub rust: &'static str,
    pub shape: &'static str,
    pub fields: &'static [MsgFieldStatic],
}

/// Builds a message schema from the derive's static description.
#[doc(hidden)]
pub fn message_schema(type_name: &str, tagged: bool, variants: &[VariantStatic]) -> Schema {
    Schema {
        format: FORMAT,
        kind: SchemaKind::Message,
        type_name: type_name.to_owned(),
        fingerprint: None,
        fields: Vec::new(),
        message: Some(MessageDesc {
            tagged,
            variants: variants
                .iter()
                .map(|v| VariantDesc {
                    name: v.name.to_owned(),
                    rust: v.rust.to_owned(),
                    shape: v.shape.to_owned(),
                    fields: v
                        .fields
                        .iter()
                        .map(|f| MsgFieldDesc {
                            name: f.name.to_owned(),
                            ty: f.ty.to_owned(),
                            rust: f.rust.to_owned(),
                        })
                        .collect(),
                })
                .collect(),
        }),
    }
}

impl FieldDesc {
    /// What this field accepts, in words (for error messages).
    pub fn allowed(&self) -> String {
        let base = match self.ty.as_str() {
            "bool" => "true or false".to_owned(),
            "char" => "exactly one character".to_owned(),
            "string" => format!("text of at most {} bytes", self.max_len),
            "text" => format!("text of at most {} bytes ({})", self.max_len, self.rust),
            "enum" => format!("one of {}", self.variants.join(", ")),
            "f32" | "f64" => format!("a number ({})", self.ty),
            t => match int_range(t) {
                Some((lo, hi)) => format!("an integer from {lo} to {hi}"),
                None => format!("a value of type {t}"),
            },
        };
        if self.optional {
            format!("{base}, or empty for None")
        } else {
            base
        }
    }

    /// Checks a slot text against this field: `Ok` when a typed reader parses it.
    ///
    /// # Errors
    /// Why it does not parse, naming what the field accepts.
    pub fn check_text(&self, text: &str) -> std::result::Result<(), String> {
        let fail = |why: &str| {
            Err(format!(
                "field `{}` (slot {:?}) does not accept {text:?}{why}: expected {}",
                self.name,
                self.slot,
                self.allowed()
            ))
        };
        if text.contains('\0') {
            return fail(" (it contains a NUL byte)");
        }
        if text.is_empty() && self.optional {
            return Ok(());
        }
        let ok = match self.ty.as_str() {
            "bool" => matches!(text, "true" | "True" | "1" | "false" | "False" | "0"),
            "char" => text.chars().count() == 1,
            "string" | "text" => true,
            "enum" => self.variants.iter().any(|v| v == text),
            "f32" => text.trim().parse::<f32>().is_ok(),
            "f64" => text.trim().parse::<f64>().is_ok(),
            t => match t {
                "u8" => text.parse::<u8>().is_ok(),
                "u16" => text.parse::<u16>().is_ok(),
                "u32" => text.parse::<u32>().is_ok(),
                "u64" => text.parse::<u64>().is_ok(),
                "u128" => text.parse::<u128>().is_ok(),
                "usize" => text.parse::<u64>().is_ok(),
                "i8" => text.parse::<i8>().is_ok(),
                "i16" => text.parse::<i16>().is_ok(),
                "i32" => text.parse::<i32>().is_ok(),
                "i64" => text.parse::<i64>().is_ok(),
                "i128" => text.parse::<i128>().is_ok(),
                "isize" => text.parse::<i64>().is_ok(),
                _ => false,
            },
        };
        if !ok {
            return fail("");
        }
        if text.len() > self.max_len {
            return Err(format!(
                "field `{}` (slot {:?}) does not accept {text:?}: it is {} bytes, longer than its max_len = {}",
                self.name,
                self.slot,
                text.len(),
                self.max_len
            ));
        }
        Ok(())
    }

    /// The slot text as a typed value for display: strings quoted, `None` for an empty
    /// optional slot; an invalid text is shown with why.
    pub fn render(&self, text: &str) -> String {
        if let Err(e) = self.check_text(text) {
            return format!("{text:?} (invalid: {e})");
        }
        if text.is_empty() && self.optional {
            return "None".into();
        }
        match self.ty.as_str() {
            "string" | "text" | "char" => format!("{text:?}"),
            _ => text.to_owned(),
        }
    }
}

/// The range of an integer type name, as text.
fn int_range(t: &str) -> Option<(String, String)> {
    Some(match t {
        "u8" => ("0".into(), u8::MAX.to_string()),
        "u16" => ("0".into(), u16::MAX.to_string()),
        "u32" => ("0".into(), u32::MAX.to_string()),
        "u64" | "usize" => ("0".into(), u64::MAX.to_string()),
        "u128" => ("0".into(), u128::MAX.to_string()),
        "i8" => (i8::MIN.to_string(), i8::MAX.to_string()),
        "i16" => (i16::MIN.to_string(), i16::MAX.to_string()),
        "i32" => (i32::MIN.to_string(), i32::MAX.to_string()),
        "i64" | "isize" => (i64::MIN.to_string(), i64::MAX.to_string()),
        "i128" => (i128::MIN.to_string(), i128::MAX.to_string()),
        _ => return None,
    })
}

/// Checks a JSON value against a message field type (`u8`, `option<f64>`, `any`, ...).
fn check_json(ty: &str, v: &Value) -> std::result::Result<(), String> {
    if let Some(inner) = ty.strip_prefix("option<").and_then(|t| t.strip_suffix('>')) {
        return if v.is_null() {
            Ok(())
        } else {
            check_json(inner, v)
        };
    }
    if let Some(inner) = ty.strip_prefix("array<").and_then(|t| t.strip_suffix('>')) {
        let Value::Array(items) = v else {
            return Err(format!("expected an array, found {v}"));
        };
        for (i, x) in items.iter().enumerate() {
            check_json(inner, x).map_err(|e| format!("item {i}: {e}"))?;
        }
        return Ok(());
    }
    let ok = match ty {
        "any" => true,
        "bool" => v.is_boolean(),
        "string" => v.is_string(),
        "char" => v.as_str().is_some_and(|s| s.chars().count() == 1),
        "f32" | "f64" => v.is_number(),
        t => match int_range(t) {
            Some(_) => match v {
                Value::Number(n) => {
                    let s = n.to_string();
                    let r = match t {
                        "u8" => s.parse::<u8>().is_ok(),
                        "u16" => s.parse::<u16>().is_ok(),
                        "u32" => s.parse::<u32>().is_ok(),
                        "u64" | "usize" => s.parse::<u64>().is_ok(),
                        "i8" => s.parse::<i8>().is_ok(),
                        "i16" => s.parse::<i16>().is_ok(),
                        "i32" => s.parse::<i32>().is_ok(),
                        "i64" | "isize" => s.parse::<i64>().is_ok(),
                        _ => false,
                    };
                    if !r {
                        let (lo, hi) = int_range(t).unwrap_or_default();
                        return Err(format!("expected an integer from {lo} to {hi}, found {s}"));
                    }
                    true
                }
                _ => false,
            },
            None => true,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {ty}, found {v}"))
    }
}

impl MessageDesc {
    /// Checks a message's wire bytes against this description and returns the variant it
    /// is with its payload shown typed (`Zoom(2.5)`, `Expose { us: 500, auto: false }`).
    ///
    /// # Errors
    /// Why the bytes are not one of the variants, naming the variant and field at fault and
    /// what is allowed.
    pub fn check(&self, bytes: &[u8]) -> std::result::Result<String, String> {
        let names: Vec<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
        let (variant, payload) = if self.tagged {
            if bytes.first() == Some(&b'{') {
                let v: Value =
                    serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
                let Value::Object(m) = v else {
                    return Err("not a JSON object".into());
                };
                if m.len() != 1 {
                    return Err(format!(
                        "a tagged message has exactly one key (the variant), found {}",
                        m.len()
                    ));
                }
                let Some((k, p)) = m.into_iter().next() else {
                    return Err("empty JSON object".into());
                };
                let v = self.variants.iter().find(|v| v.name == k).ok_or_else(|| {
                    format!(
                        "unknown variant {k:?}; expected one of: {}",
                        names.join(", ")
                    )
                })?;
                (v, Some(p))
            } else {
                let s = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
                let v = self.variants.iter().find(|v| v.name == s).ok_or_else(|| {
                    format!(
                        "unknown variant {s:?}; expected one of: {}",
                        names.join(", ")
                    )
                })?;
                if v.shape != "unit" {
                    return Err(format!(
                        "variant {s:?} carries a payload: send {{\"{s}\": ...}} ({})",
                        v.payload_hint()
                    ));
                }
                (v, None)
            }
        } else {
            let v = self.variants.first().ok_or("a message with no variants")?;
            if v.shape == "unit" {
                if bytes != v.name.as_bytes() {
                    return Err(format!("expected {:?}", v.name));
                }
                (v, None)
            } else {
                let p: Value =
                    serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
                (v, Some(p))
            }
        };
        let p = payload.unwrap_or(Value::Null);
        let at = |f: &MsgFieldDesc, i: usize| {
            if f.name.is_empty() {
                format!("variant {:?} field {i}", variant.name)
            } else {
                format!("variant {:?} field `{}`", variant.name, f.name)
            }
        };
        let shown = match variant.shape.as_str() {
            "unit" => {
                if !p.is_null() {
                    return Err(format!(
                        "variant {:?} carries no payload, found {p}",
                        variant.name
                    ));
                }
                variant.rust.clone()
            }
            "newtype" => {
                let f = &variant.fields[0];
                check_json(&f.ty, &p).map_err(|e| format!("{}: {e}", at(f, 0)))?;
                format!("{}({p})", variant.rust)
            }
            "tuple" => {
                let Value::Array(items) = &p else {
                    return Err(format!(
                        "variant {:?}: expected an array of {} values ({}), found {p}",
                        variant.name,
                        variant.fields.len(),
                        variant.payload_hint()
                    ));
                };
                if items.len() != variant.fields.len() {
                    return Err(format!(
                        "variant {:?}: expected {} values ({}), found {}",
                        variant.name,
                        variant.fields.len(),
                        variant.payload_hint(),
                        items.len()
                    ));
                }
                for (i, (f, x)) in variant.fields.iter().zip(items).enumerate() {
                    check_json(&f.ty, x).map_err(|e| format!("{}: {e}", at(f, i)))?;
                }
                let parts: Vec<String> = items.iter().map(Value::to_string).collect();
                format!("{}({})", variant.rust, parts.join(", "))
            }
            _ => {
                let Value::Object(m) = &p else {
                    return Err(format!(
                        "variant {:?}: expected an object {{{}}}, found {p}",
                        variant.name,
                        variant.payload_hint()
                    ));
                };
                let mut parts = Vec::new();
                for (i, f) in variant.fields.iter().enumerate() {
                    match m.get(&f.name) {
                        Some(x) => {
                            check_json(&f.ty, x).map_err(|e| format!("{}: {e}", at(f, i)))?;
                            parts.push(format!("{}: {x}", f.name));
                        }
                        None if f.ty.starts_with("option<") => {
                            parts.push(format!("{}: null", f.name));
                        }
                        None => {
                            return Err(format!("{}: missing ({})", at(f, i), f.rust));
                        }
                    }
                }
                format!("{} {{ {} }}", variant.rust, parts.join(", "))
            }
        };
        Ok(shown)
    }
}

impl VariantDesc {
    /// The payload's fields and types, in words.
    pub fn payload_hint(&self) -> String {
        let fs: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                if f.name.is_empty() {
                    f.rust.clone()
                } else {
                    format!("{}: {}", f.name, f.rust)
                }
            })
            .collect();
        fs.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn type_names_map_to_schema_types() {
        assert_eq!(ValueDesc::of_type_name("u32").ty, "u32");
        assert_eq!(ValueDesc::of_type_name("f64").ty, "f64");
        assert_eq!(ValueDesc::of_type_name("Celsius").ty, "text");
        assert_eq!(ValueDesc::of_type_name("enum").ty, "text");
        assert!(ValueDesc::of_type_name("u8").optional().optional);
    }

    fn field(ty: &str, optional: bool, max_len: usize) -> FieldDesc {
        FieldDesc {
            name: "f".into(),
            slot: "f".into(),
            ty: ty.into(),
            rust: ty.into(),
            optional,
            max_len,
            enum_name: None,
            variants: Vec::new(),
            default: None,
        }
    }

    #[test]
    fn slot_texts_are_checked_as_the_rust_reader_parses_them() {
        assert!(field("u8", false, 3).check_text("255").is_ok());
        assert!(field("u8", false, 3).check_text("256").is_err());
        assert!(field("u8", false, 3).check_text("").is_err());
        assert!(field("u8", true, 3).check_text("").is_ok());
        assert!(field("i128", false, 40)
            .check_text(&i128::MIN.to_string())
            .is_ok());
        assert!(field("bool", false, 5).check_text("True").is_ok());
        assert!(field("f32", false, 15).check_text("inf").is_ok());
        assert!(field("char", false, 4).check_text("é").is_ok());
        assert!(field("string", false, 3)
            .check_text("abcd")
            .unwrap_err()
            .contains("max_len = 3"));
        assert!(field("string", false, 9).check_text("a\0b").is_err());
    }

    proptest! {
        /// Any text is a description or an error, never a panic.
        #[test]
        fn from_json_never_panics(s in ".{0,200}") {
            let _ = Schema::from_json(&s);
        }

        /// Any JSON value is a description or an error, never a panic.
        #[test]
        fn from_json_never_panics_on_json(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = format!(
                "{{\"format\":1,\"kind\":\"memkv\",\"type_name\":\"T\",\"fields\":[{{\"name\":{:?},\"max_len\":{}}}]}}",
                String::from_utf8_lossy(&v), v.len()
            );
            let _ = Schema::from_json(&text);
        }

        /// A message check on arbitrary bytes is a rendering or an error, never a panic.
        #[test]
        fn message_check_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let m = MessageDesc {
                tagged: true,
                variants: vec![VariantDesc {
                    name: "a".into(),
                    rust: "A".into(),
                    shape: "tuple".into(),
                    fields: vec![
                        MsgFieldDesc { name: String::new(), ty: "u8".into(), rust: "u8".into() },
                        MsgFieldDesc { name: String::new(), ty: "option<array<f32>>".into(), rust: "x".into() },
                    ],
                }],
            };
            let _ = m.check(&b);
            let mut tagged = b"{\"a\":".to_vec();
            tagged.extend_from_slice(&b);
            tagged.push(b'}');
            let _ = m.check(&tagged);
        }
    }
}
