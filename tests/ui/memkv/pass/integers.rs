use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
struct Ints {
    a: i8,
    b: u8,
    c: i16,
    d: u16,
    e: i32,
    f: u32,
    g: i64,
    h: u64,
    i: i128,
    j: u128,
    k: isize,
    l: usize,
}

fn main() {
    let v = Ints { a: -128, b: 255, c: -1, d: 2, e: i32::MIN, f: u32::MAX, g: -3, h: u64::MAX, i: i128::MIN, j: u128::MAX, k: -4, l: 5 };
    let text = v.encode_slots();
    assert_eq!(text[0], "-128");
    assert_eq!(text[7], "18446744073709551615");
    let refs: Vec<&str> = text.iter().map(String::as_str).collect();
    assert_eq!(Ints::decode_slots(&refs).unwrap(), v);
    assert_eq!(Ints::SLOTS[9].max_len, 39);
    let _: membus::typed::Field<Ints, u128> = Ints::J;
}
