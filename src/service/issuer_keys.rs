//! Outside issuers' signing keys, for the tokens trusts accept: fetched through [`Outbound`],
//! cached in memory, shared by every request ([`IssuerKeys`] is a cheap clone).
//!
//! Where keys come from ([`KeySource`]): a set an administrator gave (nothing is fetched), a
//! JWKS URL, or an issuer's OpenID discovery document (`/.well-known/openid-configuration`,
//! whose `issuer` must be the issuer and whose `jwks_uri` must pass [`Outbound::check_url`]).
//!
//! The rules, per source (a JWKS URL, or an issuer):
//!
//! - **Lifetime.** A fetched set is fresh for its answer's `Cache-Control: max-age`, held
//!   between [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`], or for [`DEFAULT_MAX_AGE`] without one (or
//!   with `no-cache` or `no-store`).
//! - **Stale keys keep working.** Once a set is stale, a request that finds its key in it is
//!   answered from it at once while one refresh runs in the background. If the refresh fails
//!   (issuer down, timeout, bad JSON), the set keeps working until [`STALE_LIMIT`] after it was
//!   fetched. A fetched set holding private key material is the exception: the issuer has
//!   leaked keys, and the cached set is dropped.
//! - **Rotation without anyone calling the API.** A token whose `kid` (or, without a kid,
//!   whose algorithm) the set lacks makes the set be fetched again, as the spacing below
//!   allows, and waits for it.
//! - **Bounded fetching.** One fetch per source at a time: concurrent requests wait for the one
//!   in flight (a per-source async lock; the fetch is a task of its own, so a caller that gives
//!   up does not cancel it for the others). A source with keys is fetched at most once per
//!   [`MIN_REFETCH`] (counted from its previous refetch: a key rotated in just after the
//!   first fetch is still found at once), whatever tokens arrive; one without
//!   usable keys at most once per [`RETRY_WITHOUT_KEYS`], requests in between getting the last
//!   failure. A slow issuer delays only its own requests.
//! - **Bounded memory.** An answer of at most [`MAX_BODY`] bytes, at most
//!   [`jwks::MAX_KEYS`](crate::domain::jwks::MAX_KEYS) keys a set, at most [`MAX_SOURCES`]
//!   sources (the least recently used is forgotten).
//!
//! Errors ([`IssuerKeyError`]) are written to be an OAuth `invalid_grant` description: they
//! say what failed (a status, a timeout, a size, the set's problem), never the answer's body.
use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use url::Url;

use super::outbound::{Answer, Outbound, OutboundError};
use crate::domain::{
    clock::Clock,
    jwks::{Jwks, JwksError, SelectError},
    jwt::Algorithm,
    keypair::PublicKey,
    text::shown,
};

/// The shortest time a fetched set is fresh, whatever its `max-age` says.
pub const MIN_MAX_AGE: TimeDelta = TimeDelta::seconds(60);
/// The longest time a fetched set is fresh.
pub const MAX_MAX_AGE: TimeDelta = TimeDelta::hours(24);
/// How long a fetched set is fresh when its answer says nothing usable.
pub const DEFAULT_MAX_AGE: TimeDelta = TimeDelta::minutes(5);
/// How long after its fetch a set keeps working while it cannot be refreshed.
pub const STALE_LIMIT: TimeDelta = TimeDelta::hours(24);
/// The least time between two fetches of a source that has keys.
pub const MIN_REFETCH: TimeDelta = TimeDelta::seconds(30);
/// The least time between two fetches of a source without usable keys (a failed first fetch).
pub const RETRY_WITHOUT_KEYS: TimeDelta = TimeDelta::seconds(5);
/// The largest discovery document or key set read, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// How many sources are cached; past it the least recently used is forgotten.
pub const MAX_SOURCES: usize = 1000;

/// Where a trust's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A set given by an administrator (parsed with [`Jwks::parse`]); nothing is fetched.
    Inline(Arc<Jwks>),
    /// A JWKS URL.
    Uri(Url),
    /// An OpenID issuer: its discovery document names the JWKS URL.
    Discovery { issuer: String },
}

/// Why no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerKeyError {
    /// The issuer's keys could not be had (and none are cached that may still be used).
    #[error("the issuer's keys could not be fetched: {0}")]
    Fetch(FetchError),
    /// The keys were had; none is the token's.
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// Which of the two documents a failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Discovery,
    KeySet,
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Document::Discovery => "the discovery document",
            Document::KeySet => "the key set",
        })
    }
}

/// What went wrong fetching an issuer's keys. Never holds an answer's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The issuer in the source is not a URL a discovery document can be fetched from.
    #[error("the issuer {0}")]
    Issuer(String),
    /// No answer: refused, timed out, no connection.
    #[error("{what}: {error}")]
    Request {
        what: Document,
        error: OutboundError,
    },
    #[error("{what} answered with a redirect (HTTP {status}), which is not followed")]
    Redirect { what: Document, status: u16 },
    #[error("{what} answered HTTP {status}")]
    Status { what: Document, status: u16 },
    #[error("{what} is larger than {} KiB", MAX_BODY / 1024)]
    TooLarge { what: Document },
    /// The discovery document is not what it must be.
    #[error("the discovery document {0}")]
    Discovery(String),
    /// The key set was refused.
    #[error("{0}")]
    Jwks(JwksError),
    /// No fetch has finished since the keys were last usable (a fetch that broke off).
    #[error("no fetch has finished yet")]
    NotFetched,
}

