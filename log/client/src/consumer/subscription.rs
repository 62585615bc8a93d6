//! Subscriptions: a topic and a filter expression, as Java's `FilterAPI.buildSubscriptionData`
//! builds them, and the client-side tag re-check.
//!
//! Brokers filter TAG subscriptions by the hash of the tag stored in the consume queue; two
//! tags with the same Java hash both pass, so the client checks the exact tag again
//! ([`Subscription::matches`]). SQL92 expressions are evaluated by the broker only.

use tributary_protocol::body::SubscriptionData;

use crate::message::{MessageExt, java_string_hash};
use crate::now_ms;

/// The expression that subscribes to every tag.
pub const SUB_ALL: &str = "*";

/// How a subscription expression is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpressionType {
    /// `*` or `TagA || TagB`.
    #[default]
    Tag,
    /// An SQL92 condition over message properties, evaluated by the broker.
    Sql92,
}

impl ExpressionType {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tag => "TAG",
            Self::Sql92 => "SQL92",
        }
    }
}

/// One subscription of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topic.
    pub topic: String,
    /// The expression as given (`*` for all).
    pub expression: String,
    /// How to read it.
    pub expression_type: ExpressionType,
    /// The tags of a TAG expression (empty for `*`).
    pub tags: Vec<String>,
    /// Java hash of each tag.
    pub codes: Vec<i32>,
    /// Version: creation time, ms.
    pub version: i64,
}

impl Subscription {
    /// A TAG subscription: `*` (or empty) for all, else tags separated by `||`.
    pub fn tag(topic: impl Into<String>, expression: &str) -> Self {
        let expression = expression.trim();
        let (expression, tags) = if expression.is_empty() || expression == SUB_ALL {
            (SUB_ALL.to_owned(), Vec::new())
        } else {
            let mut tags: Vec<String> = Vec::new();
            for tag in expression
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
            if tags.is_empty() {
                (SUB_ALL.to_owned(), tags)
            } else {
                (expression.to_owned(), tags)
            }
        };
        let codes = tags.iter().map(|t| java_string_hash(t)).collect();
        Self {
            topic: topic.into(),
            expression,
            expression_type: ExpressionType::Tag,
            tags,
            codes,
            version: now_ms(),
        }
    }

    /// An SQL92 subscription, filtered by the broker.
    pub fn sql92(topic: impl Into<String>, expression: &str) -> Self {
        Self {
            topic: topic.into(),
            expression: expression.trim().to_owned(),
            expression_type: ExpressionType::Sql92,
            tags: Vec::new(),
            codes: Vec::new(),
            version: now_ms(),
        }
    }

    /// Whether every message passes (no client-side check needed).
    pub fn is_all(&self) -> bool {
        self.expression_type == ExpressionType::Tag && self.tags.is_empty()
    }

    /// Whether a message with this tag belongs to the subscription: the exact re-check of
    /// what the broker let through by hash (Java keeps a message only when its tag is in the
    /// tag set). SQL92 subscriptions are left to the broker.
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        if self.expression_type == ExpressionType::Sql92 || self.tags.is_empty() {
            return true;
        }
        tag.is_some_and(|t| self.tags.iter().any(|s| s == t))
    }

    /// [`Subscription::matches_tag`] for a message.
    pub fn matches(&self, message: &MessageExt) -> bool {
        self.matches_tag(message.tags())
    }

    /// The heartbeat form.
    pub fn to_data(&self) -> SubscriptionData {
        SubscriptionData {
            class_filter_mode: false,
            topic: self.topic.clone(),
            sub_string: self.expression.clone(),
            tags_set: self.tags.clone(),
            code_set: self.codes.iter().map(|c| i64::from(*c)).collect(),
            sub_version: self.version,
            expression_type: self.expression_type.name().to_owned(),
            filter_class_source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_parse_like_java() {
        let cases: [(&str, &str, &[&str]); 6] = [
            ("*", "*", &[]),
            ("", "*", &[]),
            ("  ", "*", &[]),
            ("TagA", "TagA", &["TagA"]),
            ("TagA || TagB", "TagA || TagB", &["TagA", "TagB"]),
            (
                " TagA||TagB|| ||TagA ",
                "TagA||TagB|| ||TagA",
                &["TagA", "TagB"],
            ),
        ];
        for (input, expression, tags) in cases {
            let sub = Subscription::tag("T", input);
            assert_eq!(sub.expression, expression, "{input:?}");
            assert_eq!(sub.tags, tags, "{input:?}");
            assert_eq!(sub.codes.len(), tags.len());
        }
        let sub = Subscription::tag("T", "TagA");
        assert_eq!(sub.codes, vec![2_598_919]);
    }

    #[test]
    fn exact_tag_recheck() {
        let sub = Subscription::tag("T", "TagA || TagB");
        assert!(sub.matches_tag(Some("TagA")));
        assert!(!sub.matches_tag(Some("TagC")));
        assert!(!sub.matches_tag(None));
        // "Aa" and "BB" share a Java hash: the broker passes both, the client keeps one.
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        let sub = Subscription::tag("T", "Aa");
        assert!(sub.matches_tag(Some("Aa")) && !sub.matches_tag(Some("BB")));
        assert!(Subscription::tag("T", "*").matches_tag(None));
        assert!(Subscription::sql92("T", "a > 1").matches_tag(None));
    }

    #[test]
    fn heartbeat_form_carries_codes_and_type() {
        let data = Subscription::tag("T", "TagA").to_data();
        assert_eq!(data.code_set, vec![2_598_919]);
        assert_eq!(data.expression_type, "TAG");
        assert_eq!(data.sub_string, "TagA");
        let sql = Subscription::sql92("T", " a > 5 ").to_data();
        assert_eq!(
            (sql.expression_type.as_str(), sql.sub_string.as_str()),
            ("SQL92", "a > 5")
        );
    }
}
