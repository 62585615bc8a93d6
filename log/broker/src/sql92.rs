//! SQL92 property filters, with the grammar and the semantics of RocketMQ's `SqlFilter`
//! (`filter/.../parser/SelectorParser.jj` and the `expression` classes, which came from
//! ActiveMQ's JMS selectors).
//!
//! A filter is a condition over a message's properties (`a > 5 AND b = 'x'`, `c IS NULL`,
//! `d BETWEEN 1 AND 10`, `e IN ('x', 'y')`, `NOT`, `<>`, `TRUE`/`FALSE`, and RocketMQ 5's
//! `CONTAINS`, `STARTSWITH`, `ENDSWITH`). Property values are strings; evaluation is
//! three-valued like SQL, and a message is delivered only when the condition is TRUE.
//!
//! **Why a hand-written parser rather than `sqlparser`:** RocketMQ's grammar is not SQL's.
//! `NOT` binds tighter than comparisons (`NOT a = 'x'` is `(NOT a) = 'x'`, which never
//! matches, where SQL reads `NOT (a = 'x')`); `IN` takes string literals and a property only;
//! numbers may carry a `L` suffix (`10L`); `$` is a letter in names; `CONTAINS`,
//! `STARTSWITH` and `ENDSWITH` are operators; and several expressions are refused when
//! parsed (`a > 'x'`, `a = NULL`, `a BETWEEN 5 AND 1`). A SQL parser would accept a
//! different language and evaluate some filters differently from RocketMQ brokers, so this
//! module mirrors the JavaCC grammar production by production instead (about 300 lines).
//!
//! Semantics, as RocketMQ evaluates them (checked against its Java sources):
//! - A missing property is NULL. A comparison with NULL is NULL (unknown); `AND`/`OR`/`NOT`
//!   follow three-valued logic; `IS NULL`/`IS NOT NULL` test presence. `CONTAINS` and
//!   friends are FALSE (not NULL) on a missing property.
//! - A property compared with a number is converted to that number's Java type: an `int`
//!   literal (one that fits 32 bits, with or without `L`) parses the property with
//!   `Integer.valueOf`, a larger one with `Long.valueOf`, a decimal literal with `Double.valueOf`. When the
//!   property does not parse (`'abc' > 5`, or `'1.5' > 1`, or `'3000000000' > 1`), the
//!   evaluation fails and the message is not delivered, whatever the rest of the condition
//!   says (`a > 5 OR b = 'x'` fails on `a = 'abc'` even when `b = 'x'`).
//! - `<`, `<=`, `>`, `>=` between two properties compare them as doubles; strings are never
//!   ordered. `=` between strings is exact.
//! - A property compared with `TRUE`/`FALSE` is true when it is `true` in any case.
//! - `IN` and the string operators match only strings; a property used alone as a
//!   condition (`a AND b = 1`) is never TRUE.
//!
//! Departures: trailing tokens after a complete condition are refused (RocketMQ's parser
//! ignores them: `a = 1 b` filters by `a = 1`), and a decimal literal equal to zero (`0.0`)
//! is accepted (RocketMQ refuses it by mistake: it compares with `Double.MIN_VALUE`).
//! Hexadecimal floating-point properties (`0x1p3`) never parse as numbers here.

use std::cmp::Ordering;
use std::fmt;

/// Longest expression, in bytes.
const MAX_EXPRESSION_BYTES: usize = 65_536;
/// Most tokens in one expression.
const MAX_TOKENS: usize = 4096;
/// Deepest nesting of parentheses and prefix operators (the parser recurses on them).
const MAX_NESTING: usize = 64;
/// Deepest expression tree (evaluation recurses on it), counting chains of AND and OR.
const MAX_DEPTH: usize = 256;

/// Why an expression is not a valid filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at character {position})")]
pub struct ParseError {
    /// 1-based character position where the problem was found.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

/// A compiled SQL92 filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql92Filter {
    expr: Expr,
}

impl Sql92Filter {
    /// Parses and checks an expression.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(ParseError {
                position: 1,
                reason: format!(
                    "the expression is longer than {MAX_EXPRESSION_BYTES} bytes ({})",
                    text.len()
                ),
            });
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            end: text.chars().count() + 1,
            nesting: 0,
        };
        let expr = parser.or_expr()?;
        if let Some(t) = parser.tokens.get(parser.at) {
            return Err(ParseError {
                position: t.position,
                reason: format!("unexpected {} after a complete condition", t.kind),
            });
        }
        let expr = as_boolean(expr).map_err(|reason| ParseError {
            position: 1,
            reason,
        })?;
        if expr.depth() > MAX_DEPTH {
            return Err(ParseError {
                position: 1,
                reason: format!("the condition is more than {MAX_DEPTH} operations deep"),
            });
        }
        Ok(Self { expr })
    }

    /// Evaluates the filter with `lookup` giving property values: `Some(true)` or
    /// `Some(false)`, or `None` when the result is unknown (NULL) or the evaluation failed.
    pub fn evaluate<'a>(&'a self, lookup: &dyn Fn(&str) -> Option<&'a str>) -> Option<bool> {
        match self.expr.eval(lookup) {
            Ok(Value::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// The filter's value over encoded properties (`name\x01value\x02` pairs).
    pub fn evaluate_properties(&self, properties: &str) -> Option<bool> {
        self.evaluate(&|name| property(properties, name))
    }

    /// Whether a message with these encoded properties passes.
    pub fn matches(&self, properties: &str) -> bool {
        self.evaluate_properties(properties) == Some(true)
    }
}

/// The value of a property in the encoded form; the last one wins, as in Java's map.
fn property<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    tributary_store::record::properties(encoded)
        .filter(|(k, _)| *k == name)
        .last()
        .map(|(_, v)| v)
}

