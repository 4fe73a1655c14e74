//! A user's call classes between the admin, the store and the dialling code: the store keeps
//! class names as text (it knows nothing of the numbering plan), the `trunks` crate says what
//! they mean, and this module reads what an admin typed and what the store holds.

use trunks::{AllowedClasses, CallClass};

/// Call classes an admin asked for, emergency set aside (it is always allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList {
    /// The classes, each once, in [`CallClass::ALL`] order, without emergency.
    pub classes: Vec<CallClass>,
    /// The admin listed `emergency`, which changes nothing.
    pub named_emergency: bool,
}

impl ClassList {
    /// The names as the store keeps them.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name().to_owned()).collect()
    }

    /// What to tell the admin about emergency calls after setting this list: they stay
    /// allowed whether listed or not, and cannot be barred.
    pub fn emergency_note(&self) -> &'static str {
        if self.named_emergency {
            "note: emergency calls (110, 112) are always allowed; \"emergency\" need not be listed"
        } else {
            "note: emergency calls (110, 112) stay allowed; they cannot be barred"
        }
    }
}

/// Reads a class list as an admin writes it: names separated by commas, semicolons or spaces
/// (`internal,local national`). An unknown name is refused with the known ones; an empty list
/// is refused too, since "nothing" is better said as `internal` (no calls out at all).
pub fn parse_list(text: &str) -> Result<ClassList, String> {
    let mut classes = Vec::new();
    let mut named_emergency = false;
    for word in text
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        match word.to_ascii_lowercase().parse::<CallClass>() {
            Ok(CallClass::Emergency) => named_emergency = true,
            Ok(class) => classes.push(class),
            Err(_) => return Err(trunks::UnknownCallClass(word.to_owned()).to_string()),
        }
    }
    if classes.is_empty() {
        return Err(
            "no call class given; \"internal\" allows no calls out at all (emergency calls stay allowed), or go back to the default set"
                .to_owned(),
        );
    }
    classes.sort();
    classes.dedup();
    Ok(ClassList {
        classes,
        named_emergency,
    })
}

/// The classes a stored user may call: the default set without a setting of their own. Names
/// this build does not know (written by hand or by a newer build) allow nothing and are
/// returned, so the caller can say so: an unknown word must never widen what a user may call.
pub fn of_stored(names: Option<&[String]>) -> (AllowedClasses, Vec<String>) {
    let Some(names) = names else {
        return (AllowedClasses::default(), Vec::new());
    };
    let mut unknown = Vec::new();
    let classes: Vec<CallClass> = names
        .iter()
        .filter_map(|name| match name.parse() {
            Ok(class) => Some(class),
            Err(_) => {
                unknown.push(name.clone());
                None
            }
        })
        .collect();
    (AllowedClasses::new(classes), unknown)
}

/// The classes in force as `user show` prints them: `internal, local (emergency always
/// allowed)`, with `default` when the user has no setting of its own.
pub fn describe(names: Option<&[String]>) -> String {
    let (allowed, unknown) = of_stored(names);
    let mut listed: Vec<String> = allowed
        .classes()
        .filter(|c| *c != CallClass::Emergency)
        .map(|c| c.name().to_owned())
        .collect();
    listed.extend(
        unknown
            .iter()
            .map(|n| format!("{n} (unknown, allows nothing)")),
    );
    let list = if listed.is_empty() {
        "none".to_owned()
    } else {
        listed.join(", ")
    };
    match names {
        None => format!("{list} (default; emergency always allowed)"),
        Some(_) => format!("{list} (emergency always allowed)"),
    }
}

/// The short form for `user list`: `default`, or the names with commas.
pub fn short(names: Option<&[String]>) -> String {
    match names {
        None => "default".to_owned(),
        Some([]) => "none".to_owned(),
        Some(names) => names.join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_list_reads_with_any_separator_once_each_in_class_order() {
        let list = parse_list(" mobile;internal, local  national,local ").unwrap();
        assert_eq!(
            list.classes,
            [
                CallClass::Internal,
                CallClass::Local,
                CallClass::National,
                CallClass::Mobile
            ]
        );
        assert!(!list.named_emergency);
        assert_eq!(
            list.names(),
            names(&["internal", "local", "national", "mobile"])
        );
        assert!(list.emergency_note().contains("stay allowed"));
    }

    #[test]
    fn emergency_in_a_list_is_noted_and_not_stored() {
        let list = parse_list("emergency,Internal").unwrap();
        assert_eq!(list.classes, [CallClass::Internal]);
        assert!(list.named_emergency);
        assert!(list.emergency_note().contains("need not be listed"));
        let err = parse_list("emergency").unwrap_err();
        assert!(err.starts_with("no call class given"), "{err}");
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones_on_one_line() {
        let err = parse_list("internal,premuim").unwrap_err();
        assert_eq!(
            err,
            "unknown call class \"premuim\"; known: emergency, internal, local, national, mobile, international, special, shared-cost, premium"
        );
        assert!(parse_list(" , ").is_err());
    }

    #[test]
    fn stored_names_become_the_allowed_set_and_unknown_ones_allow_nothing() {
        let (default, unknown) = of_stored(None);
        assert_eq!(default, AllowedClasses::default());
        assert!(unknown.is_empty());
        let (set, unknown) = of_stored(Some(&names(&["internal", "satellite"])));
        assert!(set.allows(CallClass::Internal));
        assert!(!set.allows(CallClass::Local));
        assert!(set.allows(CallClass::Emergency));
        assert_eq!(unknown, ["satellite"]);
    }

    #[test]
    fn descriptions_say_default_and_emergency() {
        assert_eq!(
            describe(None),
            "internal, local, national, mobile, special (default; emergency always allowed)"
        );
        assert_eq!(
            describe(Some(&names(&["internal", "local"]))),
            "internal, local (emergency always allowed)"
        );
        assert_eq!(short(None), "default");
        assert_eq!(
            short(Some(&names(&["internal", "local"]))),
            "internal,local"
        );
    }
}
