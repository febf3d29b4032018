//! The results report of a run: `index.html` (verdict, parameters, per-operation statistics,
//! checker results, fault intervals, links to the run's files) and two hand-written SVG plots,
//! throughput and latency over time, with the nemesis's faults shaded behind them.
//! Self-contained: no scripts, no external resources.

use crate::history::{pairs, Entry, OpType, Process};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// A fault interval, from the nemesis's entries.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fault {
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub detail: String,
}

/// Pairs each nemesis `start-<kind>` with the next `stop-<kind>` of the same kind, in order.
/// A start never stopped lasts until the end of the history; a stop with nothing open is
/// ignored. The detail is the start's value as text. Sorted by start time.
pub fn fault_intervals(ops: &[Entry]) -> Vec<Fault> {
    let end = ops.iter().map(|o| o.time).max().unwrap_or(0);
    let (mut open, mut out): (Vec<Fault>, Vec<Fault>) = Default::default();
    let nemesis = |o: &&Entry| matches!(o.process, Process::Nemesis(_)) && o.kind != OpType::Invoke;
    for op in ops.iter().filter(nemesis) {
        if let Some(kind) = op.f.strip_prefix("start-") {
            let (kind, detail) = (kind.to_owned(), value_text(&op.value));
            open.push(Fault {
                kind,
                start_ns: op.time,
                end_ns: end,
                detail,
            });
        } else if let Some(kind) = op.f.strip_prefix("stop-") {
            if let Some(i) = open.iter().position(|f| f.kind == kind) {
                out.push(Fault {
                    end_ns: op.time,
                    ..open.remove(i)
                });
            }
        }
    }
    out.extend(open);
    out.iter_mut()
        .for_each(|f| f.end_ns = f.end_ns.max(f.start_ns));
    out.sort_by(|a, b| (a.start_ns, &a.kind).cmp(&(b.start_ns, &b.kind)));
    out
}

// ---------------------------------------------------------------------------------------------
// Plots.

const W: f64 = 900.0;
const H: f64 = 360.0;
const LEFT: f64 = 66.0;
const TOP: f64 = 34.0;
const PW: f64 = 670.0;
const PH: f64 = 280.0;
/// Most latency points drawn; beyond it they are sampled evenly.
const MAX_POINTS: usize = 20_000;
/// Outcomes in plotting order: label and color.
const OUTCOMES: [(&str, &str); 3] = [("ok", "#2ca02c"), ("fail", "#e8590c"), ("info", "#8c8c8c")];
const MID: &str = "text-anchor=\"middle\"";
const NO_OPS: &str = "no completed client operations";
const DASH: &str = " stroke-dasharray=\"4 3\"";

fn outcome_index(kind: OpType) -> usize {
    match kind {
        OpType::Ok => 0,
        OpType::Fail => 1,
        _ => 2,
    }
}

fn fault_color(kind: &str) -> &'static str {
    match kind {
        "partition" => "#4e79a7",
        "loss" => "#b07aa1",
        "kill" => "#d62728",
        "pause" => "#17becf",
        "membership" => "#edc948",
        _ => "#9e9e9e",
    }
}

/// Escapes text for HTML and XML (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as plain text: strings as themselves, null as nothing, the rest as JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `v` (> 0).
fn nice_ceil(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    let n = [1.0, 2.0, 5.0].into_iter().find(|&n| v / mag <= n + 1e-9);
    mag * n.unwrap_or(10.0)
}

/// An axis from 0 covering `max` and ending on a tick: (axis max, tick step).
fn nice_axis(max: f64) -> (f64, f64) {
    let step = nice_ceil(max.max(1e-9) / 8.0);
    ((max / step - 1e-9).ceil().max(1.0) * step, step)
}

fn decimals(step: f64) -> usize {
    (-step.log10() - 1e-9).ceil().max(0.0) as usize
}

/// Seconds the plots cover: the history and every fault, or 1 s if that is nothing.
fn span_s(ops: &[Entry], faults: &[Fault]) -> f64 {
    let ends = ops
        .iter()
        .map(|o| o.time)
        .chain(faults.iter().map(|f| f.end_ns));
    let s = ends.max().unwrap_or(0) as f64 / 1e9;
    if s > 0.0 {
        s
    } else {
        1.0
    }
}

