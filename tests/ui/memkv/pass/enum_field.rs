use membus::typed::KvSchema;
use membus::{KvValue, MemKv, MemKvEnum};

#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
#[memkv(rename_all = "kebab-case")]
enum Mode {
    FullAuto,
    #[memkv(rename = "manual")]
    Manual,
}

#[derive(MemKv, Debug, PartialEq)]
struct State {
    mode: Mode,
    next: Option<Mode>,
}

fn main() {
    assert_eq!(<Mode as membus::MemKvEnum>::VARIANTS, ["full-auto", "manual"]);
    assert_eq!(<Mode as KvValue>::MAX_LEN, Some(9));
    let v = State { mode: Mode::FullAuto, next: Some(Mode::Manual) };
    assert_eq!(v.encode_slots(), ["full-auto", "manual"]);
    assert_eq!(State::decode_slots(&["manual", ""]).unwrap(), State { mode: Mode::Manual, next: None });
    assert!(State::decode_slots(&["FullAuto", ""]).is_err());
    let _: membus::typed::Field<State, Mode> = State::MODE;
}
