//! `membus bench` runs every case and writes JSON in libmembus's shape, with libmembus's
//! case names for the mirrored cases. (Speed is measured by running the command, never
//! asserted here.)

use std::process::Command;

/// Runs `membus ARGS`; on failure the panic shows the exit status and both streams.
fn run_ok(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(args)
        .output()
        .expect("run membus");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`membus {}` failed ({}):\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// Every case runs, and the JSON has libmembus's shape. Each latency case measures for at
/// least the duration and then until it has a sample (bounded), so a busy machine makes it
/// slower, never empty; a case that measures nothing fails the command with its name.
#[test]
fn bench_runs_and_writes_libmembus_shaped_json() {
    let json = std::env::temp_dir().join(format!("membus-bench-test-{}.json", std::process::id()));
    let (table, _) = run_ok(&[
        "bench",
        "--duration-ms",
        "10",
        "--json",
        json.to_str().expect("temp path is UTF-8"),
    ]);
    assert!(
        table.contains("--- Throughput ---") && table.contains("--- Latency (µs) ---"),
        "the table lacks its headings:\n{table}"
    );
    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    std::fs::remove_file(&json).expect("remove the JSON file");
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the JSON does not parse ({e}):\n{text}"));
    assert_eq!(v["metadata"]["duration_ms"], 10, "{text}");
    let entries = |key: &str| -> &Vec<serde_json::Value> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("`{key}` is not an array in:\n{text}"))
    };
    let names = |key: &str| -> Vec<String> {
        entries(key)
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("<no name>").to_string())
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
    let latency = names("latency_results");
    for case in [
        "memmsg round-trip latency",
        "memvid frame hand-off latency (2 processes)",
        "shm spin ping-pong (2 processes, floor)",
    ] {
        assert!(
            latency.iter().any(|n| n == case),
            "{case} missing from {latency:?}"
        );
    }
    for r in entries("results") {
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
        assert!(
            r["operations"].as_u64().is_some_and(|n| n > 0),
            "a throughput case counted no operation: {r}"
        );
    }
    for l in entries("latency_results") {
        for key in [
            "name", "group", "payload", "samples", "p50_us", "p95_us", "p99_us", "min_us", "max_us",
        ] {
            assert!(l.get(key).is_some(), "latency entry lacks {key}: {l}");
        }
        // The bench itself refuses to report an empty case (it errors instead), so this
        // checks that guarantee, not the machine's speed.
        assert!(
            l["samples"].as_u64().is_some_and(|n| n > 0),
            "a latency case reported no sample: {l}"
        );
        assert!(
            l["min_us"].as_f64() <= l["p50_us"].as_f64()
                && l["p50_us"].as_f64() <= l["max_us"].as_f64(),
            "percentiles out of order: {l}"
        );
    }
}

#[test]
fn bench_only_runs_the_matching_cases() {
    let (table, _) = run_ok(&["bench", "--duration-ms", "10", "--only", "memkv getValue"]);
    assert!(table.contains("memkv getValue"), "{table}");
    assert!(!table.contains("memmap read/write"), "{table}");
}

#[test]
fn bench_only_with_no_match_is_an_error_listing_the_cases() {
    let out = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["bench", "--only", "nosuchcase"])
        .output()
        .expect("run membus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit 0 for no matching case: {stderr}"
    );
    assert!(
        stderr.contains("nosuchcase") && stderr.contains("memmsg single writer/reader"),
        "the error should name the filter and list the cases: {stderr}"
    );
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
