//! `ledger-node certs`: the cluster's certificate authority on the command line (the work
//! is `ledger_wire::pki`, which `ledger-node dev` and the tests use too).

use clap::Subcommand;
use ledger_wire::pki::{self, Ca, Validity, DEFAULT_VALIDITY_DAYS};
use ledger_wire::principal::{Principal, Role};
use std::path::PathBuf;

/// Most days a certificate may be issued for.
pub const MAX_VALIDITY_DAYS: u64 = 3_650;

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create a CA in DIR: ca.crt, ca.key (0600) and an empty revocation list crl.pem.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a certificate signed by DIR's CA, written as DIR/<role>-<name>.crt and .key.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// operator, merchant, channel, auditor, node or gateway.
        #[arg(long)]
        role: Role,
        /// The principal's name (operator, channel, auditor, gateway).
        #[arg(long, required_if_eq_any = [("role", "operator"), ("role", "channel"), ("role", "auditor"), ("role", "gateway")])]
        name: Option<String>,
        /// The merchant id (role merchant).
        #[arg(long, required_if_eq("role", "merchant"))]
        merchant: Option<u64>,
        /// The node id (role node; the certificate also names `ledger-node`).
        #[arg(long, required_if_eq("role", "node"))]
        id: Option<u64>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
        days: u64,
        /// A DNS name the certificate also serves (repeatable): a gateway's public host name.
        /// A gateway's certificate always names `ledger-gateway`, `localhost` and 127.0.0.1.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Revoke a certificate: add its serial to DIR's list and write DIR/crl.pem. Then copy
    /// crl.pem to the nodes' `[tls] crl` and send them SIGHUP.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate file to revoke.
        #[arg(long)]
        cert: PathBuf,
    },
}

/// Runs one `certs` command; prints what it wrote.
pub fn run(command: CertsCommand) -> Result<(), String> {
    match command {
        CertsCommand::Init { dir } => {
            pki::init_dir(&dir).map_err(|e| e.to_string())?;
            println!("CA created in {}", dir.display());
            println!("  certificate: {}", dir.join(pki::CA_CERT_FILE).display());
            println!(
                "  key:         {} (keep it offline)",
                dir.join(pki::CA_KEY_FILE).display()
            );
            println!("  revocations: {}", dir.join(pki::CRL_FILE).display());
        }
        CertsCommand::Issue {
            dir,
            role,
            name,
            merchant,
            id,
            days,
            hosts,
        } => {
            if days == 0 || days > MAX_VALIDITY_DAYS {
                return Err(format!("--days is 1 to {MAX_VALIDITY_DAYS}"));
            }
            let name = match role {
                Role::Merchant => merchant.map(|m| m.to_string()),
                Role::Node => id.map(|i| i.to_string()),
                _ => name,
            }
            .ok_or_else(|| format!("--role {role} needs its name or id"))?;
            let principal = Principal::new(role, &name).map_err(|e| e.to_string())?;
            let ca = Ca::load(&dir).map_err(|e| e.to_string())?;
            let (cert, key) =
                pki::issue_to_dir_for_hosts(&ca, &dir, &principal, &hosts, Validity::days(days))
                    .map_err(|e| e.to_string())?;
            println!("issued {} for {days} days", principal.to_uri());
            println!("  certificate: {}", cert.display());
            println!("  key:         {}", key.display());
        }
        CertsCommand::Revoke { dir, cert } => {
            let ca = Ca::load(&dir).map_err(|e| e.to_string())?;
            let (serial, crl) = pki::revoke_in_dir(&ca, &dir, &cert).map_err(|e| e.to_string())?;
            println!("revoked serial {serial} ({})", cert.display());
            println!(
                "  wrote {}; copy it to each node's [tls] crl and send the nodes SIGHUP",
                crl.display()
            );
        }
    }
    Ok(())
}

/// The operator certificate `ledger-node dev` initialises with, and `ledgerctl`'s default.
pub const DEV_OPERATOR: &str = "ledgerctl";
/// The gateway `ledger-node dev` runs next to its nodes.
pub const DEV_GATEWAY: &str = "http";
/// Merchants `ledger-node dev` issues certificates for (1 to this), for the demo and the
/// benchmarks.
pub const DEV_MERCHANTS: u64 = 16;

/// The principals of a development cluster of `nodes` nodes.
pub fn dev_principals(nodes: u64) -> Vec<Principal> {
    let named = |role, name: &str| Principal::new(role, name).expect("a valid name");
    let mut all: Vec<Principal> = (1..=nodes).map(|id| Principal::Node { id }).collect();
    all.extend([
        named(Role::Operator, DEV_OPERATOR),
        named(Role::Channel, "web"),
        named(Role::Auditor, "audit"),
        named(Role::Gateway, DEV_GATEWAY),
    ]);
    all.extend((1..=DEV_MERCHANTS).map(|m| named(Role::Merchant, &m.to_string())));
    all
}

/// Makes `dir` a CA folder with a certificate for every development principal, keeping
/// whatever an earlier start created. Returns whether it created the CA.
pub fn ensure_dev_certs(dir: &std::path::Path, nodes: u64) -> Result<bool, String> {
    let created = !dir.join(pki::CA_KEY_FILE).exists();
    if created {
        pki::init_dir(dir).map_err(|e| e.to_string())?;
    }
    let ca = Ca::load(dir).map_err(|e| e.to_string())?;
    for principal in dev_principals(nodes) {
        let cert = dir.join(format!("{}.crt", pki::file_stem(&principal)));
        if !cert.exists() {
            pki::issue_to_dir(&ca, dir, &principal, Validity::days(DEFAULT_VALIDITY_DAYS))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(created)
}
