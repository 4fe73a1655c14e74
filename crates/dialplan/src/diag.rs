//! Diagnostics with file:line:column, and the helpers that map toml byte spans to them.

use std::fmt;
use std::ops::Range;

/// How bad a finding is: errors stop a dialplan from taking effect, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The dialplan is rejected; the previous one keeps running.
    Error,
    /// The dialplan is accepted, but probably not what the admin meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding of `check`: where (1-based line and column, in characters), what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Path of the file as the caller passed it in `SourceFile::path`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.severity, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// 1-based (line, column) of a byte offset; offsets past the end or inside a character clamp.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Collects diagnostics for one file, turning byte spans into line:column.
pub(crate) struct Reporter<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    pub(crate) out: &'a mut Vec<Diagnostic>,
}

impl Reporter<'_> {
    /// Records an error at `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        self.push(Severity::Error, span, message, help);
    }

    /// Records a warning at `span`.
    pub(crate) fn warning(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        self.push(Severity::Warning, span, message, help);
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) {
        let (line, column) = line_col(self.text, span.start);
        self.out.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            line,
            column,
            message,
            help,
        });
    }
}

/// The closest candidate to a misspelt word, for "did you mean" help.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a = 1\nä = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "ä" is two bytes; the "=" after it is the third character.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 1000), (3, 1));
    }

    #[test]
    fn suggests_nearest_name_only_when_close() {
        assert_eq!(did_you_mean("anwser", ["answer", "hangup"]), Some("answer"));
        assert_eq!(did_you_mean("zzzzzz", ["answer", "hangup"]), None);
    }

    #[test]
    fn display_puts_help_on_its_own_line() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: "a.toml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
            help: Some("fix it".into()),
        };
        assert_eq!(d.to_string(), "a.toml:3:7: error: bad\n  help: fix it");
    }
}