// ---- tokens ----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Keyword(Keyword),
    Ident(String),
    Str(String),
    /// A decimal literal as written, without its `L` suffix.
    Integer(String),
    Float(String),
    Punct(&'static str),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keyword(k) => write!(f, "{}", k.name()),
            Self::Ident(s) => write!(f, "name {s}"),
            Self::Str(s) => write!(f, "string {}", quote(s)),
            Self::Integer(s) | Self::Float(s) => write!(f, "number {s}"),
            Self::Punct(p) => write!(f, "`{p}`"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
}

const KEYWORDS: [Keyword; 12] = [
    Keyword::Not,
    Keyword::And,
    Keyword::Or,
    Keyword::Between,
    Keyword::In,
    Keyword::True,
    Keyword::False,
    Keyword::Null,
    Keyword::Is,
    Keyword::Contains,
    Keyword::StartsWith,
    Keyword::EndsWith,
];

impl Keyword {
    fn name(self) -> &'static str {
        match self {
            Self::Not => "NOT",
            Self::And => "AND",
            Self::Or => "OR",
            Self::Between => "BETWEEN",
            Self::In => "IN",
            Self::True => "TRUE",
            Self::False => "FALSE",
            Self::Null => "NULL",
            Self::Is => "IS",
            Self::Contains => "CONTAINS",
            Self::StartsWith => "STARTSWITH",
            Self::EndsWith => "ENDSWITH",
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// 1-based character position.
    position: usize,
}

/// Operators, longest first so that `<=` wins over `<`.
const PUNCTS: [&str; 11] = ["<>", ">=", "<=", "=", ">", "<", "(", ",", ")", "+", "-"];

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |at: usize, reason: String| ParseError {
        position: at + 1,
        reason,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}') {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            // A line comment, to the end of the line (or of the text).
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(error(start, "unterminated comment".into())),
                    Some('*') if chars.get(i + 1) == Some(&'/') => {
                        i += 2;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            continue;
        }
        let kind = if c == '\'' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(error(start, "unterminated string literal".into())),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            TokenKind::Str(value)
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match KEYWORDS
                .iter()
                .find(|k| k.name().eq_ignore_ascii_case(&word))
            {
                Some(k) => TokenKind::Keyword(*k),
                None => TokenKind::Ident(word),
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            lex_number(&chars, &mut i)
        } else if let Some(p) = PUNCTS.iter().find(|p| {
            p.chars()
                .enumerate()
                .all(|(k, pc)| chars.get(i + k) == Some(&pc))
        }) {
            i += p.len();
            TokenKind::Punct(p)
        } else {
            return Err(error(start, format!("unexpected character {c:?}")));
        };
        if tokens.len() == MAX_TOKENS {
            return Err(error(
                start,
                format!("the expression is longer than {MAX_TOKENS} tokens"),
            ));
        }
        tokens.push(Token {
            kind,
            position: start + 1,
        });
    }
    Ok(tokens)
}

/// A number at `*i`: the longest of a float (`1.5`, `1.`, `.5`, `1e3`, `1.5E-3`) and a
/// decimal (`0`, or a non-zero digit then digits, optionally `L`).
fn lex_number(chars: &[char], i: &mut usize) -> TokenKind {
    let digits_from = |mut j: usize| {
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let exponent_from = |j: usize| -> Option<usize> {
        if !matches!(chars.get(j), Some('e' | 'E')) {
            return None;
        }
        let mut k = j + 1;
        if matches!(chars.get(k), Some('+' | '-')) {
            k += 1;
        }
        let end = digits_from(k);
        (end > k).then_some(end)
    };
    let start = *i;
    let int_end = digits_from(start);
    // Float forms.
    let mut float_end = None;
    if chars.get(int_end) == Some(&'.') {
        let frac_end = digits_from(int_end + 1);
        if int_end > start || frac_end > int_end + 1 {
            float_end = Some(exponent_from(frac_end).unwrap_or(frac_end));
        }
    } else if int_end > start {
        float_end = exponent_from(int_end);
    }
    if let Some(end) = float_end {
        *i = end;
        return TokenKind::Float(chars[start..end].iter().collect());
    }
    // Decimal: "0" alone, or [1-9][0-9]* with an optional L.
    let end = if chars[start] == '0' {
        start + 1
    } else {
        int_end
    };
    *i = end;
    let text: String = chars[start..end].iter().collect();
    if chars[start] != '0' && matches!(chars.get(end), Some('l' | 'L')) {
        *i = end + 1;
    }
    TokenKind::Integer(text)
}

// ---- expressions -----------------------------------------------------------------------------

/// A value during evaluation: Java's types as RocketMQ's filter sees them.
#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

/// A literal of the expression.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
}

