#[derive(membus::Message)]
enum Cmd {
    #[message(rename_all = "snake_case")]
    PanLeft,
}

fn main() {}
