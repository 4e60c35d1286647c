//! Fuzz target `share_memvid`: see `membus_fuzz::share_memvid`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::share_memvid(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("share_memvid", membus_fuzz::share_memvid)
}
