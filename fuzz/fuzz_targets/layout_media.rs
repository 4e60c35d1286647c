//! Fuzz target `layout_media`: see `membus_fuzz::layout_media`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| membus_fuzz::layout_media(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() -> std::process::ExitCode {
    membus_fuzz::replay_main("layout_media", membus_fuzz::layout_media)
}
