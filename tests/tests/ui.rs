//! What a user sees for each derive mistake: trybuild UI tests with checked-in `.stderr`
//! for `#[derive(Message)]`, `#[derive(MemKv)]` and `#[derive(MemKvEnum)]`. Regenerate the
//! `.stderr` files with `TRYBUILD=overwrite` and review the diff.

#[test]
fn derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/message/pass_*.rs");
    t.compile_fail("ui/message/[!p]*.rs");
    t.pass("ui/memkv/pass/*.rs");
    t.compile_fail("ui/memkv/*.rs");
}
