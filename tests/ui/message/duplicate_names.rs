#[derive(membus::Message)]
enum Cmd {
    PanLeft,
    #[message(rename = "pan-left")]
    Left,
}

fn main() {}
