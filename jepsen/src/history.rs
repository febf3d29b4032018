//! The history of a test, as Jepsen records it: every operation's invocation and completion,
//! in the order the harness saw them, written as EDN (for Jepsen's own tools) and as JSON
//! lines (for everything else; `ledger-jepsen check` reads these back).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Jepsen's `:type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation began.
    Invoke,
    /// It took effect, with this result.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Its outcome is unknown: it may or may not have taken effect.
    Info,
}

/// Jepsen's `:process`: a client's logical process, or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process. When an operation of a process ends as `info`, the process is
    /// considered crashed and its thread continues as a fresh process number (as in Jepsen),
    /// so every process has at most one operation open.
    Client(u64),
    /// The fault injector.
    Nemesis(NemesisTag),
}

/// Serialises as the string `nemesis` (EDN `:nemesis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisTag {
    Nemesis,
}

impl Process {
    pub const NEMESIS: Process = Process::Nemesis(NemesisTag::Nemesis);
}

/// One history entry (raw, as stored; `ops::Op` is its typed reading).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the history, from 0.
    pub index: u64,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What the operation does (`transfer`, `read`, `claim`, `start-partition`...).
    pub f: String,
    /// Its argument on invocation, its result on completion.
    pub value: Value,
    pub process: Process,
    /// Nanoseconds since the test began.
    pub time: u64,
    /// Why it failed or why its outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The history as it is being recorded: shared by every client task and the nemesis.
#[derive(Clone)]
pub struct Recorder {
    started: Instant,
    ops: Arc<Mutex<Vec<Entry>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            started: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Nanoseconds since the recorder was made.
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Appends an entry; returns its index.
    pub fn record(
        &self,
        process: Process,
        kind: OpType,
        f: &str,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let index = ops.len() as u64;
        // Time is read under the lock, so times never decrease along the history.
        let time = self.now_ns();
        ops.push(Entry {
            index,
            kind,
            f: f.to_owned(),
            value,
            process,
            time,
            error,
        });
        index
    }

    /// Everything recorded so far.
    pub fn ops(&self) -> Vec<Entry> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// An invocation and its completion (None while open, or never completed).
#[derive(Clone, Debug)]
pub struct Pair<'a> {
    pub invoke: &'a Entry,
    pub complete: Option<&'a Entry>,
}

impl Pair<'_> {
    /// The completion's type; an operation never completed counts as `info`.
    pub fn outcome(&self) -> OpType {
        self.complete.map_or(OpType::Info, |c| c.kind)
    }
}

/// Pairs each client invocation with its process's next completion, in invocation order.
/// Nemesis entries are left out.
pub fn pairs(ops: &[Entry]) -> Vec<Pair<'_>> {
    let mut open: std::collections::BTreeMap<Process, usize> = Default::default();
    let mut out: Vec<Pair<'_>> = Vec::new();
    for op in ops {
        if matches!(op.process, Process::Nemesis(_)) {
            continue;
        }
        match op.kind {
            OpType::Invoke => {
                open.insert(op.process, out.len());
                out.push(Pair {
                    invoke: op,
                    complete: None,
                });
            }
            _ => {
                if let Some(i) = open.remove(&op.process) {
                    out[i].complete = Some(op);
                }
            }
        }
    }
    out
}

/// Writes the history as JSON lines, one entry per line.
pub fn write_jsonl(ops: &[Entry], path: &Path) -> std::io::Result<()> {
    let mut text = String::new();
    for op in ops {
        text.push_str(&serde_json::to_string(op).expect("an op serialises"));
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// Reads a history written by `write_jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// Writes the history as EDN, one map per line, as Jepsen's `history.edn`.
pub fn write_edn(ops: &[Entry], path: &Path) -> std::io::Result<()> {
    let mut text = String::new();
    for op in ops {
        text.push_str(&op_to_edn(op));
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// One entry as an EDN map: `{:index 0, :type :invoke, :f :transfer, :value {...}, ...}`.
pub fn op_to_edn(op: &Entry) -> String {
    let process = match op.process {
        Process::Client(n) => n.to_string(),
        Process::Nemesis(_) => ":nemesis".to_owned(),
    };
    let kind = match op.kind {
        OpType::Invoke => ":invoke",
        OpType::Ok => ":ok",
        OpType::Fail => ":fail",
        OpType::Info => ":info",
    };
    let mut out = format!(
        "{{:index {}, :type {kind}, :f {}, :value {}, :process {process}, :time {}",
        op.index,
        keyword(&op.f),
        to_edn(&op.value),
        op.time
    );
    if let Some(error) = &op.error {
        out.push_str(", :error ");
        out.push_str(&edn_string(error));
    }
    out.push('}');
    out
}

/// A JSON value as EDN: objects become maps (keyword keys where the key is a plain name,
/// integer keys where it is a number), arrays vectors, null nil.
pub fn to_edn(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => edn_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(to_edn).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let key = if k.parse::<i64>().is_ok() {
                        k.clone()
                    } else if is_plain_name(k) {
                        keyword(k)
                    } else {
                        edn_string(k)
                    };
                    format!("{key} {}", to_edn(v))
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '?')
}

fn keyword(s: &str) -> String {
    if is_plain_name(s) {
        format!(":{s}")
    } else {
        edn_string(s)
    }
}

fn edn_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_op_reads_as_jepsen_edn() {
        let op = Entry {
            index: 3,
            kind: OpType::Ok,
            f: "read".into(),
            value: json!({"17": 100, "18": 0}),
            process: Process::Client(2),
            time: 1_500,
            error: None,
        };
        assert_eq!(
            op_to_edn(&op),
            "{:index 3, :type :ok, :f :read, :value {17 100, 18 0}, :process 2, :time 1500}"
        );
        let nemesis = Entry {
            index: 4,
            kind: OpType::Info,
            f: "start-partition".into(),
            value: json!({"grudge": [[1, 2], [3]]}),
            process: Process::NEMESIS,
            time: 9,
            error: Some("a \"quoted\"\nline".into()),
        };
        assert_eq!(
            op_to_edn(&nemesis),
            "{:index 4, :type :info, :f :start-partition, :value {:grudge [[1 2] [3]]}, \
             :process :nemesis, :time 9, :error \"a \\\"quoted\\\"\\nline\"}"
        );
    }

    #[test]
    fn jsonl_round_trips_and_pairs_match_by_process() {
        let rec = Recorder::new();
        rec.record(
            Process::Client(0),
            OpType::Invoke,
            "transfer",
            json!({"from": 1}),
            None,
        );
        rec.record(
            Process::Client(1),
            OpType::Invoke,
            "read",
            Value::Null,
            None,
        );
        rec.record(Process::NEMESIS, OpType::Info, "kill", json!(3), None);
        rec.record(
            Process::Client(1),
            OpType::Ok,
            "read",
            json!({"1": 5}),
            None,
        );
        rec.record(
            Process::Client(0),
            OpType::Info,
            "transfer",
            json!({"from": 1}),
            Some("timeout".into()),
        );
        let ops = rec.ops();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        write_jsonl(&ops, &path).unwrap();
        assert_eq!(read_jsonl(&path).unwrap(), ops);
        let p = pairs(&ops);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].invoke.f, "transfer");
        assert_eq!(p[0].outcome(), OpType::Info);
        assert_eq!(p[1].complete.unwrap().index, 3);
        assert!(ops.windows(2).all(|w| w[0].time <= w[1].time));
    }
}
