//! The staff users as the signalling task needs them: credentials, allowed networks, limits,
//! the call classes they may call out and their SRTP setting, in memory, swapped whole when
//! the store changes.
//!
//! REGISTERs are answered on the signalling task, which must not wait for the database; the
//! directory is read lock-free there and rebuilt on a blocking thread whenever another
//! process (the `amtsleitung user` CLI, an admin tool) committed to the store, checked once
//! a second as the room watch does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use media::sdp::SrtpPolicy;
use sip::digest::{Algorithm, Credentials, Ha1};

use crate::shared::Shared;

/// How often the store is checked for changes by other processes.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// One user, as the registrar needs it.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    /// Shown to the people this user calls.
    pub display_name: String,
    /// Digest secrets for the user's realm.
    pub credentials: Credentials,
    /// Networks its phones may register from; empty: any.
    pub allowed_networks: Vec<store::AllowedNetwork>,
    /// Most contacts at once.
    pub max_contacts: usize,
    /// What the user may call out through a trunk (the default set without a setting).
    pub call_classes: trunks::AllowedClasses,
    /// Whether the user's calls must, may or must not use SRTP; `None`: the server's default.
    /// A stored word this build does not know is `Required` (fail closed).
    pub media_encryption: Option<SrtpPolicy>,
    /// The user's line is a fax machine: its calls are passed through unchanged.
    pub fax: bool,
    /// The user's own location number for emergency calls; `None` also when the stored one
    /// cannot be read (logged), so that the trunks file's number is presented instead.
    pub location: Option<trunks::PersonalLocation>,
    /// Do not disturb, forwarding and follow-me.
    pub call_settings: store::CallSettings,
}

impl DirectoryUser {
    fn from_stored(user: &store::User) -> Self {
        let mut credentials = Credentials::default();
        for (algorithm, hex) in [
            (Algorithm::Md5, &user.ha1_md5),
            (Algorithm::Sha256, &user.ha1_sha256),
        ] {
            match Ha1::from_hex(algorithm, hex) {
                Ok(ha1) => credentials = credentials.with(ha1),
                Err(err) => tracing::error!(user = %user.extension, "stored HA1 unusable: {err}"),
            }
        }
        let (call_classes, unknown) = crate::call_classes::of_stored(user.call_classes.as_deref());
        if !unknown.is_empty() {
            tracing::error!(user = %user.extension, unknown = ?unknown, "stored call classes unknown to this build; they allow nothing");
        }
        let (media_encryption, unknown) =
            crate::srtp_setting::of_stored(user.media_encryption.as_deref());
        if let Some(unknown) = unknown {
            tracing::error!(user = %user.extension, unknown, "stored SRTP setting unknown to this build; SRTP is required for this user");
        }
        Self {
            call_classes,
            media_encryption,
            display_name: user.display_name.clone(),
            credentials,
            allowed_networks: user.allowed_networks.clone(),
            max_contacts: user.max_contacts as usize,
            fax: user.fax,
            call_settings: user.call_settings.clone(),
            location: user.location.as_ref().and_then(|stored| {
                personal_location(stored)
                    .map_err(|err| tracing::error!(user = %user.extension, "stored location number unusable, the trunks file's is presented instead: {err}"))
                    .ok()
            }),
        }
    }

    /// The user's SRTP policy: their own setting, else `server_default`.
    pub fn srtp(&self, server_default: SrtpPolicy) -> SrtpPolicy {
        self.media_encryption.unwrap_or(server_default)
    }

    /// Whether a request from `ip` may act as this user.
    pub fn allows_source(&self, ip: IpAddr) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(ip))
    }
}

