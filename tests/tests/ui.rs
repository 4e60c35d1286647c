//! What a user sees: trybuild UI tests for `#[derive(MemKv)]` and `#[derive(MemKvEnum)]`.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and review the diff.

#[test]
fn memkv_derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/memkv/pass/*.rs");
    t.compile_fail("ui/memkv/*.rs");
}
