//! The generated protobuf types, gRPC server/client code and proto3-JSON impls, in modules
//! that mirror the proto packages. Only `api/` (and the tests) use them.
#![allow(clippy::all, clippy::pedantic, missing_docs, deprecated)]

pub mod codec;
pub mod wkt;

pub mod zitadel {
    pub mod v1 {
        tonic::include_proto!("zitadel.v1");
        include!(concat!(env!("OUT_DIR"), "/zitadel.v1.serde.rs"));
    }
    pub mod authn {
        pub mod v1 {
            tonic::include_proto!("zitadel.authn.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.authn.v1.serde.rs"));
        }
    }
    pub mod user {
        pub mod v1 {
            tonic::include_proto!("zitadel.user.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.user.v1.serde.rs"));
        }
        pub mod v2 {
            tonic::include_proto!("zitadel.user.v2");
            include!(concat!(env!("OUT_DIR"), "/zitadel.user.v2.serde.rs"));
        }
    }
    pub mod application {
        pub mod v2 {
            tonic::include_proto!("zitadel.application.v2");
            include!(concat!(env!("OUT_DIR"), "/zitadel.application.v2.serde.rs"));
        }
    }
    pub mod filter {
        pub mod v2 {
            tonic::include_proto!("zitadel.filter.v2");
            include!(concat!(env!("OUT_DIR"), "/zitadel.filter.v2.serde.rs"));
        }
    }
    pub mod object {
        pub mod v2 {
            tonic::include_proto!("zitadel.object.v2");
            include!(concat!(env!("OUT_DIR"), "/zitadel.object.v2.serde.rs"));
        }
    }
    pub mod protoc_gen_zitadel {
        pub mod v2 {
            tonic::include_proto!("zitadel.protoc_gen_zitadel.v2");
            include!(concat!(
                env!("OUT_DIR"),
                "/zitadel.protoc_gen_zitadel.v2.serde.rs"
            ));
        }
    }
    pub mod member {
        pub mod v1 {
            tonic::include_proto!("zitadel.member.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.member.v1.serde.rs"));
        }
    }
    pub mod org {
        pub mod v1 {
            tonic::include_proto!("zitadel.org.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.org.v1.serde.rs"));
        }
    }
    pub mod project {
        pub mod v1 {
            tonic::include_proto!("zitadel.project.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.project.v1.serde.rs"));
        }
    }
    pub mod app {
        pub mod v1 {
            tonic::include_proto!("zitadel.app.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.app.v1.serde.rs"));
        }
    }
    pub mod management {
        pub mod v1 {
            tonic::include_proto!("zitadel.management.v1");
            include!(concat!(env!("OUT_DIR"), "/zitadel.management.v1.serde.rs"));
        }
    }
}

/// authn-keys' own API (`authnkeys.v1`): key lifecycle and key policy.
pub mod authnkeys {
    pub mod v1 {
        tonic::include_proto!("authnkeys.v1");
        include!(concat!(env!("OUT_DIR"), "/authnkeys.v1.serde.rs"));
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Every file of the API, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("authn_keys_descriptor");
