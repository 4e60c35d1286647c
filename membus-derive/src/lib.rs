//! Derive macros for membus.
//!
//! This crate is re-exported by `membus`; depend on `membus` and use the derives from there.
//! It holds no derives yet: `#[derive(MemKv)]` and `#[derive(Message)]` arrive with the typed
//! key/value and typed message layers.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
