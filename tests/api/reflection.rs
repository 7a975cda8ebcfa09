//! The descriptors served by reflection match contract.json: every method's path and every
//! in-scope message's fields (name, number, JSON name, type).
use std::collections::HashMap;

use prost::Message;
use prost_types::{
    FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};
use serde_json::Value;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::*;

const CONTRACT: &str = include_str!("contract.json");

async fn files(app: &TestApp, symbol: &str) -> Vec<FileDescriptorProto> {
    let mut client = ServerReflectionClient::new(app.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(f)) = resp.message_response else {
        panic!("no descriptors")
    };
    f.file_descriptor_proto
        .iter()
        .map(|b| FileDescriptorProto::decode(b.as_slice()).unwrap())
        .collect()
}

fn scalar(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Uint64 => "uint64",
        Type::Uint32 => "uint32",
        Type::Int32 => "int32",
        Type::Int64 => "int64",
        Type::Bool => "bool",
        Type::Bytes => "bytes",
        _ => "?",
    }
}

/// What reflection serves, by full name: messages (nested ones too), enums, methods, and the
/// file of each top-level definition.
struct Served {
    messages: HashMap<String, prost_types::DescriptorProto>,
    enums: HashMap<String, prost_types::EnumDescriptorProto>,
    file_of: HashMap<String, String>,
}

/// Indexes the served files, and checks that every method of the contract is served with its
/// request and response types.
fn index_and_check_methods(all: &[FileDescriptorProto], contract: &Value) -> Served {
    let mut served = Served {
        messages: HashMap::new(),
        enums: HashMap::new(),
        file_of: HashMap::new(),
    };
    let mut methods = HashMap::new();
    for f in all {
        let pkg = f.package();
        index_messages(pkg, &f.message_type, &mut served.messages);
        for m in &f.message_type {
            served
                .file_of
                .insert(format!("{pkg}.{}", m.name()), f.name().to_owned());
        }
        for e in &f.enum_type {
            served
                .enums
                .insert(format!("{pkg}.{}", e.name()), e.clone());
            served
                .file_of
                .insert(format!("{pkg}.{}", e.name()), f.name().to_owned());
        }
        for s in &f.service {
            for m in &s.method {
                methods.insert(format!("/{pkg}.{}/{}", s.name(), m.name()), m.clone());
            }
        }
    }
    for (name, m) in contract["methods"].as_object().unwrap() {
        let path = m["grpcPath"].as_str().unwrap();
        let method: &prost_types::MethodDescriptorProto = methods
            .get(path)
            .unwrap_or_else(|| panic!("{name} ({path}) is not served"));
        assert_eq!(
            method.input_type(),
            format!(".{}", m["request"].as_str().unwrap())
        );
        assert_eq!(
            method.output_type(),
            format!(".{}", m["response"].as_str().unwrap())
        );
    }
    served
}

#[tokio::test]
async fn served_descriptors_match_the_contract() {
    let app = TestApp::spawn().await;
    let contract: Value = serde_json::from_str(CONTRACT).unwrap();
    let mut all = Vec::new();
    // Each answer carries the file that defines the symbol; ask for the service and for
    // one message of every package.
    for symbol in [
        "zitadel.management.v1.ManagementService",
        "zitadel.v1.ObjectDetails",
        "zitadel.v1.LocalizedMessage",
        "zitadel.authn.v1.Key",
        "zitadel.user.v1.User",
        "zitadel.org.v1.Org",
        "zitadel.project.v1.Project",
        "zitadel.app.v1.App",
    ] {
        all.extend(files(&app, symbol).await);
    }
    let Served {
        messages, enums, ..
    } = index_and_check_methods(&all, &contract);
    let mut checked = 0;
    for (full, fields) in contract["messages"].as_object().unwrap() {
        let served = messages
            .get(full)
            .unwrap_or_else(|| panic!("message {full} is not served"));
        assert_eq!(
            served.field.len(),
            fields.as_array().unwrap().len(),
            "field count of {full}"
        );
        for f in fields.as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let sf = served
                .field
                .iter()
                .find(|x| x.name() == name)
                .unwrap_or_else(|| panic!("{full}.{name} missing"));
            assert_eq!(
                i64::from(sf.number()),
                f["number"].as_i64().unwrap(),
                "{full}.{name} number"
            );
            assert_eq!(
                sf.json_name(),
                f["jsonName"].as_str().unwrap(),
                "{full}.{name} json name"
            );
            let mut ty = f["type"].as_str().unwrap().to_owned();
            let repeated = ty.starts_with("repeated ");
            if repeated {
                ty = ty["repeated ".len()..].to_owned();
            }
            assert_eq!(
                sf.label() == Label::Repeated,
                repeated,
                "{full}.{name} repeated"
            );
            match sf.r#type() {
                Type::Message => assert_eq!(sf.type_name(), format!(".{ty}"), "{full}.{name} type"),
                Type::Enum => match ty.strip_prefix("enum ") {
                    // Enums the contract spells out: name and every value.
                    Some(spelled) => {
                        let enum_name = spelled.split(' ').next().unwrap();
                        assert_eq!(
                            sf.type_name(),
                            format!(".{enum_name}"),
                            "{full}.{name} enum"
                        );
                        let served_enum = &enums[enum_name];
                        for v in ty
                            .split('{')
                            .nth(1)
                            .unwrap()
                            .trim_end_matches('}')
                            .split(',')
                        {
                            let (vn, num) = v.trim().split_once('=').unwrap();
                            let sv = served_enum
                                .value
                                .iter()
                                .find(|x| x.name() == vn)
                                .unwrap_or_else(|| panic!("{enum_name}.{vn}"));
                            assert_eq!(sv.number().to_string(), num);
                        }
                    }
                    None => assert_eq!(sf.type_name(), format!(".{ty}"), "{full}.{name} enum"),
                },
                t => assert_eq!(scalar(t), ty, "{full}.{name} type"),
            }
            assert_eq!(
                sf.proto3_optional(),
                f.get("optional").and_then(Value::as_bool).unwrap_or(false),
                "{full}.{name} optional"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked} fields");
}

