//! The one way out. Every HTTP request the server makes — a webhook delivery to a receiver, a
//! trusted issuer's JWKS or discovery document — goes through [`Outbound`]; nothing else opens a
//! socket to an address someone typed in.
//!
//! What it guards, and where:
//!
//! - **The URL**, when it is added ([`Outbound::check_url`]): `https` only, a host, no
//!   credentials in it, no fragment, at most [`MAX_URL_LEN`] bytes, no IP address and no
//!   `localhost` name.
//! - **The address actually connected to.** The client resolves names with `GuardedResolver`,
//!   which refuses a name if any address it resolves to is loopback, private, link-local,
//!   shared (CGNAT), documentation, benchmarking, multicast, reserved or otherwise
//!   special-purpose ([`special_purpose`]), IPv4-mapped and NAT64/6to4 forms included. Being in
//!   the resolver, the check applies at every connection, after every DNS change (a name that
//!   passed when it was added and now resolves to 10.0.0.1 is refused then). An IP address in
//!   the URL is not resolved, so [`Outbound`] checks it itself before sending.
//! - **Redirects are not followed**: a 3xx is an answer like any other. Following one would mean
//!   checking the next hop's URL and address again, per hop; not following is simpler and what
//!   receivers and issuers are told to expect.
//! - **Time and size**: a connect timeout, an overall timeout for the whole exchange (body
//!   included), and at most `max_body` bytes of an answer are read.
//! - **What reaches a log**: [`OutboundError`] never holds the answer's body nor the URL (a
//!   receiver's URL may carry a token in its path); [`excerpt`] is the way to quote a body.
//!
//! `allow_insecure` (`AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE`) lifts the scheme and address rules for
//! development and tests; the limits stay.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use url::{Host, Url};

use crate::error::{Error, Result};

/// The longest URL [`Outbound::check_url`] accepts, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// How many bytes of a body [`excerpt`] shows.
pub const EXCERPT_BYTES: usize = 200;

/// The setting that lifts the scheme and address rules, named in the messages that apply them.
const ALLOW_INSECURE: &str = "AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE";

/// The limits of outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Allow `http` URLs and loopback, private and other special-purpose addresses (development
    /// and tests only).
    pub allow_insecure: bool,
    /// How long connecting (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// How long a whole exchange may take: resolving, connecting, sending and reading the answer.
    pub timeout: Duration,
    /// The most bytes of an answer's body that are read; the rest is not.
    pub max_body: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allow_insecure: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
        }
    }
}

/// The outbound HTTP client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    cfg: OutboundConfig,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound").field("cfg", &self.cfg).finish()
    }
}

/// A receiver's or issuer's answer, whatever its status.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    /// At most `max_body` bytes of the body; reading stopped there.
    pub body: Bytes,
    /// Whether the body went on beyond `max_body`.
    pub truncated: bool,
    /// The `Cache-Control` header, if it was there and visible ASCII.
    pub cache_control: Option<String>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &excerpt(&self.body))
            .field("truncated", &self.truncated)
            .field("cache_control", &self.cache_control)
            .finish()
    }
}

/// Why an outbound request got no answer. The messages are short, escaped, and never hold the
/// answer's body or the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL or the address it resolves to is not allowed; nothing was sent.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// No complete answer within the configured time.
    #[error("no answer in time")]
    Timeout,
    /// The name did not resolve, or no connection (TCP or TLS) could be made.
    #[error("cannot connect: {reason}")]
    Connect { reason: String },
    /// Anything else: the connection broke, the answer was not HTTP, a header could not be sent.
    #[error("request failed: {reason}")]
    Other { reason: String },
}

