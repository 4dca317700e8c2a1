//! What operators install: the systemd units in `deploy/systemd/`
//! (`systemd-analyze verify` accepts both, and the binary runs exactly as
//! the service's `ExecStart` runs it, with the shipped environment file and
//! its socket handed over in `LISTEN_FDS` as `groupcached.socket` would),
//! and what `--version` and `--help` say.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/systemd")
        .join(name)
}

/// The value of `key=` in a unit or environment file (the last one).
fn setting(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .map(str::to_string)
}

/// A directory of its own under the system's temporary directory, removed
/// on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gc-systemd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn systemd_analyze_verifies_both_units() {
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = TempDir::new("verify");
    let service = std::fs::read_to_string(deploy("groupcached.service")).unwrap();
    let exec = setting(&service, "ExecStart").expect("ExecStart");
    let service = service.replace(&exec, env!("CARGO_BIN_EXE_groupcached"));
    std::fs::write(dir.0.join("groupcached.service"), service).unwrap();
    std::fs::copy(
        deploy("groupcached.socket"),
        dir.0.join("groupcached.socket"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "groupcached.socket",
            "groupcached.service",
        ])
        .current_dir(&dir.0)
        .output()
        .expect("systemd-analyze (Debian's systemd; scripts/deps installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn memory_max_is_three_times_the_cache() {
    let service = std::fs::read_to_string(deploy("groupcached.service")).unwrap();
    let env = std::fs::read_to_string(deploy("groupcached.env")).unwrap();
    let max = setting(&service, "MemoryMax").expect("MemoryMax");
    let cache = setting(&env, "GROUPCACHED_CACHE_BYTES").expect("GROUPCACHED_CACHE_BYTES");
    let mib = |text: &str, unit: &str| -> u64 {
        text.strip_suffix(unit)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text:?}: expected N{unit}"))
    };
    assert_eq!(
        mib(&max, "M"),
        3 * mib(&cache, "MiB"),
        "MemoryMax={max}, cache {cache}"
    );
}

/// The service's `ExecStart` with the shipped environment file (only the
/// URLs and the snapshot's place changed for this test), its socket handed
/// over as `groupcached.socket` hands it: the node serves at once and stops
/// cleanly on SIGTERM, writing its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_as_the_unit_starts_it() {
    let service = std::fs::read_to_string(deploy("groupcached.service")).unwrap();
    let env = std::fs::read_to_string(deploy("groupcached.env")).unwrap();
    let exec = setting(&service, "ExecStart").expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/groupcached"), "{exec}");
    let args: Vec<&str> = words.collect();

    let dir = TempDir::new("exec");
    let port = free_ports(1)[0];
    let url = format!("http://127.0.0.1:{port}");
    let snapshot = dir.0.join("snapshot");
    let mut command = Command::new(env!("CARGO_BIN_EXE_groupcached"));
    command.args(&args).env_clear();
    for line in env.lines().map(str::trim) {
        if let Some((key, value)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            command.env(key, value);
        }
    }
    command
        .env("GROUPCACHED_SELF", &url)
        .env("GROUPCACHED_PEERS", &url)
        .env("GROUPCACHED_SNAPSHOT", &snapshot)
        .env("RUST_LOG", "error");
    hand_over_port(&mut command, port);
    let mut node = Proc::spawn("groupcached (as the unit)", &mut command);
    drop(command);
    wait_healthy(&url).await;
    let reply = http_get(&format!("{url}/cache/g/hello")).await;
    assert_eq!((reply.status, &reply.body[..]), (200, &b"hello"[..]));
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(snapshot.is_file(), "no snapshot at {}", snapshot.display());
}

#[test]
fn version_names_the_git_revision_and_help_shows_examples() {
    let run = |flag: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_groupcached"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}");
        String::from_utf8(out.stdout).unwrap()
    };
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    let want = format!(
        "groupcached {} ({})\n",
        env!("CARGO_PKG_VERSION"),
        head.trim()
    );
    assert_eq!(run("--version"), want);
    let help = run("--help");
    let examples = help.split("Examples:").nth(1).expect("an Examples section");
    assert_eq!(
        examples.matches("\n  groupcached ").count(),
        2,
        "{examples}"
    );
}
