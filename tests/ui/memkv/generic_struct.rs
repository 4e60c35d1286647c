use membus::MemKv;

#[derive(MemKv)]
struct Bad<T> {
    value: T,
}

fn main() {}

#[derive(membus::MemKvEnum)]
enum BadEnum<T> {
    A,
    B(T),
}
