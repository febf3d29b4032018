//! Launching `ledger-node run` for tests: the command line every test node shares, the
//! options that differ between the end-to-end tests and the chaos harness, and the running
//! process (kill -9, SIGTERM, SIGSTOP, SIGCONT, reaping).

use crate::pki::LaunchTls;
use ledger_client::NodeInfo;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The file in a node's data directory that takes its stdout and stderr.
pub const NODE_LOG_FILE: &str = "node.log";

/// PBKDF2 rounds for card passwords: test nodes exercise replication, not password hashing
/// (the rules are tested in the core).
pub const TEST_PASSWORD_ITERATIONS: u32 = 1_000;

/// sled's page cache per test node: several nodes share a small machine.
pub const TEST_CACHE_MB: u32 = 32;
/// OTP codes per phone per throttle window in tests and chaos runs: they send many codes to
/// a few phones; the throttle's rule itself is tested in the core (`core/tests/otp.rs`).
pub const TEST_OTP_CODES_PER_PHONE: u32 = 100_000;

/// A test cluster's campaign (created by the harness once the cluster is up, with the
/// article's rules) ends this long after the cluster started, so it runs while any test runs.
pub const CAMPAIGN_AFTER_MS: u64 = 30 * 86_400_000;

/// How often a stopping node is looked at.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When the campaign of a test cluster started at `now_ms` ends.
pub fn campaign_end(now_ms: u64) -> u64 {
    now_ms + CAMPAIGN_AFTER_MS
}

/// The name of the campaign a test or chaos cluster runs.
const TEST_CAMPAIGN_NAME: &str = "test campaign";

/// The campaign a test or chaos cluster runs: the article's rules, from the command's ledger
/// time to `ends_ms`. (A model replaying the cluster applies this command.)
pub fn test_campaign(ends_ms: u64) -> ledger_core::command::Command {
    ledger_core::command::Command::CreateCampaign {
        name: TEST_CAMPAIGN_NAME.into(),
        starts_ms: None,
        ends_ms,
        rules: ledger_core::types::CampaignRules::article(),
    }
}

/// Creates the test campaign on a running cluster, ending `CAMPAIGN_AFTER_MS` from now;
/// returns its window.
pub async fn create_test_campaign(
    client: &ledger_client::Client,
) -> Result<(u64, u64), ledger_client::ClientError> {
    let ends_ms = campaign_end(now_ms());
    let (_, starts_ms) = client
        .create_campaign(
            TEST_CAMPAIGN_NAME,
            None,
            ends_ms,
            ledger_core::types::CampaignRules::article(),
        )
        .await?;
    Ok((starts_ms, ends_ms))
}

/// The `--peer` argument that names a member at initialisation.
pub fn peer_arg(member: &NodeInfo) -> String {
    format!("{}={},{}", member.id, member.raft_addr, member.client_addr)
}

/// What a node's own log says so far (empty if it has none yet).
pub fn read_log(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join(NODE_LOG_FILE)).unwrap_or_default()
}

/// How to start one node. Every start of the node (the first, with `--init`, and each
/// restart after a kill) uses the same launcher, so a restart is the same node.
#[derive(Clone, Debug)]
pub struct NodeLauncher {
    binary: PathBuf,
    /// Words run before the binary, which they exec (`ip netns exec NS`).
    prefix: Vec<OsString>,
    info: NodeInfo,
    admin_addr: String,
    data_dir: PathBuf,
    master_key_file: PathBuf,
    snapshot_every: u64,
    extra_args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    die_with_parent: bool,
    tls: Option<LaunchTls>,
}

impl NodeLauncher {
    /// A node with the tests' defaults: dev SMS gateway, cheap password hashing, a snapshot
    /// every 10,000 entries.
    pub fn new(
        binary: impl Into<PathBuf>,
        info: NodeInfo,
        admin_addr: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        master_key_file: impl Into<PathBuf>,
    ) -> NodeLauncher {
        NodeLauncher {
            binary: binary.into(),
            prefix: Vec::new(),
            info,
            admin_addr: admin_addr.into(),
            data_dir: data_dir.into(),
            master_key_file: master_key_file.into(),
            snapshot_every: 10_000,
            extra_args: Vec::new(),
            env: Vec::new(),
            die_with_parent: false,
            tls: None,
        }
    }

    /// Serve with mutual TLS from these files (`ClusterPki::node`). Without it the node
    /// runs with `--insecure-plaintext`, which it accepts on loopback addresses only.
    pub fn tls(mut self, tls: LaunchTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Log entries between snapshots.
    pub fn snapshot_every(mut self, entries: u64) -> Self {
        self.snapshot_every = entries;
        self
    }

    /// Runs the node through `words` (for example `ip netns exec NS`), which must exec it so
    /// that the spawned pid is the node's own and signals reach it.
    pub fn prefix<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.prefix = words.into_iter().map(Into::into).collect();
        self
    }