/// Bucket width in seconds: 1 s, finer for short runs, coarser for long ones; and the count.
fn buckets(span: f64) -> (f64, usize) {
    let width = nice_ceil((span / 600.0).max((span / 20.0).min(1.0)));
    (width, ((span / width - 1e-9).ceil() as usize).max(1))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Indices of at most `cap` items out of `n`, spread evenly.
fn sample_indices(n: usize, cap: usize) -> Vec<usize> {
    (0..n.min(cap)).map(|i| i * n / n.min(cap)).collect()
}

fn text(s: &mut String, x: f64, y: f64, attrs: &str, body: &str) {
    let body = esc(body);
    let _ = writeln!(s, "<text x=\"{x:.1}\" y=\"{y:.1}\" {attrs}>{body}</text>");
}

fn line(s: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
    let (a, b) = (
        format!("x1=\"{x1:.1}\" y1=\"{y1:.1}\""),
        format!("x2=\"{x2:.1}\" y2=\"{y2:.1}\""),
    );
    let _ = writeln!(s, "<line {a} {b} {attrs}/>");
}

fn path(s: &mut String, d: &str, color: &str, dashed: bool) {
    let dash = if dashed { DASH } else { "" };
    let style = format!("fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"{dash}");
    let _ = writeln!(s, "<path d=\"{d}\" {style}/>");
}

/// Appends one marker's subpath; shape 0 is a dot, drawn by a round line cap.
fn marker(d: &mut String, shape: usize, x: f64, y: f64) {
    let _ = match shape % 5 {
        0 => write!(d, "M{x:.1} {y:.1}h0"),
        1 => write!(d, "M{:.1} {:.1}h4v4h-4z", x - 2.0, y - 2.0),
        2 => write!(d, "M{x:.1} {:.1}l3 5h-6z", y - 3.0),
        3 => write!(d, "M{x:.1} {:.1}l3 3-3 3-3-3z", y - 3.0),
        _ => write!(d, "M{x:.1} {:.1}l3-5h-6z", y + 3.0),
    };
}

/// A path of markers of one shape and color.
fn markers(s: &mut String, shape: usize, color: &str, d: &str, opacity: f64) {
    let style = if shape.is_multiple_of(5) {
        format!("fill=\"none\" stroke=\"{color}\" stroke-width=\"5\" stroke-linecap=\"round\" stroke-opacity=\"{opacity}\"")
    } else {
        format!("fill=\"{color}\" fill-opacity=\"{opacity}\"")
    };
    let _ = writeln!(s, "<path d=\"{d}\" {style}/>");
}

enum Swatch {
    Line(&'static str, bool),
    Area(&'static str),
    Marker(usize, &'static str),
}

/// Legend entries for the fault kinds present, in order of first appearance.
fn fault_legend(faults: &[Fault]) -> Vec<(Swatch, String)> {
    let mut kinds: Vec<&str> = Vec::new();
    for f in faults {
        if !kinds.contains(&f.kind.as_str()) {
            kinds.push(&f.kind);
        }
    }
    let entry = |k: &str| (Swatch::Area(fault_color(k)), format!("fault: {k}"));
    kinds.into_iter().map(entry).collect()
}

enum YScale {
    /// Axis max and tick step.
    Linear(f64, f64),
    /// From 10^lo to 10^hi.
    Log(i32, i32),
}

struct Frame {
    x_max: f64,
    x_step: f64,
    y: YScale,
}

impl Frame {
    fn new(span: f64, y: YScale) -> Frame {
        let (x_max, x_step) = nice_axis(span);
        Frame { x_max, x_step, y }
    }

    fn x(&self, s: f64) -> f64 {
        LEFT + (s / self.x_max).clamp(0.0, 1.0) * PW
    }

    fn y(&self, v: f64) -> f64 {
        let frac = match self.y {
            YScale::Linear(max, _) => v / max,
            YScale::Log(lo, hi) => (v.max(1e-12).log10() - lo as f64) / (hi - lo) as f64,
        };
        TOP + PH - frac.clamp(0.0, 1.0) * PH
    }

    /// The opening tag, background, title, fault shading, grid, ticks and axis titles.
    fn begin(&self, title: &str, y_title: &str, faults: &[Fault]) -> String {
        let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>");
        let bold = "font-size=\"14\" font-weight=\"bold\"";
        text(&mut s, LEFT, 20.0, bold, title);
        for f in faults {
            let x0 = self.x(f.start_ns as f64 / 1e9);
            let x1 = self.x(f.end_ns as f64 / 1e9);
            let (w, color) = ((x1 - x0).max(1.0), fault_color(&f.kind));
            let tip = esc(&format!("{}: {}", f.kind, f.detail));
            let _ = writeln!(s, "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{w:.1}\" height=\"{PH}\" fill=\"{color}\" fill-opacity=\"0.18\"><title>{tip}</title></rect>");
        }
        let grid = "stroke=\"#dddddd\" stroke-width=\"0.5\"";
        let (bottom, right, xd) = (TOP + PH, LEFT + PW, decimals(self.x_step));
        for i in 0..=(self.x_max / self.x_step + 1e-9) as usize {
            let t = i as f64 * self.x_step;
            line(&mut s, (self.x(t), TOP), (self.x(t), bottom), grid);
            text(&mut s, self.x(t), bottom + 15.0, MID, &format!("{t:.xd$}"));
        }
        let y_ticks: Vec<(f64, usize)> = match self.y {
            YScale::Linear(max, step) => (0..=(max / step + 1e-9) as usize)
                .map(|k| (k as f64 * step, decimals(step)))
                .collect(),
            YScale::Log(lo, hi) => (lo..=hi)
                .map(|e| (10f64.powi(e), (-e).max(0) as usize))
                .collect(),
        };
        for (v, d) in y_ticks {
            let y = self.y(v);
            line(&mut s, (LEFT, y), (right, y), grid);
            let label = format!("{v:.d$}");
            text(&mut s, LEFT - 5.0, y + 4.0, "text-anchor=\"end\"", &label);
        }
        let x_title = "time since start (s)";
        text(&mut s, LEFT + PW / 2.0, H - 8.0, MID, x_title);
        let rotate = format!("{MID} transform=\"rotate(-90 16 {})\"", TOP + PH / 2.0);
        text(&mut s, 16.0, TOP + PH / 2.0, &rotate, y_title);
        s
    }

    /// The frame's border, an optional note in its middle, the legend and the closing tag.
    fn finish(&self, mut s: String, note: Option<&str>, legend: &[(Swatch, String)]) -> String {
        let border = "fill=\"none\" stroke=\"#444444\"";
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\" {border}/>"
        );
        if let Some(note) = note {
            let attrs = format!("{MID} font-size=\"14\" fill=\"#666666\"");
            text(&mut s, LEFT + PW / 2.0, TOP + PH / 2.0, &attrs, note);
        }
        let x = LEFT + PW + 14.0;
        for (i, (swatch, label)) in legend.iter().enumerate() {
            let y = TOP + 8.0 + i as f64 * 16.0;
            match swatch {
                Swatch::Line(color, dashed) => {
                    path(&mut s, &format!("M{x} {y}h18"), color, *dashed);
                }
                Swatch::Area(color) => {
                    let _ = writeln!(s, "<rect x=\"{x}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"{color}\" fill-opacity=\"0.35\"/>", y - 5.0);
                }
                Swatch::Marker(shape, color) => {
                    let mut d = String::new();
                    marker(&mut d, *shape, x + 9.0, y);
                    markers(&mut s, *shape, color, &d, 1.0);
                }
            }
            let label: String = label.chars().take(24).collect();
            text(&mut s, x + 24.0, y + 4.0, "", &label);
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Completed client operations per second over time, one line per outcome (ok green, fail
/// orange, info grey), with the fault intervals shaded behind.
pub fn throughput_svg(ops: &[Entry], faults: &[Fault]) -> String {
    let span = span_s(ops, faults);
    let (width, n) = buckets(span);
    let mut counts = vec![[0u64; 3]; n];
    let done: Vec<&Entry> = pairs(ops).iter().filter_map(|p| p.complete).collect();
    for c in &done {
        let i = ((c.time as f64 / 1e9 / width) as usize).min(n - 1);
        counts[i][outcome_index(c.kind)] += 1;
    }
    let max_rate = counts.iter().flatten().copied().max().unwrap_or(0) as f64 / width;
    let (y_max, y_step) = nice_axis(max_rate.max(1.0));
    let frame = Frame::new(span, YScale::Linear(y_max, y_step));
    let title = format!("Throughput ({width} s buckets)");
    let mut s = frame.begin(&title, "completed ops/s", faults);
    for (k, (_, color)) in OUTCOMES.iter().enumerate().filter(|_| !done.is_empty()) {
        let rate = |i: usize| frame.y(counts[i][k] as f64 / width);
        let mut d = format!("M{:.1} {:.1}", frame.x(0.0), rate(0));
        for i in 0..n {
            let _ = write!(d, "H{:.1}", frame.x((i + 1) as f64 * width));
            if i + 1 < n {
                let _ = write!(d, "V{:.1}", rate(i + 1));
            }
        }
        path(&mut s, &d, color, false);
    }
    let entry = |(l, c): &(&str, &'static str)| (Swatch::Line(c, false), (*l).to_owned());
    let mut legend: Vec<(Swatch, String)> = OUTCOMES.iter().map(entry).collect();
    legend.extend(fault_legend(faults));
    frame.finish(s, done.is_empty().then_some(NO_OPS), &legend)
}

/// Latency of each completed client operation at its invocation time, on a log scale in ms
/// (clamped to at least 0.01 ms), colored by outcome, one marker shape per `f`; p50 and p99 per
/// time bucket as lines; faults shaded behind. At most `MAX_POINTS` points, sampled evenly.
pub fn latency_svg(ops: &[Entry], faults: &[Fault]) -> String {
    let mut fs: Vec<&str> = Vec::new();
    let mut points: Vec<(f64, f64, usize, usize)> = Vec::new(); // (s, ms, outcome, shape)
    for p in pairs(ops) {
        let Some(c) = p.complete else { continue };
        let shape = fs.iter().position(|f| *f == p.invoke.f).unwrap_or_else(|| {
            fs.push(&p.invoke.f);
            fs.len() - 1
        });
        let ms = (c.time.saturating_sub(p.invoke.time) as f64 / 1e6).max(0.01);
        points.push((p.invoke.time as f64 / 1e9, ms, outcome_index(c.kind), shape));
    }
    let span = span_s(ops, faults);
    let lo = points.iter().map(|p| p.1).reduce(f64::min).unwrap_or(0.1);
    let hi = points
        .iter()
        .map(|p| p.1)
        .reduce(f64::max)
        .unwrap_or(1000.0);
    let (lo, hi) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let frame = Frame::new(span, YScale::Log(lo, hi.max(lo + 1)));
    let title = "Latency of completed operations";
    let mut s = frame.begin(title, "latency (ms, log scale)", faults);

    let mut paths: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for i in sample_indices(points.len(), MAX_POINTS) {
        let (t, ms, outcome, shape) = points[i];
        let d = paths.entry((outcome, shape % 5)).or_default();
        marker(d, shape, frame.x(t), frame.y(ms));
    }
    for ((outcome, shape), d) in &paths {
        markers(&mut s, *shape, OUTCOMES[*outcome].1, d, 0.55);
    }

    let (width, n) = buckets(span);
    let mut by_bucket: Vec<Vec<f64>> = vec![Vec::new(); n];
    for &(t, ms, _, _) in &points {
        by_bucket[((t / width) as usize).min(n - 1)].push(ms);
    }
    by_bucket.iter_mut().for_each(|b| b.sort_by(f64::total_cmp));
    let lines = [(0.5, "#1f3b73", false), (0.99, "#6a3d9a", true)];
    for (p, color, dashed) in lines.into_iter().filter(|_| !points.is_empty()) {
        let mut d = String::new();
        let mut prev = false;
        for (i, b) in by_bucket.iter().enumerate() {
            if let Some(v) = percentile(b, p) {
                let (x, y) = (frame.x((i as f64 + 0.5) * width), frame.y(v));
                let _ = write!(d, "{}{x:.1} {y:.1}", if prev { 'L' } else { 'M' });
            }
            prev = !b.is_empty();
        }
        path(&mut s, &d, color, dashed);
    }

    let entry = |(l, c): &(&str, &'static str)| (Swatch::Marker(0, c), (*l).to_owned());
    let mut legend: Vec<(Swatch, String)> = OUTCOMES.iter().map(entry).collect();
    legend.push((Swatch::Line(lines[0].1, false), "p50 per bucket".into()));
    legend.push((Swatch::Line(lines[1].1, true), "p99 per bucket".into()));
    for (i, f) in fs.iter().enumerate().take(5) {
        legend.push((Swatch::Marker(i, "#333333"), format!("f: {f}")));
    }
    legend.extend(fault_legend(faults));
    let note = match points.len() {
        0 => Some(NO_OPS.to_owned()),
        k if k > MAX_POINTS => Some(format!("{MAX_POINTS} of {k} points shown")),
        _ => None,
    };
    frame.finish(s, note.as_deref(), &legend)
}

// ---------------------------------------------------------------------------------------------
// The page.

const CSS: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{margin:2px 0;font-size:12px;max-width:80em;overflow-x:auto;background:#f8f8f8}\
.badge{display:inline-block;padding:0.3em 1em;border-radius:0.3em;color:#fff;font-weight:bold}\
.big{font-size:2em}.valid{background:#2e7d32}.invalid{background:#c62828}.unknown{background:#ef8f00}\
.sw{display:inline-block;width:1em;height:1em;opacity:0.5;margin-right:0.4em}\
img{max-width:100%;border:1px solid #ddd}";

/// "valid", "invalid" or "unknown", from a string (any case, a leading `:` allowed) or a bool.
fn verdict_of(v: &Value) -> &'static str {
    let s = match v {
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.trim_start_matches(':').to_ascii_lowercase(),
        _ => String::new(),
    };
    match s.as_str() {
        "valid" | "true" => "valid",
        "invalid" | "false" => "invalid",
        _ => "unknown",
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 1000.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A table row of already-escaped cells; those starting with a digit are right-aligned.
fn row(h: &mut String, tag: &str, cells: &[String]) {
    h.push_str("<tr>");
    for c in cells {
        let num = c.starts_with(|ch: char| ch.is_ascii_digit()) && tag == "td";
        let class = if num { " class=\"n\"" } else { "" };
        let _ = write!(h, "<{tag}{class}>{c}</{tag}>");
    }
    h.push_str("</tr>\n");
}

/// Opens a table with a header row of the `|`-separated column names.
fn head(h: &mut String, columns: &str) {
    h.push_str("<table>\n");
    row(h, "th", &columns.split('|').map(esc).collect::<Vec<_>>());
}

/// `n<digits>/node.log` under `dir`, in node order.
fn node_logs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found: Vec<(u64, String)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(Ok(n)) = name.strip_prefix('n').map(str::parse::<u64>) else {
            continue;
        };
        let digits = name[1..].bytes().all(|b| b.is_ascii_digit());
        if digits && dir.join(&name).join("node.log").is_file() {
            found.push((n, format!("{name}/node.log")));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Test parameters shown first, in this order; the others follow.
const PREFERRED: &str = "workload nemesis nodes time_limit_s concurrency seed started_at";

fn index_html(ops: &[Entry], test: &Value, results: &Value, logs: &[String]) -> String {
    let verdict = verdict_of(&results["valid"]);
    let loud = verdict.to_uppercase();
    let workload = match &test["workload"] {
        Value::Null => "ledger".to_owned(),
        v => esc(&value_text(v)),
    };
    let mut h = format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{workload} — {loud}</title><style>{CSS}</style></head><body>\n<h1>Jepsen run: {workload}</h1>\n<p><span class=\"badge big {verdict}\">{loud}</span></p>\n<h2>Test</h2>\n");

    head(&mut h, "parameter|value");
    let empty = serde_json::Map::new();
    let map = test.as_object().unwrap_or(&empty);
    let mut keys: Vec<&str> = PREFERRED
        .split(' ')
        .filter(|k| map.contains_key(*k))
        .collect();
    keys.extend(
        map.keys()
            .map(String::as_str)
            .filter(|k| !PREFERRED.split(' ').any(|p| p == *k)),
    );
    for k in keys {
        row(&mut h, "td", &[esc(k), esc(&value_text(&map[k]))]);
    }
    if !test.is_object() {
        row(
            &mut h,
            "td",
            &["(not an object)".into(), esc(&test.to_string())],
        );
    }

    // Per f: invocations, [ok, fail, info] (never completed counts as info), latencies.
    let mut stats: BTreeMap<String, (u64, [u64; 3], Vec<f64>)> = BTreeMap::new();
    let mut all = (0, [0; 3], Vec::new());
    for p in pairs(ops) {
        for st in [stats.entry(esc(&p.invoke.f)).or_default(), &mut all] {
            st.0 += 1;
            st.1[outcome_index(p.outcome())] += 1;
            if let Some(c) = p.complete {
                st.2.push(c.time.saturating_sub(p.invoke.time) as f64 / 1e6);
            }
        }
    }
    h.push_str("</table>\n<h2>Operations</h2>\n<p>Latency in ms of completed client operations, whatever their outcome; an operation never completed counts as info.</p>\n");
    head(&mut h, "f|invoked|ok|fail|info|p50|p90|p99|max");
    let mut rows: Vec<_> = stats.into_iter().collect();
    rows.push(("<b>all</b>".into(), all));
    for (f, (n, c, mut lat)) in rows {
        lat.sort_by(f64::total_cmp);
        let mut cells = vec![f, n.to_string()];
        cells.extend(c.iter().map(u64::to_string));
        cells.extend([0.5, 0.9, 0.99, 1.0].map(|p| fmt_ms(percentile(&lat, p))));
        row(&mut h, "td", &cells);
    }

    h.push_str("</table>\n<h2>Checkers</h2>\n");
    head(&mut h, "checker|valid|errors and other fields");
    for (name, c) in results["checkers"].as_object().unwrap_or(&empty) {
        let v = verdict_of(&c["valid"]);
        let mut details = String::new();
        if let Some(errors) = c["errors"].as_array() {
            let (n, shown) = (errors.len(), errors.len().min(20));
            let _ = write!(details, "<p>{n} error(s), {shown} shown</p>");
            for e in errors.iter().take(20) {
                let _ = write!(details, "<pre>{}</pre>", esc(&pretty(e)));
            }
        }
        let mut others = c.as_object().cloned().unwrap_or_default();
        others.retain(|k, _| k != "valid" && k != "errors");
        if !others.is_empty() {
            let others = esc(&pretty(&Value::Object(others)));
            let _ = write!(
                details,
                "<details><summary>other fields</summary><pre>{others}</pre></details>"
            );
        }
        let badge = format!("<span class=\"badge {v}\">{v}</span>");
        row(&mut h, "td", &[esc(name), badge, details]);
    }

    h.push_str("</table>\n<h2>Faults</h2>\n");
    head(&mut h, "kind|start (s)|end (s)|duration (s)|detail");
    for f in &fault_intervals(ops) {
        let (a, b) = (f.start_ns as f64 / 1e9, f.end_ns as f64 / 1e9);
        let color = fault_color(&f.kind);
        let swatch = format!("<span class=\"sw\" style=\"background:{color}\"></span>");
        let times = [a, b, b - a].map(|t| format!("{t:.3}"));
        let mut cells = vec![swatch + &esc(&f.kind)];
        cells.extend(times);
        cells.push(esc(&f.detail));
        row(&mut h, "td", &cells);
    }

    h.push_str("</table>\n<h2>Plots</h2>\n<p><img src=\"throughput.svg\" alt=\"throughput over time\"/></p>\n<p><img src=\"latency.svg\" alt=\"latency over time\"/></p>\n<h2>Files</h2>\n<ul>\n");
    let files = ["history.edn", "history.jsonl", "results.json", "test.json"];
    for f in files.into_iter().chain(logs.iter().map(String::as_str)) {
        let _ = writeln!(h, "<li><a href=\"{0}\">{0}</a></li>", esc(f));
    }
    h.push_str("</ul>\n</body></html>\n");
    h
}

/// Writes `throughput.svg`, `latency.svg` and `index.html` into `dir` (created if missing).
/// `results` is the run's results.json, `test` its test.json; node logs are linked if found as
/// `n<digits>/node.log` under `dir` now.
pub fn write_report(
    dir: &Path,
    ops: &[Entry],
    test: &Value,
    results: &Value,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let faults = fault_intervals(ops);
    std::fs::write(dir.join("throughput.svg"), throughput_svg(ops, &faults))?;
    std::fs::write(dir.join("latency.svg"), latency_svg(ops, &faults))?;
    let html = index_html(ops, test, results, &node_logs(dir)?);
    std::fs::write(dir.join("index.html"), html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: OpType, f: &str, process: Process, ms: u64) -> Entry {
        let (value, time) = (json!(format!("{f}@{ms}")), ms * 1_000_000);
        Entry {
            index: 0,
            kind,
            f: f.into(),
            value,
            process,
            time,
            error: None,
        }
    }

    /// Nemesis entries at the given (f, ms); a client op invoked every 10 ms, taking
    /// `latency_ms`, ending ok, fail, info in turn (transfer, read, transfer).
    fn history(nemesis: &[(&str, u64)], clients: u64, latency_ms: u64) -> Vec<Entry> {
        let mut ops: Vec<Entry> = nemesis
            .iter()
            .map(|&(f, t)| op(OpType::Info, f, Process::NEMESIS, t))
            .collect();
        for i in 0..clients {
            let (f, kind) = [
                ("transfer", OpType::Ok),
                ("read", OpType::Fail),
                ("transfer", OpType::Info),
            ][i as usize % 3];
            ops.push(op(OpType::Invoke, f, Process::Client(i), i * 10));
            ops.push(op(kind, f, Process::Client(i), i * 10 + latency_ms));
        }
        ops.sort_by_key(|o| o.time);
        ops.iter_mut()
            .enumerate()
            .for_each(|(i, o)| o.index = i as u64);
        ops
    }

    /// A minimal XML well-formedness check: tags nest, attribute quotes pair up, entities are
    /// known. Returns the number of elements.
    fn well_formed(xml: &str) -> Result<usize, String> {
        let entities = ["amp;", "lt;", "gt;", "quot;", "#39;"];
        let entities_ok = |s: &str| {
            s.split('&')
                .skip(1)
                .all(|r| entities.iter().any(|e| r.starts_with(e)))
        };
        let (mut stack, mut rest, mut count) = (Vec::new(), xml, 0);
        while let Some(i) = rest.find('<') {
            let j = i + rest[i..].find('>').ok_or("unclosed tag")?;
            let tag = &rest[i + 1..j];
            if !entities_ok(&rest[..j]) || tag.contains('<') || tag.matches('"').count() % 2 != 0 {
                return Err(format!("bad text or tag before <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name) {
                    return Err(format!("unbalanced </{name}>"));
                }
            } else if !tag.starts_with(['!', '?']) {
                count += 1;
                if !tag.ends_with('/') {
                    stack.push(tag.split_whitespace().next().unwrap_or(""));
                }
            }
            rest = &rest[j + 1..];
        }
        match stack.is_empty() && !rest.contains('>') {
            true => Ok(count),
            false => Err(format!("unclosed {stack:?}")),
        }
    }

    fn check_svg(svg: &str) {
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        assert!(well_formed(svg).unwrap_or_else(|e| panic!("{e}\n{svg}")) > 10);
        let inf_ok = svg
            .match_indices("inf")
            .all(|(i, _)| svg[i..].starts_with("info"));
        assert!(!svg.contains("NaN") && inf_ok, "{svg}");
    }

    #[test]
    fn the_checker_rejects_malformed_xml() {
        assert!(well_formed("<a><b></a>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
        assert!(well_formed("<a x=\"1></a>").is_err());
        assert!(well_formed("<a><b>").is_err());
        assert_eq!(well_formed("<a><b/><c>&amp;</c></a>"), Ok(3));
    }

    #[test]
    fn faults_pair_by_kind_in_order_and_unmatched_starts_last_to_the_end() {
        let nemesis = [
            ("stop-pause", 5), // nothing open: ignored
            ("start-partition", 100),
            ("start-kill", 200),
            ("stop-partition", 300),
            ("stop-kill", 400),
            ("start-loss", 450),
            ("stop-loss", 460),
            ("start-loss", 470),
            ("stop-loss", 480),
            ("start-partition", 500),
        ];
        let ops = history(&nemesis, 100, 3);
        let end = ops.last().unwrap().time;
        assert_eq!(end, 993_000_000);
        let faults = fault_intervals(&ops);
        let got: Vec<(&str, u64, u64)> = faults
            .iter()
            .map(|f| (f.kind.as_str(), f.start_ns / 1_000_000, f.end_ns))
            .collect();
        let want = [
            ("partition", 100, 300_000_000),
            ("kill", 200, 400_000_000),
            ("loss", 450, 460_000_000),
            ("loss", 470, 480_000_000),
            ("partition", 500, end),
        ];
        assert_eq!(got, want);
        assert_eq!(faults[0].detail, "start-partition@100");
        let mut object = op(OpType::Info, "start-membership", Process::NEMESIS, 1);
        object.value = json!({"remove": "n3"});
        assert_eq!(fault_intervals(&[object])[0].detail, "{\"remove\":\"n3\"}");
        assert!(fault_intervals(&[]).is_empty());
    }

    #[test]
    fn the_plots_shade_faults_and_are_well_formed() {
        let ops = history(
            &[
                ("start-partition", 100),
                ("stop-partition", 300),
                ("start-weird", 350),
            ],
            300,
            7,
        );
        let faults = fault_intervals(&ops);
        assert_eq!(faults.len(), 2);
        for svg in [throughput_svg(&ops, &faults), latency_svg(&ops, &faults)] {
            check_svg(&svg);
            assert_eq!(svg.matches("<rect class=\"fault\"").count(), 2);
            assert!(svg.contains("fill=\"#4e79a7\" fill-opacity=\"0.18\""));
            assert!(
                svg.contains("fill=\"#9e9e9e\" fill-opacity=\"0.18\""),
                "unknown kinds are grey"
            );
            assert!(svg.contains(">fault: weird</text>") && !svg.contains(NO_OPS));
        }
        let lat = latency_svg(&ops, &faults);
        assert!(lat.contains(">p99 per bucket</text>") && lat.contains(DASH));
        // Transfers (ok, info) are dots, reads (fail) squares: every outcome's color is drawn.
        let dots = |c: &str| format!("stroke=\"{c}\" stroke-width=\"5\" stroke-linecap=\"round\"");
        assert!(lat.contains(&dots("#2ca02c")) && lat.contains(&dots("#8c8c8c")));
        assert!(lat.contains("fill=\"#e8590c\" fill-opacity=\"0.55\""));
        assert!(lat.contains(">f: transfer</text>") && lat.contains(">f: read</text>"));
    }

    #[test]
    fn edge_cases_still_draw() {
        let zero_latency = history(&[], 4, 0);
        let mut zero_time = zero_latency.clone();
        zero_time.iter_mut().for_each(|o| o.time = 0);
        let open_only = vec![op(OpType::Invoke, "read", Process::Client(1), 5)];
        for ops in [vec![], zero_latency.clone(), zero_time, open_only.clone()] {
            let faults = fault_intervals(&ops);
            check_svg(&throughput_svg(&ops, &faults));
            check_svg(&latency_svg(&ops, &faults));
        }
        assert!(latency_svg(&open_only, &[]).contains(NO_OPS));
        assert!(throughput_svg(&[], &[]).contains(NO_OPS));
        // Zero latencies are clamped to 0.01 ms: the axis starts there.
        assert!(latency_svg(&zero_latency, &[]).contains(">0.01</text>"));
    }

    #[test]
    fn many_points_are_sampled() {
        assert_eq!(sample_indices(10, 20), (0..10).collect::<Vec<_>>());
        let s = sample_indices(30_000, MAX_POINTS);
        assert_eq!(s.len(), MAX_POINTS);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && *s.last().unwrap() < 30_000);
        let svg = latency_svg(&history(&[], 30_000, 2), &[]);
        check_svg(&svg);
        assert!(svg.contains("20000 of 30000 points shown"));
        assert!(svg.len() < 600_000, "{} bytes", svg.len());
    }

    #[test]
    fn percentiles_and_verdicts() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let got = [0.5, 0.99, 1.0].map(|p| percentile(&v, p));
        assert_eq!(got, [Some(50.0), Some(99.0), Some(100.0)]);
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(verdict_of(&json!(":invalid")), "invalid");
        assert_eq!(verdict_of(&json!(true)), "valid");
        assert_eq!(verdict_of(&json!(null)), "unknown");
    }

    #[test]
    fn write_report_writes_an_escaped_self_contained_page() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["n1", "n2", "n10", "n3", "nx", "n+5", "logs"] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        for n in ["n1", "n2", "n10", "nx", "n+5"] {
            std::fs::write(dir.path().join(n).join("node.log"), "log").unwrap();
        }
        let ops = history(&[("start-kill", 50), ("stop-kill", 90)], 30, 4);
        let test = json!({"workload": "bank<&>", "nemesis": "kill", "nodes": ["n1", "n2"],
                          "time_limit_s": 30, "concurrency": 5, "seed": 42, "zeta": "last"});
        let many: Vec<Value> = (0..25).map(|i| json!({"e": i})).collect();
        let results = json!({"valid": "invalid", "checkers": {
            "balance": {"valid": "invalid", "note": "x",
                        "errors": [{"op": 3, "error": "<script>alert(1)</script>"}]},
            "many": {"valid": "valid", "errors": many}}});
        write_report(dir.path(), &ops, &test, &results).unwrap();
        for f in ["throughput.svg", "latency.svg"] {
            check_svg(&std::fs::read_to_string(dir.path().join(f)).unwrap());
        }
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        well_formed(&html).unwrap();
        assert!(
            html.contains("<title>bank&lt;&amp;&gt; — INVALID</title>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"badge big invalid\">INVALID</span>"));
        assert!(!html.contains("<script") && !html.contains("alert(1)</"));
        assert!(
            html.contains("&quot;error&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;")
        );
        assert!(html.contains("25 error(s), 20 shown"));
        assert!(html.contains("{\n  &quot;e&quot;: 19\n}") && !html.contains("&quot;e&quot;: 20"));
        assert!(html.contains("&quot;note&quot;: &quot;x&quot;"));
        // Parameters: the usual ones first, then the rest.
        let (w, z) = (
            html.find("<td>workload</td>").unwrap(),
            html.find("<td>zeta</td>").unwrap(),
        );
        assert!(w < z && html.contains("<td>seed</td><td class=\"n\">42</td>"));
        // 30 ops: 10 each of transfer/ok, read/fail, transfer/info; 4 ms each.
        let n = |v: &str| format!("<td class=\"n\">{v}</td>");
        let read = ["10", "0", "10", "0", "4.00", "4.00", "4.00", "4.00"]
            .map(n)
            .concat();
        assert!(
            html.contains(&format!("<tr><td>read</td>{read}</tr>")),
            "{html}"
        );
        let transfer = ["20", "10", "0", "10"].map(n).concat();
        assert!(html.contains(&format!("<tr><td>transfer</td>{transfer}")));
        assert!(html.contains(&format!(">kill</td>{}", ["0.050", "0.090"].map(n).concat())));
        assert!(
            html.contains("<img src=\"throughput.svg\"")
                && html.contains("<img src=\"latency.svg\"")
        );
        let files = [
            "history.edn",
            "history.jsonl",
            "results.json",
            "test.json",
            "n1/node.log",
            "n2/node.log",
            "n10/node.log",
        ];
        for f in files {
            assert!(
                html.contains(&format!("<li><a href=\"{f}\">{f}</a></li>")),
                "{f}"
            );
        }
        assert!(html.find("n2/node.log").unwrap() < html.find("n10/node.log").unwrap());
        assert!(!html.contains("n3/") && !html.contains("nx/") && !html.contains("n+5/"));
        assert!(
            !html.contains("http") && !html.contains("src=\"/"),
            "nothing external"
        );
    }
}
