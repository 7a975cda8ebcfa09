//! List queries: offset, limit and order, checked against the configured limits.
use crate::error::Error;

/// Default and maximum page size (ZITADEL's `SystemDefaults` use 1000 for both).
#[derive(Debug, Clone, Copy)]
pub struct ListLimits {
    pub default_limit: u32,
    pub max_limit: u32,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            default_limit: 1000,
            max_limit: 1000,
        }
    }
}

/// A checked page request. Order is by creation time, then id; descending unless `asc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
    pub asc: bool,
}

impl Page {
    /// `limit == 0` means "not given": the default applies. Above the maximum is an error,
    /// as ZITADEL documents (and does not do).
    pub fn new(offset: u64, limit: u32, asc: bool, limits: ListLimits) -> Result<Self, Error> {
        let limit = match limit {
            0 => limits.default_limit,
            n if n > limits.max_limit => {
                return Err(Error::invalid_argument(
                    "QUERY-4M9fs",
                    format!("limit {n} exceeds the maximum of {}", limits.max_limit),
                ));
            }
            n => n,
        };
        Ok(Page {
            offset,
            limit: u64::from(limit),
            asc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_and_order() {
        let limits = ListLimits {
            default_limit: 50,
            max_limit: 100,
        };
        assert_eq!(Page::new(0, 0, false, limits).unwrap().limit, 50);
        assert_eq!(
            Page::new(3, 100, true, limits).unwrap(),
            Page {
                offset: 3,
                limit: 100,
                asc: true
            }
        );
        let err = Page::new(0, 101, false, limits).unwrap_err();
        assert_eq!(err.id, "QUERY-4M9fs");
    }
}

/// How a text query compares (ZITADEL's `TextQueryMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMethod {
    Equals,
    StartsWith,
    Contains,
    EndsWith,
}

/// A text query on one column: the value, how it compares, and whether case matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub value: String,
    pub method: TextMethod,
    pub ignore_case: bool,
}

impl TextMatch {
    /// ZITADEL's enum numbers: EQUALS, EQUALS_IGNORE_CASE, STARTS_WITH, …, ENDS_WITH_IGNORE_CASE.
    pub fn from_method_number(value: String, method: i32) -> Option<TextMatch> {
        let (method, ignore_case) = match method {
            0 => (TextMethod::Equals, false),
            1 => (TextMethod::Equals, true),
            2 => (TextMethod::StartsWith, false),
            3 => (TextMethod::StartsWith, true),
            4 => (TextMethod::Contains, false),
            5 => (TextMethod::Contains, true),
            6 => (TextMethod::EndsWith, false),
            7 => (TextMethod::EndsWith, true),
            _ => return None,
        };
        Some(TextMatch {
            value,
            method,
            ignore_case,
        })
    }

    /// A `LIKE … ESCAPE '\'` pattern: the value with `\`, `%` and `_` escaped, wildcards
    /// where the method wants them.
    pub fn like_pattern(&self) -> String {
        let mut escaped = String::with_capacity(self.value.len() + 2);
        for c in self.value.chars() {
            if matches!(c, '\\' | '%' | '_') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        self.wrap(escaped, '%')
    }

    /// A `GLOB` pattern (SQLite's case-sensitive match): `*`, `?` and `[` as one-character
    /// classes, wildcards where the method wants them.
    pub fn glob_pattern(&self) -> String {
        let mut escaped = String::with_capacity(self.value.len() + 2);
        for c in self.value.chars() {
            match c {
                '*' | '?' | '[' => {
                    escaped.push('[');
                    escaped.push(c);
                    escaped.push(']');
                }
                _ => escaped.push(c),
            }
        }
        self.wrap(escaped, '*')
    }

    fn wrap(&self, escaped: String, any: char) -> String {
        match self.method {
            TextMethod::Equals => escaped,
            TextMethod::StartsWith => format!("{escaped}{any}"),
            TextMethod::Contains => format!("{any}{escaped}{any}"),
            TextMethod::EndsWith => format!("{any}{escaped}"),
        }
    }
}

/// One query of ListUsers; several are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserQuery {
    UserName(TextMatch),
    Ids(Vec<String>),
    /// A query no stored user can match (this server keeps machine users only, so a query
    /// for human users).
    Nothing,
}

/// One query of ListOrgMembers; several are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberQuery {
    /// The member's user id, compared for equality.
    UserId(String),
    /// A query no member can match: a name or email query (machine users have neither).
    Nothing,
}

/// The sort order ListUsers can honour; ties break by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOrder {
    CreationDate,
    UserName,
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn patterns_escape_the_wildcards() {
        let m = |v: &str, n| TextMatch::from_method_number(v.into(), n).unwrap();
        assert_eq!(m("a%b_c\\", 0).like_pattern(), "a\\%b\\_c\\\\");
        assert_eq!(m("ci", 3).like_pattern(), "ci%");
        assert_eq!(m("x", 4).like_pattern(), "%x%");
        assert_eq!(m("x", 6).like_pattern(), "%x");
        assert_eq!(m("a*b?[c", 2).glob_pattern(), "a[*]b[?][[]c*");
        assert!(m("x", 5).ignore_case);
        assert!(TextMatch::from_method_number("x".into(), 8).is_none());
    }
}

/// How a v2 timestamp filter compares the column with its value (as named; see api-v2.md on
/// upstream's swapped mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Equals,
    After,
    AfterOrEquals,
    Before,
    BeforeOrEquals,
}

/// One filter of the v2 key listings; several are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFilter {
    KeyId(String),
    /// The owner: a machine user (ListKeys) or an app (ListApplicationKeys).
    OwnerId(String),
    ProjectId(String),
    OrgId(String),
    Created(Compare, chrono::DateTime<chrono::Utc>),
    Expires(Compare, chrono::DateTime<chrono::Utc>),
}

/// The column a v2 key listing is sorted by; ties break by key id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    Created,
    Id,
    OwnerId,
    ProjectId,
    OrgId,
    Expiration,
}

/// Which rows of a listing a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Every org (an instance role grants the permission).
    All,
    /// The orgs where the caller's roles grant it, and (for machine keys) the caller's own.
    Some {
        orgs: Vec<String>,
        own_user: Option<String>,
    },
}

/// v2's paging rules: limit 0 means 100, more than 1000 is refused (with v2's error id).
pub fn v2_window(offset: u64, limit: u32, asc: bool) -> Result<Page, Error> {
    const DEFAULT: u32 = 100;
    const MAX: u32 = 1000;
    let limit = match limit {
        0 => DEFAULT,
        n if n > MAX => {
            return Err(Error::invalid_argument(
                "QUERY-4M0fs",
                format!("limit {n} exceeds the maximum of {MAX}"),
            ));
        }
        n => n,
    };
    Ok(Page {
        offset,
        limit: u64::from(limit),
        asc,
    })
}

/// The filters of authnkeys.v1 ListKeys, ANDed, inside one org; `users`/`apps` say which
/// owners' keys the caller may see there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyQuery {
    pub users: bool,
    pub apps: bool,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub app_id: Option<String>,
    pub state: Option<super::model::KeyState>,
    pub origin: Option<super::model::KeyOrigin>,
    /// Never used, or last used before this time.
    pub unused_since: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_before: Option<chrono::DateTime<chrono::Utc>>,
}
