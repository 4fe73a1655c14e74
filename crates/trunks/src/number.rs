//! Phone numbers: E.164, what carriers deliver and users dial, and what a trunk wants sent.
//!
//! Every path goes through one [`Explainer`] that records the rule each step applied, so
//! `normalise` and `explain` cannot disagree: the plain functions are the explaining ones with
//! the steps dropped.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::class::Classified;

/// Longest input looked at; beyond this a "number" is garbage (E.164 has at most 15 digits,
/// and even generously written with separators fits in far less).
pub const MAX_INPUT_LEN: usize = 64;
/// Fewest digits of an E.164 number: the shortest national numbers in the ITU list (e.g. Saint
/// Helena, +290 and four digits) have seven in all.
pub const MIN_E164_DIGITS: usize = 7;
/// Most digits of an E.164 number (ITU-T E.164 §6.1).
pub const MAX_E164_DIGITS: usize = 15;
/// The European emergency number and the German police; always emergency calls, whatever the
/// configuration says.
pub const FIXED_EMERGENCY_NUMBERS: [&str; 2] = ["110", "112"];
/// What `emergency-numbers` is when not configured: the authorities' number 115, card blocking
/// 116116 and the medical on-call service 116117.
pub const DEFAULT_EMERGENCY_NUMBERS: [&str; 3] = ["115", "116116", "116117"];

/// Why a text is not a usable phone number or code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing but blanks and separators.
    #[error("no digits")]
    Empty,
    /// Longer than [`MAX_INPUT_LEN`] characters.
    #[error("{len} characters is too long for a phone number")]
    InputTooLong {
        /// Length in bytes.
        len: usize,
    },
    /// A character that is neither a digit nor a separator.
    #[error("{character:?} is not allowed in a phone number")]
    InvalidCharacter {
        /// The first offending character.
        character: char,
    },
    /// `+` anywhere but at the start.
    #[error("`+` may only stand at the start")]
    MisplacedPlus,
    /// Not `+…` where only international form will do.
    #[error("{0} is not in international form (+ and country code)")]
    NotInternational(String),
    /// Fewer than [`MIN_E164_DIGITS`] digits in international form.
    #[error("{number} is too short for a full number ({MIN_E164_DIGITS} digits at least)")]
    TooShort {
        /// The number in international form.
        number: String,
    },
    /// More than [`MAX_E164_DIGITS`] digits in international form.
    #[error("{number} is too long ({MAX_E164_DIGITS} digits at most)")]
    TooLong {
        /// The number in international form.
        number: String,
    },
    /// `+0…` or `000…`: country codes never start with 0.
    #[error("{number}: country codes do not start with 0")]
    CountryCodeZero {
        /// The number in international form.
        number: String,
    },
    /// A subscriber number without prefix, but no area code is configured.
    #[error("{digits} is a local number, but no area code is configured to complete it")]
    NoAreaCode {
        /// The digits given.
        digits: String,
    },
    /// Not a valid country code.
    #[error("country code {0:?} must be 1 to 3 digits not starting with 0, without + or 00")]
    BadCountryCode(String),
    /// Not a valid area code.
    #[error(
        "area code {0:?} must be 1 to 5 digits without the national prefix 0 (for 0711 write \"711\")"
    )]
    BadAreaCode(String),
    /// Not `200-299` or `600`.
    #[error(
        "extension range {0:?} must be digits like \"600\" or a range of equally long numbers like \"200-299\""
    )]
    BadExtensionRange(String),
    /// An extension range starting with 0, which users dial for national numbers.
    #[error("extension range {0:?} starts with 0, which is the national prefix")]
    ExtensionStartsWithZero(String),
}

/// A number in E.164 international format: `+`, then 7 to 15 digits, not starting with 0.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct E164(String);

impl E164 {
    /// Checks `+digits` (no separators; use [`TrunkNumbers::inbound`] or
    /// [`Numbering::dialled`] for what people write).
    pub fn new(text: &str) -> Result<Self, NumberError> {
        let digits = text
            .strip_prefix('+')
            .ok_or_else(|| NumberError::NotInternational(text.to_string()))?;
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(NumberError::InvalidCharacter { character: c });
        }
        let number = || text.to_string();
        if digits.starts_with('0') {
            return Err(NumberError::CountryCodeZero { number: number() });
        }
        if digits.len() < MIN_E164_DIGITS {
            return Err(NumberError::TooShort { number: number() });
        }
        if digits.len() > MAX_E164_DIGITS {
            return Err(NumberError::TooLong { number: number() });
        }
        Ok(Self(text.to_string()))
    }

    /// The number with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The national significant number when the number is in `country`, else `None`.
    pub fn national(&self, country: &CountryCode) -> Option<&str> {
        self.digits().strip_prefix(country.as_str())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for E164 {
    type Err = NumberError;

    /// Reads `+49 711 1234-0` and `+49 (0)711 12340`: separators are removed, but the number
    /// must be in international form.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut ex = Explainer::default();
        E164::new(&ex.clean(text, Chars::Number)?)
    }
}

