//! Generates the Rust code for tenure's .proto files with the vendored protoc, so a fresh machine
//! needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        std::env::set_var("PROTOC", protoc);
    }
    let protos = [
        "tenure/v1/common.proto",
        "tenure/v1/locks.proto",
        "tenure/v1/kv.proto",
        "tenure/v1/cluster.proto",
        "tenure/raft/v1/raft.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure().compile_protos(&protos, &["."])?;
    Ok(())
}
