//! Pure types and rules: ids, clocks, key pairs, key files, expiry, JWTs, roles. No IO, no
//! async runtime, no database or transport types: this is where a reader learns the rules.
pub mod clock;
pub mod dpop;
pub mod events;
pub mod expiry;
pub mod ids;
pub mod jwks;
pub mod jwt;
pub mod key_file;
pub mod key_policy;
pub mod keypair;
pub mod list;
pub mod model;
pub mod principal;
pub mod scope;
pub mod secret;
pub mod text;
pub mod trust;
pub mod validate;
