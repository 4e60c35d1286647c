//! `membus bench --compare BINARY`: runs membus's benchmark and libmembus's (any program
//! that writes libmembus's benchmark JSON) in alternation for N rounds, matches the cases
//! by name and payload, and prints each round's ratio and their median.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BenchResult;

/// The default arguments given to the compared binary; `{json}` and `{duration_ms}` are
/// replaced by the file to write and the measuring time per case.
pub(crate) const DEFAULT_ARGS: &str = "--duration-ms {duration_ms} --json {json}";

/// What `--compare` needs.
pub(crate) struct Compare<'a> {
    pub binary: &'a Path,
    pub args: &'a str,
    pub rounds: u32,
    pub duration_ms: u64,
    pub only: Option<&'a str>,
}

/// One run's figures, keyed by (name, payload).
#[derive(Default)]
struct Run {
    ops: BTreeMap<(String, String), f64>,
    p50: BTreeMap<(String, String), f64>,
    p99: BTreeMap<(String, String), f64>,
}

/// A membus case compared with a libmembus case of another name: the zero-copy view read
/// against libmembus's copy-out read (the same workload; libmembus has no view).
/// A case's name and payload.
type Key = (String, String);
/// A static case name and payload.
type StaticKey = (&'static str, &'static str);
/// How to read one figure of a case from a run.
type Getter<'a> = &'a dyn Fn(&Run, &Key) -> Option<f64>;

const CROSS_PAIRS: [(StaticKey, StaticKey); 1] = [(
    ("mempkt read (zero-copy view)", "32768 B/record"),
    ("mempkt read", "32768 B/record (copy-out)"),
)];

fn parse(text: &str, what: &str) -> BenchResult<Run> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{what}: the JSON does not parse: {e}"))?;
    let mut run = Run::default();
    let key = |e: &serde_json::Value| {
        (
            e["name"].as_str().unwrap_or_default().to_string(),
            e["payload"].as_str().unwrap_or_default().to_string(),
        )
    };
    let results = v["results"]
        .as_array()
        .ok_or_else(|| format!("{what}: no `results` array"))?;
    for e in results {
        if let Some(x) = e["ops_per_sec"].as_f64() {
            run.ops.insert(key(e), x);
        }
    }
    for e in v["latency_results"].as_array().into_iter().flatten() {
        if let Some(x) = e["p50_us"].as_f64() {
            run.p50.insert(key(e), x);
        }
        if let Some(x) = e["p99_us"].as_f64() {
            run.p99.insert(key(e), x);
        }
    }
    Ok(run)
}

