//! Registration bindings of users' phones, kept so that registrations survive a restart.
//!
//! The registrar owns the bindings while it runs (RFC 3261 §10.3 decides which to add, refresh
//! or remove); after each change it writes the whole set of one address-of-record here at once,
//! and on start-up it reads back what has not expired. The store checks only what would make a
//! row unreadable or unbounded: it does not parse SIP.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::db::{Row, params};

use crate::{Store, StoreError};

/// Most Path header values kept per binding (RFC 3327: one per proxy on the way).
pub const MAX_PATH_ENTRIES: usize = 16;
/// Longest text field of a binding, in bytes: generous for a URI, small enough to bound the table.
const MAX_FIELD_BYTES: usize = 2048;

/// One contact registered for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone sent it.
    pub contact: String,
    /// Address the REGISTER came from, which requests to the phone are sent to.
    pub source: SocketAddr,
    /// Transport it came over, lower case as in a Via (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub transport: String,
    /// Path header values (RFC 3327), in the order requests must follow them.
    pub path: Vec<String>,
    /// Contact q-value in thousandths (0..=1000); `None` when the phone gave none.
    pub q_milli: Option<u16>,
    /// Call-ID of the REGISTER that made or last refreshed the binding.
    pub call_id: String,
    /// Its CSeq number, to ignore REGISTERs older than the binding (RFC 3261 §10.3 step 7).
    pub cseq: u32,
    /// Unix time in milliseconds when the binding expires.
    pub expires_at_ms: i64,
    /// The phone's User-Agent header, if it sent one.
    pub user_agent: Option<String>,
    /// The `+sip.instance` Contact parameter (RFC 5626), if any.
    pub instance_id: Option<String>,
}

/// A binding together with the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBinding {
    /// The user's domain.
    pub domain: String,
    /// The user's extension.
    pub extension: String,
    /// The binding.
    pub binding: Binding,
}

