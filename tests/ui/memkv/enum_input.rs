use membus::MemKv;

#[derive(MemKv)]
enum State {
    On,
    Off,
}

fn main() {}
