//! Python's `http.server` as an origin, serving a directory of files
//! (with `Last-Modified`, without `Cache-Control`), as many users' static
//! origins do.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, try_get, Proc};

/// `python3 -m http.server 0` serving `root`; its port, read from its
/// "Serving HTTP on 127.0.0.1 port N" line.
pub async fn start_python_server(root: &std::path::Path) -> (Proc, u16) {
    use std::io::BufRead;
    let mut command = Command::new("python3");
    command
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn("python3 http.server", &mut command);
    let stdout = proc.child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .expect("python3 http.server printed nothing")
        .unwrap();
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    wait_healthy_any(&format!("http://127.0.0.1:{port}/")).await;
    (proc, port)
}

/// Polls `url` until it answers at all.
async fn wait_healthy_any(url: &str) {
    eventually(
        Duration::from_secs(10),
        format!("{url} answering"),
        || async { try_get(url).await.ok() },
    )
    .await;
}
