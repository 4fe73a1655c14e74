//! Several town halls on one system: each is a SIP domain (a tenant) with its own users,
//! phones, rooms and dialplan, and a request belongs to the tenant its Request-URI names.
//!
//! A single town hall configures no tenant: everything is the default domain
//! ([`store::DEFAULT_DOMAIN`]), as before tenants existed. With `[[tenant]]` sections, a
//! REGISTER for `sip:stadt-a.example` or an INVITE to `sip:101@stadt-a.example` is that
//! town's: its users' passwords are checked in its realm, `101` is its own user, its room
//! 1234 is its own room ([`room_key`]), and its own dialplan directory routes the call.
//! A trunk marked `tenant = "stadt-a.example"` in the trunks file is that town's: the calls it
//! brings in are the town's, and only the town's calls go out on it (112 on the town's own
//! emergency trunk). Requests naming no tenant (the node's address) stay the default
//! domain's, which keeps working as a town of its own.
//!
//! What is not per tenant yet is refused to a tenant's callers rather than shared with
//! another town: voicemail, ring groups, pickup, WebRTC bridges, call recording by rule and
//! the settings codes are the default domain's alone, so a tenant's dialplan using them gets
//! a warning at load and a call reaching them 501 (see [`refusal`]).

use std::path::PathBuf;

use dialplan::{Action, DialTarget};
use serde::Deserialize;

/// `[[tenant]]` in the config: one town hall's SIP domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantSettings {
    /// The town's SIP domain, e.g. `stadt-a.example`: its phones register for
    /// `sip:EXT@stadt-a.example`, and the domain is the digest realm of their passwords.
    pub domain: String,
    /// The town's dialplan directory (`*.toml`, as `dialplans`).
    pub dialplans: PathBuf,
}

/// Why the `[[tenant]]` list cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantError {
    /// Not a host name a Request-URI could carry.
    #[error("tenant domain {0:?} is not a DNS name (letters, digits, '-' and '.', lower case)")]
    BadDomain(String),
    /// The same domain twice, or the default domain's own name.
    #[error("tenant domain {0:?} is configured twice (or is the default domain's name)")]
    Duplicate(String),
}

/// The tenants of this system, by domain.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    domains: Vec<String>,
}

impl Tenants {
    /// The tenants of `[[tenant]]`, checked.
    pub fn new(settings: &[TenantSettings]) -> Result<Self, TenantError> {
        let mut domains: Vec<String> = Vec::with_capacity(settings.len());
        for tenant in settings {
            let domain = &tenant.domain;
            if !is_dns_name(domain) {
                return Err(TenantError::BadDomain(domain.clone()));
            }
            if domain == store::DEFAULT_DOMAIN || domains.contains(domain) {
                return Err(TenantError::Duplicate(domain.clone()));
            }
            domains.push(domain.clone());
        }
        Ok(Self { domains })
    }

    /// The tenant a request for `host` (its Request-URI's host) belongs to: the tenant of
    /// that domain, else the default domain.
    pub fn of_host<'a>(&'a self, host: Option<&str>) -> &'a str {
        host.and_then(|host| {
            self.domains
                .iter()
                .find(|domain| domain.eq_ignore_ascii_case(host))
        })
        .map_or(store::DEFAULT_DOMAIN, String::as_str)
    }

    /// The tenant a request belongs to, by its Request-URI.
    pub fn of_request<'a>(&'a self, request: &rsip::Request) -> &'a str {
        self.of_host(Some(&request.uri.host_with_port.host.to_string()))
    }

    /// Every domain users may belong to: the default one first, then the tenants'.
    pub fn all_domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(store::DEFAULT_DOMAIN).chain(self.domains.iter().map(String::as_str))
    }

    /// Whether `domain` is one of this system's (the default one or a tenant's).
    pub fn knows(&self, domain: &str) -> bool {
        self.all_domains().any(|d| d == domain)
    }
}

