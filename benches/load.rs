//! The load generator: starts the real server (release build, SQLite, or PostgreSQL or MySQL
//! when DATABASE_URL names one) and drives it over real sockets with N connections × M concurrent
//! streams for a fixed time per operation — gRPC on N HTTP/2 connections with M streams each;
//! gRPC-Web and REST over HTTP/1.1 with N × M keep-alive connections (HTTP/1.1 has no
//! streams). It prints requests/s and p50/p90/p99 for each, the baselines measured in the same
//! run — `grpc.health.v1.Health/Check` under the same load (the stack's ceiling) and the raw
//! in-process RSA-2048 generation rate — every figure as a ratio to its baseline, and writes
//! the table as Markdown. Figures are reported, never asserted.
//!
//! `cargo bench --bench load -- [--seconds 5] [--connections 4] [--streams 16] [--out FILE]`
#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use authn_keys::{
    config::SigningAlgorithm,
    domain::{
        keypair::PrivateKey,
        model::{AuthnKey, KeyOwner},
    },
    proto::authnkeys::v1::{self as own, key_service_client::KeyServiceClient},
    proto::zitadel::management::v1::{management_service_client::ManagementServiceClient, *},
    storage::{TransactionTrait, repo},
};
use helpers::*;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

struct Opts {
    seconds: f64,
    connections: usize,
    streams: usize,
    out: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 5.0,
        connections: 4,
        streams: 16,
        out: "target/load-report.md".into(),
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => o.seconds = next.parse().expect("--seconds N"),
            "--connections" => o.connections = next.parse().expect("--connections N"),
            "--streams" => o.streams = next.parse().expect("--streams N"),
            "--out" => o.out = next,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// What one operation did under load.
#[derive(Default)]
struct Stats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i]
    }
}

/// Runs `op(worker, i)` from `workers` concurrent tasks until `duration` has passed (or `op`
/// says there is nothing left: `None`).
async fn drive<F, Fut>(workers: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<bool>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (op, counter) = (op.clone(), counter.clone());
            tokio::spawn(async move {
                let mut s = Stats::default();
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match op(w, i).await {
                        Some(true) => {
                            s.ok += 1;
                            s.latencies.push(t.elapsed());
                        }
                        Some(false) => s.errors += 1,
                        None => break,
                    }
                }
                s
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await.unwrap();
        all.ok += s.ok;
        all.errors += s.errors;
        all.latencies.extend(s.latencies);
    }
    all.elapsed = start.elapsed();
    all.latencies.sort();
    all
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Report {
    rows: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        op: &str,
        transport: &str,
        s: &Stats,
        base: Option<(&str, f64)>,
        target: &str,
    ) {
        let ratio = base
            .map(|(name, b)| format!("{:.2}× {name}", s.rps() / b))
            .unwrap_or_else(|| "baseline".into());
        let line = format!(
            "| {op} | {transport} | {:.0} | {} | {} | {} | {} | {ratio} | {target} |",
            s.rps(),
            ms(s.pct(0.5)),
            ms(s.pct(0.9)),
            ms(s.pct(0.99)),
            s.errors,
        );
        println!("{line}");
        self.rows.push(line);
    }
    fn line(&mut self, text: String) {
        println!("{text}");
        self.rows.push(text);
    }
}

fn grpc_web_frame(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut f = vec![0u8];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    f
}

/// One gRPC-Web (binary) call over HTTP/1.1: whether it answered grpc-status 0.
async fn grpc_web(http: &reqwest::Client, url: &str, token: &str, frame: Vec<u8>) -> bool {
    let Ok(resp) = http
        .post(url)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .bearer_auth(token)
        .body(frame)
        .send()
        .await
    else {
        return false;
    };
    if resp.headers().get("grpc-status").is_some_and(|s| s != "0") {
        return false;
    }
    resp.bytes()
        .await
        .is_ok_and(|b| b.windows(13).any(|w| w == b"grpc-status:0"))
}

