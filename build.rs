//! Compiles `proto/groupcache.proto` (the golang/groupcache messages) with prost.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/groupcache.proto");
    let mut config = prost_build::Config::new();
    // `bytes` fields become `bytes::Bytes`, so decoding a peer's reply does
    // not copy the value out of the response body.
    config.bytes(["."]);
    config.compile_protos(&["proto/groupcache.proto"], &["proto/"])
}
