//! One set of rules for a node's settings: the same bad values fed to an
//! embedder's `NodeBuilder::build` and to the binary's `--check` are
//! refused by both, for the same reason, and the binary names the flag
//! (exit 2, one line on stderr).
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

use std::process::{Command, Stdio};
use std::time::Duration;

use groupcached::{BuildError, GetterError, NodeBuilder};

async fn echo(key: Vec<u8>) -> Result<bytes::Bytes, GetterError> {
    Ok(key.into())
}

/// A node with one group, as the binary's flags below describe it.
fn builder() -> NodeBuilder {
    NodeBuilder::new("http://127.0.0.1:1").group("g", 1 << 20, echo)
}

/// `groupcached --check` with `flags` (and `--self` and a group, unless
/// they give them): its exit code and stderr.
fn check(flags: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    if !flags.contains(&"--self") {
        args.extend(["--self", "http://127.0.0.1:1"]);
    }
    if !flags.contains(&"--group") {
        args.extend(["--group", "g=echo"]);
    }
    args.extend_from_slice(flags);
    let output = Command::new(env!("CARGO_BIN_EXE_groupcached"))
        .args(&args)
        .arg("--check")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("running groupcached");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

/// One bad value: how an embedder gives it, how the binary's flags give
/// it, the flag the binary names, and the reason both give.
struct Case {
    builder: NodeBuilder,
    flags: &'static [&'static str],
    flag: &'static str,
    reason: &'static str,
}

const GROUP_NAME: &str = "may not be empty or contain '/', spaces or control characters";
const BASE_PATH: &str = "must be /SEGMENT/.../ of A-Z a-z 0-9 - . _ ~ and not start with /cache/";
const PEER_URL: &str = "expected http://host:port or https://host:port with no trailing '/'";

fn cases() -> Vec<Case> {
    vec![
        // A plain space splits the flag's list before any name is read
        // (tests/bad_input.rs); other whitespace reaches the rule.
        Case {
            builder: builder().group("a b", 1 << 20, echo),
            flags: &["--group", "a\u{a0}b=echo"],
            flag: "--group",
            reason: GROUP_NAME,
        },
        Case {
            builder: builder().group("a\tb", 1 << 20, echo),
            flags: &["--group", "a\tb=echo"],
            flag: "--group",
            reason: GROUP_NAME,
        },
        Case {
            builder: builder().group("a\u{7f}b", 1 << 20, echo),
            flags: &["--group", "a\u{7f}b=echo"],
            flag: "--group",
            reason: GROUP_NAME,
        },
        Case {
            builder: builder().group("a/b", 1 << 20, echo),
            flags: &["--group", "a/b=echo"],
            flag: "--group",
            reason: GROUP_NAME,
        },
        Case {
            builder: builder().group("g", 1 << 20, echo),
            flags: &["--group", "g=echo", "--group", "g=echo"],
            flag: "--group",
            reason: "a group of that name was already given",
        },
        Case {
            builder: builder().base_path("/cache/x/"),
            flags: &["--base-path", "/cache/x/"],
            flag: "--base-path",
            reason: BASE_PATH,
        },
        Case {
            builder: builder().base_path("/a b/"),
            flags: &["--base-path", "/a b/"],
            flag: "--base-path",
            reason: BASE_PATH,
        },
        Case {
            builder: builder().peers(["http://127.0.0.1:2/"]),
            flags: &["--peers", "http://127.0.0.1:2/"],
            flag: "--peers",
            reason: PEER_URL,
        },
        Case {
            builder: NodeBuilder::new("localhost:1").group("g", 1 << 20, echo),
            flags: &["--self", "localhost:1"],
            flag: "--self",
            reason: PEER_URL,
        },
        Case {
            builder: builder().replicas(0),
            flags: &["--replicas", "0"],
            flag: "--replicas",
            reason: "0 is not between 1 and 10000",
        },
        Case {
            builder: builder().max_conns_per_peer(100_001),
            flags: &["--max-conns-per-peer", "100001"],
            flag: "--max-conns-per-peer",
            reason: "100001 is not between 1 and 100000",
        },
        Case {
            builder: builder().group("big", 2 << 40, echo),
            flags: &["--group", "big=echo", "--cache-bytes", "2TiB"],
            flag: "--cache-bytes",
            reason: "2199023255552 is not between 0 and 1099511627776",
        },
        Case {
            builder: builder().probe_timeout(Duration::from_secs(3601)),
            flags: &["--probe-timeout", "3601s"],
            flag: "--probe-timeout",
            reason: "3601s is not between 0ns and 3600s",
        },
        Case {
            builder: builder().stale_wait(Duration::from_secs(3601)),
            flags: &["--stale-wait", "3601s"],
            flag: "--stale-wait",
            reason: "3601s is not between 0ns and 3600s",
        },
        Case {
            builder: builder().content_type("g", "html"),
            flags: &["--content-type", "g=html"],
            flag: "--content-type",
            reason: "expected type/subtype, e.g. text/html or application/json",
        },
        Case {
            builder: builder().content_type("g", "text/html; charset"),
            flags: &["--content-type", "g=text/html; charset"],
            flag: "--content-type",
            reason: "a parameter must be name=value, e.g. charset=utf-8",
        },
        Case {
            builder: builder().content_type("g", ""),
            flags: &["--content-type", "g="],
            flag: "--content-type",
            reason: "a media type must not be empty",
        },
        Case {
            builder: builder().content_type("nosuch", "text/html"),
            flags: &["--content-type", "nosuch=text/html"],
            flag: "--content-type",
            reason: "no group named \"nosuch\"",
        },
        Case {
            builder: builder().compress("nosuch"),
            flags: &["--compress", "nosuch"],
            flag: "--compress",
            reason: "no group named \"nosuch\"",
        },
    ]
}

