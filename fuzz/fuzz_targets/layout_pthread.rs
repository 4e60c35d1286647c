//! Fuzz target `layout_pthread`: see `membus_fuzz::layout_pthread`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::layout_pthread(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("layout_pthread", membus_fuzz::layout_pthread)
}
