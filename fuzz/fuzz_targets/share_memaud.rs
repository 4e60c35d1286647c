//! Fuzz target `share_memaud`: see `membus_fuzz::share_memaud`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::share_memaud(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("share_memaud", membus_fuzz::share_memaud)
}