impl Outbound {
    pub fn new(cfg: OutboundConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            // See the module's documentation: a 3xx is returned, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            // HTTP_PROXY and friends would send requests somewhere the address check never saw.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_insecure: cfg.allow_insecure,
            }))
            .https_only(!cfg.allow_insecure)
            .http1_only()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .user_agent(concat!("authn-keys/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::internal("OUT-Cli01", "cannot set up the outbound HTTP client")
                    .with_source(e)
            })?;
        Ok(Outbound { client, cfg })
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.cfg
    }

    /// Checks a URL when it is added (a webhook's receiver, a trusted issuer's document), so a
    /// mistake is reported to whoever typed it rather than at the first delivery. The address
    /// it resolves to is checked at every request (names move).
    pub fn check_url(&self, url: &str) -> Result<Url> {
        if url.len() > MAX_URL_LEN {
            return Err(Error::invalid_argument(
                "OUT-Url01",
                format!("the URL is longer than {MAX_URL_LEN} characters"),
            ));
        }
        let parsed = Url::parse(url).map_err(|e| {
            Error::invalid_argument("OUT-Url02", format!("the URL does not parse: {e}"))
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.cfg.allow_insecure => {}
            "http" => {
                return Err(Error::invalid_argument(
                    "OUT-Url03",
                    format!(
                        "the URL must use https, not http ({ALLOW_INSECURE}=true allows http, for development only)"
                    ),
                ));
            }
            other => {
                return Err(Error::invalid_argument(
                    "OUT-Url03",
                    format!(
                        "the URL must use https, not {}",
                        crate::domain::text::shown(other)
                    ),
                ));
            }
        }
        let Some(host) = parsed.host() else {
            return Err(Error::invalid_argument("OUT-Url04", "the URL has no host"));
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::invalid_argument(
                "OUT-Url05",
                "the URL may not carry a user name or password (user:password@)",
            ));
        }
        if parsed.fragment().is_some() {
            return Err(Error::invalid_argument(
                "OUT-Url06",
                "the URL may not have a fragment (#…)",
            ));
        }
        if !self.cfg.allow_insecure {
            match host {
                Host::Ipv4(_) | Host::Ipv6(_) => {
                    return Err(Error::invalid_argument(
                        "OUT-Url07",
                        format!(
                            "the URL must name its host, not an IP address ({ALLOW_INSECURE}=true allows addresses, for development only)"
                        ),
                    ));
                }
                Host::Domain(name) => {
                    let name = name.trim_end_matches('.');
                    if name.eq_ignore_ascii_case("localhost")
                        || name.to_ascii_lowercase().ends_with(".localhost")
                    {
                        return Err(Error::invalid_argument(
                            "OUT-Url08",
                            format!(
                                "the URL names this machine (localhost) ({ALLOW_INSECURE}=true allows it, for development only)"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// POSTs `body` as `application/json` with `headers` (their values are marked sensitive, so
    /// a signature is never printed by the HTTP stack).
    pub async fn post_json(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        self.check_target(url)?;
        let mut map = HeaderMap::with_capacity(headers.len() + 1);
        map.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| OutboundError::Other {
                    reason: format!("{} is not a header name", clean(name)),
                })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| OutboundError::Other {
                reason: format!("the value of header {name} cannot be sent"),
            })?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        self.exchange(self.client.post(url.clone()).headers(map).body(body))
            .await
    }

    /// GETs `url`, asking for `accept` (`application/json`, `application/jwk-set+json`).
    pub async fn get(&self, url: &Url, accept: &str) -> Result<Answer, OutboundError> {
        self.check_target(url)?;
        let accept = HeaderValue::from_str(accept).map_err(|_| OutboundError::Other {
            reason: "the Accept value cannot be sent".into(),
        })?;
        self.exchange(self.client.get(url.clone()).header(header::ACCEPT, accept))
            .await
    }

    /// What the resolver cannot see: the scheme, and an IP address written in the URL (which
    /// is connected to without resolving).
    fn check_target(&self, url: &Url) -> Result<(), OutboundError> {
        match url.scheme() {
            "https" => {}
            "http" if self.cfg.allow_insecure => {}
            "http" => {
                return Err(OutboundError::Refused {
                    reason: format!("http URLs are not called ({ALLOW_INSECURE}=true allows them)"),
                });
            }
            other => {
                return Err(OutboundError::Refused {
                    reason: format!("{} URLs are not called", clean(other)),
                });
            }
        }
        let ip = match url.host() {
            None => {
                return Err(OutboundError::Refused {
                    reason: "the URL has no host".into(),
                });
            }
            Some(Host::Domain(_)) => return Ok(()),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        match special_purpose(ip) {
            Some(kind) if !self.cfg.allow_insecure => Err(OutboundError::Refused {
                reason: format!("{ip} is {kind} address ({ALLOW_INSECURE}=true allows it)"),
            }),
            _ => Ok(()),
        }
    }

    /// Sends, then reads at most `max_body` bytes of the answer, all within `timeout`. The
    /// response is dropped afterwards: what was not read is never read (the connection closes).
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Answer, OutboundError> {
        let max_body = self.cfg.max_body;
        let exchange = async move {
            let mut response = request.send().await.map_err(failure)?;
            let status = response.status().as_u16();
            let cache_control = response
                .headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = BytesMut::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await.map_err(failure)? {
                let room = max_body - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Answer {
                status,
                body: body.freeze(),
                truncated,
                cache_control,
            })
        };
        // reqwest's own timeout covers the body too; this bound holds whatever it does.
        tokio::time::timeout(self.cfg.timeout, exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout))
    }
}

/// A reqwest error as an [`OutboundError`]: the resolver's refusal found in the cause chain,
/// timeouts, connection failures, the rest. The URL is left out.
fn failure(e: reqwest::Error) -> OutboundError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<AddressRefused>() {
            return OutboundError::Refused {
                reason: refused.to_string(),
            };
        }
        cause = c.source();
    }
    if e.is_timeout() {
        return OutboundError::Timeout;
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        reason.push_str(": ");
        reason.push_str(&c.to_string());
        cause = c.source();
    }
    let reason = clean(&reason);
    if connect {
        OutboundError::Connect { reason }
    } else {
        OutboundError::Other { reason }
    }
}

/// Resolves with the system resolver (tokio's `lookup_host`) and refuses a name that resolves
/// to an address [`special_purpose`] names, unless `allow_insecure`. A name with one such
/// address among public ones is refused as a whole: its owner has said it may mean that host.
struct GuardedResolver {
    allow_insecure: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_insecure = self.allow_insecure;
        Box::pin(async move {
            let host = name.as_str();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            if !allow_insecure {
                for addr in &found {
                    if let Some(kind) = special_purpose(addr.ip()) {
                        return Err(Box::new(AddressRefused {
                            host: clean(host),
                            addr: addr.ip(),
                            kind,
                        }) as _);
                    }
                }
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, found again in reqwest's error chain by [`failure`].
#[derive(Debug)]
struct AddressRefused {
    host: String,
    addr: IpAddr,
    kind: &'static str,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to {}, {} address; only public addresses are called ({ALLOW_INSECURE}=true allows it)",
            self.host, self.addr, self.kind
        )
    }
}

impl std::error::Error for AddressRefused {}

/// What `ip` is, with its article ("a loopback"), if it is not a public unicast address; `None`
/// for an address outbound requests may go to.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => special_purpose_v4(ip),
        IpAddr::V6(ip) => special_purpose_v6(ip),
    }
}

/// IANA's IPv4 special-purpose registry, all of it refused (a few entries are global anycast
/// services no receiver runs on), plus multicast and the reserved 240/4.
fn special_purpose_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => "a broadcast",
        (0, ..) => "an unspecified (0.0.0.0/8)",
        (127, ..) => "a loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private",
        (100, 64..=127, _) => "a shared (carrier-grade NAT)",
        (169, 254, _) => "a link-local",
        (192, 0, 0) => "an IETF protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation",
        (192, 88, 99) => "a 6to4 relay",
        (198, 18..=19, _) => "a benchmarking",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved",
        _ => return None,
    })
}