/// The cache of outside issuers' keys. Cheap to clone; every clone shares the cache.
#[derive(Clone)]
pub struct IssuerKeys {
    inner: Arc<Inner>,
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("sources", &self.sources())
            .field("fetches", &self.fetches())
            .field("fetch_failures", &self.fetch_failures())
            .finish()
    }
}

struct Inner {
    outbound: Outbound,
    clock: Arc<dyn Clock>,
    capacity: usize,
    sources: Mutex<Sources>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// The cached sources, each with when it was last used (a counter: larger is later).
#[derive(Default)]
struct Sources {
    map: HashMap<SourceId, (Arc<Source>, u64)>,
    tick: u64,
}

/// What identifies a source in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SourceId {
    Uri(String),
    Discovery(String),
}

/// What is fetched for a source.
#[derive(Clone)]
enum Target {
    Jwks(Url),
    Discovery { issuer: String, document: Url },
}

impl Target {
    /// The host the source is fetched from, for log lines (a URL's path may hold anything).
    fn host(&self) -> String {
        let url = match self {
            Target::Jwks(url) | Target::Discovery { document: url, .. } => url,
        };
        shown(url.host_str().unwrap_or("")).to_string()
    }
}

/// One source's cache entry.
#[derive(Default)]
struct Source {
    /// Held by the fetch in flight, for as long as it runs.
    fetch: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: Option<Fetched>,
    /// When the latest fetch started.
    attempted_at: Option<DateTime<Utc>>,
    /// When the latest fetch of a source that had keys started (a refetch: for a new kid,
    /// or a refresh): refetches are spaced, the first fetch does not count.
    refetched_at: Option<DateTime<Utc>>,
    /// How many fetches have finished, either way: a request that waited for the fetch lock
    /// and finds this moved on has the result it waited for.
    finished: u64,
    /// Why the latest fetch failed, if it did.
    failure: Option<FetchError>,
}

struct Fetched {
    jwks: Jwks,
    at: DateTime<Utc>,
    fresh_until: DateTime<Utc>,
}

/// What the cache says about a token's key, before any fetch.
enum Found {
    Fresh(PublicKey),
    Stale(PublicKey),
    /// The set lacks the kid, or a key for the algorithm: a newer set might have it.
    Missing(SelectError),
    /// The set answers no, and a newer one would not change that.
    Refused(SelectError),
    /// No keys that may be used.
    Nothing,
}

impl State {
    fn find(&self, now: DateTime<Utc>, kid: Option<&str>, alg: Algorithm) -> Found {
        let Some(fetched) = self.keys.as_ref().filter(|f| now < f.at + STALE_LIMIT) else {
            return Found::Nothing;
        };
        match fetched.jwks.select(kid, alg) {
            Ok(key) if now < fetched.fresh_until => Found::Fresh(key.clone()),
            Ok(key) => Found::Stale(key.clone()),
            Err(e) if e.is_missing() => Found::Missing(e),
            Err(e) => Found::Refused(e),
        }
    }

    /// Whether a fetch may start now, by the spacing rules.
    fn may_fetch(&self, now: DateTime<Utc>) -> bool {
        if self.has_keys(now) {
            self.refetched_at.is_none_or(|at| now >= at + MIN_REFETCH)
        } else {
            self.attempted_at
                .is_none_or(|at| now >= at + RETRY_WITHOUT_KEYS)
        }
    }

    fn has_keys(&self, now: DateTime<Utc>) -> bool {
        self.keys.as_ref().is_some_and(|f| now < f.at + STALE_LIMIT)
    }

    /// The answer once no fetch is to be made: the key, or why there is none. After a failed
    /// fetch, a key the cached set lacks is reported as that failure (the new set might have
    /// had it).
    fn answer(
        &self,
        now: DateTime<Utc>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<PublicKey, IssuerKeyError> {
        match self.find(now, kid, alg) {
            Found::Fresh(key) | Found::Stale(key) => Ok(key),
            Found::Refused(e) => Err(e.into()),
            Found::Missing(e) => match &self.failure {
                Some(failure) => Err(IssuerKeyError::Fetch(failure.clone())),
                None => Err(e.into()),
            },
            Found::Nothing => Err(IssuerKeyError::Fetch(
                self.failure.clone().unwrap_or(FetchError::NotFetched),
            )),
        }
    }
}

impl IssuerKeys {
    pub fn new(outbound: Outbound, clock: Arc<dyn Clock>) -> IssuerKeys {
        Self::with_capacity(outbound, clock, MAX_SOURCES)
    }

