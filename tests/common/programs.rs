//! Running a program to completion (`promtool`, `chromium`), and
//! headless Chromium's flags.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Runs `program ARGS` to completion (at most 60 s, killed otherwise):
/// exit status success, stdout, stderr.
pub async fn run(program: &str, args: &[String], stdin: &[u8]) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e} (scripts/deps installs it)"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("writing stdin");
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} ran for more than 60 s"))
        .expect("waiting for the program");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Chromium's flags for a headless run as root with a throwaway profile;
/// the page's scripts get `virtual_ms` of virtual time (its clock runs
/// ahead while it waits) to fetch /status and draw before the dump.
pub fn chromium_args(profile: &Path, virtual_ms: u32) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--virtual-time-budget={virtual_ms}"),
    ])
    .collect()
}