/// Whether `text` is 1 to `max` digits not starting with 0: the shape of country codes, area
/// codes and short codes, none of which may start with a prefix digit.
pub(crate) fn code_digits(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text.bytes().all(|c| c.is_ascii_digit())
        && !text.starts_with('0')
}

/// A country calling code without `+` or `00` (`49`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountryCode(String);

impl CountryCode {
    /// Germany, `49`.
    pub fn germany() -> Self {
        Self("49".into())
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CountryCode {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        code_digits(text, 3)
            .then(|| Self(text.to_string()))
            .ok_or_else(|| NumberError::BadCountryCode(text.to_string()))
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An area code (Ortsnetzkennzahl) without the national prefix 0 (`711` for Stuttgart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AreaCode(String);

impl AreaCode {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AreaCode {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        code_digits(text, 5)
            .then(|| Self(text.to_string()))
            .ok_or_else(|| NumberError::BadAreaCode(text.to_string()))
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Internal numbers `low..=high`, all of the same length (`200-299`, or `600` alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRange {
    low: String,
    high: String,
}

impl ExtensionRange {
    /// Whether `digits` is one of these extensions.
    pub fn contains(&self, digits: &str) -> bool {
        // Equal-length digit strings compare like the numbers they spell.
        digits.len() == self.low.len()
            && digits.bytes().all(|c| c.is_ascii_digit())
            && self.low.as_str() <= digits
            && digits <= self.high.as_str()
    }
}

impl FromStr for ExtensionRange {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || NumberError::BadExtensionRange(text.to_string());
        let (low, high) = text.split_once('-').unwrap_or((text, text));
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(low) || !digits(high) || low.len() != high.len() || low > high {
            return Err(bad());
        }
        if low.starts_with('0') {
            return Err(NumberError::ExtensionStartsWithZero(text.to_string()));
        }
        Ok(Self {
            low: low.to_string(),
            high: high.to_string(),
        })
    }
}

impl fmt::Display for ExtensionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            f.write_str(&self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// What a user dialled, after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialled {
    /// An extension or a feature code (`*…`, `…#`): handled inside, never sent to a trunk.
    Internal(String),
    /// A service short code (110, 112, 115, 116xxx, 118xx): sent to the trunk as dialled.
    ShortCode(String),
    /// A full number.
    E164(E164),
}

impl fmt::Display for Dialled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dialled::Internal(n) => write!(f, "internal {n}"),
            Dialled::ShortCode(n) => f.write_str(n),
            Dialled::E164(n) => n.fmt(f),
        }
    }
}

/// The site's numbering: who we are in the phone network and which numbers are internal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbering {
    /// Our country (`49`).
    pub country_code: CountryCode,
    /// Our area code (`711`); without it, subscriber numbers dialled without prefix are refused.
    pub area_code: Option<AreaCode>,
    /// Internal numbers; dialled digits in one of these ranges stay inside.
    pub extensions: Vec<ExtensionRange>,
    /// Short codes treated as emergency calls besides 110 and 112.
    pub emergency_numbers: Vec<String>,
}

impl Default for Numbering {
    /// Germany, no area code, no extensions, [`DEFAULT_EMERGENCY_NUMBERS`].
    fn default() -> Self {
        Self {
            country_code: CountryCode::germany(),
            area_code: None,
            extensions: Vec::new(),
            emergency_numbers: DEFAULT_EMERGENCY_NUMBERS.map(String::from).to_vec(),
        }
    }
}

impl Numbering {
    /// Normalises and classifies what a user dialled.
    pub fn dialled(&self, input: &str) -> Result<Classified, NumberError> {
        self.explain_dialled(input).result
    }

    /// [`Numbering::dialled`] with every step it took, for `dialplan explain`.
    pub fn explain_dialled(&self, input: &str) -> Explanation<Classified> {
        let mut ex = Explainer::default();
        let result = self
            .dialled_steps(&mut ex, input)
            .map(|dialled| self.classify(dialled));
        ex.finish(input, result)
    }

    /// Whether `code` (digits only) is an emergency number here.
    pub fn is_emergency(&self, code: &str) -> bool {
        FIXED_EMERGENCY_NUMBERS.contains(&code) || self.emergency_numbers.iter().any(|e| e == code)
    }

    /// The extension range `digits` falls in.
    pub fn extension(&self, digits: &str) -> Option<&ExtensionRange> {
        self.extensions.iter().find(|r| r.contains(digits))
    }

    fn dialled_steps(&self, ex: &mut Explainer, input: &str) -> Result<Dialled, NumberError> {
        let clean = ex.clean(input, Chars::Dialled)?;
        // Emergency first: no extension range or prefix rule may ever swallow 110 or 112.
        if self.is_emergency(&clean) {
            ex.step(
                NumberRule::Emergency,
                format!("{clean} is an emergency number: sent as dialled"),
            );
            return Ok(Dialled::ShortCode(clean));
        }
        // People used to pressing 0 for an outside line do so in a panic, too. 0110 and 0112
        // are no German numbers (011 is unassigned), so nothing else is lost.
        if let Some(code) = clean
            .strip_prefix('0')
            .filter(|c| FIXED_EMERGENCY_NUMBERS.contains(c))
        {
            ex.step(
                NumberRule::Emergency,
                format!("0{code} is emergency number {code} after the outside-line 0"),
            );
            return Ok(Dialled::ShortCode(code.to_string()));
        }
        if clean.contains(['*', '#']) {
            ex.step(
                NumberRule::FeatureCode,
                format!("{clean} contains * or #: a feature code, handled inside"),
            );
            return Ok(Dialled::Internal(clean));
        }
        if let Some(range) = self.extension(&clean) {
            ex.step(
                NumberRule::Extension,
                format!("{clean} is in extension range {range}"),
            );
            return Ok(Dialled::Internal(clean));
        }
        if let Some(n) = ex.international(&clean, &self.country_code) {
            return n.map(Dialled::E164);
        }
        if clean.starts_with("11") {
            ex.step(
                NumberRule::ServiceCode,
                format!("{clean} starts with 11, the German service codes: sent as dialled"),
            );
            return Ok(Dialled::ShortCode(clean));
        }
        ex.subscriber(&clean, &self.country_code, self.area_code.as_ref())
            .map(Dialled::E164)
    }
}

/// How a trunk wants numbers written in the requests we send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NumberFormat {
    /// `+49711…` (the default: unambiguous, and what German carriers' SIP trunks accept).
    #[default]
    E164,
    /// `0049711…`.
    International,
    /// `0711…` in our country, `00…` abroad.
    National,
    /// `1234…` in our area, `0711…` in our country, `00…` abroad.
    Local,
}

/// A block of direct-dial numbers: `base` followed by `extension_digits` digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidBlock {
    /// The block's number without the extension digits (`+497111234`).
    pub base: E164,
    /// How many digits follow (`2` for 00 to 99).
    pub extension_digits: u8,
}

