//! The container images and the compose cluster of `deploy/compose/`,
//! across a real Docker network: `scripts/image` builds the images (no
//! registry), `docker-compose` starts etcd, three groupcached nodes and one
//! golang/groupcache node, and the test reads through every node while it
//! cuts one off the network and restarts each in turn. The `dns` profile's
//! replicas find each other through Docker's embedded DNS. Containers,
//! networks and images are removed when the test ends, failed or not.
// These tests build and run the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The images `scripts/image` builds, by name.
const IMAGES: [&str; 3] = ["groupcached", "groupcached-etcd", "groupcached-gonode"];
/// The etcd cluster's nodes: three groupcached nodes and the Go node.
const NODES: [&str; 4] = ["node1", "node2", "node3", "gonode"];

/// Runs a command; panics with its output unless it succeeds.
fn must(command: &mut Command) -> String {
    let out: Output = command.output().expect("running a command");
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The tests run one at a time: each builds (and removes) its own images.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Images built for one test alone (tag `test-NAME-PID`), removed on drop.
struct Images {
    tag: String,
}

impl Images {
    fn build(name: &str) -> Images {
        let images = Images {
            tag: format!("test-{name}-{}", std::process::id()),
        };
        let root = env!("CARGO_MANIFEST_DIR");
        must(Command::new("bash").current_dir(root).args([
            "scripts/image",
            "--debug",
            &images.tag,
        ]));
        images
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let names: Vec<String> = IMAGES.iter().map(|i| format!("{i}:{}", self.tag)).collect();
        let _ = Command::new("docker").arg("rmi").args(&names).output();
    }
}

/// One compose project of `deploy/compose/compose.yaml`, taken down (its
/// containers, network and volumes) on drop.
struct Cluster {
    project: String,
    tag: String,
}

impl Cluster {
    fn new(images: &Images) -> Cluster {
        Cluster {
            project: format!("gc{}", images.tag.replace('-', "")),
            tag: images.tag.clone(),
        }
    }

    /// `docker-compose ARGS` in this project, every service's port
    /// published on a free loopback port.
    fn compose(&self, args: &[&str]) -> String {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/compose.yaml");
        let mut command = Command::new("docker-compose");
        command
            .arg("--file")
            .arg(file)
            .args(["--project-name", &self.project, "--profile", "dns"])
            .args(args)
            .env("GROUPCACHED_TAG", &self.tag);
        for port in ["NODE1_PORT", "NODE2_PORT", "NODE3_PORT", "GONODE_PORT"] {
            command.env(port, "");
        }
        must(&mut command)
    }

    /// The URL a service's replica `index` (from 1) answers at from here,
    /// asked afresh (a restart publishes it on a new port).
    fn url(&self, service: &str, index: usize) -> String {
        let index = format!("--index={index}");
        format!(
            "http://{}",
            self.compose(&["port", &index, service, "8080"])
        )
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    fn network(&self) -> String {
        format!("{}_default", self.project)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "2"])
        });
    }
}

async fn json(url: &str) -> Result<Value, String> {
    let reply = try_get(url).await?;
    serde_json::from_slice(&reply.body).map_err(|e| format!("{url}: {e}"))
}

/// The peer list `/peers` shows at `url`, sorted.
async fn peers(url: &str) -> Result<BTreeSet<String>, String> {
    let peers = json(&format!("{url}/peers")).await?;
    let list = peers["peers"]
        .as_array()
        .ok_or(format!("{url}/peers: {peers}"))?;
    Ok(list
        .iter()
        .filter_map(|p| Some(p.as_str()?.to_string()))
        .collect())
}

/// Waits until every URL in `at` lists exactly `want`.
async fn await_peers(at: &[String], want: &BTreeSet<String>) {
    for url in at {
        until_ok(
            Duration::from_secs(60),
            format!("{url} lists {want:?}"),
            || async {
                match peers(url).await? {
                    seen if &seen == want => Ok(()),
                    seen => Err(format!("{seen:?}")),
                }
            },
        )
        .await;
    }
}

/// The sum of the nodes' origin loads of group `demo`.
async fn local_loads(at: &[String]) -> u64 {
    let mut sum = 0;
    for url in at {
        let stats = json(&format!("{url}/stats")).await.unwrap();
        sum += stats["groups"]["demo"]["LocalLoads"]
            .as_u64()
            .unwrap_or_else(|| panic!("{url}/stats: {stats}"));
    }
    sum
}

