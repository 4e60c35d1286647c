use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
struct Flags {
    on: bool,
    grade: char,
}

fn main() {
    let v = Flags { on: true, grade: 'é' };
    assert_eq!(v.encode_slots(), ["true", "é"]);
    assert_eq!(Flags::decode_slots(&["false", "x"]).unwrap(), Flags { on: false, grade: 'x' });
    let _: membus::typed::Field<Flags, bool> = Flags::ON;
}