/// What is wrong with a binding offered to [`Store::registration_replace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingProblem {
    /// The Contact URI is empty.
    #[error("empty contact")]
    EmptyContact,
    /// The same Contact URI twice in one set.
    #[error("contact appears twice")]
    DuplicateContact,
    /// A text field holds a line break or other control character.
    #[error("{0} contains a control character")]
    ControlCharacter(&'static str),
    /// A text field is longer than any real one.
    #[error("{0} is longer than 2048 bytes")]
    TooLong(&'static str),
    /// The q-value is above 1.0.
    #[error("q-value {0}/1000 is above 1")]
    QOutOfRange(u16),
    /// More Path entries than [`MAX_PATH_ENTRIES`].
    #[error("more than {MAX_PATH_ENTRIES} Path entries")]
    PathTooLong,
}

fn check_text(field: &'static str, text: &str) -> Result<(), BindingProblem> {
    if text.len() > MAX_FIELD_BYTES {
        Err(BindingProblem::TooLong(field))
    } else if text.chars().any(char::is_control) {
        Err(BindingProblem::ControlCharacter(field))
    } else {
        Ok(())
    }
}

fn binding_problem(binding: &Binding) -> Result<(), BindingProblem> {
    if binding.contact.is_empty() {
        return Err(BindingProblem::EmptyContact);
    }
    check_text("contact", &binding.contact)?;
    check_text("transport", &binding.transport)?;
    check_text("Call-ID", &binding.call_id)?;
    // Path entries are stored one per line, so a control character would also split one.
    if binding.path.len() > MAX_PATH_ENTRIES {
        return Err(BindingProblem::PathTooLong);
    }
    for entry in &binding.path {
        check_text("Path", entry)?;
    }
    if let Some(agent) = &binding.user_agent {
        check_text("User-Agent", agent)?;
    }
    if let Some(instance) = &binding.instance_id {
        check_text("+sip.instance", instance)?;
    }
    match binding.q_milli {
        Some(q) if q > 1000 => Err(BindingProblem::QOutOfRange(q)),
        _ => Ok(()),
    }
}

const BINDING_COLUMNS: &str = "domain, extension, contact, source, transport, path, q_milli, \
     call_id, cseq, expires_at_ms, user_agent, instance_id";

fn user_binding_from_row(row: &Row<'_>) -> crate::db::Result<UserBinding> {
    let source: String = row.get(3)?;
    let path: String = row.get(5)?;
    Ok(UserBinding {
        domain: row.get(0)?,
        extension: row.get(1)?,
        binding: Binding {
            contact: row.get(2)?,
            source: source
                .parse()
                .map_err(|err| crate::db::DatabaseError::Column {
                    column: 3,
                    problem: format!("{err}"),
                })?,
            transport: row.get(4)?,
            path: path.lines().map(str::to_owned).collect(),
            q_milli: row.get(6)?,
            call_id: row.get(7)?,
            cseq: row.get(8)?,
            expires_at_ms: row.get(9)?,
            user_agent: row.get(10)?,
            instance_id: row.get(11)?,
        },
    })
}

impl Store {
    /// Makes `bindings` the whole set of bindings of one user, atomically (an empty set
    /// removes them all). Fails with `NoSuchUser` for a user that is not stored, and with
    /// `TooManyContacts` beyond the user's limit; nothing changes on any error.
    pub fn registration_replace(
        &self,
        domain: &str,
        extension: &str,
        bindings: &[Binding],
    ) -> Result<(), StoreError> {
        let mut contacts = HashSet::new();
        for binding in bindings {
            let problem = binding_problem(binding).err().or_else(|| {
                (!contacts.insert(binding.contact.as_str()))
                    .then_some(BindingProblem::DuplicateContact)
            });
            if let Some(problem) = problem {
                return Err(StoreError::InvalidBinding {
                    contact: binding.contact.clone(),
                    problem,
                });
            }
        }
        let tx = self.db.transaction()?;
        let user = self
            .user_get(domain, extension)?
            .ok_or_else(|| StoreError::NoSuchUser {
                domain: domain.to_owned(),
                extension: extension.to_owned(),
            })?;
        if bindings.len() > user.max_contacts as usize {
            return Err(StoreError::TooManyContacts {
                domain: domain.to_owned(),
                extension: extension.to_owned(),
                max: user.max_contacts,
                got: bindings.len(),
            });
        }
        tx.execute(
            "DELETE FROM registration WHERE domain = ?1 AND extension = ?2",
            [domain, extension],
        )?;
        {
            let mut insert = tx.prepare(&format!(
                "INSERT INTO registration ({BINDING_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for b in bindings {
                insert.execute(params![
                    domain,
                    extension,
                    b.contact,
                    b.source.to_string(),
                    b.transport,
                    b.path.join("\n"),
                    b.q_milli,
                    b.call_id,
                    b.cseq,
                    b.expires_at_ms,
                    b.user_agent,
                    b.instance_id,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every binding of every user that has not expired at `now_ms` (what a restarted
    /// registrar starts from), grouped by user, highest q first within a user.
    pub fn registrations_unexpired(&self, now_ms: i64) -> Result<Vec<UserBinding>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {BINDING_COLUMNS} FROM registration WHERE expires_at_ms > ?1
             ORDER BY domain, extension, coalesce(q_milli, 1000) DESC, contact"
        ))?;
        let rows = stmt.query_map([now_ms], user_binding_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The bindings of one user that have not expired at `now_ms`, highest q first.
    pub fn registrations_of(
        &self,
        domain: &str,
        extension: &str,
        now_ms: i64,
    ) -> Result<Vec<Binding>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {BINDING_COLUMNS} FROM registration
             WHERE domain = ?1 AND extension = ?2 AND expires_at_ms > ?3
             ORDER BY coalesce(q_milli, 1000) DESC, contact"
        ))?;
        let rows = stmt.query_map(params![domain, extension, now_ms], |row| {
            user_binding_from_row(row).map(|b| b.binding)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many unexpired bindings each user of `domain` has at `now_ms` (users without any
    /// are absent).
    pub fn registration_counts(
        &self,
        domain: &str,
        now_ms: i64,
    ) -> Result<HashMap<String, u32>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT extension, count(*) FROM registration
             WHERE domain = ?1 AND expires_at_ms > ?2 GROUP BY extension",
        )?;
        let rows = stmt.query_map(params![domain, now_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes every binding that has expired at `now_ms`; returns how many.
    pub fn registrations_delete_expired(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self.db.execute(
            "DELETE FROM registration WHERE expires_at_ms <= ?1",
            [now_ms],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};
    use crate::{DEFAULT_DOMAIN, NewUser};

    const NOW: i64 = 1_700_000_000_000;

    fn binding(contact: &str, expires_at_ms: i64) -> Binding {
        Binding {
            contact: contact.into(),
            source: "10.8.0.7:5060".parse().unwrap(),
            transport: "udp".into(),
            path: vec![],
            q_milli: None,
            call_id: "reg-1@phone".into(),
            cseq: 7,
            expires_at_ms,
            user_agent: Some("Yealink SIP-T46U 108.86.0.45".into()),
            instance_id: None,
        }
    }

    fn store_with_users(backend: Backend, extensions: &[&str]) -> Store {
        let store = backend.open();
        for extension in extensions {
            store
                .user_create(&NewUser {
                    max_contacts: 3,
                    ..NewUser::new(*extension, "x", "geheim123", 0)
                })
                .unwrap();
        }
        store
    }

    fn contacts(bindings: &[Binding]) -> Vec<&str> {
        bindings.iter().map(|b| b.contact.as_str()).collect()
    }

    fn replaced_bindings_read_back_with_every_field(backend: Backend) {
        let store = store_with_users(backend, &["101"]);
        let full = Binding {
            source: "[2001:db8::7]:5061".parse().unwrap(),
            transport: "tls".into(),
            path: vec![
                "<sip:edge1.example;lr>".into(),
                "<sip:edge2.example;lr;ob>".into(),
            ],
            q_milli: Some(700),
            instance_id: Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"".into()),
            ..binding("sip:101@192.168.1.20:5061;transport=tls", NOW + 3_600_000)
        };
        let bare = Binding {
            user_agent: None,
            ..binding("sip:101@192.168.1.21", NOW + 60_000)
        };
        store
            .registration_replace(DEFAULT_DOMAIN, "101", &[full.clone(), bare.clone()])
            .unwrap();
        assert_eq!(
            store.registrations_of(DEFAULT_DOMAIN, "101", NOW).unwrap(),
            vec![bare.clone(), full.clone()],
            "no q counts as 1.0, so it comes first"
        );
        let all = store.registrations_unexpired(NOW).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].extension, "101");
        assert_eq!(all[1].binding, full);
    }

    fn replace_swaps_the_whole_set_of_one_user_only(backend: Backend) {
        let store = store_with_users(backend, &["101", "102"]);
        store
            .registration_replace(
                DEFAULT_DOMAIN,
                "101",
                &[binding("sip:a@h", NOW + 10), binding("sip:b@h", NOW + 10)],
            )
            .unwrap();
        store
            .registration_replace(DEFAULT_DOMAIN, "102", &[binding("sip:c@h", NOW + 10)])
            .unwrap();
        store
            .registration_replace(DEFAULT_DOMAIN, "101", &[binding("sip:d@h", NOW + 10)])
            .unwrap();
        assert_eq!(
            contacts(&store.registrations_of(DEFAULT_DOMAIN, "101", NOW).unwrap()),
            ["sip:d@h"]
        );
        store
            .registration_replace(DEFAULT_DOMAIN, "101", &[])
            .unwrap();
        assert_eq!(
            store.registrations_of(DEFAULT_DOMAIN, "101", NOW).unwrap(),
            vec![]
        );
        assert_eq!(
            contacts(&store.registrations_of(DEFAULT_DOMAIN, "102", NOW).unwrap()),
            ["sip:c@h"]
        );
    }

    fn bindings_survive_reopening_the_database(backend: Backend) {
        let place = backend.durable();
        {
            let store = place.open();
            store
                .user_create(&NewUser::new("101", "x", "geheim123", 0))
                .unwrap();
            store
                .registration_replace(DEFAULT_DOMAIN, "101", &[binding("sip:a@h", NOW + 10)])
                .unwrap();
        }
        let store = place.open();
        assert_eq!(
            store.registrations_unexpired(NOW).unwrap()[0].binding,
            binding("sip:a@h", NOW + 10)
        );
        drop(store);
    }

    fn expired_bindings_are_not_loaded_and_can_be_deleted(backend: Backend) {
        let store = store_with_users(backend, &["101", "102"]);
        store
            .registration_replace(
                DEFAULT_DOMAIN,
                "101",
                &[binding("sip:old@h", NOW), binding("sip:new@h", NOW + 1)],
            )
            .unwrap();
        store
            .registration_replace(DEFAULT_DOMAIN, "102", &[binding("sip:gone@h", NOW - 5)])
            .unwrap();
        let loaded = store.registrations_unexpired(NOW).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].binding.contact, "sip:new@h");
        assert_eq!(
            store.registration_counts(DEFAULT_DOMAIN, NOW).unwrap(),
            HashMap::from([("101".to_owned(), 1)])
        );
        assert_eq!(store.registrations_delete_expired(NOW).unwrap(), 2);
        assert_eq!(store.registrations_delete_expired(NOW).unwrap(), 0);
        assert_eq!(store.registrations_unexpired(NOW - 100).unwrap().len(), 1);
    }

    fn replace_refuses_unknown_users_and_too_many_contacts_and_changes_nothing(backend: Backend) {
        let store = store_with_users(backend, &["101"]);
        store
            .registration_replace(DEFAULT_DOMAIN, "101", &[binding("sip:keep@h", NOW + 10)])
            .unwrap();
        assert!(matches!(
            store.registration_replace(DEFAULT_DOMAIN, "999", &[binding("sip:a@h", NOW + 10)]),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "999"
        ));
        let four: Vec<Binding> = (0..4)
            .map(|i| binding(&format!("sip:{i}@h"), NOW + 10))
            .collect();
        let err = store
            .registration_replace(DEFAULT_DOMAIN, "101", &four)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user 101 may have at most 3 contacts, got 4"
        );
        assert_eq!(
            contacts(&store.registrations_of(DEFAULT_DOMAIN, "101", NOW).unwrap()),
            ["sip:keep@h"]
        );
        assert!(store.registrations_unexpired(NOW).unwrap().len() == 1);
    }

    fn replace_refuses_malformed_bindings(backend: Backend) {
        let store = store_with_users(backend, &["101"]);
        let cases = [
            (vec![binding("", NOW)], BindingProblem::EmptyContact),
            (
                vec![binding("sip:a@h", NOW), binding("sip:a@h", NOW)],
                BindingProblem::DuplicateContact,
            ),
            (
                vec![Binding {
                    q_milli: Some(1001),
                    ..binding("sip:a@h", NOW)
                }],
                BindingProblem::QOutOfRange(1001),
            ),
            (
                vec![Binding {
                    path: vec!["<sip:p1;lr>\n<sip:p2;lr>".into()],
                    ..binding("sip:a@h", NOW)
                }],
                BindingProblem::ControlCharacter("Path"),
            ),
            (
                vec![Binding {
                    path: vec!["<sip:p;lr>".into(); MAX_PATH_ENTRIES + 1],
                    ..binding("sip:a@h", NOW)
                }],
                BindingProblem::PathTooLong,
            ),
            (
                vec![binding(&format!("sip:{}@h", "a".repeat(3000)), NOW)],
                BindingProblem::TooLong("contact"),
            ),
            (
                vec![Binding {
                    user_agent: Some("x\r\nEvil: 1".into()),
                    ..binding("sip:a@h", NOW)
                }],
                BindingProblem::ControlCharacter("User-Agent"),
            ),
        ];
        for (bindings, expected) in cases {
            match store.registration_replace(DEFAULT_DOMAIN, "101", &bindings) {
                Err(StoreError::InvalidBinding { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
        }
        assert_eq!(store.registrations_unexpired(0).unwrap(), vec![]);
    }

    fn deleting_a_user_deletes_its_bindings(backend: Backend) {
        let store = store_with_users(backend, &["101", "102"]);
        store
            .registration_replace(DEFAULT_DOMAIN, "101", &[binding("sip:a@h", NOW + 10)])
            .unwrap();
        store
            .registration_replace(DEFAULT_DOMAIN, "102", &[binding("sip:b@h", NOW + 10)])
            .unwrap();
        store.user_delete(DEFAULT_DOMAIN, "101").unwrap();
        let left = store.registrations_unexpired(NOW).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].extension, "102");
    }

    on_both_backends!(
        bindings_survive_reopening_the_database,
        replaced_bindings_read_back_with_every_field,
        replace_swaps_the_whole_set_of_one_user_only,
        expired_bindings_are_not_loaded_and_can_be_deleted,
        replace_refuses_unknown_users_and_too_many_contacts_and_changes_nothing,
        replace_refuses_malformed_bindings,
        deleting_a_user_deletes_its_bindings,
    );
}