impl Literal {
    fn value(&self) -> Value<'_> {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(n) => Value::Int(*n),
            Self::Long(n) => Value::Long(*n),
            Self::Double(d) => Value::Double(*d),
            Self::Str(s) => Value::Str(s),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Self::Int(_) | Self::Long(_) | Self::Double(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Gt => ordering == Ordering::Greater,
            Self::Ge => ordering != Ordering::Less,
            Self::Lt => ordering == Ordering::Less,
            Self::Le => ordering != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Literal),
    Property(String),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    /// A property used as a condition: TRUE only for a boolean, which properties never are.
    BoolCast(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `=`, and `IS NULL` (with a NULL literal on the right).
    Equal(Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    In {
        property: String,
        list: Vec<String>,
        negated: bool,
    },
    Text {
        op: StrOp,
        negated: bool,
        operand: Box<Expr>,
        search: String,
    },
}

impl Expr {
    /// Levels of the tree, counted without recursion.
    fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((e, d)) = stack.pop() {
            deepest = deepest.max(d);
            match e {
                Self::Negate(x) | Self::Not(x) | Self::BoolCast(x) => stack.push((x, d + 1)),
                Self::Text { operand, .. } => stack.push((operand, d + 1)),
                Self::And(l, r) | Self::Or(l, r) | Self::Equal(l, r) | Self::Compare(_, l, r) => {
                    stack.push((l, d + 1));
                    stack.push((r, d + 1));
                }
                Self::Literal(_) | Self::Property(_) | Self::In { .. } => {}
            }
        }
        deepest
    }

    /// Java's `BooleanExpression`: what may stand as a condition.
    fn is_boolean(&self) -> bool {
        match self {
            Self::Literal(l) => matches!(l, Literal::Null | Literal::Bool(_)),
            Self::Property(_) | Self::Negate(_) => false,
            _ => true,
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(Literal::Null) => write!(f, "NULL"),
            Self::Literal(Literal::Bool(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Self::Literal(Literal::Int(n)) => write!(f, "{n}"),
            Self::Literal(Literal::Long(n)) => write!(f, "{n}L"),
            Self::Literal(Literal::Double(d)) => write!(f, "{d:?}"),
            Self::Literal(Literal::Str(s)) => write!(f, "{}", quote(s)),
            Self::Property(p) => write!(f, "{p}"),
            Self::Negate(e) => write!(f, "(- {e})"),
            Self::Not(e) => write!(f, "(NOT {e})"),
            Self::BoolCast(e) => write!(f, "{e}"),
            Self::And(l, r) => write!(f, "({l} AND {r})"),
            Self::Or(l, r) => write!(f, "({l} OR {r})"),
            Self::Equal(l, r) if **r == Self::Literal(Literal::Null) => write!(f, "({l} IS NULL)"),
            Self::Equal(l, r) => write!(f, "({l} = {r})"),
            Self::Compare(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Self::In {
                property,
                list,
                negated,
            } => {
                let items: Vec<String> = list.iter().map(|s| quote(s)).collect();
                let not = if *negated { "NOT " } else { "" };
                write!(f, "({property} {not}IN ({}))", items.join(", "))
            }
            Self::Text {
                op,
                negated,
                operand,
                search,
            } => {
                let name = match op {
                    StrOp::Contains => "CONTAINS",
                    StrOp::StartsWith => "STARTSWITH",
                    StrOp::EndsWith => "ENDSWITH",
                };
                let not = if *negated { "NOT " } else { "" };
                write!(f, "({operand} {not}{name} {})", quote(search))
            }
        }
    }
}

// ---- parser: one function per production of SelectorParser.jj --------------------------------

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Position reported for "end of expression".
    end: usize,
    /// Parentheses and prefix operators open at this point.
    nesting: usize,
}

type Parsed = Result<Expr, ParseError>;

impl Parser {
    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn peek2(&self) -> Option<&TokenKind> {
        self.tokens.get(self.at + 1).map(|t| &t.kind)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.position)
    }

    fn is_keyword(&self, k: Keyword) -> bool {
        self.peek() == Some(&TokenKind::Keyword(k))
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(TokenKind::Punct(q)) if *q == p)
    }

    fn error(&self, reason: impl Into<String>) -> ParseError {
        ParseError {
            position: self.position(),
            reason: reason.into(),
        }
    }

    /// A semantic check's failure, reported at the token just consumed.
    fn semantic_error(&self, reason: String) -> ParseError {
        ParseError {
            position: self
                .tokens
                .get(self.at.saturating_sub(1))
                .map_or(1, |t| t.position),
            reason,
        }
    }

    fn check<T>(&self, result: Result<T, String>) -> Result<T, ParseError> {
        result.map_err(|reason| self.semantic_error(reason))
    }

    fn expected(&self, what: &str) -> ParseError {
        match self.peek() {
            Some(found) => self.error(format!("expected {what}, found {found}")),
            None => self.error(format!("expected {what}, found the end of the expression")),
        }
    }

    fn expect_keyword(&mut self, k: Keyword) -> Result<(), ParseError> {
        if self.is_keyword(k) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.expected(k.name()))
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), ParseError> {
        if self.is_punct(p) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.expected(&format!("`{p}`")))
        }
    }

    fn or_expr(&mut self) -> Parsed {
        let mut left = self.and_expr()?;
        while self.is_keyword(Keyword::Or) {
            self.at += 1;
            let right = self.and_expr()?;
            let (l, r) = self.check(as_boolean(left).and_then(|l| Ok((l, as_boolean(right)?))))?;
            left = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Parsed {
        let mut left = self.equality_expr()?;
        while self.is_keyword(Keyword::And) {
            self.at += 1;
            let right = self.equality_expr()?;
            let (l, r) = self.check(as_boolean(left).and_then(|l| Ok((l, as_boolean(right)?))))?;
            left = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(left)
    }

    fn equality_expr(&mut self) -> Parsed {
        let mut left = self.comparison_expr()?;
        loop {
            if self.is_punct("=") || self.is_punct("<>") {
                let not_equal = self.is_punct("<>");
                self.at += 1;
                let right = self.comparison_expr()?;
                let equal = self.check(create_equal(left, right))?;
                left = if not_equal {
                    Expr::Not(Box::new(equal))
                } else {
                    equal
                };
            } else if self.is_keyword(Keyword::Is) {
                self.at += 1;
                let negated = self.is_keyword(Keyword::Not);
                if negated {
                    self.at += 1;
                }
                self.expect_keyword(Keyword::Null)?;
                let is_null = Expr::Equal(Box::new(left), Box::new(Expr::Literal(Literal::Null)));
                left = if negated {
                    Expr::Not(Box::new(is_null))
                } else {
                    is_null
                };
            } else {
                return Ok(left);
            }
        }
    }

    fn comparison_expr(&mut self) -> Parsed {
        let mut left = self.unary_expr()?;
        loop {
            let op = match self.peek() {
                Some(TokenKind::Punct(">")) => Some(CmpOp::Gt),
                Some(TokenKind::Punct(">=")) => Some(CmpOp::Ge),
                Some(TokenKind::Punct("<")) => Some(CmpOp::Lt),
                Some(TokenKind::Punct("<=")) => Some(CmpOp::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.at += 1;
                let right = self.unary_expr()?;
                left = self.check(create_compare(op, left, right))?;
                continue;
            }
            let negated = self.is_keyword(Keyword::Not);
            let keyword = if negated { self.peek2() } else { self.peek() };
            let Some(TokenKind::Keyword(k)) = keyword.cloned() else {
                if negated {
                    self.at += 1;
                    return Err(
                        self.expected("CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after NOT")
                    );
                }
                return Ok(left);
            };
            let text_op = match k {
                Keyword::Contains => Some(StrOp::Contains),
                Keyword::StartsWith => Some(StrOp::StartsWith),
                Keyword::EndsWith => Some(StrOp::EndsWith),
                _ => None,
            };
            match (k, text_op) {
                (_, Some(op)) => {
                    self.at += if negated { 2 } else { 1 };
                    let search = self.string_literal()?;
                    left = Expr::Text {
                        op,
                        negated,
                        operand: Box::new(left),
                        search,
                    };
                }
                (Keyword::Between, None) => {
                    self.at += if negated { 2 } else { 1 };
                    let low = self.unary_expr()?;
                    self.expect_keyword(Keyword::And)?;
                    let high = self.unary_expr()?;
                    left = self.check(if negated {
                        create_not_between(left, low, high)
                    } else {
                        create_between(left, low, high)
                    })?;
                }
                (Keyword::In, None) => {
                    self.at += if negated { 2 } else { 1 };
                    self.expect_punct("(")?;
                    let mut list = vec![self.string_literal()?];
                    while self.is_punct(",") {
                        self.at += 1;
                        list.push(self.string_literal()?);
                    }
                    self.expect_punct(")")?;
                    let Expr::Property(property) = left else {
                        return Err(self.semantic_error(format!(
                            "expected a property on the left of IN, got: {left}"
                        )));
                    };
                    left = Expr::In {
                        property,
                        list,
                        negated,
                    };
                }
                _ if negated => {
                    self.at += 1;
                    return Err(
                        self.expected("CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after NOT")
                    );
                }
                _ => return Ok(left),
            }
        }
    }

    /// Runs `parse` one nesting level deeper, refusing expressions nested beyond
    /// [`MAX_NESTING`] (the parser's recursion stays bounded).
    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Parsed) -> Parsed {
        if self.nesting >= MAX_NESTING {
            return Err(self.error(format!(
                "the expression nests deeper than {MAX_NESTING} levels"
            )));
        }
        self.nesting += 1;
        let parsed = parse(self);
        self.nesting -= 1;
        parsed
    }

    fn unary_expr(&mut self) -> Parsed {
        if self.is_punct("+") {
            self.at += 1;
            return self.nested(Self::unary_expr);
        }
        if self.is_punct("-") {
            self.at += 1;
            let operand = self.nested(Self::unary_expr)?;
            return Ok(Expr::Negate(Box::new(operand)));
        }
        if self.is_keyword(Keyword::Not) {
            self.at += 1;
            let operand = self.nested(Self::unary_expr)?;
            let operand = self.check(as_boolean(operand))?;
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.primary_expr()
    }

    fn primary_expr(&mut self) -> Parsed {
        let Some(token) = self.peek().cloned() else {
            return Err(self.expected("a value, a property or `(`"));
        };
        let literal = match token {
            TokenKind::Str(s) => Literal::Str(s),
            TokenKind::Integer(text) => self.integer(&text)?,
            TokenKind::Float(text) => self.float(&text)?,
            TokenKind::Keyword(Keyword::True) => Literal::Bool(true),
            TokenKind::Keyword(Keyword::False) => Literal::Bool(false),
            TokenKind::Keyword(Keyword::Null) => Literal::Null,
            TokenKind::Ident(name) => {
                self.at += 1;
                return Ok(Expr::Property(name));
            }
            TokenKind::Punct("(") => {
                self.at += 1;
                let inner = self.nested(Self::or_expr)?;
                self.expect_punct(")")?;
                return Ok(inner);
            }
            _ => return Err(self.expected("a value, a property or `(`")),
        };
        self.at += 1;
        Ok(Expr::Literal(literal))
    }

    fn integer(&self, text: &str) -> Result<Literal, ParseError> {
        let n: i64 = text
            .parse()
            .map_err(|_| self.error(format!("number {text} does not fit in 64 bits")))?;
        Ok(i32::try_from(n).map_or(Literal::Long(n), Literal::Int))
    }

    fn float(&self, text: &str) -> Result<Literal, ParseError> {
        match text.parse::<f64>() {
            Ok(d) if d.is_finite() => Ok(Literal::Double(d)),
            _ => Err(self.error(format!("number {text} is out of range of a double"))),
        }
    }

    fn string_literal(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(TokenKind::Str(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.expected("a string literal")),
        }
    }
}

/// Java's `asBooleanExpression`: a condition as is, a property cast to a boolean, anything
/// else refused.
fn as_boolean(e: Expr) -> Result<Expr, String> {
    if e.is_boolean() {
        Ok(e)
    } else if matches!(e, Expr::Property(_)) {
        Ok(Expr::BoolCast(Box::new(e)))
    } else {
        Err(format!(
            "expression will not result in a boolean value: {e}"
        ))
    }
}

/// `checkLessThanOperand`: only numbers (or what evaluates to one) can be ordered.
fn check_orderable(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Literal(l) if l.is_number() => Ok(()),
        Expr::Literal(_) => Err(format!("value {e} cannot be compared with <, <=, > or >=")),
        e if e.is_boolean() => Err(format!("value {e} cannot be compared with <, <=, > or >=")),
        _ => Ok(()),
    }
}

fn create_compare(op: CmpOp, left: Expr, right: Expr) -> Parsed0 {
    check_orderable(&left)?;
    check_orderable(&right)?;
    Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
}

type Parsed0 = Result<Expr, String>;

/// `createEqual`: NULL literals cannot be compared (that is `IS NULL`), and a boolean literal
/// only with a boolean.
fn create_equal(left: Expr, right: Expr) -> Parsed0 {
    for e in [&left, &right] {
        if matches!(e, Expr::Literal(Literal::Null)) {
            return Err("NULL cannot be compared with = or <>; use IS NULL or IS NOT NULL".into());
        }
    }
    if let (Expr::Literal(l), Expr::Literal(r)) = (&left, &right)
        && matches!(l, Literal::Bool(_))
        && !matches!(r, Literal::Bool(_) | Literal::Null)
    {
        return Err(format!("{left} cannot be compared with {right}"));
    }
    Ok(Expr::Equal(Box::new(left), Box::new(right)))
}

fn create_between(value: Expr, low: Expr, high: Expr) -> Parsed0 {
    if let (Expr::Literal(lo), Expr::Literal(hi)) = (&low, &high) {
        if *lo == Literal::Null || *hi == Literal::Null {
            return Err("the bounds of BETWEEN cannot be NULL".into());
        }
        let below = java_compare(&hi.value(), &lo.value())
            .map_err(|e| format!("the bounds of BETWEEN cannot be compared: {}", e.0))?;
        if below == Ordering::Less {
            return Err(format!(
                "the low bound of BETWEEN ({low}) must be less than or equal to the high bound ({high})"
            ));
        }
    }
    let ge = create_compare(CmpOp::Ge, value.clone(), low)?;
    let le = create_compare(CmpOp::Le, value, high)?;
    Ok(Expr::And(Box::new(ge), Box::new(le)))
}

fn create_not_between(value: Expr, low: Expr, high: Expr) -> Parsed0 {
    let lt = create_compare(CmpOp::Lt, value.clone(), low)?;
    let gt = create_compare(CmpOp::Gt, value, high)?;
    Ok(Expr::Or(Box::new(lt), Box::new(gt)))
}

// ---- evaluation ------------------------------------------------------------------------------

/// An evaluation that fails (Java throws): the message does not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EvalError(&'static str);

type Eval<'a> = Result<Value<'a>, EvalError>;

/// A condition's value as Java's `(Boolean)` cast sees it.
fn as_condition(v: Value<'_>) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        _ => Err(EvalError("not a boolean")),
    }
}

fn from_condition<'a>(b: Option<bool>) -> Value<'a> {
    b.map_or(Value::Null, Value::Bool)
}

impl Expr {
    fn eval<'a>(&'a self, lookup: &dyn Fn(&str) -> Option<&'a str>) -> Eval<'a> {
        Ok(match self {
            Self::Literal(l) => l.value(),
            Self::Property(name) => lookup(name).map_or(Value::Null, Value::Str),
            Self::Negate(e) => match e.eval(lookup)? {
                Value::Int(n) => Value::Int(n.wrapping_neg()),
                Value::Long(n) => Value::Long(n.wrapping_neg()),
                Value::Double(d) => Value::Double(-d),
                _ => Value::Null,
            },
            Self::Not(e) => from_condition(as_condition(e.eval(lookup)?)?.map(|b| !b)),
            Self::BoolCast(e) => match e.eval(lookup)? {
                Value::Null => Value::Null,
                Value::Bool(b) => Value::Bool(b),
                _ => Value::Bool(false),
            },
            Self::And(l, r) => {
                let lv = as_condition(l.eval(lookup)?)?;
                if lv == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let rv = as_condition(r.eval(lookup)?)?;
                if rv == Some(false) {
                    return Ok(Value::Bool(false));
                }
                from_condition(lv.and(rv).map(|_| true))
            }
            Self::Or(l, r) => {
                let lv = as_condition(l.eval(lookup)?)?;
                if lv == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let rv = as_condition(r.eval(lookup)?)?;
                if rv == Some(true) {
                    return Ok(Value::Bool(true));
                }
                from_condition(lv.and(rv).map(|_| false))
            }
            Self::Equal(l, r) => {
                let (lv, rv) = (l.eval(lookup)?, r.eval(lookup)?);
                match (&lv, &rv) {
                    (Value::Null, Value::Null) => Value::Bool(true),
                    (Value::Null, _) => Value::Null,
                    (_, Value::Null) => Value::Bool(false),
                    _ => Value::Bool(
                        java_equals(&lv, &rv) || java_compare(&lv, &rv)? == Ordering::Equal,
                    ),
                }
            }
            Self::Compare(op, l, r) => {
                let lv = l.eval(lookup)?;
                if lv == Value::Null {
                    return Ok(Value::Null);
                }
                let rv = r.eval(lookup)?;
                if rv == Value::Null {
                    return Ok(Value::Null);
                }
                let ordering = if let (Value::Str(a), Value::Str(b)) = (&lv, &rv) {
                    // Strings are never ordered: both must read as doubles.
                    let (a, b) = (java_double(a)?, java_double(b)?);
                    java_double_compare(a, b)
                } else {
                    java_compare(&lv, &rv)?
                };
                Value::Bool(op.holds(ordering))
            }
            Self::In {
                property,
                list,
                negated,
            } => match lookup(property) {
                None => Value::Null,
                Some(v) => Value::Bool(list.iter().any(|s| s == v) != *negated),
            },
            Self::Text {
                op,
                negated,
                operand,
                search,
            } => {
                if search.is_empty() {
                    return Ok(Value::Bool(false));
                }
                match operand.eval(lookup)? {
                    Value::Str(s) => {
                        let found = match op {
                            StrOp::Contains => s.contains(search.as_str()),
                            StrOp::StartsWith => s.starts_with(search.as_str()),
                            StrOp::EndsWith => s.ends_with(search.as_str()),
                        };
                        Value::Bool(found != *negated)
                    }
                    _ => Value::Bool(false),
                }
            }
        })
    }
}

/// Java's `equals` between two boxed values: same type and same value (doubles by bits,
/// so NaN equals NaN and -0.0 differs from 0.0).
fn java_equals(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => java_double_compare(*x, *y) == Ordering::Equal,
        _ => a == b,
    }
}

