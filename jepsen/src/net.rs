//! The test network: one network namespace per node, each joined by a veth pair to a bridge
//! the harness creates, on a private /24 with no route anywhere else. Faults are nftables
//! rules inside the nodes' namespaces (they vanish with the namespace). Everything created is
//! registered with [`crate::cleanup`] before it exists, so it is removed at exit.

use crate::cleanup::{self, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// nftables table the harness owns inside each node's namespace.
const TABLE: &str = "ledger_jepsen";

/// Most nodes a test network holds (addresses .11 to .11 + MAX_NODES - 1).
pub const MAX_NODES: u64 = 9;

/// Why the harness cannot build its network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("ledger-jepsen needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces; run it as root")]
    NotRoot,
    #[error("`{0}` is not installed or not runnable: {1} (install iproute2 and nftables)")]
    MissingTool(&'static str, String),
    #[error("this kernel or container does not allow network namespaces: {0}")]
    NoNamespaces(String),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("no free 10.117.x.0/24 subnet for the test network")]
    NoSubnet,
}

/// Runs a command; an error carries its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::MissingTool(leak(program), e.to_string()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn leak(s: &str) -> &'static str {
    match s {
        "ip" => "ip",
        "nft" => "nft",
        _ => "a required tool",
    }
}

/// Checks root, the tools and namespace support before anything is created.
pub fn preflight() -> Result<(), NetError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetError::NotRoot);
    }
    run("ip", &["-V"])?;
    run("nft", &["--version"])?;
    // A throwaway namespace proves the kernel lets us make them.
    let probe = format!("ledger-jepsen-probe-{}", std::process::id());
    cleanup::register(Resource::Netns(probe.clone()));
    run("ip", &["netns", "add", &probe]).map_err(|e| NetError::NoNamespaces(e.to_string()))?;
    let nft = run("ip", &["netns", "exec", &probe, "nft", "list", "tables"]);
    let _ = run("ip", &["netns", "del", &probe]);
    cleanup::forget(&Resource::Netns(probe));
    nft.map_err(|e| NetError::NoNamespaces(format!("nftables inside a namespace: {e}")))?;
    Ok(())
}

/// One node's place on the test network.
#[derive(Clone, Debug)]
pub struct Host {
    pub id: u64,
    pub netns: String,
    pub addr: Ipv4Addr,
    veth: String,
}

/// The bridge, the namespaces and the fault rules currently in force.
pub struct Network {
    pub bridge: String,
    /// The harness's own address on the bridge: clients send from here.
    pub gateway: Ipv4Addr,
    pub hosts: Vec<Host>,
    /// Per node: the nodes whose packets it drops.
    grudge: BTreeMap<u64, BTreeSet<u64>>,
    /// Percentage of packets from the test network each node drops.
    loss_percent: u8,
}

