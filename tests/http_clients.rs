//! What HTTP clients get from the user API, asked by real clients: curl
//! (`--etag-compare`, `-z`, `-r`, `--compressed`), Python's
//! `urllib`, nginx's `proxy_cache` in front of a node revalidating with
//! conditional requests, and headless Chromium revalidating a fetch. Every
//! value has a strong ETag (the same on every node, Go-loaded values
//! included), conditional requests are answered 304, ranges 206 or 416,
//! `--content-type` sets the type and `--compress` groups send gzip, br or
//! zstd as the client prefers.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// A reply as curl saw it: status, header fields (names in lower case;
/// the last of each), and the body as received (still coded).
struct Curl {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Curl {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Runs `curl -sS ARGS URL`, its header block and body kept apart.
async fn curl(args: &[&str], url: &str) -> Curl {
    let dir = TempDir::new("curl");
    let body = dir.join("body");
    let mut all: Vec<String> = ["-sS", "-D", "-", "-o"].map(String::from).to_vec();
    all.push(body.display().to_string());
    all.extend(args.iter().map(|a| a.to_string()));
    all.push(url.to_string());
    let (ok, stdout, stderr) = run("curl", &all, b"").await;
    assert!(ok, "curl {all:?}: {stderr}");
    let mut lines = stdout.lines();
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let body = std::fs::read(&body).unwrap_or_default();
    Curl {
        status,
        headers,
        body,
    }
}

/// The strong ETag every node gives `bytes` sent as they are: XXH3-64 of
/// them in hex.
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn node_args(origin: &Origin, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--group".to_string(), format!("g={}", origin.template())];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// In a pool of three groupcached nodes and a Go node, every value has
/// the same strong ETag through each groupcached node, whoever loaded it
/// (the Go node included): the hash of its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_has_one_etag_on_every_node_whoever_loaded_it() {
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let peers = peer_urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let mut go_args = vec!["-peers".to_string(), peers.join(",")];
    go_args.extend(["-group".to_string(), format!("g={}", origin.template())]);
    let go = GoNode::start(ports[3], &go_args).await;
    let mut gc_args = node_args(&origin, &[]);
    gc_args.extend(["--peers".to_string(), peers.join(",")]);
    let mut nodes = Vec::new();
    for &port in &ports[..3] {
        nodes.push(GcNode::start(port, &gc_args).await);
    }
    let keys: Vec<String> = (0..40).map(|i| format!("etag-{i}")).collect();
    let owners: Vec<&str> = keys
        .iter()
        .map(|k| ring.get(k.as_bytes()).expect("an owner"))
        .collect();
    for owner in &peers {
        assert!(owners.contains(&owner.as_str()), "no key owned by {owner}");
    }
    for key in &keys {
        let want = etag_of(&value_of(key.as_bytes()));
        for node in &nodes {
            let reply = curl(&[], &format!("{}/cache/g/{key}", node.url)).await;
            assert_eq!(reply.status, 200, "{key}");
            assert_eq!(reply.body, value_of(key.as_bytes()), "{key}");
            let at = &node.url;
            assert_eq!(reply.header("etag"), Some(want.as_str()), "{key} at {at}");
        }
        assert_eq!(origin.hits(key.as_bytes()), 1, "{key} loaded once");
    }
    let loaded_by_go = stat(&go.stats().await, "g", "LocalLoads");
    assert!(loaded_by_go > 0, "the Go node loaded none of them");
}

/// curl revalidates with the ETag it saved and gets a 304 without a body;
/// `-z` (If-Modified-Since) gets the value, which has no date to compare;
/// `-r` gets 206 with Content-Range, or 416 past the end; `HEAD` gets
/// the headers alone; If-Match and If-Range compare strongly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_revalidates_resumes_and_asks_for_headers_only() {
    let origin = Origin::start().await;
    let node = GcNode::start(
        free_ports(1)[0],
        &node_args(&origin, &["--default-ttl", "1h"]),
    )
    .await;
    let url = format!("{}/cache/g/abc", node.url);
    let value = value_of(b"abc");
    let n = value.len();
    let etag = etag_of(&value);
    let dir = TempDir::new("etags");
    let saved = dir.join("etag").display().to_string();

