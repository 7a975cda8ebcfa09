//! The gRPC face of the service: the ManagementService implementation (which REST and
//! gRPC-Web reach too), the status mapping, and proto conversions.
pub mod application_v2;
pub mod authnkeys;
pub mod convert;
pub mod edge;
pub mod events;
pub mod frames;
pub mod management;
pub mod pgv;
pub mod status;
pub mod trusts;
pub mod user_v2;
pub mod users;