/// Whether `domain` is the default domain (everything not yet per tenant is its own).
pub fn is_default(domain: &str) -> bool {
    domain == store::DEFAULT_DOMAIN
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The name a room of `domain` has wherever rooms are kept: its number for the default
/// domain, `NUMBER@DOMAIN` for a tenant's (as a SIP address names it), so that two towns'
/// room 1234 are two rooms with their own PINs, callers and recordings.
pub fn room_key(domain: &str, number: &str) -> String {
    if is_default(domain) {
        number.to_owned()
    } else {
        format!("{number}@{domain}")
    }
}

/// The domain a room named `key` (see [`room_key`]) belongs to.
pub fn room_domain(key: &str) -> &str {
    key.split_once('@')
        .map_or(store::DEFAULT_DOMAIN, |(_, domain)| domain)
}

/// The dialplan actions a tenant's call may run: the ones that only touch the tenant's own
/// users, its own rooms, or the caller. Everything else still lives in the default domain
/// alone.
pub const TENANT_ACTIONS: &[&str] = &[
    "answer",
    "play",
    "echo",
    "wait",
    "dial",
    "forward",
    "set",
    "hangup",
    "conference",
    "lobby",
];

/// Why a tenant's call may not run `actions` (menu branches included): the first action,
/// or dial target, that is not per tenant yet. `None`: all of them may run.
pub fn refusal(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|action| match action {
        Action::Answer
        | Action::Play { .. }
        | Action::Echo
        | Action::Wait { .. }
        | Action::Hangup { .. }
        | Action::SetCallerId { .. }
        | Action::Goto { .. }
        | Action::Conference { .. } => None,
        // A trunk is checked when dialled: a town calls out on its own trunks only.
        Action::Dial { target, .. } | Action::Forward { target } => match target {
            DialTarget::User(_) | DialTarget::Uri(_) | DialTarget::Trunk { .. } => None,
            other => Some(format!("dialling {other}")),
        },
        Action::Menu { options, .. } => options.values().find_map(|branch| refusal(branch)),
        other => Some(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(domain: &str) -> TenantSettings {
        TenantSettings {
            domain: domain.into(),
            dialplans: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn a_request_belongs_to_the_tenant_its_host_names_else_to_the_default_domain() {
        let tenants = Tenants::new(&[tenant("stadt-a.example"), tenant("stadt-b.example")])
            .expect("valid tenants");
        assert_eq!(tenants.of_host(Some("stadt-a.example")), "stadt-a.example");
        assert_eq!(
            tenants.of_host(Some("Stadt-B.Example")),
            "stadt-b.example",
            "host names are case-insensitive"
        );
        assert_eq!(tenants.of_host(Some("10.0.0.5")), store::DEFAULT_DOMAIN);
        assert_eq!(
            tenants.of_host(Some("stadt-c.example")),
            store::DEFAULT_DOMAIN
        );
        assert_eq!(tenants.of_host(None), store::DEFAULT_DOMAIN);
        assert_eq!(
            Tenants::default().of_host(Some("stadt-a.example")),
            store::DEFAULT_DOMAIN,
            "without tenants everything is the default domain's"
        );
        assert!(tenants.knows("stadt-b.example"));
        assert!(tenants.knows(store::DEFAULT_DOMAIN));
        assert!(!tenants.knows("stadt-c.example"));
    }

    #[test]
    fn a_tenants_room_is_named_with_its_domain_and_the_default_domains_by_its_number() {
        assert_eq!(room_key(store::DEFAULT_DOMAIN, "1234"), "1234");
        assert_eq!(room_key("stadt-a.example", "1234"), "1234@stadt-a.example");
        assert_eq!(room_domain("1234@stadt-a.example"), "stadt-a.example");
        assert_eq!(room_domain("1234"), store::DEFAULT_DOMAIN);
        assert_ne!(
            room_key("stadt-a.example", "1234"),
            room_key("stadt-b.example", "1234")
        );
    }

    #[test]
    fn tenant_domains_must_be_dns_names_and_unique() {
        for bad in [
            "",
            "Stadt.example",
            "stadt a.example",
            "-a.example",
            "a..example",
        ] {
            assert_eq!(
                Tenants::new(&[tenant(bad)]).unwrap_err(),
                TenantError::BadDomain(bad.into()),
                "{bad:?}"
            );
        }
        assert_eq!(
            Tenants::new(&[tenant("a.example"), tenant("a.example")]).unwrap_err(),
            TenantError::Duplicate("a.example".into())
        );
        assert_eq!(
            Tenants::new(&[tenant(store::DEFAULT_DOMAIN)]).unwrap_err(),
            TenantError::Duplicate(store::DEFAULT_DOMAIN.into())
        );
    }

    #[test]
    fn a_tenant_may_dial_users_and_uris_but_not_what_is_still_the_default_domains() {
        let dial = |target| Action::Dial {
            target,
            timeout_s: 30,
            fax: false,
        };
        assert_eq!(
            refusal(&[Action::Answer, dial(DialTarget::User("101".into()))]),
            None
        );
        assert!(refusal(&[dial(DialTarget::Group("zentrale".into()))]).is_some());
        assert_eq!(
            refusal(&[Action::Conference {
                room: Some("1234".into()),
                pin_prompt: true
            }]),
            None,
            "a tenant's rooms are its own"
        );
        assert!(refusal(&[Action::VoicemailMain]).is_some());
        let menu = Action::Menu {
            prompt: "menu".into(),
            options: [('1', vec![Action::VoicemailMain])].into(),
            timeout_s: 5,
            retries: 1,
            invalid: None,
        };
        assert!(
            refusal(&[menu]).is_some(),
            "a menu branch counts as much as the rule itself"
        );
    }
}
