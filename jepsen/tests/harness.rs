//! The harness tested as its users run it: the real `ledger-jepsen` binary against real
//! `ledger-node` processes in network namespaces. Needs root (CI runs as root); without root
//! only the refusal is tested, and the other tests fail with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ledger-jepsen"))
}

/// The node binary beside the harness, built once with the same profile.
fn node_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let target = harness().parent().expect("target dir").to_owned();
    BUILT.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "ledger-node", "--bin", "ledger-node"]);
        if target.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building ledger-node failed");
    });
    target.join("ledger-node")
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn require_root() {
    assert!(
        is_root(),
        "the chaos harness tests need root (network namespaces, nftables); run `cargo test` as root, as CI does"
    );
}

/// Tests that create namespaces run one at a time (2 cores; and each checks that it left
/// nothing behind).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `ledger-jepsen test ARGS` (whitespace-separated) with the node binary beside it and the given store.
fn test_command(args: &str, store: &Path) -> Command {
    let mut command = Command::new(harness());
    command
        .arg("test")
        .args(args.split_whitespace())
        .arg("--node-bin")
        .arg(node_binary())
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null());
    command
}

fn run(args: &str, store: &Path) -> Output {
    test_command(args, store)
        .output()
        .expect("run ledger-jepsen")
}

/// Namespaces, links and data directories a harness process `pid` would have made.
fn leftovers(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let prefix = format!("ledger-jepsen-{pid}-");
    found.extend(
        String::from_utf8_lossy(&netns.stdout)
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_owned),
    );
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let tag = format!(": lj{:x}", pid & 0xfffff);
    found.extend(
        String::from_utf8_lossy(&links.stdout)
            .lines()
            .filter(|l| l.contains(&format!("{tag}br")) || l.contains(&format!("{tag}n")))
            .map(str::to_owned),
    );
    let data = std::env::temp_dir().join(format!("ledger-jepsen-{pid}"));
    if data.exists() {
        found.push(data.display().to_string());
    }
    // Node processes: their data directory (on the command line) carries the harness's pid.
    let marker = format!("ledger-jepsen-{pid}/");
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                found.push(format!(
                    "node process {}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

fn results(store: &Path) -> serde_json::Value {
    let path = store.join("latest").join("results.json");
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("results.json parses")
}

#[test]
fn without_root_it_says_so_and_exits_with_its_own_code() {
    let mut command = if is_root() {
        // Drop to nobody, so the refusal is tested on a root machine too.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(harness());
        c
    } else {
        Command::new(harness())
    };
    let out = command
        .args(["test", "--time-limit", "1", "--store", "/nonexistent-store"])
        .output()
        .expect("run ledger-jepsen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(stderr.contains("needs root"), "stderr: {stderr}");
}

#[test]
fn stale_reads_from_a_broken_node_are_reported_invalid() {
    require_root();
    let _serial = serial();
    let store = tempfile::tempdir().expect("temp dir");
    // Followers answering reads from their own state, and a partition now and then: the
    // checkers must say invalid (exit code 1) and name the stale reads.
    let out = run(
        "--workload bank --nemesis partition --nodes 3 --time-limit 20 --concurrency 6 --nemesis-interval 6 --seed 11 --unsafe-local-reads",
        store.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected invalid\nstdout: {stdout}\nstderr: {stderr}"
    );
    let r = results(store.path());
    assert_eq!(r["valid"], "invalid");
    let caught: Vec<&str> = ["read-order", "linearizable"]
        .into_iter()
        .filter(|c| r["checkers"][c]["valid"] == "invalid")
        .collect();
    assert!(
        !caught.is_empty(),
        "neither read-order nor linearizable found the stale reads: {r}"
    );
    // The money itself is never wrong here: only the reads are stale.
    assert_eq!(r["checkers"]["bank"]["valid"], "valid", "{r}");
    let errors = r["checkers"][caught[0]]["errors"]
        .as_array()
        .expect("errors");
    assert!(
        !errors.is_empty(),
        "an invalid checker names the offending operations"
    );
}

#[test]
fn a_correct_cluster_under_faults_is_valid_and_the_run_is_complete() {
    require_root();
    let _serial = serial();
    let store = tempfile::tempdir().expect("temp dir");
    let orphans_before = orphaned_faketime_objects();
    let out = run(
        "--workload bank --nemesis partition,kill,pause,clock --nodes 3 --time-limit 20 --concurrency 6 --nemesis-interval 5 --seed 12",
        store.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected valid\nstdout: {stdout}\nstderr: {stderr}"
    );
    let run = store.path().join("latest");
    for file in [
        "history.edn",
        "history.jsonl",
        "results.json",
        "test.json",
        "index.html",
        "throughput.svg",
        "latency.svg",
        "n1/node.log",
        "n3/node.log",
    ] {
        let path = run.join(file);
        assert!(
            path.is_file() && std::fs::metadata(&path).expect("stat").len() > 0,
            "{} missing or empty",
            path.display()
        );
    }
    let edn = std::fs::read_to_string(run.join("history.edn")).expect("edn");
    assert!(
        edn.lines()
            .next()
            .expect("a first op")
            .starts_with("{:index 0, :type :invoke"),
        "{}",
        &edn[..200.min(edn.len())]
    );
    assert!(
        edn.contains(":process :nemesis"),
        "the nemesis's faults are in the history"
    );
    let html = std::fs::read_to_string(run.join("index.html")).expect("html");
    assert!(
        html.contains("throughput.svg") && html.contains("history.edn"),
        "index.html links the plots and the history"
    );
    // `check` re-checks the stored history to the same verdict.
    let check = Command::new(harness())
        .arg("check")
        .arg(&run)
        .output()
        .expect("check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Nothing left behind.
    let pid = stderr_pid(&stderr);
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "left behind by the run"
    );
    let orphans = orphaned_faketime_objects();
    let new: Vec<&String> = orphans.difference(&orphans_before).collect();
    assert!(new.is_empty(), "libfaketime objects left behind: {new:?}");
}

/// libfaketime's semaphores and shared memory in /dev/shm whose process is gone.
fn orphaned_faketime_objects() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            ledger_jepsen::cleanup::faketime_object_pid(name)
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
        })
        .collect()
}

/// The harness prints its data directory's name, which carries its pid.
fn stderr_pid(stderr: &str) -> u32 {
    stderr
        .split("ledger-jepsen-")
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .find_map(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no pid in the harness's output: {stderr}"))
}

#[test]
fn ctrl_c_removes_everything_and_exits_with_code_2() {
    require_root();
    let _serial = serial();
    let store = tempfile::tempdir().expect("temp dir");
    let mut child = test_command(
        "--workload bank --nemesis partition --nodes 3 --time-limit 120 --nemesis-interval 1",
        store.path(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ledger-jepsen");
    let pid = child.id();
    // Wait for the clients to be running (and a partition or two to be in force).
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains("running for") => break,
            Ok(_) => {}
            Err(e) => panic!("the harness never started its clients: {e}"),
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !leftovers(pid).is_empty(),
        "the run had namespaces and nodes to clean up"
    );
    // SAFETY: our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the harness did not exit within 30 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(2), "interrupted runs exit with 2");
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "left behind after Ctrl-C ({:?} into the run)",
        started.elapsed()
    );
}
