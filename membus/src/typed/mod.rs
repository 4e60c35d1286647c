//! Typed layers over the raw shares, driven by derive-generated trait impls.
//!
//! [`Kv<S>`](Kv) is a memkv store whose slots are the fields of a struct `S` with
//! `#[derive(MemKv)]`. Values stay plain text on the wire (DESIGN decision 8), so pymembus
//! and libmembus peers read and write the same store.

pub mod kv;
pub mod value;

pub use kv::{Batch, Field, FieldError, FieldId, Kv, KvSchema, SlotDef, TypedChanges};
pub use value::{KvValue, MemKvEnum};
