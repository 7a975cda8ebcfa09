//! Transports: gRPC (+ gRPC-Web), the REST gateway, OAuth endpoints, health, reflection —
//! all assembled here into one router served on one port. The only place that touches
//! generated proto types.
pub mod grpc;
pub mod oauth;
pub mod rest;
mod router;

pub use router::router;
