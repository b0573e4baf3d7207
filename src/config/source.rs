//! Locations in configuration files: every configuration error names `file:LINE:COL:` so a
//! person can jump straight to what must change.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error at a place in a configuration file, rendered as `path:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl std::error::Error for SourceError {}

impl SourceError {
    /// An error about the file at `path` as a whole (it cannot be read, say): reported at 1:1.
    pub fn whole_file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        SourceError {
            path: path.as_ref().to_path_buf(),
            line: 1,
            col: 1,
            message: message.into(),
        }
    }
}

/// A configuration file's text with its path, able to turn byte spans into line and column.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl AsRef<Path>, text: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            text: text.into(),
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let mut line = 1;
        let mut line_start = 0;
        for (i, b) in self.text.as_bytes()[..offset].iter().enumerate() {
            if *b == b'\n' {
                line += 1;
                line_start = i + 1;
            }
        }
        let col = self
            .text
            .get(line_start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    /// An error at the start of `span` (or at 1:1 when there is no span).
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> SourceError {
        let (line, col) = span.map(|s| self.line_col(s.start)).unwrap_or((1, 1));
        SourceError {
            path: self.path.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Parse TOML into `T`, turning the parser's error into `path:line:col: message`, in
    /// words a person can act on (which key is duplicated and where it was first set; what
    /// type was expected, as an example rather than a Rust type name).
    pub fn parse_toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, SourceError> {
        toml::from_str(&self.text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            let message = match e.span() {
                Some(span) if message.starts_with("duplicate key") => self.duplicate(span.start),
                _ => expected_in_words(&message),
            };
            self.error(e.span(), message)
        })
    }

    /// What a duplicate key at `at` is, and where in its table it was first set.
    fn duplicate(&self, at: usize) -> String {
        let rest = &self.text[at.min(self.text.len())..];
        let key: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if key.is_empty() {
            return "duplicate key".into();
        }
        // The table the duplicate is in starts after the last header line before it.
        let before = &self.text[..at.min(self.text.len())];
        let table_start = before.match_indices("\n[").last().map_or(0, |(i, _)| i + 1);
        let first = before[table_start..]
            .match_indices(&key)
            .find_map(|(i, _)| {
                let pos = table_start + i;
                let line_start = self.text[..pos].rfind('\n').map_or(0, |n| n + 1);
                let after = self.text[pos + key.len()..].trim_start();
                (self.text[line_start..pos].trim().is_empty() && after.starts_with('='))
                    .then_some(pos)
            });
        match first {
            Some(pos) => format!(
                "duplicate key `{key}`: it is already set at line {} of this table; keep one",
                self.line_col(pos).0
            ),
            None => format!("duplicate key `{key}`: keep one"),
        }
    }
}

/// The parser's "invalid type: X, expected Y" in words: what was found, and an example of what
/// belongs there instead of a Rust type name.
fn expected_in_words(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let want = match expected.trim() {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number such as 2",
        "a boolean" => "true or false (without quotes)",
        "a string" => "a quoted string such as \"15m\"",
        "a sequence" => "a list such as [\"a\", \"b\"]",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    };
    let found = match found.split_once(' ') {
        Some(("string", v)) => format!("the string {v}"),
        Some(("integer", v)) => format!("the number {v}"),
        Some(("boolean", v)) => v.to_string(),
        _ => found.to_string(),
    };
    format!("expected {want} here, found {found}")
}

/// Several configuration errors at once, one per line, so `airlock check` shows them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceErrors(pub Vec<SourceError>);

impl fmt::Display for SourceErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceErrors {}

impl SourceErrors {
    /// `errs` in reading order: by file, then line, then column.
    pub fn sorted(mut errs: Vec<SourceError>) -> Self {
        errs.sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
        SourceErrors(errs)
    }
}

impl From<SourceError> for SourceErrors {
    fn from(e: SourceError) -> Self {
        SourceErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let f = SourceFile::new("p.toml", "a = 1\nbé = 2\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(f.line_col(9), (2, 3));
        assert_eq!(f.line_col(10_000), (3, 1));
    }

    #[test]
    fn toml_errors_carry_position() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u32,
        }
        let f = SourceFile::new("p.toml", "a = 1\nb = 2\n");
        let e = f.parse_toml::<S>().unwrap_err();
        assert_eq!((e.line, e.col), (2, 1), "{e}");
        assert!(e.to_string().starts_with("p.toml:2:1: "), "{e}");
    }
}