/// Runs `cmd`, then reads the JSON it wrote to `json` (or, if it wrote none, its standard
/// output); removes the file.
fn run_one(mut cmd: Command, json: &Path, what: &str) -> BenchResult<Run> {
    let _ = std::fs::remove_file(json);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let text = match std::fs::read_to_string(json) {
        Ok(t) => {
            let _ = std::fs::remove_file(json);
            t
        }
        Err(_) => String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    parse(&text, what)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Per-round ratios of the cases both sides report, in membus's order of first round.
struct Row {
    case: String,
    payload: String,
    what: &'static str,
    ratios: Vec<f64>,
}

fn rows(membus: &[Run], lib: &[Run]) -> Vec<Row> {
    let mut out = Vec::new();
    let Some(first) = membus.first() else {
        return out;
    };
    let pair = |mk: &(String, String), lk: &(String, String), what, get: Getter<'_>, flip: bool| {
        let ratios: Vec<f64> = membus
            .iter()
            .zip(lib)
            .filter_map(|(m, l)| {
                let (a, b) = (get(m, mk)?, get(l, lk)?);
                let r = if flip { b / a } else { a / b };
                r.is_finite().then_some(r)
            })
            .collect();
        (!ratios.is_empty()).then(|| Row {
            case: if mk == lk {
                mk.0.clone()
            } else {
                format!("{} vs libmembus {} {}", mk.0, lk.0, lk.1)
            },
            payload: mk.1.clone(),
            what,
            ratios,
        })
    };
    for k in first.ops.keys() {
        out.extend(pair(k, k, "ops/s", &|r, k| r.ops.get(k).copied(), false));
    }
    for ((mn, mp), (ln, lp)) in CROSS_PAIRS {
        let (mk, lk) = (
            (mn.to_string(), mp.to_string()),
            (ln.to_string(), lp.to_string()),
        );
        out.extend(pair(
            &mk,
            &lk,
            "ops/s",
            &|r, k| r.ops.get(k).copied(),
            false,
        ));
    }
    for k in first.p50.keys() {
        out.extend(pair(
            k,
            k,
            "p50 (lib÷membus)",
            &|r, k| r.p50.get(k).copied(),
            true,
        ));
        out.extend(pair(
            k,
            k,
            "p99 (lib÷membus)",
            &|r, k| r.p99.get(k).copied(),
            true,
        ));
    }
    out
}

fn table(rows: &[Row], rounds: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "--- membus ÷ libmembus, per round (alternating), and median ---\n(ops/s: membus ÷ libmembus; latency: libmembus ÷ membus, so above 1 means membus is faster)"
    );
    let cw = rows
        .iter()
        .map(|r| r.case.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let pw = rows
        .iter()
        .map(|r| r.payload.chars().count())
        .max()
        .unwrap_or(0)
        .max(7);
    let _ = writeln!(
        s,
        "{:<cw$} {:<pw$} {:<18} {:<w$} {:>7}",
        "case",
        "payload",
        "figure",
        "rounds",
        "median",
        w = 7 * rounds.max(1)
    );
    for r in rows {
        let per: String = r.ratios.iter().map(|x| format!("{x:>6.2} ")).collect();
        let _ = writeln!(
            s,
            "{:<cw$} {:<pw$} {:<18} {:<w$} {:>6.2}×",
            r.case,
            r.payload,
            r.what,
            per,
            median(&r.ratios),
            w = 7 * rounds.max(1)
        );
    }
    if rows.is_empty() {
        let _ = writeln!(s, "(no case name and payload appears in both benchmarks)");
    }
    s
}

/// Expands the argument template: whitespace-separated words, `{json}` and `{duration_ms}`
/// replaced in each.
fn expand(template: &str, json: &Path, duration_ms: u64) -> Vec<String> {
    template
        .split_whitespace()
        .map(|w| {
            w.replace("{json}", &json.to_string_lossy())
                .replace("{duration_ms}", &duration_ms.to_string())
        })
        .collect()
}

pub(crate) fn run(c: &Compare<'_>) -> BenchResult<()> {
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let mine: PathBuf = tmp.join(format!("membus-compare-{pid}-membus.json"));
    let theirs: PathBuf = tmp.join(format!("membus-compare-{pid}-libmembus.json"));
    let exe = std::env::current_exe()?;
    let (mut ms, mut ls) = (Vec::new(), Vec::new());
    for round in 0..c.rounds {
        let membus = || -> BenchResult<Run> {
            let mut cmd = Command::new(&exe);
            cmd.arg("bench")
                .arg("--duration-ms")
                .arg(c.duration_ms.to_string())
                .arg("--json")
                .arg(&mine);
            if let Some(o) = c.only {
                cmd.arg("--only").arg(o);
            }
            run_one(cmd, &mine, "membus bench")
        };
        let lib = || -> BenchResult<Run> {
            let mut cmd = Command::new(c.binary);
            cmd.args(expand(c.args, &theirs, c.duration_ms));
            run_one(cmd, &theirs, &c.binary.display().to_string())
        };
        errln!("round {} of {}", round + 1, c.rounds);
        // Alternate which side goes first, so neither always runs on a warmer machine.
        if round % 2 == 0 {
            ms.push(membus()?);
            ls.push(lib()?);
        } else {
            ls.push(lib()?);
            ms.push(membus()?);
        }
    }
    outln!("{}\n", super::cpu_line())?;
    out!("{}", table(&rows(&ms, &ls), c.rounds as usize))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = r#"{"metadata":{},"results":[
        {"name":"memmsg single writer/reader","payload":"64 B","ops_per_sec":100.0},
        {"name":"mempkt read","payload":"32768 B/record (copy-out)","ops_per_sec":50.0}],
        "latency_results":[{"name":"memmsg round-trip latency","payload":"64 B","p50_us":10.0,"p99_us":20.0}]}"#;
    const MINE: &str = r#"{"metadata":{},"results":[
        {"name":"memmsg single writer/reader","payload":"64 B","ops_per_sec":200.0},
        {"name":"mempkt read (zero-copy view)","payload":"32768 B/record","ops_per_sec":75.0},
        {"name":"only membus","payload":"x","ops_per_sec":1.0}],
        "latency_results":[{"name":"memmsg round-trip latency","payload":"64 B","p50_us":0.5,"p99_us":1.0}]}"#;

    #[test]
    fn rows_match_by_name_and_payload_and_pair_the_view_with_copy_out() {
        let m = [parse(MINE, "m").unwrap(), parse(MINE, "m").unwrap()];
        let l = [parse(LIB, "l").unwrap(), parse(LIB, "l").unwrap()];
        let rows = rows(&m, &l);
        let find = |case: &str, what: &str| {
            rows.iter()
                .find(|r| r.case.starts_with(case) && r.what.starts_with(what))
                .unwrap_or_else(|| panic!("{case} {what} missing"))
                .ratios
                .clone()
        };
        assert_eq!(find("memmsg single", "ops"), vec![2.0, 2.0]);
        assert_eq!(
            find("mempkt read (zero-copy view) vs", "ops"),
            vec![1.5, 1.5]
        );
        assert_eq!(find("memmsg round-trip", "p50"), vec![20.0, 20.0]);
        assert_eq!(find("memmsg round-trip", "p99"), vec![20.0, 20.0]);
        assert!(!rows.iter().any(|r| r.case == "only membus"));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(parse("{", "x").is_err());
        assert!(parse("{}", "x").is_err());
    }

    #[test]
    fn the_template_expands() {
        let a = expand(DEFAULT_ARGS, Path::new("/tmp/x.json"), 250);
        assert_eq!(a, ["--duration-ms", "250", "--json", "/tmp/x.json"]);
    }
}
