//! Voicemail: the messages callers left in a user's mailbox, and each mailbox's settings
//! (the PIN that guards listening by phone, the address new messages are mailed to).
//!
//! A mailbox is named by the user's extension. Messages keep the absolute path of their WAV
//! file; the store never touches files: whoever deletes a message (the listener, the admin,
//! expiry) gets the row back and removes the file, so a file is never orphaned silently.
//!
//! The PIN is hashed exactly as room PINs are (Argon2id, see `rooms.rs` for why), with a salt
//! of its own per mailbox.

use std::path::{Path, PathBuf};

use crate::db::{OptionalExtension, Row, params};

use crate::rooms::{
    PIN_SCHEME_ARGON2ID_1, PinKind, constant_time_eq, hash_pin, new_salt, validate_pin,
};
use crate::users::validate_extension;
use crate::{Store, StoreError};

/// Longest email address a mailbox may have (RFC 5321 §4.5.3.1.3: a path is at most 256
/// octets including the angle brackets).
const MAX_EMAIL_CHARS: usize = 254;

/// Identifies one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoicemailId(pub i64);

/// A message to store, as the recording left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVoicemail {
    /// The mailbox (the called user's extension).
    pub mailbox: String,
    /// Who called, as the call record names the caller.
    pub caller: String,
    /// Unix time in milliseconds when the caller started speaking.
    pub received_at_ms: i64,
    /// Length of the recording.
    pub duration_ms: i64,
    /// The WAV file (absolute).
    pub path: PathBuf,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    /// Its id.
    pub id: VoicemailId,
    /// The mailbox it is in.
    pub mailbox: String,
    /// Who called.
    pub caller: String,
    /// Unix time in milliseconds when it was left.
    pub received_at_ms: i64,
    /// Length of the recording in milliseconds.
    pub duration_ms: i64,
    /// The WAV file.
    pub path: PathBuf,
    /// Listened to (by phone) at least once.
    pub heard: bool,
}

/// How many messages a mailbox holds, as message-waiting indication reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounts {
    /// Not yet listened to.
    pub new: u32,
    /// Listened to and kept.
    pub old: u32,
}

/// A mailbox's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxSettings {
    /// A listening PIN is set.
    pub has_pin: bool,
    /// Where new messages are mailed, if anywhere.
    pub email: Option<String>,
}

/// Outcome of checking keyed-in digits against a mailbox's PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxPin {
    /// No PIN is set, so nobody may listen by phone until the admin sets one.
    NotSet,
    /// The digits are the PIN.
    Right,
    /// They are not.
    Wrong,
}

fn path_text(path: &Path) -> Result<&str, StoreError> {
    path.to_str()
        .ok_or_else(|| StoreError::NonUtf8Path(path.to_path_buf()))
}

/// A plain check that keeps header injection out of the mail: one `@` with text on both
/// sides, no whitespace or control characters, no angle brackets or quotes.
fn validate_email(email: &str) -> Result<(), StoreError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',');
    let ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && email.chars().count() <= MAX_EMAIL_CHARS
                && !email.chars().any(bad)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidEmail(email.to_owned()))
    }
}

fn message_row(row: &Row<'_>) -> crate::db::Result<Voicemail> {
    Ok(Voicemail {
        id: VoicemailId(row.get(0)?),
        mailbox: row.get(1)?,
        caller: row.get(2)?,
        received_at_ms: row.get(3)?,
        duration_ms: row.get(4)?,
        path: PathBuf::from(row.get::<_, String>(5)?),
        heard: row.get(6)?,
    })
}

/// A mailbox row's PIN columns: scheme, salt, hash (all NULL without a PIN).
type StoredPin = (Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>);

const MESSAGE_COLUMNS: &str = "id, mailbox, caller, received_at_ms, duration_ms, path, heard";

