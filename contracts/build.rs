//! Compiles `proto/checkout.proto` with `protox` (a pure-Rust protobuf compiler),
//! so building the workspace never needs a system `protoc`.

use std::{env, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/checkout.proto");

    let descriptors = protox::compile(["checkout.proto"], ["proto"])?;

    // The encoded descriptor set feeds gRPC server reflection.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("checkout_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