    let first = curl(&["--etag-save", &saved], &url).await;
    assert_eq!((first.status, &first.body[..]), (200, &value[..]));
    assert_eq!(first.header("etag"), Some(etag.as_str()));
    assert_eq!(first.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        first.header("content-type"),
        Some("application/octet-stream")
    );
    let again = curl(&["--etag-compare", &saved], &url).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert!(again
        .header("cache-control")
        .is_some_and(|c| c.starts_with("max-age=")));
    assert!(again
        .header("cache-status")
        .is_some_and(|c| c.contains("hit")));
    for (name, field) in [
        ("a weak match", format!("W/{etag}")),
        ("any", "*".to_string()),
        ("a list", format!("\"old\", {etag}")),
    ] {
        let reply = curl(&["-H", &format!("If-None-Match: {field}")], &url).await;
        assert_eq!(reply.status, 304, "{name}");
    }
    let changed = curl(&["-H", "If-None-Match: \"old\""], &url).await;
    assert_eq!((changed.status, &changed.body[..]), (200, &value[..]));
    let since = curl(&["-z", "Sat, 05 Dec 2026 01:00:00 GMT"], &url).await;
    assert_eq!(
        (since.status, &since.body[..]),
        (200, &value[..]),
        "no date to compare"
    );

    // curl --head writes the header block where the body would go: this
    // client reads whatever body there is.
    let head = http_request("HEAD", &url).await.expect("HEAD");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));

    let part = curl(&["-r", "0-1"], &url).await;
    assert_eq!((part.status, &part.body[..]), (206, &value[..2]));
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-1/{n}").as_str())
    );
    let tail = curl(&["-r", "-3"], &url).await;
    assert_eq!((tail.status, &tail.body[..]), (206, &value[n - 3..]));
    let past = curl(&["-r", &format!("{n}-")], &url).await;
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{n}").as_str())
    );
    let both = curl(&["-r", "0-1,4-5"], &url).await;
    assert_eq!(both.status, 206);
    let content_type = both.header("content-type").unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let body = String::from_utf8(both.body.clone()).unwrap();
    assert!(
        body.contains(&format!(
            "Content-Range: bytes 0-1/{n}\r\n\r\nva\r\n--{boundary}"
        )),
        "{body}"
    );
    assert!(
        body.ends_with(&format!(
            "Content-Range: bytes 4-5/{n}\r\n\r\ne-\r\n--{boundary}--\r\n"
        )),
        "{body}"
    );

    let if_range = format!("If-Range: {etag}");
    let resumed = curl(&["-r", "4-", "-H", &if_range], &url).await;
    assert_eq!((resumed.status, &resumed.body[..]), (206, &value[4..]));
    let stale = curl(&["-r", "4-", "-H", "If-Range: \"old\""], &url).await;
    assert_eq!(
        (stale.status, &stale.body[..]),
        (200, &value[..]),
        "a changed value comes whole"
    );
    let failed = curl(&["-H", "If-Match: \"old\""], &url).await;
    assert_eq!(failed.status, 412);
    let matched = curl(&["-H", &format!("If-Match: {etag}")], &url).await;
    assert_eq!(matched.status, 200);

    let stats = node.stats().await;
    assert_eq!(stat(&stats, "g", "NotModified"), 4, "{stats}");
    assert_eq!(stat(&stats, "g", "PartialReplies"), 4, "{stats}");
    assert_eq!(origin.hits(b"abc"), 1, "one load for every request");
    // A 304 is a hit like any other get answered from the cache.
    assert_eq!(
        stat(&stats, "g", "Gets") - stat(&stats, "g", "CacheHits"),
        1,
        "{stats}"
    );
}

