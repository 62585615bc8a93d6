//! Server-side filtering of pulls, as RocketMQ's `ExpressionMessageFilter`: by tag hash code
//! for expression type TAG (the client re-checks the tag strings exactly, hashes can
//! collide), and by an SQL92 condition over the message properties for type SQL92
//! ([`crate::sql92`]; such messages never reach the client). With `filter_support_retry`, a
//! pull of a retry topic by an SQL92 subscription is judged by the group's filters of the
//! topics the messages came from ([`SubscriptionFilter::for_retry`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use tributary_protocol::body::{HeartbeatData, SubscriptionData};
use tributary_protocol::message::property;
use tributary_store::MessageFilter;
use tributary_store::record::java_string_hash;

use crate::sql92::{ParseError, Sql92Filter};

/// Separates tags in a subscription expression.
const TAG_SEPARATOR: &str = "||";

/// Compiled SQL92 filters kept for reuse (pulls repeat their subscription's expression).
const SQL92_CACHE_ENTRIES: usize = 1024;

/// Why a subscription cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The expression type is not one the broker evaluates.
    #[error("expression type {0:?} is not supported; use TAG or SQL92")]
    UnsupportedType(String),
    /// An SQL92 expression that does not parse.
    #[error("invalid SQL92 expression {expression:?}: {source}")]
    Sql92 {
        /// The expression as the client sent it.
        expression: String,
        /// What is wrong with it.
        #[source]
        source: ParseError,
    },
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

/// The filter of a subscription: tags, or an SQL92 condition.
#[derive(Debug, Clone)]
pub enum SubscriptionFilter {
    /// Expression type TAG (or none).
    Tag(TagFilter),
    /// Expression type SQL92.
    Sql92(Arc<Sql92Filter>),
    /// A retry topic pulled with `filter_support_retry`: the SQL92 filter of each message's
    /// original topic (`RETRY_TOPIC`), by topic; a topic not listed passes.
    RetryOrigin(Arc<HashMap<String, Arc<Sql92Filter>>>),
}

impl SubscriptionFilter {
    /// Accepts every message.
    pub fn all() -> Self {
        Self::Tag(TagFilter::all())
    }

    /// Parses a subscription expression of the given type (`TAG` when absent).
    pub fn parse(expression: &str, expression_type: Option<&str>) -> Result<Self, FilterError> {
        match expression_type.map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case("SQL92") => {
                compile_sql92(expression).map(Self::Sql92)
            }
            other => TagFilter::parse(expression, other).map(Self::Tag),
        }
    }

    /// The filter of a subscription registered by heartbeat.
    pub fn from_subscription(sub: &SubscriptionData) -> Result<Self, FilterError> {
        Self::parse(&sub.sub_string, Some(sub.expression_type.as_str()))
    }

    /// RocketMQ's `filterSupportRetry` (`ExpressionForRetryMessageFilter`): an SQL92
    /// subscription to a retry topic judges each message by the SQL92 filter its group has on
    /// the topic the message came from (`group_subscriptions`, from heartbeats), not by its
    /// own expression, so a retried message still meets the group's current filter; a
    /// message from a topic the group does not filter by SQL92 passes. Tag subscriptions are
    /// left as they are (Java's too: consumers subscribe to their retry topic with `*`).
    pub fn for_retry(self, group_subscriptions: &[SubscriptionData]) -> Self {
        if !matches!(self, Self::Sql92(_)) {
            return self;
        }
        let by_topic: HashMap<String, Arc<Sql92Filter>> = group_subscriptions
            .iter()
            .filter_map(|sub| match Self::from_subscription(sub) {
                Ok(Self::Sql92(f)) => Some((sub.topic.clone(), f)),
                _ => None,
            })
            .collect();
        Self::RetryOrigin(Arc::new(by_topic))
    }
}

impl MessageFilter for SubscriptionFilter {
    fn matches_tags_code(&self, tags_code: i64) -> bool {
        match self {
            Self::Tag(f) => f.matches_tags_code(tags_code),
            Self::Sql92(_) | Self::RetryOrigin(_) => true,
        }
    }

    fn filters_properties(&self) -> bool {
        match self {
            Self::Tag(_) => false,
            Self::Sql92(_) => true,
            Self::RetryOrigin(by_topic) => !by_topic.is_empty(),
        }
    }

    fn matches_properties(&self, properties: &str) -> bool {
        match self {
            Self::Tag(_) => true,
            Self::Sql92(f) => f.matches(properties),
            Self::RetryOrigin(by_topic) => {
                tributary_store::record::property(properties, property::RETRY_TOPIC)
                    .and_then(|topic| by_topic.get(topic))
                    .is_none_or(|f| f.matches(properties))
            }
        }
    }
}

