//! `membus bench`: the same cases as libmembus's benchmark (same workloads, names, groups
//! and payload labels, and the same JSON shape), plus cross-process cases.
//!
//! Measurement follows libmembus's `run_for`: a warm-up of max(50 ms, duration/10), then
//! operations until the duration has passed, reading the monotonic clock after every
//! operation, so per-operation clock overhead is included exactly as in libmembus's figures.
//! Latency percentiles use libmembus's index rule (`samples[p/100 · n]` of the sorted list).

mod cases;
mod compare;
mod interleave;
mod waits;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) use cases::peer;
pub(crate) use compare::{run as compare, Compare, DEFAULT_ARGS as COMPARE_ARGS};

/// Errors of the bench command: a membus error or a plain message.
pub(crate) type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One throughput case, as libmembus's `result`.
pub(crate) struct Throughput {
    pub name: String,
    pub group: &'static str,
    pub payload: String,
    pub operations: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Throughput {
    fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.operations as f64 / self.seconds
        } else {
            0.0
        }
    }
    fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / (1024.0 * 1024.0) / self.seconds
        } else {
            0.0
        }
    }
    fn ns_per_op(&self) -> f64 {
        if self.operations > 0 {
            self.seconds * 1e9 / self.operations as f64
        } else {
            0.0
        }
    }
}

/// One latency case, as libmembus's `latency_result`, samples in µs.
pub(crate) struct Latency {
    pub name: String,
    pub group: &'static str,
    pub payload: String,
    pub samples_us: Vec<f64>,
}

impl Latency {
    fn sorted(mut self) -> Latency {
        self.samples_us.sort_by(f64::total_cmp);
        self
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.samples_us.is_empty() {
            return 0.0;
        }
        let idx =
            ((p / 100.0 * self.samples_us.len() as f64) as usize).min(self.samples_us.len() - 1);
        self.samples_us[idx]
    }
    fn min(&self) -> f64 {
        self.samples_us.first().copied().unwrap_or(0.0)
    }
    fn max(&self) -> f64 {
        self.samples_us.last().copied().unwrap_or(0.0)
    }
}