/// GETs `keys` through every node in `at`, 16 at a time; each value must
/// be its key (the `echo` origin).
async fn read_through_all(at: &[String], keys: &[String]) {
    let gets: Vec<(String, String)> = at
        .iter()
        .flat_map(|url| keys.iter().map(move |key| (url.clone(), key.clone())))
        .collect();
    let replies = bounded(16, gets, |(url, key)| async move {
        let reply = try_get(&format!("{url}/cache/demo/{key}")).await;
        (url, key, reply)
    })
    .await;
    for (url, key, reply) in replies {
        let reply = reply.unwrap_or_else(|e| panic!("{url} {key}: {e}"));
        assert_eq!(
            (reply.status, &reply.body[..]),
            (200, key.as_bytes()),
            "{url} {key}"
        );
    }
}

/// Readers that GET keys `load-N` through whichever nodes `targets` names
/// (a load balancer's list: the test takes a node out before it stops it),
/// until stopped; every reply must be the key.
struct Load {
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    gets: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    /// The longest a GET took: printed, not asserted.
    slowest: Arc<Mutex<Duration>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(targets: Vec<String>) -> Load {
        let targets = Arc::new(Mutex::new(targets));
        let (stop, gets) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let failures = Arc::new(Mutex::new(Vec::new()));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let readers = (0..8)
            .map(|reader| {
                let (targets, stop) = (targets.clone(), stop.clone());
                let (gets, failures) = (gets.clone(), failures.clone());
                let slowest = slowest.clone();
                tokio::spawn(async move {
                    let mut i = reader;
                    while !stop.load(SeqCst) {
                        let url = {
                            let targets = targets.lock().unwrap();
                            targets[i % targets.len()].clone()
                        };
                        let key = format!("load-{}", (i * 7) % 1000);
                        let url = format!("{url}/cache/demo/{key}");
                        let start = std::time::Instant::now();
                        get_expecting(&url, key.as_bytes(), &failures).await;
                        let took = start.elapsed();
                        {
                            let mut slowest = slowest.lock().unwrap();
                            *slowest = (*slowest).max(took);
                        }
                        gets.fetch_add(1, SeqCst);
                        i += 1;
                        // Paces each reader; the test decides how long.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            targets,
            stop,
            gets,
            failures,
            slowest,
            readers,
        }
    }

    fn set_targets(&self, targets: Vec<String>) {
        *self.targets.lock().unwrap() = targets;
    }

    /// Stops the readers; asserts that no GET failed and that there were
    /// over `at_least`.
    async fn finish(self, at_least: usize) {
        self.stop.store(true, SeqCst);
        for reader in self.readers {
            reader.await.expect("a reader");
        }
        let gets = self.gets.load(SeqCst);
        let slowest = *self.slowest.lock().unwrap();
        eprintln!("{gets} GETs under load, the slowest in {slowest:?}");
        assert_eq!(
            *self.failures.lock().unwrap(),
            Vec::<String>::new(),
            "failed GETs"
        );
        assert!(gets > at_least, "only {gets} GETs");
    }
}

/// Waits until Docker says the container's HEALTHCHECK passes.
async fn await_healthy(container: &str) {
    until_ok(
        Duration::from_secs(60),
        format!("{container} healthy"),
        || async {
            let status = must(Command::new("docker").args([
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                container,
            ]));
            (status == "healthy").then_some(()).ok_or(status)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compose_cluster_survives_a_cut_and_restarts() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let images = Images::build("etcd");
    let cluster = Cluster::new(&images);
    cluster.compose(&[
        "up", "--detach", "etcd", "node1", "node2", "node3", "gonode",
    ]);

    // The image: healthy by its own HEALTHCHECK, running as 65532.
    for node in ["node1", "node2", "node3"] {
        await_healthy(&cluster.container(node)).await;
        let top =
            must(Command::new("docker").args(["top", &cluster.container(node), "-o", "pid,uid"]));
        let uids: Vec<&str> = top
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(uids, ["65532"], "{top}");
    }
    let all: BTreeSet<String> = NODES.iter().map(|n| format!("http://{n}:8080")).collect();
    let urls: Vec<String> = NODES.iter().map(|n| cluster.url(n, 1)).collect();
    await_peers(&urls, &all).await;

    // (a) 1,000 keys through every node, the Go node too: each loaded once.
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    read_through_all(&urls, &keys).await;
    assert_eq!(local_loads(&urls).await, 1000, "origin loads of 1,000 keys");

    // (b) node3 cut off the network while node1 and node2 serve: no GET
    // fails (node3's keys load where they are asked once it stops
    // answering); etcd drops it when its lease runs out, and it comes back
    // when it is connected again.
    let load = Load::start(urls[..2].to_vec());
    poll_until(Duration::from_secs(30), || load.gets.load(SeqCst) > 200).await;
    let (network, node3) = (cluster.network(), cluster.container("node3"));
    must(Command::new("docker").args(["network", "disconnect", &network, &node3]));
    let without_node3: BTreeSet<String> = all
        .iter()
        .filter(|u| !u.contains("node3"))
        .cloned()
        .collect();
    await_peers(&urls[..2], &without_node3).await;
    must(Command::new("docker").args(["network", "connect", "--alias", "node3", &network, &node3]));
    let urls: Vec<String> = NODES.iter().map(|n| cluster.url(n, 1)).collect();
    await_peers(&urls, &all).await;
    load.finish(1000).await;
    read_through_all(&urls[2..3], &keys[..100]).await;

    // (c) Each node restarted in turn while the others serve, as a load
    // balancer would take it out first.
    let mut urls = urls;
    let load = Load::start(urls.clone());
    for (i, node) in NODES.iter().enumerate() {
        let mut others = urls.clone();
        others.remove(i);
        load.set_targets(others);
        let before = load.gets.load(SeqCst);
        cluster.compose(&["restart", "--timeout", "10", node]);
        // Only the restarted node is published on a new port.
        urls[i] = cluster.url(node, 1);
        await_peers(&urls, &all).await;
        load.set_targets(urls.clone());
        poll_until(Duration::from_secs(30), || {
            load.gets.load(SeqCst) > before + 200
        })
        .await;
        eprintln!("restarted {node} ({} of {})", i + 1, NODES.len());
    }
    load.finish(1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_profile_replicas_find_each_other() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let images = Images::build("dns");
    let cluster = Cluster::new(&images);
    let (urls, want) = scale_dns_profile(&cluster, 3).await;
    // Each node's URL is its own address, as the others' DNS answers give it.
    for url in &urls {
        let status = json(&format!("{url}/peers")).await.unwrap();
        assert_eq!(status["source"], "dns", "{status}");
        assert!(want.contains(status["self"].as_str().unwrap()), "{status}");
    }
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    read_through_all(&urls, &keys).await;
    assert_eq!(local_loads(&urls).await, 300, "origin loads of 300 keys");

    // A fourth replica: every node takes it into its ring.
    scale_dns_profile(&cluster, 4).await;

    // The image's HEALTHCHECK asks the port the node was told with a
    // flag, not the image's GROUPCACHED_LISTEN.
    let flagged = Container::run(
        &format!("groupcached:{}", images.tag),
        &["--listen", "0.0.0.0:9090", "--group", "demo=echo"],
    );
    await_healthy(&flagged.0).await;
}

/// A container of its own (`docker run --detach`), removed on drop.
struct Container(String);

impl Container {
    fn run(image: &str, args: &[&str]) -> Container {
        let name = format!("gcflagged{}", std::process::id());
        let container = Container(name.clone());
        must(
            Command::new("docker")
                .args(["run", "--detach", "--name", &name, image])
                .args(args),
        );
        container
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// Runs `n` replicas of the `dns` profile's `node` and waits until every
/// one lists the same `n` peers; their URLs and that list.
async fn scale_dns_profile(cluster: &Cluster, n: usize) -> (Vec<String>, BTreeSet<String>) {
    cluster.compose(&["up", "--detach", "--scale", &format!("node={n}"), "node"]);
    let urls: Vec<String> = (1..=n).map(|i| cluster.url("node", i)).collect();
    let newest = &urls[n - 1];
    let want = until_ok(
        Duration::from_secs(60),
        format!("{n} peers from DNS"),
        || async {
            let list = peers(newest).await?;
            (list.len() == n)
                .then_some(list.clone())
                .ok_or(format!("{list:?}"))
        },
    )
    .await;
    await_peers(&urls, &want).await;
    (urls, want)
}