/// A 4 KiB text file served by Python's http.server through a group with
/// `--content-type` and `--compress`: each client gets the coding it
/// prefers with its own ETag and `Vary: Accept-Encoding`, every coding is
/// made once, a small file goes as it is, a client that refuses every
/// coding and identity gets 406, and Python's urllib revalidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_groups_send_each_client_the_coding_it_prefers() {
    let root = TempDir::new("files");
    let text: String = (0..100)
        .map(|i| format!("line {i:03} of a text file\n"))
        .collect::<String>()
        .repeat(2);
    let text = &text[..4096];
    std::fs::write(root.join("text.txt"), text).unwrap();
    std::fs::write(root.join("small.txt"), "small").unwrap();
    let (_python, port) = start_python_server(&root.0).await;
    let args = [
        "--group",
        &format!("files=http://127.0.0.1:{port}/{{key}}"),
        "--group",
        &format!("raw=http://127.0.0.1:{port}/{{key}}"),
        "--content-type",
        "files=text/plain; charset=utf-8",
        "--compress",
        "files",
    ]
    .map(String::from);
    let node = GcNode::start(free_ports(1)[0], &args).await;
    let url = format!("{}/cache/files/text.txt", node.url);
    let identity_etag = etag_of(text.as_bytes());

    let plain = curl(&[], &url).await;
    assert_eq!(plain.body, text.as_bytes());
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.header("etag"), Some(identity_etag.as_str()));

    let mut etags = vec![identity_etag.clone()];
    for (coding, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", unbrotli),
        ("zstd", unzstd),
    ] {
        for _ in 0..3 {
            let reply = curl(&["-H", &format!("Accept-Encoding: {coding}")], &url).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("content-encoding"), Some(coding));
            assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
            assert!(
                reply.body.len() < text.len() / 4,
                "{coding}: {} bytes",
                reply.body.len()
            );
            assert_eq!(decode(&reply.body), text.as_bytes(), "{coding}");
            let etag = reply.header("etag").expect("an ETag").to_string();
            assert_eq!(
                etag,
                format!(
                    "\"{:016x}-{coding}\"",
                    xxhash_rust::xxh3::xxh3_64(&reply.body)
                )
            );
            if !etags.contains(&etag) {
                etags.push(etag);
            }
        }
    }
    assert_eq!(etags.len(), 4, "one ETag per coding: {etags:?}");
    let preferred = curl(
        &["-H", "Accept-Encoding: gzip;q=0.5, br;q=0.9, zstd;q=0.1"],
        &url,
    )
    .await;
    assert_eq!(preferred.header("content-encoding"), Some("br"));
    let decoded = curl(&["--compressed"], &url).await;
    assert_eq!(decoded.body, text.as_bytes(), "curl --compressed decodes");
    assert!(decoded.header("content-encoding").is_some());
    let refused = curl(&["-H", "Accept-Encoding: identity;q=0, gzip;q=0"], &url).await;
    assert_eq!(refused.status, 406);
    assert_eq!(refused.header("vary"), Some("Accept-Encoding"));
    let gz_etag = &etags[1];
    let revalidated = curl(
        &[
            "-H",
            "Accept-Encoding: gzip",
            "-H",
            &format!("If-None-Match: {gz_etag}"),
        ],
        &url,
    )
    .await;
    assert_eq!((revalidated.status, revalidated.body.len()), (304, 0));
    let other_coding = curl(
        &[
            "-H",
            "Accept-Encoding: br",
            "-H",
            &format!("If-None-Match: {gz_etag}"),
        ],
        &url,
    )
    .await;
    assert_eq!(
        other_coding.status, 200,
        "the br copy is another representation"
    );

    let small = curl(
        &["-H", "Accept-Encoding: gzip"],
        &format!("{}/cache/files/small.txt", node.url),
    )
    .await;
    assert_eq!(
        (small.header("content-encoding"), &small.body[..]),
        (None, &b"small"[..])
    );
    assert_eq!(small.header("vary"), Some("Accept-Encoding"));
    let raw = curl(
        &["-H", "Accept-Encoding: gzip"],
        &format!("{}/cache/raw/text.txt", node.url),
    )
    .await;
    assert_eq!(
        raw.header("content-encoding"),
        None,
        "a group without --compress"
    );
    assert_eq!(raw.header("vary"), None);
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));

    let stats = node.stats().await;
    assert_eq!(
        stat(&stats, "files", "Compressions"),
        3,
        "once per coding: {stats}"
    );
    assert_eq!(stat(&stats, "files", "CompressedReplies"), 12, "{stats}");
    assert_eq!(stat(&stats, "files", "CompressedCache.Items"), 3, "{stats}");
    assert_eq!(stat(&stats, "files", "LocalLoads"), 2, "{stats}");

    // Python's urllib: a conditional request with the saved ETag is
    // answered 304 (urllib raises it as an HTTPError).
    let script = r#"
