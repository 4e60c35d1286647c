use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
#[memkv(max_len = 64)]
struct Names {
    label: String,
    #[memkv(max_len = 8)]
    short: String,
}

fn main() {
    assert_eq!(Names::SLOTS[0].max_len, 64);
    assert_eq!(Names::SLOTS[1].max_len, 8);
    let v = Names { label: "front door".into(), short: "cam1".into() };
    assert_eq!(v.encode_slots(), ["front door", "cam1"]);
    let _: membus::typed::Field<Names, String> = Names::LABEL;
}