    fn with_capacity(outbound: Outbound, clock: Arc<dyn Clock>, capacity: usize) -> IssuerKeys {
        IssuerKeys {
            inner: Arc::new(Inner {
                outbound,
                clock,
                capacity,
                sources: Mutex::new(Sources::default()),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// How many fetches have been started (a discovery document and its key set count once).
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// How many of those failed.
    pub fn fetch_failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// How many sources are cached.
    pub fn sources(&self) -> usize {
        lock(&self.inner.sources).map.len()
    }

    /// The key that verifies a token from `source` with `kid` (if it has one) signed under
    /// `alg`: from the cache, or fetched (see the module's documentation for when).
    pub async fn key_for(
        &self,
        source: &KeySource,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<PublicKey, IssuerKeyError> {
        let (id, target) = match source {
            KeySource::Inline(jwks) => return Ok(jwks.select(kid, alg)?.clone()),
            KeySource::Uri(url) => uri_source(url),
            KeySource::Discovery { issuer } => {
                discovery_source(issuer).map_err(IssuerKeyError::Fetch)?
            }
        };
        let entry = self.inner.source(id);
        let now = self.inner.clock.now();
        let (found, seen, may_fetch) = {
            let state = lock(&entry.state);
            (
                state.find(now, kid, alg),
                state.finished,
                state.may_fetch(now),
            )
        };
        match found {
            Found::Fresh(key) => return Ok(key),
            Found::Refused(e) => return Err(e.into()),
            Found::Stale(key) => {
                // Answered at once; one refresh in the background, unless one is running.
                if may_fetch && let Ok(guard) = entry.fetch.clone().try_lock_owned() {
                    tokio::spawn(self.inner.clone().fetch(entry, target, seen, guard));
                }
                return Ok(key);
            }
            // Too soon to fetch again, and no fetch in flight that might bring the key.
            Found::Missing(e) if !may_fetch && entry.fetch.try_lock().is_ok() => {
                return Err(e.into());
            }
            Found::Missing(_) | Found::Nothing => {}
        }
        // Wait for the fetch in flight, or make one: in a task of its own, holding the
        // source's lock, so it finishes (and is recorded) even if this request goes away.
        let guard = entry.fetch.clone().lock_owned().await;
        let fetch = tokio::spawn(self.inner.clone().fetch(entry.clone(), target, seen, guard));
        // A panic in the fetch is the runtime's to report; the state says what is known.
        let _ = fetch.await;
        let now = self.inner.clock.now();
        lock(&entry.state).answer(now, kid, alg)
    }

    /// Waits until no fetch of `source` is in flight.
    #[cfg(test)]
    async fn settled(&self, source: &KeySource) {
        let id = match source {
            KeySource::Inline(_) => return,
            KeySource::Uri(url) => uri_source(url).0,
            KeySource::Discovery { issuer } => discovery_source(issuer).unwrap().0,
        };
        let _ = self.inner.source(id).fetch.lock().await;
    }
}

/// A JWKS URL's place in the cache, and what is fetched for it.
fn uri_source(url: &Url) -> (SourceId, Target) {
    (SourceId::Uri(url.to_string()), Target::Jwks(url.clone()))
}

/// An issuer's place in the cache, and what is fetched for it.
fn discovery_source(issuer: &str) -> Result<(SourceId, Target), FetchError> {
    let document = discovery_url(issuer)?;
    let issuer = issuer.trim_end_matches('/').to_string();
    Ok((
        SourceId::Discovery(issuer.clone()),
        Target::Discovery { issuer, document },
    ))
}

impl Inner {
    /// The source's entry, made if it is new (forgetting the least recently used past the
    /// capacity), marked as used now.
    fn source(&self, id: SourceId) -> Arc<Source> {
        let mut sources = lock(&self.sources);
        sources.tick += 1;
        let tick = sources.tick;
        if let Some((entry, used)) = sources.map.get_mut(&id) {
            *used = tick;
            return entry.clone();
        }
        if sources.map.len() >= self.capacity {
            let oldest = sources
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sources.map.remove(&oldest);
            }
        }
        let entry = Arc::new(Source::default());
        sources.map.insert(id, (entry.clone(), tick));
        entry
    }

    /// Fetches `target` into `entry`, holding `_guard` (the source's fetch lock) throughout.
    /// Does nothing if a fetch finished since the caller looked (`seen`), or if the spacing
    /// rules say not yet.
    async fn fetch(
        self: Arc<Self>,
        entry: Arc<Source>,
        target: Target,
        seen: u64,
        _guard: tokio::sync::OwnedMutexGuard<()>,
    ) {
        let started = self.clock.now();
        {
            let mut state = lock(&entry.state);
            if state.finished != seen || !state.may_fetch(started) {
                return;
            }
            state.attempted_at = Some(started);
            if state.has_keys(started) {
                state.refetched_at = Some(started);
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = fetch_keys(&self.outbound, &target).await;
        let mut state = lock(&entry.state);
        state.finished += 1;
        match result {
            Ok((jwks, fresh_for)) => {
                state.keys = Some(Fetched {
                    jwks,
                    at: started,
                    fresh_until: started + fresh_for,
                });
                state.failure = None;
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(host = %target.host(), error = %e, "an issuer's keys could not be fetched");
                if matches!(&e, FetchError::Jwks(j) if j.is_secret()) {
                    state.keys = None;
                }
                state.failure = Some(e);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery §4.1).
fn discovery_url(issuer: &str) -> Result<Url, FetchError> {
    let parsed = Url::parse(issuer)
        .map_err(|e| FetchError::Issuer(format!("{} is not a URL: {e}", shown(issuer))))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(FetchError::Issuer(format!(
            "{} has a query or fragment, which an OpenID issuer has not",
            shown(issuer)
        )));
    }
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| FetchError::Issuer(format!("{} is not a URL: {e}", shown(issuer))))
}

/// Fetches the key set (through the discovery document if the target is an issuer), and how
/// long it is fresh.
async fn fetch_keys(outbound: &Outbound, target: &Target) -> Result<(Jwks, TimeDelta), FetchError> {
    let jwks_uri = match target {
        Target::Jwks(url) => url.clone(),
        Target::Discovery { issuer, document } => {
            let answer = get(outbound, document, Document::Discovery).await?;
            jwks_uri(outbound, issuer, &answer.body)?
        }
    };
    let answer = get(outbound, &jwks_uri, Document::KeySet).await?;
    let jwks = Jwks::parse_lenient(&answer.body).map_err(FetchError::Jwks)?;
    Ok((jwks, max_age(answer.cache_control.as_deref())))
}

/// GETs `url`, requiring a complete 200 answer of at most [`MAX_BODY`] bytes.
async fn get(outbound: &Outbound, url: &Url, what: Document) -> Result<Answer, FetchError> {
    let accept = match what {
        Document::Discovery => "application/json",
        Document::KeySet => "application/jwk-set+json, application/json",
    };
    let answer = outbound
        .get(url, accept)
        .await
        .map_err(|error| FetchError::Request { what, error })?;
    match answer.status {
        200 => {}
        status @ 300..=399 => return Err(FetchError::Redirect { what, status }),
        status => return Err(FetchError::Status { what, status }),
    }
    if answer.truncated || answer.body.len() > MAX_BODY {
        return Err(FetchError::TooLarge { what });
    }
    Ok(answer)
}

/// The `jwks_uri` of an issuer's discovery document, whose `issuer` must be the issuer (OpenID
/// Connect Discovery §4.3; a trailing slash aside) and whose `jwks_uri` must be a URL
/// outbound requests may go to.
fn jwks_uri(outbound: &Outbound, issuer: &str, body: &[u8]) -> Result<Url, FetchError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|e| FetchError::Discovery(format!("is not JSON: {e}")))?;
    let text = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError::Discovery(format!("has no {name}")))
    };
    let named = text("issuer")?;
    if named.trim_end_matches('/') != issuer {
        return Err(FetchError::Discovery(format!(
            "names issuer \"{}\", not \"{}\"",
            shown(named),
            shown(issuer)
        )));
    }
    outbound.check_url(text("jwks_uri")?).map_err(|e| {
        FetchError::Discovery(format!("has a jwks_uri that is not allowed: {}", e.message))
    })
}

/// How long an answer is fresh by its `Cache-Control`: `max-age` held between [`MIN_MAX_AGE`]
/// and [`MAX_MAX_AGE`]; [`DEFAULT_MAX_AGE`] without one, or with `no-cache` or
/// `no-store` (which are about shared caches reusing an answer unchecked; keys still need a
/// lifetime here, and the default is short).
fn max_age(cache_control: Option<&str>) -> TimeDelta {
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return DEFAULT_MAX_AGE;
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = value.and_then(|v| v.parse::<u64>().ok());
        }
    }
    match max_age {
        Some(seconds) => {
            let seconds = i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .min(MAX_MAX_AGE.num_seconds());
            TimeDelta::seconds(seconds).max(MIN_MAX_AGE)
        }
        None => DEFAULT_MAX_AGE,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::{
        domain::{clock::ManualClock, keypair::KeyPair},
        service::outbound::OutboundConfig,
    };

    /// How the test issuer answers a path.
    #[derive(Clone)]
    enum Reply {
        /// 200 with this body and, if given, this Cache-Control.
        Json(String, Option<&'static str>),
        /// This status, with this body.
        Status(u16, &'static str),
        /// A redirect to this URL.
        Redirect(String),
        /// Reads the request and never answers.
        Silent,
    }

    /// An issuer on 127.0.0.1 answering each path as told (404 otherwise), one request per
    /// connection, counting the requests of each path.
    struct Issuer {
        base: String,
        routes: Arc<Mutex<HashMap<String, Reply>>>,
        hits: Arc<Mutex<HashMap<String, usize>>>,
        /// How long it waits before answering.
        delay: Arc<Mutex<Duration>>,
    }

    impl Issuer {
        async fn start() -> Issuer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            let issuer = Issuer {
                base,
                routes: Arc::default(),
                hits: Arc::default(),
                delay: Arc::default(),
            };
            let (routes, hits, delay) = (
                issuer.routes.clone(),
                issuer.hits.clone(),
                issuer.delay.clone(),
            );
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (routes, hits, delay) = (routes.clone(), hits.clone(), delay.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, routes, hits, delay).await;
                    });
                }
            });
            issuer
        }