import sys, urllib.request, urllib.error
url = sys.argv[1]
first = urllib.request.urlopen(url)
etag = first.headers["ETag"]
body = first.read()
request = urllib.request.Request(url, headers={"If-None-Match": etag})
try:
    urllib.request.urlopen(request)
    print("no 304")
except urllib.error.HTTPError as e:
    print(e.code, len(e.read()), e.headers["ETag"] == etag, len(body), first.headers["Content-Type"])
"#;
    let (ok, out, err) = run("python3", &["-c".into(), script.into(), url.clone()], b"").await;
    assert!(ok, "python3: {err}");
    assert_eq!(out.trim(), "304 0 True 4096 text/plain; charset=utf-8");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("br");
    out
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::decompress(bytes, 1 << 20).expect("zstd")
}

/// nginx's `proxy_cache` in front of a node: once its copy is a second
/// old it revalidates with the ETag it stored, the node answers 304 (seen
/// in its counters) and nginx serves its copy, REVALIDATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_revalidates_with_conditional_requests() {
    let origin = Origin::start().await;
    let node = GcNode::start(free_ports(1)[0], &node_args(&origin, &[])).await;
    let nginx = Nginx::cache_in_front_of(&node.url, "1s").await;
    let url = format!("{}/cache/g/page", nginx.url);
    let first = http_get(&url).await;
    assert_eq!(
        (first.status, &first.body[..]),
        (200, &value_of(b"page")[..])
    );
    assert_eq!(
        first.header("x-cache-status"),
        Some("MISS"),
        "{}",
        nginx.log()
    );
    let revalidated = eventually(Duration::from_secs(20), "nginx revalidating", || async {
        let reply = http_get(&url).await;
        (reply.header("x-cache-status") == Some("REVALIDATED")).then_some(reply)
    })
    .await;
    assert_eq!(
        (revalidated.status, &revalidated.body[..]),
        (200, &value_of(b"page")[..])
    );
    let stats = node.stats().await;
    assert!(stat(&stats, "g", "NotModified") >= 1, "{stats}");
    assert_eq!(origin.hits(b"page"), 1);
}

/// Headless Chromium loads a page that fetches one URL twice, the second
/// time revalidating (`cache: "no-cache"`): the node answers it 304 and
/// the page still gets the whole text from the browser's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_revalidates_a_fetch_with_if_none_match() {
    let root = TempDir::new("site");
    let page = r#"<!doctype html><html><body><p id="out">waiting</p><script>
async function twice() {
  const first = await fetch("/cache/data/text.txt");
  const a = await first.text();
  const second = await fetch("/cache/data/text.txt", { cache: "no-cache" });
  const b = await second.text();
  document.getElementById("out").textContent =
    "fetched " + first.status + " " + second.status + " " + (a === b) + " " + b.length;
}
twice().catch(e => { document.getElementById("out").textContent = "failed " + e; });
</script></body></html>"#;
    std::fs::write(root.join("page.html"), page).unwrap();
    std::fs::write(root.join("text.txt"), "some text ".repeat(300)).unwrap();
    let (_python, port) = start_python_server(&root.0).await;
    let origin = format!("http://127.0.0.1:{port}/{{key}}");
    let args = [
        "--group".to_string(),
        format!("page={origin}"),
        "--group".to_string(),
        format!("data={origin}"),
        "--content-type".to_string(),
        "page=text/html; charset=utf-8".to_string(),
    ];
    let node = GcNode::start(free_ports(1)[0], &args).await;
    let profile = TempDir::new("chromium-revalidate");
    let mut args = chromium_args(&profile.0, 5_000);
    args.extend([
        "--dump-dom".to_string(),
        format!("{}/cache/page/page.html", node.url),
    ]);
    let (ok, dom, stderr) = run("chromium", &args, b"").await;
    assert!(ok, "chromium --dump-dom failed: {stderr}");
    assert!(dom.contains("fetched 200 200 true 3000"), "{dom}");
    let stats = node.stats().await;
    assert_eq!(stat(&stats, "data", "Gets"), 2, "{stats}");
    assert_eq!(stat(&stats, "data", "NotModified"), 1, "{stats}");
}
