//! Hostile input: property tests (proptest) over every parser that reads untrusted bytes —
//! gRPC and gRPC-Web framing, Connect and REST proto3 JSON, JWT assertions, PEM public keys,
//! the OAuth form and HTTP Basic — plus the limits on declared lengths, bombs and oversized
//! requests, and a replay of the corpus in `tests/corpus/`. What must hold: no panic, no
//! hang, no 5xx, no dropped connection, a gRPC status other than INTERNAL/UNKNOWN, and the
//! server still answering `/healthz` afterwards.
//!
//! Case counts are small so the module stays well under a minute in a debug build;
//! `PROPTEST_CASES=5000 cargo test --test api hostile` raises every property to that many
//! cases for a longer local run (`PROPTEST_RNG_SEED=N` repeats a run).
//!
//! The corpus: one file per input, `tests/corpus/<target>/<name>`, where `<target>` is one of
//! the folders `corpus_replays` knows (see `replay` below for what each is fed to). To add an
//! input — the minimal failing value proptest printed, or a hand-made edge case — write its
//! raw bytes to a new file with a name that says what it is; text targets (`jwt`,
//! `basic-auth`, `procedure`) drop one trailing newline. Every file is replayed on every run.
use std::{io::Write, path::Path, time::Duration};

use authn_keys::{
    api::{connect::procedure, grpc::frames::frames_complete},
    domain::{
        jwt::{Algorithm, TimeRules, UnverifiedJwt, check_assertion},
        keypair::{PrivateKey, PublicKey},
    },
    proto::zitadel::{
        management::v1 as mgmt,
        user::{v1 as user_v1, v2 as user_v2},
    },
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

// ---------------------------------------------------------------------------------------
// Running properties

/// `default_cases` unless `PROPTEST_CASES` says otherwise; no regression files (the corpus
/// is where found inputs go).
fn config(default_cases: u32) -> Config {
    let base = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            default_cases
        },
        failure_persistence: None,
        max_shrink_iters: 512,
        ..base
    }
}

/// Runs `test` over the strategy `make` builds; a failure panics with proptest's minimal
/// input. Generating and shrinking nested strategies takes more stack than a test thread has
/// in a debug build, so the runner gets a thread of its own.
fn check<S: Strategy>(
    cases: u32,
    make: impl FnOnce() -> S + Send,
    test: impl Fn(S::Value) -> Result<(), TestCaseError> + Send,
) where
    S::Value: std::fmt::Debug,
{
    std::thread::scope(|scope| {
        let run = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(scope, move || {
                TestRunner::new(config(cases))
                    .run(&make(), test)
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        if let Err(e) = run.join().unwrap() {
            panic!("{e}");
        }
    });
}

type H2Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// One real server per property, driven from proptest's synchronous loop. Fields drop in
/// order: the server is told to stop before its runtime goes.
struct Server {
    app: TestApp,
    token: String,
    h2: H2Client,
    rt: tokio::runtime::Runtime,
}

/// An HTTP answer, read to the end.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: http::HeaderMap,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn grpc_status(&self) -> Option<tonic::Status> {
        tonic::Status::from_header_map(&self.trailers)
            .or_else(|| tonic::Status::from_header_map(&self.headers))
    }
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Rate limits off: hundreds of refused credentials must reach the parsers, not 429.
        let app = rt.block_on(TestApp::spawn_with(|c| {
            c.auth_failure_burst = 0;
            c.auth_failure_address_burst = 0;
            c.bearer_failure_burst = 0;
        }));
        let token = rt.block_on(app.admin_token());
        let h2 = rt.block_on(async {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http()
        });
        Server { app, token, h2, rt }
    }

    fn bearer(&self) -> (String, Vec<u8>) {
        (
            "authorization".into(),
            format!("Bearer {}", self.token).into_bytes(),
        )
    }

    /// A request over HTTP/2 (h2c) or HTTP/1.1; Err when the connection fails or is dropped.
    async fn send(
        &self,
        http2: bool,
        path: &str,
        headers: &[(String, Vec<u8>)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let uri = format!("{}{path}", self.app.base);
        let deadline = Duration::from_secs(30);
        if http2 {
            let mut req = http::Request::post(uri);
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_slice());
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| format!("request not built: {e}"))?;
            let resp = tokio::time::timeout(deadline, self.h2.request(req))
                .await
                .map_err(|_| "no answer within 30 s".to_owned())?
                .map_err(|e| format!("connection failed: {e:?}"))?;
            let (parts, body) = resp.into_parts();
            let collected = tokio::time::timeout(deadline, body.collect())
                .await
                .map_err(|_| "answer not finished within 30 s".to_owned())?
                .map_err(|e| format!("answer cut off: {e:?}"))?;
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                trailers: collected.trailers().cloned().unwrap_or_default(),
                body: collected.to_bytes(),
            })
        } else {
            let mut req = self.app.http.post(uri).body(body).timeout(deadline);
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_slice());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("connection failed: {e:?}"))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("answer cut off: {e:?}"))?;
            Ok(Answer {
                status,
                headers,
                body,
                trailers: http::HeaderMap::new(),
            })
        }
    }

    /// `/healthz` over HTTP/1.1 and the gRPC Healthz over HTTP/2.
    fn assert_still_serving(&self) {
        self.rt.block_on(async {
            let resp = self
                .app
                .http
                .get(format!("{}/healthz", self.app.base))
                .send()
                .await
                .expect("/healthz answers");
            assert_eq!(resp.status(), 200);
            self.app
                .grpc()
                .await
                .healthz(tonic::Request::new(mgmt::HealthzRequest {}))
                .await
                .expect("gRPC Healthz answers");
        });
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// A gRPC answer: HTTP 200 with a status that is not INTERNAL or UNKNOWN.
fn grpc_ok(what: &str, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert_eq!(answer.status, 200, "{}: {:?}", what, answer);
    let status = answer
        .grpc_status()
        .ok_or_else(|| fail(format!("{what}: no grpc-status: {answer:?}")))?;
    prop_assert!(
        !matches!(
            status.code(),
            Code::Internal | Code::Unknown | Code::DataLoss
        ),
        "{}: {:?}",
        what,
        status
    );
    Ok(())
}

/// A JSON answer (REST, Connect, OAuth): 200, or a 4xx whose body is JSON.
fn http_ok(what: &str, answer: &Answer) -> Result<Value, TestCaseError> {
    prop_assert!(
        answer.status == 200 || (400..500).contains(&answer.status),
        "{}: HTTP {} {:?}",
        what,
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    answer.json().ok_or_else(|| {
        fail(format!(
            "{what}: HTTP {} without a JSON body: {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ))
    })
}

fn header(name: &str, value: &str) -> (String, Vec<u8>) {
    (name.into(), value.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------
// Strategies

/// Bytes shaped like protobuf: fields with every wire type, lengths that lie, overlong
/// varints, nested messages.
fn protobuf_like() -> impl Strategy<Value = Vec<u8>> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let field = (
        1u64..8,
        0u64..8,
        prop_oneof![any::<u64>(), Just(u64::MAX), Just(0u64), Just(1u64 << 32)],
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..24),
            "[ -~]{0,24}".prop_map(String::into_bytes),
            Just(vec![0xff, 0xfe, 0xc0, 0x80]),
        ],
        prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)],
    )
        .prop_map(|(number, wire, value, bytes, lie)| {
            let mut out = Vec::new();
            varint((number << 3) | wire, &mut out);
            match wire {
                0 => varint(value, &mut out),
                1 => out.extend_from_slice(&value.to_le_bytes()),
                2 => {
                    varint(lie.map_or(bytes.len() as u64, u64::from), &mut out);
                    out.extend_from_slice(&bytes);
                }
                5 => out.extend_from_slice(&(value as u32).to_le_bytes()),
                // Groups, the invalid wire types 6 and 7, an overlong varint.
                _ => out.extend_from_slice(&[0xff; 11][..(value % 12) as usize]),
            }
            out
        });
    let flat = prop::collection::vec(field, 0..5).prop_map(|f| f.concat());
    flat.prop_recursive(2, 8, 3, |inner| {
        (1u64..8, inner).prop_map(|(number, nested)| {
            let mut out = Vec::new();
            varint((number << 3) | 2, &mut out);
            varint(nested.len() as u64, &mut out);
            out.extend_from_slice(&nested);
            out
        })
    })
}

/// A request body as gRPC (and gRPC-Web binary) carries it: arbitrary bytes, or frames with
/// odd flags and declared lengths that are right, short, long or 4 GiB.
fn grpc_body() -> impl Strategy<Value = Vec<u8>> {
    let message = prop_oneof![prop::collection::vec(any::<u8>(), 0..48), protobuf_like()];
    let frame = (
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(0x80u8), 1 => any::<u8>()],
        message,
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(u32::MAX)),
            1 => any::<u32>().prop_map(Some),
            1 => (0u32..3).prop_map(|d| Some(d.wrapping_sub(1))),
        ],
    )
        .prop_map(|(flag, message, declared)| {
            let len = match declared {
                None => message.len() as u32,
                Some(d) if d < 3 || d == u32::MAX - 1 => (message.len() as u32).wrapping_add(d),
                Some(d) => d,
            };
            let mut out = vec![flag];
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&message);
            out
        });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        4 => prop::collection::vec(frame, 0..3).prop_map(|f| f.concat()),
    ]
}