/// `ComparisonExpression.__compare` with string conversion on: values of different types
/// are converted to the other side's type (a string is parsed as the number's Java type);
/// types that do not convert order as "less"; a string that does not parse fails.
fn java_compare(a: &Value<'_>, b: &Value<'_>) -> Result<Ordering, EvalError> {
    use Value::{Bool, Double, Int, Long, Str};
    Ok(match (a, b) {
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Long(x), Long(y)) => x.cmp(y),
        (Double(x), Double(y)) => java_double_compare(*x, *y),
        (Str(x), Str(y)) => x.encode_utf16().cmp(y.encode_utf16()),
        // Java casts the boolean to a string here and throws.
        (Bool(_), Str(_)) => return Err(EvalError("a boolean cannot be compared with a string")),
        (Int(x), Long(y)) => i64::from(*x).cmp(y),
        (Int(x), Double(y)) => java_double_compare(f64::from(*x), *y),
        (Int(x), Str(y)) => x.cmp(&java_int(y)?),
        (Long(x), Int(y)) => x.cmp(&i64::from(*y)),
        (Long(x), Double(y)) => java_double_compare(*x as f64, *y),
        (Long(x), Str(y)) => x.cmp(&java_long(y)?),
        (Double(x), Int(y)) => java_double_compare(*x, f64::from(*y)),
        (Double(x), Long(y)) => java_double_compare(*x, *y as f64),
        (Double(x), Str(y)) => java_double_compare(*x, java_double(y)?),
        (Str(x), Bool(y)) => x.eq_ignore_ascii_case("true").cmp(y),
        (Str(x), Int(y)) => java_int(x)?.cmp(y),
        (Str(x), Long(y)) => java_long(x)?.cmp(y),
        (Str(x), Double(y)) => java_double_compare(java_double(x)?, *y),
        (Value::Null, _) | (_, Value::Null) => return Err(EvalError("NULL cannot be compared")),
        _ => Ordering::Less,
    })
}

