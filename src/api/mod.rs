//! Transports: gRPC (+ gRPC-Web), the REST gateway, OAuth endpoints, health, reflection —
//! all assembled here into one router served on one port. The only place that touches
//! generated proto types.
use std::net::{IpAddr, SocketAddr};

use axum::{Extension, extract::ConnectInfo};

pub mod client_addr;
pub mod connect;
pub mod cors;
pub mod grpc;
pub mod limits;
pub mod oauth;
pub mod observe;
pub mod protocol;
pub mod rest;
mod router;
pub mod tls;
mod ui;

pub use router::{RouterSettings, router};

/// The peer address the accept loop puts on every request, or the client's behind a trusted
/// proxy (`client_addr`); absent when the router is called without it, e.g. in-process.
pub type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub fn peer_ip(peer: Peer) -> Option<IpAddr> {
    peer.map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// A JSON request body as a proto3 message, the error naming where in the body it went wrong
/// (`policy.maxLifetime: missing 's' suffix`): serde's own message names only the line and
/// column, which tells a REST or Connect client nothing about which field to fix.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Syntax errors have no field to name; "." is serde_path_to_error's empty path.
        if path == "." || inner.is_syntax() || inner.is_eof() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}