    /// One more flag for `ledger-node run` (for example `--unsafe-local-reads`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// An environment variable for the node.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The node gets SIGKILL when the thread that spawned it ends, even if the test process
    /// itself is killed with SIGKILL (`PR_SET_PDEATHSIG`). The signal is tied to the
    /// spawning *thread*: spawn only from threads that live as long as the test (tokio's
    /// workers, not `spawn_blocking`, whose idle threads exit and would take their nodes).
    pub fn die_with_parent(mut self) -> Self {
        self.die_with_parent = true;
        self
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    pub fn admin_addr(&self) -> &str {
        &self.admin_addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the node's stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(NODE_LOG_FILE)
    }

    /// The command that starts the node; with `init`, it initialises a cluster of `init`.
    pub fn command(&self, init: Option<&[NodeInfo]>) -> Command {
        let (program, prefix_args) = match self.prefix.split_first() {
            Some((program, rest)) => (program.clone(), rest.to_vec()),
            None => (self.binary.clone().into_os_string(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(prefix_args);
        if !self.prefix.is_empty() {
            command.arg(&self.binary);
        }
        command
            .arg("run")
            .args(["--id", &self.info.id.to_string()])
            .args(["--raft-addr", &self.info.raft_addr])
            .args(["--client-addr", &self.info.client_addr])
            .args(["--admin-addr", &self.admin_addr])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--master-key-file")
            .arg(&self.master_key_file)
            .args([
                "--password-iterations",
                &TEST_PASSWORD_ITERATIONS.to_string(),
            ])
            .args(["--snapshot-every", &self.snapshot_every.to_string()])
            .args(["--cache-mb", &TEST_CACHE_MB.to_string()])
            .args(["--sms", "dev", "--allow-dev-sms"])
            .args([
                "--otp-codes-per-phone",
                &TEST_OTP_CODES_PER_PHONE.to_string(),
            ])
            .args(self.security_args())
            .args(&self.extra_args)
            // The flags above are the whole configuration: no file from the environment.
            .env_remove("LEDGER_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(members) = init {
            command.arg("--init");
            for member in members {
                command.arg("--peer").arg(peer_arg(member));
            }
        }
        command
    }

    fn security_args(&self) -> Vec<OsString> {
        let Some(tls) = &self.tls else {
            return vec!["--insecure-plaintext".into()];
        };
        let mut args = Vec::new();
        let mut flag = |name: &str, path: &Path| {
            args.push(OsString::from(name));
            args.push(path.as_os_str().to_owned());
        };
        flag("--tls-ca", &tls.files.ca);
        flag("--tls-cert", &tls.files.cert);
        flag("--tls-key", &tls.files.key);
        if let Some(crl) = &tls.files.crl {
            flag("--tls-crl", crl);
        }
        flag("--tls-init-cert", &tls.init_cert);
        flag("--tls-init-key", &tls.init_key);
        args
    }

    /// Starts the node (its data directory is made if missing), with stdout and stderr
    /// appended to its log.
    pub fn spawn(&self, init: Option<&[NodeInfo]>) -> std::io::Result<NodeProcess> {
        std::fs::create_dir_all(&self.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = self.command(init);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.die_with_parent {
            let parent = std::process::id() as i32;
            // SAFETY: prctl, getppid and _exit in the child before exec; all three are
            // async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        // The parent died before prctl took effect.
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        Ok(NodeProcess {
            child: command.spawn()?,
            reaped: false,
        })
    }
}

/// Why a node did not stop cleanly on SIGTERM.
#[derive(Debug)]
pub enum StopError {
    /// It exited, but not with success.
    Failed(ExitStatus),
    /// It was still running at the deadline (it has been killed since).
    Timeout(Duration),
}

impl std::fmt::Display for StopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopError::Failed(status) => write!(f, "exited with {status} on SIGTERM"),
            StopError::Timeout(deadline) => {
                write!(f, "did not stop within {deadline:?} of SIGTERM")
            }
        }
    }
}

impl std::error::Error for StopError {}

/// A running (or exited but not yet noticed) node. Dropping it kills it.
pub struct NodeProcess {
    child: Child,
    /// Whether `child` has been waited for: its pid may belong to someone else since.
    reaped: bool,
}

impl NodeProcess {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: our own child, not yet reaped, so the pid is still ours.
            unsafe { libc::kill(self.pid(), signal) };
        }
    }

    /// kill -9, and reaps the process. SIGCONT follows so that a paused node dies at once.
    pub fn kill(mut self) {
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        self.signal(libc::SIGKILL);
        self.signal(libc::SIGCONT);
        if !self.reaped {
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGHUP: the node re-reads its TLS files (a new revocation list).
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGTERM, then waits for a clean exit within `deadline` (after it, SIGKILL).
    pub fn stop(mut self, deadline: Duration) -> Result<ExitStatus, StopError> {
        self.signal(libc::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return if status.success() {
                    Ok(status)
                } else {
                    Err(StopError::Failed(status))
                };
            }
            if started.elapsed() > deadline {
                self.kill_and_reap();
                return Err(StopError::Timeout(deadline));
            }
            std::thread::sleep(STOP_POLL);
        }
    }

    /// The exit status, if the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.reaped |= status.is_some();
        status
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher() -> NodeLauncher {
        NodeLauncher::new(
            "/bin/ledger-node",
            NodeInfo {
                id: 2,
                raft_addr: "10.0.0.2:7101".into(),
                client_addr: "10.0.0.2:7201".into(),
            },
            "10.0.0.2:7301",
            "/data/n2",
            "/data/master.key",
        )
    }

    fn words(command: &Command) -> Vec<String> {
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_prefix_execs_the_node_with_its_flags() {
        let launcher = launcher()
            .prefix(["ip", "netns", "exec", "ns2"])
            .arg("--unsafe-local-reads");
        let command = words(&launcher.command(None));
        assert_eq!(
            command[..6],
            ["ip", "netns", "exec", "ns2", "/bin/ledger-node", "run"]
        );
        assert!(command.contains(&"--unsafe-local-reads".to_owned()));
        assert!(!command.contains(&"--init".to_owned()));
    }

    #[test]
    fn init_names_every_member_as_a_peer() {
        let members = [launcher().info().clone()];
        let command = words(&launcher().command(Some(&members)));
        assert_eq!(command[..2], ["/bin/ledger-node", "run"]);
        let at = command.iter().position(|w| w == "--init").expect("--init");
        assert_eq!(
            command[at + 1..],
            ["--peer", "2=10.0.0.2:7101,10.0.0.2:7201"]
        );
    }
}
