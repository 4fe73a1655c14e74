//! Call classes: what kind of call a dialled number makes under the German numbering plan
//! (Bundesnetzagentur, Nummernplan), and which classes a user may call.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::number::{Dialled, Numbering};

/// What kind of call a number makes, for toll-fraud limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallClass {
    /// 110, 112 and the configured emergency numbers: always allowed.
    Emergency,
    /// An extension or feature code of this server.
    Internal,
    /// A number in our own area code.
    Local,
    /// Another area code, or a location-independent 032 number, in our country.
    National,
    /// A German mobile number (015x, 016x, 017x).
    Mobile,
    /// A number abroad.
    International,
    /// Free or social numbers: 0800 freephone, 116xxx, 115 when not an emergency number.
    Special,
    /// Tariffed service numbers with legal price caps: 0180 shared cost, 0700 personal numbers.
    SharedCost,
    /// Numbers that may cost a lot or bypass our carrier: 0900, 0137, 012, 018x user groups,
    /// 019x, 010xx carrier selection, 118xx directories, unassigned 01 ranges, international
    /// premium and satellite ranges.
    Premium,
}

impl CallClass {
    /// Every class, in order.
    pub const ALL: [CallClass; 9] = [
        CallClass::Emergency,
        CallClass::Internal,
        CallClass::Local,
        CallClass::National,
        CallClass::Mobile,
        CallClass::International,
        CallClass::Special,
        CallClass::SharedCost,
        CallClass::Premium,
    ];

    /// The name used in configuration (`shared-cost`).
    pub fn name(self) -> &'static str {
        match self {
            CallClass::Emergency => "emergency",
            CallClass::Internal => "internal",
            CallClass::Local => "local",
            CallClass::National => "national",
            CallClass::Mobile => "mobile",
            CallClass::International => "international",
            CallClass::Special => "special",
            CallClass::SharedCost => "shared-cost",
            CallClass::Premium => "premium",
        }
    }
}

impl fmt::Display for CallClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A class name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown call class {0:?}; known: emergency, internal, local, national, mobile, international, special, shared-cost, premium"
)]
pub struct UnknownCallClass(pub String);

impl FromStr for CallClass {
    type Err = UnknownCallClass;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CallClass::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| UnknownCallClass(text.to_string()))
    }
}

/// A dialled number with its class and the reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The normalised number.
    pub dialled: Dialled,
    /// Its class.
    pub class: CallClass,
    /// Why, in words (`mobile (017x)`), for `dialplan explain` and refusals.
    pub reason: String,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, class {}: {}", self.dialled, self.class, self.reason)
    }
}

/// Prefixes of the German national significant number (after `+49`/`0`), longest first where
/// they overlap; anything else is a geographic number.
const GERMAN_RANGES: &[(&str, CallClass, &str)] = &[
    (
        "10",
        CallClass::Premium,
        "carrier selection 010xx (Call-by-Call) bypasses our carrier",
    ),
    ("11", CallClass::Premium, "011 is unassigned"),
    ("12", CallClass::Premium, "innovative services (012)"),
    (
        "13",
        CallClass::Premium,
        "mass calling and televoting (0137, 0138)",
    ),
    ("14", CallClass::Premium, "014 is unassigned"),
    ("15", CallClass::Mobile, "mobile (015x)"),
    ("16", CallClass::Mobile, "mobile (016x)"),
    ("17", CallClass::Mobile, "mobile (017x)"),
    ("180", CallClass::SharedCost, "shared-cost service (0180)"),
    (
        "181",
        CallClass::Premium,
        "international virtual private networks (0181)",
    ),
    (
        "18",
        CallClass::Premium,
        "closed user groups (0182 to 0189)",
    ),
    (
        "19",
        CallClass::Premium,
        "online and network-internal services (019x, 0190 legacy premium)",
    ),
    (
        "32",
        CallClass::National,
        "location-independent number (032)",
    ),
    ("700", CallClass::SharedCost, "personal number (0700)"),
    ("800", CallClass::Special, "freephone (0800)"),
    ("900", CallClass::Premium, "premium rate (0900)"),
];

/// International ranges that cost far more than a call abroad and are favourites of toll
/// fraud: satellite and international networks (ITU-T E.164 assignments).
const PREMIUM_ABROAD: &[(&str, &str)] = &[
    ("870", "Inmarsat satellite (+870)"),
    ("878", "universal personal telecommunications (+878)"),
    ("881", "global mobile satellite (+881)"),
    ("882", "international networks (+882)"),
    ("883", "international networks (+883)"),
    ("979", "international premium rate (+979)"),
];

