//! Objects and ops as the SDK publishes them (API.md §11.2): names and how a read names a
//! version.

/// Longest object name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Why an object name is refused, if it is: names are 1 to 128 letters, digits, `_`, `.` or `-`
/// (Unicode letters and digits included), as Weave allows.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Invalid object name: it is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("Invalid object name: longer than {MAX_NAME_CHARS} characters"));
    }
    let mut bad: Vec<char> = name.chars().filter(|c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))).collect();
    bad.dedup();
    (!bad.is_empty()).then(|| format!("Invalid object name: {name}. Contains invalid characters: {bad:?}"))
}

/// How a read names a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The live version with the highest index.
    Latest,
    /// `v<index>`.
    Index(i32),
    /// A content digest.
    Digest(String),
}

impl Version {
    /// `latest`, `v3`, or a digest.
    pub fn parse(text: &str) -> Self {
        if text == "latest" {
            return Self::Latest;
        }
        match text.strip_prefix('v').and_then(|n| n.parse::<i32>().ok()) {
            Some(index) if index >= 0 => Self::Index(index),
            _ => Self::Digest(text.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_word_characters_dots_and_dashes_only() {
        for ok in ["cfg", "My-Model_2.v1", "données", "qa-evaluation"] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
        for bad in ["", "a b", "a/b", "a:b", &"x".repeat(129)] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn versions_are_latest_an_index_or_a_digest() {
        assert_eq!(Version::parse("latest"), Version::Latest);
        assert_eq!(Version::parse("v12"), Version::Index(12));
        assert_eq!(Version::parse("vx"), Version::Digest("vx".into()));
        assert_eq!(Version::parse("abc"), Version::Digest("abc".into()));
    }
}
