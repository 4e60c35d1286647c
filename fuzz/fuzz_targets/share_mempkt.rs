//! Fuzz target `share_mempkt`: see `membus_fuzz::share_mempkt`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::share_mempkt(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("share_mempkt", membus_fuzz::share_mempkt)
}
