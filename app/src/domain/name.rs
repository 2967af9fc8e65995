//! Repository names: the portal's most important input.
//!
//! Rules (ECR's, plus ours):
//! - the full name is `<namespace>/<rest>` and is 2–256 characters long;
//! - every `/`-separated component matches `[a-z0-9]+(?:[._-][a-z0-9]+)*`,
//!   i.e. lowercase letters and digits, with single `.`, `_` or `-` between them;
//! - the namespace is fixed by configuration, so a request can never leave it
//!   (`..`, a leading `/` and empty components are all rejected by the grammar).
//!
//! The same parser runs in the browser (as the user types) and on the server.
use serde::{Deserialize, Serialize};
use std::fmt;

/// ECR's limit for a repository name, namespace included.
pub const MAX_NAME_LEN: usize = 256;
/// ECR's minimum for a repository name, namespace included.
pub const MIN_NAME_LEN: usize = 2;

/// Why a name was refused. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum NameError {
    #[error("enter a repository name")]
    Empty,
    #[error("the full name `{full}` is {len} characters long; ECR allows {MIN_NAME_LEN} to {MAX_NAME_LEN}")]
    Length { full: String, len: usize },
    #[error("use lowercase letters only (found `{0}`)")]
    Uppercase(char),
    #[error("`{0}` is not allowed; use lowercase letters, digits and . _ - / only")]
    InvalidChar(char),
    #[error("a name cannot start or end with `/` or contain `//`")]
    EmptyComponent,
    #[error("each part must start and end with a letter or digit (`{0}` does not)")]
    EdgeSeparator(String),
    #[error("separators . _ - cannot follow each other (in `{0}`)")]
    DoubleSeparator(String),
}

fn is_sep(c: char) -> bool {
    matches!(c, '.' | '_' | '-')
}

fn check_component(part: &str) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    for c in part.chars() {
        if c.is_ascii_uppercase() {
            return Err(NameError::Uppercase(c));
        }
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || is_sep(c)) {
            return Err(NameError::InvalidChar(c));
        }
    }
    let first = part.chars().next().unwrap_or('.');
    let last = part.chars().last().unwrap_or('.');
    if is_sep(first) || is_sep(last) {
        return Err(NameError::EdgeSeparator(part.to_string()));
    }
    let bytes: Vec<char> = part.chars().collect();
    if bytes.windows(2).any(|w| is_sep(w[0]) && is_sep(w[1])) {
        return Err(NameError::DoubleSeparator(part.to_string()));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), NameError> {
    if let Some(c) = path.chars().find(|c| c.is_whitespace()) {
        return Err(NameError::InvalidChar(c));
    }
    path.split('/').try_for_each(check_component)
}

