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
