use membus::MemKv;

#[derive(MemKv)]
union Bits {
    a: u32,
    b: f32,
}

fn main() {}