async fn rest(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> bool {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// The raw in-process generation rate: median ms per key on one thread, keys/s on all cores.
fn raw_keygen(seconds: f64) -> (Duration, f64) {
    let mut single = Vec::new();
    for _ in 0..12 {
        let t = Instant::now();
        PrivateKey::generate(2048).unwrap();
        single.push(t.elapsed());
    }
    single.sort();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let made: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(move || {
                    let mut n = 0;
                    while Instant::now() < deadline {
                        PrivateKey::generate(2048).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (
        single[single.len() / 2],
        made as f64 / start.elapsed().as_secs_f64(),
    )
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main]
async fn main() {
    let o = opts();
    let dur = Duration::from_secs_f64(o.seconds);
    let workers = o.connections * o.streams;
    let backend = database_server()
        .and_then(|url| authn_keys::storage::Backend::of_url(&url))
        .map_or("SQLite", |b| b.name());
    // The raw generation rate first, while nothing else runs.
    let (one_key, raw_rate) = tokio::task::spawn_blocking(|| raw_keygen(4.0))
        .await
        .unwrap();
    let app = TestApp::spawn_with(|c| {
        c.key_pool_size = 32;
        c.key_pool_workers = 0;
        c.max_concurrent_requests = 4096;
        c.db_max_connections = 16;
    })
    .await;
    let admin = app.admin_token().await;
    let base = app.base.clone();
    let mgmt = format!("{base}/zitadel.management.v1.ManagementService");

    // Data: a user with 100 keys; an app with a key; a second user whose tokens are fresh.
    let (user, user_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let token = app.token_for(&user_key).await;
    let mut c = app.grpc().await;
    for _ in 0..99 {
        c.add_machine_key(authed(&admin, None, new_key(&user)))
            .await
            .unwrap();
    }
    let key_id = user_key.key_id.clone();
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (_, body) = app
        .grant(
            &user_key,
            &format!("{API_SCOPE} urn:zitadel:iam:org:project:id:{pid}:aud"),
        )
        .await;
    let introspected = body["access_token"].as_str().unwrap().to_owned();

    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..o.connections {
        channels.push(app.channel().await);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()
        .unwrap();
    // The grants run over HTTP/2 like the Health baseline (and like h2load): as many
    // connections as gRPC uses, the workers' requests spread over them as streams. One row
    // repeats the opaque grant over HTTP/1.1 keep-alive connections, for reference.
    let h2: Vec<reqwest::Client> = (0..o.connections)
        .map(|_| {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        })
        .collect();

    println!(
        "\nload: {} connections × {} streams = {workers} concurrent requests, {:.0} s per operation, {backend}\n",
        o.connections, o.streams, o.seconds
    );
    // Baselines and reads are measured with the pool full (its generators idle).
    let full = || async {
        while app
            .services
            .keygen
            .pool_level()
            .is_some_and(|(ready, size)| ready < size)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    full().await;
    let mut r = Report { rows: Vec::new() };
    r.line(
        "| operation | transport | req/s | p50 ms | p90 ms | p99 ms | errors | ratio | target |"
            .into(),
    );
    r.line("|---|---|---|---|---|---|---|---|---|".into());

    // Baseline: Health/Check, same load.
    let health = {
        let chans = channels.clone();
        drive(workers, dur, move |w, _| {
            let mut h =
                tonic_health::pb::health_client::HealthClient::new(chans[w % chans.len()].clone());
            async move {
                Some(
                    h.check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok(),
                )
            }
        })
        .await
    };
    let h = health.rps();
    r.row("Health/Check", "gRPC", &health, None, "ceiling");
    let hb = Some(("Health", h));

    // GetMachineKeyByIDs on the three transports.
    let get = GetMachineKeyByIDsRequest {
        user_id: user.clone(),
        key_id: key_id.clone(),
    };
    let get_grpc = {
        let (chans, token, get) = (channels.clone(), token.clone(), get.clone());
        drive(workers, dur, move |w, _| {
            let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
            let req = authed(&token, None, get.clone());
            async move { Some(c.get_machine_key_by_i_ds(req).await.is_ok()) }
        })
        .await
    };
    r.row("GetMachineKeyByIDs", "gRPC", &get_grpc, hb, "≥ 0.5× Health");
    let g = Some(("gRPC", get_grpc.rps()));

    // The same call with a DPoP-bound token: each request carries a fresh proof (ES256, then
    // EdDSA; signed beforehand, a distinct jti each, so the generator's signing does not
    // compete for the CPU being measured), which the server verifies and whose jti it spends
    // in the database. Against the plain bearer call measured right before them.
    {
        let htu = format!(
            "{}/zitadel.management.v1.ManagementService/GetMachineKeyByIDs",
            app.services.settings.issuer
        );
        let plain = {
            let (chans, token, get) = (channels.clone(), token.clone(), get.clone());
            drive(workers, dur, move |w, _| {
                let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
                let req = authed(&token, None, get.clone());
                async move { Some(c.get_machine_key_by_i_ds(req).await.is_ok()) }
            })
            .await
        };
        r.row(
            "GetMachineKeyByIDs, bearer token (before DPoP)",
            "gRPC",
            &plain,
            hb,
            "—",
        );
        for alg in ["ES256", "EdDSA"] {
            let dpop_key = TestKey::new(alg);
            let (bound, _) = app.dpop_token_for(&user_key, &dpop_key).await;
            let ath = authn_keys::domain::dpop::token_hash(&bound);
            let count = ((plain.rps() * o.seconds * 1.5) as usize).clamp(2_000, 400_000);
            let proofs: Arc<Vec<String>> = Arc::new(
                (0..count)
                    .map(|_| dpop_key.dpop_proof("POST", &htu, json!({"ath": ath})))
                    .collect(),
            );
            let bound_calls = {
                let (chans, get) = (channels.clone(), get.clone());
                let authorization = format!("DPoP {bound}");
                drive(workers, dur, move |w, i| {
                    let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
                    let proof = proofs.get(i).cloned();
                    let mut req = tonic::Request::new(get.clone());
                    req.metadata_mut()
                        .insert("authorization", authorization.parse().unwrap());
                    async move {
                        req.metadata_mut().insert("dpop", proof?.parse().unwrap());
                        Some(c.get_machine_key_by_i_ds(req).await.is_ok())
                    }
                })
                .await
            };
            r.row(
                &format!("GetMachineKeyByIDs, DPoP-bound token with an {alg} proof"),
                "gRPC",
                &bound_calls,
                Some(("bearer", plain.rps())),
                "≥ 0.67× bearer (≤ 1.5× its cost)",
            );
        }
    }
    let s = {
        let (http, token, url, frame) = (
            http.clone(),
            token.clone(),
            format!("{mgmt}/GetMachineKeyByIDs"),
            grpc_web_frame(&get),
        );
        drive(workers, dur, move |_, _| {
            let (http, token, url, frame) =
                (http.clone(), token.clone(), url.clone(), frame.clone());
            async move { Some(grpc_web(&http, &url, &token, frame).await) }
        })
        .await
    };
    r.row("GetMachineKeyByIDs", "gRPC-Web", &s, g, "≥ 0.7× gRPC");
    let s = {
        let (http, token, url) = (
            http.clone(),
            token.clone(),
            format!("{base}/management/v1/users/{user}/keys/{key_id}"),
        );
        drive(workers, dur, move |_, _| {
            let (http, token, url) = (http.clone(), token.clone(), url.clone());
            async move { Some(rest(&http, reqwest::Method::GET, &url, &token, None).await) }
        })
        .await
    };
    r.row("GetMachineKeyByIDs", "REST", &s, g, "≥ 0.7× gRPC");

    // ListMachineKeys, 10 of 100.
    let list = ListMachineKeysRequest {
        user_id: user.clone(),
        query: Some(authn_keys::proto::zitadel::v1::ListQuery {
            offset: 0,
            limit: 10,
            asc: false,
        }),
    };
    let list_grpc = {
        let (chans, token, list) = (channels.clone(), token.clone(), list.clone());
        drive(workers, dur, move |w, _| {
            let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
            let req = authed(&token, None, list.clone());
            async move {
                Some(
                    c.list_machine_keys(req)
                        .await
                        .is_ok_and(|r| r.get_ref().result.len() == 10),
                )
            }
        })
        .await
    };
    r.row(
        "ListMachineKeys (10 of 100)",
        "gRPC",
        &list_grpc,
        hb,
        "≥ 0.35× Health",
    );
    let lg = Some(("gRPC", list_grpc.rps()));
    let s = {
        let (http, token, url, frame) = (
            http.clone(),
            token.clone(),
            format!("{mgmt}/ListMachineKeys"),
            grpc_web_frame(&list),
        );
        drive(workers, dur, move |_, _| {
            let (http, token, url, frame) =
                (http.clone(), token.clone(), url.clone(), frame.clone());
            async move { Some(grpc_web(&http, &url, &token, frame).await) }
        })
        .await
    };
    r.row(
        "ListMachineKeys (10 of 100)",
        "gRPC-Web",
        &s,
        lg,
        "≥ 0.7× gRPC",
    );
    let s = {
        let (http, token, url) = (
            http.clone(),
            token.clone(),
            format!("{base}/management/v1/users/{user}/keys/_search"),
        );
        drive(workers, dur, move |_, _| {
            let (http, token, url) = (http.clone(), token.clone(), url.clone());
            async move {
                Some(
                    rest(
                        &http,
                        reqwest::Method::POST,
                        &url,
                        &token,
                        Some(json!({"query": {"limit": 10}})),
                    )
                    .await,
                )
            }
        })
        .await
    };
    r.row("ListMachineKeys (10 of 100)", "REST", &s, lg, "≥ 0.7× gRPC");

    // Token grant: a distinct assertion per request (signed beforehand, so the generator's
    // own RSA signing does not compete for the CPU being measured; without jti, as the SDKs
    // send them, so the set may be cycled).
    let assertions: Arc<Vec<String>> = Arc::new(
        (0..4000)
            .map(|i| app.assertion(&user_key, json!({"n": i})))
            .collect(),
    );
    let grant = drive_grants(&h2, &base, workers, dur, assertions.clone()).await;
    r.row(
        "JWT-profile grant (opaque token)",
        "OAuth, HTTP/2",
        &grant,
        hb,
        "≥ 0.25× Health",
    );
    let grant_h1 = drive_grants(
        std::slice::from_ref(&http),
        &base,
        workers,
        dur,
        assertions.clone(),
    )
    .await;
    r.row(
        "JWT-profile grant (opaque token)",
        "OAuth, HTTP/1.1",
        &grant_h1,
        Some(("HTTP/2", grant.rps())),
        "—",
    );

    // Introspection with a client assertion (a distinct one per request, cycled likewise).
    let client_assertions: Arc<Vec<String>> = Arc::new(
        (0..4000)
            .map(|i| app.assertion(&app_key, json!({"n": i})))
            .collect(),
    );
    let intro = {
        let (http, url, a, t) = (
            http.clone(),
            format!("{base}/oauth/v2/introspect"),
            client_assertions.clone(),
            introspected.clone(),
        );
        drive(workers, dur, move |_, i| {
            let (http, url, t) = (http.clone(), url.clone(), t.clone());
            let assertion = a[i % a.len()].clone();
            async move {
                let resp = http
                    .post(&url)
                    .form(&[
                        ("token", t.as_str()),
                        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ])
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        Some(r.json::<Value>().await.is_ok_and(|v| v["active"] == true))
                    }
                    _ => Some(false),
                }
            }
        })
        .await
    };
    r.row(
        "introspection, client assertion",
        "OAuth, HTTP/1.1",
        &intro,
        hb,
        "≥ 0.25× Health",
    );

    // authnkeys.v1 ListKeys of one user, 10 of 100 (gRPC).
    let list_own = {
        let (chans, token, user) = (channels.clone(), token.clone(), user.clone());
        drive(workers, dur, move |w, _| {
            let mut c = KeyServiceClient::new(chans[w % chans.len()].clone());
            let req = authed(
                &token,
                None,
                own::ListKeysRequest {
                    user_id: user.clone(),
                    limit: 10,
                    ..Default::default()
                },
            );
            async move {
                Some(
                    c.list_keys(req)
                        .await
                        .is_ok_and(|r| r.get_ref().result.len() == 10),
                )
            }
        })
        .await
    };
    r.row(
        "ListKeys, authnkeys.v1 (10 of 100)",
        "gRPC",
        &list_own,
        hb,
        "≥ 0.35× Health",
    );

    // Grants with uploaded P-256 and Ed25519 keys of the same user, each against an RS256
    // grant measured right before it (the rate drifts as the token table grows).
    for alg in ["ES256", "EdDSA"] {
        let k = TestKey::new(alg);
        let kid = KeyServiceClient::new(channels[0].clone())
            .add_key(authed(
                &admin,
                None,
                own::AddKeyRequest {
                    owner: Some(own::add_key_request::Owner::UserId(user.clone())),
                    public_key: k.public_pem.clone().into_bytes(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap()
            .id;
        let issuer = app.services.settings.issuer.clone();
        let signed: Arc<Vec<String>> = Arc::new(
            (0..4000)
                .map(|i| {
                    k.sign(
                        &kid,
                        &json!({"iss": user, "sub": user, "aud": [issuer], "iat": now(), "exp": now() + 3000, "n": i}),
                    )
                })
                .collect(),
        );
        let rs = drive_grants(&h2, &base, workers, dur, assertions.clone()).await;
        let s = drive_grants(&h2, &base, workers, dur, signed).await;
        r.row(
            &format!("JWT-profile grant, RS256 key (before {alg})"),
            "OAuth, HTTP/2",
            &rs,
            hb,
            "—",
        );
        r.row(
            &format!("JWT-profile grant, {alg} key"),
            "OAuth, HTTP/2",
            &s,
            Some(("RS256 grant", rs.rps())),
            "≥ 1.0× RS256 grant",
        );
    }

    // A trusted issuer's tokens (RS256, the issuer's key set cached in memory) against the
    // RS256 key grant measured right before it: keyless costs no more than a key.
    {
        use authn_keys::{
            domain::keypair::PublicKey,
            proto::authnkeys::v1::trust_service_client::TrustServiceClient,
        };
        use rsa::pkcs8::EncodePublicKey;
        let issuer_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = issuer_key
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let mut jwk = PublicKey::from_pkix_pem(pem.as_bytes()).unwrap().jwk();
        jwk["kid"] = json!("bench-1");
        let jwks: pbjson_types::Struct = serde_json::from_value(json!({"keys": [jwk]})).unwrap();
        let (iss, sub) = (
            "https://issuer.bench.example",
            "system:serviceaccount:bench:loader",
        );
        TrustServiceClient::new(channels[0].clone())
            .add_trust(authed(
                &admin,
                None,
                own::AddTrustRequest {
                    issuer: iss.into(),
                    user_id: user.clone(),
                    subject: sub.into(),
                    audience: "authn-keys".into(),
                    jwks: Some(jwks),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let outside: Arc<Vec<String>> = Arc::new(
            (0..4000)
                .map(|i| {
                    sign_jwt(
                        "RS256",
                        "bench-1",
                        &json!({"iss": iss, "sub": sub, "aud": ["authn-keys"], "iat": now(), "exp": now() + 3000, "n": i}),
                        &issuer_key,
                    )
                })
                .collect(),
        );
        let rs = drive_grants(&h2, &base, workers, dur, assertions.clone()).await;
        let trusted = drive_grants(&h2, &base, workers, dur, outside).await;
        r.row(
            "JWT-profile grant, RS256 key (before the trusted issuer)",
            "OAuth, HTTP/2",
            &rs,
            hb,
            "—",
        );
        r.row(
            "JWT-bearer grant with a trusted issuer's token (keys cached)",
            "OAuth, HTTP/2",
            &trusted,
            Some(("RS256 key grant", rs.rps())),
            "≥ 0.9× key grant",
        );
    }

    // What recording the keys' last use costs the grant: with it off, then on, back to back.
    app.services.last_uses.set_enabled(false);
    let untracked = drive_grants(&h2, &base, workers, dur, assertions.clone()).await;
    app.services.last_uses.set_enabled(true);
    let tracked = drive_grants(&h2, &base, workers, dur, assertions.clone()).await;
    r.row(
        "JWT-profile grant, last use not recorded",
        "OAuth, HTTP/2",
        &untracked,
        hb,
        "—",
    );
    r.row(
        "JWT-profile grant, last use recorded",
        "OAuth, HTTP/2",
        &tracked,
        Some(("not recorded", untracked.rps())),
        "≥ 0.95× not recorded",
    );

    // A grant with `openid` signs an ID token besides. Against the opaque grant (no `openid`)
    // measured right before it on the same server: on this one (RS256 signing) and on a second
    // one configured with ES256 signing (a database of its own), each with a user of its own.
    {
        let es = TestApp::spawn_with(|c| {
            c.signing_algorithm = SigningAlgorithm::Es256;
            c.max_concurrent_requests = 4096;
            c.db_max_connections = 16;
        })
        .await;
        let es_admin = es.admin_token().await;
        let (_, es_key) = es.member_with_key(&es_admin, 0, "ORG_OWNER").await;
        let es_assertions: Arc<Vec<String>> = Arc::new(
            (0..4000)
                .map(|i| es.assertion(&es_key, json!({"n": i})))
                .collect(),
        );
        let openid = format!("openid {API_SCOPE}");
        for (server, alg, signed, target) in [
            (&app, "RS256", assertions.clone(), "—"),
            (&es, "ES256", es_assertions, "≥ 0.8× opaque grant"),
        ] {
            // Opaque before and after: the rate drifts as the token table grows, and the
            // mean of the two is what the grant with openid ran beside.
            let before =
                drive_grants_with(&h2, &server.base, workers, dur, signed.clone(), API_SCOPE).await;
            let with_id =
                drive_grants_with(&h2, &server.base, workers, dur, signed.clone(), &openid).await;
            let after = drive_grants_with(&h2, &server.base, workers, dur, signed, API_SCOPE).await;
            r.row(
                &format!("JWT-profile grant, opaque token (before {alg} openid)"),
                "OAuth, HTTP/2",
                &before,
                hb,
                "—",
            );
            r.row(
                &format!("grant with openid, {alg} signing"),
                "OAuth, HTTP/2",
                &with_id,
                Some((
                    "opaque grant (mean of before and after)",
                    (before.rps() + after.rps()) / 2.0,
                )),
                target,
            );
            r.row(
                &format!("JWT-profile grant, opaque token (after {alg} openid)"),
                "OAuth, HTTP/2",
                &after,
                hb,
                "—",
            );
        }
    }

    // An authenticated call with a fresh token: each token is used once (the cache-miss path).
    let fresh_count = ((grant.rps() * o.seconds) as usize).clamp(500, 20_000);
    let fresh: Vec<String> = {
        let (http, url, a) = (
            http.clone(),
            format!("{base}/oauth/v2/token"),
            assertions.clone(),
        );
        let mut got = Vec::with_capacity(fresh_count);
        // In batches: thousands of connections at once would exhaust file descriptors.
        for chunk in (0..fresh_count).collect::<Vec<_>>().chunks(workers) {
            got.extend(
                futures_all(chunk.iter().map(|&i| {
                    let (http, url, assertion) =
                        (http.clone(), url.clone(), a[i % a.len()].clone());
                    async move {
                        let r = http
                            .post(&url)
                            .form(&[
                                ("grant_type", JWT_BEARER),
                                ("assertion", &assertion),
                                ("scope", API_SCOPE),
                            ])
                            .send()
                            .await
                            .unwrap();
                        r.json::<Value>().await.unwrap()["access_token"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned()
                    }
                }))
                .await,
            );
        }
        got.into_iter().filter(|t| !t.is_empty()).collect()
    };
    let fresh = Arc::new(fresh);
    let s = {
        let (chans, fresh, get) = (channels.clone(), fresh.clone(), get.clone());
        drive(workers, dur, move |w, i| {
            let token = fresh.get(i).cloned();
            let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
            let get = get.clone();
            async move {
                let token = token?;
                Some(
                    c.get_machine_key_by_i_ds(authed(&token, None, get))
                        .await
                        .is_ok(),
                )
            }
        })
        .await
    };
    r.row("GetMachineKeyByIDs with a fresh token", "gRPC", &s, hb, "—");

    // Keys: raw generation (baseline), AddMachineKey from a warm pool, and with the pool dry.
    r.line(format!(
        "| raw RSA-2048 generation, in-process | — | {raw_rate:.1} keys/s on all cores | {} (one key) | | | | baseline | |",
        ms(one_key)
    ));
    // Warm pool: requests spaced out so the pool is never dry.
    full().await;
    let add = new_key(&user);
    let mut warm = Stats::default();
    let t0 = Instant::now();
    for _ in 0..20 {
        let t = Instant::now();
        c.add_machine_key(authed(&admin, None, add.clone()))
            .await
            .unwrap();
        warm.latencies.push(t.elapsed());
        warm.ok += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    warm.elapsed = t0.elapsed();
    warm.latencies.sort();
    r.line(format!(
        "| AddMachineKey, warm pool (one at a time) | gRPC | — | {} | {} | {} | 0 | p50 = 1/{:.0} of one generation | ≤ 1/20 |",
        ms(warm.pct(0.5)),
        ms(warm.pct(0.9)),
        ms(warm.pct(0.99)),
        one_key.as_secs_f64() / warm.pct(0.5).as_secs_f64()
    ));
    // Drain the pool (32 keys), then measure what the generators sustain.
    let drain = (0..32).map(|_| {
        let mut c = c.clone();
        let req = authed(&admin, None, add.clone());
        async move { c.add_machine_key(req).await.is_ok() }
    });
    futures_all(drain).await;
    let dry = {
        let (chans, admin, add) = (channels.clone(), admin.clone(), add.clone());
        drive(
            workers.min(16),
            dur.max(Duration::from_secs(5)),
            move |w, _| {
                let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
                let req = authed(&admin, None, add.clone());
                async move { Some(c.add_machine_key(req).await.is_ok()) }
            },
        )
        .await
    };
    r.row(
        "AddMachineKey, pool drained (sustained)",
        "gRPC",
        &dry,
        Some(("raw rate", raw_rate)),
        "≥ 0.9× raw rate",
    );
    for (name, transport) in [("gRPC-Web", true), ("REST", false)] {
        let s = {
            let (http, admin) = (http.clone(), admin.clone());
            let (url, frame) = if transport {
                (format!("{mgmt}/AddMachineKey"), grpc_web_frame(&add))
            } else {
                (
                    format!("{base}/management/v1/users/{user}/keys"),
                    Vec::new(),
                )
            };
            drive(workers.min(16), Duration::from_secs(3), move |_, _| {
                let (http, admin, url, frame) =
                    (http.clone(), admin.clone(), url.clone(), frame.clone());
                async move {
                    Some(if transport {
                        grpc_web(&http, &url, &admin, frame).await
                    } else {
                        rest(
                            &http,
                            reqwest::Method::POST,
                            &url,
                            &admin,
                            Some(json!({"type": "KEY_TYPE_JSON"})),
                        )
                        .await
                    })
                }
            })
            .await
        };
        r.row(
            "AddMachineKey, pool drained",
            name,
            &s,
            Some(("gRPC", dry.rps())),
            "≥ 0.7× gRPC",
        );
    }

    // Reads while the pool refills (it was just drained) against reads with a full pool.
    let refilling = {
        let (chans, token, get) = (channels.clone(), token.clone(), get.clone());
        drive(workers, Duration::from_secs(2), move |w, _| {
            let mut c = ManagementServiceClient::new(chans[w % chans.len()].clone());
            let req = authed(&token, None, get.clone());
            async move { Some(c.get_machine_key_by_i_ds(req).await.is_ok()) }
        })
        .await
    };
    r.row(
        "GetMachineKeyByIDs while the pool refills",
        "gRPC",
        &refilling,
        Some(("full pool", get_grpc.rps())),
        "≥ 0.8× full pool",
    );

    // Memory with 100k keys stored, under read load.
    let db = app.services.db.clone();
    let public = user_key.private_key();
    let public_pem = {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        public
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let now = chrono::Utc::now();
    for batch in 0..100 {
        let tx = db.begin().await.unwrap();
        for i in 0..1000 {
            repo::insert_key(
                &tx,
                &AuthnKey {
                    id: format!("bulk-{batch}-{i}"),
                    owner: KeyOwner::user(&user),
                    org_id: app.org_id.clone(),
                    key_type: 1,
                    public_key: public_pem.clone(),
                    expires_at: now + chrono::Duration::days(365),
                    sequence: 1,
                    created_at: now,
                    algorithm: authn_keys::domain::jwt::Algorithm::RS256,
                    origin: authn_keys::domain::model::KeyOrigin::Uploaded,
                    thumbprint: format!("bulk-{batch}-{i}"),
                    disabled: None,
                    last_used: None,
                },
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // The same database served by a second server process (the release binary), so that its
    // resident memory is the server's alone, under read load across the 100k keys.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authn-keys"))
        .env("AUTHN_KEYS_DATABASE_URL", &app.db_url)
        .env("AUTHN_KEYS_MASTER_KEY", "test-master-key-0123456789abcdef")
        .env("AUTHN_KEYS_LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTHN_KEYS_EXTERNAL_URL", &app.services.settings.issuer)
        .env("AUTHN_KEYS_ADMIN_KEY_FILE", dir.path().join("unused.json"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let other = format!("http://127.0.0.1:{port}");
    let mut other_channel = None;
    for _ in 0..100 {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(other.clone())
            .unwrap()
            .connect()
            .await
        {
            other_channel = Some(ch);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other_channel = other_channel.expect("the server process starts");
    let s = {
        let (ch, token, user) = (other_channel.clone(), token.clone(), user.clone());
        drive(workers, dur, move |_, i| {
            let mut c = ManagementServiceClient::new(ch.clone());
            let req = authed(
                &token,
                None,
                GetMachineKeyByIDsRequest {
                    user_id: user.clone(),
                    key_id: format!("bulk-{}-{}", (i / 1000) % 100, i % 1000),
                },
            );
            async move { Some(c.get_machine_key_by_i_ds(req).await.is_ok()) }
        })
        .await
    };
    r.row(
        "GetMachineKeyByIDs across 100k stored keys (server process)",
        "gRPC",
        &s,
        hb,
        "—",
    );
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    r.line(format!(
        "\nServer process with 100k keys stored, after that load: resident {:.0} MiB, peak {:.0} MiB (target ≤ 100 MiB); the in-process run above (server and generator together) holds {:.0} MiB.",
        field("VmRSS:"),
        field("VmHWM:"),
        rss_mib()
    ));
    let _ = child.kill();
    let _ = child.wait();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let header = format!(
        "Load run: {backend}, release build, {cores} cores, server and generator in one process on loopback; {} connections × {} streams, {:.0} s per operation.\n\n",
        o.connections, o.streams, o.seconds
    );
    let _ = std::fs::create_dir_all(
        std::path::Path::new(&o.out)
            .parent()
            .unwrap_or(std::path::Path::new(".")),
    );
    std::fs::write(&o.out, header + &r.rows.join("\n") + "\n").unwrap();
    println!("\nwritten to {}", o.out);
}

/// The JWT-profile grant driven with `assertions`, cycled.
async fn drive_grants(
    http: &[reqwest::Client],
    base: &str,
    workers: usize,
    dur: Duration,
    assertions: Arc<Vec<String>>,
) -> Stats {
    drive_grants_with(http, base, workers, dur, assertions, API_SCOPE).await
}

/// [`drive_grants`] asking for `scope`; with `openid` in it, an answer counts only when it
/// carries an ID token.
async fn drive_grants_with(
    http: &[reqwest::Client],
    base: &str,
    workers: usize,
    dur: Duration,
    assertions: Arc<Vec<String>>,
    scope: &str,
) -> Stats {
    let (clients, url) = (http.to_vec(), format!("{base}/oauth/v2/token"));
    let scope: Arc<str> = scope.into();
    let id_token = scope.split(' ').any(|s| s == "openid");
    drive(workers, dur, move |w, i| {
        let http = clients[w % clients.len()].clone();
        let (url, scope) = (url.clone(), scope.clone());
        let assertion = assertions[i % assertions.len()].clone();
        async move {
            let resp = http
                .post(&url)
                .form(&[
                    ("grant_type", JWT_BEARER),
                    ("assertion", &assertion),
                    ("scope", &scope),
                ])
                .send()
                .await;
            Some(match resp {
                Ok(r) if r.status() == 200 => r
                    .bytes()
                    .await
                    .is_ok_and(|body| !id_token || body.windows(10).any(|w| w == b"\"id_token\"")),
                _ => false,
            })
        }
    })
    .await
}

/// Awaits all futures concurrently, in order.
async fn futures_all<F: Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
