//! The client's address behind trusted proxies. When the TCP peer is one of the configured
//! proxies, the address it forwards (`Forwarded: for=`, RFC 7239, else `X-Forwarded-For`)
//! replaces the peer address on the request, so everything after this layer (the failure
//! rate limits above all) sees the client. Anyone else's forwarding headers are ignored:
//! a client could name any address in them.
//!
//! The list is walked from the right (the entries our proxies appended), skipping addresses
//! of trusted proxies, and the first other address is the client's; a malformed entry met on
//! the way leaves the peer address in place.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

use crate::error::{Error, Result};

/// The proxies whose forwarding headers are believed; empty trusts none.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDRs (`10.0.0.0/8, fd00::/8`) or single addresses.
    pub fn parse(text: &str) -> Result<TrustedProxies> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    Error::invalid_argument(
                        "CONFIG-Prox1",
                        format!(
                            "AUTHN_KEYS_TRUSTED_PROXIES: {:?} is not an IP network such as 10.0.0.0/8 or fd00::/8, nor an IP address",
                            item.chars().take(100).collect::<String>()
                        ),
                    )
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that reached us from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.contains(peer.ip()) {
            return peer;
        }
        let forwarded = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(Ok(hops)) = forwarded else {
            return peer;
        };
        let mut leftmost = None;
        for hop in hops.into_iter().rev() {
            let Some(addr) = hop else {
                return peer;
            };
            if !self.contains(addr.ip()) {
                return addr;
            }
            leftmost = Some(addr);
        }
        // Every hop is a proxy of ours: the farthest one is the client as far as we know.
        leftmost.unwrap_or(peer)
    }
}

pub async fn layer(
    State(proxies): State<Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    if !proxies.is_empty()
        && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
    {
        let client = proxies.client(peer, req.headers());
        if client != peer {
            req.extensions_mut().insert(ConnectInfo(client));
        }
    }
    next.run(req).await
}

/// The hops a header lists, left to right; `None` for an entry that is not an address.
type Hops = Vec<Option<SocketAddr>>;

/// The `for=` of every element of every `Forwarded` header; `None` without the header, an
/// error when a value cannot be read or an element names no `for`.
fn forwarded_for(headers: &HeaderMap) -> Option<Result<Hops, ()>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            return Some(Err(()));
        };
        for element in text.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().trim_matches('"'))
            });
            let Some(node) = node else {
                return Some(Err(()));
            };
            hops.push(node_addr(node));
        }
    }
    Some(Ok(hops))
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Result<Hops, ()>> {
    let mut values = headers.get_all("x-forwarded-for").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            return Some(Err(()));
        };
        hops.extend(text.split(',').map(|s| node_addr(s.trim())));
    }
    Some(Ok(hops))
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`. `unknown` and obfuscated names are not addresses.
fn node_addr(node: &str) -> Option<SocketAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip.to_canonical(), 0));
    }
    if let Some(inner) = node.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip.to_canonical(), 0));
    }
    node.parse::<SocketAddr>()
        .ok()
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_bad_ones_are_refused() {
        let p = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,").unwrap();
        assert!(p.contains(ip("10.1.2.3")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")));
        assert!(p.contains(ip("fd00::1")));
        assert!(p.contains(ip("::ffff:10.0.0.1")), "v4-mapped peers match");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "::/129"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert_eq!(e.id, "CONFIG-Prox1", "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let p = TrustedProxies::parse("127.0.0.1/32, 10.0.0.0/8").unwrap();
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let client = |peer, h: &[(&'static str, &str)]| p.client(peer, &headers(h)).ip();
        // A spoofed leftmost entry is passed over.
        assert_eq!(
            client(
                proxy,
                &[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2")]
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(
                proxy,
                &[
                    ("forwarded", "for=1.1.1.1"),
                    (
                        "forwarded",
                        "for=\"[2001:db8::17]:4711\";proto=https, for=10.0.0.3"
                    )
                ]
            ),
            ip("2001:db8::17")
        );
        // Forwarded wins over X-Forwarded-For.
        assert_eq!(
            client(
                proxy,
                &[
                    ("forwarded", "for=203.0.113.9"),
                    ("x-forwarded-for", "203.0.113.1")
                ]
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(proxy, &[("x-forwarded-for", "203.0.113.7:81")]),
            ip("203.0.113.7")
        );
        // Only trusted hops: the farthest.
        assert_eq!(
            client(proxy, &[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]),
            ip("10.0.0.9")
        );
        // Malformed or unknown on the way: the peer.
        for bad in ["203.0.113.7, garbage", "unknown", "", "203.0.113.7,,"] {
            assert_eq!(
                client(proxy, &[("x-forwarded-for", bad)]),
                proxy.ip(),
                "{bad:?}"
            );
        }
        assert_eq!(client(proxy, &[("forwarded", "proto=https")]), proxy.ip());
        assert_eq!(client(proxy, &[]), proxy.ip());
        // Not from a proxy: the headers count for nothing.
        assert_eq!(
            client(stranger, &[("x-forwarded-for", "203.0.113.7")]),
            stranger.ip()
        );
    }
}
