#[derive(membus::Message)]
enum Never {}

fn main() {}
