use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
struct Floats {
    x: f32,
    y: f64,
}

fn main() {
    let v = Floats { x: 0.1, y: 1e-300 };
    let text = v.encode_slots();
    assert_eq!(text, ["0.1", "1e-300"]);
    let refs: Vec<&str> = text.iter().map(String::as_str).collect();
    assert_eq!(Floats::decode_slots(&refs).unwrap(), v);
    let _: membus::typed::Field<Floats, f64> = Floats::Y;
}
