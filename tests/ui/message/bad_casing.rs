#[derive(membus::Message)]
#[message(rename_all = "Title Case")]
enum Cmd {
    PanLeft,
}

fn main() {}
