//! The test harness: a real server on 127.0.0.1:0 with its own database (SQLite file, or a
//! fresh PostgreSQL or MySQL database when DATABASE_URL names a server), and real clients for
//! it.
use std::sync::atomic::{AtomicU32, Ordering};

use authn_keys::{
    app::App,
    config::Config,
    domain::jwt::Algorithm,
    proto::zitadel::management::v1::management_service_client::ManagementServiceClient,
    service::Services,
    storage::{self, ConnectionTrait},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rsa::{RsaPrivateKey, pkcs1::DecodeRsaPrivateKey};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::{Request, Status, transport::Channel};

pub const API_SCOPE: &str = "urn:zitadel:iam:org:project:id:zitadel:aud";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A JSON key file as handed out by AddMachineKey / AddAppKey.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFile {
    #[serde(rename = "type")]
    pub kind: String,
    pub key_id: String,
    pub key: String,
    pub expiration_date: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub client_id: Option<String>,
}

impl KeyFile {
    pub fn parse(bytes: &[u8]) -> KeyFile {
        serde_json::from_slice(bytes).expect("key file is JSON of the documented shape")
    }
    pub fn private_key(&self) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs1_pem(&self.key).expect("PKCS#1 PEM private key")
    }
    /// An assertion (`typ` JWT, `kid` the key id) over `claims`, signed under `alg` with this
    /// file's key of any kind: PKCS#1 RSA, PKCS#8 P-256, P-384 or Ed25519. Signs in aws-lc,
    /// apart from the server's verification in ring.
    pub fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        authn_keys::domain::jwt::sign_with_pem(alg, "JWT", &self.key_id, claims, &self.key)
            .expect("the key file's key signs under its algorithm")
    }
    /// The subject for assertions: the user id, or the app's client id.
    pub fn subject(&self) -> String {
        self.user_id
            .clone()
            .or_else(|| self.client_id.clone())
            .expect("user or client id")
    }
}

