//! # membus
//!
//! Typed inter-process communication over named shared memory on Linux, byte-compatible
//! with libmembus 2.1 (C++) and pymembus 2.2 (Python): a membus process reads and writes
//! shares made by those libraries, and the other way round.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::memmsg::{Reader, Writer};
//!
//! # fn main() -> membus::Result<()> {
//! // Process A
//! let writer = Writer::create("/greetings", 4096)?;
//! writer.write(b"hello")?;
//!
//! // Process B
//! let mut reader = Reader::attach("/greetings")?;
//! match reader.read(Duration::from_secs(1))? {
//!     membus::Received::Message { seq, payload } => println!("{seq}: {payload:?}"),
//!     membus::Received::Timeout => println!("nothing yet"),
//!     membus::Received::Overrun { lost } => println!("fell behind, lost {lost}"),
//! }
//! # Ok(()) }
//! ```
//!
//! ## Share types
//!
//! | module | what | pymembus |
//! |---|---|---|
//! | [`memmap`] | raw block, your own layout | `memmap` |
//! | [`memmsg`] | single-writer broadcast message queue | `memmsg` |
//! | [`memcmd`] | multi-writer command channel | `memcmd` |
//! | [`memkv`] | fixed-schema key/value store, seqlocked slots | `memkv` |
//! | [`memvid`] | video frame ring, typed pixels ([`pixel`]), zero-copy views | `memvid` |
//! | [`memaud`] | audio buffer ring, typed samples | `memaud` |
//! | [`mempkt`] | variable-length record ring | `mempkt` |
//! | [`typed`] | `#[derive(Message)]` enums over memmsg/memcmd | (plain text / JSON on the wire) |
//! | [`select`] | wait on any mix of handles at once, event-driven | `select` (1 ms polling) |
//!
//! Typed layers ([`typed`]): [`Kv<S>`](Kv) is a memkv store whose slots are the fields of
//! a `#[derive(MemKv)]` struct, with typed keys, consistent snapshots, atomic batches and
//! typed change events; the values stay plain text, so pymembus peers share the store.
//!
//! ## Shared memory and soundness
//!
//! Other processes can write a share at any time, including processes that do not follow
//! the protocol. membus therefore never hands out a plain Rust reference to bytes another
//! process may write, reads every racy word with atomic loads, copies payloads with
//! accesses the compiler treats as opaque, and bounds-checks every
//! offset read from a share at the moment it is used: a corrupt or hostile header yields
//! [`ErrorKind::InvalidLayout`], never undefined behaviour, a panic or a crash. One hazard
//! remains outside any library's control: a process that shrinks a share's object
//! (`ftruncate`) makes every mapping of it fault (SIGBUS) on access past the new end.
//!
//! Linux with glibc only: the memmsg, memcmd and memkv wire formats embed glibc pthread
//! objects.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "async")]
pub mod aio;
mod error;
pub mod layout;
mod media;
pub mod memaud;
pub mod memcmd;
pub mod memkv;
pub mod memmap;
pub mod memmsg;
pub mod mempkt;
pub mod memvid;
pub mod mirror;
mod name;
pub mod pixel;
mod ring;
pub mod select;
mod sys;
pub mod typed;
mod wait;

pub use error::{Error, ErrorKind, Result};
pub use media::{Identity, Next, ReadFrom, SeqWatch};
pub use memmap::{MapOptions, MemMap, ReadOnly, ReadWrite};
pub use name::{IntoShareName, ShareName, MAX_NAME_LEN};
pub use ring::{QueueOptions, Received, Start, TryIter, WaitPolicy};
pub use sys::copy::{copy_strategy, CopyPlan, CopyStrategy};
pub use sys::cpu::CpuInfo;
pub use typed::Message;

/// `#[derive(Message)]`: see [`typed`].
pub use membus_derive::Message;

pub use typed::{Kv, KvValue, MemKvEnum};

/// `#[derive(MemKv)]`: makes a struct with named fields the schema of a typed memkv store
/// ([`Kv`]). `#[derive(MemKvEnum)]`: stores an enum of unit variants by variant name.
/// See [`typed`] for the attributes.
pub use membus_derive::{MemKv, MemKvEnum};

/// What generated code (`#[derive(Message)]`, `#[derive(MemKv)]`) names. Not public API.
/// This crate's README snippet, compiled (not run) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeSnippet;

#[doc(hidden)]
pub mod __private {
    pub use crate::typed::codec::{
        expect_null, from_json_value, json_field, json_object, json_tuple, parse_json, parse_wire,
        to_json_value, unknown_variant, write_json, write_tagged, CodecError, Message, Wire,
    };
    pub use crate::typed::kv::{Field, FieldError, KvSchema, SlotDef};
    pub use crate::typed::value::{
        enum_decode, max_name_len, text_decode, text_encode, KvValue, MemKvEnum,
    };
    pub use core::option::Option;
    pub use core::result::Result;
    pub use core::{assert, fmt, format_args};
    pub use serde_json;
    pub use std::string::String;
    pub use std::vec::Vec;

    /// Encoder of a key constant emitted for a schema that failed to derive: the compile
    /// error is already reported, this only keeps uses of the key free of follow-on errors.
    pub fn stub_encode<T>(_: &T, _: &mut String) {}

    /// Decoder counterpart of [`stub_encode`].
    ///
    /// # Errors
    /// Always: a schema that failed to derive cannot decode anything.
    pub fn stub_decode<T>(_: &str) -> Result<T, String> {
        Result::Err(String::from("the schema failed to derive"))
    }

    /// `attr` if given, else the type's natural maximum, else 0 (the derive rejects that).
    pub const fn max_len(natural: Option<usize>, attr: Option<usize>) -> usize {
        match (attr, natural) {
            (Some(a), _) => a,
            (None, Some(n)) => n,
            (None, None) => 0,
        }
    }
}

/// Removes the share `name` (any type). `Ok(false)` when it did not exist.
///
/// Processes that have it mapped keep using it; the name is free for a new share at once.
/// The share's waiter registry (a companion object named `<name>.membus-wait`, see
/// [`select`]) goes with it.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] for a malformed name, [`ErrorKind::AccessDenied`] when
/// the OS refuses.
pub fn remove(name: impl IntoShareName) -> Result<bool> {
    wait::remove_with_companion(&name.into_share_name()?)
}

/// Whether a live membus process created `name` and still holds it.
///
/// Every share membus creates carries an advisory owner lock for its creator's lifetime;
/// the kernel drops it when that process exits or dies. `false` therefore means "no live
/// membus owner": the share is stale if membus made it, while shares made by libmembus or
/// pymembus (which take no such lock) always report `false`.
///
/// # Errors
/// [`ErrorKind::OpenFailed`] when no such share exists.
pub fn has_live_owner(name: impl IntoShareName) -> Result<bool> {
    sys::shm::Segment::has_live_owner(&name.into_share_name()?)
}
