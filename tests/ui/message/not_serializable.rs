struct Opaque;

#[derive(membus::Message)]
enum Cmd {
    Carry(Opaque),
}

fn main() {}