/// IPv6: only global unicast (2000::/3) outside the special-purpose blocks; an address that
/// embeds an IPv4 address (mapped, NAT64, 6to4) is judged by that address.
fn special_purpose_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_purpose_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(match s {
        _ if ip.is_unspecified() => "an unspecified",
        _ if ip.is_loopback() => "a loopback",
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible (deprecated)",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return special_purpose_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64",
        [0x100, 0, 0, 0, ..] => "a discard-only",
        [0x2001, 0xdb8, ..] => "a documentation",
        [0x3fff, b, ..] if b < 0x1000 => "a documentation",
        // Teredo, benchmarking (2001:2::/48), ORCHID and the other IETF assignments.
        [0x2001, b, ..] if b < 0x200 => "an IETF protocol",
        [0x2002, hi, lo, ..] => return special_purpose_v4(embedded(hi, lo)),
        [a, ..] if a & 0xfe00 == 0xfc00 => "a unique local (private)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "a site-local (deprecated)",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast",
        [a, ..] if a & 0xe000 != 0x2000 => "a reserved (not global unicast)",
        _ => return None,
    })
}

/// At most [`EXCERPT_BYTES`] bytes of `body`, safe for a log line or a message: printable ASCII
/// as it is, `\n`, `\r`, `\t` and `\\` escaped, every other byte (control characters, each
/// byte of non-ASCII text) as `\xNN`; `…` marks a cut. A receiver's answer reaches a log only
/// through this.
pub fn excerpt(body: &[u8]) -> String {
    let mut out = escape(&body[..body.len().min(EXCERPT_BYTES)]);
    if body.len() > EXCERPT_BYTES {
        out.push('…');
    }
    out
}

