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

/// Runs `membus bench ARGS --json FILE` (a file of its own under the temp directory, named
/// by `tag`) and returns the table and the JSON text; the file is removed.
fn bench_with_json(tag: &str, args: &[&str]) -> (String, String) {
    let json = std::env::temp_dir().join(format!("membus-bench-{tag}-{}.json", std::process::id()));
    let path = json.to_str().expect("temp path is UTF-8");
    let (table, _) = run_ok(&[&["bench"], args, &["--json", path]].concat());
    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    std::fs::remove_file(&json).expect("remove the JSON file");
    (table, text)
}

/// Every case runs, and the JSON has libmembus's shape. Each latency case measures for at
/// least the duration and then until it has a sample (bounded), so a busy machine makes it
/// slower, never empty; a case that measures nothing fails the command with its name.
#[test]
fn bench_runs_and_writes_libmembus_shaped_json() {
    let (table, text) = bench_with_json("test", &["--duration-ms", "10"]);
    assert!(
        table.contains("--- Throughput ---") && table.contains("--- Latency (µs) ---"),
        "the table lacks its headings:\n{table}"
    );
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
        // checks that guarantee, not the machine's speed. The machine stalls row counts what
        // the machine did, which may be nothing in 10 ms (see its own test).
        assert!(
            l["samples"].as_u64().is_some_and(|n| n > 0)
                || l["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("machine stalls")),
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

/// A stand-in for libmembus's benchmark: a shell script that writes libmembus-shaped JSON
/// (to the `--json` file when given one, else to standard output) and logs each call.
fn fake_libmembus(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake-libmembus-bench");
    let body = r#"#!/bin/sh
echo run >> "$(dirname "$0")/calls"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) out="$2"; shift 2;;
    *) shift;;
  esac
done
json='{"metadata":{"duration_ms":10},"results":[{"name":"memmsg single writer/reader","group":"memmsg","payload":"64 B","operations":10,"bytes":640,"seconds":1,"ops_per_sec":1000.5,"mb_per_sec":0.1,"ns_per_op":1},{"name":"libmembus only","group":"x","payload":"1 B","operations":1,"bytes":1,"seconds":1,"ops_per_sec":1,"mb_per_sec":0,"ns_per_op":1}],"latency_results":[]}'
if [ -n "$out" ]; then printf '%s\n' "$json" > "$out"; else printf '%s\n' "$json"; fi
"#;
    std::fs::write(&script, body).expect("write the fake benchmark");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// `--compare` alternates the two benchmarks for `--rounds` rounds and prints one ratio per
/// round and their median for each case both report (figures are not judged).
#[test]
fn compare_alternates_rounds_and_matches_cases() {
    let dir = std::env::temp_dir().join(format!("membus-compare-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = fake_libmembus(&dir);
    for (args, label) in [
        (None, "JSON file"),
        (Some("--duration-ms {duration_ms}"), "standard output"),
    ] {
        let _ = std::fs::remove_file(dir.join("calls"));
        let mut cmd = vec![
            "bench",
            "--duration-ms",
            "10",
            "--only",
            "memmsg single",
            "--compare",
            script.to_str().expect("UTF-8 path"),
            "--rounds",
            "3",
        ];
        if let Some(a) = args {
            cmd.extend(["--compare-args", a]);
        }
        let (out, _) = run_ok(&cmd);
        let calls = std::fs::read_to_string(dir.join("calls")).expect("the fake ran");
        assert_eq!(
            calls.lines().count(),
            3,
            "{label}: one call per round:\n{out}"
        );
        let row = out
            .lines()
            .find(|l| l.starts_with("memmsg single writer/reader"))
            .unwrap_or_else(|| panic!("{label}: no row for the shared case:\n{out}"));
        let (_, figures) = row
            .split_once("ops/s")
            .unwrap_or_else(|| panic!("{label}: no ops/s column: {row}"));
        let ratios: Vec<f64> = figures
            .split_whitespace()
            .filter_map(|w| w.trim_end_matches('×').parse::<f64>().ok())
            .collect();
        assert_eq!(ratios.len(), 4, "{label}: three rounds and a median: {row}");
        assert!(ratios.iter().all(|r| *r > 0.0), "{label}: {row}");
        let mut sorted = ratios[..3].to_vec();
        sorted.sort_by(f64::total_cmp);
        assert!(
            (ratios[3] - sorted[1]).abs() < 0.006,
            "{label}: median of {row}"
        );
        assert!(
            !out.contains("libmembus only"),
            "{label}: unmatched case shown:\n{out}"
        );
        assert!(out.contains("CPU: "), "{label}: no CPU line:\n{out}");
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

/// Without `--compare` the metadata names the CPU and the copy strategy.
#[test]
fn json_metadata_names_the_cpu() {
    let (table, text) = bench_with_json("cpu", &["--duration-ms", "10", "--only", "zero-copy"]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let cpu = &v["metadata"]["cpu"];
    for key in ["vendor", "model", "flags", "copy_strategy", "copy_plan"] {
        assert!(cpu[key].is_string(), "cpu.{key} missing: {text}");
    }
    assert!(
        cpu["l2_bytes"].is_u64() && cpu["l3_bytes"].is_u64(),
        "{text}"
    );
    assert!(
        cpu["family"].is_u64() && cpu["model_number"].is_u64(),
        "{text}"
    );
    assert!(table.starts_with("CPU: "), "{table}");
    let family = cpu["family"].as_u64().unwrap_or_default();
    assert!(
        table.contains(&format!("family {family:#x} model ")),
        "{table}"
    );
    let r = &v["results"][0];
    assert_eq!(r["name"], "mempkt read (zero-copy view)", "{text}");
    assert_eq!(r["payload"], "32768 B/record", "{text}");
    assert!(r["operations"].as_u64().is_some_and(|n| n > 0), "{text}");
}

/// The number that follows `label` in `text` (digits and a point), if any.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The interleaved case prints one self-explaining line of figures and reports its two
/// sides as latency rows and its per-slice ratios in `interleaved_results` (the figures
/// are checked for being numbers that belong together, never for speed).
#[test]
fn interleaved_case_reports_ratios_and_both_tails() {
    let (table, text) = bench_with_json(
        "interleaved",
        &["--duration-ms", "100", "--only", "interleaved"],
    );

    let line = table
        .lines()
        .find(|l| l.starts_with("interleaved: "))
        .unwrap_or_else(|| panic!("no `interleaved:` line:\n{table}"));
    let fig = |label: &str| {
        number_after(line, label).unwrap_or_else(|| panic!("no number after {label:?}: {line}"))
    };
    let (m50, f50) = (fig("memmsg round trip p50 "), fig("floor p50 "));
    let ratio = fig("per-slice p50 ratio median ");
    let slices = fig("(slices: ");
    let (m99, m999) = (fig("memmsg p99 "), fig(" p99.9 "));
    let floor_tail = &line[line.find("floor p99 ").expect("floor p99")..];
    let f99 = fig("floor p99 ");
    let f999 =
        number_after(floor_tail, " p99.9 ").unwrap_or_else(|| panic!("no floor p99.9: {line}"));
    assert!(slices >= 1.0 && slices.fract() == 0.0, "{line}");
    // Ratios print with two decimals: a loaded machine (a floor slice whose spinning echo
    // was descheduled) can print 0.00, so their sign is checked on the JSON figures below.
    assert!(m50 > 0.0 && f50 > 0.0 && ratio >= 0.0, "{line}");
    assert!(
        m50 <= m99 && m99 <= m999 && f50 <= f99 && f99 <= f999,
        "{line}"
    );
    assert!(
        line.contains("middle half ") && line.matches("(p99.9 ÷ p99 ").count() == 2,
        "{line}"
    );

    let v: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let il = &v["interleaved_results"][0];
    assert_eq!(
        il["name"], "memmsg round trip ÷ floor, interleaved (2 processes)",
        "{text}"
    );
    let n = il["slices"].as_u64().expect("slices");
    assert!(n >= 1, "{text}");
    assert!(
        il["slices_memmsg_below_floor"]
            .as_u64()
            .is_some_and(|b| b <= n),
        "{text}"
    );
    assert_eq!(
        il["p50_ratios"].as_array().map(Vec::len),
        Some(n as usize),
        "{text}"
    );
    assert!(
        il["p50_ratios"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r.as_f64().is_some_and(|r| r > 0.0)),
        "{text}"
    );
    assert!(
        il["p50_ratio_median"]
            .as_f64()
            .is_some_and(|r| r > 0.0 && (r - ratio).abs() <= 0.006),
        "{text}"
    );
    // The JSON carries the figures the line shows (rounded there).
    assert!(
        (il["memmsg"]["p50_us"].as_f64().expect("p50") - m50).abs() < 0.001,
        "{text}"
    );
    assert!(
        (il["floor"]["p999_us"].as_f64().expect("p99.9") - f999).abs() < 0.001,
        "{text}"
    );
    // The locked floor: its line, its ratios, and its row like the other two sides'.
    let locked = table
        .lines()
        .find(|l| l.starts_with("locked floor "))
        .unwrap_or_else(|| panic!("no `locked floor` line:\n{table}"));
    let l50 = number_after(locked, "p50 ").unwrap_or_else(|| panic!("no p50: {locked}"));
    let lf = number_after(locked, "ratio to the floor median ")
        .unwrap_or_else(|| panic!("no locked ÷ floor: {locked}"));
    let ml = number_after(locked, "memmsg ÷ locked floor median ")
        .unwrap_or_else(|| panic!("no memmsg ÷ locked: {locked}"));
    assert!(l50 > 0.0 && lf >= 0.0 && ml >= 0.0, "{locked}");
    assert!(
        (il["locked_floor"]["p50_us"].as_f64().expect("p50") - l50).abs() < 0.001,
        "{text}"
    );
    for (key, shown) in [
        ("locked_floor_over_floor_median", lf),
        ("memmsg_over_locked_floor_median", ml),
    ] {
        assert!(
            il[key]
                .as_f64()
                .is_some_and(|r| r > 0.0 && (r - shown).abs() <= 0.006),
            "{key}: {text}"
        );
    }
    // The stall slices: a rate (zero on a machine that never stalls) and the probability
    // that a round trip of the memmsg p50 meets a stall, 2 × rate × p50.
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("machine stalls over 1 µs (a clock-reading slice")),
        "no machine stalls line:\n{table}"
    );
    let rate = il["machine_stalls_per_sec"]
        .as_f64()
        .unwrap_or_else(|| panic!("no stall rate: {text}"));
    let probability = il["memmsg_stall_probability"]
        .as_f64()
        .unwrap_or_else(|| panic!("no stall probability: {text}"));
    let p50 = il["memmsg"]["p50_us"].as_f64().expect("p50");
    assert!(rate >= 0.0, "{text}");
    assert!(
        (probability - 2.0 * rate * p50 * 1e-6).abs() <= 1e-9 * (1.0 + probability),
        "{text}"
    );
    for (side, row_key) in [
        ("memmsg", "memmsg_row"),
        ("floor", "floor_row"),
        ("locked_floor", "locked_floor_row"),
    ] {
        let s = &il[side];
        for key in ["p50_us", "p99_us", "p999_us", "p999_over_p99"] {
            assert!(
                s[key].as_f64().is_some_and(|x| x > 0.0),
                "{side}.{key}: {text}"
            );
        }
        let row_name = il[row_key].as_str().expect("row name");
        let row = v["latency_results"]
            .as_array()
            .expect("latency_results")
            .iter()
            .find(|r| r["name"] == row_name)
            .unwrap_or_else(|| panic!("no latency row {row_name:?}: {text}"));
        assert_eq!(row["samples"], s["samples"], "{text}");
        assert_eq!(row["p50_us"], s["p50_us"], "{text}");
        assert!(
            table.contains(row_name),
            "{row_name} not in the table:\n{table}"
        );
    }
}

/// The machine stalls row: every sample is a gap over 1 µs between two clock reads, and the
/// payload column is their rate over the case's duration.
#[test]
fn machine_stalls_case_reports_gaps_over_1_us_and_their_rate() {
    let (table, text) = bench_with_json("stalls", &["--duration-ms", "200", "--only", "stalls"]);
    assert!(table.contains("machine stalls over 1 µs"), "{table}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let rows = v["latency_results"].as_array().expect("latency_results");
    assert_eq!(rows.len(), 1, "{text}");
    let row = &rows[0];
    let rate: f64 = row["payload"]
        .as_str()
        .and_then(|p| p.strip_suffix("/s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("payload is not a rate per second: {row}"));
    let n = row["samples"].as_u64().expect("samples") as f64;
    // The case measures for 0.2 s and stops at the first clock read after that (later on a
    // loaded machine), so the count is the rate times 0.2 s to about 1 s.
    assert!(
        rate * 0.2 - 1.0 <= n && n <= rate * 1.2 + 1.0,
        "{n} samples at {rate}/s: {row}"
    );
    if n > 0.0 {
        assert!(
            row["min_us"].as_f64().is_some_and(|m| m > 1.0),
            "a gap of 1 µs or less counted as a stall: {row}"
        );
    }
}
