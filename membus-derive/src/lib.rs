//! Derive macros for membus: `#[derive(MemKv)]`, `#[derive(MemKvEnum)]` and
//! `#[derive(Message)]`.
//!
//! This crate is re-exported by `membus`; depend on `membus` and use the derives from there
//! (`membus::MemKv`, `membus::MemKvEnum`, `membus::Message`); the generated code names only
//! items of `membus`. Every mistake in a derived type becomes a compile error spanned on the
//! offending field or attribute, all of them at once, and the derive still emits the items
//! other code names (the key constants of a `MemKv` struct), so no follow-on errors appear.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod ast;
mod attr;
mod case;
mod ctxt;
mod expand;
mod message;
mod valid;

use proc_macro::TokenStream;

/// Makes a struct with named fields the schema of a typed memkv store (`membus::Kv<S>`).
/// See the `membus::typed` documentation for the attributes.
#[proc_macro_derive(MemKv, attributes(memkv))]
pub fn derive_mem_kv(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::mem_kv(&input).into()
}

/// Stores an enum of unit variants in a memkv slot by variant name.
#[proc_macro_derive(MemKvEnum, attributes(memkv))]
pub fn derive_mem_kv_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::mem_kv_enum(&input).into()
}

/// Implements `membus::typed::Message` for an enum or a struct: a typed message for
/// membus's typed senders and receivers, with a wire form a pymembus peer reads and writes
/// with Python's standard library. See `membus::typed` for the wire form and the
/// `#[message(...)]` attributes.
///
/// Fields of standard types (numbers, `bool`, `String`, `Vec`, `Option`, tuples, ...) need
/// nothing more. A field of your own type must implement `serde::Serialize` and
/// `serde::Deserialize`: depend on `serde = { version = "1", features = ["derive"] }` and
/// derive both on the type. For `membus::typed::Pod<T>` messages (raw bytes, no text form),
/// `T` must implement `bytemuck::Pod` (`bytemuck = { version = "1", features = ["derive"] }`,
/// `#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]` on a `#[repr(C)]` struct).
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    message::derive(&input).into()
}