/// Signs `claims` with `key`, written independently of the server's JWT code.
pub fn sign_jwt(alg: &str, kid: &str, claims: &Value, key: &RsaPrivateKey) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let digest = Sha256::digest(input.as_bytes());
    let sig = match alg {
        "RS256" => key
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap(),
        "PS256" => key
            .sign_with_rng(&mut rand::thread_rng(), rsa::Pss::new::<Sha256>(), &digest)
            .unwrap(),
        other => panic!("test signer does not do {other}"),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An EC or Ed25519 key pair made by the test (ring), with its SPKI PEM for uploads and a
/// signer for assertions in the JWS form (ECDSA as r||s).
pub struct TestKey {
    pub alg: &'static str,
    pkcs8: Vec<u8>,
    pub public_pem: String,
}

impl TestKey {
    pub fn new(alg: &'static str) -> TestKey {
        use ring::signature::{self as sig, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let (pkcs8, spki_prefix, public): (Vec<u8>, &str, Vec<u8>) = match alg {
            "ES256" | "ES384" => {
                let (signing, prefix) = if alg == "ES256" {
                    (
                        &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                        "3059301306072a8648ce3d020106082a8648ce3d030107034200",
                    )
                } else {
                    (
                        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                        "3076301006072a8648ce3d020106052b81040022036200",
                    )
                };
                let doc = sig::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
                let pair = sig::EcdsaKeyPair::from_pkcs8(signing, doc.as_ref(), &rng).unwrap();
                (
                    doc.as_ref().to_vec(),
                    prefix,
                    pair.public_key().as_ref().to_vec(),
                )
            }
            "EdDSA" => {
                let doc = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                let pair = sig::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
                (
                    doc.as_ref().to_vec(),
                    "302a300506032b6570032100",
                    pair.public_key().as_ref().to_vec(),
                )
            }
            other => panic!("no test key for {other}"),
        };
        let mut der: Vec<u8> = (0..spki_prefix.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&spki_prefix[i..i + 2], 16).unwrap())
            .collect();
        der.extend_from_slice(&public);
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let public_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        TestKey {
            alg,
            pkcs8,
            public_pem,
        }
    }

    /// A key file's PKCS#8 private key (no public PEM: it is for signing).
    pub fn from_pkcs8(alg: &'static str, pkcs8: Vec<u8>) -> TestKey {
        TestKey {
            alg,
            pkcs8,
            public_pem: String::new(),
        }
    }

    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg, "kid": kid, "typ": "JWT"}), claims)
    }

    /// The key's public JWK (RFC 7517).
    pub fn jwk(&self) -> Value {
        authn_keys::domain::keypair::PublicKey::from_pkix_pem(self.public_pem.as_bytes())
            .unwrap()
            .jwk()
    }

    /// The RFC 7638 thumbprint of the key (what DPoP binds tokens to).
    pub fn thumbprint(&self) -> String {
        authn_keys::domain::keypair::PublicKey::from_pkix_pem(self.public_pem.as_bytes())
            .unwrap()
            .thumbprint()
    }

    /// A DPoP proof (RFC 9449) for `method` on `url`, with `extra` claims (`ath`, `nonce`, or
    /// any claim replaced).
    pub fn dpop_proof(&self, method: &str, url: &str, extra: Value) -> String {
        let mut claims = json!({"jti": unique("proof"), "htm": method, "htu": url, "iat": now()});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk()});
        self.sign_with_header(&header, &claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        use ring::signature as sig;
        let rng = ring::rand::SystemRandom::new();
        let signature = match self.alg {
            "ES256" | "ES384" => {
                let signing = if self.alg == "ES256" {
                    &sig::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                sig::EcdsaKeyPair::from_pkcs8(signing, &self.pkcs8, &rng)
                    .unwrap()
                    .sign(&rng, input.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            // Key files carry PKCS#8 v1 (no public key inside), as most libraries write it.
            _ => sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                .unwrap()
                .sign(input.as_bytes())
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// `clients` concurrent clients asking for tokens with `key` (one assertion each, reused: no
/// `jti`, as ZITADEL's SDKs send them) until `stop` is set or 500 requests each; each returns
/// the tokens it got. A refusal must be `invalid_grant`: the grants race `what`.
pub fn racing_grants(
    app: &TestApp,
    key: &KeyFile,
    clients: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    what: &'static str,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..clients)
        .map(|_| {
            let (http, base, stop) = (app.http.clone(), app.base.clone(), stop.clone());
            let assertion = app.assertion(key, json!({}));
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                for _ in 0..500 {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let resp = http
                        .post(format!("{base}/oauth/v2/token"))
                        .form(&[
                            ("grant_type", JWT_BEARER),
                            ("assertion", assertion.as_str()),
                            ("scope", API_SCOPE),
                        ])
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().await.unwrap();
                    match status {
                        200 => tokens.push(body["access_token"].as_str().unwrap().to_owned()),
                        400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
                        other => panic!("a grant racing {what} answered {other}: {body}"),
                    }
                }
                tokens
            })
        })
        .collect()
}

/// Verifies a JWT the server signed with the key its JWKS (`/oauth/v2/keys`) publishes under
/// the JWT's `kid`, independently of the server's code: (header, claims).
pub async fn verified_by_jwks(app: &TestApp, jwt: &str) -> (Value, Value) {
    let jwks: Value = app
        .http
        .get(format!("{}/oauth/v2/keys", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization: {jwt}");
    let decoded = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = decoded(parts[0]);
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid in JWKS");
    let number = |field: &str| {
        rsa::BigUint::from_bytes_be(
            &URL_SAFE_NO_PAD
                .decode(jwk[field].as_str().unwrap())
                .unwrap(),
        )
    };
    let public = rsa::RsaPublicKey::new(number("n"), number("e")).unwrap();
    let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    match header["alg"].as_str() {
        Some("RS256") => public.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &signature),
        Some("PS256") => public.verify(rsa::Pss::new::<Sha256>(), &digest, &signature),
        other => panic!("unexpected alg {other:?}"),
    }
    .expect("signature verifies with the JWKS key");
    (header, decoded(parts[1]))
}

/// The scope of a token for the API whose audience includes `project_id`.
pub fn project_scope(project_id: &str) -> String {
    format!("{API_SCOPE} urn:zitadel:iam:org:project:id:{project_id}:aud")
}

/// Polls `check` until it holds; returns how long that took (panics after `deadline`).
pub async fn within<F, Fut>(deadline: std::time::Duration, mut check: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "still not revoked after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether `server` reports `token` inactive to the app owning `app_key`.
pub async fn inactive(server: &TestApp, app_key: &KeyFile, token: &str) -> bool {
    server.introspect_as(app_key, token).await.1 == json!({"active": false})
}

/// How long another process may take to act on a change. The documented bound is 1 s (cache
/// entries live 1 s unless change notices are confirmed); the polls allow ten times that for
/// a busy machine, and still fail where a stale entry lives its minute or forever.
pub const OTHER_PROCESS_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct TestApp {
    pub db_url: String,
    pub base: String,
    pub admin_key: KeyFile,
    pub admin_id: String,
    pub org_id: String,
    pub http: reqwest::Client,
    pub services: Services,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A test server whose config `adjust` changes first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_on_database(database_server().as_deref(), adjust).await
    }

    /// A test server on a fresh database of the server at `server_url`, or on a SQLite file
    /// of its own.
    pub async fn spawn_on_database(
        server_url: Option<&str>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db_url = match server_url {
            Some(url) => fresh_database(url).await,
            None => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        };
        Self::start(db_url, dir, adjust, None).await
    }

    /// A test server on the database at `db_url` as it is (migrated further and bootstrapped
    /// on start); `dir` holds its files.
    pub async fn spawn_on_url(db_url: String, dir: tempfile::TempDir) -> TestApp {
        Self::start(db_url, dir, |_| {}, None).await
    }

    /// A second server process's twin: another app on this one's database (same master key),
    /// as when several processes share one PostgreSQL. Keep `self` alive while it runs.
    pub async fn spawn_on_same_database(&self) -> TestApp {
        self.spawn_on_same_database_with(|_| {}).await
    }

    /// [`TestApp::spawn_on_same_database`] with its config changed by `adjust` first.
    pub async fn spawn_on_same_database_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let issuer = self.services.settings.issuer.clone();
        Self::start(
            self.db_url.clone(),
            dir,
            |c| {
                c.external_url = Some(issuer);
                adjust(c);
            },
            Some(self.admin_key.clone()),
        )
        .await
    }

    /// Stops this server and starts another on its database and files, as a restart with its
    /// config changed by `adjust`; the issuer stays (tokens issued before name it), the port
    /// changes.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let issuer = self.services.settings.issuer.clone();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Stopped once it has closed its database pool, the last thing it does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !storage::is_closed(&self.services.db) {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let admin_key = self.admin_key.clone();
        Self::start(
            self.db_url.clone(),
            dir,
            |c| {
                c.external_url = Some(issuer);
                adjust(c);
            },
            Some(admin_key),
        )
        .await
    }

    async fn start(
        db_url: String,
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut Config),
        admin_key: Option<KeyFile>,
    ) -> TestApp {
        let mut config = Config::for_tests(&db_url, dir.path().join("admin-key.json"));
        adjust(&mut config);
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let services = app.services.clone();
        let org_id = app.instance.default_org_id.clone();
        let admin_id = app.instance.admin_user_id.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            db_url,
            base: format!("http://{addr}"),
            admin_key: admin_key.unwrap_or_else(|| {
                KeyFile::parse(&std::fs::read(dir.path().join("admin-key.json")).unwrap())
            }),
            admin_id,
            org_id,
            http: reqwest::Client::new(),
            services,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    pub fn key_file_path(&self) -> std::path::PathBuf {
        self._dir.path().join("admin-key.json")
    }

    pub async fn grpc(&self) -> ManagementServiceClient<Channel> {
        ManagementServiceClient::connect(self.base.clone())
            .await
            .expect("gRPC connects")
    }

    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.base.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// An assertion for `key` with the usual claims, `over` replacing any of them.
    pub fn assertion(&self, key: &KeyFile, over: Value) -> String {
        let sub = key.subject();
        let mut claims = json!({"iss": sub, "sub": sub, "aud": [self.services.settings.issuer.clone()], "iat": now(), "exp": now() + 300});
        for (k, v) in over.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign_jwt("RS256", &key.key_id, &claims, &key.private_key())
    }

    /// An access token bound to `dpop` (RFC 9449) for `key`, with the API scope: the first
    /// request is answered `use_dpop_nonce`, the second carries the nonce. (token, nonce).
    pub async fn dpop_token_for(&self, key: &KeyFile, dpop: &TestKey) -> (String, String) {
        self.dpop_token_with_scope(key, dpop, &format!("openid {API_SCOPE}"))
            .await
    }

    /// [`TestApp::dpop_token_for`] asking for `scope`.
    pub async fn dpop_token_with_scope(
        &self,
        key: &KeyFile,
        dpop: &TestKey,
        scope: &str,
    ) -> (String, String) {
        let url = format!("{}/oauth/v2/token", self.services.settings.issuer);
        let form = |assertion: String| {
            vec![
                ("grant_type".to_owned(), JWT_BEARER.to_owned()),
                ("assertion".to_owned(), assertion),
                ("scope".to_owned(), scope.to_owned()),
            ]
        };
        let first = self
            .http
            .post(format!("{}/oauth/v2/token", self.base))
            .header("DPoP", dpop.dpop_proof("POST", &url, json!({})))
            .form(&form(self.assertion(key, json!({}))))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status().as_u16(), 400);
        let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
        let body: Value = first.json().await.unwrap();
        assert_eq!(body["error"], "use_dpop_nonce", "{body}");
        let resp = self
            .http
            .post(format!("{}/oauth/v2/token", self.base))
            .header(
                "DPoP",
                dpop.dpop_proof("POST", &url, json!({"nonce": nonce})),
            )
            .form(&form(self.assertion(key, json!({}))))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        (body["access_token"].as_str().unwrap().to_owned(), nonce)
    }

    /// POSTs to the token endpoint; returns (HTTP status, JSON body).
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/oauth/v2/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// An access token for `key` with the API scope.
    pub async fn token_for(&self, key: &KeyFile) -> String {
        let assertion = self.assertion(key, json!({}));
        let (status, body) = self
            .token_request(&[
                ("grant_type", JWT_BEARER),
                ("assertion", &assertion),
                ("scope", &format!("openid {API_SCOPE}")),
            ])
            .await;
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A new machine user of the default org holding `role`, with a generated key:
    /// (user id, key file).
    pub async fn member_with_key(
        &self,
        admin: &str,
        access_token_type: i32,
        role: &str,
    ) -> (String, KeyFile) {
        use authn_keys::proto::zitadel::management::v1::*;
        let mut c = self.grpc().await;
        let new_user = AddMachineUserRequest {
            user_name: unique("member"),
            name: "member".into(),
            access_token_type,
            ..Default::default()
        };
        let user_id = c
            .add_machine_user(authed(admin, None, new_user))
            .await
            .unwrap()
            .into_inner()
            .user_id;
        let grant = AddOrgMemberRequest {
            user_id: user_id.clone(),
            roles: vec![role.into()],
        };
        c.add_org_member(authed(admin, None, grant)).await.unwrap();
        let new_key = AddMachineKeyRequest {
            user_id: user_id.clone(),
            r#type: 1,
            ..Default::default()
        };
        let file = c
            .add_machine_key(authed(admin, None, new_key))
            .await
            .unwrap()
            .into_inner()
            .key_details;
        (user_id, KeyFile::parse(&file))
    }

    /// A new org (named after `name`) with a machine user holding ORG_OWNER there: (org id,
    /// owner id, the owner's access token).
    pub async fn org_with_owner(&self, admin: &str, name: &str) -> (String, String, String) {
        use authn_keys::proto::zitadel::management::v1::*;
        let mut c = self.grpc().await;
        let org = c
            .add_org(authed(admin, None, AddOrgRequest { name: unique(name) }))
            .await
            .unwrap()
            .into_inner()
            .id;
        let owner = c
            .add_machine_user(authed(
                admin,
                Some(&org),
                AddMachineUserRequest {
                    user_name: unique("owner"),
                    name: "owner".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .user_id;
        c.add_org_member(authed(
            admin,
            Some(&org),
            AddOrgMemberRequest {
                user_id: owner.clone(),
                roles: vec!["ORG_OWNER".into()],
            },
        ))
        .await
        .unwrap();
        let file = c
            .add_machine_key(authed(
                admin,
                Some(&org),
                AddMachineKeyRequest {
                    user_id: owner.clone(),
                    r#type: 1,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key_details;
        let token = self.token_for(&KeyFile::parse(&file)).await;
        (org, owner, token)
    }

    /// A project of the default org with one API app: (project id, app id, client id, secret).
    pub async fn project_with_app(
        &self,
        admin: &str,
        auth_method_type: i32,
    ) -> (String, String, String, String) {
        use authn_keys::proto::zitadel::management::v1::*;
        let mut c = self.grpc().await;
        let project = AddProjectRequest {
            name: unique("project"),
            ..Default::default()
        };
        let project_id = c
            .add_project(authed(admin, None, project))
            .await
            .unwrap()
            .into_inner()
            .id;
        let new_app = AddApiAppRequest {
            project_id: project_id.clone(),
            name: unique("api"),
            auth_method_type,
        };
        let app = c
            .add_api_app(authed(admin, None, new_app))
            .await
            .unwrap()
            .into_inner();
        (project_id, app.app_id, app.client_id, app.client_secret)
    }

    /// Adds a key to an app and returns its key file.
    pub async fn app_key(&self, admin: &str, project_id: &str, app_id: &str) -> KeyFile {
        use authn_keys::proto::zitadel::management::v1::*;
        let req = AddAppKeyRequest {
            project_id: project_id.into(),
            app_id: app_id.into(),
            r#type: 1,
            ..Default::default()
        };
        let added = self
            .grpc()
            .await
            .add_app_key(authed(admin, None, req))
            .await
            .unwrap()
            .into_inner();
        KeyFile::parse(&added.key_details)
    }

    /// POSTs to the introspection endpoint; returns (HTTP status, JSON body).
    pub async fn introspect(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/oauth/v2/introspect", self.base))
            .form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// A token request for `key` asking for `scope`: (HTTP status, JSON body).
    pub async fn grant(&self, key: &KeyFile, scope: &str) -> (u16, Value) {
        let assertion = self.assertion(key, json!({}));
        self.token_request(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", scope),
        ])
        .await
    }

    /// Introspects `token` as the app owning `app_key` (private_key_jwt).
    pub async fn introspect_as(&self, app_key: &KeyFile, token: &str) -> (u16, Value) {
        let assertion = self.assertion(app_key, json!({}));
        self.introspect(
            &[
                ("token", token),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
            None,
        )
        .await
    }

    pub async fn admin_token(&self) -> String {
        self.token_for(&self.admin_key.clone()).await
    }

    /// Calls the REST gateway; returns (HTTP status, JSON body).
    pub async fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        org: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(
            method.parse().unwrap(),
            format!("{}/management/v1{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(o) = org {
            req = req.header("x-zitadel-orgid", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The database server DATABASE_URL names (PostgreSQL or MySQL); none means SQLite files.
pub fn database_server() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| is_server_url(url))
}

pub fn is_server_url(url: &str) -> bool {
    storage::Backend::of_url(url).is_some_and(|b| b != storage::Backend::Sqlite)
}

/// A new, empty database on the PostgreSQL or MySQL server at `server_url`.
pub async fn fresh_database(server_url: &str) -> String {
    let name = format!(
        "ak_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = storage::connect(server_url, 1)
        .await
        .expect("the database server DATABASE_URL names is reachable");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(server_url).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// The PEM public key of a new RSA-2048 key pair, for uploads.
pub fn public_pem() -> String {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .unwrap()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

/// AddMachineKey for `user_id` with a generated key (no expiry).
pub fn new_key(user_id: &str) -> authn_keys::proto::zitadel::management::v1::AddMachineKeyRequest {
    authn_keys::proto::zitadel::management::v1::AddMachineKeyRequest {
        user_id: user_id.into(),
        r#type: 1,
        ..Default::default()
    }
}

/// A request with the bearer token (and optionally the org header).
pub fn authed<T>(token: &str, org: Option<&str>, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(o) = org {
        req.metadata_mut()
            .insert("x-zitadel-orgid", o.parse().unwrap());
    }
    req
}

/// The ErrorDetail id carried by a status.
pub fn error_id(status: &Status) -> String {
    authn_keys::api::grpc::status::error_detail(status)
        .map(|d| d.id)
        .unwrap_or_default()
}

/// Asserts the gRPC code and error id of a failed call.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(result: Result<T, Status>, code: tonic::Code, id: &str) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_id(&status), id, "{status:?}");
    assert!(
        status.message().ends_with(&format!("({id})")),
        "message: {}",
        status.message()
    );
}

/// A free port on the loopback interface (taken again by the caller; the race is harmless
/// between tests that each take their own).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The real `authn-keys` binary serving on `host:port` with a fresh SQLite database in `dir`
/// and no key pool, plus `env`; its stdout as asked (stderr is dropped).
pub fn server_process(
    dir: &std::path::Path,
    listen: &str,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authn-keys"));
    cmd.env("AUTHN_KEYS_LISTEN", listen)
        .env(
            "AUTHN_KEYS_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display()),
        )
        .env("AUTHN_KEYS_ADMIN_KEY_FILE", dir.join("admin.json"))
        .env("AUTHN_KEYS_KEY_POOL_SIZE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `cmd` to completion and returns its output without blocking the test's runtime: a
/// `#[tokio::test]` runs its in-process server on the same single thread, and a server frozen
/// mid-transaction would hold SQLite's write lock against the very command being waited for.
pub async fn output_of(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the command's thread")
        .expect("the command runs")
}

/// Waits (at most 10 s) until something accepts connections at `addr`.
pub async fn wait_for_listener(addr: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

/// The log lines a server process writes to stdout (spawned with `Stdio::piped()`), read on a
/// thread of their own.
pub struct ProcessLog(tokio::sync::mpsc::UnboundedReceiver<String>);

impl ProcessLog {
    pub fn of(child: &mut std::process::Child) -> ProcessLog {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("the process's stdout is piped");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ProcessLog(rx)
    }

    /// The next line that contains `needle`, waiting at most `within` (panics, with the lines
    /// passed over, when none comes).
    pub async fn wait_for(&mut self, needle: &str, within: std::time::Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let mut passed = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(line)) => passed.push(line),
                Ok(None) => panic!("the log ended without {needle:?}: {passed:#?}"),
                Err(_) => panic!("no log line with {needle:?} within {within:?}: {passed:#?}"),
            }
        }
    }
}

/// Prints that the running test skipped its checks, and why, where `cargo test` shows it:
/// straight to stderr, past the test harness's output capture.
pub fn skip(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// Runs the ignored test `name` (its full path, `module::test`) alone in a new process of
/// this test binary, and asserts that it ran and passed: for what cannot share a process with
/// other tests (a global log subscriber, the process's peak memory).
pub fn run_in_own_process(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Calls authnkeys.v1 over REST: (status, JSON).
pub async fn own_rest(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An admin token from a server process's key file (no TestApp for a bare process).
pub async fn process_admin_token(base: &str, key_file: &std::path::Path) -> String {
    let key = KeyFile::parse(&std::fs::read(key_file).unwrap());
    let sub = key.subject();
    let claims = json!({"iss": sub, "sub": sub, "aud": base, "iat": now(), "exp": now() + 300});
    let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/oauth/v2/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
            ("scope", API_SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
