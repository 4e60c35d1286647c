//! Typed layers over the raw shares, driven by derive-generated trait impls.
//!
//! [`Kv<S>`](Kv) is a memkv store whose slots are the fields of a struct `S` with
//! `#[derive(MemKv)]`. Values stay plain text on the wire (DESIGN decision 8), so pymembus
//! and libmembus peers read and write the same store.
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
pub mod value;

pub use channel::{Receiver, Recv, Sender};
pub use codec::{CodecError, Message, Pod};
pub use kv::{Batch, Field, FieldError, FieldId, Kv, KvSchema, SlotDef, TypedChanges};
pub use value::{KvValue, MemKvEnum};
