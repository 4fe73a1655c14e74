//! Number patterns: exact numbers, Asterisk-style `_` patterns and `/regex/`.

use std::fmt;

/// Longest regex source accepted; dialplans are admin input but stay small and cheap.
const REGEX_SIZE_LIMIT: usize = 1 << 16;

/// A compiled number pattern as written in `match` or `from`.
#[derive(Debug, Clone)]
pub(crate) enum NumberPattern {
    /// Matches exactly this string.
    Exact(String),
    /// `_8XXXX`: one class per character, optionally followed by `.` (one or more) or `!` (zero or more).
    Asterisk {
        source: String,
        classes: Vec<Class>,
        tail: Tail,
    },
    /// `/^8\d{4}$/`: a regular expression; its groups become `${1}`, `${2}`, ...
    Regex(regex::Regex),
}

/// What an Asterisk pattern accepts after its fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing: the number has exactly as many characters as the pattern.
    None,
    /// `.`: one or more further characters.
    OneOrMore,
    /// `!`: zero or more further characters.
    ZeroOrMore,
}

/// A set of characters for one position of an Asterisk pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    /// Bit n set: digit n is in the set.
    digits: u16,
    /// Non-digit characters in the set, sorted.
    others: Vec<char>,
}

impl Class {
    fn digit_range(lo: u8, hi: u8) -> Self {
        let mut digits = 0;
        for d in lo..=hi {
            digits |= 1 << d;
        }
        Class {
            digits,
            others: Vec::new(),
        }
    }

    fn add(&mut self, c: char) {
        if let Some(d) = c.to_digit(10) {
            self.digits |= 1 << d;
        } else if !self.others.contains(&c) {
            self.others.push(c);
            self.others.sort_unstable();
        }
    }

    fn contains(&self, c: char) -> bool {
        match c.to_digit(10) {
            Some(d) => self.digits & (1 << d) != 0,
            None => self.others.contains(&c),
        }
    }

    fn is_empty(&self) -> bool {
        self.digits == 0 && self.others.is_empty()
    }

    fn is_subset_of(&self, other: &Class) -> bool {
        self.digits & !other.digits == 0 && self.others.iter().all(|c| other.others.contains(c))
    }
}

/// Why a pattern cannot be compiled: message and help for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

fn perr(message: impl Into<String>, help: impl Into<String>) -> PatternError {
    PatternError {
        message: message.into(),
        help: Some(help.into()),
    }
}

