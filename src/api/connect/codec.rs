//! How the gateway's messages change form: proto3 JSON to and from binary for every method
//! (the table `build.rs` writes, plus grpc.health.v1 by hand), and gzip on the way in and out.
use std::io::{Read, Write};

use axum::http::{HeaderMap, header};
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};

/// One unary method: its path and how its messages go between proto3 JSON and binary.
pub struct Method {
    pub path: &'static str,
    pub(super) decode_json: fn(&[u8]) -> Result<Vec<u8>, String>,
    pub(super) encode_json: fn(&[u8]) -> Result<Vec<u8>, String>,
}

impl Method {
    pub const fn of<Req, Resp>(path: &'static str) -> Method
    where
        Req: Message + Default + DeserializeOwned + 'static,
        Resp: Message + Default + Serialize + 'static,
    {
        Method {
            path,
            decode_json: json_to_proto::<Req>,
            encode_json: proto_to_json::<Resp>,
        }
    }
}

fn json_to_proto<T: Message + Default + DeserializeOwned>(json: &[u8]) -> Result<Vec<u8>, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty; a JSON request needs at least {}".into());
    }
    let message: T = crate::api::decode_json(json)?;
    Ok(message.encode_to_vec())
}

fn proto_to_json<T: Message + Default + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let message = T::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

static GENERATED: &[Method] = include!(concat!(env!("OUT_DIR"), "/connect_methods.rs"));

/// grpc.health.v1 comes with tonic-health, whose types have no proto3-JSON impls: its two
/// small messages are transcoded by hand.
static HEALTH: &[Method] = &[Method {
    path: "/grpc.health.v1.Health/Check",
    decode_json: health_request,
    encode_json: health_response,
}];

/// Every method the gateway transcodes.
pub(super) fn methods() -> impl Iterator<Item = &'static Method> {
    GENERATED.iter().chain(HEALTH)
}

fn health_request(json: &[u8]) -> Result<Vec<u8>, String> {
    #[derive(serde::Deserialize)]
    struct Check {
        #[serde(default)]
        service: Option<String>,
    }
    let check: Check = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(tonic_health::pb::HealthCheckRequest {
        service: check.service.unwrap_or_default(),
    }
    .encode_to_vec())
}

fn health_response(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let resp = tonic_health::pb::HealthCheckResponse::decode(bytes).map_err(|e| e.to_string())?;
    let status = ServingStatus::try_from(resp.status).unwrap_or(ServingStatus::Unknown);
    Ok(match status {
        ServingStatus::Unknown => b"{}".to_vec(),
        s => format!("{{\"status\":\"{}\"}}", s.as_str_name()).into_bytes(),
    })
}

/// Whether the answer may be gzipped: `Accept-Encoding` lists gzip, or (absent) the request
/// itself was gzipped.
pub(super) fn accepts_gzip(headers: &HeaderMap, request_gzipped: bool) -> bool {
    match headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None => request_gzipped,
        Some(list) => list.split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        }),
    }
}

/// Answers smaller than this are sent as they are: gzip would not pay for itself.
pub(super) const GZIP_MIN: usize = 1024;

/// Why a gzipped request body was refused.
pub(super) enum Gunzip {
    /// Larger than the limit once decompressed.
    TooLarge,
    /// Not gzip.
    Broken(std::io::Error),
}

/// Decompresses a gzipped request body of at most `limit` bytes.
pub(super) fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::new();
    let bound = limit as u64 + 1;
    match flate2::read::GzDecoder::new(raw)
        .take(bound)
        .read_to_end(&mut out)
    {
        Ok(_) if out.len() as u64 >= bound => Err(Gunzip::TooLarge),
        Ok(_) => Ok(out),
        Err(e) => Err(Gunzip::Broken(e)),
    }
}

/// `out` gzipped, or `None` when compression fails (the answer then goes as it is).
pub(super) fn gzip(out: &[u8]) -> Option<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(out).and_then(|()| gz.finish()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn gzip_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(accepts_gzip(&with("gzip, deflate"), false));
        assert!(!accepts_gzip(&with("identity"), true));
        assert!(!accepts_gzip(&with("gzip;q=0"), false));
        assert!(accepts_gzip(&HeaderMap::new(), true));
        assert!(!accepts_gzip(&HeaderMap::new(), false));
    }

    #[test]
    fn gzip_round_trip_within_the_limit() {
        let body = vec![b'a'; 4096];
        let packed = gzip(&body).unwrap();
        assert_eq!(gunzip(&packed, 4096).ok(), Some(body));
        assert!(matches!(gunzip(&packed, 4095), Err(Gunzip::TooLarge)));
        assert!(matches!(gunzip(b"not gzip", 4096), Err(Gunzip::Broken(_))));
    }
}
