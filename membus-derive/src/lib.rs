//! Derive macros for membus: `#[derive(MemKv)]` and `#[derive(MemKvEnum)]`.
//!
//! This crate is re-exported by `membus`; depend on `membus` and use the derives from there.
//! The code is split as parse ([`attr`], [`ast`]) → validate ([`valid`]) → expand
//! ([`expand`]); this file only dispatches. Every user mistake becomes a spanned
//! `compile_error!`, all collected ([`ctxt`]), plus a stub impl so no follow-on errors
//! appear.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod ast;
mod attr;
mod case;
mod ctxt;
mod expand;
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