/// A user's own location number as the trunks crate reads it (a stored one was checked only
/// for its shape).
pub fn personal_location(stored: &store::UserLocation) -> Result<trunks::PersonalLocation, String> {
    let number = stored
        .number
        .parse::<trunks::E164>()
        .map_err(|err| format!("{}: {err}", stored.number))?;
    let networks = stored
        .networks
        .iter()
        .map(|n| {
            n.to_string()
                .parse::<sip::security::IpNetwork>()
                .map_err(|err| format!("{n}: {err}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(trunks::PersonalLocation { number, networks })
}

/// Users by domain and extension: the default domain's, and each tenant's.
#[derive(Debug)]
pub struct UserDirectory {
    domains: Vec<String>,
    users: ArcSwap<HashMap<String, HashMap<String, DirectoryUser>>>,
}

impl Default for UserDirectory {
    /// The default domain's users only (a single town hall).
    fn default() -> Self {
        Self::new(&crate::tenants::Tenants::default())
    }
}

impl UserDirectory {
    /// An empty directory for the users of the default domain and of `tenants`.
    pub fn new(tenants: &crate::tenants::Tenants) -> Self {
        Self {
            domains: tenants.all_domains().map(str::to_owned).collect(),
            users: ArcSwap::default(),
        }
    }

    /// The user with this extension in `domain`, if stored.
    pub fn get(&self, domain: &str, extension: &str) -> Option<DirectoryUser> {
        self.users
            .load()
            .get(domain)
            .and_then(|users| users.get(extension))
            .cloned()
    }

    /// The SRTP policy for a call to `extension` of `domain` (the callee's side): the user's
    /// own setting, else `server_default`, which is also the answer for an extension that
    /// is no user.
    pub fn srtp_policy(
        &self,
        domain: &str,
        extension: &str,
        server_default: SrtpPolicy,
    ) -> SrtpPolicy {
        self.get(domain, extension)
            .map_or(server_default, |user| user.srtp(server_default))
    }

    /// Whether `extension` of `domain` is a user whose line is a fax machine (no such user:
    /// no).
    pub fn is_fax(&self, domain: &str, extension: &str) -> bool {
        self.users
            .load()
            .get(domain)
            .and_then(|users| users.get(extension))
            .is_some_and(|user| user.fax)
    }

    /// What a call to `extension` of `domain` does besides ringing its phones (no such
    /// user: nothing).
    pub fn call_settings(&self, domain: &str, extension: &str) -> Option<store::CallSettings> {
        self.get(domain, extension).map(|user| user.call_settings)
    }

    /// Reads every user of every domain from the store.
    pub fn load(&self, store: &store::Store) -> Result<usize, store::StoreError> {
        let mut users = HashMap::with_capacity(self.domains.len());
        let mut count = 0;
        for domain in &self.domains {
            let of_domain: HashMap<String, DirectoryUser> = store
                .user_list(domain)?
                .iter()
                .map(|u| (u.extension.clone(), DirectoryUser::from_stored(u)))
                .collect();
            count += of_domain.len();
            users.insert(domain.clone(), of_domain);
        }
        self.users.store(Arc::new(users));
        Ok(count)
    }
}

/// Keeps `directory` in step with the store until the process ends.
pub fn spawn_refresh(shared: Arc<Shared>, directory: Arc<UserDirectory>) {
    tokio::spawn(async move {
        let mut seen: Option<i64> = None;
        let mut interval = tokio::time::interval(REFRESH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let directory = directory.clone();
            let pass = shared
                .store
                .run(move |store| {
                    let changes = store.external_change_counter().ok();
                    if changes.is_some() && changes == seen {
                        return seen;
                    }
                    match directory.load(store) {
                        Ok(count) => {
                            tracing::debug!(users = count, "user directory reloaded");
                            changes
                        }
                        Err(err) => {
                            // Keep the users we have: a store that cannot be read must not
                            // lock every phone out, nor let anyone in (unknown users stay
                            // unknown).
                            tracing::error!("user directory not reloaded: {err}");
                            None
                        }
                    }
                })
                .await;
            match pass {
                Ok(next) => seen = next,
                Err(err) => tracing::error!("user directory pass failed: {err}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = store::DEFAULT_DOMAIN;

    fn directory_of(users: &[store::NewUser]) -> UserDirectory {
        let store = store::Store::open_in_memory().unwrap();
        for user in users {
            store.user_create(user).unwrap();
        }
        let directory = UserDirectory::default();
        directory.load(&store).unwrap();
        directory
    }

    fn user(extension: &str, media_encryption: Option<&str>) -> store::NewUser {
        store::NewUser {
            media_encryption: media_encryption.map(str::to_owned),
            ..store::NewUser::new(extension, "A", "geheim123", 0)
        }
    }

    #[test]
    fn srtp_policy_is_the_users_own_setting_else_the_server_default() {
        let directory = directory_of(&[
            user("101", None),
            user("102", Some("off")),
            user("103", Some("required")),
        ]);
        for default in [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Required] {
            assert_eq!(directory.srtp_policy(D, "101", default), default);
            assert_eq!(directory.srtp_policy(D, "102", default), SrtpPolicy::Off);
            assert_eq!(
                directory.srtp_policy(D, "103", default),
                SrtpPolicy::Required
            );
            assert_eq!(
                directory.srtp_policy(D, "999", default),
                default,
                "no such user: the server's default"
            );
        }
        assert_eq!(directory.get(D, "101").unwrap().media_encryption, None);
    }

    #[test]
    fn the_same_extension_in_two_tenants_is_two_users_and_a_third_domain_has_none() {
        let tenants = crate::tenants::Tenants::new(&[crate::tenants::TenantSettings {
            domain: "stadt-b.example".into(),
            dialplans: "/tmp".into(),
        }])
        .unwrap();
        let store = store::Store::open_in_memory().unwrap();
        store.user_create(&user("101", None)).unwrap();
        store
            .user_create(&store::NewUser {
                domain: "stadt-b.example".into(),
                fax: true,
                ..store::NewUser::new("101", "B", "geheim456", 0)
            })
            .unwrap();
        store
            .user_create(&store::NewUser {
                domain: "stadt-c.example".into(),
                ..store::NewUser::new("102", "C", "geheim789", 0)
            })
            .unwrap();
        let directory = UserDirectory::new(&tenants);
        assert_eq!(directory.load(&store).unwrap(), 2, "stadt-c is no tenant");
        assert_eq!(directory.get(D, "101").unwrap().display_name, "A");
        assert_eq!(
            directory
                .get("stadt-b.example", "101")
                .unwrap()
                .display_name,
            "B"
        );
        assert!(directory.is_fax("stadt-b.example", "101"));
        assert!(!directory.is_fax(D, "101"));
        assert!(directory.get("stadt-c.example", "102").is_none());
        assert!(directory.get(D, "102").is_none());
    }

    #[test]
    fn only_a_user_marked_fax_is_a_fax_line() {
        let directory = directory_of(&[
            user("101", None),
            store::NewUser {
                fax: true,
                ..user("150", None)
            },
        ]);
        assert!(directory.is_fax(D, "150"));
        assert!(!directory.is_fax(D, "101"));
        assert!(!directory.is_fax(D, "999"), "no such user: no fax line");
    }

    #[test]
    fn a_stored_srtp_word_this_build_does_not_know_requires_srtp() {
        let store = store::Store::open_in_memory().unwrap();
        let stored = store.user_create(&user("101", Some("off"))).unwrap();
        // A newer build's word or a hand edit; the store reads it back as found.
        let newer = store::User {
            media_encryption: Some("dtls-srtp".into()),
            ..stored
        };
        let user = DirectoryUser::from_stored(&newer);
        assert_eq!(user.media_encryption, Some(SrtpPolicy::Required));
        assert_eq!(user.srtp(SrtpPolicy::Off), SrtpPolicy::Required);
    }
}