/// An error text from the HTTP stack (it may quote what the other side sent, a certificate's
/// names for one), escaped as [`excerpt`] does and cut at 300 bytes.
fn clean(text: &str) -> String {
    const MAX: usize = 300;
    let mut out = escape(&text.as_bytes()[..text.len().min(MAX)]);
    if text.len() > MAX {
        out.push('…');
    }
    out
}

fn escape(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Instant,
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    #[test]
    fn addresses_are_classified() {
        let refused = [
            ("127.0.0.1", "a loopback"),
            ("127.255.255.254", "a loopback"),
            ("10.0.0.1", "a private"),
            ("10.255.255.255", "a private"),
            ("172.16.0.1", "a private"),
            ("172.31.255.255", "a private"),
            ("192.168.1.1", "a private"),
            ("169.254.169.254", "a link-local"),
            ("100.64.0.1", "a shared (carrier-grade NAT)"),
            ("100.127.255.255", "a shared (carrier-grade NAT)"),
            ("0.0.0.0", "an unspecified (0.0.0.0/8)"),
            ("0.1.2.3", "an unspecified (0.0.0.0/8)"),
            ("255.255.255.255", "a broadcast"),
            ("192.0.0.8", "an IETF protocol"),
            ("192.0.2.1", "a documentation"),
            ("198.51.100.7", "a documentation"),
            ("203.0.113.9", "a documentation"),
            ("198.18.0.1", "a benchmarking"),
            ("198.19.255.1", "a benchmarking"),
            ("192.88.99.1", "a 6to4 relay"),
            ("224.0.0.1", "a multicast"),
            ("239.255.255.250", "a multicast"),
            ("240.0.0.1", "a reserved"),
            ("::", "an unspecified"),
            ("::1", "a loopback"),
            ("fe80::1", "a link-local"),
            ("febf::1", "a link-local"),
            ("fec0::1", "a site-local (deprecated)"),
            ("fc00::1", "a unique local (private)"),
            ("fd12:3456::1", "a unique local (private)"),
            ("ff02::1", "a multicast"),
            ("::ffff:127.0.0.1", "a loopback"),
            ("::ffff:10.1.2.3", "a private"),
            ("::ffff:169.254.169.254", "a link-local"),
            ("::127.0.0.1", "an IPv4-compatible (deprecated)"),
            ("64:ff9b::7f00:1", "a loopback"),
            ("64:ff9b::a9fe:a9fe", "a link-local"),
            ("64:ff9b:1::1", "a local-use NAT64"),
            ("2002:7f00:1::1", "a loopback"),
            ("2002:c0a8:101::1", "a private"),
            ("100::1", "a discard-only"),
            ("2001:db8::1", "a documentation"),
            ("3fff::1", "a documentation"),
            ("2001::1", "an IETF protocol"),
            ("2001:2::1", "an IETF protocol"),
            ("4000::1", "a reserved (not global unicast)"),
            ("1::1", "a reserved (not global unicast)"),
        ];
        for (text, kind) in refused {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(special_purpose(ip), Some(kind), "{text}");
        }
        let public = [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:200::1",
            "3fff:1000::1",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ];
        for text in public {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(special_purpose(ip), None, "{text}");
        }
    }

    fn outbound(allow_insecure: bool) -> Outbound {
        Outbound::new(OutboundConfig {
            allow_insecure,
            ..OutboundConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn urls_are_checked_when_added() {
        let strict = outbound(false);
        let ok = strict
            .check_url("https://hooks.example.com/in?x=1")
            .unwrap();
        assert_eq!(ok.host_str(), Some("hooks.example.com"));
        strict
            .check_url("https://issuer.example.com:8443/.well-known/openid-configuration")
            .unwrap();

        let refused = [
            ("not a url", "OUT-Url02"),
            ("/relative/path", "OUT-Url02"),
            ("https://", "OUT-Url02"),
            ("http://hooks.example.com/", "OUT-Url03"),
            ("ftp://hooks.example.com/", "OUT-Url03"),
            ("file:///etc/passwd", "OUT-Url03"),
            ("https://user:secret@hooks.example.com/", "OUT-Url05"),
            ("https://user@hooks.example.com/", "OUT-Url05"),
            ("https://hooks.example.com/#part", "OUT-Url06"),
            ("https://127.0.0.1/", "OUT-Url07"),
            ("https://93.184.216.34/", "OUT-Url07"),
            ("https://[::1]/", "OUT-Url07"),
            ("https://[2606:4700::1111]/", "OUT-Url07"),
            ("https://2130706433/", "OUT-Url07"),
            ("https://0x7f.1/", "OUT-Url07"),
            ("https://localhost/", "OUT-Url08"),
            ("https://LOCALHOST./", "OUT-Url08"),
            ("https://api.localhost:8443/", "OUT-Url08"),
        ];
        for (url, id) in refused {
            let e = strict.check_url(url).unwrap_err();
            assert_eq!(e.id, id, "{url}: {}", e.message);
            assert_eq!(e.kind, crate::error::Kind::InvalidArgument);
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(strict.check_url(&long).unwrap_err().id, "OUT-Url01");

        // The messages name the setting where it would help, and never repeat the URL.
        let e = strict
            .check_url("http://hooks.example.com/secret-token")
            .unwrap_err();
        assert!(e.message.contains(ALLOW_INSECURE), "{}", e.message);
        assert!(!e.message.contains("secret-token"), "{}", e.message);
        let e = strict.check_url("https://10.0.0.1/").unwrap_err();
        assert!(e.message.contains(ALLOW_INSECURE), "{}", e.message);

        let lax = outbound(true);
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/",
            "https://localhost/",
            "http://10.0.0.1/",
        ] {
            lax.check_url(url).unwrap();
        }
        for (url, id) in [
            ("ftp://localhost/", "OUT-Url03"),
            ("http://u:p@localhost/", "OUT-Url05"),
            ("http://localhost/#f", "OUT-Url06"),
        ] {
            assert_eq!(lax.check_url(url).unwrap_err().id, id, "{url}");
        }
    }

    #[test]
    fn excerpts_are_escaped_and_cut() {
        assert_eq!(excerpt(b"{\"error\":\"nope\"}"), "{\"error\":\"nope\"}");
        assert_eq!(
            excerpt(b"line\nINFO forged\r\t\\"),
            "line\\nINFO forged\\r\\t\\\\"
        );
        assert_eq!(excerpt(b"\x00\x1b[31m\x7f"), "\\x00\\x1b[31m\\x7f");
        assert_eq!(excerpt("é\u{202e}".as_bytes()), "\\xc3\\xa9\\xe2\\x80\\xae");
        assert_eq!(excerpt(b""), "");
        let long = vec![b'a'; 10_000];
        let out = excerpt(&long);
        assert_eq!(out, format!("{}…", "a".repeat(EXCERPT_BYTES)));
        assert_eq!(excerpt(&long[..EXCERPT_BYTES]), "a".repeat(EXCERPT_BYTES));
        // Cutting inside a multi-byte character is harmless: bytes are escaped one by one.
        let mut cut = vec![b'a'; EXCERPT_BYTES - 1];
        cut.extend_from_slice("é".as_bytes());
        assert!(excerpt(&cut).ends_with("a\\xc3…"));
    }

    #[test]
    fn errors_say_little() {
        let e = OutboundError::Refused { reason: "x".into() };
        assert_eq!(e.to_string(), "refused: x");
        assert_eq!(OutboundError::Timeout.to_string(), "no answer in time");
        assert_eq!(clean("a\nb"), "a\\nb");
        assert!(clean(&"z".repeat(1000)).ends_with('…'));
    }

    /// What a test receiver does with each connection.
    #[derive(Clone)]
    enum Behaviour {
        /// Answers with these bytes (a whole HTTP/1.1 response).
        Answer(Bytes),
        /// Answers 200 with a body of this many bytes, written in 64 KiB pieces.
        Huge(usize),
        /// Reads the request and never answers.
        Silent,
    }

    /// A receiver on 127.0.0.1: counts connections, hands each request (head and body) to
    /// the test, and behaves as told.
    struct Receiver {
        port: u16,
        connections: Arc<AtomicUsize>,
        requests: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    }

    async fn receiver(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let _ = handle(stream, behaviour, tx).await;
                });
            }
        });
        Receiver {
            port,
            connections,
            requests,
        }
    }

    async fn handle(
        mut stream: TcpStream,
        behaviour: Behaviour,
        tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    ) -> std::io::Result<()> {
        let request = read_request(&mut stream).await?;
        let _ = tx.send(request);
        match behaviour {
            Behaviour::Answer(bytes) => stream.write_all(&bytes).await?,
            Behaviour::Huge(len) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                let piece = vec![b'x'; 64 * 1024];
                let mut left = len;
                while left > 0 {
                    let n = left.min(piece.len());
                    stream.write_all(&piece[..n]).await?;
                    left -= n;
                }
            }
            Behaviour::Silent => tokio::time::sleep(Duration::from_secs(3600)).await,
        }
        stream.flush().await
    }

    /// The head up to the blank line, then as many body bytes as `content-length` says.
    async fn read_request(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                return Ok(buf);
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        buf.extend_from_slice(&body);
        Ok(buf)
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncache-control: max-age=60\r\n\r\nhello";

    #[tokio::test]
    async fn a_loopback_address_is_refused_without_connecting() {
        let r = receiver(Behaviour::Answer(Bytes::from_static(OK))).await;
        let out = outbound(false);
        for target in [
            format!("https://127.0.0.1:{}/hook", r.port),
            format!("https://[::ffff:127.0.0.1]:{}/hook", r.port),
        ] {
            let e = out
                .post_json(&url(&target), &[], Bytes::from_static(b"{}"))
                .await
                .unwrap_err();
            let OutboundError::Refused { reason } = &e else {
                panic!("{e:?}");
            };
            assert!(reason.contains("loopback"), "{reason}");
            assert!(reason.contains(ALLOW_INSECURE), "{reason}");
        }
        let e = out
            .get(&url(&format!("http://127.0.0.1:{}/", r.port)), "*/*")
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::Refused { .. }), "{e:?}");
        assert!(e.to_string().contains("http URLs"), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(r.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_resolver() {
        let r = receiver(Behaviour::Answer(Bytes::from_static(OK))).await;
        let out = outbound(false);
        // check_url refuses `localhost` by name; the resolver refuses it by address.
        let e = out
            .post_json(
                &url(&format!("https://localhost:{}/hook", r.port)),
                &[],
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap_err();
        let OutboundError::Refused { reason } = &e else {
            panic!("{e:?}");
        };
        assert!(reason.starts_with("localhost resolves to "), "{reason}");
        assert!(reason.contains("a loopback address"), "{reason}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(r.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn allowed_insecure_requests_reach_the_receiver() {
        let mut r = receiver(Behaviour::Answer(Bytes::from_static(OK))).await;
        let out = outbound(true);
        let answer = out
            .post_json(
                &url(&format!("http://127.0.0.1:{}/hook?x=1", r.port)),
                &[
                    ("webhook-id", "msg_1".into()),
                    ("webhook-signature", "v1,c2lnbmF0dXJl".into()),
                ],
                Bytes::from_static(b"{\"type\":\"key.added\"}"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"hello");
        assert!(!answer.truncated);
        assert_eq!(answer.cache_control.as_deref(), Some("max-age=60"));
        let request = String::from_utf8(r.requests.recv().await.unwrap()).unwrap();
        let lower = request.to_ascii_lowercase();
        assert!(
            request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            lower.contains("\r\ncontent-type: application/json\r\n"),
            "{request}"
        );
        assert!(lower.contains("\r\nwebhook-id: msg_1\r\n"), "{request}");
        assert!(
            request.contains("\r\nwebhook-signature: v1,c2lnbmF0dXJl\r\n"),
            "{request}"
        );
        assert!(
            lower.contains(&format!(
                "\r\nuser-agent: authn-keys/{}\r\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{request}"
        );
        assert!(
            request.ends_with("\r\n\r\n{\"type\":\"key.added\"}"),
            "{request}"
        );

        // A name goes through the resolver, which lets loopback through when allowed.
        let answer = out
            .get(
                &url(&format!("http://localhost:{}/jwks", r.port)),
                "application/jwk-set+json",
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        let request = String::from_utf8(r.requests.recv().await.unwrap()).unwrap();
        assert!(request.starts_with("GET /jwks HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("\r\naccept: application/jwk-set+json\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_huge_answer_is_read_up_to_the_limit() {
        let r = receiver(Behaviour::Huge(10 * 1024 * 1024)).await;
        let out = outbound(true);
        let answer = out
            .get(&url(&format!("http://127.0.0.1:{}/", r.port)), "*/*")
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.len(), out.config().max_body);
        assert!(answer.truncated);

        // Exactly the limit is not truncated.
        let exact = Outbound::new(OutboundConfig {
            allow_insecure: true,
            max_body: 5,
            ..OutboundConfig::default()
        })
        .unwrap();
        let r = receiver(Behaviour::Answer(Bytes::from_static(OK))).await;
        let answer = exact
            .get(&url(&format!("http://127.0.0.1:{}/", r.port)), "*/*")
            .await
            .unwrap();
        assert_eq!((&answer.body[..], answer.truncated), (&b"hello"[..], false));
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let r = receiver(Behaviour::Silent).await;
        let out = Outbound::new(OutboundConfig {
            allow_insecure: true,
            timeout: Duration::from_millis(300),
            ..OutboundConfig::default()
        })
        .unwrap();
        let started = Instant::now();
        let e = out
            .post_json(
                &url(&format!("http://127.0.0.1:{}/", r.port)),
                &[],
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap_err();
        assert_eq!(e, OutboundError::Timeout);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_not_followed() {
        let target = receiver(Behaviour::Answer(Bytes::from_static(OK))).await;
        let location = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/\r\ncontent-length: 0\r\n\r\n",
            target.port
        );
        let redirecting = receiver(Behaviour::Answer(Bytes::from(location))).await;
        let out = outbound(true);
        let answer = out
            .get(
                &url(&format!("http://127.0.0.1:{}/", redirecting.port)),
                "*/*",
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 302);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(target.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = outbound(true)
            .get(&url(&format!("http://127.0.0.1:{port}/secret-path")), "*/*")
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::Connect { .. }), "{e:?}");
        assert!(!e.to_string().contains("secret-path"), "{e}");
    }

    #[tokio::test]
    async fn bad_header_values_are_not_sent() {
        let out = outbound(true);
        let e = out
            .post_json(
                &url("http://127.0.0.1:9/"),
                &[("webhook-signature", "v1,abc\r\nx-forged: 1".into())],
                Bytes::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "request failed: the value of header webhook-signature cannot be sent"
        );
    }
}