/// The namespace every repository lives under (`crytera` by default).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        check_path(raw)?;
        if raw.len() + 2 > MAX_NAME_LEN {
            return Err(NameError::Length { full: raw.to_string(), len: raw.len() });
        }
        Ok(Self(raw.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full, valid repository name inside the namespace, e.g. `crytera/templateistio`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema), schema(value_type = String))]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    /// Parses what a person typed: the part after `<namespace>/`. A pasted full
    /// name (`crytera/x`) is accepted too: its namespace prefix is removed once.
    pub fn parse(namespace: &Namespace, input: &str) -> Result<Self, NameError> {
        let input = input.trim();
        let rest = input.strip_prefix(namespace.as_str()).and_then(|r| r.strip_prefix('/')).unwrap_or(input);
        if rest.is_empty() {
            return Err(NameError::Empty);
        }
        check_path(rest)?;
        let full = format!("{}/{}", namespace.as_str(), rest);
        let len = full.chars().count();
        if !(MIN_NAME_LEN..=MAX_NAME_LEN).contains(&len) {
            return Err(NameError::Length { full, len });
        }
        Ok(Self(full))
    }

    /// Accepts a full name as stored (used when reading our own records back).
    pub fn parse_full(namespace: &Namespace, full: &str) -> Result<Self, NameError> {
        match full.strip_prefix(namespace.as_str()).and_then(|r| r.strip_prefix('/')) {
            Some(rest) => Self::parse(namespace, rest),
            None => Err(NameError::EdgeSeparator(full.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RepoName {
    type Error = NameError;
    /// Deserialising checks the grammar and length (not the namespace, which
    /// only the service knows).
    fn try_from(full: String) -> Result<Self, NameError> {
        check_path(&full)?;
        let len = full.chars().count();
        if !(MIN_NAME_LEN..=MAX_NAME_LEN).contains(&len) {
            return Err(NameError::Length { full, len });
        }
        Ok(Self(full))
    }
}

impl From<RepoName> for String {
    fn from(n: RepoName) -> String {
        n.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ns() -> Namespace {
        Namespace::parse("crytera").expect("valid namespace")
    }

    #[test]
    fn valid_names_get_the_namespace() {
        for ok in ["templateistio", "templatefargate", "team/app", "a.b_c-d", "x1/y2/z3", "a"] {
            let n = RepoName::parse(&ns(), ok).expect(ok);
            assert_eq!(n.as_str(), format!("crytera/{ok}"));
        }
    }

    #[test]
    fn a_pasted_full_name_is_accepted_once() {
        assert_eq!(RepoName::parse(&ns(), "crytera/app").expect("ok").as_str(), "crytera/app");
        assert_eq!(RepoName::parse(&ns(), "crytera/crytera/app").expect("ok").as_str(), "crytera/crytera/app");
    }

    #[test]
    fn invalid_names_are_refused_with_a_reason() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("   ", NameError::Empty),
            ("App", NameError::Uppercase('A')),
            ("my app", NameError::InvalidChar(' ')),
            ("a$b", NameError::InvalidChar('$')),
            ("a//b", NameError::EmptyComponent),
            ("a/", NameError::EmptyComponent),
            ("/a", NameError::EmptyComponent),
            ("-a", NameError::EdgeSeparator("-a".into())),
            ("a.", NameError::EdgeSeparator("a.".into())),
            ("a..b", NameError::DoubleSeparator("a..b".into())),
            ("a-_b", NameError::DoubleSeparator("a-_b".into())),
        ];
        for (input, want) in cases {
            assert_eq!(RepoName::parse(&ns(), input).as_ref(), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn namespace_escape_attempts_are_refused() {
        for bad in ["../other", "./x", "x/../../y", "..", "/other/x", "crytera/../x", "x/.."] {
            assert!(RepoName::parse(&ns(), bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn length_boundaries_count_the_namespace() {
        let max_rest = MAX_NAME_LEN - "crytera/".len();
        assert!(RepoName::parse(&ns(), &"a".repeat(max_rest)).is_ok());
        let err = RepoName::parse(&ns(), &"a".repeat(max_rest + 1)).expect_err("too long");
        assert!(matches!(err, NameError::Length { len: 257, .. }));
        // A one-letter namespace with a one-letter name is the shortest legal name.
        let short = Namespace::parse("c").expect("ns");
        assert_eq!(RepoName::parse(&short, "a").expect("ok").as_str().len(), 3);
    }

    #[test]
    fn deserialising_checks_the_grammar() {
        assert!(serde_json::from_str::<RepoName>("\"crytera/ok\"").is_ok());
        assert!(serde_json::from_str::<RepoName>("\"crytera/../x\"").is_err());
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,3}"
    }

    proptest! {
        #[test]
        fn every_name_of_the_grammar_is_accepted(parts in prop::collection::vec(component(), 1..4)) {
            let rest = parts.join("/");
            let parsed = RepoName::parse(&ns(), &rest);
            if rest.len() + 8 <= MAX_NAME_LEN {
                let parsed = parsed.expect("valid");
                prop_assert_eq!(parsed.as_str(), format!("crytera/{rest}"));
            }
        }

        #[test]
        fn accepted_names_stay_in_the_namespace_and_in_bounds(input in "\\PC{0,300}") {
            if let Ok(name) = RepoName::parse(&ns(), &input) {
                prop_assert!(name.as_str().starts_with("crytera/"));
                prop_assert!(name.as_str().len() <= MAX_NAME_LEN);
                prop_assert!(!name.as_str().contains(".."));
                prop_assert!(!name.as_str().contains("//"));
                prop_assert!(name.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)));
            }
        }
    }
}
