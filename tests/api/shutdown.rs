//! Shutdown drains: a request in flight when the signal comes still gets its answer, the
//! server then returns cleanly, and new connections are refused.
use authn_keys::{app::App, config::Config, proto::zitadel::management::v1::*};

use crate::helpers::*;

#[tokio::test]
async fn in_flight_requests_finish_then_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let key_path = dir.path().join("admin-key.json");
    let app = App::build(Config::for_tests(&url, key_path.clone()))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin_id = app.instance.admin_user_id.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // An admin token, the long way (no TestApp here).
    let key = KeyFile::parse(&std::fs::read(&key_path).unwrap());
    let claims = serde_json::json!({"iss": admin_id, "sub": admin_id, "aud": base, "iat": now(), "exp": now() + 60});
    let assertion = sign_jwt("RS256", &key.key_id, &claims, &key.private_key());
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/oauth/v2/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &assertion),
            ("scope", API_SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // Key generation keeps this call busy for a while; the signal arrives meanwhile.
    let mut client = authn_keys::proto::zitadel::management::v1::management_service_client::ManagementServiceClient::connect(base.clone())
        .await
        .unwrap();
    let in_flight = tokio::spawn(async move {
        client
            .add_machine_key(authed(
                &token,
                None,
                AddMachineKeyRequest {
                    user_id: admin_id,
                    r#type: 1,
                    ..Default::default()
                },
            ))
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    stop.send(()).unwrap();

    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight call is answered");
    assert!(!answer.into_inner().key_details.is_empty());
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server stops after draining")
        .unwrap()
        .expect("and returns cleanly");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no longer listening"
    );
}