impl Network {
    /// Creates the bridge and a namespace per node id.
    pub fn create(ids: &[u64]) -> Result<Network, NetError> {
        assert!(ids.iter().all(|id| (1..=MAX_NODES).contains(id)));
        let pid = std::process::id();
        let tag = format!("lj{:x}", pid & 0xfffff);
        let subnet = free_subnet(pid)?;
        let bridge = format!("{tag}br");
        let gateway = Ipv4Addr::new(10, 117, subnet, 1);
        // Registered once made: a name taken by another run must not be removed by this one.
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        cleanup::register(Resource::Link(bridge.clone()));
        run(
            "ip",
            &["addr", "add", &format!("{gateway}/24"), "dev", &bridge],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        let mut net = Network {
            bridge,
            gateway,
            hosts: Vec::new(),
            grudge: BTreeMap::new(),
            loss_percent: 0,
        };
        for &id in ids {
            let host = Host {
                id,
                netns: format!("ledger-jepsen-{pid}-n{id}"),
                addr: Ipv4Addr::new(10, 117, subnet, 10 + id as u8),
                veth: format!("{tag}n{id}"),
            };
            run("ip", &["netns", "add", &host.netns])?;
            cleanup::register(Resource::Netns(host.netns.clone()));
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &host.veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &host.netns,
                ],
            )?;
            cleanup::register(Resource::Link(host.veth.clone()));
            run(
                "ip",
                &["link", "set", &host.veth, "master", &net.bridge, "up"],
            )?;
            let ns = host.netns.as_str();
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/24", host.addr),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            net.hosts.push(host);
        }
        for id in ids {
            net.apply(*id)?;
        }
        Ok(net)
    }

    pub fn host(&self, id: u64) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .expect("a node of this network")
    }

    /// Replaces the partition: `grudge[n]` lists the nodes whose packets n drops.
    pub fn set_grudge(&mut self, grudge: BTreeMap<u64, BTreeSet<u64>>) -> Result<(), NetError> {
        self.grudge = grudge;
        self.apply_all()
    }

    /// Drops this percentage of every node's incoming packets from the test network.
    pub fn set_loss(&mut self, percent: u8) -> Result<(), NetError> {
        self.loss_percent = percent.min(100);
        self.apply_all()
    }

    /// Removes every fault rule.
    pub fn heal(&mut self) -> Result<(), NetError> {
        self.grudge.clear();
        self.loss_percent = 0;
        self.apply_all()
    }

    fn apply_all(&self) -> Result<(), NetError> {
        let ids: Vec<u64> = self.hosts.iter().map(|h| h.id).collect();
        for id in ids {
            self.apply(id)?;
        }
        Ok(())
    }

    /// Loads node `id`'s ruleset in one atomic nft transaction.
    fn apply(&self, id: u64) -> Result<(), NetError> {
        let host = self.host(id);
        let mut rules = String::new();
        let dropped: Vec<String> = self
            .grudge
            .get(&id)
            .into_iter()
            .flatten()
            .map(|other| self.host(*other).addr.to_string())
            .collect();
        if !dropped.is_empty() {
            rules.push_str(&format!("    ip saddr {{ {} }} drop\n", dropped.join(", ")));
        }
        if self.loss_percent > 0 {
            rules.push_str(&format!(
                "    ip saddr {}/24 numgen random mod 100 < {} drop\n",
                Ipv4Addr::from(u32::from(self.gateway) & 0xffff_ff00),
                self.loss_percent
            ));
        }
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.netns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::MissingTool("nft", e.to_string()))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())
            .map_err(|e| NetError::MissingTool("nft", e.to_string()))?;
        let output = child
            .wait_with_output()
            .map_err(|e| NetError::MissingTool("nft", e.to_string()))?;
        if !output.status.success() {
            return Err(NetError::Command {
                command: format!("nft -f - in {}", host.netns),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = run("ip", &["netns", "del", &host.netns]);
            cleanup::forget(&Resource::Netns(host.netns.clone()));
            let _ = run("ip", &["link", "del", &host.veth]);
            cleanup::forget(&Resource::Link(host.veth.clone()));
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        cleanup::forget(&Resource::Link(self.bridge.clone()));
    }
}

/// A 10.117.x.0/24 that no interface or route of this machine uses, starting from one the
/// process id picks (so concurrent runs do not collide).
fn free_subnet(pid: u32) -> Result<u8, NetError> {
    let used = run("ip", &["-4", "route", "show", "table", "all"])? + &run("ip", &["-4", "addr"])?;
    (0..250u32)
        .map(|k| ((pid + k) % 250 + 1) as u8)
        .find(|x| !used.contains(&format!("10.117.{x}.")))
        .ok_or(NetError::NoSubnet)
}

/// The partitions the nemesis knows, as grudges over `ids` (node -> nodes it drops).
pub mod partitions {
    use std::collections::{BTreeMap, BTreeSet};

    pub type Grudge = BTreeMap<u64, BTreeSet<u64>>;

    /// Everyone in a component drops everyone outside it.
    pub fn complete(components: &[Vec<u64>]) -> Grudge {
        let mut grudge = Grudge::new();
        for (i, component) in components.iter().enumerate() {
            for node in component {
                let others: BTreeSet<u64> = components
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                grudge.insert(*node, others);
            }
        }
        grudge
    }

    /// Two halves (the first `n / 2` of the shuffled ids against the rest).
    pub fn halves(shuffled: &[u64]) -> Grudge {
        let (a, b) = shuffled.split_at(shuffled.len() / 2);
        complete(&[a.to_vec(), b.to_vec()])
    }

    /// One node alone.
    pub fn isolate(ids: &[u64], alone: u64) -> Grudge {
        let rest: Vec<u64> = ids.iter().copied().filter(|i| *i != alone).collect();
        complete(&[vec![alone], rest])
    }

    /// Every node hears a majority (itself and its neighbours on both sides round the ring;
    /// links work both ways, as TCP needs), and no two nodes hear the same majority. With 3
    /// nodes that is everyone: no partition (the nemesis does not choose it then).
    pub fn majority_ring(ring: &[u64]) -> Grudge {
        let n = ring.len();
        let majority = n / 2 + 1;
        let reach = majority / 2;
        let mut grudge = Grudge::new();
        for (i, node) in ring.iter().enumerate() {
            let heard: BTreeSet<u64> = (0..=2 * reach)
                .map(|k| ring[(i + n + k - reach) % n])
                .collect();
            grudge.insert(
                *node,
                ring.iter()
                    .copied()
                    .filter(|o| !heard.contains(o))
                    .collect(),
            );
        }
        grudge
    }

    /// Two halves joined only through one bridge node that hears both.
    pub fn bridge(shuffled: &[u64]) -> Grudge {
        let n = shuffled.len();
        let middle = shuffled[n / 2];
        let (left, right) = (&shuffled[..n / 2], &shuffled[n / 2 + 1..]);
        let mut grudge = complete(&[left.to_vec(), right.to_vec()]);
        grudge.insert(middle, BTreeSet::new());
        grudge
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn hears(g: &Grudge, a: u64, b: u64) -> bool {
            !g.get(&a).is_some_and(|d| d.contains(&b))
        }

        #[test]
        fn every_partition_is_what_its_name_says() {
            let ids = [1, 2, 3, 4, 5];
            let h = halves(&ids);
            assert!(!hears(&h, 1, 3) && !hears(&h, 3, 1) && hears(&h, 1, 2) && hears(&h, 3, 5));
            let i = isolate(&ids, 4);
            assert!(ids
                .iter()
                .filter(|o| **o != 4)
                .all(|o| !hears(&i, 4, *o) && !hears(&i, *o, 4)));
            assert!(hears(&i, 1, 2));
            let r = majority_ring(&ids);
            for n in ids {
                let heard = ids.iter().filter(|o| hears(&r, n, **o)).count();
                assert_eq!(heard, 3, "node {n} hears a bare majority");
                for o in ids {
                    assert_eq!(
                        hears(&r, n, o),
                        hears(&r, o, n),
                        "{n} and {o}: links work both ways"
                    );
                }
            }
            for size in 4..=9u64 {
                let ring: Vec<u64> = (1..=size).collect();
                let r = majority_ring(&ring);
                for n in &ring {
                    let heard = ring.iter().filter(|o| hears(&r, *n, **o)).count() as u64;
                    assert!(
                        heard > size / 2 && heard < size,
                        "{size} nodes: node {n} hears {heard}"
                    );
                }
            }
            let majorities: BTreeSet<Vec<u64>> = ids
                .iter()
                .map(|n| ids.iter().copied().filter(|o| hears(&r, *n, *o)).collect())
                .collect();
            assert_eq!(majorities.len(), 5, "no two nodes hear the same majority");
            let b = bridge(&ids);
            assert!(ids.iter().all(|o| hears(&b, 3, *o)));
            assert!(!hears(&b, 1, 4) && !hears(&b, 5, 2) && hears(&b, 1, 3) && hears(&b, 4, 3));
        }
    }
}