#[tokio::test]
async fn reflection_v1alpha_lists_services() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("no list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"zitadel.management.v1.ManagementService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    // Health answers SERVING.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "zitadel.management.v1.ManagementService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// The files reflection serves for every service, message and enum of the v2 contract.
async fn v2_files(app: &TestApp, contract: &Value) -> Vec<FileDescriptorProto> {
    let mut symbols: Vec<&String> = contract["services"].as_object().unwrap().keys().collect();
    symbols.extend(contract["messages"].as_object().unwrap().keys());
    symbols.extend(contract["enums"].as_object().unwrap().keys());
    let mut all: Vec<FileDescriptorProto> = Vec::new();
    for symbol in symbols {
        // Nested messages are found through their file's top-level definitions.
        for f in files(app, symbol).await {
            if !all.iter().any(|a| a.name() == f.name()) {
                all.push(f);
            }
        }
    }
    all
}

/// Nested messages under their full names.
fn index_messages(
    prefix: &str,
    msgs: &[prost_types::DescriptorProto],
    out: &mut HashMap<String, prost_types::DescriptorProto>,
) {
    for m in msgs {
        let full = format!("{prefix}.{}", m.name());
        index_messages(&full, &m.nested_type, out);
        out.insert(full, m.clone());
    }
}

#[tokio::test]
async fn served_v2_descriptors_match_contract_v2() {
    let app = TestApp::spawn().await;
    let contract: Value = serde_json::from_str(include_str!("contract-v2.json")).unwrap();
    let all = v2_files(&app, &contract).await;
    let Served {
        messages,
        enums,
        file_of,
    } = index_and_check_methods(&all, &contract);
    let mut checked = 0;
    for (full, spec) in contract["messages"].as_object().unwrap() {
        let served = messages
            .get(full)
            .unwrap_or_else(|| panic!("message {full} is not served"));
        // Top-level definitions live in ZITADEL's file.
        if let Some(file) = file_of.get(full) {
            assert_eq!(file, spec["file"].as_str().unwrap(), "file of {full}");
        }
        let fields = spec["fields"].as_array().unwrap();
        assert_eq!(served.field.len(), fields.len(), "field count of {full}");
        for f in fields {
            let name = f["name"].as_str().unwrap();
            let sf = served
                .field
                .iter()
                .find(|x| x.name() == name)
                .unwrap_or_else(|| panic!("{full}.{name} missing"));
            let at = format!("{full}.{name}");
            assert_eq!(
                i64::from(sf.number()),
                f["number"].as_i64().unwrap(),
                "{at} number"
            );
            assert_eq!(
                sf.json_name(),
                f["jsonName"].as_str().unwrap(),
                "{at} json name"
            );
            let label = f["label"].as_str().unwrap();
            assert_eq!(
                sf.label() == Label::Repeated,
                label == "repeated",
                "{at} repeated"
            );
            assert_eq!(sf.proto3_optional(), label == "optional", "{at} optional");
            let ty = f["type"].as_str().unwrap();
            match f["kind"].as_str().unwrap() {
                "message" => {
                    assert_eq!(sf.r#type(), Type::Message, "{at} kind");
                    assert_eq!(sf.type_name(), format!(".{ty}"), "{at} type");
                }
                "enum" => {
                    assert_eq!(sf.r#type(), Type::Enum, "{at} kind");
                    assert_eq!(sf.type_name(), format!(".{ty}"), "{at} type");
                }
                _ => {
                    let served_ty = format!("{:?}", sf.r#type()).to_lowercase();
                    assert_eq!(served_ty, ty, "{at} type");
                }
            }
            // Real oneofs by name (proto3 optional fields sit in synthetic ones).
            let oneof = sf
                .oneof_index
                .filter(|_| !sf.proto3_optional())
                .map(|i| served.oneof_decl[i as usize].name().to_owned());
            assert_eq!(oneof.as_deref(), f["oneof"].as_str(), "{at} oneof");
            checked += 1;
        }
    }
    for (full, spec) in contract["enums"].as_object().unwrap() {
        let served = enums
            .get(full)
            .unwrap_or_else(|| panic!("enum {full} is not served"));
        let values: Vec<(String, i64)> = served
            .value
            .iter()
            .map(|v| (v.name().to_owned(), i64::from(v.number())))
            .collect();
        let expected: Vec<(String, i64)> = spec["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["number"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(values, expected, "values of {full}");
        checked += 1;
    }
    assert!(checked > 100, "checked {checked}");
}
