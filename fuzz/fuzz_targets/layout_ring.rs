//! Fuzz target `layout_ring`: see `membus_fuzz::layout_ring`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::layout_ring(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("layout_ring", membus_fuzz::layout_ring)
}