const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1.5",
    "1e308",
    "-1e308",
    "1e-308",
    "4294967296",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "8210266876799",
    "253402300800",
    "-62135596801",
    "100000000000000000000000000000",
];

const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "KEY_TYPE_JSON",
    "KEY_TYPE_UNSPECIFIED",
    "TEXT_QUERY_METHOD_CONTAINS_IGNORE_CASE",
    "TIMESTAMP_FILTER_METHOD_AFTER",
    "KEY_FIELD_NAME_ID",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "+262143-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "1970-01-01T00:00:00.9999999999Z",
    "2030-01-01T00:00:00+25:00",
    "2030-02-30T00:00:00Z",
    "18446744073709551616",
    "-1",
    "1e3",
    "NaN",
    "Infinity",
    "AAAA",
    "!!!!",
    "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0=",
    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    "\u{0}",
    "\u{feff}",
    "../../etc/passwd",
    "%00",
    "'; DROP TABLE users; --",
];

/// Field names of the requests the JSON properties send, camelCase and snake_case.
const JSON_KEYS: &[&str] = &[
    "userId",
    "user_id",
    "type",
    "expirationDate",
    "expiration_date",
    "publicKey",
    "public_key",
    "query",
    "offset",
    "limit",
    "asc",
    "queries",
    "userNameQuery",
    "userName",
    "method",
    "typeQuery",
    "inUserIdsQuery",
    "userIds",
    "sortingColumn",
    "pagination",
    "filters",
    "keyIdFilter",
    "userIdFilter",
    "organizationIdFilter",
    "createdDateFilter",
    "expirationDateFilter",
    "id",
    "timestamp",
    "keyId",
    "@type",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(EDGE_NUMBERS).prop_map(|n| serde_json::from_str(n).unwrap()),
        prop::sample::select(EDGE_STRINGS).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(JSON_KEYS).prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// JSON bodies: arbitrary bytes, objects of the requests' own field names holding wrong or
/// extreme values, such objects cut or spliced, and deep nesting.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let object = || {
        prop::collection::vec((json_key(), json_value()), 0..8).prop_map(|kv| {
            Value::Object(kv.into_iter().collect())
                .to_string()
                .into_bytes()
        })
    };
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        6 => object(),
        2 => (object(), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(mut text, at, splice)| {
                let at = at.index(text.len() + 1);
                text.truncate(at);
                text.extend(splice);
                text
            }),
        1 => (1usize..400, prop::sample::select(&["[", "{\"query\":", "{\"a\":[", "[{\"\":"][..]))
            .prop_map(|(depth, open)| open.repeat(depth).into_bytes()),
    ]
}

const ISSUER_PLACEHOLDER: &str = "<issuer>";

/// Claims for assertions: names and values of the right kind, the wrong kind and extremes.
fn claims() -> impl Strategy<Value = Value> {
    let subject = prop_oneof![
        12 => Just(json!("u1")),
        1 => Just(json!("u1 ")),
        1 => Just(json!("")),
        1 => Just(Value::Null),
        1 => Just(json!(5)),
        1 => Just(json!(["u1"])),
    ];
    let aud = prop_oneof![
        3 => Just(json!(ISSUER_PLACEHOLDER)),
        3 => Just(json!([ISSUER_PLACEHOLDER])),
        2 => Just(json!([1, null, ISSUER_PLACEHOLDER])),
        1 => Just(json!("https://elsewhere")),
        1 => Just(json!([])),
        1 => Just(json!({"aud": ISSUER_PLACEHOLDER})),
        1 => json_leaf(),
    ];
    let time = prop_oneof![
        6 => (-400i64..400).prop_map(|d| json!(NOW + d)),
        1 => (-4000i64..4000).prop_map(|d| json!(NOW as f64 + d as f64 + 0.5)),
        3 => prop::sample::select(EDGE_NUMBERS).prop_map(|n| serde_json::from_str(n).unwrap()),
        1 => json_leaf(),
    ];
    let jti = prop_oneof![
        Just(None),
        Just(Some(json!(""))),
        Just(Some(json!(7))),
        "[a-z0-9]{1,12}".prop_map(|s| Some(json!(s))),
    ];
    (
        subject.clone(),
        subject,
        aud,
        time.clone(),
        time.clone(),
        time,
        jti,
    )
        .prop_map(|(iss, sub, aud, iat, exp, nbf, jti)| {
            let mut c =
                json!({"iss": iss, "sub": sub, "aud": aud, "iat": iat, "exp": exp, "nbf": nbf});
            if let Some(j) = jti {
                c["jti"] = j;
            }
            c
        })
}

/// A fixed "now" for the pure assertion checks.
const NOW: i64 = 1_800_000_000;
const PURE_ISSUER: &str = "http://127.0.0.1:8080";

fn b64_part() -> impl Strategy<Value = fn(&[u8]) -> String> {
    prop_oneof![
        6 => Just((|b: &[u8]| URL_SAFE_NO_PAD.encode(b)) as fn(&[u8]) -> String),
        1 => Just((|b: &[u8]| STANDARD.encode(b)) as fn(&[u8]) -> String),
        1 => Just((|b: &[u8]| format!(" {}\n", URL_SAFE_NO_PAD.encode(b))) as fn(&[u8]) -> String),
    ]
}

/// Compact JWTs: garbage strings, and three encoded parts of odd headers, claims and
/// signatures (kid sometimes `kid`, so a real key is looked up and tried).
fn jwt(kid: String) -> impl Strategy<Value = String> {
    let header = (
        prop_oneof![
            Just(json!("RS256")),
            Just(json!("PS256")),
            Just(json!("none")),
            Just(json!("HS256")),
            Just(json!("")),
            json_leaf(),
        ],
        prop_oneof![
            Just(json!(kid)),
            Just(json!("")),
            Just(Value::Null),
            Just(json!(12)),
            Just(json!("k".repeat(300))),
            json_leaf(),
        ],
        any::<bool>(),
    )
        .prop_map(|(alg, kid, typ)| {
            let mut h = json!({"alg": alg, "kid": kid});
            if typ {
                h["typ"] = json!("JWT");
            }
            h.to_string().into_bytes()
        });
    let header = prop_oneof![
        6 => header,
        1 => json_body(),
    ];
    let payload = prop_oneof![
        6 => claims().prop_map(|c| c.to_string().replace(ISSUER_PLACEHOLDER, PURE_ISSUER).into_bytes()),
        1 => json_body(),
    ];
    let signature = prop_oneof![
        Just(vec![]),
        prop::collection::vec(any::<u8>(), 0..16),
        prop::collection::vec(any::<u8>(), 256..=256),
    ];
    let structured = (
        header,
        payload,
        signature,
        b64_part(),
        b64_part(),
        b64_part(),
    )
        .prop_map(|(h, c, s, eh, ec, es)| format!("{}.{}.{}", eh(&h), ec(&c), es(&s)));
    prop_oneof![
        1 => any::<String>(),
        1 => "[A-Za-z0-9_=.+/ -]{0,120}",
        6 => structured,
    ]
}

