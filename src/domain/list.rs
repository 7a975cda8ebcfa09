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
