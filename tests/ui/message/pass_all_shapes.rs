// Every supported shape derives: unit, one-field, several-field and struct variants,
// renames, structs of each kind.
#[derive(membus::Message)]
#[message(rename_all = "snake_case")]
enum Cmd {
    PanLeft,
    Zoom(f32),
    Move(i32, i32),
    Expose { us: u32, label: Option<String> },
    #[message(rename = "stop-now")]
    Stop,
}

#[derive(membus::Message)]
struct Named {
    a: u8,
    b: Vec<String>,
}

#[derive(membus::Message)]
struct Newtype(f64);

#[derive(membus::Message)]
struct Unit;

fn main() {
    use membus::typed::Message;
    let mut out = Vec::new();
    Cmd::PanLeft.encode(&mut out).unwrap();
    assert_eq!(out, b"pan_left");
    let _ = (Named::decode(b"{}"), Newtype::decode(b"1"), Unit::decode(b"unit"), Cmd::decode(b"stop-now"));
}
