#[derive(membus::Message)]
enum Cmd<T> {
    Value(T),
}

fn main() {}
