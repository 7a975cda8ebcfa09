//! The v2 requests' field rules (protoc-gen-validate in ZITADEL's protos), checked at the edge
//! with PGV's own wording: `invalid <Message>.<Field>: <reason>`. Only the first violation is
//! reported, as upstream does.
use crate::error::{Error, Result};

fn invalid(message: &str, field: &str, reason: &str) -> Error {
    Error::validation(format!("invalid {message}.{field}: {reason}"))
}

/// A string of `min..=max` runes (`max == 0`: no upper bound).
pub fn runes(message: &str, field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    let reason = match (min, max) {
        (0, max) if n > max => format!("value length must be at most {max} runes"),
        (min, 0) if n < min => format!("value length must be at least {min} runes"),
        (min, max) if min > 0 && max > 0 && (n < min || n > max) => {
            format!("value length must be between {min} and {max} runes, inclusive")
        }
        _ => return Ok(()),
    };
    Err(invalid(message, field, &reason))
}

/// An optional string: checked only when set (`""` is set).
pub fn opt_runes(
    message: &str,
    field: &str,
    value: Option<&String>,
    min: usize,
    max: usize,
) -> Result<()> {
    value.map_or(Ok(()), |v| runes(message, field, v, min, max))
}

/// Bytes of at most `max`.
pub fn max_bytes(message: &str, field: &str, value: &[u8], max: usize) -> Result<()> {
    if value.len() > max {
        return Err(invalid(
            message,
            field,
            &format!("value length must be at most {max} bytes"),
        ));
    }
    Ok(())
}

/// A required message, timestamp or oneof.
pub fn required<'a, T>(message: &str, field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| invalid(message, field, "value is required"))
}

/// `enum.defined_only`.
pub fn defined<E: TryFrom<i32>>(message: &str, field: &str, value: i32) -> Result<E> {
    E::try_from(value).map_err(|_| {
        invalid(
            message,
            field,
            "value must be one of the defined enum values",
        )
    })
}

/// `string.email`: an address `local@domain` with a dotted-or-not domain, no spaces.
pub fn email(message: &str, field: &str, value: &str) -> Result<()> {
    let ok = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !value.chars().any(char::is_whitespace)
            && !domain.contains('@')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            message,
            field,
            "value must be a valid email address",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_pgv_writes_them() {
        let e = runes("AddKeyRequest", "UserId", "", 1, 200).unwrap_err();
        assert_eq!(
            e.client_message(),
            "invalid AddKeyRequest.UserId: value length must be between 1 and 200 runes, inclusive"
        );
        assert!(e.id.is_empty());
        assert!(runes("M", "F", "ü", 1, 1).is_ok());
        let none: Option<u8> = None;
        assert_eq!(
            required("AddKeyRequest", "ExpirationDate", &none)
                .unwrap_err()
                .client_message(),
            "invalid AddKeyRequest.ExpirationDate: value is required"
        );
        assert!(runes("M", "F", &"x".repeat(201), 0, 200).is_err());
        assert!(email("M", "F", "a@b.c").is_ok());
        assert!(email("M", "F", "a b@c").is_err());
    }
}
