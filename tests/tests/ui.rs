//! What a user sees for each derive mistake: trybuild UI tests with checked-in `.stderr`.

#[test]
fn message_derive() {
    let t = trybuild::TestCases::new();
    t.pass("ui/message/pass_*.rs");
    t.compile_fail("ui/message/[!p]*.rs");
}
