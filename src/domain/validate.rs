//! The contract's field rules (lengths of ids and names), with errors that name the field.
use crate::error::Error;

pub const ID_MAX: usize = 200;
pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 500;

/// A required id: 1 to 200 characters.
pub fn id(field: &'static str, value: &str) -> Result<(), Error> {
    length(field, value, 1, ID_MAX)
}

/// A required name: 1 to 200 characters.
/// A caller-chosen id (AddMachineUser's `user_id`): 1 to 200 characters from the safe set
/// `A-Z a-z 0-9 . _ @ -`, starting with a letter or digit. Ids end up in URL paths, JWT
/// claims, audit events and log lines: none of those may be confused by what an id contains.
pub fn custom_id(field: &'static str, value: &str) -> Result<(), Error> {
    id(field, value)?;
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) || !value.chars().all(safe) {
        return Err(Error::invalid_argument(
            "VALIDATION-Id001",
            format!(
                "{field} may contain only letters, digits, '.', '_', '@' and '-', and must start with a letter or digit"
            ),
        ));
    }
    // Generated ids (orgs, projects, apps, client ids, users) are all digits: a chosen id made
    // of digits could equal one of them — another tenant's project id in a token's audience.
    if value.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid_argument(
            "VALIDATION-Id002",
            format!(
                "{field} must contain a character other than a digit: ids of digits only are reserved for the ids the server generates"
            ),
        ));
    }
    Ok(())
}

pub fn name(field: &'static str, value: &str) -> Result<(), Error> {
    length(field, value, 1, NAME_MAX)
}

pub fn description(field: &'static str, value: &str) -> Result<(), Error> {
    length(field, value, 0, DESCRIPTION_MAX)
}

/// Length in characters (the validate rules count code points), plus no control characters.
pub fn length(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), Error> {
    let n = value.chars().count();
    if n < min || n > max {
        let message = if min == 0 {
            format!("{field} must be at most {max} characters, got {n}")
        } else if n == 0 {
            format!("{field} is required")
        } else {
            format!("{field} must be {min} to {max} characters, got {n}")
        };
        return Err(Error::invalid_argument("VALIDATION-Len01", message));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid_argument(
            "VALIDATION-Ctl01",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_messages() {
        assert!(id("user_id", "1").is_ok());
        assert!(id("user_id", &"x".repeat(200)).is_ok());
        let e = id("user_id", &"x".repeat(201)).unwrap_err();
        assert!(e.message.contains("user_id") && e.message.contains("201"));
        assert_eq!(id("key_id", "").unwrap_err().message, "key_id is required");
        assert!(description("description", "").is_ok());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(custom_id("user_id", "ci-bot_1.prod@acme").is_ok());
        for bad in ["a b", "-x", "a/b", "x:y", "é", "a\u{0}"] {
            assert!(custom_id("user_id", bad).is_err(), "{bad:?}");
        }
        // Characters, not bytes.
        assert!(id("user_id", &"é".repeat(200)).is_ok());
    }
}
