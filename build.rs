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
                "proto/zitadel/user/v2/user_service.proto",
                "proto/zitadel/application/v2/application_service.proto",
                "proto/authnkeys/v1/keys.proto",
                "proto/authnkeys/v1/events.proto",
                "proto/authnkeys/v1/trusts.proto",
                "proto/authnkeys/v1/users.proto",
                "proto/google/rpc/status.proto",
            ],
            &["proto"],
        )?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        // grpc-gateway and connect-go ignore JSON fields, and enum names, they do not know; so
        // do we (an unknown enum value reads as the enum's default).
        .ignore_unknown_fields()
        .ignore_unknown_enum_variants()
        .build(&[".zitadel"])?;
    // Our own API refuses an enum value it does not know (a misspelt state or origin must not
    // widen a filter silently); unknown fields are still ignored, for newer clients.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .ignore_unknown_fields()
        .build(&[".authnkeys"])?;

    println!("cargo:rerun-if-changed=proto");
    connect_methods(&out, &std::fs::read(&descriptor_path)?)?;
    embed_ui(&out)?;
    Ok(())
}

/// Writes `connect_methods.rs`: for every method of every service in the descriptor set, its
/// path and the Rust types of its request and response, so that the Connect gateway can
/// transcode proto3 JSON for each without a line of per-method code.
fn connect_methods(
    out: &std::path::Path,
    descriptors: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    use heck::{ToSnakeCase, ToUpperCamelCase};
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(descriptors)?;
    // `.zitadel.user.v2.AddKeyRequest` in package `zitadel.user.v2` → its Rust path.
    let rust_type = |package: &str, full: &str| -> Result<String, String> {
        let name = full
            .strip_prefix('.')
            .and_then(|f| f.strip_prefix(package))
            .and_then(|f| f.strip_prefix('.'))
            .ok_or_else(|| format!("{full} is not in package {package}"))?;
        let mut path = String::from("crate::proto");
        for part in package.split('.') {
            path.push_str("::");
            path.push_str(&part.to_snake_case());
        }
        let parts: Vec<&str> = name.split('.').collect();
        for outer in &parts[..parts.len() - 1] {
            path.push_str("::");
            path.push_str(&outer.to_snake_case());
        }
        path.push_str("::");
        path.push_str(&parts[parts.len() - 1].to_upper_camel_case());
        Ok(path)
    };
    let mut table = String::from("&[\n");
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                if method.client_streaming() || method.server_streaming() {
                    continue;
                }
                let (input, output) = (method.input_type(), method.output_type());
                // Only types of the package itself are generated with proto3-JSON impls here.
                if !input.starts_with(&format!(".{package}."))
                    || !output.starts_with(&format!(".{package}."))
                {
                    return Err(format!(
                        "{}: request and response must be in package {package}",
                        method.name()
                    )
                    .into());
                }
                table.push_str(&format!(
                    "    crate::api::connect::Method::of::<{}, {}>(\"/{package}.{}/{}\"),\n",
                    rust_type(package, input)?,
                    rust_type(package, output)?,
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    table.push(']');
    std::fs::write(out.join("connect_methods.rs"), table)?;
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
