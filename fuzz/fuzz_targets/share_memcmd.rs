//! Fuzz target `share_memcmd`: see `membus_fuzz::share_memcmd`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::share_memcmd(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("share_memcmd", membus_fuzz::share_memcmd)
}