impl Numbering {
    /// The class of a normalised number.
    pub fn classify(&self, dialled: Dialled) -> Classified {
        let (class, reason) = match &dialled {
            Dialled::Internal(_) => (CallClass::Internal, "an internal number".to_string()),
            Dialled::ShortCode(code) => self.classify_short_code(code),
            Dialled::E164(n) => match n.national(&self.country_code) {
                Some(nsn) => self.classify_domestic(nsn),
                None => PREMIUM_ABROAD
                    .iter()
                    .find(|(p, _)| n.digits().starts_with(p))
                    .map_or_else(
                        || (CallClass::International, "a number abroad".to_string()),
                        |(_, why)| (CallClass::Premium, (*why).to_string()),
                    ),
            },
        };
        Classified {
            dialled,
            class,
            reason,
        }
    }

    fn classify_short_code(&self, code: &str) -> (CallClass, String) {
        if self.is_emergency(code) {
            (CallClass::Emergency, "an emergency number".into())
        } else if code == "115" {
            (CallClass::Special, "the authorities' number 115".into())
        } else if code.len() == 6 && code.starts_with("116") {
            (
                CallClass::Special,
                "a harmonised European service 116xxx".into(),
            )
        } else if code.starts_with("118") {
            (CallClass::Premium, "directory enquiries (118xx)".into())
        } else {
            (CallClass::Premium, "an unknown service code".into())
        }
    }

    fn classify_domestic(&self, nsn: &str) -> (CallClass, String) {
        let german = self.country_code.as_str() == "49";
        if let Some((_, class, why)) = GERMAN_RANGES
            .iter()
            .find(|(p, ..)| german && nsn.starts_with(p))
        {
            return (*class, (*why).to_string());
        }
        match &self.area_code {
            Some(area) if nsn.starts_with(area.as_str()) => {
                (CallClass::Local, format!("area code {area} is ours"))
            }
            _ => (CallClass::National, "another area code".into()),
        }
    }
}

/// The classes a user may call. Emergency calls are allowed whatever the set says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Vec<CallClass>")]
pub struct AllowedClasses(BTreeSet<CallClass>);

impl AllowedClasses {
    /// Exactly `classes` (plus emergency, which is never barred).
    pub fn new(classes: impl IntoIterator<Item = CallClass>) -> Self {
        Self(classes.into_iter().collect())
    }

    /// Everything, premium included.
    pub fn all() -> Self {
        Self::new(CallClass::ALL)
    }

    /// Whether a call of `class` may be made.
    pub fn allows(&self, class: CallClass) -> bool {
        class == CallClass::Emergency || self.0.contains(&class)
    }

    /// The classes in the set, in order.
    pub fn classes(&self) -> impl Iterator<Item = CallClass> + '_ {
        self.0.iter().copied()
    }
}

impl Default for AllowedClasses {
    /// Internal, local, national, mobile and special numbers: what a desk in a town hall
    /// needs. International, shared-cost and premium numbers, the ones toll fraud runs up,
    /// are barred until an admin allows them for a user.
    fn default() -> Self {
        Self::new([
            CallClass::Internal,
            CallClass::Local,
            CallClass::National,
            CallClass::Mobile,
            CallClass::Special,
        ])
    }
}

impl From<Vec<CallClass>> for AllowedClasses {
    fn from(classes: Vec<CallClass>) -> Self {
        Self::new(classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_everyday_calls_and_bars_what_toll_fraud_uses() {
        let d = AllowedClasses::default();
        for allowed in [
            CallClass::Emergency,
            CallClass::Internal,
            CallClass::Local,
            CallClass::National,
            CallClass::Mobile,
            CallClass::Special,
        ] {
            assert!(d.allows(allowed), "{allowed}");
        }
        for barred in [
            CallClass::International,
            CallClass::SharedCost,
            CallClass::Premium,
        ] {
            assert!(!d.allows(barred), "{barred}");
        }
    }

    #[test]
    fn emergency_is_allowed_even_when_nothing_is() {
        let nothing = AllowedClasses::new([]);
        assert!(nothing.allows(CallClass::Emergency));
        assert!(!nothing.allows(CallClass::Internal));
        assert!(AllowedClasses::all().allows(CallClass::Premium));
    }

    #[test]
    fn allowed_classes_read_from_a_toml_list() {
        #[derive(Deserialize)]
        struct User {
            allow: AllowedClasses,
        }
        let u: User = toml::from_str("allow = [\"local\", \"international\", \"shared-cost\"]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u.allow.classes().collect::<Vec<_>>(),
            [
                CallClass::Local,
                CallClass::International,
                CallClass::SharedCost
            ]
        );
        let e = toml::from_str::<User>("allow = [\"premum\"]")
            .err()
            .map(|e| e.message().to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "unknown variant `premum`, expected one of `emergency`, `internal`, `local`, `national`, `mobile`, `international`, `special`, `shared-cost`, `premium`"
            )
        );
    }

    #[test]
    fn class_names_read_back() {
        for c in CallClass::ALL {
            assert_eq!(c.name().parse::<CallClass>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!(
            "premum".parse::<CallClass>(),
            Err(UnknownCallClass("premum".into()))
        );
    }
}
