//! Server-side filtering of pulls by tag hash code, as RocketMQ's `ExpressionMessageFilter`
//! for expression type TAG. The client re-checks the tag strings exactly (hashes can collide).

use tributary_protocol::body::SubscriptionData;
use tributary_store::MessageFilter;
use tributary_store::record::java_string_hash;

/// Separates tags in a subscription expression.
const TAG_SEPARATOR: &str = "||";

/// Why a subscription cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The expression type is not one the broker evaluates.
    #[error("expression type {0:?} is not supported; use TAG")]
    UnsupportedType(String),
}

/// A tag filter: every message, or those whose tag hash is in the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `None`: accept all (`*` or empty expression).
    codes: Option<Vec<i64>>,
}

impl TagFilter {
    /// Accepts every message.
    pub fn all() -> Self {
        Self { codes: None }
    }

    /// Parses a subscription expression of the given type (`TAG` when absent).
    pub fn parse(expression: &str, expression_type: Option<&str>) -> Result<Self, FilterError> {
        match expression_type.map(str::trim) {
            None | Some("") => {}
            Some(t) if t.eq_ignore_ascii_case("TAG") => {}
            Some(other) => return Err(FilterError::UnsupportedType(other.to_string())),
        }
        let expression = expression.trim();
        if expression.is_empty() || expression == "*" {
            return Ok(Self::all());
        }
        let mut codes: Vec<i64> = expression
            .split(TAG_SEPARATOR)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| i64::from(java_string_hash(t)))
            .collect();
        if codes.is_empty() {
            return Ok(Self::all());
        }
        codes.sort_unstable();
        codes.dedup();
        Ok(Self { codes: Some(codes) })
    }

    /// The filter of a subscription registered by heartbeat.
    pub fn from_subscription(sub: &SubscriptionData) -> Result<Self, FilterError> {
        Self::parse(&sub.sub_string, Some(sub.expression_type.as_str()))
    }
}

impl MessageFilter for TagFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        self.codes
            .as_ref()
            .is_none_or(|codes| codes.binary_search(&tags_code).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_match_by_java_hash() {
        let f = TagFilter::parse("TagA || TagB", None).expect("parses");
        assert!(f.matches_tags_code(i64::from(java_string_hash("TagA"))));
        assert!(f.matches_tags_code(i64::from(java_string_hash("TagB"))));
        assert!(!f.matches_tags_code(i64::from(java_string_hash("TagC"))));
        assert!(!f.matches_tags_code(0), "a message without tags");
        for all in ["*", "", "  ", " || "] {
            assert!(
                TagFilter::parse(all, Some("TAG"))
                    .expect("ok")
                    .matches_tags_code(12345)
            );
        }
        assert!(TagFilter::parse("a > 1", Some("SQL92")).is_err());
    }
}
