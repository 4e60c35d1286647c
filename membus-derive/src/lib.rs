//! Derive macros for membus.
//!
//! This crate is re-exported by `membus`; depend on `membus` and use the derives from there.
//! Generated code names only `::membus::__private::*`.
//!
//! * `#[derive(Message)]`: an enum (or struct) becomes a typed message for membus's typed
//!   senders and receivers, with a wire form a pymembus peer reads and writes with Python's
//!   standard library (see `membus::typed`).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod case;
mod message;

use proc_macro::TokenStream;

/// Implements `membus::typed::Message` for an enum or a struct. See `membus::typed` for the
/// wire form and the `#[message(...)]` attributes.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    message::derive(&input).into()
}