/// libmembus's `run_for`: warm up, then count operations until `duration` has passed.
pub(crate) fn run_for(
    name: &str,
    group: &'static str,
    payload: &str,
    duration: Duration,
    mut op: impl FnMut() -> BenchResult<u64>,
) -> BenchResult<Throughput> {
    let warm_end = Instant::now() + (duration / 10).max(Duration::from_millis(50));
    while Instant::now() < warm_end {
        op()?;
    }
    let mut t = Throughput {
        name: name.into(),
        group,
        payload: payload.into(),
        operations: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let start = Instant::now();
    let end = start + duration;
    while Instant::now() < end {
        t.bytes += op()?;
        t.operations += 1;
    }
    t.seconds = start.elapsed().as_secs_f64();
    Ok(t)
}

/// How long a latency case may run past its duration while it still has fewer than
/// [`MIN_SAMPLES`] samples (a peer process that is slow to be scheduled on a busy machine).
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Every latency case keeps measuring past its duration until it has this many samples.
pub(crate) const MIN_SAMPLES: usize = 1;

/// The measuring window of a latency case: at least `duration`, then on until the case has
/// [`MIN_SAMPLES`] samples, but never longer than `duration` + [`GRACE`].
pub(crate) struct Window {
    start: Instant,
    duration: Duration,
}

impl Window {
    /// A window of `duration` starting now.
    pub(crate) fn new(duration: Duration) -> Window {
        Window {
            start: Instant::now(),
            duration,
        }
    }

    /// Whether to take another sample, given what `l` holds so far.
    pub(crate) fn more(&self, l: &Latency) -> bool {
        let e = self.start.elapsed();
        e < self.duration || (l.samples_us.len() < MIN_SAMPLES && e < self.duration + GRACE)
    }

    /// `l` if it has samples, else an error that says which case measured nothing and for
    /// how long it tried.
    pub(crate) fn finish(&self, l: Latency) -> BenchResult<Latency> {
        if l.samples_us.is_empty() {
            return Err(format!(
                "latency case {:?} measured no sample in {:.1} s (its peer never answered)",
                l.name,
                self.start.elapsed().as_secs_f64()
            )
            .into());
        }
        Ok(l)
    }
}

/// A unique share name for one benchmark case.
pub(crate) fn unique_name(suffix: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("/membus_bench_{}_{ns}_{suffix}", std::process::id())
}

pub(crate) fn run(duration_ms: u64, json: Option<&Path>, only: Option<&str>) -> BenchResult<()> {
    let d = Duration::from_millis(duration_ms);
    let progress = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    let mut latency = Vec::new();
    let mut interleaved = Vec::new();
    let all = cases::all();
    if let Some(o) = only {
        if !all.iter().any(|c| c.title.contains(o)) {
            let names: Vec<&str> = all.iter().map(|c| c.title).collect();
            return Err(format!(
                "--only {o:?} matches no case; the cases are:\n  {}",
                names.join("\n  ")
            )
            .into());
        }
    }
    for case in all {
        if only.is_some_and(|o| !case.title.contains(o)) {
            continue;
        }
        if progress {
            err!("\r\x1b[Krunning {} ...", case.title);
        }
        match (case.run)(d).map_err(|e| format!("case {:?}: {e}", case.title))? {
            cases::Outcome::Throughput(t) => results.push(t),
            cases::Outcome::Latency(l) => latency.push(l.sorted()),
            cases::Outcome::Interleaved(i) => {
                let (summary, rows) = interleave::Summary::of(*i);
                interleaved.push(summary);
                latency.extend(rows);
            }
        }
    }
    if progress {
        err!("\r\x1b[K");
    }
    // The JSON file is written even when standard output was closed early.
    let printed = outln!("{}\n", cpu_line())
        .and_then(|()| out!("{}", table(&results, &latency, &interleaved)));
    if let Some(path) = json {
        std::fs::write(path, to_json(duration_ms, &results, &latency, &interleaved))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        printed?;
        outln!("\nwrote {}", path.display())?;
        return Ok(());
    }
    Ok(printed?)
}

fn table(
    results: &[Throughput],
    latency: &[Latency],
    interleaved: &[interleave::Summary],
) -> String {
    let mut s = String::new();
    if !results.is_empty() {
        let _ = writeln!(s, "--- Throughput ---");
        let _ = writeln!(
            s,
            "{:<36} {:<28} {:>14} {:>12} {:>10}",
            "case", "payload", "ops/s", "MiB/s", "ns/op"
        );
        for r in results {
            let _ = writeln!(
                s,
                "{:<36} {:<28} {:>14.0} {:>12.1} {:>10.1}",
                r.name,
                r.payload,
                r.ops_per_sec(),
                r.mb_per_sec(),
                r.ns_per_op()
            );
        }
    }
    if !latency.is_empty() {
        let _ = writeln!(s, "\n--- Latency (µs) ---");
        // The case column is as wide as the longest name (at least 44), so columns align.
        let w = latency
            .iter()
            .map(|l| l.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(44);
        let _ = writeln!(
            s,
            "{:<w$} {:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "case", "payload", "samples", "p50", "p95", "p99", "p99.9", "min", "max"
        );
        for l in latency {
            let _ = writeln!(
                s,
                "{:<w$} {:<8} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.1}",
                l.name,
                l.payload,
                l.samples_us.len(),
                l.percentile(50.0),
                l.percentile(95.0),
                l.percentile(99.0),
                l.percentile(99.9),
                l.min(),
                l.max()
            );
        }
    }
    for i in interleaved {
        let _ = write!(s, "\n{}", i.text());
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn system_info() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "Linux {} {}",
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

/// The CPU and the copy strategy membus chose for it, one line for the human output.
pub(crate) fn cpu_line() -> String {
    let st = membus::copy_strategy();
    let c = &st.cpu;
    let mut s = format!(
        "CPU: {} ({}, family {:#x} model {:#x}), flags: {}, L2 {} KiB, L3 {} KiB shared by {}; copies: {st}",
        if c.model.is_empty() {
            "unknown model"
        } else {
            &c.model
        },
        c.vendor,
        c.family,
        c.model_number,
        c.flags(),
        c.l2 / 1024,
        c.l3 / 1024,
        c.l3_sharing
    );
    if let Some(e) = &st.override_error {
        let _ = write!(s, "\nwarning: {e}");
    }
    s
}

/// The `cpu` object of the JSON metadata.
fn cpu_json() -> String {
    let st = membus::copy_strategy();
    let c = &st.cpu;
    format!(
        "{{\"vendor\":{},\"model\":{},\"family\":{},\"model_number\":{},\"flags\":{},\"l2_bytes\":{},\"l3_bytes\":{},\"l3_sharing\":{},\"copy_strategy\":{},\"copy_plan\":{},\"copy_forced\":{}}}",
        json_str(&c.vendor),
        json_str(&c.model),
        c.family,
        c.model_number,
        json_str(&c.flags()),
        c.l2,
        c.l3,
        c.l3_sharing,
        json_str(&st.to_string()),
        json_str(st.plan.name()),
        st.forced
    )
}

/// JSON in libmembus's benchmark shape (`metadata`, `results`, `latency_results`), with one
/// extra latency field, `p999_us`, one extra metadata object, `cpu` (vendor, model, flags,
/// cache sizes and the copy strategy in force), and one extra array, `interleaved_results`
/// (each interleaved case's per-slice ratios and both sides' tails; its two sides are also
/// rows of `latency_results`).
fn to_json(
    duration_ms: u64,
    results: &[Throughput],
    latency: &[Latency],
    interleaved: &[interleave::Summary],
) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "{{\n  \"metadata\": {{");
    let _ = writeln!(s, "    \"duration_ms\": {duration_ms},");
    let _ = writeln!(s, "    \"system\": {},", json_str(&system_info()));
    let _ = writeln!(s, "    \"cpu\": {},", cpu_json());
    let _ = writeln!(s, "    \"timestamp_unix\": {ts}\n  }},");
    let _ = writeln!(s, "  \"results\": [");
    for (i, r) in results.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"name\":{},\"group\":{},\"payload\":{},\"operations\":{},\"bytes\":{},\"seconds\":{},\"ops_per_sec\":{},\"mb_per_sec\":{},\"ns_per_op\":{}}}",
            json_str(&r.name),
            json_str(r.group),
            json_str(&r.payload),
            r.operations,
            r.bytes,
            r.seconds,
            r.ops_per_sec(),
            r.mb_per_sec(),
            r.ns_per_op()
        );
        s.push_str(if i + 1 < results.len() { ",\n" } else { "\n" });
    }
    let _ = writeln!(s, "  ],\n  \"latency_results\": [");
    for (i, l) in latency.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"name\":{},\"group\":{},\"payload\":{},\"samples\":{},\"p50_us\":{},\"p95_us\":{},\"p99_us\":{},\"p999_us\":{},\"min_us\":{},\"max_us\":{}}}",
            json_str(&l.name),
            json_str(l.group),
            json_str(&l.payload),
            l.samples_us.len(),
            l.percentile(50.0),
            l.percentile(95.0),
            l.percentile(99.0),
            l.percentile(99.9),
            l.min(),
            l.max()
        );
        s.push_str(if i + 1 < latency.len() { ",\n" } else { "\n" });
    }
    let _ = writeln!(s, "  ],\n  \"interleaved_results\": [");
    for (i, x) in interleaved.iter().enumerate() {
        let _ = write!(s, "    {}", x.json());
        s.push_str(if i + 1 < interleaved.len() {
            ",\n"
        } else {
            "\n"
        });
    }
    let _ = writeln!(s, "  ]\n}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_libmembus_index_rule() {
        let l = Latency {
            name: "x".into(),
            group: "g",
            payload: "p".into(),
            samples_us: (1..=100).map(f64::from).collect(),
        }
        .sorted();
        assert_eq!(l.percentile(50.0), 51.0);
        assert_eq!(l.percentile(99.0), 100.0);
        assert_eq!(l.percentile(99.9), 100.0);
        assert_eq!(l.min(), 1.0);
        assert_eq!(l.max(), 100.0);
        let empty = Latency {
            name: "x".into(),
            group: "g",
            payload: "p".into(),
            samples_us: vec![],
        };
        assert_eq!(empty.percentile(50.0), 0.0);
    }

    #[test]
    fn latency_columns_align_past_long_names() {
        let row = |name: &str| Latency {
            name: name.into(),
            group: "g",
            payload: "64 B".into(),
            samples_us: vec![1.0, 2.0],
        };
        let long = "a latency case whose name is longer than forty-four chars (µs)";
        let t = table(&[], &[row("short"), row(long)], &[]);
        let at: Vec<usize> = t
            .lines()
            .filter(|l| l.contains("64 B") || l.contains("payload"))
            .map(|l| {
                let byte = l.find("64 B").or_else(|| l.find("payload")).unwrap();
                l[..byte].chars().count()
            })
            .collect();
        assert_eq!(at.len(), 3, "{t}");
        assert!(at.iter().all(|&c| c == long.chars().count() + 1), "{t}");
    }

    #[test]
    fn json_has_libmembus_shape_and_escapes() {
        let r = Throughput {
            name: "a\"b".into(),
            group: "g",
            payload: "64 B".into(),
            operations: 10,
            bytes: 640,
            seconds: 2.0,
        };
        let j = to_json(5, &[r], &[], &[]);
        assert!(j.contains("\"name\":\"a\\\"b\""), "{j}");
        assert!(j.contains("\"ops_per_sec\":5,"), "{j}");
        assert!(j.contains("\"ns_per_op\":200000000}"), "{j}");
        assert!(j.contains("\"latency_results\": ["));
    }
}
