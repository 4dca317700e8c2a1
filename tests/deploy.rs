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
    let env = std::fs::read_to_string(deploy("groupcached.env")).unwrap();
    run_as_the_unit(env!("CARGO_BIN_EXE_groupcached"), &env).await;
}

/// Runs `program` as the unit's `ExecStart` does, with the variables of
/// `env_file` (a `KEY=VALUE` a line), and checks that it serves and stops
/// cleanly.
async fn run_as_the_unit(program: &str, env_file: &str) {
    let service = std::fs::read_to_string(deploy("groupcached.service")).unwrap();
    let exec = setting(&service, "ExecStart").expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/groupcached"), "{exec}");
    let args: Vec<&str> = words.collect();

    let dir = TempDir::new("exec");
    let port = free_ports(1)[0];
    let url = format!("http://127.0.0.1:{port}");
    let snapshot = dir.0.join("snapshot");
    let mut command = Command::new(program);
    command.args(&args).env_clear();
    for line in env_file.lines().map(str::trim) {
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

/// The git revision `HEAD` is at, as `--version` shows it.
fn head_revision() -> String {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    String::from_utf8(head.stdout).unwrap().trim().to_string()
}

/// Runs a command that must succeed; its stdout.
fn must(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package, purged when dropped: the system is left as it was even
/// when the test fails.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "groupcached"])
            .output();
    }
}

/// `scripts/package --debug` builds the `.deb` (cargo-deb), which installs
/// with `dpkg -i` (CI runs as root), puts the binary, units, conffile, man
/// page and completions in place, runs against its installed environment
/// file, and leaves nothing behind once removed and purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_runs_and_removes_cleanly() {
    must("bash", &["scripts/package", "--debug"]);
    let debs =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian")).unwrap();
    let deb = debs
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|path| path.metadata().and_then(|m| m.modified()).ok())
        .expect("a .deb in target/debian");
    let _installed = Installed;
    let _ = Command::new("dpkg")
        .args(["--purge", "groupcached"])
        .output();
    must("dpkg", &["-i", deb.to_str().unwrap()]);

    let files: Vec<String> = must("dpkg", &["-L", "groupcached"])
        .lines()
        .map(str::to_string)
        .filter(|path| Path::new(path).is_file())
        .collect();
    for path in [
        "/usr/bin/groupcached",
        "/lib/systemd/system/groupcached.service",
        "/lib/systemd/system/groupcached.socket",
        "/etc/default/groupcached",
        "/usr/share/bash-completion/completions/groupcached",
        "/usr/share/zsh/vendor-completions/_groupcached",
        "/usr/share/fish/vendor_completions.d/groupcached.fish",
    ] {
        assert!(
            files.iter().any(|f| f == path),
            "{path} not installed: {files:?}"
        );
    }
    let version = must("/usr/bin/groupcached", &["--version"]);
    assert_eq!(
        version,
        format!(
            "groupcached {} ({})\n",
            env!("CARGO_PKG_VERSION"),
            head_revision()
        )
    );
    let man = must("man", &["-w", "groupcached"]);
    assert_eq!(man.trim(), "/usr/share/man/man1/groupcached.1.gz");
    let env = std::fs::read_to_string("/etc/default/groupcached").unwrap();
    run_as_the_unit("/usr/bin/groupcached", &env).await;

    must("dpkg", &["-r", "groupcached"]);
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    assert_eq!(
        left,
        [&"/etc/default/groupcached".to_string()],
        "only the conffile stays after -r"
    );
    must("dpkg", &["--purge", "groupcached"]);
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
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

/// Every manifest in `deploy/kubernetes/` parses; the headless Service,
/// the Deployment's probe, `preStop` and downward-API `--self`, and the
/// PodDisruptionBudget are there; and every container's arguments (with
/// `$(VAR)` expanded as Kubernetes expands them) pass the binary's own
/// flag check, `groupcached --check`.
#[test]
fn kubernetes_manifests_parse_and_their_args_pass_the_flag_check() {
    use yaml_rust2::{Yaml, YamlLoader};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = YamlLoader::load_from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            docs.extend(parsed);
        }
    }
    let of_kind = |kind: &str| -> Vec<&Yaml> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let headless = of_kind("Service")
        .into_iter()
        .any(|s| s["spec"]["clusterIP"].as_str() == Some("None"));
    assert!(headless, "no headless Service");
    assert_eq!(of_kind("PodDisruptionBudget").len(), 1);
    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 1);
    let mut checked = 0;
    for deployment in deployments {
        let pod = &deployment["spec"]["template"]["spec"];
        // Pod Security "restricted" and no API token.
        let seccomp = &pod["securityContext"]["seccompProfile"]["type"];
        assert_eq!(seccomp.as_str(), Some("RuntimeDefault"));
        assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
        let grace = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace");
        for container in pod["containers"].as_vec().expect("containers") {
            let probe = &container["readinessProbe"]["httpGet"]["path"];
            assert_eq!(probe.as_str(), Some("/healthz"));
            // SIGKILL comes after the preStop sleep, the drain (at most
            // 30 s, src/server.rs) and a snapshot's few seconds.
            let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_i64()
                .expect("a preStop sleep");
            assert!(grace >= sleep + 30 + 5, "grace {grace} s, sleep {sleep} s");
            // The variables the container gets: values, and the pod IP
            // from the downward API as a test address.
            let mut vars = Vec::new();
            for var in container["env"]
                .as_vec()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let name = var["name"].as_str().expect("env name").to_string();
                let value = match var["value"].as_str() {
                    Some(value) => value.to_string(),
                    None => {
                        let field = var["valueFrom"]["fieldRef"]["fieldPath"].as_str();
                        assert_eq!(field, Some("status.podIP"), "{name}");
                        "10.0.0.7".to_string()
                    }
                };
                vars.push((name, value));
            }
            let expand = |arg: &str| {
                vars.iter().fold(arg.to_string(), |arg, (name, value)| {
                    arg.replace(&format!("$({name})"), value)
                })
            };
            let args: Vec<String> = container["args"]
                .as_vec()
                .expect("args")
                .iter()
                .map(|a| expand(a.as_str().expect("a string argument")))
                .collect();
            assert!(
                args.iter().any(|a| a == "--self=http://10.0.0.7:8080"),
                "{args:?}"
            );
            let out = Command::new(env!("CARGO_BIN_EXE_groupcached"))
                .args(&args)
                .arg("--check")
                .env_clear()
                .envs(
                    vars.iter()
                        .filter(|(name, _)| name.starts_with("GROUPCACHED_"))
                        .cloned(),
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 1);
}

/// `--health`, the container image's HEALTHCHECK: 0 for a node that
/// answers `/healthz` (asked at loopback when it listens on 0.0.0.0), 1 for
/// a port nothing answers; it needs no `--group`.
#[tokio::test]
async fn health_flag_asks_the_node_at_listen() {
    let port = free_ports(1)[0];
    let _node = GcNode::start(port, &["--group".into(), "g=echo".into()]).await;
    let health = |listen: String| {
        let out = Command::new(env!("CARGO_BIN_EXE_groupcached"))
            .env_clear()
            .env("GROUPCACHED_LISTEN", listen)
            .arg("--health")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = health(format!("0.0.0.0:{port}"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{port}: healthy")),
        "{stdout}"
    );
    assert_eq!(health(format!("127.0.0.1:{}", closed_port())).0, Some(1));
}
