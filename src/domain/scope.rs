//! What a token request's scopes ask for: ZITADEL's project-audience scopes and the scope of
//! its management API.

/// The scope a token needs for the management API.
pub const API_SCOPE: &str = "urn:zitadel:iam:org:project:id:zitadel:aud";
const PROJECT_AUD_PREFIX: &str = "urn:zitadel:iam:org:project:id:";
const PROJECT_AUD_SUFFIX: &str = ":aud";

/// The most scopes one token request may carry, and the longest scope string.
pub const MAX_SCOPES: usize = 32;
pub const MAX_SCOPE_LEN: usize = 4096;

/// The project ids a scope list asks to put into the audience.
pub fn requested_projects(scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in scopes.iter().filter_map(|s| {
        s.strip_prefix(PROJECT_AUD_PREFIX)?
            .strip_suffix(PROJECT_AUD_SUFFIX)
    }) {
        if p != "zitadel" && !p.is_empty() && !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// Whether `scopes` include the management API scope.
pub fn has_api_scope(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == API_SCOPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_audience_scopes() {
        let scopes: Vec<String> = [
            "openid",
            "urn:zitadel:iam:org:project:id:zitadel:aud",
            "urn:zitadel:iam:org:project:id:123:aud",
            "urn:zitadel:iam:org:project:id::aud",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(requested_projects(&scopes), vec!["123".to_string()]);
        let twice = vec!["urn:zitadel:iam:org:project:id:7:aud".to_string(); 2];
        assert_eq!(requested_projects(&twice), vec!["7".to_string()]);
        assert!(has_api_scope(&scopes));
        assert!(!has_api_scope(&scopes[..1]));
    }
}
