//! What browsers need from the server: CORS preflights with named headers and a cache
//! lifetime, the configured origin list enforced, and the console's files served with a strict
//! Content-Security-Policy (embedded, or from AUTHN_KEYS_UI_DIR).
use crate::helpers::*;

const GRPC_PATH: &str = "/zitadel.management.v1.ManagementService/ListMachineKeys";

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, format!("{}{path}", app.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent,x-zitadel-orgid",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn preflight_names_headers_and_is_cached() {
    let app = TestApp::spawn().await;
    for path in [
        GRPC_PATH,
        "/management/v1/users/1/keys/_search",
        "/oauth/v2/token",
    ] {
        let pre = preflight(&app, path, "http://page.example").await;
        assert_eq!(pre.status(), 200, "{path}");
        assert_eq!(header(&pre, "access-control-allow-origin"), Some("*"));
        // Named, never `*`: a wildcard does not cover Authorization (Fetch standard).
        let allowed = header(&pre, "access-control-allow-headers").unwrap();
        for name in [
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-zitadel-orgid",
            "connect-protocol-version",
        ] {
            assert!(
                allowed.split(',').any(|h| h.trim() == name),
                "{name} not in {allowed}"
            );
        }
        assert!(!allowed.contains('*'));
        assert_eq!(header(&pre, "access-control-max-age"), Some("7200"));
        assert!(header(&pre, "access-control-allow-credentials").is_none());
    }
    // Error details are readable from a page.
    let resp = app
        .http
        .post(format!("{}{GRPC_PATH}", app.base))
        .header("origin", "http://page.example")
        .header("content-type", "application/grpc-web+proto")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    let exposed = header(&resp, "access-control-expose-headers")
        .unwrap()
        .to_owned();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    assert_eq!(header(&resp, "grpc-status"), Some("16"));
}

#[tokio::test]
async fn only_listed_origins_are_allowed() {
    let app = TestApp::spawn_with(|c| {
        c.cors_origins = "https://console.example, http://127.0.0.1:5173".into();
    })
    .await;
    let ok = preflight(&app, GRPC_PATH, "https://console.example").await;
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("https://console.example")
    );
    let other = preflight(&app, GRPC_PATH, "https://evil.example").await;
    assert!(header(&other, "access-control-allow-origin").is_none());
    let (status, _) = app.rest("GET", "/healthz", None, None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_origin_lists_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        authn_keys::config::Config::for_tests("sqlite::memory:", dir.path().join("admin-key.json"));
    config.cors_origins = "https://ok.example, not an origin".into();
    let err = authn_keys::app::App::build(config).await.err().unwrap();
    assert_eq!(err.id, "CONFIG-Cors1");
}

#[tokio::test]
async fn console_files_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("js")).unwrap();
    std::fs::write(dir.path().join("js/app.js"), "export {};").unwrap();
    std::fs::write(dir.path().join(".secret"), "no").unwrap();
    let ui = dir.path().to_owned();
    let app = TestApp::spawn_with(move |c| c.ui_dir = Some(ui)).await;

    let page = app
        .http
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&page, "content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        page.text().await.unwrap(),
        "<!doctype html><title>t</title>"
    );

    let js = app
        .http
        .get(format!("{}/ui/js/app.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&js, "content-type"),
        Some("text/javascript; charset=utf-8")
    );

    for path in [
        "/ui/.secret",
        "/ui/..%2fCargo.toml",
        "/ui/js%2f..%2f..%2fsecret",
        "/ui/missing.js",
    ] {
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(header(&bare, "location"), Some("/ui/"));
}

#[tokio::test]
async fn the_console_is_built_in() {
    let app = TestApp::spawn().await;
    let page = app
        .http
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<script") && html.contains("src="), "{html}");
}