/// One trunk's number handling: reading what it delivers, writing what it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkNumbers {
    /// The country the trunk's numbers are in.
    pub country_code: CountryCode,
    /// The area a subscriber number without prefix is in.
    pub area_code: Option<AreaCode>,
    /// Our direct-dial block on this trunk, if the carrier may deliver bare extension digits.
    pub did_block: Option<DidBlock>,
    /// How to write numbers we send.
    pub format: NumberFormat,
}

impl TrunkNumbers {
    /// Numbers in `numbering`'s country and area, no DID block, E.164 outbound.
    pub fn of_site(numbering: &Numbering) -> Self {
        Self {
            country_code: numbering.country_code.clone(),
            area_code: numbering.area_code.clone(),
            did_block: None,
            format: NumberFormat::E164,
        }
    }

    /// A called or calling number as the carrier delivered it, in E.164.
    pub fn inbound(&self, input: &str) -> Result<E164, NumberError> {
        self.explain_inbound(input).result
    }

    /// [`TrunkNumbers::inbound`] with every step it took.
    pub fn explain_inbound(&self, input: &str) -> Explanation<E164> {
        let mut ex = Explainer::default();
        let result = self.inbound_steps(&mut ex, input);
        ex.finish(input, result)
    }

    fn inbound_steps(&self, ex: &mut Explainer, input: &str) -> Result<E164, NumberError> {
        let clean = ex.clean(input, Chars::Number)?;
        // Before the prefix rules: extensions often start with 0 (the switchboard is -0 or
        // -00), and so short a string is never a full number with a prefix.
        if let Some(block) = self.did_block.as_ref().filter(|b| {
            clean.len() == usize::from(b.extension_digits)
                && clean.bytes().all(|c| c.is_ascii_digit())
        }) {
            let n = E164::new(&format!("{}{clean}", block.base));
            if let Ok(n) = &n {
                ex.step(
                    NumberRule::DidExtension,
                    format!("{clean} is an extension in block {}: {n}", block.base),
                );
            }
            return n;
        }
        if let Some(n) = ex.international(&clean, &self.country_code) {
            return n;
        }
        ex.subscriber(&clean, &self.country_code, self.area_code.as_ref())
    }

    /// `number` written as this trunk wants it.
    pub fn format(&self, number: &E164) -> String {
        let abroad = || format!("00{}", number.digits());
        let national = number.national(&self.country_code);
        match self.format {
            NumberFormat::E164 => number.to_string(),
            NumberFormat::International => abroad(),
            NumberFormat::National => national.map_or_else(abroad, |n| format!("0{n}")),
            NumberFormat::Local => match national {
                Some(n) => match self
                    .area_code
                    .as_ref()
                    .and_then(|a| n.strip_prefix(a.as_str()))
                {
                    Some(subscriber) if !subscriber.is_empty() => subscriber.to_string(),
                    _ => format!("0{n}"),
                },
                None => abroad(),
            },
        }
    }

