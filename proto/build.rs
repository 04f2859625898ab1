//! Compiles the .proto files with protox, so building Switchyard needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["switchyard/v1/switchyard.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
