#[derive(membus::Message)]
enum Cmd {
    #[message(alias = "left")]
    PanLeft,
}

fn main() {}