// ---------------------------------------------------------------------------------------
// Pure properties: the parsers alone

/// The reference: frames laid end to end, each 5 bytes of header and its declared length.
fn frames_model(body: &[u8]) -> bool {
    let mut at = 0usize;
    while at < body.len() {
        if body.len() - at < 5 {
            return false;
        }
        let len = u32::from_be_bytes(body[at + 1..at + 5].try_into().unwrap()) as u64;
        if ((body.len() - at - 5) as u64) < len {
            return false;
        }
        at += 5 + len as usize;
    }
    true
}

#[test]
fn grpc_frame_check_matches_its_model() {
    check(512, grpc_body, |body| {
        prop_assert_eq!(frames_complete(&body), frames_model(&body));
        Ok(())
    });
    // Whole frames are complete; any cut inside the last one is not.
    let messages = || prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4);
    check(
        256,
        || (messages(), any::<prop::sample::Index>()),
        |(msgs, cut)| {
            let mut body = Vec::new();
            for m in &msgs {
                body.push(0);
                body.extend_from_slice(&(m.len() as u32).to_be_bytes());
                body.extend_from_slice(m);
            }
            prop_assert!(frames_complete(&body));
            let last = 5 + msgs.last().unwrap().len();
            let cut = body.len() - 1 - cut.index(last - 1);
            prop_assert!(!frames_complete(&body[..cut]), "cut at {}", cut);
            Ok(())
        },
    );
}

fn rules() -> TimeRules {
    TimeRules {
        now: chrono::DateTime::from_timestamp(NOW, 0).unwrap(),
        skew: chrono::Duration::seconds(5),
        max_age: chrono::Duration::hours(1),
    }
}

/// Everything the token endpoint asks of a parsed JWT, none of which may panic; a random
/// signature never verifies, and an accepted assertion's lifetime is bounded.
fn probe_jwt(token: &str, key: &PublicKey) -> Result<(), TestCaseError> {
    let Ok(jwt) = UnverifiedJwt::parse(token) else {
        return Ok(());
    };
    let _ = jwt.algorithm();
    let _ = jwt.kid();
    let _ = jwt.audience();
    let _ = jwt.str_claim("jti");
    for name in ["exp", "iat", "nbf"] {
        let _ = jwt.time_claim(name);
    }
    prop_assert!(jwt.verify(key, "k").is_err(), "a random signature verified");
    if let Ok(a) = check_assertion(&jwt, PURE_ISSUER, rules()) {
        prop_assert_eq!(Some(a.subject.as_str()), jwt.str_claim("iss"));
        // Accepted only while neither exp nor iat + max age has passed: what a replay check
        // must remember is bounded by the max age.
        prop_assert!(a.expires_at >= NOW - 5, "{:?}", a);
        prop_assert!(a.expires_at <= NOW + 5 + 3600, "{:?}", a);
    }
    Ok(())
}

fn test_key() -> &'static PrivateKey {
    static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
}

#[test]
fn jwt_parsing_and_checks_never_panic() {
    let public = test_key().public_key();
    check(1024, || jwt("k".into()), |token| probe_jwt(&token, &public));
}

/// A real key's SubjectPublicKeyInfo, DER.
fn real_spki() -> Vec<u8> {
    let pem = test_key().public_key().to_pkix_pem().unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

fn armor(label: &str, der: &[u8], line_end: &str) -> Vec<u8> {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----{line_end}");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str(line_end);
    }
    out.push_str(&format!("-----END {label}-----{line_end}"));
    out.into_bytes()
}

/// Uploaded public keys: arbitrary bytes, armored garbage, and a real key's DER with bytes
/// changed, cut or inserted (lengths and tags lie), under right and wrong labels.
fn pem_input() -> impl Strategy<Value = Vec<u8>> {
    let spki = real_spki();
    let mutation = prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| (0u8, i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| (1u8, i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| (2u8, i, b)),
    ];
    let mutated = (
        prop::collection::vec(mutation, 0..4),
        prop::sample::select(&["PUBLIC KEY", "RSA PUBLIC KEY", "PRIVATE KEY", "PUBLIC  KEY"][..]),
        prop::sample::select(&["\n", "\r\n", "", "\n\n"][..]),
        prop::sample::select(&["", "trailing text", "\u{0}", "-----END PUBLIC KEY-----"][..]),
    )
        .prop_map(move |(mutations, label, line_end, tail)| {
            let mut der = spki.clone();
            for (kind, at, byte) in mutations {
                let i = at.index(der.len());
                match kind {
                    0 => der[i] = byte,
                    1 => der.truncate(i),
                    _ => der.insert(i, byte),
                }
                if der.is_empty() {
                    break;
                }
            }
            let mut pem = armor(label, &der, line_end);
            pem.extend_from_slice(tail.as_bytes());
            pem
        });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..128),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|der| armor("PUBLIC KEY", &der, "\n")),
        6 => mutated,
    ]
}

/// The rule for an uploaded RSA key, written here apart from the server's: a modulus of 2048 to
/// 4096 bits that is odd, an exponent that is odd, greater than 1 and less than 2^33.
fn rsa_numbers_acceptable(n: &[u8], e: &[u8]) -> Result<(), String> {
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    let (n, e) = (strip(n), strip(e));
    let bits = n.first().map_or(0, |top| {
        (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    });
    if !(2048..=4096).contains(&bits) {
        return Err(format!("a {bits}-bit modulus"));
    }
    if n.last().is_some_and(|b| b % 2 == 0) {
        return Err("an even modulus".into());
    }
    let e_value = (e.len() <= 8).then(|| e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)));
    match e_value {
        Some(e) if e > 1 && e % 2 == 1 && e < (1 << 33) => Ok(()),
        _ => Err(format!("the exponent {e:02x?}")),
    }
}

fn probe_pem(pem: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(key) = PublicKey::from_pkix_pem(pem) {
        if let Some((n, e)) = key.n_e()
            && let Err(why) = rsa_numbers_acceptable(n, e)
        {
            return Err(fail(format!("a key with {why} was accepted")));
        }
        let again = key.to_pkix_pem().map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(PublicKey::from_pkix_pem(again.as_bytes()), Ok(key.clone()));
        for alg in Algorithm::ALL {
            prop_assert!(!key.verify(alg, b"message", &[0u8; 256]));
            prop_assert!(!key.verify(alg, b"message", &[1u8; 3]));
        }
    }
    Ok(())
}

#[test]
fn pem_public_keys_never_panic() {
    check(512, pem_input, |pem| probe_pem(&pem));
}

/// Decodes `bytes` as `T`; what decodes survives protobuf and (when it can be written) JSON
/// round trips unchanged.
fn decodes<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + Message + Default + PartialEq + std::fmt::Debug,
{
    let Ok(message) = serde_json::from_slice::<T>(bytes) else {
        return Ok(());
    };
    let wire = message.encode_to_vec();
    prop_assert_eq!(&T::decode(wire.as_slice()).unwrap(), &message);
    if let Ok(json) = serde_json::to_vec(&message) {
        let back: T = serde_json::from_slice(&json).map_err(|e| {
            fail(format!(
                "our own JSON {:?} does not read back: {e}",
                String::from_utf8_lossy(&json)
            ))
        })?;
        prop_assert_eq!(&back, &message);
    }
    Ok(())
}

fn decode_as_requests(bytes: &[u8]) -> Result<(), TestCaseError> {
    decodes::<mgmt::AddMachineKeyRequest>(bytes)?;
    decodes::<mgmt::ListMachineKeysRequest>(bytes)?;
    decodes::<mgmt::ListUsersRequest>(bytes)?;
    decodes::<mgmt::AddMachineUserRequest>(bytes)?;
    decodes::<user_v1::SearchQuery>(bytes)?;
    decodes::<user_v2::ListKeysRequest>(bytes)?;
    decodes::<user_v2::AddKeyRequest>(bytes)?;
    Ok(())
}

#[test]
fn request_json_decoding_never_panics() {
    check(512, json_body, |body| decode_as_requests(&body));
}

