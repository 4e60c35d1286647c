use membus::{Kv, MemKv};

#[derive(MemKv)]
struct Camera {
    exposure: u32,
}

fn main() -> membus::Result<()> {
    let kv = Kv::<Camera>::attach("/camera")?;
    let _ = kv.get(Camera::EXPOSUR)?;
    let _: bool = kv.get(Camera::EXPOSURE)?;
    Ok(())
}
