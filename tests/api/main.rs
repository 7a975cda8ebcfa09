//! The integration suite: every test starts the real server on 127.0.0.1:0 and talks to it
//! over real sockets (tonic gRPC, gRPC-Web over HTTP/1.1, REST and OAuth over HTTP).
//! SQLite by default; PostgreSQL when DATABASE_URL names a server.
mod bad_input;
mod bootstrap;
mod browsers;
mod concurrency;
mod connect;
mod crashes;
mod flow;
mod grpc_web;
mod helpers;
mod hostile;
mod introspection;
mod isolation;
mod listings;
mod machine_keys;
mod notices;
mod oauth;
mod operations;
mod orgs_users;
mod outage;
mod plans;
mod processes;
mod projects;
mod protocols;
mod proxies;
mod reflection;
mod rest;
mod secrets;
mod security;
mod shutdown;
mod side_channels;
mod signing;
mod streams;
mod tls;
mod trust;
mod v2;
