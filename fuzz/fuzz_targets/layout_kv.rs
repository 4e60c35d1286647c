//! Fuzz target `layout_kv`: see `membus_fuzz::layout_kv`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::layout_kv(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("layout_kv", membus_fuzz::layout_kv)
}