fn probe_procedure(path: &str) -> Result<(), TestCaseError> {
    if let Some(p) = procedure(path) {
        prop_assert!(p.starts_with('/') && !p.starts_with("//"), "{:?}", p);
        prop_assert_eq!(p.matches('/').count(), 2, "{:?}", &p);
        prop_assert_eq!(procedure(&p), Some(p.clone()));
        prop_assert!(p.is_ascii());
    }
    Ok(())
}

#[test]
fn connect_procedure_paths() {
    let path = || {
        prop_oneof![
            any::<String>(),
            "/{0,3}[A-Za-z0-9_.]{0,12}(/[A-Za-z0-9_.]{0,12}){0,2}/?",
            "/{0,2}[a-z]{1,4}(\\.[a-z]{0,4}){1,3}/[A-Za-z_][A-Za-z0-9_]{0,8}",
        ]
    };
    check(1024, path, |p| probe_procedure(&p));
}

// ---------------------------------------------------------------------------------------
// End to end: the real server

const GRPC_METHODS: &[&str] = &[
    "/zitadel.management.v1.ManagementService/GetUserByID",
    "/zitadel.management.v1.ManagementService/ListMachineKeys",
    "/zitadel.management.v1.ManagementService/AddMachineKey",
    "/zitadel.management.v1.ManagementService/GetMachineKeyByIDs",
    "/zitadel.management.v1.ManagementService/ListUsers",
    "/zitadel.user.v2.UserService/ListKeys",
    "/zitadel.user.v2.UserService/AddKey",
    "/zitadel.application.v2.ApplicationService/GetApplicationKey",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// Headers a gRPC request may carry: maybe the bearer token, maybe an encoding.
fn grpc_extras() -> impl Strategy<Value = (bool, Option<&'static str>)> {
    (
        any::<bool>(),
        prop::option::of(prop::sample::select(
            &["gzip", "identity", "br", "x-unknown", ""][..],
        )),
    )
}

#[test]
fn grpc_frames_end_to_end() {
    let s = Server::start();
    let strategy = || {
        (
            prop::sample::select(GRPC_METHODS),
            grpc_body(),
            grpc_extras(),
        )
    };
    check(160, strategy, |(method, body, (authed, encoding))| {
        let mut headers = vec![
            header("content-type", "application/grpc"),
            header("te", "trailers"),
        ];
        if authed {
            headers.push(s.bearer());
        }
        if let Some(e) = encoding {
            headers.push(header("grpc-encoding", e));
        }
        let answer =
            s.rt.block_on(s.send(true, method, &headers, body))
                .map_err(fail)?;
        grpc_ok(method, &answer)
    });
    s.assert_still_serving();
}

/// A gRPC-Web answer's status: in the headers (trailers-only), or in the trailer frame at
/// the end of the (decoded) body.
fn grpc_web_status(answer: &Answer) -> Option<(Code, String)> {
    if let Some(st) = tonic::Status::from_header_map(&answer.headers) {
        return Some((st.code(), st.message().to_owned()));
    }
    let text = answer
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web-text"));
    let body = if text {
        // Each message is encoded on its own, padded: decode quantum by quantum.
        let (mut out, mut chunk) = (Vec::new(), String::new());
        for quantum in answer.body.chunks(4) {
            chunk.push_str(std::str::from_utf8(quantum).ok()?);
            if quantum.contains(&b'=') {
                out.extend(STANDARD.decode(&chunk).ok()?);
                chunk.clear();
            }
        }
        out.extend(STANDARD.decode(&chunk).ok()?);
        out
    } else {
        answer.body.to_vec()
    };
    let mut rest = body.as_slice();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let payload = rest.get(5..5 + len)?;
        if rest[0] & 0x80 != 0 {
            let text = String::from_utf8_lossy(payload);
            let code = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("grpc-status:"))?
                .trim()
                .parse::<i32>()
                .ok()?;
            return Some((Code::from(code), text.into_owned()));
        }
        rest = &rest[5 + len..];
    }
    None
}

#[test]
fn grpc_web_frames_end_to_end() {
    let s = Server::start();
    let strategy = || {
        let text_body = prop_oneof![
            4 => grpc_body().prop_map(|b| STANDARD.encode(b).into_bytes()),
            // Frames encoded one by one, each padded: the body has `=` in the middle.
            2 => prop::collection::vec(grpc_body(), 1..3)
                .prop_map(|parts| parts.iter().map(|p| STANDARD.encode(p)).collect::<String>().into_bytes()),
            1 => "[A-Za-z0-9+/=\r\n !-]{0,80}".prop_map(String::into_bytes),
        ];
        let content_type = prop::sample::select(
            &[
                "application/grpc-web",
                "application/grpc-web+proto",
                "application/grpc-web-text",
                "application/grpc-web-text+proto",
            ][..],
        );
        (
            prop::sample::select(&GRPC_METHODS[..9]),
            content_type,
            grpc_body(),
            text_body,
            any::<bool>(),
        )
    };
    check(160, strategy, |(method, ct, binary, text, authed)| {
        let is_text = ct.contains("text");
        let mut headers = vec![header("content-type", ct)];
        if authed {
            headers.push(s.bearer());
        }
        let body = if is_text { text } else { binary };
        let answer =
            s.rt.block_on(s.send(false, method, &headers, body))
                .map_err(fail)?;
        prop_assert!(
            answer.status == 200 || (400..500).contains(&answer.status),
            "{:?}",
            answer
        );
        if answer.status == 200 {
            let (code, message) = grpc_web_status(&answer)
                .ok_or_else(|| fail(format!("no grpc-status: {answer:?}")))?;
            prop_assert!(
                !matches!(code, Code::Internal | Code::Unknown | Code::DataLoss),
                "{}: {:?} {}",
                method,
                code,
                message
            );
        }
        Ok(())
    });
    s.assert_still_serving();
}

const CONNECT_METHODS: &[&str] = &[
    "/zitadel.management.v1.ManagementService/ListUsers",
    "/zitadel.management.v1.ManagementService/ListMachineKeys",
    "/zitadel.management.v1.ManagementService/AddMachineKey",
    "/zitadel.management.v1.ManagementService/GetUserByID",
    "/zitadel.user.v2.UserService/ListKeys",
    "/zitadel.user.v2.UserService/AddKey",
    "/grpc.health.v1.Health/Check",
];