#[test]
fn the_builder_and_the_flags_refuse_the_same_values_for_the_same_reasons() {
    for case in cases() {
        let built = case.builder.build().map(|_| ()).unwrap_err().to_string();
        assert!(built.contains(case.reason), "{:?}: {built}", case.flags);
        assert_eq!(built.lines().count(), 1, "{built}");
        let (code, stderr) = check(case.flags);
        assert_eq!(code, Some(2), "{:?}: {stderr}", case.flags);
        assert_eq!(stderr.lines().count(), 1, "{:?}: {stderr}", case.flags);
        assert!(stderr.contains(case.flag), "{:?}: {stderr}", case.flags);
        assert!(stderr.contains(case.reason), "{:?}: {stderr}", case.flags);
    }
}

/// A TTL longer than the longest one (about 68 years) is refused by
/// both; the binary says so as it reads the flag's `[NAME=]DUR`.
#[test]
fn ttls_past_the_longest_are_refused_by_both() {
    let too_long = Duration::from_secs((1 << 31) + 1);
    let builders = [
        builder().negative_ttl(too_long),
        builder().negative_max_ttl(too_long),
        builder().stale(too_long, Duration::ZERO),
        builder().stale(Duration::ZERO, too_long),
    ];
    for builder in builders {
        let error = builder.build().map(|_| ()).unwrap_err();
        assert!(
            matches!(error, BuildError::DurationOutOfRange { .. }),
            "{error}"
        );
    }
    for flag in [
        "--negative-ttl",
        "--negative-max-ttl",
        "--stale-if-error",
        "--stale-while-revalidate",
        "--default-ttl",
        "--max-ttl",
    ] {
        let (code, stderr) = check(&[flag, "2147483649s"]);
        assert_eq!(code, Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains("longer than the longest TTL"), "{stderr}");
    }
}

/// What both accept: the bounds themselves.
#[test]
fn values_at_the_bounds_pass_both() {
    let longest = Duration::from_secs(1 << 31);
    let node = builder()
        .group("a-b.c~d_e", 0, echo)
        .base_path("/a/b-c.d~e_f/")
        .replicas(10_000)
        .probe_timeout(Duration::from_secs(3600))
        .negative_ttl(longest)
        .stale(longest, longest);
    assert!(node.build().is_ok());
    let (code, stderr) = check(&[
        "--group",
        "a-b.c~d_e=echo",
        "--cache-bytes",
        "1TiB",
        "--base-path",
        "/a/b-c.d~e_f/",
        "--replicas",
        "10000",
        "--probe-timeout",
        "3600s",
        "--negative-ttl",
        "2147483648s",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
}
