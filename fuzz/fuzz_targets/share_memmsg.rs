//! Fuzz target `share_memmsg`: see `membus_fuzz::share_memmsg`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::share_memmsg(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("share_memmsg", membus_fuzz::share_memmsg)
}
