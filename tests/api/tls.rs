//! TLS on the one port: gRPC (h2 by ALPN), gRPC-Web, REST and OAuth over TLS with a
//! certificate made here, and the real binary swapping its certificate on SIGHUP.
use std::{sync::Arc, time::Duration};

use authn_keys::proto::zitadel::management::v1::{
    GetMyOrgRequest, management_service_client::ManagementServiceClient,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};
use serde_json::json;

use crate::helpers::*;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM, cert DER).
fn certificate(name: &str) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn client_config(trusted: &[&[u8]], alpn: &[&[u8]]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for der in trusted {
        roots.add(CertificateDer::from(der.to_vec())).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The certificate a TLS server at `addr` presents, and the protocol ALPN chose.
async fn handshake(addr: &str, trusted: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(trusted, &[b"h2", b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    (
        session.peer_certificates().unwrap()[0].to_vec(),
        session.alpn_protocol().map(<[u8]>::to_vec),
    )
}

#[tokio::test]
async fn every_protocol_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate("authn-keys test");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let mut app = TestApp::spawn_with(move |c| {
        c.tls_cert = Some(cert_path);
        c.tls_key = Some(key_path);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    app.base = format!("https://{addr}");
    app.http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&[&der], &[b"h2", b"http/1.1"]))
        .build()
        .unwrap();

    // ALPN offers h2; the issuer is an https URL.
    let (presented, alpn) = handshake(&addr, &[&der]).await;
    assert_eq!(presented, der);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let discovery: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], json!(app.base));
    assert_eq!(
        discovery["token_endpoint"],
        json!(format!("{}/oauth/v2/token", app.base))
    );

    // OAuth and REST.
    let token = app.admin_token().await;
    let (status, body) = app.rest("GET", "/orgs/me", Some(&token), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["org"]["id"], json!(app.org_id));

    // gRPC over h2, through a TLS connection made here.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&[&der], &[b"h2"])));
    let target = addr.clone();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(target).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    let org = ManagementServiceClient::new(channel)
        .get_my_org(authed(&token, None, GetMyOrgRequest {}))
        .await
        .unwrap()
        .into_inner()
        .org
        .unwrap();
    assert_eq!(org.id, app.org_id);

    // gRPC-Web over HTTP/1.1 with TLS.
    let http1 = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&[&der], &[b"http/1.1"]))
        .http1_only()
        .build()
        .unwrap();
    let resp = http1
        .post(format!(
            "{}/zitadel.management.v1.ManagementService/GetMyOrg",
            app.base
        ))
        .header("content-type", "application/grpc-web+proto")
        .bearer_auth(&token)
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let raw = resp.bytes().await.unwrap();
    assert!(
        raw.windows(org.id.len()).any(|w| w == org.id.as_bytes()),
        "the reply carries the org id"
    );

    // Plain HTTP on a TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn bad_tls_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = certificate("mismatch");
    let (_, other_key, _) = certificate("other");
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), other_key).unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (cert, key, id) in [
        ("cert.pem", "key.pem", "TLS-Conf02"),
        ("empty.pem", "key.pem", "TLS-Read02"),
        ("missing.pem", "key.pem", "TLS-Read01"),
    ] {
        let mut config = authn_keys::config::Config::for_tests(
            "sqlite::memory:",
            dir.path().join("admin-key.json"),
        );
        config.tls_cert = Some(dir.path().join(cert));
        config.tls_key = Some(dir.path().join(key));
        let err = authn_keys::app::App::build(config).await.err().unwrap();
        assert_eq!(err.id, id, "{cert} with {key}");
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = certificate("first");
    let (cert_b, key_b, der_b) = certificate("second");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, cert_a).unwrap();
    std::fs::write(&key, key_a).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let (cert_env, key_env) = (cert.display().to_string(), key.display().to_string());
    let mut server = server_process(
        dir.path(),
        &addr,
        &[
            ("AUTHN_KEYS_TLS_CERT", &cert_env),
            ("AUTHN_KEYS_TLS_KEY", &key_env),
            ("AUTHN_KEYS_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
        std::process::Stdio::piped(),
    );
    let mut log = ProcessLog::of(&mut server);
    wait_for_listener(&addr).await;
    assert_eq!(handshake(&addr, &[&der_a, &der_b]).await.0, der_a);

    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    // A broken pair is refused (the server says so once it has tried) and the running
    // certificate stays.
    std::fs::write(&cert, cert_b.clone()).unwrap();
    std::fs::write(&key, "not a key").unwrap();
    assert!(hup(server.id()).success());
    log.wait_for("TLS certificate reload failed", Duration::from_secs(30))
        .await;
    assert_eq!(handshake(&addr, &[&der_a, &der_b]).await.0, der_a);

    // A good pair: once the server says it reloaded, new connections get the new certificate.
    std::fs::write(&key, key_b).unwrap();
    assert!(hup(server.id()).success());
    log.wait_for("TLS certificate reloaded", Duration::from_secs(30))
        .await;
    let presented = handshake(&addr, &[&der_a, &der_b]).await.0;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        presented, der_b,
        "the new certificate is served after SIGHUP"
    );
}
