use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
struct Maybe {
    fps: Option<u16>,
    gain: Option<f64>,
    on: Option<bool>,
    grade: Option<char>,
    #[memkv(max_len = 16)]
    note: Option<String>,
}

fn main() {
    let none = Maybe { fps: None, gain: None, on: None, grade: None, note: None };
    assert_eq!(none.encode_slots(), ["", "", "", "", ""]);
    assert_eq!(Maybe::decode_slots(&["", "", "", "", ""]).unwrap(), none);
    let some = Maybe { fps: Some(30), gain: Some(1.5), on: Some(false), grade: Some('A'), note: Some("hi".into()) };
    assert_eq!(Maybe::decode_slots(&["30", "1.5", "false", "A", "hi"]).unwrap(), some);
    let _: membus::typed::Field<Maybe, Option<u16>> = Maybe::FPS;
}