        fn set(&self, path: &str, reply: Reply) {
            lock(&self.routes).insert(path.to_string(), reply);
        }

        fn hits(&self, path: &str) -> usize {
            lock(&self.hits).get(path).copied().unwrap_or(0)
        }

        fn url(&self, path: &str) -> Url {
            Url::parse(&format!("{}{path}", self.base)).unwrap()
        }

        /// Serves an issuer at `path` (discovery document and key set).
        fn discovery(&self, path: &str, keys: &str) {
            self.set(
                &format!("{path}/.well-known/openid-configuration"),
                Reply::Json(
                    json!({
                        "issuer": format!("{}{path}", self.base),
                        "jwks_uri": format!("{}{path}/keys", self.base),
                    })
                    .to_string(),
                    None,
                ),
            );
            self.set(
                &format!("{path}/keys"),
                Reply::Json(keys.to_string(), Some("max-age=600")),
            );
        }
    }

    async fn serve(
        mut stream: TcpStream,
        routes: Arc<Mutex<HashMap<String, Reply>>>,
        hits: Arc<Mutex<HashMap<String, usize>>>,
        delay: Arc<Mutex<Duration>>,
    ) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        *lock(&hits).entry(path.clone()).or_default() += 1;
        let reply = lock(&routes).get(&path).cloned();
        let delay = *lock(&delay);
        tokio::time::sleep(delay).await;
        let (status, headers, body) = match reply {
            None => (404, String::new(), "not found".to_string()),
            Some(Reply::Json(body, cache_control)) => (
                200,
                cache_control
                    .map(|c| format!("cache-control: {c}\r\n"))
                    .unwrap_or_default(),
                body,
            ),
            Some(Reply::Status(status, body)) => (status, String::new(), body.to_string()),
            Some(Reply::Redirect(to)) => (302, format!("location: {to}\r\n"), String::new()),
            Some(Reply::Silent) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await
    }

    fn outbound(timeout: Duration) -> Outbound {
        Outbound::new(OutboundConfig {
            allow_insecure: true,
            timeout,
            ..OutboundConfig::default()
        })
        .unwrap()
    }

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn cache() -> (IssuerKeys, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start()));
        let keys = IssuerKeys::new(outbound(Duration::from_secs(5)), clock.clone());
        (keys, clock)
    }

    fn ed25519() -> PublicKey {
        KeyPair::generate(Algorithm::EdDSA).unwrap().public_key()
    }

    /// A key set of these keys, each under its kid.
    fn set_of(keys: &[(&str, &PublicKey)]) -> String {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(kid, key)| {
                let mut jwk = key.jwk();
                jwk["kid"] = (*kid).into();
                jwk
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    fn at(clock: &ManualClock, seconds: i64) {
        clock.set(start() + TimeDelta::seconds(seconds));
    }

    const ED: Algorithm = Algorithm::EdDSA;

    #[tokio::test]
    async fn an_issuer_is_discovered_then_its_keys_fetched_and_cached() {
        let issuer = Issuer::start().await;
        let (k1, k2) = (ed25519(), ed25519());
        issuer.discovery("/tenant", &set_of(&[("k1", &k1), ("k2", &k2)]));
        let (keys, clock) = cache();
        // A trailing slash on the configured issuer is no different issuer.
        let source = KeySource::Discovery {
            issuer: format!("{}/tenant/", issuer.base),
        };
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        assert_eq!(issuer.hits("/tenant/.well-known/openid-configuration"), 1);
        assert_eq!(issuer.hits("/tenant/keys"), 1);
        assert_eq!((keys.fetches(), keys.fetch_failures()), (1, 0));

        // Cached: another key of the set, the same one again, no requests.
        assert_eq!(keys.key_for(&source, Some("k2"), ED).await, Ok(k2));
        at(&clock, 599);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1));
        assert_eq!(issuer.hits("/tenant/keys"), 1);
        assert_eq!(keys.sources(), 1);

        // Errors say which check failed.
        let err = keys
            .key_for(&source, Some("k1"), Algorithm::ES256)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's key \"k1\" is an Ed25519 key for EdDSA only; the token is signed with ES256"
        );
        let err = keys.key_for(&source, None, ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a kid is required: the issuer's key set has 2 keys for EdDSA"
        );
        assert_eq!(issuer.hits("/tenant/keys"), 1);

        // An unknown kid fetches the discovery document again, then the set.
        at(&clock, 600);
        let err = keys.key_for(&source, Some("k3"), ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "no key with kid \"k3\" in the issuer's key set"
        );
        assert_eq!(issuer.hits("/tenant/.well-known/openid-configuration"), 2);
        assert_eq!(issuer.hits("/tenant/keys"), 2);
    }

    #[tokio::test]
    async fn a_discovery_document_must_name_the_issuer_and_an_allowed_jwks_uri() {
        let issuer = Issuer::start().await;
        let (keys, _clock) = cache();
        let base = issuer.base.clone();
        let cases = [
            (
                json!({"issuer": "https://evil.example", "jwks_uri": format!("{base}/keys")})
                    .to_string(),
                format!(
                    "the discovery document names issuer \"https://evil.example\", not \"{base}/a\""
                ),
            ),
            (
                json!({"issuer": format!("{base}/a"), "jwks_uri": "ftp://keys.example/keys"})
                    .to_string(),
                "the discovery document has a jwks_uri that is not allowed: the URL must use https, not ftp".into(),
            ),
            (
                json!({"issuer": format!("{base}/a")}).to_string(),
                "the discovery document has no jwks_uri".into(),
            ),
            (
                "<html>".into(),
                "the discovery document is not JSON: expected value at line 1 column 1".into(),
            ),
        ];
        for (document, message) in cases {
            issuer.set(
                "/a/.well-known/openid-configuration",
                Reply::Json(document, None),
            );
            let (keys, _clock) = cache();
            let source = KeySource::Discovery {
                issuer: format!("{base}/a"),
            };
            let err = keys.key_for(&source, Some("k1"), ED).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the issuer's keys could not be fetched: {message}")
            );
            assert_eq!(keys.fetch_failures(), 1);
        }
        assert_eq!(issuer.hits("/keys"), 0);

        let err = keys
            .key_for(
                &KeySource::Discovery {
                    issuer: format!("{base}/a?tenant=1"),
                },
                None,
                ED,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("has a query or fragment, which an OpenID issuer has not"),
            "{err}"
        );
        let err = keys
            .key_for(
                &KeySource::Discovery {
                    issuer: "nowhere".into(),
                },
                None,
                ED,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the issuer's keys could not be fetched: the issuer nowhere is not a URL"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stale_set_is_served_while_one_refresh_runs() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        issuer.set(
            "/keys",
            Reply::Json(set_of(&[("k1", &k1)]), Some("public, max-age=120")),
        );
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        at(&clock, 119);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        assert_eq!(issuer.hits("/keys"), 1);

        // Stale: answered from the cache, refreshed in the background, once.
        at(&clock, 121);
        *lock(&issuer.delay) = Duration::from_secs(1);
        let started = Instant::now();
        for _ in 0..5 {
            assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        keys.settled(&source).await;
        assert_eq!(issuer.hits("/keys"), 2);
        // Fresh again for 120 s from the refresh.
        at(&clock, 240);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1));
        keys.settled(&source).await;
        assert_eq!(issuer.hits("/keys"), 2);
        assert_eq!((keys.fetches(), keys.fetch_failures()), (2, 0));
    }

    #[test]
    fn max_age_comes_from_cache_control_within_bounds() {
        let secs = |c: Option<&str>| max_age(c).num_seconds();
        assert_eq!(secs(None), 300);
        assert_eq!(secs(Some("")), 300);
        assert_eq!(secs(Some("max-age=3600")), 3600);
        assert_eq!(secs(Some("public, MAX-AGE=600, must-revalidate")), 600);
        assert_eq!(secs(Some("max-age=\"900\"")), 900);
        assert_eq!(secs(Some("max-age=10")), 60);
        assert_eq!(secs(Some("max-age=0")), 60);
        assert_eq!(secs(Some("max-age=31536000")), 86_400);
        assert_eq!(secs(Some("max-age=99999999999999999999999")), 300);
        assert_eq!(secs(Some("max-age=-5")), 300);
        assert_eq!(secs(Some("max-age=soon")), 300);
        assert_eq!(secs(Some("no-cache")), 300);
        assert_eq!(secs(Some("max-age=3600, no-store")), 300);
        assert_eq!(secs(Some("private, max-age=7200")), 7200);
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_for_its_first_token() {
        let issuer = Issuer::start().await;
        let (old, new) = (ed25519(), ed25519());
        issuer.set(
            "/keys",
            Reply::Json(set_of(&[("old", &old)]), Some("max-age=3600")),
        );
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        assert_eq!(keys.key_for(&source, Some("old"), ED).await, Ok(old));

        // The issuer rotates; nobody tells us.
        issuer.set(
            "/keys",
            Reply::Json(set_of(&[("new", &new)]), Some("max-age=3600")),
        );
        at(&clock, 30);
        assert_eq!(
            keys.key_for(&source, Some("new"), ED).await,
            Ok(new.clone())
        );
        assert_eq!(issuer.hits("/keys"), 2);
        assert_eq!(keys.key_for(&source, Some("new"), ED).await, Ok(new));
        // The old key is gone with the new set.
        let err = keys.key_for(&source, Some("old"), ED).await.unwrap_err();
        assert_eq!(
            err,
            IssuerKeyError::Select(SelectError::UnknownKid("old".into()))
        );
        assert_eq!(issuer.hits("/keys"), 2);
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_30_seconds() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        issuer.set("/keys", Reply::Json(set_of(&[("k1", &k1)]), None));
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        keys.key_for(&source, Some("k1"), ED).await.unwrap();

        // The first unknown kid refetches at once (a key rotated in just after the first
        // fetch is found); then none within 30 s of that refetch, whatever kids arrive.
        at(&clock, 1);
        assert!(keys.key_for(&source, Some("a"), ED).await.is_err());
        assert_eq!(issuer.hits("/keys"), 2);
        at(&clock, 30);
        for kid in ["a", "b", "c"] {
            let err = keys.key_for(&source, Some(kid), ED).await.unwrap_err();
            assert!(matches!(
                err,
                IssuerKeyError::Select(SelectError::UnknownKid(_))
            ));
        }
        assert_eq!(issuer.hits("/keys"), 2);
        // No kid and no key for the algorithm is the same: a newer set might have one.
        let err = keys
            .key_for(&source, None, Algorithm::ES384)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the issuer's key set has no key for ES384");
        assert_eq!(issuer.hits("/keys"), 2);
        at(&clock, 31);
        assert!(keys.key_for(&source, None, Algorithm::ES384).await.is_err());
        assert_eq!(issuer.hits("/keys"), 3);
        // A known key is answered all along.
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1));
        assert_eq!(issuer.hits("/keys"), 3);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        issuer.set("/keys", Reply::Json(set_of(&[("k1", &k1)]), None));
        *lock(&issuer.delay) = Duration::from_millis(200);
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        let burst = |kid: &'static str| {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let (keys, source) = (keys.clone(), source.clone());
                    tokio::spawn(async move { keys.key_for(&source, Some(kid), ED).await })
                })
                .collect();
            async move {
                let mut results = Vec::new();
                for task in tasks {
                    results.push(task.await.unwrap());
                }
                results
            }
        };
        // A cold source: 50 requests, one fetch.
        for result in burst("k1").await {
            assert_eq!(result, Ok(k1.clone()));
        }
        assert_eq!(issuer.hits("/keys"), 1);
        // An unknown kid, 50 times at once: one refetch.
        at(&clock, 31);
        for result in burst("k2").await {
            assert!(result.is_err());
        }
        assert_eq!(issuer.hits("/keys"), 2);
        assert_eq!(keys.fetches(), 2);
    }

    #[tokio::test]
    async fn stale_keys_keep_working_for_a_day_while_the_issuer_is_down() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        issuer.set(
            "/keys",
            Reply::Json(set_of(&[("k1", &k1)]), Some("max-age=60")),
        );
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        keys.key_for(&source, Some("k1"), ED).await.unwrap();

        issuer.set("/keys", Reply::Status(503, "upstream maintenance"));
        at(&clock, 61);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        keys.settled(&source).await;
        assert_eq!((issuer.hits("/keys"), keys.fetch_failures()), (2, 1));
        // Tried again at most every 30 s; served meanwhile.
        at(&clock, 90);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        keys.settled(&source).await;
        assert_eq!(issuer.hits("/keys"), 2);
        at(&clock, 91);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1.clone()));
        keys.settled(&source).await;
        assert_eq!(issuer.hits("/keys"), 3);
        // An unknown kid while the issuer is down says why the set could not be had.
        at(&clock, 200);
        let err = keys.key_for(&source, Some("k2"), ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set answered HTTP 503"
        );
        // Up to a day after the fetch, then no more.
        at(&clock, 86_399);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Ok(k1));
        keys.settled(&source).await;
        at(&clock, 86_400);
        let err = keys.key_for(&source, Some("k1"), ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set answered HTTP 503"
        );
        // Back up: served again.
        let k3 = ed25519();
        issuer.set("/keys", Reply::Json(set_of(&[("k3", &k3)]), None));
        at(&clock, 86_406);
        assert_eq!(keys.key_for(&source, Some("k3"), ED).await, Ok(k3));
    }

    #[tokio::test]
    async fn a_failed_fetch_without_cached_keys_says_what_failed() {
        let issuer = Issuer::start().await;
        issuer.set("/keys", Reply::Status(500, "stack trace: secret-detail"));
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        let err = keys.key_for(&source, Some("k1"), ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set answered HTTP 500"
        );
        assert!(!format!("{err:?}").contains("secret-detail"));
        // Not asked again for 5 s; the same answer meanwhile.
        at(&clock, 4);
        assert_eq!(keys.key_for(&source, Some("k1"), ED).await, Err(err));
        assert_eq!(issuer.hits("/keys"), 1);
        at(&clock, 5);
        issuer.set("/keys", Reply::Json("{\"keys\": [".into(), None));
        let err = keys.key_for(&source, Some("k1"), ED).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the issuer's keys could not be fetched: the key set is not JSON: "),
            "{err}"
        );
        assert_eq!((issuer.hits("/keys"), keys.fetch_failures()), (2, 2));

        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let nowhere = KeySource::Uri(Url::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap());
        let err = keys.key_for(&nowhere, Some("k1"), ED).await.unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the issuer's keys could not be fetched: the key set: cannot connect: "
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn oversized_sets_are_refused() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        let mut jwk = k1.jwk();
        jwk["kid"] = "k1".into();
        jwk["x5c"] = json!(["A".repeat(70 * 1024)]);
        issuer.set(
            "/huge",
            Reply::Json(json!({ "keys": [jwk] }).to_string(), None),
        );
        issuer.set(
            "/many",
            Reply::Json(format!("{{\"keys\":[{}{{}}]}}", "{},".repeat(9_999)), None),
        );
        let (keys, _clock) = cache();
        let err = keys
            .key_for(&KeySource::Uri(issuer.url("/huge")), Some("k1"), ED)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set is larger than 64 KiB"
        );
        let err = keys
            .key_for(&KeySource::Uri(issuer.url("/many")), Some("k1"), ED)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set has 10000 keys; at most 100 are accepted"
        );
    }

    #[tokio::test]
    async fn a_set_with_a_private_key_is_refused_and_drops_what_was_cached() {
        // RFC 8037 §A.1's private key, published by mistake beside a good key.
        let leaked = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "leaked",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        });
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        issuer.set("/keys", Reply::Json(set_of(&[("k1", &k1)]), None));
        let (keys, clock) = cache();
        let source = KeySource::Uri(issuer.url("/keys"));
        keys.key_for(&source, Some("k1"), ED).await.unwrap();

        let mut jwk = k1.jwk();
        jwk["kid"] = "k1".into();
        issuer.set(
            "/keys",
            Reply::Json(json!({ "keys": [jwk, leaked] }).to_string(), None),
        );
        at(&clock, 31);
        let expected = "the issuer's keys could not be fetched: keys[1] (kid \"leaked\"): the JWK holds private key material (its d member); a key set may hold public keys only";
        let err = keys.key_for(&source, Some("k2"), ED).await.unwrap_err();
        assert_eq!(err.to_string(), expected);
        // The cached set went with it: the issuer's keys are not to be trusted now.
        let err = keys.key_for(&source, Some("k1"), ED).await.unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[tokio::test]
    async fn a_silent_issuer_delays_only_its_own_requests() {
        let slow = Issuer::start().await;
        slow.set("/keys", Reply::Silent);
        let fast = Issuer::start().await;
        let k1 = ed25519();
        fast.set("/keys", Reply::Json(set_of(&[("k1", &k1)]), None));
        let keys = IssuerKeys::new(
            outbound(Duration::from_millis(1500)),
            Arc::new(ManualClock::new(start())),
        );

        let slow_source = KeySource::Uri(slow.url("/keys"));
        let waiting = {
            let keys = keys.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = keys.key_for(&slow_source, Some("k1"), ED).await;
                (result, started.elapsed())
            })
        };
        // Let the slow fetch get under way.
        while slow.hits("/keys") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let fast_source = KeySource::Uri(fast.url("/keys"));
        assert_eq!(keys.key_for(&fast_source, Some("k1"), ED).await, Ok(k1));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(!waiting.is_finished());

        let (result, took) = waiting.await.unwrap();
        assert_eq!(
            result.unwrap_err().to_string(),
            "the issuer's keys could not be fetched: the key set: no answer in time"
        );
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_and_not_followed() {
        let elsewhere = Issuer::start().await;
        let k1 = ed25519();
        elsewhere.set("/keys", Reply::Json(set_of(&[("k1", &k1)]), None));
        let issuer = Issuer::start().await;
        issuer.set("/keys", Reply::Redirect(elsewhere.url("/keys").to_string()));
        let (keys, _clock) = cache();
        let err = keys
            .key_for(&KeySource::Uri(issuer.url("/keys")), Some("k1"), ED)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the issuer's keys could not be fetched: the key set answered with a redirect (HTTP 302), which is not followed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(elsewhere.hits("/keys"), 0);
    }

    #[tokio::test]
    async fn the_least_recently_used_source_is_forgotten() {
        let issuer = Issuer::start().await;
        let k1 = ed25519();
        for path in ["/a", "/b", "/c", "/d"] {
            issuer.set(path, Reply::Json(set_of(&[("k1", &k1)]), None));
        }
        let keys = IssuerKeys::with_capacity(
            outbound(Duration::from_secs(5)),
            Arc::new(ManualClock::new(start())),
            3,
        );
        let source = |path: &str| KeySource::Uri(issuer.url(path));
        for path in ["/a", "/b", "/c", "/a", "/d"] {
            keys.key_for(&source(path), Some("k1"), ED).await.unwrap();
        }
        // /b was used least recently: forgotten when /d came.
        assert_eq!(keys.sources(), 3);
        for (path, hits) in [("/a", 1), ("/b", 1), ("/c", 1), ("/d", 1)] {
            assert_eq!(issuer.hits(path), hits, "{path}");
        }
        for path in ["/a", "/c", "/d"] {
            keys.key_for(&source(path), Some("k1"), ED).await.unwrap();
            assert_eq!(issuer.hits(path), 1, "{path}");
        }
        keys.key_for(&source("/b"), Some("k1"), ED).await.unwrap();
        assert_eq!(issuer.hits("/b"), 2);
        assert_eq!(keys.sources(), 3);
    }

    #[tokio::test]
    async fn a_given_set_is_never_fetched() {
        let (k1, k2) = (ed25519(), ed25519());
        let jwks = Jwks::parse(set_of(&[("k1", &k1), ("k2", &k2)]).as_bytes()).unwrap();
        let source = KeySource::Inline(Arc::new(jwks));
        let (keys, _clock) = cache();
        assert_eq!(keys.key_for(&source, Some("k2"), ED).await, Ok(k2));
        let err = keys.key_for(&source, None, ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a kid is required: the issuer's key set has 2 keys for EdDSA"
        );
        let err = keys.key_for(&source, Some("k9"), ED).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "no key with kid \"k9\" in the issuer's key set"
        );
        assert_eq!((keys.fetches(), keys.sources()), (0, 0));
    }
}