impl NumberPattern {
    /// Compiles a pattern as written by the admin.
    pub(crate) fn parse(source: &str) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(perr(
                "empty pattern can never match",
                "write a number (\"600\"), a pattern (\"_8XXXX\") or a regex (\"/^8\\\\d{4}$/\")",
            ));
        }
        if let Some(body) = source.strip_prefix('/') {
            let Some(body) = body.strip_suffix('/') else {
                return Err(perr(
                    "regex pattern is missing its closing `/`",
                    "write regexes as \"/^8\\\\d{4}$/\"",
                ));
            };
            return regex::RegexBuilder::new(body)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(NumberPattern::Regex)
                .map_err(|e| PatternError {
                    message: format!("invalid regex: {}", last_line(&e.to_string())),
                    help: Some("the regex syntax is that of the Rust `regex` crate".into()),
                });
        }
        if let Some(body) = source.strip_prefix('_') {
            return parse_asterisk(source, body);
        }
        if source.chars().any(char::is_whitespace) {
            return Err(perr(
                format!("number \"{source}\" contains a space and can never match"),
                "dialled numbers never contain spaces: remove them",
            ));
        }
        Ok(NumberPattern::Exact(source.to_string()))
    }

    /// Whether `number` matches; on a match, the regex groups (empty for other kinds).
    pub(crate) fn matches(&self, number: &str) -> Option<Vec<String>> {
        match self {
            NumberPattern::Exact(s) => (s == number).then(Vec::new),
            NumberPattern::Asterisk { classes, tail, .. } => {
                let mut chars = number.chars();
                for class in classes {
                    match chars.next() {
                        Some(c) if class.contains(c) => {}
                        _ => return None,
                    }
                }
                let rest = chars.count();
                let ok = match tail {
                    Tail::None => rest == 0,
                    Tail::OneOrMore => rest >= 1,
                    Tail::ZeroOrMore => true,
                };
                ok.then(Vec::new)
            }
            NumberPattern::Regex(re) => re.captures(number).map(|caps| {
                caps.iter()
                    .skip(1)
                    .map(|m| m.map_or_else(String::new, |m| m.as_str().to_string()))
                    .collect()
            }),
        }
    }

    /// Number of regex groups, for checking `${n}` references.
    pub(crate) fn groups(&self) -> usize {
        match self {
            NumberPattern::Regex(re) => re.captures_len().saturating_sub(1),
            _ => 0,
        }
    }

    /// True when every number `other` matches is also matched by `self` (false when unsure).
    pub(crate) fn covers(&self, other: &NumberPattern) -> bool {
        match (self, other) {
            (_, NumberPattern::Exact(s)) => self.matches(s).is_some(),
            (
                NumberPattern::Asterisk {
                    classes: a,
                    tail: ta,
                    ..
                },
                NumberPattern::Asterisk {
                    classes: b,
                    tail: tb,
                    ..
                },
            ) => asterisk_covers(a, *ta, b, *tb),
            (NumberPattern::Regex(a), NumberPattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// Inclusion for `_` patterns: position-wise subset, and B's lengths within A's.
fn asterisk_covers(a: &[Class], ta: Tail, b: &[Class], tb: Tail) -> bool {
    let (m, n) = (a.len(), b.len());
    // Every length B accepts must be a length A accepts.
    let b_min = n + usize::from(tb == Tail::OneOrMore);
    let lengths_ok = match (ta, tb) {
        (Tail::None, Tail::None) => m == n,
        (Tail::None, _) => false,
        (Tail::OneOrMore, _) => b_min > m,
        (Tail::ZeroOrMore, _) => b_min >= m,
    };
    if !lengths_ok {
        return false;
    }
    // B's open tail holds any character, which no finite class of A can cover.
    if tb != Tail::None && m > n {
        return false;
    }
    a.iter().zip(b).all(|(ca, cb)| cb.is_subset_of(ca))
}

fn parse_asterisk(source: &str, body: &str) -> Result<NumberPattern, PatternError> {
    let mut classes = Vec::new();
    let mut tail = Tail::None;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if tail != Tail::None {
            return Err(perr(
                format!("pattern \"{source}\" has characters after `.` or `!`"),
                "`.` and `!` match the rest of the number, so they must come last",
            ));
        }
        match c {
            'X' | 'x' => classes.push(Class::digit_range(0, 9)),
            'Z' | 'z' => classes.push(Class::digit_range(1, 9)),
            'N' | 'n' => classes.push(Class::digit_range(2, 9)),
            '.' => tail = Tail::OneOrMore,
            '!' => tail = Tail::ZeroOrMore,
            '[' => {
                let mut class = Class {
                    digits: 0,
                    others: Vec::new(),
                };
                let mut closed = false;
                let mut prev: Option<char> = None;
                while let Some(c) = chars.next() {
                    match c {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '-' if prev.is_some() && chars.peek().is_some_and(|n| *n != ']') => {
                            let lo = prev.and_then(|p| p.to_digit(10));
                            let hi = chars.next().and_then(|h| h.to_digit(10));
                            match (lo, hi) {
                                (Some(lo), Some(hi)) if lo <= hi => {
                                    for d in lo..=hi {
                                        class.digits |= 1 << d;
                                    }
                                }
                                _ => {
                                    return Err(perr(
                                        format!("pattern \"{source}\" has a bad range in `[...]`"),
                                        "ranges go from a lower to a higher digit, like [1-5]",
                                    ));
                                }
                            }
                            prev = None;
                        }
                        c => {
                            class.add(c);
                            prev = Some(c);
                        }
                    }
                }
                if !closed {
                    return Err(perr(
                        format!("pattern \"{source}\" has `[` without `]`"),
                        "close the character set, like _8[1-5]XX",
                    ));
                }
                if class.is_empty() {
                    return Err(perr(
                        format!("pattern \"{source}\" has an empty `[]` and can never match"),
                        "list the allowed digits, like [135] or [1-5]",
                    ));
                }
                classes.push(class);
            }
            c if c.is_whitespace() => {
                return Err(perr(
                    format!("pattern \"{source}\" contains a space and can never match"),
                    "dialled numbers never contain spaces: remove them",
                ));
            }
            c => {
                let mut class = Class {
                    digits: 0,
                    others: Vec::new(),
                };
                class.add(c);
                classes.push(class);
            }
        }
    }
    if classes.is_empty() && tail == Tail::None {
        return Err(perr(
            "pattern \"_\" is empty and can never match",
            "a pattern needs at least one character after `_`, like _X.",
        ));
    }
    Ok(NumberPattern::Asterisk {
        source: source.to_string(),
        classes,
        tail,
    })
}

fn last_line(s: &str) -> &str {
    let last = s.lines().last().unwrap_or(s).trim();
    last.strip_prefix("error:").map_or(last, str::trim)
}

impl fmt::Display for NumberPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberPattern::Exact(s) => f.write_str(s),
            NumberPattern::Asterisk { source, .. } => f.write_str(source),
            NumberPattern::Regex(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> NumberPattern {
        NumberPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn asterisk_classes_match_like_asterisk() {
        let cases = [
            ("_8XXXX", "81234", true),
            ("_8XXXX", "8123", false),
            ("_8XXXX", "812345", false),
            ("_8XXXX", "91234", false),
            ("_0.", "0711", true),
            ("_0.", "0", false),
            ("_0!", "0", true),
            ("_NXX", "199", false),
            ("_NXX", "299", true),
            ("_ZX", "09", false),
            ("_[1-3]5", "25", true),
            ("_[1-3]5", "45", false),
            ("_[*#]X", "*1", true),
            ("_x", "7", true),
        ];
        for (pat, num, want) in cases {
            assert_eq!(p(pat).matches(num).is_some(), want, "{pat} vs {num}");
        }
    }

    #[test]
    fn regex_groups_are_returned() {
        let groups = p(r"/^8(\d)(\d{3})$/").matches("81234");
        assert_eq!(groups, Some(vec!["1".to_string(), "234".to_string()]));
        assert_eq!(p(r"/^8(\d)(\d{3})$/").groups(), 2);
    }

    #[test]
    fn rejects_patterns_that_can_never_match() {
        for bad in [
            "", "_", "_8[]X", "_8[1-", "_8.X", "8 123", "_8 X", "/[/", "/abc", "_[5-1]",
        ] {
            assert!(
                NumberPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn covers_detects_shadowing() {
        assert!(p("_X.").covers(&p("_8XXXX")));
        assert!(p("_8!").covers(&p("_8XXXX")));
        assert!(p("_8XXXX").covers(&p("81234")));
        assert!(p("_[0-9]XXXX").covers(&p("_8XXXX")));
        assert!(!p("_8XXXX").covers(&p("_X.")));
        assert!(!p("_8XXX").covers(&p("_8XXXX")));
        assert!(!p("_8XX.").covers(&p("_8X!")));
        assert!(!p("_0.").covers(&p("0")));
        assert!(p("_0!").covers(&p("0")));
        assert!(!p("600").covers(&p("601")));
    }

    proptest! {
        #[test]
        fn covers_is_sound(a in "_[0-9XNZ\\[\\]\\-]{1,4}[.!]?", b in "_[0-9XNZ]{1,5}[.!]?", num in "[0-9]{1,7}") {
            if let (Ok(a), Ok(b)) = (NumberPattern::parse(&a), NumberPattern::parse(&b))
                && a.covers(&b)
                && b.matches(&num).is_some()
            {
                prop_assert!(a.matches(&num).is_some());
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = NumberPattern::parse(&s);
        }
    }
}
