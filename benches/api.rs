//! End-to-end request costs against a real server on loopback, each reported as a ratio to a
//! baseline measured in the same run (gRPC Healthz: transport only, no auth, no database).
//! Run: `cargo bench --bench api` (SQLite), or with DATABASE_URL=postgres://… or mysql://… for
//! PostgreSQL or MySQL. `BENCH_DATABASES="sqlite postgres://… mysql://…"` measures each in
//! turn in one run and adds a table comparing every database with the first.
//! Figures are printed, never asserted. The failure limits are off, so that refused requests
//! can be measured as often as the others.
#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use authn_keys::proto::zitadel::management::v1::*;
use helpers::*;
use serde_json::json;

struct Row {
    name: &'static str,
    per_op: Duration,
    n: usize,
}

/// Runs `op` `n` times after a short warm-up; returns the median time per call.
async fn measure<F, Fut>(n: usize, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n.min(5) {
        op().await;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        op().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::main]
async fn main() {
    let databases: Vec<Option<String>> = match std::env::var("BENCH_DATABASES") {
        Ok(list) => list
            .split_whitespace()
            .map(|db| (db != "sqlite").then(|| db.to_owned()))
            .collect(),
        Err(_) => vec![database_server()],
    };
    let mut runs = Vec::new();
    for db in &databases {
        let app = TestApp::spawn_on_database(db.as_deref(), |c| {
            c.auth_failure_burst = 0;
            c.auth_failure_address_burst = 0;
        })
        .await;
        let backend =
            authn_keys::storage::Backend::of_url(&app.db_url).map_or("SQLite", |b| b.name());
        let rows = measure_all(&app).await;
        print_table(backend, &rows);
        print_kid_ratios(&rows);
        runs.push((backend, rows));
    }
    if runs.len() > 1 {
        compare(&runs);
    }
}

/// Each database against the first, operation by operation: the ratio of the medians, and of
/// their ratios to each run's own baseline (which cancels a change in the machine's speed
/// between the runs).
fn compare(runs: &[(&str, Vec<Row>)]) {
    let (first, base_rows) = &runs[0];
    println!(
        "\nthe databases against {first} (median ratio; in brackets, the ratio of the × baseline figures)\n"
    );
    let names: Vec<&str> = runs.iter().skip(1).map(|(n, _)| *n).collect();
    println!("| operation | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let baseline = |rows: &[Row]| rows[0].per_op.as_secs_f64();
    for (i, row) in base_rows.iter().enumerate().skip(1) {
        let cells: Vec<String> = runs
            .iter()
            .skip(1)
            .map(|(_, rows)| {
                let plain = rows[i].per_op.as_secs_f64() / row.per_op.as_secs_f64();
                let relative = plain * baseline(base_rows) / baseline(rows);
                format!("{plain:.2}× ({relative:.2}×)")
            })
            .collect();
        println!("| {} | {} |", row.name, cells.join(" | "));
    }
}

fn print_table(backend: &str, rows: &[Row]) {
    let baseline = rows[0].per_op;
    println!("authn-keys request costs on {backend} (median of n calls, one client, loopback)\n");
    println!("| operation | n | median | × baseline |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.3} ms | {:.1}× |",
            r.name,
            r.n,
            r.per_op.as_secs_f64() * 1e3,
            r.per_op.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!();
}

/// Whether a refusal's cost tells which key ids exist: a known kid with a wrong signature
/// against an unknown kid, at both endpoints.
fn print_kid_ratios(rows: &[Row]) {
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.per_op.as_secs_f64())
            .unwrap()
    };
    for (at, unknown, known) in [
        ("token", TOKEN_UNKNOWN_KID, TOKEN_KNOWN_KID),
        (
            "introspection",
            INTROSPECT_UNKNOWN_KID,
            INTROSPECT_KNOWN_KID,
        ),
    ] {
        println!(
            "{at}: a known kid with a wrong signature takes {:.2}× the time of an unknown kid",
            median(known) / median(unknown)
        );
    }
}

const TOKEN_UNKNOWN_KID: &str = "token refused: unknown kid";
const TOKEN_KNOWN_KID: &str = "token refused: known kid, wrong signature";
const INTROSPECT_UNKNOWN_KID: &str = "introspect refused: unknown client kid";
const INTROSPECT_KNOWN_KID: &str = "introspect refused: known client kid, wrong signature";

/// An assertion for `subject`'s key claims, under `kid`, signed with `signer`'s private key.
fn forged(app: &TestApp, subject: &KeyFile, kid: &str, signer: &KeyFile) -> String {
    let sub = subject.subject();
    let claims = json!({"iss": sub, "sub": sub, "aud": [app.services.settings.issuer.clone()], "iat": now(), "exp": now() + 3600});
    sign_jwt("RS256", kid, &claims, &signer.private_key())
}

/// The operations, the baseline first.
async fn measure_all(app: &TestApp) -> Vec<Row> {
    let admin = app.admin_token().await;
    let grpc = app.grpc().await;
    let (user_id, key) = app.member_with_key(&admin, 0, "ORG_USER_VIEWER").await;
    let (_, jwt_user_key) = app.member_with_key(&admin, 1, "ORG_USER_VIEWER").await;
    let (pid, aid, _, _) = app.project_with_app(&admin, 1).await;
    let app_key = app.app_key(&admin, &pid, &aid).await;
    let (basic_pid, _, basic_client, basic_secret) = app.project_with_app(&admin, 0).await;
    let get = || GetMachineKeyByIDsRequest {
        user_id: user_id.clone(),
        key_id: key.key_id.clone(),
    };
    let mut rows = Vec::new();

    let n = 300;
    let baseline = measure(n, || {
        let mut c = grpc.clone();
        async move {
            c.healthz(tonic::Request::new(HealthzRequest {}))
                .await
                .unwrap();
        }
    })
    .await;
    rows.push(Row {
        name: "gRPC Healthz (baseline)",
        per_op: baseline,
        n,
    });
    rows.push(Row {
        name: "gRPC GetMachineKeyByIDs",
        per_op: measure(n, || {
            let mut c = grpc.clone();
            let req = authed(&admin, None, get());
            async move {
                c.get_machine_key_by_i_ds(req).await.unwrap();
            }
        })
        .await,
        n,
    });
    let path = format!("/users/{user_id}/keys/{}", key.key_id);
    rows.push(Row {
        name: "REST GetMachineKeyByIDs",
        per_op: measure(n, || async {
            assert_eq!(
                app.rest("GET", &path, Some(&admin), None, None).await.0,
                200
            );
        })
        .await,
        n,
    });
    // The same call through the Connect gateway (JSON), which hands it to the gRPC service
    // in-process.
    let connect_url = format!(
        "{}/zitadel.management.v1.ManagementService/GetMachineKeyByIDs",
        app.base
    );
    let connect_body = json!({"userId": user_id, "keyId": key.key_id}).to_string();
    rows.push(Row {
        name: "Connect GetMachineKeyByIDs (JSON)",
        per_op: measure(n, || async {
            let resp = app
                .http
                .post(&connect_url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(connect_body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        })
        .await,
        n,
    });
    let assertion = app.assertion(&key, json!({}));
    let grant = [
        ("grant_type", JWT_BEARER),
        ("assertion", assertion.as_str()),
        ("scope", API_SCOPE),
    ];
    rows.push(Row {
        name: "token, JWT profile, opaque token",
        per_op: measure(n, || async {
            assert_eq!(app.token_request(&grant).await.0, 200)
        })
        .await,
        n,
    });
    let jwt_assertion = app.assertion(&jwt_user_key, json!({}));
    let jwt_grant = [
        ("grant_type", JWT_BEARER),
        ("assertion", jwt_assertion.as_str()),
        ("scope", API_SCOPE),
    ];
    rows.push(Row {
        name: "token, JWT profile, JWT token",
        per_op: measure(n, || async {
            assert_eq!(app.token_request(&jwt_grant).await.0, 200)
        })
        .await,
        n,
    });
    let scoped = app
        .token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &app.assertion(&key, json!({}))),
            ("scope", &format!("urn:zitadel:iam:org:project:id:{pid}:aud urn:zitadel:iam:org:project:id:{basic_pid}:aud")),
        ])
        .await
        .1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_assertion = app.assertion(&app_key, json!({}));
    let form = [
        ("token", scoped.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", client_assertion.as_str()),
    ];
    rows.push(Row {
        name: "introspect, private_key_jwt",
        per_op: measure(n, || async {
            let (s, b) = app.introspect(&form, None).await;
            assert_eq!((s, b["active"].as_bool()), (200, Some(true)));
        })
        .await,
        n,
    });
    let basic_n = 50;
    rows.push(Row {
        name: "introspect, Basic (argon2id)",
        per_op: measure(basic_n, || async {
            let (s, _) = app
                .introspect(&[("token", &scoped)], Some((&basic_client, &basic_secret)))
                .await;
            assert_eq!(s, 200);
        })
        .await,
        n: basic_n,
    });
    // Listings (from the owner's key list in memory), and a write pair without key
    // generation (an uploaded public key added, then removed).
    let own = authn_keys::proto::authnkeys::v1::key_service_client::KeyServiceClient::new(
        app.channel().await,
    );
    rows.push(Row {
        name: "gRPC ListKeys (authnkeys.v1, one user)",
        per_op: measure(n, || {
            let mut c = own.clone();
            let req = authed(
                &admin,
                None,
                authn_keys::proto::authnkeys::v1::ListKeysRequest {
                    user_id: user_id.clone(),
                    ..Default::default()
                },
            );
            async move {
                c.list_keys(req).await.unwrap();
            }
        })
        .await,
        n,
    });
    rows.push(Row {
        name: "gRPC ListMachineKeys",
        per_op: measure(n, || {
            let mut c = grpc.clone();
            let req = authed(
                &admin,
                None,
                ListMachineKeysRequest {
                    user_id: user_id.clone(),
                    query: None,
                },
            );
            async move {
                c.list_machine_keys(req).await.unwrap();
            }
        })
        .await,
        n,
    });
    let uploaded = public_pem();
    rows.push(Row {
        name: "AddMachineKey (uploaded) + RemoveMachineKey",
        per_op: measure(n / 2, || {
            let mut c = grpc.clone();
            let add = authed(
                &admin,
                None,
                AddMachineKeyRequest {
                    user_id: user_id.clone(),
                    r#type: 1,
                    public_key: uploaded.as_bytes().to_vec(),
                    ..Default::default()
                },
            );
            let (admin, user_id) = (admin.clone(), user_id.clone());
            async move {
                let key_id = c.add_machine_key(add).await.unwrap().into_inner().key_id;
                c.remove_machine_key(authed(
                    &admin,
                    None,
                    RemoveMachineKeyRequest { user_id, key_id },
                ))
                .await
                .unwrap();
            }
        })
        .await,
        n: n / 2,
    });
    // Refusals: an unknown kid, and a known one whose key did not sign the assertion (signed
    // with another RSA-2048 key). Equal costs mean the answer's timing does not tell which
    // key ids exist.
    let unknown_kid = "999999999999999999";
    for (name, kid, signer) in [
        (TOKEN_UNKNOWN_KID, unknown_kid, &key),
        (TOKEN_KNOWN_KID, key.key_id.as_str(), &jwt_user_key),
    ] {
        let assertion = forged(app, &key, kid, signer);
        let form = [
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
            ("scope", API_SCOPE),
        ];
        rows.push(Row {
            name,
            per_op: measure(n, || async {
                let (s, b) = app.token_request(&form).await;
                assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
            })
            .await,
            n,
        });
    }
    for (name, kid, signer) in [
        (INTROSPECT_UNKNOWN_KID, unknown_kid, &app_key),
        (INTROSPECT_KNOWN_KID, app_key.key_id.as_str(), &key),
    ] {
        let assertion = forged(app, &app_key, kid, signer);
        let form = [
            ("token", scoped.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        rows.push(Row {
            name,
            per_op: measure(n, || async {
                let (s, b) = app.introspect(&form, None).await;
                assert_eq!(
                    (s, b["error"].as_str()),
                    (401, Some("invalid_client")),
                    "{b}"
                );
            })
            .await,
            n,
        });
    }
    let keygen_n = 20;
    rows.push(Row {
        name: "AddMachineKey, generated RSA-2048",
        per_op: measure(keygen_n, || {
            let mut c = grpc.clone();
            let req = authed(
                &admin,
                None,
                AddMachineKeyRequest {
                    user_id: user_id.clone(),
                    r#type: 1,
                    ..Default::default()
                },
            );
            async move {
                c.add_machine_key(req).await.unwrap();
            }
        })
        .await,
        n: keygen_n,
    });

    rows
}
