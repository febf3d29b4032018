//! Everything the harness creates outside its own memory (namespaces, links, processes, data
//! directories) is registered here before it is created, and removed by `run_all`: at the
//! end of a test, on Ctrl-C or SIGTERM, and from the panic hook.

use std::path::PathBuf;
use std::sync::Mutex;

/// Something to remove at exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A process to SIGKILL (paused ones are continued first so they die at once).
    Process(i32),
    Netns(String),
    Link(String),
    Dir(PathBuf),
    /// A filesystem mounted for a node (unmounted lazily: a node still on it lets go when
    /// it dies).
    Mount(PathBuf),
}

static REGISTRY: Mutex<Vec<Resource>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Resource>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register(resource: Resource) {
    registry().push(resource);
}

/// The resource was removed by its owner.
pub fn forget(resource: &Resource) {
    registry().retain(|r| r != resource);
}

/// Process `pid` was killed and reaped by its owner: forgets it, and removes what
/// libfaketime made for it. Under the clock nemesis, `ip netns exec` loads libfaketime
/// first, which creates a semaphore and a shared-memory object named after the pid in
/// /dev/shm; the node it execs inherits them and, not being their creator, never removes
/// them (nor would a process killed with SIGKILL).
pub fn reaped(pid: i32) {
    forget(&Resource::Process(pid));
    remove_faketime_objects(pid);
}

/// How libfaketime names its objects in /dev/shm: a prefix, then the creator's pid.
const FAKETIME_PREFIXES: [&str; 2] = ["faketime_shm_", "sem.faketime_sem_"];

/// The pid a /dev/shm name of libfaketime's carries, if it is one.
pub fn faketime_object_pid(name: &str) -> Option<u32> {
    FAKETIME_PREFIXES
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .and_then(|pid| pid.parse().ok())
}

fn remove_faketime_objects(pid: i32) {
    for prefix in FAKETIME_PREFIXES {
        let _ = std::fs::remove_file(format!("/dev/shm/{prefix}{pid}"));
    }
}

/// Removes everything still registered, newest first (processes before their namespaces).
pub fn run_all() {
    let resources: Vec<Resource> = std::mem::take(&mut *registry());
    let (processes, others): (Vec<_>, Vec<_>) = resources
        .into_iter()
        .partition(|r| matches!(r, Resource::Process(_)));
    for resource in processes.into_iter().chain(others.into_iter().rev()) {
        remove(&resource);
    }
}

fn remove(resource: &Resource) {
    let quiet = |program: &str, args: &[&str]| {
        let _ = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    };
    match resource {
        Resource::Process(pid) => {
            // SAFETY: signalling a pid we started; a stale pid at worst gets ESRCH.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
                libc::kill(*pid, libc::SIGCONT);
                libc::waitpid(*pid, std::ptr::null_mut(), 0);
            }
            remove_faketime_objects(*pid);
        }
        Resource::Netns(name) => quiet("ip", &["netns", "del", name]),
        Resource::Link(name) => quiet("ip", &["link", "del", name]),
        Resource::Dir(path) => {
            let _ = std::fs::remove_dir_all(path);
        }
        Resource::Mount(path) => quiet("umount", &["-l", &path.to_string_lossy()]),
    }
}

/// Installs the Ctrl-C / SIGTERM / SIGHUP handler and the panic hook. On a signal the harness cleans
/// up and exits with `exit_code`.
pub fn install(exit_code: i32) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("ledger-jepsen: panic; removing the test network, nodes and data");
        run_all();
    }));
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        eprintln!("ledger-jepsen: interrupted; removing the test network, nodes and data");
        run_all();
        std::process::exit(exit_code);
    });
}

/// Removes what crashed runs (killed with SIGKILL, so unable to clean up) left behind:
/// namespaces `ledger-jepsen-<pid>-n<id>` and links `lj<pid>...` whose process is gone.
pub fn sweep_orphans() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(out) = crate::net::run("ip", &["netns", "list"]) {
        for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix("ledger-jepsen-") else {
                continue;
            };
            let rest = rest.strip_prefix("probe-").unwrap_or(rest);
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !is_jepsen(p)) {
                remove(&Resource::Netns(name.to_owned()));
                removed.push(format!("namespace {name}"));
            }
        }
    }
    if let Ok(out) = crate::net::run("ip", &["-o", "link", "show"]) {
        for line in out.lines() {
            let Some(name) = line
                .split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap_or(""))
            else {
                continue;
            };
            let Some(rest) = name.strip_prefix("lj") else {
                continue;
            };
            // Our links are lj<hex pid>br (the bridge) and lj<hex pid>n<id> (veths).
            let digits = match rest.strip_suffix("br") {
                Some(d) => d,
                None => match rest.rsplit_once('n') {
                    Some((d, id)) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => d,
                    _ => continue,
                },
            };
            let Ok(tag) = u32::from_str_radix(digits, 16) else {
                continue;
            };
            // The tag is the low 20 bits of the pid: orphaned if no live process matches.
            let owner_alive = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .is_some_and(|p| p & 0xfffff == tag && is_jepsen(p))
                });
            if !owner_alive {
                remove(&Resource::Link(name.to_owned()));
                removed.push(format!("link {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("ledger-jepsen-")
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !is_jepsen(p)) {
                for mount in mounts_under(&entry.path()) {
                    remove(&Resource::Mount(mount.clone()));
                    removed.push(format!("mount {}", mount.display()));
                }
                remove(&Resource::Dir(entry.path()));
                removed.push(format!("data directory {}", entry.path().display()));
            }
        }
    }
    // libfaketime's objects whose process is gone (left by nodes of earlier harness
    // versions, or of a harness killed with SIGKILL).
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = faketime_object_pid(&name);
            if pid.is_some_and(|p| command_of(p).is_none())
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed.push(format!("libfaketime object /dev/shm/{name}"));
            }
        }
    }
    removed
}

/// Mount points at or under `dir`, from /proc/mounts.
fn mounts_under(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn is_jepsen(pid: u32) -> bool {
    command_of(pid).is_some_and(|c| c == "ledger-jepsen")
}

/// The command name of live process `pid`.
fn command_of(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim().to_owned())
}