/// An SQL92 expression compiled once and shared; parse errors are not kept.
fn compile_sql92(expression: &str) -> Result<Arc<Sql92Filter>, FilterError> {
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<Sql92Filter>>>> =
        LazyLock::new(Mutex::default);
    if let Some(f) = CACHE.lock().get(expression) {
        return Ok(f.clone());
    }
    let filter = Arc::new(
        Sql92Filter::parse(expression).map_err(|source| FilterError::Sql92 {
            expression: expression.to_owned(),
            source,
        })?,
    );
    let mut cache = CACHE.lock();
    if cache.len() >= SQL92_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(expression.to_owned(), filter.clone());
    Ok(filter)
}

/// Checks every consumer subscription of a heartbeat: the first one the broker cannot
/// evaluate, with its group and topic.
pub(crate) fn check_subscriptions(data: &HeartbeatData) -> Result<(), String> {
    for consumer in &data.consumer_data_set {
        for sub in &consumer.subscription_data_set {
            if let Err(e) = SubscriptionFilter::from_subscription(sub) {
                return Err(format!(
                    "consumer group {} cannot subscribe to topic {}: {e}",
                    consumer.group_name, sub.topic
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn sql92_subscriptions_filter_by_properties_only() {
        let f = SubscriptionFilter::parse("a > 5", Some("sql92")).expect("parses");
        assert!(f.matches_tags_code(12345), "tags do not matter");
        assert!(f.filters_properties());
        assert!(f.matches_properties("a\u{1}6\u{2}"));
        assert!(!f.matches_properties("a\u{1}5\u{2}"));
        let again = SubscriptionFilter::parse("a > 5", Some("SQL92")).expect("parses");
        match (&f, &again) {
            (SubscriptionFilter::Sql92(x), SubscriptionFilter::Sql92(y)) => {
                assert!(Arc::ptr_eq(x, y), "compiled once");
            }
            _ => panic!("not SQL92"),
        }
        let tag = SubscriptionFilter::parse("TagA", None).expect("parses");
        assert!(!tag.filters_properties());
        let err = SubscriptionFilter::parse("a >", Some("SQL92")).expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("invalid SQL92 expression \"a >\": expected a value"),
            "{err}"
        );
        assert!(SubscriptionFilter::parse("x", Some("CLASS")).is_err());
    }

    #[test]
    fn retries_meet_the_filter_of_their_original_topic() {
        let sub = |topic: &str, expression: &str, kind: &str| SubscriptionData {
            class_filter_mode: false,
            topic: topic.into(),
            sub_string: expression.into(),
            tags_set: Vec::new(),
            code_set: Vec::new(),
            sub_version: 0,
            expression_type: kind.into(),
            filter_class_source: None,
        };
        let group = [
            sub("Orders", "a > 5", "SQL92"),
            sub("Tagged", "TagA", "TAG"),
            sub("%RETRY%g", "TRUE", "SQL92"),
        ];
        let retry = |origin: Option<&str>, a: &str| {
            let mut props = vec![(property::RETRY_TOPIC, origin.unwrap_or("")), ("a", a)];
            if origin.is_none() {
                props.remove(0);
            }
            tributary_store::record::encode_properties(props)
        };
        let own = SubscriptionFilter::parse("TRUE", Some("SQL92")).expect("parses");
        let f = own.clone().for_retry(&group);
        assert!(f.filters_properties());
        assert!(f.matches_properties(&retry(Some("Orders"), "6")));
        assert!(
            !f.matches_properties(&retry(Some("Orders"), "5")),
            "Orders' filter"
        );
        assert!(
            !f.matches_properties(&retry(Some("Orders"), "x")),
            "failed evaluation"
        );
        assert!(
            f.matches_properties(&retry(Some("Tagged"), "1")),
            "no SQL92 filter"
        );
        assert!(
            f.matches_properties(&retry(Some("Other"), "1")),
            "not subscribed"
        );
        assert!(f.matches_properties(&retry(None, "1")), "no RETRY_TOPIC");
        assert!(
            own.matches_properties(&retry(Some("Orders"), "5")),
            "without the switch"
        );
        let tag = SubscriptionFilter::parse("*", None).expect("parses");
        assert!(
            !tag.for_retry(&group).filters_properties(),
            "tags stay tags"
        );
        let none = own.for_retry(&[]);
        assert!(
            !none.filters_properties(),
            "a group without SQL92 filters takes all"
        );
    }
}
