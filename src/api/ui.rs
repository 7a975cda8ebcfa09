//! The web console's static files at `/ui/`: built into the binary (see build.rs), or read
//! from `AUTHN_KEYS_UI_DIR` while working on them. Served with a strict Content-Security-Policy:
//! the console runs only its own scripts and talks only to this origin.
use std::{path::PathBuf, sync::Arc};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct Assets {
    dir: Option<Arc<PathBuf>>,
}

pub fn routes(dir: Option<PathBuf>) -> Router {
    let assets = Assets {
        dir: dir.map(Arc::new),
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset))
        .with_state(assets)
}

async fn index(State(assets): State<Assets>) -> Response {
    serve(&assets, "index.html").await
}

async fn asset(State(assets): State<Assets>, Path(path): Path<String>) -> Response {
    serve(&assets, &path).await
}

async fn serve(assets: &Assets, path: &str) -> Response {
    // Only plain relative names: no `..`, no absolute paths, no hidden files.
    if path
        .split('/')
        .any(|part| part.is_empty() || part.starts_with('.'))
    {
        return not_found();
    }
    let body = match &assets.dir {
        Some(dir) => match tokio::fs::read(dir.join(path)).await {
            Ok(bytes) => bytes,
            Err(_) => return not_found(),
        },
        None => match EMBEDDED.iter().find(|(name, _)| *name == path) {
            Some((_, bytes)) => bytes.to_vec(),
            None => return not_found(),
        },
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_types() {
        assert_eq!(
            super::content_type("a/b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(super::content_type("x"), "application/octet-stream");
    }
}
