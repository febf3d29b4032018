//! Records what a seed's replay depends on: the toolchain and the lock file.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let lock = std::fs::read("../Cargo.lock").unwrap_or_default();
    // FNV-1a: a short fingerprint of the lock file, no dependency needed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lock {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    println!("cargo:rustc-env=LEDGER_SIM_RUSTC={version}");
    println!("cargo:rustc-env=LEDGER_SIM_LOCK_FNV={h:016x}");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}
