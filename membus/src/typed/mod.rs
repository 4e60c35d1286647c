//! Typed layers over the raw shares, driven by derive-generated trait impls.
//!
//! [`Kv<S>`](Kv) is a memkv store whose slots are the fields of a struct `S` with
//! `#[derive(MemKv)]`. Values stay plain text on the wire, so pymembus
//! and libmembus peers read and write the same store.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::{Kv, MemKv, MemKvEnum};
//!
//! #[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
//! enum Mode { Auto, Manual }
//!
//! #[derive(MemKv, Debug)]
//! #[memkv(max_len = 32)]              // default bound for String / text fields
//! struct CameraState {
//!     exposure_us: u32,                // slot "exposure_us", text "1000"
//!     gain_db: f64,                    // "1.5"
//!     mode: Mode,                      // "Auto"
//!     #[memkv(rename = "name")]
//!     label: String,                   // at most 32 bytes
//!     fps: Option<u16>,                // empty slot = None
//! }
//!
//! # fn main() -> membus::Result<()> {
//! let init = CameraState { exposure_us: 1000, gain_db: 1.5, mode: Mode::Auto, label: "front".into(), fps: None };
//! let kv = Kv::create("/camera", &init)?;
//! kv.set(CameraState::MODE, Mode::Manual)?;
//! kv.update(|b| { b.set(CameraState::EXPOSURE_US, 2000).set(CameraState::FPS, Some(30)); })?;
//! let exposure: u32 = kv.get(CameraState::EXPOSURE_US)?;
//! let (state, epoch) = kv.snapshot_with_epoch()?;
//! if let Some(ch) = kv.wait_for(&[CameraState::MODE.id()], epoch, Duration::from_secs(1))? {
//!     for event in ch.changes {
//!         if let CameraStateChange::Mode(m) = event { println!("mode is now {m:?}"); }
//!     }
//! }
//! # let _ = (exposure, state); Ok(()) }
//! ```
//!
//! ## What the derive generates
//!
//! * one typed key per field, `CameraState::EXPOSURE_US: Field<CameraState, u32>` (the
//!   field name in SCREAMING_SNAKE_CASE): a misspelt key is a compile error, and
//!   [`Kv::get`] returns the field's type;
//! * an enum `CameraStateChange` with one variant per field (PascalCase), for
//!   [`Kv::changes_since`] and [`Kv::wait_for`]; its `Debug` shows the wire text;
//! * an impl of [`KvSchema`] with the slot names, types and lengths.
//!
//! ## Field types
//!
//! All integers, `f32`, `f64`, `bool`, `char`, `String`, `Option<T>` of those (the empty
//! slot is `None`), enums of unit variants with `#[derive(MemKvEnum)]` (stored by variant
//! name), and any `T: FromStr + Display` marked `#[memkv(text, max_len = N)]`. Wire text:
//! integers decimal, floats their shortest round-trip form, `true`/`false`.
//!
//! ## Attributes
//!
//! | on | attribute | effect |
//! |---|---|---|
//! | struct | `max_len = N` | default value bound for `String` and `text` fields |
//! | struct | `rename_all = "camelCase"` | slot names from field names (`lowercase`, `UPPERCASE`, `PascalCase`, `camelCase`, `snake_case`, `SCREAMING_SNAKE_CASE`, `kebab-case`, `SCREAMING-KEBAB-CASE`) |
//! | struct | `name_len = N` | minimum slot name length N (to match an existing store's layout exactly) |
//! | struct | `no_fingerprint` | no `__schema` slot: match an existing libmembus/pymembus schema exactly |
//! | field | `rename = "slot"` | the slot's name |
//! | field | `max_len = N` | this field's value bound |
//! | field | `text` | store through `FromStr` + `Display` |
//! | field | `default = "text"` | the wire text a store made by an older schema (without this field) reads as; required to append a field compatibly (see below) |
//! | enum (`MemKvEnum`) | `rename_all = "..."` | variant names on the wire |
//! | variant | `rename = "name"` | this variant's name on the wire |
//!
//! The store's N and V are the longest slot name and the largest value bound (V rounded up
//! so slots stay 8-byte aligned). A membus-created store records a fingerprint of the field
//! names and types in one extra ordinary slot, `__schema`, after the fields; attaching
//! checks slot count, names, order, lengths and the fingerprint, and the
//! [`SchemaMismatch`](crate::ErrorKind::SchemaMismatch) error lists every difference.
//!
//! ## Typed messages
//!
//! `#[derive(Message)]` on an enum (unit, tuple and struct variants) or a struct makes it a
//! [`Message`]; a [`Sender<M>`] and a [`Receiver<M>`] carry it over a memmsg or memcmd
//! share. The wire form is readable and writable by a pymembus peer with nothing but
//! Python's standard library:
//!
//! | Rust | wire bytes |
//! |---|---|
//! | `CameraCmd::PanLeft` (unit variant) | `pan-left` (the variant name in kebab-case) |
//! | `CameraCmd::Zoom(2.5)` (one field) | `{"zoom":2.5}` |
//! | `CameraCmd::Move(1, -2)` (several fields) | `{"move":[1,-2]}` |
//! | `CameraCmd::Expose { us: 500, auto: false }` | `{"expose":{"us":500,"auto":false}}` |
//! | `struct Stats { fps: f64 }` | `{"fps":29.97}` |
//! | `struct Ping;` (unit struct) | `ping` |
//!
//! Fields are encoded with serde (`Serialize` + `DeserializeOwned`); a missing field decodes
//! as `None` for an `Option` and is an error otherwise; unknown fields are ignored. A unit
//! variant is also accepted as `{"name":null}`. Attributes: `#[message(rename = "x")]` on a
//! variant (or on a unit struct), `#[message(rename_all = "snake_case")]` on the type
//! (kebab-case by default; also `SCREAMING_SNAKE_CASE`, `SCREAMING-KEBAB-CASE`,
//! `camelCase`, `PascalCase`, `lowercase`, `UPPERCASE`).
//!
//! A message that does not decode (a foreign peer's typo, an unknown variant, bad JSON) is
//! delivered as [`Recv::Undecodable`] with the raw bytes and the reason; the receiver keeps
//! going and nothing is lost.
//!
//! ## Self-describing shares and schema evolution
//!
//! [`Kv::create`], [`Sender::create_memmsg`] and [`Receiver::create_memcmd`] publish the
//! type's full [`Schema`] (field names, slots, types, bounds, enum variants, renames,
//! defaults; each message variant's shape) in a companion object `<name>.membus-schema`
//! ([`schema`] documents its layout and lifecycle). libmembus and pymembus never open it.
//! The same description is available at build time from [`KvSchema::schema_json`] and
//! [`Message::schema`], for `membus codegen python|cpp --from FILE.json`.
//!
//! Attaching ([`Kv::attach`], [`Receiver::attach_memmsg`], [`Sender::attach_memcmd`])
//! compares the reader's schema with the one the share carries ([`Schema::compare`]):
//!
//! * **Compatible**, reported in `compat()` ([`Compat`]):
//!   - fields appended at the end that carry `#[memkv(default = "...")]`: an older reader
//!     attaches and reads the fields it knows; a newer reader on an older store reads each
//!     missing field as its default, and writing it is an
//!     [`InvalidArgument`](crate::ErrorKind::InvalidArgument) error;
//!   - enum variants or message variants only one side has (added by the newer side): a
//!     value the reader does not know is an [`InvalidValue`](crate::ErrorKind::InvalidValue)
//!     error naming the field (or [`Recv::Undecodable`]);
//!   - a larger `max_len` on the share.
//! * **Incompatible**, a [`SchemaMismatch`](crate::ErrorKind::SchemaMismatch) error naming
//!   every difference: a field or slot renamed, removed or moved; a field appended without a
//!   default; a field's type changed (including adding or removing `Option`); an enum or
//!   message variant renamed or removed (each side has variants the other lacks); a message
//!   payload changed; a smaller `max_len`.
//!
//! A share without a description (libmembus, pymembus, an older membus, a raw handle) gets
//! the exact check: same slot names and order, large enough lengths, same fingerprint.
//!
//! For high-rate Rust-to-Rust streams of plain data, [`Pod<T>`] sends any
//! `T: bytemuck::Pod` as its bytes, without serialisation.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::typed::{Receiver, Recv, Sender};
//! use membus::memcmd::MemCmd;
//!
//! #[derive(membus::Message, Debug, PartialEq)]
//! enum CameraCmd {
//!     PanLeft,
//!     Zoom(f32),
//!     Expose { us: u32, auto: bool },
//! }
//!
//! # fn main() -> membus::Result<()> {
//! let mut rx: Receiver<CameraCmd> = MemCmd::create("/camera-cmd", 4096)?.into();
//! let mut tx: Sender<CameraCmd> = MemCmd::attach("/camera-cmd")?.into();
//! tx.send(&CameraCmd::Zoom(2.0))?;
//! match rx.recv(Duration::from_secs(1))? {
//!     Recv::Message { msg, .. } => println!("{msg:?}"),
//!     Recv::Undecodable { raw, reason, .. } => eprintln!("bad command {raw:?}: {reason}"),
//!     Recv::Timeout | Recv::Overrun { .. } => {}
//! }
//! # Ok(()) }
//! ```

mod channel;
pub(crate) mod codec;
pub mod kv;
pub mod schema;
pub mod value;

pub use channel::{Receiver, Recv, Sender};
pub use codec::{CodecError, Message, Pod};
pub use kv::{Batch, Field, FieldError, FieldId, Kv, KvSchema, KvWatch, SlotDef, TypedChanges};
pub use schema::{Compat, Schema};
pub use value::{KvValue, MemKvEnum};