/// REST routes that decode a JSON body (none of them can create anything: `nobody` is no user).
const REST_ROUTES: &[&str] = &[
    "/management/v1/users/_search",
    "/management/v1/users/nobody/keys",
    "/management/v1/users/nobody/keys/_search",
    "/v2/users/keys/search",
    "/v2/users/nobody/keys",
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A Connect or REST answer: 200, or a 4xx with the protocol's error JSON whose code is
/// not internal/unknown (a 200 of Connect's binary codec is the bare message).
fn gateway_ok(what: &str, answer: &Answer, connect: bool) -> Result<(), TestCaseError> {
    let binary = answer
        .headers
        .get("content-type")
        .is_some_and(|v| v == "application/proto");
    if answer.status == 200 && binary {
        return Ok(());
    }
    let body = http_ok(what, answer)?;
    if answer.status != 200 {
        if connect {
            let code = body["code"].as_str().unwrap_or("");
            prop_assert!(
                !code.is_empty() && code != "internal" && code != "unknown",
                "{}: {}",
                what,
                body
            );
        } else {
            let code = body["code"].as_i64().unwrap_or(-1);
            prop_assert!(code > 0 && code != 2 && code != 13, "{}: {}", what, body);
        }
    }
    Ok(())
}

#[test]
fn connect_and_rest_json_end_to_end() {
    let s = Server::start();
    // (route index, JSON or proto, body, gzip: 0 none, 1 compressed, 2 garbage, 3 cut short)
    let strategy = || {
        (
            any::<prop::sample::Index>(),
            any::<bool>(),
            json_body(),
            grpc_body(),
            prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
            any::<bool>(),
        )
    };
    check(
        200,
        strategy,
        |(route, json, json_bytes, proto_bytes, gz, rest)| {
            if rest {
                let path = REST_ROUTES[route.index(REST_ROUTES.len())];
                let headers = vec![header("content-type", "application/json"), s.bearer()];
                let answer =
                    s.rt.block_on(s.send(false, path, &headers, json_bytes))
                        .map_err(fail)?;
                return gateway_ok(path, &answer, false);
            }
            let path = CONNECT_METHODS[route.index(CONNECT_METHODS.len())];
            let (ct, body) = if json {
                ("application/json", json_bytes)
            } else {
                ("application/proto", proto_bytes)
            };
            let mut headers = vec![header("content-type", ct), s.bearer()];
            let body = match gz {
                0 => body,
                1 => gzip(&body),
                2 => body,
                _ => {
                    let mut g = gzip(&body);
                    g.truncate(g.len() / 2);
                    g
                }
            };
            if gz != 0 {
                headers.push(header("content-encoding", "gzip"));
            }
            let answer =
                s.rt.block_on(s.send(false, path, &headers, body))
                    .map_err(fail)?;
            gateway_ok(path, &answer, true)
        },
    );
    s.assert_still_serving();
}

const FORM_KEYS: &[&str] = &[
    "grant_type",
    "assertion",
    "scope",
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    "invalid_scope",
];

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Form bodies: pairs of the endpoints' own names (and others) with values that are JWTs of
/// every shape, percent-escapes that are broken, NULs and plus signs; or arbitrary bytes.
fn form_body(kid: String) -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        2 => jwt(kid).prop_map(|t| percent_encode(&t)),
        1 => Just(percent_encode(JWT_BEARER)),
        1 => Just(percent_encode(CLIENT_ASSERTION_TYPE)),
        1 => prop::sample::select(&["%", "%zz", "%00", "+", "%2", "%C3%28", "a%ZZb", "%%"][..]).prop_map(String::from),
        1 => any::<String>().prop_map(|s| percent_encode(&s)),
        1 => "[ -~]{0,40}",
        1 => (1usize..50).prop_map(|n| percent_encode(&vec!["openid"; n].join(" "))),
    ];
    let key = prop_oneof![
        6 => prop::sample::select(FORM_KEYS).prop_map(String::from),
        1 => "[ -~]{0,10}",
    ];
    let pairs = prop::collection::vec((key, value, any::<bool>()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, eq)| if eq { format!("{k}={v}") } else { k })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    });
    prop_oneof![
        6 => pairs,
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// `Authorization` values: Basic with broken base64, missing colons, broken escapes,
/// invalid UTF-8; other schemes; odd spacing.
fn authorization() -> impl Strategy<Value = Option<Vec<u8>>> {
    let credentials =
        ("[ -~]{0,20}", "[ -~]{0,20}", any::<bool>()).prop_map(|(id, secret, colon)| {
            if colon { format!("{id}:{secret}") } else { id }.into_bytes()
        });
    let basic = prop_oneof![
        4 => credentials.prop_map(|c| STANDARD.encode(c)),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| STANDARD.encode(b)),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => "[ -~]{0,30}",
    ];
    let scheme = prop::sample::select(
        &[
            "Basic ", "basic ", "BASIC  ", "Basic", "Bearer ", "Digest ", "",
        ][..],
    );
    prop_oneof![
        1 => Just(None),
        6 => (scheme, basic).prop_map(|(s, b)| Some(format!("{s}{b}").into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

#[test]
fn oauth_form_and_basic_end_to_end() {
    let s = Server::start();
    let kid = s.app.admin_key.key_id.clone();
    let strategy = move || {
        let content_type = prop::sample::select(
            &[
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "APPLICATION/X-WWW-FORM-URLENCODED",
                "application/json",
                "multipart/form-data; boundary=x",
                "",
            ][..],
        );
        (any::<bool>(), content_type, form_body(kid), authorization())
    };
    check(200, strategy, |(introspect, ct, body, auth)| {
        let path = if introspect {
            "/oauth/v2/introspect"
        } else {
            "/oauth/v2/token"
        };
        let mut headers = Vec::new();
        if !ct.is_empty() {
            headers.push(header("content-type", ct));
        }
        if let Some(a) = auth
            && http::HeaderValue::from_bytes(&a).is_ok()
        {
            headers.push(("authorization".into(), a));
        }
        let answer =
            s.rt.block_on(s.send(false, path, &headers, body))
                .map_err(fail)?;
        oauth_refused(path, &answer).map(drop)
    });
    s.assert_still_serving();
}

/// An OAuth refusal: a 4xx with RFC 6749's error JSON and no-store. What `oauth_refused`
/// is asked about carries no credential anyone holds (no signature of a real key, no real
/// client secret), so a 200 — a token, or an introspection answer to an unauthenticated
/// client — would be a credential accepted that is not valid.
fn oauth_refused(what: &str, answer: &Answer) -> Result<Value, TestCaseError> {
    let body = http_ok(what, answer)?;
    prop_assert!(
        answer.status != 200,
        "{}: a request without valid credentials was answered 200: {}",
        what,
        body
    );
    let error = body["error"].as_str().unwrap_or("");
    prop_assert!(OAUTH_ERRORS.contains(&error), "{}: {}", what, body);
    prop_assert_eq!(
        answer.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    Ok(body)
}

/// What the token endpoint must do with an assertion signed by the right key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Either,
    Refuse,
}

/// The verdict on signed `claims` at `now` for the key of `subject` at `issuer`, judged here
/// apart from the server's code by the rules it documents: iss and sub name the key's owner,
/// aud holds the issuer (a trailing slash aside), exp and iat are numbers, exp not passed and
/// iat neither in the future nor more than an hour old, nbf (when given) passed, all with 5 s
/// of clock skew. Times within a minute of an edge may go either way (the request takes time),
/// and so may anything with a jti (replays are refused).
fn verdict(claims: &Value, subject: &str, issuer: &str, now: f64) -> Verdict {
    const SKEW: f64 = 5.0;
    const MAX_AGE: f64 = 3600.0;
    const SLACK: f64 = 60.0;
    let issuer = issuer.trim_end_matches('/');
    let names_issuer = |a: &Value| {
        a.as_str()
            .is_some_and(|a| a.trim_end_matches('/') == issuer)
    };
    let aud = match &claims["aud"] {
        Value::Array(list) => list.iter().any(names_issuer),
        single => names_issuer(single),
    };
    let owner = claims["iss"] == subject && claims["sub"] == subject;
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    let (exp, iat) = (time("exp"), time("iat"));
    let nbf = claims.get("nbf").filter(|v| !v.is_null());
    let possible = owner
        && aud
        && exp.is_some_and(|e| e + SKEW + SLACK > now)
        && iat.is_some_and(|i| i <= now + SKEW + SLACK && i + MAX_AGE + SKEW + SLACK >= now)
        && nbf.is_none_or(|n| n.as_f64().is_some_and(|n| n <= now + SKEW + SLACK));
    if !possible {
        return Verdict::Refuse;
    }
    let near = |t: f64| (t - now).abs() < 10_000.0;
    let sure = claims.get("jti").is_none()
        && exp.is_some_and(|e| near(e) && e >= now + SLACK)
        && iat.is_some_and(|i| near(i) && i <= now && i >= now - MAX_AGE + SLACK)
        && nbf.is_none_or(|n| n.as_f64().is_some_and(|n| near(n) && n <= now));
    if sure {
        Verdict::Accept
    } else {
        Verdict::Either
    }
}

/// An accepted grant hands out a real token: a Bearer token with a lifetime that calls the API.
async fn real_token(s: &Server, answer: &Answer) -> Result<(), TestCaseError> {
    let body = http_ok("token", answer)?;
    prop_assert_eq!(&body["token_type"], "Bearer", "{}", body);
    let lifetime = body["expires_in"].as_i64().unwrap_or(0);
    prop_assert!((1..=43_200).contains(&lifetime), "{}", body);
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| fail(format!("no access token: {body}")))?;
    let (status, me) = s.app.rest("GET", "/orgs/me", Some(token), None, None).await;
    prop_assert_eq!(status, 200, "the token does not call the API: {}", me);
    Ok(())
}

/// Signed assertions (the admin's real key) whose claims hold extremes: the token endpoint
/// answers 200 with a working token only where the claims are valid, invalid_grant where they
/// are not, and an accepted assertion with a jti is never accepted twice, not even after the
/// housekeeping purge.
#[test]
fn signed_assertions_with_extreme_claims() {
    let s = Server::start();
    check(64, claims, |claims| {
        s.rt.block_on(signed_assertion(&s, claims))
    });
    s.assert_still_serving();
}

async fn signed_assertion(s: &Server, claims: Value) -> Result<(), TestCaseError> {
    let key = &s.app.admin_key;
    let issuer = s.app.services.settings.issuer.clone();
    let mut claims: Value =
        serde_json::from_str(&claims.to_string().replace(ISSUER_PLACEHOLDER, &issuer)).unwrap();
    // The pure strategy's "now" and subject, moved to the server's.
    let shift = now() - NOW;
    for name in ["iat", "exp", "nbf"] {
        if let Some(t) = claims[name].as_i64().filter(|t| (t - NOW).abs() < 10_000) {
            claims[name] = json!(t + shift);
        } else if let Some(t) = claims[name]
            .as_f64()
            .filter(|t| (t - NOW as f64).abs() < 10_000.0)
        {
            claims[name] = json!(t + shift as f64);
        }
    }
    for name in ["iss", "sub"] {
        if claims[name] == "u1" {
            claims[name] = json!(key.subject());
        }
    }
    let expected = verdict(&claims, &key.subject(), &issuer, now() as f64);
    let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
    let form = format!(
        "grant_type={}&assertion={assertion}&scope={}",
        percent_encode(JWT_BEARER),
        percent_encode(API_SCOPE)
    );
    let headers = vec![header("content-type", "application/x-www-form-urlencoded")];
    let post = || {
        s.send(
            false,
            "/oauth/v2/token",
            &headers,
            form.clone().into_bytes(),
        )
    };
    let first = post().await.map_err(fail)?;
    if first.status == 200 {
        prop_assert!(
            expected != Verdict::Refuse,
            "an invalid assertion was accepted: {}",
            claims
        );
        real_token(s, &first).await?;
    } else {
        let body = oauth_refused("token", &first)?;
        prop_assert!(
            expected != Verdict::Accept,
            "a valid assertion was refused: {} {}",
            claims,
            body
        );
        prop_assert_eq!(&body["error"], "invalid_grant", "{}", body);
    }
    if first.status == 200 && claims["jti"].as_str().is_some_and(|j| !j.is_empty()) {
        let again = post().await.map_err(fail)?;
        prop_assert_eq!(again.status, 400, "a replay was accepted: {:?}", claims);
        s.app.services.purge_expired_tokens().await.unwrap();
        let after_purge = post().await.map_err(fail)?;
        prop_assert_eq!(
            after_purge.status,
            400,
            "a replay was accepted after the purge: {:?}",
            claims
        );
    }
    Ok(())
}

/// Keys uploaded with expiration dates at and past every edge, listed back over gRPC, REST
/// and Connect: refused as INVALID_ARGUMENT or stored and listed, never a 5xx.
#[test]
fn key_expiration_edges() {
    let s = Server::start();
    let (user_id, _) =
        s.rt.block_on(s.app.member_with_key(&s.token, 0, "ORG_USER_VIEWER"));
    let pem = test_key().public_key().to_pkix_pem().unwrap();
    let strategy = || {
        let seconds = prop_oneof![
            prop::sample::select(
                &[
                    253_402_300_799i64, // 9999-12-31T23:59:59Z
                    253_402_300_800,    // 10000-01-01
                    8_210_266_876_799,
                    8_210_266_876_800,
                    i64::MAX,
                    i64::MIN,
                    -62_135_596_800, // 0001-01-01
                    -62_135_596_801,
                    4_102_444_800, // 2100-01-01
                    0,
                ][..]
            ),
            (0i64..400).prop_map(|d| now() + 60 + d),
            any::<i64>(),
        ];
        let nanos = prop_oneof![
            Just(0),
            Just(999_999_999),
            Just(1_000_000_000),
            Just(-1),
            any::<i32>()
        ];
        (seconds, nanos, any::<bool>())
    };
    check(40, strategy, |(seconds, nanos, v2)| {
        s.rt.block_on(upload_with_expiry(&s, &user_id, &pem, seconds, nanos, v2))
    });
    s.assert_still_serving();
}

async fn upload_with_expiry(
    s: &Server,
    user_id: &str,
    pem: &str,
    seconds: i64,
    nanos: i32,
    v2: bool,
) -> Result<(), TestCaseError> {
    use authn_keys::proto::{
        wkt::Timestamp, zitadel::user::v2::user_service_client::UserServiceClient,
    };
    let expiration = Some(Timestamp { seconds, nanos });
    let added = if v2 {
        let mut c = UserServiceClient::new(s.app.channel().await);
        c.add_key(authed(
            &s.token,
            None,
            user_v2::AddKeyRequest {
                user_id: user_id.into(),
                expiration_date: expiration,
                public_key: pem.as_bytes().to_vec(),
            },
        ))
        .await
        .map(|r| r.into_inner().key_id)
    } else {
        s.app
            .grpc()
            .await
            .add_machine_key(authed(
                &s.token,
                None,
                mgmt::AddMachineKeyRequest {
                    user_id: user_id.into(),
                    r#type: 1,
                    expiration_date: expiration,
                    public_key: pem.as_bytes().to_vec(),
                },
            ))
            .await
            .map(|r| r.into_inner().key_id)
    };
    let key_id = match added {
        Ok(id) => id,
        Err(st) => {
            prop_assert_eq!(st.code(), Code::InvalidArgument, "{:?}", st);
            return Ok(());
        }
    };
    // Listed back over every gateway.
    let mut c = s.app.grpc().await;
    let listed = c
        .list_machine_keys(authed(
            &s.token,
            None,
            mgmt::ListMachineKeysRequest {
                user_id: user_id.into(),
                query: None,
            },
        ))
        .await;
    prop_assert!(listed.is_ok(), "{:?}", listed);
    let got = c
        .get_machine_key_by_i_ds(authed(
            &s.token,
            None,
            mgmt::GetMachineKeyByIDsRequest {
                user_id: user_id.into(),
                key_id: key_id.clone(),
            },
        ))
        .await;
    prop_assert!(got.is_ok(), "{:?}", got);
    let bearer = s.bearer();
    let rest = s
        .send(
            false,
            &format!("/management/v1/users/{user_id}/keys/_search"),
            std::slice::from_ref(&bearer),
            b"{}".to_vec(),
        )
        .await
        .map_err(fail)?;
    gateway_ok("REST list", &rest, false)?;
    let connect = s
        .send(
            false,
            "/zitadel.user.v2.UserService/ListKeys",
            &[bearer, header("content-type", "application/json")],
            json!({"filters": [{"userIdFilter": {"id": user_id}}]})
                .to_string()
                .into_bytes(),
        )
        .await
        .map_err(fail)?;
    gateway_ok("Connect ListKeys", &connect, true)?;
    let removed = c
        .remove_machine_key(authed(
            &s.token,
            None,
            mgmt::RemoveMachineKeyRequest {
                user_id: user_id.into(),
                key_id,
            },
        ))
        .await;
    prop_assert!(removed.is_ok(), "{:?}", removed);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Limits: declared lengths, bombs, oversized headers and bodies

#[test]
fn huge_declarations_and_bombs_meet_the_limits() {
    let s = Server::start();
    s.rt.block_on(async {
        let auth = s.bearer();
        let m = "/zitadel.management.v1.ManagementService/GetUserByID";
        let grpc = [
            header("content-type", "application/grpc"),
            header("te", "trailers"),
            auth.clone(),
        ];
        let web = [header("content-type", "application/grpc-web"), auth.clone()];
        let id_of = |a: &Answer| a.grpc_status().map(|st| (st.code(), error_id(&st)));

        // A frame declaring 100 bytes, 3 sent: truncated, on gRPC and gRPC-Web.
        let declared = vec![0, 0, 0, 0, 100, 1, 2, 3];
        for (http2, headers) in [(true, &grpc[..]), (false, &web[..])] {
            let a = s.send(http2, m, headers, declared.clone()).await.unwrap();
            assert_eq!(
                id_of(&a),
                Some((Code::InvalidArgument, "GRPC-Frm01".into())),
                "{a:?}"
            );
        }
        // A whole message over the 64 KiB limit, sent in full or only declared, and a body
        // of many small frames outgrowing one message: RESOURCE_EXHAUSTED (as grpc-go
        // answers), on gRPC and gRPC-Web, before more than the limit is buffered.
        let mut big = vec![0];
        big.extend_from_slice(&(1u32 << 20).to_be_bytes());
        big.extend(std::iter::repeat_n(0u8, 1 << 20));
        let mut small_frames = Vec::new();
        for _ in 0..20_000 {
            small_frames.extend_from_slice(&[0, 0, 0, 0, 0]);
        }
        let just_over = {
            let mut f = vec![0];
            f.extend_from_slice(&(65_537u32).to_be_bytes());
            f.extend(std::iter::repeat_n(0u8, 65_537));
            f
        };
        let four_gib = vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        for body in [
            big.clone(),
            big[..5].to_vec(),
            four_gib,
            small_frames,
            just_over,
        ] {
            for (http2, headers) in [(true, &grpc[..]), (false, &web[..])] {
                let a = s.send(http2, m, headers, body.clone()).await.unwrap();
                assert_eq!(
                    id_of(&a),
                    Some((Code::ResourceExhausted, "GRPC-Size1".into())),
                    "{a:?}"
                );
                // Over HTTP/1.1 the rest of a 1 MiB body is left unread: the connection
                // closes, and says so, so a client does not reuse it.
                if !http2 && body.len() > 1 << 20 {
                    assert_eq!(a.headers["connection"], "close", "{a:?}");
                }
            }
        }
        // Exactly at the limit is read and decoded (zero bytes are not a valid message).
        let mut at_limit = vec![0];
        at_limit.extend_from_slice(&(65_536u32).to_be_bytes());
        at_limit.extend(std::iter::repeat_n(0u8, 65_536));
        let a = s.send(true, m, &grpc, at_limit).await.unwrap();
        assert_eq!(
            id_of(&a).map(|(c, _)| c),
            Some(Code::InvalidArgument),
            "{a:?}"
        );

        // Connect: a gzip bomb (50 MiB of spaces in ~50 KiB) stops at the limit.
        let bomb = gzip(&vec![b' '; 50 << 20]);
        assert!(bomb.len() < 65_536);
        let a = s
            .send(
                false,
                "/zitadel.management.v1.ManagementService/ListUsers",
                &[
                    header("content-type", "application/json"),
                    header("content-encoding", "gzip"),
                    auth.clone(),
                ],
                bomb,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 429, "{a:?}");
        assert_eq!(a.json().unwrap()["code"], "resource_exhausted");
        // A Connect body over the limit, plain.
        let a = s
            .send(
                false,
                "/zitadel.management.v1.ManagementService/ListUsers",
                &[header("content-type", "application/json"), auth.clone()],
                vec![b' '; 1 << 20],
            )
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.json().unwrap()["code"].clone()),
            (429, json!("resource_exhausted"))
        );
        assert_eq!(a.headers["connection"], "close", "{a:?}");

        // A body read to its end keeps the connection open.
        let a = s
            .send(
                false,
                "/zitadel.management.v1.ManagementService/ListUsers",
                &[header("content-type", "application/json"), auth.clone()],
                b"{}".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.headers.get("connection").is_none(), "{a:?}");

        // Deep nesting (60,000 levels, within the body limit): a 400, on Connect and REST.
        let deep = "[".repeat(60_000).into_bytes();
        let a = s
            .send(
                false,
                "/zitadel.management.v1.ManagementService/ListUsers",
                &[header("content-type", "application/json"), auth.clone()],
                deep.clone(),
            )
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.json().unwrap()["code"].clone()),
            (400, json!("invalid_argument"))
        );
        let deep_object = "{\"query\":".repeat(6_000).into_bytes();
        for body in [deep, deep_object] {
            let a = s
                .send(
                    false,
                    "/management/v1/users/_search",
                    &[header("content-type", "application/json"), auth.clone()],
                    body,
                )
                .await
                .unwrap();
            assert_eq!(a.status, 400, "{a:?}");
            assert_eq!(a.json().unwrap()["details"][0]["id"], "REST-Json1");
        }

        // 1 MB bodies: REST 413 REST-Body1; OAuth 413 invalid_request.
        let a = s
            .send(
                false,
                "/management/v1/users/_search",
                &[header("content-type", "application/json"), auth.clone()],
                vec![b' '; 1 << 20],
            )
            .await
            .unwrap();
        assert_eq!(a.status, 413);
        assert_eq!(a.json().unwrap()["details"][0]["id"], "REST-Body1");
        assert_eq!(a.headers["connection"], "close", "{a:?}");
        for path in ["/oauth/v2/token", "/oauth/v2/introspect"] {
            let mut form = b"assertion=".to_vec();
            form.extend(vec![b'a'; 1 << 20]);
            let a = s
                .send(
                    false,
                    path,
                    &[header("content-type", "application/x-www-form-urlencoded")],
                    form,
                )
                .await
                .unwrap();
            assert_eq!(
                (a.status, a.json().unwrap()["error"].clone()),
                (413, json!("invalid_request")),
                "{path}"
            );
            assert_eq!(a.headers["connection"], "close", "{a:?}");
        }

        // 1 MB of headers: 431 on HTTP/1.1. On HTTP/2 the block arrives as dozens of
        // CONTINUATION frames, which the h2 stack refuses by ending that one connection
        // (GOAWAY ENHANCE_YOUR_CALM, its flood defence); a block just over the limit is a 431.
        let big_header = ("x-big".to_owned(), vec![b'a'; 1 << 20]);
        let a = s
            .send(false, "/healthz", std::slice::from_ref(&big_header), vec![])
            .await
            .unwrap();
        assert_eq!(a.status, 431);
        let refused = s
            .send(true, m, &[grpc[0].clone(), big_header], vec![])
            .await;
        assert!(refused.is_err(), "{refused:?}");
        let over = ("x-big".to_owned(), vec![b'a'; 20_000]);
        let a = s
            .send(true, m, &[grpc[0].clone(), over], vec![])
            .await
            .unwrap();
        assert_eq!(a.status, 431, "{a:?}");
    });
    s.assert_still_serving();
}

