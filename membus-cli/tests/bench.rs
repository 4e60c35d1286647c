//! `membus bench` runs every case and writes JSON in libmembus's shape, with libmembus's
//! case names for the mirrored cases. (Speed is measured by running the command, never
//! asserted here.)

use std::process::Command;

#[test]
fn bench_runs_and_writes_libmembus_shaped_json() {
    let json = std::env::temp_dir().join(format!("membus-bench-test-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["bench", "--duration-ms", "10", "--json"])
        .arg(&json)
        .output()
        .expect("run membus bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("--- Throughput ---") && table.contains("--- Latency (µs) ---"),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    assert_eq!(v["metadata"]["duration_ms"], 10);
    let names = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let results = names("results");
    for libmembus_case in [
        "memmap read/write",
        "memmsg single writer/reader",
        "memcmd 4 writers/1 reader",
    ] {
        assert!(
            results.iter().any(|n| n == libmembus_case),
            "{libmembus_case} missing from {results:?}"
        );
    }
    assert!(names("latency_results")
        .iter()
        .any(|n| n == "memmsg round-trip latency"));
    for r in v["results"].as_array().unwrap() {
        for key in [
            "name",
            "group",
            "payload",
            "operations",
            "bytes",
            "seconds",
            "ops_per_sec",
            "mb_per_sec",
            "ns_per_op",
        ] {
            assert!(r.get(key).is_some(), "results entry lacks {key}: {r}");
        }
        assert!(r["operations"].as_u64().unwrap() > 0, "{r}");
    }
    for l in v["latency_results"].as_array().unwrap() {
        for key in [
            "name", "group", "payload", "samples", "p50_us", "p95_us", "p99_us", "min_us", "max_us",
        ] {
            assert!(l.get(key).is_some(), "latency entry lacks {key}: {l}");
        }
        assert!(l["samples"].as_u64().unwrap() > 0, "{l}");
    }
}

#[test]
fn bench_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["bench", "--duration-ms", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration-ms"));
}
