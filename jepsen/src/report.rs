//! The results report of a run: `index.html` (verdict, parameters, per-operation statistics,
//! checker results, fault intervals, links to the run's files) and the two plots of
//! `plots.rs`, throughput and latency over time, with the nemesis's faults shaded behind
//! them. Self-contained: no scripts, no external resources.

use crate::history::{pairs, Entry, OpType, Process};
use crate::plots::{fault_hex, latency_svg, outcome_index, percentile, throughput_svg, PlotError};
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

/// The test's parameters: the usual ones first, then the rest.
fn parameters(h: &mut String, test: &Value) {
    head(h, "parameter|value");
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
        row(h, "td", &[esc(k), esc(&value_text(&map[k]))]);
    }
    if !test.is_object() {
        row(h, "td", &["(not an object)".into(), esc(&test.to_string())]);
    }
}

fn index_html(ops: &[Entry], test: &Value, results: &Value, logs: &[String]) -> String {
    let verdict = verdict_of(&results["valid"]);
    let loud = verdict.to_uppercase();
    let workload = match &test["workload"] {
        Value::Null => "ledger".to_owned(),
        v => esc(&value_text(v)),
    };
    let mut h = format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{workload} — {loud}</title><style>{CSS}</style></head><body>\n<h1>Jepsen run: {workload}</h1>\n<p><span class=\"badge big {verdict}\">{loud}</span></p>\n<h2>Test</h2>\n");

    parameters(&mut h, test);

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
    let empty = serde_json::Map::new();
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
        let color = fault_hex(&f.kind);
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
    let plot = |svg: Result<String, PlotError>| svg.map_err(std::io::Error::other);
    std::fs::write(
        dir.join("throughput.svg"),
        plot(throughput_svg(ops, &faults))?,
    )?;
    std::fs::write(dir.join("latency.svg"), plot(latency_svg(ops, &faults))?)?;
    let html = index_html(ops, test, results, &node_logs(dir)?);
    std::fs::write(dir.join("index.html"), html)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn op(kind: OpType, f: &str, process: Process, ms: u64) -> Entry {
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
    pub(crate) fn history(nemesis: &[(&str, u64)], clients: u64, latency_ms: u64) -> Vec<Entry> {
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
    pub(crate) fn well_formed(xml: &str) -> Result<usize, String> {
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

    pub(crate) fn check_svg(svg: &str) {
        assert!(
            svg.starts_with("<svg") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
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
    fn verdicts_read_any_spelling() {
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