// ---------------------------------------------------------------------------------------
// The corpus

fn corpus_files() -> Vec<(String, String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out = Vec::new();
    for target in std::fs::read_dir(&root).expect("tests/corpus exists") {
        let target = target.unwrap().path();
        assert!(
            target.is_dir(),
            "{target:?}: corpus files go in a target's folder"
        );
        let target_name = target.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&target).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            out.push((target_name.clone(), name, std::fs::read(&file).unwrap()));
        }
    }
    out.sort();
    out
}

fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8(bytes.to_vec()).expect("a text corpus file is UTF-8");
    s.strip_suffix('\n').map(str::to_owned).unwrap_or(s)
}

#[test]
fn corpus_replays() {
    let files = corpus_files();
    assert!(
        files.len() >= 20,
        "the corpus is there: {} files",
        files.len()
    );
    for name in PEM_ACCEPTED
        .iter()
        .chain(PEM_REFUSED_BECAUSE.iter().map(|(name, _)| name))
    {
        assert!(
            files.iter().any(|(t, n, _)| t == "pem" && n == name),
            "tests/corpus/pem/{name} is named above but missing"
        );
    }
    let s = Server::start();
    let public = test_key().public_key();
    let mut failures = Vec::new();
    for (target, name, bytes) in &files {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.rt.block_on(replay(&s, &public, target, name, bytes))
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("tests/corpus/{target}/{name}: {e}")),
            Err(_) => failures.push(format!("tests/corpus/{target}/{name}: panicked")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    s.assert_still_serving();
}

/// The uploaded keys of `tests/corpus/pem` that are accepted; every other file there must be
/// refused (not PEM, not RSA, P-256, P-384 or Ed25519, or RSA numbers outside the rule: a
/// modulus of 2048 to 4096 bits that is odd, an odd exponent greater than 1).
const PEM_ACCEPTED: &[&str] = &["rsa-2048-crlf", "ec-p256", "ed25519"];

/// Refused RSA keys of `tests/corpus/pem`, and what their refusal names.
const PEM_REFUSED_BECAUSE: &[(&str, &str)] = &[
    ("rsa-1024-too-small", "has 1024 bits; at least 2048"),
    (
        "rsa-2048-exponent-1",
        "exponent must be odd, greater than 1",
    ),
    (
        "rsa-2048-exponent-2-pow-64",
        "exponent must be odd, greater than 1",
    ),
    (
        "rsa-2048-exponent-even",
        "exponent must be odd, greater than 1",
    ),
    ("rsa-modulus-8200-bits", "has 8200 bits; at most 4096"),
    ("rsa-modulus-even-2048-bits", "modulus is even"),
];

/// What each corpus target is fed to.
async fn replay(
    s: &Server,
    public: &PublicKey,
    target: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let bearer = s.bearer();
    match target {
        // A gRPC request body: the frame check, then gRPC and gRPC-Web binary end to end.
        "grpc-frame" => {
            let _ = frames_complete(bytes);
            for method in [
                "/zitadel.management.v1.ManagementService/GetUserByID",
                "/grpc.health.v1.Health/Check",
            ] {
                let headers = [
                    header("content-type", "application/grpc"),
                    header("te", "trailers"),
                    bearer.clone(),
                ];
                let a = s
                    .send(true, method, &headers, bytes.to_vec())
                    .await
                    .map_err(fail)?;
                grpc_ok(method, &a)?;
                let headers = [
                    header("content-type", "application/grpc-web"),
                    bearer.clone(),
                ];
                let a = s
                    .send(false, method, &headers, bytes.to_vec())
                    .await
                    .map_err(fail)?;
                let (code, message) = grpc_web_status(&a).ok_or_else(|| fail(format!("{a:?}")))?;
                prop_assert!(
                    !matches!(code, Code::Internal | Code::Unknown),
                    "{:?} {}",
                    code,
                    message
                );
            }
        }
        // A grpc-web-text request body.
        "grpc-web-text" => {
            let headers = [header("content-type", "application/grpc-web-text"), bearer];
            let a = s
                .send(
                    false,
                    "/zitadel.management.v1.ManagementService/GetUserByID",
                    &headers,
                    bytes.to_vec(),
                )
                .await
                .map_err(fail)?;
            prop_assert!(a.status == 200 || (400..500).contains(&a.status), "{:?}", a);
            if a.status == 200 {
                let (code, message) = grpc_web_status(&a).ok_or_else(|| fail(format!("{a:?}")))?;
                prop_assert!(
                    !matches!(code, Code::Internal | Code::Unknown),
                    "{:?} {}",
                    code,
                    message
                );
            }
        }
        // A JSON request body: decoded as each request type, sent to every Connect method
        // and REST route of the properties.
        "request-json" => {
            decode_as_requests(bytes)?;
            for path in CONNECT_METHODS {
                let headers = [header("content-type", "application/json"), bearer.clone()];
                let a = s
                    .send(false, path, &headers, bytes.to_vec())
                    .await
                    .map_err(fail)?;
                gateway_ok(path, &a, true)?;
            }
            for path in REST_ROUTES {
                let headers = [header("content-type", "application/json"), bearer.clone()];
                let a = s
                    .send(false, path, &headers, bytes.to_vec())
                    .await
                    .map_err(fail)?;
                gateway_ok(path, &a, false)?;
            }
        }
        // A gzip-encoded Connect JSON body.
        "connect-gzip" => {
            let headers = [
                header("content-type", "application/json"),
                header("content-encoding", "gzip"),
                bearer,
            ];
            let path = "/zitadel.management.v1.ManagementService/ListUsers";
            let a = s
                .send(false, path, &headers, bytes.to_vec())
                .await
                .map_err(fail)?;
            gateway_ok(path, &a, true)?;
        }
        // A compact JWT: parsed and checked, and sent as a grant assertion and as a client
        // assertion.
        "jwt" => {
            let token = text(bytes);
            probe_jwt(&token, public)?;
            let headers = [header("content-type", "application/x-www-form-urlencoded")];
            let grant = format!(
                "grant_type={}&assertion={}",
                percent_encode(JWT_BEARER),
                percent_encode(&token)
            );
            let a = s
                .send(false, "/oauth/v2/token", &headers, grant.into_bytes())
                .await
                .map_err(fail)?;
            oauth_refused("token", &a)?;
            let client = format!(
                "token=x&client_assertion_type={}&client_assertion={}",
                percent_encode(CLIENT_ASSERTION_TYPE),
                percent_encode(&token)
            );
            let a = s
                .send(false, "/oauth/v2/introspect", &headers, client.into_bytes())
                .await
                .map_err(fail)?;
            oauth_refused("introspect", &a)?;
        }
        // JSON claims over the usual ones (iss, sub, aud, iat, exp for the admin), signed
        // with the admin's key and granted; replays refused.
        "assertion-claims" => {
            let over: Value = serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
            let sub = s.app.admin_key.subject();
            let mut claims = json!({"iss": sub, "sub": sub, "aud": [ISSUER_PLACEHOLDER], "iat": NOW, "exp": NOW + 300});
            for (k, v) in over
                .as_object()
                .ok_or_else(|| fail("claims are an object".into()))?
            {
                claims[k] = v.clone();
            }
            signed_assertion(s, claims).await?;
        }
        // An uploaded public key: parsed, and uploaded over gRPC; accepted only when listed in
        // `PEM_ACCEPTED`.
        "pem" => {
            probe_pem(bytes)?;
            let accept = PEM_ACCEPTED.contains(&name);
            prop_assert_eq!(
                PublicKey::from_pkix_pem(bytes).is_ok(),
                accept,
                "parsed: {:?}",
                PublicKey::from_pkix_pem(bytes)
            );
            let req = mgmt::AddMachineKeyRequest {
                user_id: s.app.admin_id.clone(),
                r#type: 1,
                expiration_date: None,
                public_key: bytes.to_vec(),
            };
            match s
                .app
                .grpc()
                .await
                .add_machine_key(authed(&s.token, None, req))
                .await
            {
                Ok(added) => {
                    prop_assert!(accept, "the upload was accepted");
                    let key_id = added.into_inner().key_id;
                    let req = mgmt::RemoveMachineKeyRequest {
                        user_id: s.app.admin_id.clone(),
                        key_id,
                    };
                    s.app
                        .grpc()
                        .await
                        .remove_machine_key(authed(&s.token, None, req))
                        .await
                        .unwrap();
                }
                Err(st) => {
                    prop_assert!(!accept, "the upload was refused: {:?}", st);
                    prop_assert_eq!(
                        (st.code(), error_id(&st)),
                        (Code::InvalidArgument, "COMMAND-5F3h1".to_owned())
                    );
                    if let Some((_, why)) = PEM_REFUSED_BECAUSE.iter().find(|(n, _)| *n == name) {
                        prop_assert!(st.message().contains(why), "{:?}", st.message());
                    }
                }
            }
        }
        // A form body for both OAuth endpoints.
        "oauth-form" => {
            let headers = [header("content-type", "application/x-www-form-urlencoded")];
            for path in ["/oauth/v2/token", "/oauth/v2/introspect"] {
                let a = s
                    .send(false, path, &headers, bytes.to_vec())
                    .await
                    .map_err(fail)?;
                oauth_refused(path, &a)?;
            }
        }
        // An Authorization header value at the introspection endpoint.
        "basic-auth" => {
            let value = text(bytes).into_bytes();
            prop_assert!(
                http::HeaderValue::from_bytes(&value).is_ok(),
                "not a header value"
            );
            let headers = [
                header("content-type", "application/x-www-form-urlencoded"),
                ("authorization".into(), value),
            ];
            let a = s
                .send(false, "/oauth/v2/introspect", &headers, b"token=x".to_vec())
                .await
                .map_err(fail)?;
            oauth_refused("introspect", &a)?;
            prop_assert_eq!(a.status, 401, "{:?}", a);
        }
        // A request path for the Connect gateway's procedure check.
        "procedure" => probe_procedure(&text(bytes))?,
        other => panic!("unknown corpus target {other}: add it to `replay`"),
    }
    Ok(())
}