impl Store {
    /// Stores a message left in a mailbox.
    pub fn voicemail_add(&self, message: &NewVoicemail) -> Result<VoicemailId, StoreError> {
        validate_extension(&message.mailbox)?;
        Ok(VoicemailId(self.db.query_row(
            "INSERT INTO voicemail_message (mailbox, caller, received_at_ms, duration_ms, path)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![
                message.mailbox,
                message.caller,
                message.received_at_ms,
                message.duration_ms,
                path_text(&message.path)?
            ],
            |row| row.get(0),
        )?))
    }

    /// A mailbox's messages in the order a listener hears them: new ones first, each group
    /// oldest first.
    pub fn voicemail_list(&self, mailbox: &str) -> Result<Vec<Voicemail>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM voicemail_message WHERE mailbox = ?1
             ORDER BY heard, received_at_ms, id"
        ))?;
        let rows = stmt.query_map([mailbox], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One message.
    pub fn voicemail_get(&self, id: VoicemailId) -> Result<Option<Voicemail>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM voicemail_message WHERE id = ?1"),
                [id.0],
                message_row,
            )
            .optional()?)
    }

    /// New and old messages in a mailbox.
    pub fn voicemail_counts(&self, mailbox: &str) -> Result<MessageCounts, StoreError> {
        let (new, old): (i64, i64) = self.db.query_row(
            "SELECT COALESCE(SUM(CASE WHEN heard = 0 THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN heard = 0 THEN 0 ELSE 1 END), 0)
             FROM voicemail_message WHERE mailbox = ?1",
            [mailbox],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(MessageCounts {
            new: u32::try_from(new).unwrap_or(u32::MAX),
            old: u32::try_from(old).unwrap_or(u32::MAX),
        })
    }

    /// Notes that a message was listened to.
    pub fn voicemail_mark_heard(&self, id: VoicemailId) -> Result<(), StoreError> {
        let updated = self.db.execute(
            "UPDATE voicemail_message SET heard = 1 WHERE id = ?1",
            [id.0],
        )?;
        if updated == 0 {
            return Err(StoreError::NoSuchVoicemail(id.0));
        }
        Ok(())
    }

    /// Deletes a message and returns it, so the caller removes its file.
    pub fn voicemail_delete(&self, id: VoicemailId) -> Result<Voicemail, StoreError> {
        let message = self
            .voicemail_get(id)?
            .ok_or(StoreError::NoSuchVoicemail(id.0))?;
        self.db
            .execute("DELETE FROM voicemail_message WHERE id = ?1", [id.0])?;
        Ok(message)
    }

    /// Deletes every message left before `before_ms` (Unix milliseconds) and returns them,
    /// so their files are removed too (data protection: messages are kept only so long).
    pub fn voicemail_expire(&self, before_ms: i64) -> Result<Vec<Voicemail>, StoreError> {
        let tx = self.db.transaction()?;
        let expired: Vec<Voicemail> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM voicemail_message WHERE received_at_ms < ?1
                 ORDER BY received_at_ms, id"
            ))?;
            let rows = stmt.query_map([before_ms], message_row)?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute(
            "DELETE FROM voicemail_message WHERE received_at_ms < ?1",
            [before_ms],
        )?;
        tx.commit()?;
        Ok(expired)
    }

    /// A mailbox's settings (the defaults when none were ever set).
    pub fn voicemail_settings(&self, mailbox: &str) -> Result<MailboxSettings, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT pin_hash IS NOT NULL, email FROM voicemail_box WHERE mailbox = ?1",
                [mailbox],
                |row| {
                    Ok(MailboxSettings {
                        has_pin: row.get(0)?,
                        email: row.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Sets (or with `None` removes) the PIN that guards listening to the mailbox by phone.
    pub fn voicemail_set_pin(&self, mailbox: &str, pin: Option<&str>) -> Result<(), StoreError> {
        validate_extension(mailbox)?;
        let (scheme, salt, hash) = match pin {
            Some(pin) => {
                validate_pin(pin, PinKind::Participant)?;
                let salt = new_salt()?;
                let hash = hash_pin(mailbox, PIN_SCHEME_ARGON2ID_1, &salt, pin)?;
                (
                    Some(PIN_SCHEME_ARGON2ID_1),
                    Some(salt.to_vec()),
                    Some(hash.to_vec()),
                )
            }
            None => (None, None, None),
        };
        self.db.execute(
            "INSERT INTO voicemail_box (mailbox, pin_scheme, pin_salt, pin_hash) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (mailbox) DO UPDATE SET pin_scheme = ?2, pin_salt = ?3, pin_hash = ?4",
            params![mailbox, scheme, salt, hash],
        )?;
        Ok(())
    }

    /// Sets (or with `None` removes) the address new messages are mailed to.
    pub fn voicemail_set_email(
        &self,
        mailbox: &str,
        email: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_extension(mailbox)?;
        if let Some(email) = email {
            validate_email(email)?;
        }
        self.db.execute(
            "INSERT INTO voicemail_box (mailbox, email) VALUES (?1, ?2)
             ON CONFLICT (mailbox) DO UPDATE SET email = ?2",
            params![mailbox, email],
        )?;
        Ok(())
    }

    /// Checks keyed-in digits against the mailbox's PIN. Costs one Argon2id hash when a
    /// PIN is set and the digits have a PIN's form.
    pub fn voicemail_check_pin(
        &self,
        mailbox: &str,
        digits: &str,
    ) -> Result<MailboxPin, StoreError> {
        let stored: Option<StoredPin> = self
            .db
            .query_row(
                "SELECT pin_scheme, pin_salt, pin_hash FROM voicemail_box WHERE mailbox = ?1",
                [mailbox],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((Some(scheme), Some(salt), Some(hash))) = stored else {
            return Ok(MailboxPin::NotSet);
        };
        if validate_pin(digits, PinKind::Participant).is_err() {
            return Ok(MailboxPin::Wrong);
        }
        let candidate = hash_pin(mailbox, scheme, &salt, digits)?;
        Ok(if constant_time_eq(&hash, &candidate) {
            MailboxPin::Right
        } else {
            MailboxPin::Wrong
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn message(mailbox: &str, at: i64) -> NewVoicemail {
        NewVoicemail {
            mailbox: mailbox.into(),
            caller: "07111234".into(),
            received_at_ms: at,
            duration_ms: 4_000,
            path: PathBuf::from(format!("/var/lib/amtsleitung/voicemail/{mailbox}-{at}.wav")),
        }
    }

    fn messages_are_listed_new_first_and_counted(backend: Backend) {
        let store = backend.open();
        let first = store.voicemail_add(&message("101", 1_000)).unwrap();
        let second = store.voicemail_add(&message("101", 2_000)).unwrap();
        store.voicemail_add(&message("102", 1_500)).unwrap();
        assert_eq!(
            store.voicemail_counts("101").unwrap(),
            MessageCounts { new: 2, old: 0 }
        );
        store.voicemail_mark_heard(first).unwrap();
        assert_eq!(
            store.voicemail_counts("101").unwrap(),
            MessageCounts { new: 1, old: 1 }
        );
        let listed: Vec<_> = store
            .voicemail_list("101")
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.heard))
            .collect();
        assert_eq!(listed, vec![(second, false), (first, true)]);
        assert_eq!(
            store.voicemail_counts("103").unwrap(),
            MessageCounts::default()
        );
    }

    fn delete_returns_the_message_for_its_file(backend: Backend) {
        let store = backend.open();
        let id = store.voicemail_add(&message("101", 1_000)).unwrap();
        let gone = store.voicemail_delete(id).unwrap();
        assert_eq!(gone.path, message("101", 1_000).path);
        assert!(store.voicemail_list("101").unwrap().is_empty());
        assert!(matches!(
            store.voicemail_delete(id),
            Err(StoreError::NoSuchVoicemail(_))
        ));
        assert!(matches!(
            store.voicemail_mark_heard(id),
            Err(StoreError::NoSuchVoicemail(_))
        ));
    }

    fn expiry_deletes_only_messages_older_than_the_cutoff(backend: Backend) {
        let store = backend.open();
        store.voicemail_add(&message("101", 1_000)).unwrap();
        store.voicemail_add(&message("102", 1_999)).unwrap();
        let kept = store.voicemail_add(&message("101", 2_000)).unwrap();
        let expired = store.voicemail_expire(2_000).unwrap();
        assert_eq!(
            expired.iter().map(|m| m.received_at_ms).collect::<Vec<_>>(),
            vec![1_000, 1_999]
        );
        let left: Vec<_> = store
            .voicemail_list("101")
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, vec![kept]);
        assert!(store.voicemail_list("102").unwrap().is_empty());
        assert!(store.voicemail_expire(2_000).unwrap().is_empty());
    }

    fn pin_guards_listening_and_is_not_set_by_default(backend: Backend) {
        let store = backend.open();
        assert_eq!(
            store.voicemail_check_pin("101", "1234").unwrap(),
            MailboxPin::NotSet
        );
        store
            .voicemail_set_email("101", Some("anna@rathaus.example"))
            .unwrap();
        assert_eq!(
            store.voicemail_check_pin("101", "1234").unwrap(),
            MailboxPin::NotSet
        );
        store.voicemail_set_pin("101", Some("4711")).unwrap();
        assert_eq!(
            store.voicemail_check_pin("101", "4711").unwrap(),
            MailboxPin::Right
        );
        assert_eq!(
            store.voicemail_check_pin("101", "4712").unwrap(),
            MailboxPin::Wrong
        );
        assert_eq!(
            store.voicemail_check_pin("101", "47").unwrap(),
            MailboxPin::Wrong
        );
        let settings = store.voicemail_settings("101").unwrap();
        assert!(settings.has_pin);
        assert_eq!(settings.email.as_deref(), Some("anna@rathaus.example"));
        store.voicemail_set_pin("101", None).unwrap();
        assert_eq!(
            store.voicemail_check_pin("101", "4711").unwrap(),
            MailboxPin::NotSet
        );
        assert!(store.voicemail_set_pin("101", Some("12a4")).is_err());
    }

    fn rejects_email_addresses_that_would_break_a_header(backend: Backend) {
        let store = backend.open();
        for bad in [
            "anna",
            "@rathaus.example",
            "anna@",
            "anna @rathaus.example",
            "anna@rathaus.example\r\nBcc: x@y",
            "<anna@rathaus.example>",
            "a@b@c",
        ] {
            assert!(
                matches!(
                    store.voicemail_set_email("101", Some(bad)),
                    Err(StoreError::InvalidEmail(_))
                ),
                "{bad:?}"
            );
        }
        store.voicemail_set_email("101", None).unwrap();
        assert_eq!(store.voicemail_settings("101").unwrap().email, None);
    }

    on_both_backends!(
        messages_are_listed_new_first_and_counted,
        delete_returns_the_message_for_its_file,
        expiry_deletes_only_messages_older_than_the_cutoff,
        pin_guards_listening_and_is_not_set_by_default,
        rejects_email_addresses_that_would_break_a_header,
    );
}
