use membus::MemKv;

#[derive(MemKv)]
struct Bad {
    bytes: Vec<u8>,
    name: &'static str,
    pair: (u8, u8),
    grid: [u8; 4],
    twice: Option<Option<u8>>,
}

fn main() {}
