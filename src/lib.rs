//! authn-keys: machine-user keys and API-application keys, wire-compatible with ZITADEL's
//! Management API v1, usable through the JWT-profile grant and token introspection.
pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod proto;
pub mod service;
pub mod storage;
