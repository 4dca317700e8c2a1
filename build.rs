//! Compiles `proto/groupcache.proto` (the golang/groupcache messages) with
//! prost, parsing it with protox: a pure-Rust compiler, so building needs
//! no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/groupcache.proto");
    let descriptors = protox::compile(["groupcache.proto"], ["proto/"])?;
    let mut config = prost_build::Config::new();
    // `bytes` fields become `bytes::Bytes`, so decoding a peer's reply does
    // not copy the value out of the response body.
    config.bytes(["."]);
    config.compile_fds(descriptors)?;
    Ok(())
}
