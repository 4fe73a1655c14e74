//! Small helpers to read a spanned toml tree and report type errors at the exact value.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Reporter, did_you_mean};

/// A value with its byte span in the source.
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// A string with its byte span, detached from the toml tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpannedStr {
    pub(crate) text: String,
    pub(crate) span: Range<usize>,
}

/// The TOML type name the admin wrote, for "expected X, found Y".
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date/time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// Reports a type mismatch at `v`.
pub(crate) fn wrong_type(
    r: &mut Reporter<'_>,
    v: &Val<'_>,
    what: &str,
    expected: &str,
    example: &str,
) {
    r.error(
        v.span(),
        format!(
            "{what} must be {expected}, found {}",
            type_name(v.get_ref())
        ),
        Some(format!("for example: {example}")),
    );
}

/// The value as a string, or an error at it.
pub(crate) fn string(
    r: &mut Reporter<'_>,
    v: &Val<'_>,
    what: &str,
    example: &str,
) -> Option<SpannedStr> {
    match v.get_ref() {
        DeValue::String(s) => Some(SpannedStr {
            text: s.to_string(),
            span: v.span(),
        }),
        _ => {
            wrong_type(r, v, what, "a string", example);
            None
        }
    }
}

/// The value as a table, or an error at it.
pub(crate) fn table<'a, 'i>(
    r: &mut Reporter<'_>,
    v: &'a Val<'i>,
    what: &str,
    example: &str,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            wrong_type(r, v, what, "a table", example);
            None
        }
    }
}

/// The value as a boolean, or an error at it.
pub(crate) fn boolean(r: &mut Reporter<'_>, v: &Val<'_>, what: &str) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            wrong_type(r, v, what, "true or false", &format!("{what} = true"));
            None
        }
    }
}

/// The value as an integer within `range`, or an error at it.
pub(crate) fn integer(
    r: &mut Reporter<'_>,
    v: &Val<'_>,
    what: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    let DeValue::Integer(i) = v.get_ref() else {
        wrong_type(
            r,
            v,
            what,
            "a whole number",
            &format!("{what} = {}", range.start()),
        );
        return None;
    };
    match i64::from_str_radix(i.as_str(), i.radix()) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            r.error(
                v.span(),
                format!(
                    "{what} must be between {} and {}",
                    range.start(),
                    range.end()
                ),
                None,
            );
            None
        }
    }
}

/// A string or a list of strings, flattened.
pub(crate) fn strings(
    r: &mut Reporter<'_>,
    v: &Val<'_>,
    what: &str,
    example: &str,
) -> Option<Vec<SpannedStr>> {
    match v.get_ref() {
        DeValue::String(_) => string(r, v, what, example).map(|s| vec![s]),
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(string(r, item, what, example)?);
            }
            if out.is_empty() {
                r.error(
                    v.span(),
                    format!("{what} is an empty list"),
                    Some(format!("for example: {example}")),
                );
                return None;
            }
            Some(out)
        }
        _ => {
            wrong_type(r, v, what, "a string or a list of strings", example);
            None
        }
    }
}

/// Reports a key that is not one of `allowed`, with the nearest allowed key as help.
pub(crate) fn unknown_key(
    r: &mut Reporter<'_>,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    allowed: &[&str],
    context: &str,
) {
    let name: &str = key.get_ref();
    let help = match did_you_mean(name, allowed.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? Allowed here: {}", allowed.join(", ")),
        None => format!("allowed here: {}", allowed.join(", ")),
    };
    r.error(
        key.span(),
        format!("unknown key `{name}` in {context}"),
        Some(help),
    );
}