    /// What to put in the Request-URI for a dialled number; `None` for internal numbers.
    pub fn dial_string(&self, dialled: &Dialled) -> Option<String> {
        match dialled {
            Dialled::Internal(_) => None,
            Dialled::ShortCode(code) => Some(code.clone()),
            Dialled::E164(n) => Some(self.format(n)),
        }
    }
}

/// Which rule a normalisation step applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberRule {
    /// Spaces, dashes, dots, slashes and parentheses removed.
    Separators,
    /// The `(0)` of `+49 (0)711 …` dropped: it is dialled only from inside the country.
    WrittenZero,
    /// Already `+…`.
    Plus,
    /// International prefix `00` replaced by `+`.
    InternationalPrefix,
    /// National prefix `0` replaced by `+` and the country code.
    NationalPrefix,
    /// A subscriber number completed with country and area code.
    Subscriber,
    /// Extension digits completed with the trunk's DID block.
    DidExtension,
    /// One of the site's extension ranges.
    Extension,
    /// `*` or `#`: a feature code.
    FeatureCode,
    /// An emergency number.
    Emergency,
    /// Another German service short code (`11…`).
    ServiceCode,
}

impl fmt::Display for NumberRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberRule::Separators => "separators",
            NumberRule::WrittenZero => "written-zero",
            NumberRule::Plus => "plus",
            NumberRule::InternationalPrefix => "international-prefix",
            NumberRule::NationalPrefix => "national-prefix",
            NumberRule::Subscriber => "subscriber",
            NumberRule::DidExtension => "did-extension",
            NumberRule::Extension => "extension",
            NumberRule::FeatureCode => "feature-code",
            NumberRule::Emergency => "emergency",
            NumberRule::ServiceCode => "service-code",
        })
    }
}

/// One step of a normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The rule applied.
    pub rule: NumberRule,
    /// What it did, in words, with the number after it.
    pub detail: String,
}

/// A normalisation with its steps, for `dialplan explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<T> {
    /// The text as given.
    pub input: String,
    /// The rules applied, in order.
    pub steps: Vec<Step>,
    /// The outcome.
    pub result: Result<T, NumberError>,
}

impl<T> Explanation<T> {
    /// The rules applied, in order.
    pub fn rules(&self) -> Vec<NumberRule> {
        self.steps.iter().map(|s| s.rule).collect()
    }
}

impl<T: fmt::Display> fmt::Display for Explanation<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}", self.input)?;
        for s in &self.steps {
            writeln!(f, "  {}: {}", s.rule, s.detail)?;
        }
        match &self.result {
            Ok(v) => write!(f, "  => {v}"),
            Err(e) => write!(f, "  => not a number: {e}"),
        }
    }
}

/// Which characters besides digits and separators an input may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chars {
    /// A carrier's number: digits and a leading `+`.
    Number,
    /// A user's dialling: also `*` and `#`.
    Dialled,
}

/// Records the steps of one normalisation.
#[derive(Default)]
struct Explainer {
    steps: Vec<Step>,
}

impl Explainer {
    fn step(&mut self, rule: NumberRule, detail: String) {
        self.steps.push(Step { rule, detail });
    }

    fn finish<T>(self, input: &str, result: Result<T, NumberError>) -> Explanation<T> {
        Explanation {
            input: input.to_string(),
            steps: self.steps,
            result,
        }
    }

