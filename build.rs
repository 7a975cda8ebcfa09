//! Generates the gRPC code, the proto3-JSON (serde) impls and the descriptor set that
//! reflection serves, from `proto/`. protoc comes from the protoc-bin-vendored crate, so a
//! fresh machine needs no system protoc; `$PROTOC` overrides it.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("authn_keys_descriptor.bin");

    let mut config = tonic_prost_build::Config::new();
    println!("cargo:rerun-if-env-changed=PROTOC");
    if env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        // Well-known types come from pbjson-types (proto3 JSON built in); Timestamp from our own
        // type, which writes RFC 3339 with a `Z` as grpc-gateway does.
        .compile_well_known_types(true)
        // Malformed protobuf is the client's fault: INVALID_ARGUMENT, not tonic's INTERNAL.
        .codec_path("crate::proto::codec::Codec")
        .extern_path(".google.protobuf.Timestamp", "crate::proto::wkt::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_with_config(
            config,
            &[
                "proto/zitadel/management.proto",
                "proto/google/rpc/status.proto",
            ],
            &["proto"],
        )?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        // grpc-gateway ignores JSON fields it does not know; so do we.
        .ignore_unknown_fields()
        .build(&[".zitadel"])?;

    println!("cargo:rerun-if-changed=proto");
    embed_ui(&out)?;
    Ok(())
}

/// Writes `ui_assets.rs`: every file under `ui/` as `(path, bytes)`, included at compile time,
/// so the binary serves the console without Node or files beside it.
fn embed_ui(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    fn walk(dir: &std::path::Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("ui");
    println!("cargo:rerun-if-changed=ui");
    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &mut files)?;
    }
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&root)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        println!("cargo:rerun-if-changed={}", file.display());
        table.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),\n",
            file.display().to_string()
        ));
    }
    table.push(']');
    std::fs::write(out.join("ui_assets.rs"), table)?;
    Ok(())
}
