//! Behind trusted proxies the failure rate limits count per client, as the proxies name it
//! (`X-Forwarded-For`, `Forwarded`); from anyone else those headers count for nothing.
use crate::helpers::*;

/// A token request with a garbage assertion (a failure charged to the source address alone)
/// carrying `header`: its HTTP status.
async fn garbage_from(app: &TestApp, header: (&str, &str)) -> u16 {
    app.http
        .post(format!("{}/oauth/v2/token", app.base))
        .header(header.0, header.1)
        .form(&[("grant_type", JWT_BEARER), ("assertion", "x.y.z")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A server allowing 3 failures per address, refilling one a minute.
async fn app_with_proxies(trusted: &str) -> TestApp {
    let trusted = trusted.to_owned();
    TestApp::spawn_with(move |c| {
        c.auth_failure_address_burst = 3;
        c.auth_failure_address_per_minute = 1;
        c.trusted_proxies = trusted;
    })
    .await
}

const XFF: &str = "x-forwarded-for";

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = app_with_proxies("127.0.0.1/32").await;
    for _ in 0..3 {
        assert_eq!(garbage_from(&app, (XFF, "203.0.113.7")).await, 400);
    }
    assert_eq!(garbage_from(&app, (XFF, "203.0.113.7")).await, 429);
    // Another client behind the same proxy is not held back, nor is one whose spoofed
    // leftmost entry names the throttled address.
    assert_eq!(garbage_from(&app, (XFF, "203.0.113.8")).await, 400);
    assert_eq!(
        garbage_from(&app, (XFF, "203.0.113.7, 203.0.113.9")).await,
        400
    );
    // RFC 7239 `Forwarded` names the client just as well.
    assert_eq!(
        garbage_from(&app, ("forwarded", "for=203.0.113.7;proto=https")).await,
        429
    );
    // IPv6 clients count by their /64.
    for _ in 0..3 {
        assert_eq!(
            garbage_from(&app, ("forwarded", "for=\"[2001:db8:5:6::1]:4711\"")).await,
            400
        );
    }
    assert_eq!(garbage_from(&app, (XFF, "2001:db8:5:6:ffff::2")).await, 429);
    assert_eq!(garbage_from(&app, (XFF, "2001:db8:5:7::1")).await, 400);
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let app = app_with_proxies("").await;
    for _ in 0..3 {
        assert_eq!(garbage_from(&app, (XFF, "203.0.113.7")).await, 400);
    }
    // Everyone is 127.0.0.1, whatever the header says.
    assert_eq!(garbage_from(&app, (XFF, "203.0.113.8")).await, 429);
    assert_eq!(
        garbage_from(&app, ("forwarded", "for=203.0.113.10")).await,
        429
    );
}

#[tokio::test]
async fn a_proxy_outside_the_trusted_networks_is_not_believed() {
    let app = app_with_proxies("10.0.0.0/8, fd00::/8").await;
    for _ in 0..3 {
        assert_eq!(garbage_from(&app, (XFF, "203.0.113.7")).await, 400);
    }
    assert_eq!(garbage_from(&app, (XFF, "203.0.113.8")).await, 429);
}

#[tokio::test]
async fn a_bad_trusted_proxy_setting_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = authn_keys::config::Config::for_tests(
        &format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        dir.path().join("admin.json"),
    );
    config.trusted_proxies = "10.0.0.0/8, not-a-network".into();
    let Err(e) = authn_keys::app::App::build(config).await else {
        panic!("the server started with a bad AUTHN_KEYS_TRUSTED_PROXIES");
    };
    assert_eq!(e.id, "CONFIG-Prox1");
    assert!(e.message.contains("not-a-network"), "{}", e.message);
}