/// `Double.compare`: a total order with every NaN equal and above +∞, and -0.0 below 0.0.
fn java_double_compare(a: f64, b: f64) -> Ordering {
    if a < b {
        return Ordering::Less;
    }
    if a > b {
        return Ordering::Greater;
    }
    let bits = |d: f64| {
        if d.is_nan() {
            0x7ff8_0000_0000_0000_i64
        } else {
            d.to_bits() as i64
        }
    };
    bits(a).cmp(&bits(b))
}

/// `Integer.valueOf(String)`.
fn java_int(s: &str) -> Result<i32, EvalError> {
    s.parse().map_err(|_| EvalError("not an int"))
}

/// `Long.valueOf(String)`.
fn java_long(s: &str) -> Result<i64, EvalError> {
    s.parse().map_err(|_| EvalError("not a long"))
}

/// `Double.valueOf(String)` for decimal forms: surrounding whitespace and control
/// characters ignored, an optional sign, `NaN`, `Infinity`, digits with an optional point
/// and exponent, and an optional `f`/`F`/`d`/`D` suffix.
fn java_double(s: &str) -> Result<f64, EvalError> {
    const BAD: EvalError = EvalError("not a double");
    let s = s.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let number = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            let bytes = number.as_bytes();
            let mantissa_end = bytes
                .iter()
                .position(|b| matches!(b, b'e' | b'E'))
                .unwrap_or(bytes.len());
            let mantissa = &bytes[..mantissa_end];
            let digits = mantissa.iter().filter(|b| b.is_ascii_digit()).count();
            let points = mantissa.iter().filter(|b| **b == b'.').count();
            if digits == 0 || points > 1 || digits + points != mantissa.len() {
                return Err(BAD);
            }
            if mantissa_end < bytes.len() {
                let exponent = &bytes[mantissa_end + 1..];
                let exponent = exponent
                    .strip_prefix(b"+")
                    .or_else(|| exponent.strip_prefix(b"-"))
                    .unwrap_or(exponent);
                if exponent.is_empty() || !exponent.iter().all(u8::is_ascii_digit) {
                    return Err(BAD);
                }
            }
            number.parse::<f64>().map_err(|_| BAD)?
        }
    };
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Evaluates `expr` over `props` (`name=value` pairs): `Some(true/false)`, or `None` for
    /// NULL or a failed evaluation.
    fn eval(expr: &str, props: &[(&str, &str)]) -> Option<bool> {
        let filter = Sql92Filter::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        filter.evaluate_properties(&tributary_store::record::encode_properties(
            props.iter().copied(),
        ))
    }

    /// Expression, properties, expected result (None: NULL or failure).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<bool>);

    fn check(cases: &[Case<'_>]) {
        for (expr, props, expected) in cases {
            assert_eq!(eval(expr, props), *expected, "{expr} over {props:?}");
        }
    }

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const N: Option<bool> = None;

    #[test]
    fn comparisons_with_numbers_convert_the_property() {
        check(&[
            ("a > 5", &[("a", "6")], T),
            ("a > 5", &[("a", "5")], F),
            ("a >= 5", &[("a", "5")], T),
            ("a < 5", &[("a", "-7")], T),
            ("a <= -5", &[("a", "-5")], T),
            ("a > 5", &[("a", "+6")], T),
            // Missing: unknown.
            ("a > 5", &[], N),
            // Not an int: the evaluation fails.
            ("a > 5", &[("a", "abc")], N),
            ("a > 5", &[("a", "10.5")], N),
            ("a > 5", &[("a", " 6")], N),
            ("a > 5", &[("a", "3000000000")], N),
            // A literal beyond 32 bits parses the property as a long; `L` alone does not
            // (Java narrows `5L` to an int).
            ("a > 2147483648", &[("a", "3000000000")], T),
            ("a > 5L", &[("a", "3000000000")], N),
            ("a < 3000000000", &[("a", "5")], T),
            // A decimal literal parses it as a double.
            ("a > 5.0", &[("a", "10.5")], T),
            ("a > 5.0", &[("a", " 10.5d ")], T),
            ("a > 5.0", &[("a", "1e2")], T),
            ("a > 5.0", &[("a", "NaN")], T),
            ("a < 5.0", &[("a", "-Infinity")], T),
            ("a > 5.0", &[("a", "inf")], N),
            ("a > .5", &[("a", "0.6")], T),
            ("a > 1e1", &[("a", "11")], T),
            // Number on the left.
            ("5 < a", &[("a", "6")], T),
            // Negation of literals.
            ("a > -1", &[("a", "0")], T),
            ("a = - -2", &[("a", "2")], T),
            ("a > +1", &[("a", "2")], T),
            // Two properties: compared as doubles.
            ("a > b", &[("a", "10"), ("b", "9.5")], T),
            ("a > b", &[("a", "x"), ("b", "1")], N),
            ("a < b", &[("a", "1")], N),
        ]);
    }

    #[test]
    fn equality_of_strings_numbers_and_booleans() {
        check(&[
            ("b = 'x'", &[("b", "x")], T),
            ("b = 'x'", &[("b", "X")], F),
            ("b = 'x'", &[], N),
            ("b <> 'x'", &[("b", "y")], T),
            ("b <> 'x'", &[("b", "x")], F),
            ("b <> 'x'", &[], N),
            ("b = 'it''s'", &[("b", "it's")], T),
            ("b = ''", &[("b", "")], T),
            // Numbers: the property is parsed.
            ("n = 5", &[("n", "5")], T),
            ("n = 5", &[("n", "05")], T),
            ("n = 5", &[("n", "-0")], F),
            ("n = 0", &[("n", "-0")], T),
            ("n = 5", &[("n", "five")], N),
            ("n = 5.0", &[("n", "5")], T),
            ("n = 0.0", &[("n", "-0.0")], F),
            ("n <> 5", &[("n", "five")], N),
            // Booleans: `true` in any case.
            ("flag = TRUE", &[("flag", "TRUE")], T),
            ("flag = true", &[("flag", "true")], T),
            ("flag = TRUE", &[("flag", "yes")], F),
            ("flag = FALSE", &[("flag", "no")], T),
            ("flag <> FALSE", &[("flag", "True")], T),
            // A boolean literal on the left of a property fails in Java (a cast error).
            ("TRUE = flag", &[("flag", "true")], N),
            // Literals among themselves.
            ("1 = 1", &[], T),
            ("1 = 1.0", &[], T),
            ("'a' = 'a'", &[], T),
            ("TRUE = TRUE", &[], T),
            ("TRUE <> FALSE", &[], T),
            ("5 = TRUE", &[], F),
            ("1 = 1 = TRUE", &[], T),
        ]);
    }

    #[test]
    fn null_tests_and_three_valued_logic() {
        check(&[
            ("a IS NULL", &[], T),
            ("a IS NULL", &[("a", "")], F),
            ("a IS NOT NULL", &[("a", "1")], T),
            ("a is not null", &[], F),
            ("5 IS NULL", &[], F),
            ("NULL IS NULL", &[], T),
            // AND / OR / NOT with unknowns.
            ("a = 1 AND b = 2", &[("b", "2")], N),
            ("a = 1 AND b = 2", &[("b", "3")], F),
            ("a = 1 OR b = 2", &[("b", "2")], T),
            ("a = 1 OR b = 2", &[("b", "3")], N),
            ("NOT (a = 1)", &[], N),
            ("NOT (a = 1)", &[("a", "2")], T),
            // A failure anywhere fails the whole expression, even where SQL would
            // short-circuit past it.
            ("a > 5 OR b = 'x'", &[("a", "abc"), ("b", "x")], N),
            ("b = 'x' OR a > 5", &[("a", "abc"), ("b", "x")], T),
            ("b = 'y' AND a > 5", &[("a", "abc"), ("b", "x")], F),
            ("TRUE", &[], T),
            ("FALSE", &[], F),
            ("NULL", &[], N),
            ("TRUE AND NOT FALSE", &[], T),
            ("NULL OR TRUE", &[], T),
            ("NULL AND FALSE", &[], F),
            // A property alone as a condition is never TRUE.
            ("a", &[("a", "true")], F),
            ("a", &[], N),
            ("a OR b = 1", &[("a", "true"), ("b", "1")], T),
            ("NOT a", &[("a", "true")], T),
        ]);
    }

    #[test]
    fn not_binds_tighter_than_comparisons_as_in_rocketmq() {
        // `NOT a = 'x'` is `(NOT a) = 'x'`: a boolean against a string, which fails; it
        // never matches, on a broker that follows RocketMQ.
        check(&[
            ("NOT a = 'x'", &[("a", "y")], N),
            ("NOT a = 'x'", &[("a", "x")], N),
            ("NOT a = 'x'", &[], N),
            ("NOT (a = 'x')", &[("a", "y")], T),
            // (NOT a) IS NULL: NOT of a missing property is NULL.
            ("NOT a IS NULL", &[], T),
            ("NOT a IS NULL", &[("a", "x")], F),
        ]);
        // NOT before an ordering: (NOT a) > 1 is refused when parsed.
        assert!(Sql92Filter::parse("NOT a > 1").is_err());
    }

    #[test]
    fn between_in_and_string_operators() {
        check(&[
            ("a BETWEEN 1 AND 10", &[("a", "1")], T),
            ("a BETWEEN 1 AND 10", &[("a", "10")], T),
            ("a BETWEEN 1 AND 10", &[("a", "11")], F),
            ("a BETWEEN 1 AND 10", &[("a", "x")], N),
            ("a BETWEEN 1 AND 10", &[], N),
            ("a BETWEEN -1 AND -5", &[("a", "-3")], F),
            ("a NOT BETWEEN 1 AND 10", &[("a", "11")], T),
            ("a NOT BETWEEN 1 AND 10", &[("a", "5")], F),
            ("a NOT BETWEEN 1 AND 10", &[], N),
            (
                "a BETWEEN 1 AND 10 AND b = 'x'",
                &[("a", "2"), ("b", "x")],
                T,
            ),
            ("a BETWEEN 1.5 AND 2.5", &[("a", "2")], T),
            ("c IN ('x', 'y')", &[("c", "y")], T),
            ("c IN ('x', 'y')", &[("c", "z")], F),
            ("c IN ('x')", &[], N),
            ("c NOT IN ('x', 'y')", &[("c", "z")], T),
            ("c NOT IN ('x', 'y')", &[("c", "x")], F),
            ("c NOT IN ('x')", &[], N),
            ("c IN ('1', '2', '3', '4', '5', '6')", &[("c", "6")], T),
            ("s CONTAINS 'ell'", &[("s", "hello")], T),
            ("s CONTAINS 'xyz'", &[("s", "hello")], F),
            ("s CONTAINS 'x'", &[], F),
            ("s CONTAINS ''", &[("s", "hello")], F),
            ("s NOT CONTAINS 'xyz'", &[("s", "hello")], T),
            ("s NOT CONTAINS 'x'", &[], F),
            ("s STARTSWITH 'he'", &[("s", "hello")], T),
            ("s NOT STARTSWITH 'he'", &[("s", "hello")], F),
            ("s ENDSWITH 'lo'", &[("s", "hello")], T),
            ("s NOT ENDSWITH 'lo'", &[("s", "help")], T),
            ("5 CONTAINS '5'", &[], F),
        ]);
    }

    #[test]
    fn syntax_matches_the_rocketmq_grammar() {
        check(&[
            // Keywords in any case, comments, `$` and `_` in names, L suffixes.
            ("a > 5 and B = 'x'", &[("a", "6"), ("B", "x")], T),
            ("$a_1 = 1 -- trailing comment", &[("$a_1", "1")], T),
            ("/* c */ a = 1 /* d */", &[("a", "1")], T),
            ("a = 10L", &[("a", "10")], T),
            ("a = 10l", &[("a", "10")], T),
            ("((a = 1))", &[("a", "1")], T),
            ("a\n=\t1", &[("a", "1")], T),
            // Properties are case-sensitive.
            ("A = 1", &[("a", "1")], N),
            // System properties are properties too.
            ("TAGS = 'TagA'", &[("TAGS", "TagA")], T),
        ]);
    }

    #[test]
    fn invalid_expressions_are_refused_with_a_reason() {
        let cases: [(&str, &str); 26] = [
            ("", "expected a value"),
            ("a >", "found the end of the expression"),
            ("a > > 1", "expected a value"),
            ("a = 'x", "unterminated string"),
            ("a = 1 b", "unexpected name b after a complete condition"),
            ("a = 1)", "unexpected `)`"),
            ("(a = 1", "expected `)`"),
            ("a == 1", "expected a value"),
            ("a != 1", "unexpected character '!'"),
            ("a > 'x'", "cannot be compared"),
            ("a > TRUE", "cannot be compared"),
            ("a > NULL", "cannot be compared"),
            ("a > (b = 1)", "cannot be compared"),
            ("a = NULL", "NULL cannot be compared"),
            ("a <> NULL", "NULL cannot be compared"),
            ("TRUE = 5", "cannot be compared with 5"),
            ("a BETWEEN 5 AND 1", "must be less than or equal"),
            ("a BETWEEN 'a' AND 'b'", "cannot be compared"),
            ("a IN (1, 2)", "expected a string literal"),
            ("5 IN ('5')", "expected a property on the left of IN"),
            ("a IN ()", "expected a string literal"),
            ("5", "will not result in a boolean"),
            ("'x' AND a = 1", "will not result in a boolean"),
            ("a NOT LIKE 'x'", "after NOT"),
            ("a = 99999999999999999999", "does not fit in 64 bits"),
            ("a = 1e999", "out of range of a double"),
        ];
        for (expr, reason) in cases {
            let err = Sql92Filter::parse(expr).expect_err(expr);
            assert!(
                err.to_string().contains(reason),
                "{expr:?}: {err} (expected {reason:?})"
            );
        }
        let err = Sql92Filter::parse("a = 1 AND b ! 2").expect_err("bang");
        assert_eq!(err.position, 13, "{err}");
        let err = Sql92Filter::parse("a > 'x'").expect_err("string");
        assert_eq!(err.position, 5, "{err}");
    }

    #[test]
    fn huge_expressions_are_refused_not_overflowing_the_stack() {
        let deep = format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000));
        let err = Sql92Filter::parse(&deep).expect_err("deep");
        assert!(err.to_string().contains("longer than 65536 bytes"), "{err}");
        let deep = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Sql92Filter::parse(&deep).is_err());
        let nots = format!("{}a", "NOT ".repeat(100_000));
        assert!(Sql92Filter::parse(&nots).is_err());
        let minus = format!("a = {}1", "- ".repeat(100_000));
        assert!(Sql92Filter::parse(&minus).is_err());
        let nested = format!("{}a = 1{}", "(".repeat(70), ")".repeat(70));
        let err = Sql92Filter::parse(&nested).expect_err("nested");
        assert!(err.to_string().contains("nests deeper than 64"), "{err}");
        let long = vec!["a = 1"; 3000].join(" AND ");
        let err = Sql92Filter::parse(&long).expect_err("long");
        assert!(err.to_string().contains("tokens"), "{err}");
        let chain = vec!["a = 1"; 300].join(" OR ");
        let err = Sql92Filter::parse(&chain).expect_err("deep chain");
        assert!(err.to_string().contains("operations deep"), "{err}");
        let fine = format!(
            "{}a = 1{} AND {}",
            "(".repeat(60),
            ")".repeat(60),
            vec!["b = 2"; 200].join(" AND ")
        );
        let f = Sql92Filter::parse(&fine).expect("within the limits");
        assert!(f.matches("a\u{1}1\u{2}b\u{1}2\u{2}"));
    }

    #[test]
    fn matches_reads_encoded_properties() {
        let f = Sql92Filter::parse("a > 5 AND b = 'x'").expect("parses");
        assert!(f.matches("a\u{1}6\u{2}b\u{1}x\u{2}"));
        assert!(!f.matches("a\u{1}4\u{2}b\u{1}x\u{2}"));
        assert!(!f.matches("b\u{1}x\u{2}"));
        assert!(!f.matches(""));
        // The last of duplicate properties wins, as in Java's map.
        assert!(f.matches("a\u{1}1\u{2}b\u{1}x\u{2}a\u{1}9\u{2}"));
    }

    #[test]
    fn java_number_parsing() {
        for (s, ok) in [
            ("1", true),
            ("1.", true),
            (".5", true),
            ("-1.5e-3", true),
            ("1E+3", true),
            ("2f", true),
            ("\t3.5D\n", true),
            ("NaN", true),
            ("-Infinity", true),
            ("", false),
            (".", false),
            ("e5", false),
            ("1e", false),
            ("1.2.3", false),
            ("nan", false),
            ("inf", false),
            ("0x10", false),
            ("1_000", false),
        ] {
            assert_eq!(java_double(s).is_ok(), ok, "{s:?}");
        }
        assert_eq!(java_double("2f"), Ok(2.0));
        assert_eq!(java_int("+7"), Ok(7));
        assert!(java_int("7.0").is_err());
        assert_eq!(
            java_double_compare(f64::NAN, f64::INFINITY),
            Ordering::Greater
        );
        assert_eq!(java_double_compare(-0.0, 0.0), Ordering::Less);
        assert_eq!(java_double_compare(f64::NAN, -f64::NAN), Ordering::Equal);
    }

    /// A generated condition over properties `p0..p3`, printed in the filter syntax.
    fn condition() -> impl Strategy<Value = String> {
        let prop = (0..4u8).prop_map(|i| format!("p{i}"));
        let number = prop_oneof![
            (-20i64..20).prop_map(|n| n.to_string()),
            (-20i64..20).prop_map(|n| format!("{n}L")),
            (-40i32..40).prop_map(|n| format!("{}", f64::from(n) / 2.0)),
        ];
        let string = "[a-c]{0,2}".prop_map(|s| format!("'{s}'"));
        let leaf = prop_oneof![
            (
                prop.clone(),
                prop_oneof![Just(">"), Just(">="), Just("<"), Just("<=")],
                number.clone()
            )
                .prop_map(|(p, op, n)| format!("{p} {op} {n}")),
            (
                prop.clone(),
                prop_oneof![Just("="), Just("<>")],
                prop_oneof![number.clone(), string.clone()]
            )
                .prop_map(|(p, op, v)| format!("{p} {op} {v}")),
            (prop.clone(), any::<bool>())
                .prop_map(|(p, not)| format!("{p} IS {}NULL", if not { "NOT " } else { "" })),
            (prop.clone(), -5i64..5, 0i64..10)
                .prop_map(|(p, lo, w)| format!("{p} BETWEEN {lo} AND {}", lo + w)),
            (prop.clone(), prop::collection::vec(string.clone(), 1..4))
                .prop_map(|(p, items)| format!("{p} IN ({})", items.join(", "))),
            Just("TRUE".to_owned()),
            Just("FALSE".to_owned()),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
                inner.prop_map(|a| format!("NOT ({a})")),
            ]
        })
    }

    /// Property values: numbers of every form, words, and absent.
    fn properties() -> impl Strategy<Value = Vec<(String, String)>> {
        let value = prop_oneof![
            (-30i64..30).prop_map(|n| n.to_string()),
            (-60i32..60).prop_map(|n| format!("{}", f64::from(n) / 4.0)),
            "[a-c]{0,2}",
            Just("true".to_owned()),
        ];
        prop::collection::vec((0..4u8, value), 0..5).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(i, v)| (format!("p{i}"), v))
                .collect()
        })
    }

    fn evaluate_over(f: &Sql92Filter, props: &[(String, String)]) -> Option<bool> {
        f.evaluate_properties(&tributary_store::record::encode_properties(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = Sql92Filter::parse(&text);
        }

        #[test]
        fn parsing_fragments_never_panics(
            parts in prop::collection::vec(prop_oneof![
                Just("a"), Just("'x'"), Just("5"), Just("5L"), Just("1.5"), Just("("), Just(")"),
                Just("NOT"), Just("AND"), Just("OR"), Just("IS"), Just("NULL"), Just("IN"),
                Just("BETWEEN"), Just("="), Just("<>"), Just(">"), Just("-"), Just("+"),
                Just(","), Just("TRUE"), Just("CONTAINS"), Just("--"), Just("/*"),
            ], 0..12)
        ) {
            let text = parts.join(" ");
            if let Ok(f) = Sql92Filter::parse(&text) {
                let _ = f.matches("a\u{1}5\u{2}");
            }
        }

        /// The printed form of a parsed filter parses to the same filter.
        #[test]
        fn printed_filters_parse_back(text in condition()) {
            if let Ok(f) = Sql92Filter::parse(&text) {
                let printed = f.expr.to_string();
                let again = Sql92Filter::parse(&printed).expect("printed form parses");
                prop_assert_eq!(again.expr.to_string(), printed);
            }
        }

        /// Three-valued logic: NOT flips TRUE and FALSE and keeps unknown, and AND / OR
        /// of known values agree with Rust's.
        #[test]
        fn logic_is_three_valued(a in condition(), b in condition(), props in properties()) {
            let (Ok(fa), Ok(fb)) = (Sql92Filter::parse(&a), Sql92Filter::parse(&b)) else {
                return Ok(());
            };
            let va = evaluate_over(&fa, &props);
            let vb = evaluate_over(&fb, &props);
            let not = Sql92Filter::parse(&format!("NOT ({a})")).expect("NOT parses");
            prop_assert_eq!(evaluate_over(&not, &props), va.map(|v| !v));
            let and = Sql92Filter::parse(&format!("({a}) AND ({b})")).expect("AND parses");
            let or = Sql92Filter::parse(&format!("({a}) OR ({b})")).expect("OR parses");
            if let (Some(x), Some(y)) = (va, vb) {
                prop_assert_eq!(evaluate_over(&and, &props), Some(x && y));
                prop_assert_eq!(evaluate_over(&or, &props), Some(x || y));
            }
            if va == Some(false) {
                prop_assert_eq!(evaluate_over(&and, &props), Some(false));
            }
            if va == Some(true) {
                prop_assert_eq!(evaluate_over(&or, &props), Some(true));
            }
        }

        /// Integer comparisons agree with integer arithmetic on properties that parse.
        #[test]
        fn integer_comparisons_agree_with_arithmetic(v in -100i64..100, n in -100i32..100) {
            let props = vec![("p".to_owned(), v.to_string())];
            for (op, expected) in [
                (">", v > i64::from(n)),
                (">=", v >= i64::from(n)),
                ("<", v < i64::from(n)),
                ("<=", v <= i64::from(n)),
                ("=", v == i64::from(n)),
                ("<>", v != i64::from(n)),
            ] {
                let f = Sql92Filter::parse(&format!("p {op} {n}")).expect("parses");
                prop_assert_eq!(evaluate_over(&f, &props), Some(expected), "p {} {} with p = {}", op, n, v);
            }
            let f = Sql92Filter::parse(&format!("p BETWEEN {n} AND {}", n + 10)).expect("parses");
            prop_assert_eq!(
                evaluate_over(&f, &props),
                Some(v >= i64::from(n) && v <= i64::from(n) + 10)
            );
        }
    }
}
