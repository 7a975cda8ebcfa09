//! The JSON key files handed out once when a key is generated. They are built here, returned
//! in `key_details`, and never stored. Field order is ZITADEL's, compact JSON; `key` is the
//! private key's PEM (PKCS#1 for RSA, as ZITADEL's; PKCS#8 for EC and Ed25519 keys).
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::keypair::KeyPair;

/// The bytes of a key file. Holds a private key: `Debug` is redacted, memory wiped on drop.
pub struct KeyFile(zeroize::Zeroizing<Vec<u8>>);

impl KeyFile {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile({} bytes, redacted)", self.0.len())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MachineKeyJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    key_id: &'a str,
    key: &'a str,
    expiration_date: String,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppKeyJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    key_id: &'a str,
    key: &'a str,
    app_id: &'a str,
    client_id: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("could not encode the key file: {0}")]
pub struct KeyFileError(String);

/// `{"type":"serviceaccount","keyId","key","expirationDate","userId"}`.
pub fn machine_key_file(
    key_id: &str,
    key: &KeyPair,
    expiration: DateTime<Utc>,
    user_id: &str,
) -> Result<KeyFile, KeyFileError> {
    let pem = key.private_pem().map_err(|e| KeyFileError(e.to_string()))?;
    encode(&MachineKeyJson {
        kind: "serviceaccount",
        key_id,
        key: pem.expose(),
        expiration_date: expiration.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        user_id,
    })
}

/// `{"type":"application","keyId","key","appId","clientId"}`.
pub fn app_key_file(
    key_id: &str,
    key: &KeyPair,
    app_id: &str,
    client_id: &str,
) -> Result<KeyFile, KeyFileError> {
    let pem = key.private_pem().map_err(|e| KeyFileError(e.to_string()))?;
    encode(&AppKeyJson {
        kind: "application",
        key_id,
        key: pem.expose(),
        app_id,
        client_id,
    })
}

fn encode(value: &impl Serialize) -> Result<KeyFile, KeyFileError> {
    serde_json::to_vec(value)
        .map(|v| KeyFile(zeroize::Zeroizing::new(v)))
        .map_err(|e| KeyFileError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        jwt::{self, Algorithm, UnverifiedJwt},
        keypair::PrivateKey,
    };
    use chrono::TimeZone;

    #[test]
    fn machine_key_file_has_zitadels_shape_and_order() {
        let key = KeyPair::from(PrivateKey::generate(2048).unwrap());
        let exp = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        let file = machine_key_file("123", &key, exp, "456").unwrap();
        let text = std::str::from_utf8(file.as_bytes()).unwrap();
        assert!(
            text.starts_with(
                r#"{"type":"serviceaccount","keyId":"123","key":"-----BEGIN RSA PRIVATE KEY-----\n"#
            ),
            "{text}"
        );
        assert!(text.ends_with(r#"-----END RSA PRIVATE KEY-----\n","expirationDate":"9999-12-31T23:59:59Z","userId":"456"}"#), "{text}");
        assert!(!format!("{file:?}").contains("PRIVATE"));
    }

    #[test]
    fn app_key_file_has_zitadels_shape_and_order() {
        let key = KeyPair::from(PrivateKey::generate(2048).unwrap());
        let file = app_key_file("1", &key, "2", "3").unwrap();
        let value: serde_json::Value = serde_json::from_slice(file.as_bytes()).unwrap();
        let text = std::str::from_utf8(file.as_bytes()).unwrap();
        assert!(text.starts_with(
            r#"{"type":"application","keyId":"1","key":"-----BEGIN RSA PRIVATE KEY-----"#
        ));
        assert!(text.ends_with(r#"","appId":"2","clientId":"3"}"#));
        assert_eq!(value.as_object().unwrap().len(), 5);
    }

    /// EC and Ed25519 key files: the same shape, a PKCS#8 PEM whose key signs assertions that
    /// verify with the pair's public key.
    #[test]
    fn ec_and_ed25519_key_files_carry_pkcs8_that_signs() {
        let exp = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let pair = KeyPair::generate(alg).unwrap();
            for file in [
                machine_key_file("11", &pair, exp, "22").unwrap(),
                app_key_file("11", &pair, "33", "44").unwrap(),
            ] {
                let value: serde_json::Value = serde_json::from_slice(file.as_bytes()).unwrap();
                let text = std::str::from_utf8(file.as_bytes()).unwrap();
                assert!(
                    text.contains(r#","keyId":"11","key":"-----BEGIN PRIVATE KEY-----\n"#),
                    "{text}"
                );
                assert_eq!(value.as_object().unwrap().len(), 5, "{text}");
                let pem = value["key"].as_str().unwrap();
                assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{pem}");
                let claims = serde_json::json!({"iss": "22", "sub": "22"});
                let token = jwt::sign_with_pem(alg, "JWT", "11", &claims, pem).unwrap();
                UnverifiedJwt::parse(&token)
                    .unwrap()
                    .verify(&pair.public_key(), "11")
                    .unwrap();
                assert!(!format!("{file:?}").contains("PRIVATE"));
            }
        }
    }
}
