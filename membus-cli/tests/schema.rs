//! Typed shares in the `membus` command: `schema`, typed `ls`/`info`, validated `kv set` and
//! `send`, typed `tail`, stale descriptions in `rm --stale`, and `codegen cpp` compiled with
//! g++ against a stand-in of libmembus's documented memkv API.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use membus::typed::{KvSchema, Message, Receiver, Recv, Sender};
use membus::{Kv, QueueOptions};
use membus_tests::schema_types::{AllTypes, Command as Cmd};
use membus_tests::serde_json::{self, Value};
use membus_tests::ShmGuard;

fn membus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(args)
        .output()
        .expect("run membus")
}

fn ok(args: &[&str]) -> String {
    let out = membus(args);
    assert!(
        out.status.success(),
        "membus {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = membus(args);
    assert!(
        !out.status.success(),
        "membus {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn schema_info_and_ls_show_the_type() {
    let g = ShmGuard::new("cli-schema");
    let _kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    let text = ok(&["schema", g.name()]);
    assert!(text.contains("memkv store of AllTypes"), "{text}");
    assert!(
        text.contains("level") && text.contains("one of Low, High, off"),
        "{text}"
    );
    assert!(
        text.contains("label") && text.contains("text of at most 24 bytes"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&ok(&["schema", g.name(), "--json"])).unwrap();
    let want: Value = serde_json::from_str(&AllTypes::schema_json()).unwrap();
    assert_eq!(v, want);
    let info = ok(&["info", g.name()]);
    assert!(
        info.contains("typed") && info.contains("yes: AllTypes (memkv, 21 fields"),
        "{info}"
    );
    let ls: Value = serde_json::from_str(&ok(&["ls", "--json"])).unwrap();
    let entry = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == g.name())
        .expect("listed");
    assert_eq!(entry["typed"], true);
    assert_eq!(entry["type_name"], "AllTypes");
    let table = ok(&["ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(g.name()) && l.contains("memkv") && l.contains("[AllTypes]")),
        "{table}"
    );
    // An untyped share says so.
    let raw = ShmGuard::new("cli-untyped");
    let _w = membus::memmsg::Writer::create(raw.name(), 256).unwrap();
    assert!(fails(&["schema", raw.name()]).contains("not a typed share"));
    assert!(ok(&["info", raw.name()])
        .lines()
        .any(|l| l.starts_with("typed") && l.ends_with("no")));
}

#[test]
fn kv_set_validates_against_the_schema() {
    let g = ShmGuard::new("cli-kvset");
    let kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("level", "Medium", "field `level` (slot \"level\") does not accept \"Medium\": expected one of Low, High, off"),
        ("a_u8", "256", "field `a_u8` (slot \"a_u8\") does not accept \"256\": expected an integer from 0 to 255"),
        ("a_i8", "1.5", "field `a_i8`"),
        ("a_bool", "yes", "expected true or false"),
        ("a_char", "ab", "expected exactly one character"),
        ("label", &"x".repeat(25), "longer than its max_len = 24"),
        ("a_f32", "fast", "expected a number (f32)"),
        ("nope", "1", "has no slot \"nope\""),
        ("__schema", "0", "schema fingerprint"),
    ];
    for (key, value, expect) in cases {
        let e = fails(&["kv", g.name(), "set", key, value]);
        assert!(e.contains(expect), "{key}={value}: {e}");
        assert!(
            e.contains("nothing was written") || *key == "nope" || *key == "__schema",
            "{e}"
        );
    }
    assert_eq!(
        kv.snapshot().unwrap(),
        AllTypes::first(),
        "nothing was written"
    );
    ok(&[
        "kv",
        g.name(),
        "set",
        "level",
        "High",
        "maybe_u16",
        "",
        "label",
        "ok",
    ]);
    let s = kv.snapshot().unwrap();
    assert_eq!(
        (s.level, s.maybe_u16, s.a_string.as_str()),
        (membus_tests::schema_types::Level::High, None, "ok")
    );
    // --raw writes what the schema refuses (the typed reader then reports the field).
    ok(&["kv", g.name(), "set", "--raw", "level", "Medium"]);
    let e = kv.get(AllTypes::LEVEL).unwrap_err();
    assert!(e.to_string().contains("field `level`"), "{e}");
}

#[test]
fn send_validates_and_tail_prints_typed_messages() {
    let g = ShmGuard::new("cli-send");
    let mut rx = Receiver::<Cmd>::create_memcmd(g.name(), 4096, &QueueOptions::new()).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "pan-right",
            "unknown variant \"pan-right\"; expected one of: pan-left, zoom, move, expose",
        ),
        (
            r#"{"zoom":"fast"}"#,
            "variant \"zoom\" field 0: expected f32",
        ),
        (r#"{"move":[1]}"#, "expected 2 values (i32, i32), found 1"),
        (
            r#"{"expose":{"us":-1,"auto":true,"gains":[]}}"#,
            "variant \"expose\" field `us`: expected an integer from 0 to 4294967295",
        ),
        (r#"{"expose":{"us":1,"gains":[]}}"#, "field `auto`: missing"),
        (
            r#"{"expose":{"us":1,"auto":true,"gains":[256]}}"#,
            "field `gains`: item 0",
        ),
        ("zoom", "carries a payload"),
    ];
    for (msg, expect) in cases {
        let e = fails(&["send", g.name(), msg]);
        assert!(
            e.contains(expect) && e.contains("nothing was sent"),
            "{msg}: {e}"
        );
    }
    assert!(
        matches!(rx.recv(Duration::ZERO).unwrap(), Recv::Timeout),
        "nothing was sent"
    );
    ok(&["send", g.name(), r#"{"zoom":2.5}"#, "pan-left"]);
    match rx.recv(Duration::from_secs(5)).unwrap() {
        Recv::Message { msg, .. } => assert_eq!(msg, Cmd::Zoom(2.5)),
        other => panic!("{other:?}"),
    }
    ok(&["send", "--raw", g.name(), "pan-right"]);
    let _ = rx.recv(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        rx.recv(Duration::from_secs(5)).unwrap(),
        Recv::Undecodable { .. }
    ));

    let m = ShmGuard::new("cli-tail");
    let mut tx = Sender::<Cmd>::create_memmsg(m.name(), 4096, &QueueOptions::new()).unwrap();
    for c in Cmd::all() {
        tx.send(&c).unwrap();
    }
    let text = ok(&[
        "tail",
        m.name(),
        "--from-start",
        "--count",
        "4",
        "--timeout",
        "10s",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "PanLeft",
            "Zoom(2.5)",
            "Move(1, -2)",
            "Expose { us: 500, auto: false, note: \"ok\", gains: [1,2,255] }",
        ],
        "{text}"
    );
}

#[test]
fn tail_prints_typed_store_values() {
    let g = ShmGuard::new("cli-tailkv");
    let kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    kv.update(|b| {
        b.set(AllTypes::MAYBE_U16, None)
            .set(AllTypes::A_STRING, "x y".into());
    })
    .unwrap();
    let text = ok(&[
        "tail",
        g.name(),
        "--from-start",
        "--count",
        "21",
        "--timeout",
        "10s",
    ]);
    assert!(text.contains(": maybe_u16 = None"), "{text}");
    assert!(text.contains(": a_string = \"x y\""), "{text}");
    assert!(text.contains(": level = off"), "{text}");
}

#[test]
fn rm_stale_removes_an_orphaned_description() {
    // The guard removes the share and its description whatever happens.
    let g = ShmGuard::new("cli-orphan");
    let name = g.name().to_owned();
    let path = format!("/dev/shm{name}.membus-schema");
    std::fs::write(&path, b"MBSCHEM1").unwrap();
    let out = ok(&["rm", "--stale", &name]);
    assert!(
        out.contains(&format!("removed {name}.membus-schema")),
        "{out}"
    );
    assert!(!std::path::Path::new(&path).exists());
}

/// A minimal stand-in for libmembus's `memkv` with the documented signatures, over a
/// vector (the generated accessor is a template over the store type).
const STAND_IN: &str = r#"
#include <map>
#include <string>
#include <vector>
struct stand_in_memkv {
    std::vector<std::string> names, values;
    size_t max_value = 0;
    int count() const { return int(names.size()); }
    std::string getName(int i) const { return i >= 0 && i < count() ? names[size_t(i)] : std::string(); }
    std::string getValue(int i, bool& stale) const {
        stale = !(i >= 0 && i < count());
        return stale ? std::string() : values[size_t(i)];
    }
    bool setValue(int i, const std::string& v) {
        if (i < 0 || i >= count() || v.size() > max_value) return false;
        values[size_t(i)] = v;
        return true;
    }
    bool setAll(const std::map<std::string, std::string>& m) {
        for (auto& kv : m)
            for (int i = 0; i < count(); i++)
                if (names[size_t(i)] == kv.first && kv.second.size() <= max_value) values[size_t(i)] = kv.second;
        return true;
    }
};
"#;

/// Writes AllTypes::second() through the generated setters and prints every slot, then
/// tries values a Rust reader would refuse, then the message codecs.
const PROGRAM: &str = r#"
#include "stand_in.hpp"
#include "all_types.hpp"
#include "command.hpp"
#include <iostream>
using namespace membus_typed;
#define REFUSED(expr) do { try { expr; std::cout << "accepted: " #expr "\n"; } \
    catch (const field_error& e) { std::cout << "refused: " << e.what() << "\n"; } } while (0)
int main(int argc, char** argv) {
    stand_in_memkv kv;
    for (int i = 1; i + 1 < argc && std::string(argv[i]).rfind("decode:", 0) != 0; i += 2) {
        kv.names.push_back(argv[i]);
        kv.values.push_back(argv[i + 1]);
    }
    kv.max_value = 64;
    AllTypesKv<stand_in_memkv> a(kv);
    std::cout << "check: [" << a.check() << "]\n";
    AllTypes s = a.snapshot();
    std::cout << "first: " << int(s.a_u8) << " " << s.a_string << " " << to_wire(s.level) << " "
              << (s.maybe_u16 ? "some" : "none") << "\n";
    bool ok = a.set_a_u8(7) && a.set_a_u16(1) && a.set_a_u32(0) && a.set_a_u64(18000000000000000000ull)
        && a.set_a_u128(u128(1) << 127) && a.set_a_usize(0) && a.set_a_i8(127) && a.set_a_i16(32767)
        && a.set_a_i32(-1) && a.set_a_i64(9223372036854775807ll)
        && a.set_a_i128(i128((~u128(0)) >> 1)) && a.set_a_isize(99) && a.set_a_f32(3.25e-20f)
        && a.set_a_f64(2.5) && a.set_a_bool(false) && a.set_a_char(U'\u20ac')
        && a.set_a_string("\xe2\x88\x91 unicode \xe2\x9c\x93") && a.set_level(Level::High)
        && a.set_maybe_u16(443) && a.set_maybe_text(std::nullopt) && a.set_addr("192.168.1.254");
    std::cout << "set: " << ok << "\n";
    for (size_t i = 0; i < kv.values.size(); i++) std::cout << "slot " << kv.names[i] << "=" << kv.values[i] << "\n";
    REFUSED(a.set_a_string(std::string(25, 'x')));
    REFUSED(a.set_level(static_cast<Level>(42)));
    REFUSED(a.set_maybe_text(std::string()));
    REFUSED(a.set_a_char(char32_t(0xD800)));
    REFUSED(a.set_addr("1234567890.1234567"));
    kv.values[0] = "300";
    REFUSED(a.get_a_u8());
    kv.values[17] = "Medium";
    REFUSED(a.get_level());
    std::vector<Command::Message> msgs = {Command::PanLeft{}, Command::Zoom{2.5f}, Command::Move{1, -2},
        Command::Expose{500, false, std::string("ok"), {1, 2, 255}}};
    for (auto& m : msgs) std::cout << "msg " << Command::encode(m) << "\n";
    for (int i = 1; i < argc; i++) {
        std::string a1 = argv[i];
        if (a1.rfind("decode:", 0) == 0) {
            try { std::cout << "redecoded " << Command::encode(Command::decode(a1.substr(7))) << "\n"; }
            catch (const std::exception& e) { std::cout << "undecodable: " << e.what() << "\n"; }
        }
    }
    REFUSED(Command::decode("{\"zoom\":\"fast\"}"));
    REFUSED(Command::decode("{\"expose\":{\"us\":-1,\"auto\":true,\"gains\":[]}}"));
    REFUSED(Command::decode("pan-right"));
    REFUSED(Command::encode(Command::Zoom{std::numeric_limits<float>::infinity()}));
    return 0;
}
"#;

#[test]
fn generated_cpp_compiles_with_gxx_and_agrees_with_rust() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("codegen-cpp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kv_json = dir.join("all_types.json");
    let msg_json = dir.join("command.json");
    std::fs::write(&kv_json, AllTypes::schema_json()).unwrap();
    std::fs::write(&msg_json, Cmd::schema().unwrap().to_json()).unwrap();
    ok(&[
        "codegen",
        "cpp",
        "--from",
        kv_json.to_str().unwrap(),
        "-o",
        dir.join("all_types.hpp").to_str().unwrap(),
    ]);
    ok(&[
        "codegen",
        "cpp",
        "--from",
        msg_json.to_str().unwrap(),
        "-o",
        dir.join("command.hpp").to_str().unwrap(),
    ]);
    std::fs::write(dir.join("stand_in.hpp"), STAND_IN).unwrap();
    std::fs::write(dir.join("main.cpp"), PROGRAM).unwrap();
    let exe = dir.join("main");
    let cc = Command::new("g++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(dir.join("main.cpp"))
        .output()
        .expect("g++ runs (the C++ codegen test needs g++)");
    assert!(
        cc.status.success(),
        "g++ failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    // The store as a membus creator lays it out: slot names and texts, and the fingerprint.
    let mut args: Vec<String> = Vec::new();
    for (def, text) in AllTypes::SLOTS.iter().zip(AllTypes::first().encode_slots()) {
        args.push(def.name.into());
        args.push(text);
    }
    args.push("__schema".into());
    args.push(AllTypes::schema().fingerprint.unwrap());
    for c in Cmd::all() {
        let mut w = Vec::new();
        c.encode(&mut w).unwrap();
        args.push(format!("decode:{}", String::from_utf8(w).unwrap()));
    }
    let out = Command::new(&exe).args(&args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("check: []"), "{text}");
    assert!(text.contains("first: 200 héllo wörld off none"), "{text}");
    assert!(text.contains("set: 1"), "{text}");
    // What C++ wrote is AllTypes::second() for a Rust reader.
    let slots: Vec<String> = AllTypes::SLOTS
        .iter()
        .map(|d| {
            let key = format!("slot {}=", d.name);
            text.lines()
                .find_map(|l| l.strip_prefix(key.as_str()))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_owned()
        })
        .collect();
    let refs: Vec<&str> = slots.iter().map(String::as_str).collect();
    assert_eq!(
        AllTypes::decode_slots(&refs).unwrap(),
        AllTypes::second(),
        "{text}"
    );
    for expect in [
        "refused: field `a_string` (slot \"label\") does not accept",
        "refused: field `level` (slot \"level\") does not accept an out-of-range enum value",
        "refused: field `maybe_text` (slot \"maybe_text\") does not accept an empty text",
        "refused: field `a_char` (slot \"a_char\") does not accept an invalid character",
        "refused: field `addr` (slot \"addr\") does not accept \"1234567890.1234567\" (18 bytes, longer than max_len = 15)",
        "refused: field `a_u8` (slot \"a_u8\") holds \"300\", which does not parse: expected an integer from 0 to 255",
        "refused: field `level` (slot \"level\") holds \"Medium\", which does not parse: expected one of Low, High, off",
        "refused: variant zoom field 0: expected a number, found \"fast\"",
        "refused: variant expose field `us`: expected an integer in range, found -1",
        "refused: unknown variant \"pan-right\"; expected one of: pan-left, zoom, move, expose",
        "refused: a non-finite number has no JSON form",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
    assert!(!text.contains("accepted:"), "{text}");
    // Messages: what C++ encodes, Rust decodes as the same values; what Rust encodes, C++
    // decodes and re-encodes to the same bytes.
    let encoded: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("msg "))
        .collect();
    let decoded: Vec<Cmd> = encoded
        .iter()
        .map(|e| Cmd::decode(e.as_bytes()).unwrap())
        .collect();
    assert_eq!(decoded, Cmd::all());
    let redecoded: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("redecoded "))
        .collect();
    assert_eq!(redecoded, encoded, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
