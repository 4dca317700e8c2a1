//! Compiles `proto/groupcache.proto` (the golang/groupcache messages) with
//! prost, parsing it with protox: a pure-Rust compiler, so building needs
//! no `protoc` on the machine. Also records the git revision being built,
//! for `groupcached --version` (`unknown` outside a git checkout, such as
//! a packaged crate).

use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/groupcache.proto");
    let descriptors = protox::compile(["groupcache.proto"], ["proto/"])?;
    let mut config = prost_build::Config::new();
    // `bytes` fields become `bytes::Bytes`, so decoding a peer's reply does
    // not copy the value out of the response body.
    config.bytes(["."]);
    config.compile_fds(descriptors)?;
    println!("cargo:rustc-env=GROUPCACHED_REVISION={}", revision());
    Ok(())
}

/// The short hash of `HEAD`, rebuilt when `HEAD` or a branch moves.
fn revision() -> String {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_string())
    };
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        // A path that does not exist would rerun this script every build.
        let path = git(&["rev-parse", "--git-path", path]);
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}