    /// Digits (and a leading `+`, `*`, `#`) without the separators people write.
    fn clean(&mut self, input: &str, chars: Chars) -> Result<String, NumberError> {
        if input.len() > MAX_INPUT_LEN {
            return Err(NumberError::InputTooLong { len: input.len() });
        }
        let text = input.trim();
        let international = text.starts_with('+') || text.starts_with("00");
        let text = match text.split_once("(0)") {
            Some((before, after)) if international => {
                let dropped = format!("{before}{after}");
                self.step(
                    NumberRule::WrittenZero,
                    format!("dropped the (0) between country and area code: {dropped}"),
                );
                dropped
            }
            _ => text.to_string(),
        };
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '0'..='9' => out.push(c),
                '*' | '#' if chars == Chars::Dialled => out.push(c),
                '+' if out.is_empty() => out.push(c),
                '+' => return Err(NumberError::MisplacedPlus),
                ' ' | '\t' | '\u{a0}' | '-' | '.' | '/' | '(' | ')' => {}
                other => return Err(NumberError::InvalidCharacter { character: other }),
            }
        }
        if out.is_empty() || out == "+" {
            return Err(NumberError::Empty);
        }
        if out != text {
            self.step(NumberRule::Separators, format!("removed separators: {out}"));
        }
        Ok(out)
    }

    /// `+…`, `00…` and `0…` to E.164; `None` for a number without prefix.
    fn international(
        &mut self,
        clean: &str,
        country: &CountryCode,
    ) -> Option<Result<E164, NumberError>> {
        let (rule, number) = if clean.starts_with('+') {
            (NumberRule::Plus, clean.to_string())
        } else if let Some(rest) = clean.strip_prefix("00") {
            (NumberRule::InternationalPrefix, format!("+{rest}"))
        } else if let Some(rest) = clean.strip_prefix('0') {
            (NumberRule::NationalPrefix, format!("+{country}{rest}"))
        } else {
            return None;
        };
        let result = E164::new(&number);
        if let Ok(n) = &result {
            self.step(
                rule,
                match rule {
                    NumberRule::Plus => format!("{n} is in international format"),
                    NumberRule::InternationalPrefix => {
                        format!("00 is the international prefix: {n}")
                    }
                    _ => format!("0 is the national prefix, country code {country}: {n}"),
                },
            );
        }
        Some(result)
    }

    /// A subscriber number without prefix, completed with our area code.
    fn subscriber(
        &mut self,
        clean: &str,
        country: &CountryCode,
        area: Option<&AreaCode>,
    ) -> Result<E164, NumberError> {
        let area = area.ok_or_else(|| NumberError::NoAreaCode {
            digits: clean.to_string(),
        })?;
        let n = E164::new(&format!("+{country}{area}{clean}"))?;
        self.step(
            NumberRule::Subscriber,
            format!("{clean} is a subscriber number in area code {area}: {n}"),
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::class::CallClass;

    fn site() -> Numbering {
        Numbering {
            area_code: Some("711".parse().unwrap()),
            extensions: vec!["200-299".parse().unwrap(), "600".parse().unwrap()],
            ..Numbering::default()
        }
    }

    fn stuttgart(format: NumberFormat) -> TrunkNumbers {
        TrunkNumbers {
            did_block: Some(DidBlock {
                base: E164::new("+497111234").unwrap(),
                extension_digits: 2,
            }),
            format,
            ..TrunkNumbers::of_site(&site())
        }
    }

    fn inbound(input: &str) -> Result<String, NumberError> {
        stuttgart(NumberFormat::E164)
            .inbound(input)
            .map(|n| n.to_string())
    }

    fn dialled(input: &str) -> (String, CallClass) {
        let c = site()
            .dialled(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"));
        (c.dialled.to_string(), c.class)
    }

    #[test]
    fn inbound_reads_every_form_german_carriers_deliver() {
        for (input, want) in [
            ("+4971112345", "+4971112345"),
            ("004971112345", "+4971112345"),
            ("071112345", "+4971112345"),
            ("12345", "+4971112345"),
            ("05", "+49711123405"),
            ("+33 1 23 45 67 89", "+33123456789"),
            ("0033123456789", "+33123456789"),
            ("030 1234567", "+49301234567"),
        ] {
            assert_eq!(inbound(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn inbound_ignores_spaces_dashes_slashes_dots_and_parentheses() {
        for input in [
            "+49 711 123-45",
            "(0711) 12345",
            "0711/12345",
            "0711.123.45",
            " \t0711 - 1 23 45 ",
            "+49 (0)711 12345",
            "0049 (0) 711 12345",
            "+49\u{a0}711\u{a0}12345",
        ] {
            assert_eq!(inbound(input).as_deref(), Ok("+4971112345"), "{input:?}");
        }
    }

    #[test]
    fn written_zero_is_kept_in_a_national_number() {
        // "(0)" only means "dial 0 from inside the country" after a country code.
        assert_eq!(inbound("(0)711 12345").as_deref(), Ok("+4971112345"));
        let ex = stuttgart(NumberFormat::E164).explain_inbound("(0)711 12345");
        assert_eq!(
            ex.rules(),
            [NumberRule::Separators, NumberRule::NationalPrefix]
        );
    }

    #[test]
    fn inbound_refuses_what_is_not_a_number() {
        assert_eq!(inbound(""), Err(NumberError::Empty));
        assert_eq!(inbound(" - () "), Err(NumberError::Empty));
        assert_eq!(inbound("+"), Err(NumberError::Empty));
        assert_eq!(
            inbound("anonymous"),
            Err(NumberError::InvalidCharacter { character: 'a' })
        );
        assert_eq!(
            inbound("*31#0711"),
            Err(NumberError::InvalidCharacter { character: '*' })
        );
        assert_eq!(inbound("+49+711123"), Err(NumberError::MisplacedPlus));
        assert_eq!(inbound("0711+123"), Err(NumberError::MisplacedPlus));
        assert_eq!(
            inbound("+0711123456"),
            Err(NumberError::CountryCodeZero {
                number: "+0711123456".into()
            })
        );
        assert_eq!(
            inbound("000711123456"),
            Err(NumberError::CountryCodeZero {
                number: "+0711123456".into()
            })
        );
        assert_eq!(
            inbound("0711"),
            Err(NumberError::TooShort {
                number: "+49711".into()
            })
        );
        assert_eq!(
            inbound("+49 711 1234 5678 9012"),
            Err(NumberError::TooLong {
                number: "+497111234567890 12".replace(' ', "")
            })
        );
        let long = "1".repeat(MAX_INPUT_LEN + 1);
        assert_eq!(inbound(&long), Err(NumberError::InputTooLong { len: 65 }));
    }

    #[test]
    fn subscriber_number_without_area_code_is_an_error() {
        let numbers = TrunkNumbers::of_site(&Numbering::default());
        assert_eq!(
            numbers.inbound("12345"),
            Err(NumberError::NoAreaCode {
                digits: "12345".into()
            })
        );
        // Prefixed numbers need no area code.
        assert_eq!(
            numbers.inbound("0711 12345").unwrap().as_str(),
            "+4971112345"
        );
    }

    #[test]
    fn did_digits_need_a_block_and_the_exact_length() {
        let no_block = TrunkNumbers::of_site(&site());
        assert_eq!(
            no_block.inbound("05"),
            Err(NumberError::TooShort {
                number: "+495".into()
            })
        );
        assert_eq!(no_block.inbound("42").unwrap().as_str(), "+4971142");
        let block = stuttgart(NumberFormat::E164);
        assert_eq!(block.inbound("00").unwrap().as_str(), "+49711123400");
        // "+1" has the block's length but is no extension.
        assert_eq!(
            block.inbound("+1"),
            Err(NumberError::TooShort {
                number: "+1".into()
            })
        );
        // Three digits with a two-digit block: a (short) subscriber number, not an extension.
        let ex = stuttgart(NumberFormat::E164).explain_inbound("123");
        assert_eq!(ex.rules(), [NumberRule::Subscriber]);
    }

    #[test]
    fn inbound_explanation_names_each_rule() {
        let numbers = stuttgart(NumberFormat::E164);
        assert_eq!(
            numbers.explain_inbound("0049 711 12345").rules(),
            [NumberRule::Separators, NumberRule::InternationalPrefix]
        );
        assert_eq!(
            numbers.explain_inbound("+49 (0)711 12345").rules(),
            [
                NumberRule::WrittenZero,
                NumberRule::Separators,
                NumberRule::Plus
            ]
        );
        assert_eq!(
            numbers.explain_inbound("42").rules(),
            [NumberRule::DidExtension]
        );
        assert_eq!(
            numbers.explain_inbound("0711 12345").to_string(),
            "\"0711 12345\"\n  separators: removed separators: 071112345\n  national-prefix: 0 is the national prefix, country code 49: +4971112345\n  => +4971112345"
        );
        assert_eq!(
            numbers.explain_inbound("x").to_string(),
            "\"x\"\n  => not a number: 'x' is not allowed in a phone number"
        );
    }

    #[test]
    fn outbound_writes_each_format() {
        let local = E164::new("+4971198765").unwrap();
        let berlin = E164::new("+49301234567").unwrap();
        let paris = E164::new("+33123456789").unwrap();
        let table = [
            (
                NumberFormat::E164,
                ["+4971198765", "+49301234567", "+33123456789"],
            ),
            (
                NumberFormat::International,
                ["004971198765", "0049301234567", "0033123456789"],
            ),
            (
                NumberFormat::National,
                ["071198765", "0301234567", "0033123456789"],
            ),
            (
                NumberFormat::Local,
                ["98765", "0301234567", "0033123456789"],
            ),
        ];
        for (format, want) in table {
            let t = stuttgart(format);
            assert_eq!(
                [t.format(&local), t.format(&berlin), t.format(&paris)],
                want,
                "{format:?}"
            );
        }
    }

    #[test]
    fn dial_string_sends_short_codes_as_dialled_and_keeps_internal_numbers_inside() {
        let t = stuttgart(NumberFormat::National);
        let dial = |s: &str| t.dial_string(&site().dialled(s).unwrap().dialled);
        assert_eq!(dial("112").as_deref(), Some("112"));
        assert_eq!(dial("0112").as_deref(), Some("112"));
        assert_eq!(dial("116117").as_deref(), Some("116117"));
        assert_eq!(dial("+49 711 98765").as_deref(), Some("071198765"));
        assert_eq!(dial("250"), None);
        assert_eq!(dial("*99"), None);
    }

    #[test]
    fn dialled_numbers_normalise_and_classify() {
        for (input, want, class) in [
            ("0711 1234", "+497111234", CallClass::Local),
            ("1234", "+497111234", CallClass::Local),
            ("98 76 54", "+49711987654", CallClass::Local),
            ("+49 711 1234", "+497111234", CallClass::Local),
            ("030 1234567", "+49301234567", CallClass::National),
            ("0049 30 1234567", "+49301234567", CallClass::National),
            ("0171 1234567", "+491711234567", CallClass::Mobile),
            ("0152-12345678", "+4915212345678", CallClass::Mobile),
            ("0160 1234567", "+491601234567", CallClass::Mobile),
            (
                "00 33 1 23 45 67 89",
                "+33123456789",
                CallClass::International,
            ),
            (
                "+33 1 23 45 67 89",
                "+33123456789",
                CallClass::International,
            ),
            (
                "+1 (212) 555-0100",
                "+12125550100",
                CallClass::International,
            ),
            ("0800 1234567", "+498001234567", CallClass::Special),
            ("0180 5 123456", "+491805123456", CallClass::SharedCost),
            ("0700 12345678", "+4970012345678", CallClass::SharedCost),
            ("0900 1 234567", "+499001234567", CallClass::Premium),
            ("0137 1234567", "+491371234567", CallClass::Premium),
            ("0190 123456", "+49190123456", CallClass::Premium),
            ("01010 0711 1234", "+49101007111234", CallClass::Premium),
            ("0181 1234567", "+491811234567", CallClass::Premium),
            ("0032 221234567", "+32221234567", CallClass::International),
            ("032 12345678", "+493212345678", CallClass::National),
            ("00 881 612345678", "+881612345678", CallClass::Premium),
            ("00 882 1234567", "+8821234567", CallClass::Premium),
        ] {
            assert_eq!(dialled(input), (want.to_string(), class), "{input}");
        }
    }

    #[test]
    fn area_codes_of_our_prefix_length_are_not_local() {
        // 07111 does not exist (area codes are prefix-free), but a number starting 0711 is ours
        // and one starting 0712 is not.
        assert_eq!(dialled("0712 11234").1, CallClass::National);
        assert_eq!(dialled("0711 11234").1, CallClass::Local);
    }

    #[test]
    fn short_codes_and_internal_numbers() {
        for (input, want, class) in [
            ("110", "110", CallClass::Emergency),
            ("112", "112", CallClass::Emergency),
            ("0110", "110", CallClass::Emergency),
            ("0 112", "112", CallClass::Emergency),
            ("115", "115", CallClass::Emergency),
            ("116 117", "116117", CallClass::Emergency),
            ("116116", "116116", CallClass::Emergency),
            ("116006", "116006", CallClass::Special),
            ("11833", "11833", CallClass::Premium),
            ("118 80", "11880", CallClass::Premium),
            ("113", "113", CallClass::Premium),
            ("250", "internal 250", CallClass::Internal),
            ("2-50", "internal 250", CallClass::Internal),
            ("600", "internal 600", CallClass::Internal),
            ("*99", "internal *99", CallClass::Internal),
            ("#31#", "internal #31#", CallClass::Internal),
            ("300", "+49711300", CallClass::Local),
        ] {
            assert_eq!(dialled(input), (want.to_string(), class), "{input}");
        }
    }

    #[test]
    fn configured_emergency_numbers_replace_the_defaults_but_never_110_and_112() {
        let numbering = Numbering {
            emergency_numbers: vec![],
            ..site()
        };
        let class = |s: &str| numbering.dialled(s).unwrap().class;
        assert_eq!(class("115"), CallClass::Special);
        assert_eq!(class("116117"), CallClass::Special);
        assert_eq!(class("110"), CallClass::Emergency);
        assert_eq!(class("112"), CallClass::Emergency);
        let numbering = Numbering {
            emergency_numbers: vec!["19222".into()],
            ..site()
        };
        assert_eq!(
            numbering.dialled("19222").unwrap().class,
            CallClass::Emergency
        );
        // Only 110 and 112 are recognised behind an outside-line 0.
        assert_eq!(
            numbering.dialled("019222").unwrap().class,
            CallClass::Premium
        );
    }

    #[test]
    fn emergency_wins_over_extension_ranges() {
        let numbering = Numbering {
            extensions: vec!["100-199".parse().unwrap()],
            ..site()
        };
        assert_eq!(
            numbering.dialled("112").unwrap().class,
            CallClass::Emergency
        );
        assert_eq!(numbering.dialled("111").unwrap().class, CallClass::Internal);
    }

    #[test]
    fn dialled_explanation_names_each_rule() {
        let n = site();
        assert_eq!(
            n.explain_dialled("0711 1234").rules(),
            [NumberRule::Separators, NumberRule::NationalPrefix]
        );
        assert_eq!(n.explain_dialled("0112").rules(), [NumberRule::Emergency]);
        assert_eq!(n.explain_dialled("250").rules(), [NumberRule::Extension]);
        assert_eq!(n.explain_dialled("*99").rules(), [NumberRule::FeatureCode]);
        assert_eq!(
            n.explain_dialled("11833").rules(),
            [NumberRule::ServiceCode]
        );
        assert_eq!(n.explain_dialled("1234").rules(), [NumberRule::Subscriber]);
        assert_eq!(
            n.explain_dialled("0171 1234567").to_string(),
            "\"0171 1234567\"\n  separators: removed separators: 01711234567\n  national-prefix: 0 is the national prefix, country code 49: +491711234567\n  => +491711234567, class mobile: mobile (017x)"
        );
        assert_eq!(
            n.explain_dialled("0112").to_string(),
            "\"0112\"\n  emergency: 0112 is emergency number 112 after the outside-line 0\n  => 112, class emergency: an emergency number"
        );
    }

    #[test]
    fn dialled_refuses_garbage_and_short_international_numbers() {
        let n = site();
        assert_eq!(
            n.dialled("sip:bob@example.com"),
            Err(NumberError::InvalidCharacter { character: 's' })
        );
        assert_eq!(
            n.dialled("00 33 1"),
            Err(NumberError::TooShort {
                number: "+331".into()
            })
        );
        assert_eq!(
            n.dialled("0"),
            Err(NumberError::TooShort {
                number: "+49".into()
            })
        );
        assert_eq!(
            n.dialled("00"),
            Err(NumberError::TooShort { number: "+".into() })
        );
        assert_eq!(
            Numbering::default().dialled("1234"),
            Err(NumberError::NoAreaCode {
                digits: "1234".into()
            })
        );
    }

    #[test]
    fn foreign_site_gets_no_german_ranges() {
        let vienna = Numbering {
            country_code: "43".parse().unwrap(),
            area_code: Some("1".parse().unwrap()),
            ..Numbering::default()
        };
        assert_eq!(
            vienna.dialled("0900 123456").unwrap().class,
            CallClass::National
        );
        assert_eq!(vienna.dialled("1234567").unwrap().class, CallClass::Local);
        assert_eq!(
            vienna.dialled("+49 900 123456").unwrap().class,
            CallClass::International
        );
    }

    #[test]
    fn e164_reads_written_international_numbers_only() {
        assert_eq!(
            "+49 (0)711 1234-0".parse::<E164>().unwrap().as_str(),
            "+4971112340"
        );
        assert_eq!(
            "0711 12340".parse::<E164>(),
            Err(NumberError::NotInternational("071112340".into()))
        );
        let n = E164::new("+4971112340").unwrap();
        assert_eq!(n.digits(), "4971112340");
        assert_eq!(n.national(&CountryCode::germany()), Some("71112340"));
        assert_eq!(n.national(&"33".parse().unwrap()), None);
    }

    #[test]
    fn codes_and_ranges_validate() {
        assert!("49".parse::<CountryCode>().is_ok());
        assert!("1".parse::<CountryCode>().is_ok());
        for bad in ["", "0", "049", "1234", "+49", "4a"] {
            assert_eq!(
                bad.parse::<CountryCode>(),
                Err(NumberError::BadCountryCode(bad.into())),
                "{bad}"
            );
        }
        assert!("33204".parse::<AreaCode>().is_ok());
        for bad in ["", "0711", "123456", "7 1"] {
            assert!(bad.parse::<AreaCode>().is_err(), "{bad}");
        }
        let r: ExtensionRange = "200-299".parse().unwrap();
        assert!(r.contains("200") && r.contains("250") && r.contains("299"));
        assert!(
            !r.contains("199") && !r.contains("300") && !r.contains("2000") && !r.contains("20")
        );
        assert_eq!(r.to_string(), "200-299");
        assert_eq!("600".parse::<ExtensionRange>().unwrap().to_string(), "600");
        for bad in ["", "-", "299-200", "20-299", "2x0", "200-", "123456789"] {
            assert_eq!(
                bad.parse::<ExtensionRange>(),
                Err(NumberError::BadExtensionRange(bad.into())),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn normalisers_never_panic(input in any::<String>()) {
            let _ = site().explain_dialled(&input);
            let _ = stuttgart(NumberFormat::Local).explain_inbound(&input);
            let _ = input.parse::<E164>();
        }

        #[test]
        fn normalisers_never_panic_on_number_like_text(input in "[0-9+*#() ./\\-]{0,40}") {
            let _ = site().explain_dialled(&input);
            let _ = stuttgart(NumberFormat::Local).explain_inbound(&input);
        }

        #[test]
        fn inbound_results_are_valid_e164_and_stable(input in "[+0]?[0-9 ()-]{0,24}") {
            if let Ok(n) = stuttgart(NumberFormat::E164).inbound(&input) {
                prop_assert_eq!(E164::new(n.as_str()), Ok(n.clone()));
                prop_assert_eq!(stuttgart(NumberFormat::E164).inbound(n.as_str()), Ok(n.clone()));
                // Every outbound format reads back as the same number.
                for format in [NumberFormat::E164, NumberFormat::International, NumberFormat::National, NumberFormat::Local] {
                    let t = stuttgart(format);
                    let written = t.format(&n);
                    if written.len() != 2 {
                        // Two bare digits would be read as a DID extension; `local` never
                        // writes so short a subscriber number for a valid E.164 number.
                        prop_assert_eq!(t.inbound(&written), Ok(n.clone()), "{}", written);
                    }
                }
            }
        }
    }
}
