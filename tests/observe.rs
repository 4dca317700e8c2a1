//! Observing a running cluster as operators do: Debian's real Prometheus
//! scrapes three nodes and its HTTP API agrees with `/stats`; `promtool`
//! lints the exposition; headless Chromium renders the status page; and the
//! environment configures a node, flags winning.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Gets 200 keys (a third of them twice) from every node.
async fn traffic(nodes: &[GcNode]) {
    for node in nodes {
        for i in 0..300 {
            let reply = node.get(&format!("/cache/g/key-{}", i % 200)).await;
            assert_eq!(reply.status, 200);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(2), &origin, &[]).await;
    traffic(&nodes).await;
    let reply = nodes[0].get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, stdout, stderr) =
        run("promtool", &["check".into(), "metrics".into()], &reply.body).await;
    assert!(
        ok && stdout.is_empty() && stderr.is_empty(),
        "promtool: {stdout}{stderr}"
    );
}

/// A Prometheus server on a loopback port of its own choosing, scraping
/// `targets` every second; killed on drop with its data directory.
struct Prometheus {
    url: String,
    _proc: Proc,
    _dir: TempDir,
}

impl Prometheus {
    async fn start(targets: &[String]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: groupcached\n    static_configs:\n      \
                 - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("writing prometheus.yml");
        let log_path = dir.0.join("prometheus.log");
        let log = std::fs::File::create(&log_path).expect("creating prometheus.log");
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            // Port 0: the kernel picks a free port and the log names it,
            // so no port is released and bound again.
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let mut proc = Proc::spawn("prometheus", &mut command);
        let addr = eventually(Duration::from_secs(30), "prometheus listening", || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("prometheus exited with {status}:\n{log}");
            }
            async move { listening_address(&log) }
        })
        .await;
        Prometheus {
            url: format!("http://{addr}"),
            _proc: proc,
            _dir: dir,
        }
    }

    /// `query`'s instant vector: (instance, value) per series.
    async fn query(&self, query: &str) -> Vec<(String, f64)> {
        let reply = http_get(&format!(
            "{}/api/v1/query?query={}",
            self.url,
            esc(query.as_bytes())
        ))
        .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("query JSON");
        let mut series: Vec<(String, f64)> = json["data"]["result"]
            .as_array()
            .expect("an instant vector")
            .iter()
            .map(|s| {
                let instance = s["metric"]["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (instance, value)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        series
    }
}

/// The address in Prometheus's `msg="Listening on" address=127.0.0.1:PORT`.
fn listening_address(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("msg=\"Listening on\""))?;
    let addr = line.split("address=").nth(1)?.split_whitespace().next()?;
    Some(addr.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_stats_says() {
    let origin = Origin::start().await;
    let nodes = start_cluster(&free_ports(3), &origin, &[]).await;
    let targets: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let prometheus = Prometheus::start(&targets).await;
    traffic(&nodes).await;

    // What every node's /stats says, by instance; traffic has stopped.
    let mut want_gets = Vec::new();
    let mut want_bytes = Vec::new();
    for node in &nodes {
        let g = node.stats().await["groups"]["g"].clone();
        want_gets.push((node.addr.to_string(), g["Gets"].as_f64().unwrap()));
        want_bytes.push((
            node.addr.to_string(),
            g["MainCache"]["Bytes"].as_f64().unwrap(),
        ));
    }
    want_gets.sort_by(|a, b| a.0.cmp(&b.0));
    want_bytes.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        want_gets.iter().all(|(_, gets)| *gets >= 300.0),
        "{want_gets:?}"
    );
    assert!(
        want_bytes.iter().all(|(_, bytes)| *bytes > 0.0),
        "{want_bytes:?}"
    );

    // Prometheus catches up within a few scrapes.
    let what = format!("Prometheus saying what /stats says: {want_gets:?}, {want_bytes:?}");
    eventually(Duration::from_secs(30), &what, || async {
        let gets = prometheus
            .query(r#"groupcache_gets_total{group="g"}"#)
            .await;
        let bytes = prometheus
            .query(r#"groupcache_cache_bytes{group="g",type="main"}"#)
            .await;
        eprintln!("Prometheus says gets {gets:?}, bytes {bytes:?}");
        (gets == want_gets && bytes == want_bytes).then_some(())
    })
    .await;
    // Every node was scraped without errors.
    let up = prometheus.query("up").await;
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_every_peer_and_group_in_chromium() {
    let origin = Origin::start().await;
    let nodes = start_cluster(
        &free_ports(3),
        &origin,
        &["--group", "sessions=echo", "--cache-bytes", "6KiB"],
    )
    .await;
    traffic(&nodes).await;
    for i in 0..50 {
        nodes[0].get(&format!("/cache/sessions/s{i}")).await;
    }
    let page = format!("{}/", nodes[0].url);

    let profile = TempDir::new("chromium");
    let mut args = chromium_args(&profile.0, 5_000);
    args.extend(["--dump-dom".to_string(), page.clone()]);
    let (ok, dom, stderr) = run("chromium", &args, b"").await;
    assert!(ok, "chromium --dump-dom failed: {stderr}");
    for node in &nodes {
        let row = format!(r#"<tr data-peer="{}">"#, node.url);
        assert!(dom.contains(&row), "no row for {} in\n{dom}", node.url);
    }
    for group in ["g", "sessions"] {
        let card = format!(r#"data-group="{group}""#);
        assert!(dom.contains(&card), "no group {group} in\n{dom}");
    }
    assert!(dom.contains("this node"), "{dom}");
    assert!(dom.contains("<svg"), "no charts in\n{dom}");
    assert!(dom.contains(r#"<span id="error"></span>"#), "{dom}");

    // The screenshot docs/observing.md shows: `UPDATE_SCREENSHOT=1 cargo test
    // --test observe status_page` writes it to docs/, otherwise to target/.
    let dir = if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
    };
    let screenshot = dir.join("status-page.png");
    // Traffic while the page polls, so its charts have something to draw.
    let busy = nodes[0].url.clone();
    let background = tokio::spawn(async move {
        for i in 0.. {
            let _ = try_get(&format!("{busy}/cache/g/key-{}", i % 300)).await;
            let _ = try_get(&format!("{busy}/cache/sessions/s{}", i % 90)).await;
        }
    });
    let _ = std::fs::remove_file(&screenshot);
    // A minute of polls (in virtual time) fills the charts.
    let mut args = chromium_args(&profile.0, 60_000);
    args.extend([
        "--window-size=1100,760".to_string(),
        format!("--screenshot={}", screenshot.display()),
        page,
    ]);
    let (ok, _, stderr) = run("chromium", &args, b"").await;
    background.abort();
    assert!(ok, "chromium --screenshot failed: {stderr}");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

/// Groups named like JavaScript's object members, and an etcd lease id
/// above 2^53: the page keys groups by a `Map` and shows the lease exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_keeps_odd_group_names_and_exact_lease_ids() {
    let origin = Origin::start().await;
    let etcd = common::etcd::Etcd::start_new().await;
    let mut args = common::etcd::etcd_args(&etcd, &origin, Duration::from_secs(10));
    let groups = ["constructor", "toString", "__proto__", "hasOwnProperty"];
    for name in groups {
        args.extend(["--group".to_string(), format!("{name}=echo")]);
    }
    let node = GcNode::start(free_ports(1)[0], &args).await;
    let lease = eventually(Duration::from_secs(10), "a lease in /peers", || async {
        common::etcd::peers_of(&node).await["etcd"]["lease_id"].as_i64()
    })
    .await;
    let status = node.get("/status").await;
    let status: serde_json::Value = serde_json::from_slice(&status.body).expect("status JSON");
    assert_eq!(
        status["etcd"]["lease_id"],
        lease.to_string(),
        "a string in /status"
    );
    for name in groups {
        node.get(&format!("/cache/{name}/k")).await;
    }

    let profile = TempDir::new("chromium-odd");
    let mut args = chromium_args(&profile.0, 5_000);
    args.extend(["--dump-dom".to_string(), format!("{}/", node.url)]);
    let (ok, dom, stderr) = run("chromium", &args, b"").await;
    assert!(ok, "chromium --dump-dom failed: {stderr}");
    assert!(
        dom.contains(r#"<span id="error"></span>"#),
        "a script error:\n{dom}"
    );
    for name in ["g"].into_iter().chain(groups) {
        let card = format!(r#"data-group="{name}""#);
        assert!(dom.contains(&card), "no group {name} in\n{dom}");
    }
    let hex = format!(">{lease:x}<");
    assert!(
        dom.contains(&hex),
        "lease {hex} not shown exactly in\n{dom}"
    );
}

/// Starts the real binary on a port from [`free_ports`] with `args` and
/// `env`, and waits until it is healthy; with `stderr` piped if asked.
async fn start_with_env(args: &[&str], env: &[(&str, &str)], pipe_stderr: bool) -> (Proc, String) {
    let port = free_ports(1)[0];
    let mut command = Command::new(env!("CARGO_BIN_EXE_groupcached"));
    command.args(args).envs(env.iter().copied());
    if pipe_stderr {
        command.stderr(Stdio::piped());
    }
    hand_over_port(&mut command, port);
    let proc = Proc::spawn(&format!("groupcached:{port}"), &mut command);
    drop(command); // closes the test's copy of the listener
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url).await;
    (proc, url)
}

/// (name, capacity) of every group, from `GET /status`.
async fn groups(url: &str) -> Vec<(String, u64)> {
    let status = http_get(&format!("{url}/status")).await;
    let status: serde_json::Value = serde_json::from_slice(&status.body).expect("status JSON");
    status["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            let name = g["name"].as_str().unwrap().to_string();
            (name, g["capacity_bytes"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_configure_a_node_and_flags_win() {
    let env = [
        ("GROUPCACHED_GROUP", "a=echo b=echo"),
        ("GROUPCACHED_CACHE_BYTES", "1KiB"),
        ("GROUPCACHED_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let (mut node, url) = start_with_env(&[], &env, true).await;
    assert_eq!(groups(&url).await, [("a".into(), 1024), ("b".into(), 1024)]);

    // GROUPCACHED_LOG_FORMAT=json: the first log line is a JSON object.
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut node.child.stderr.take().unwrap(), &mut stderr).unwrap();
    let first: serde_json::Value = serde_json::from_str(stderr.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    assert_eq!(first["message"], "groupcached serving", "{stderr}");

    // Flags beat their variables.
    let env = [
        ("GROUPCACHED_GROUP", "a=echo"),
        ("GROUPCACHED_CACHE_BYTES", "1KiB"),
        ("RUST_LOG", "error"),
    ];
    let args = ["--group", "c=echo", "--cache-bytes", "2KiB"];
    let (_node, url) = start_with_env(&args, &env, false).await;
    assert_eq!(groups(&url).await, [("c".into(), 2048)]);
    assert_eq!(http_get(&format!("{url}/cache/c/k")).await.status, 200);
    assert_eq!(http_get(&format!("{url}/cache/a/k")).await.status, 404);

    // Every flag that configures the node has its variable, and --help
    // names it (--check and --health are actions, like --help and --version).
    let help = Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .arg("--help")
        .output()
        .expect("running groupcached --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', '<']).next())
        .filter(|flag| !["help", "version", "check", "health"].contains(flag))
        .collect();
    assert!(flags.len() >= 14, "{flags:?}");
    for flag in flags {
        let name = format!("GROUPCACHED_{}", flag.to_uppercase().replace('-', "_"));
        assert!(
            help.contains(&format!("[env: {name}=")),
            "{name} not in\n{help}"
        );
    }

    // A bad value from the environment is reported like a bad flag.
    let output = Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .args(["--group", "a=echo"])
        .env("GROUPCACHED_CACHE_BYTES", "lots")
        .output()
        .expect("running groupcached");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--cache-bytes"), "{stderr}");
}
