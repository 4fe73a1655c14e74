//! Pre-created conference rooms and their PINs.
//!
//! Rooms opened on demand by a caller have no row here; only rooms an admin created ahead
//! of time are stored, and only they can have PINs.
//!
//! PINs are stored as Argon2id hashes (m = 19 MiB, t = 2, p = 1, the OWASP password
//! storage baseline), not as salted SHA-256. A salt only defeats precomputed tables; it does
//! nothing against guessing one room's PIN from a stolen database, and a 4–10 digit PIN has
//! at most 10^10 candidates: with SHA-256 a single GPU tries them all in seconds, so hashing
//! would protect nothing. Argon2id costs about 20–50 ms of one core and 19 MiB per try,
//! which puts a 6-digit PIN at hours and an 8-digit PIN at months per core, and is paid
//! only once per caller who keys in a PIN (the IVR already limits that to a few tries per
//! call). 4-digit PINs stay guessable offline whatever the hash; that is the admin's trade-off,
//! and the real defence for them is keeping the database file private.
//!
//! Both PINs of a room share one random salt, so a keyed-in PIN costs one hash, compared
//! in constant time against both stored hashes.
//!
//! A room may have an owner: the console account (console.rs) of the staff member who runs
//! it from the web console. Without one only admins manage it. The owner is set at creation
//! ([`NewRoom::owner`]) or later with [`Store::room_set_owner`], not through [`RoomUpdate`]:
//! changing who may manage a room is an admin's act of its own, not a room setting.

use crate::db::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// Fewest digits a PIN may have.
pub const MIN_PIN_DIGITS: usize = 4;
/// Most digits a PIN may have.
pub const MAX_PIN_DIGITS: usize = 10;
/// Most digits a room number may have.
pub const MAX_ROOM_NUMBER_DIGITS: usize = 10;
/// Participant limit of a room when the admin does not say otherwise.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 50;
/// Highest participant limit a room may be given (the mixer's per-core budget, ARCHITECTURE.md).
pub const MAX_PARTICIPANTS_LIMIT: u32 = 1000;

/// Scheme 1: Argon2id v1.3, m = 19456 KiB, t = 2, p = 1, 32-byte output, 16-byte salt.
/// Stored per room so that a later build can raise the cost without breaking old rows.
pub(crate) const PIN_SCHEME_ARGON2ID_1: i64 = 1;
const PIN_SALT_LEN: usize = 16;
const PIN_HASH_LEN: usize = 32;

/// Which of a room's two PINs a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    /// The PIN every participant keys in.
    Participant,
    /// The PIN that makes a caller the room's moderator.
    Moderator,
}

impl std::fmt::Display for PinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Participant => "PIN",
            Self::Moderator => "moderator PIN",
        })
    }
}

/// What is wrong with a PIN; never carries the PIN itself, which is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinProblem {
    /// It contains something other than the digits 0-9 (a phone keypad has no other PIN keys).
    #[error("must contain only the digits 0-9")]
    NotDigits,
    /// It has fewer than 4 or more than 10 digits.
    #[error("must be {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits long, got {0}")]
    WrongLength(usize),
}

/// A room to create; PINs are plaintext here and hashed before they are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Room number, 1 to 10 digits.
    pub number: String,
    /// PIN every participant must key in, if any.
    pub pin: Option<String>,
    /// PIN that makes a caller moderator, if any.
    pub moderator_pin: Option<String>,
    /// Most callers in the room at once.
    pub max_participants: u32,
    /// Whether participants hear hold music until a moderator joins.
    pub wait_for_moderator: bool,
    /// Unix time in milliseconds of creation.
    pub created_at_ms: i64,
    /// The console account that runs the room (None: admins only); it must exist.
    pub owner: Option<String>,
}

impl NewRoom {
    /// A room without PINs, with the default participant limit.
    pub fn new(number: impl Into<String>, created_at_ms: i64) -> Self {
        Self {
            number: number.into(),
            pin: None,
            moderator_pin: None,
            max_participants: DEFAULT_MAX_PARTICIPANTS,
            wait_for_moderator: false,
            created_at_ms,
            owner: None,
        }
    }
}

// PINs must not end up in logs through `{:?}`.
impl std::fmt::Debug for NewRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRoom")
            .field("number", &self.number)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field(
                "moderator_pin",
                &self.moderator_pin.as_ref().map(|_| "<redacted>"),
            )
            .field("max_participants", &self.max_participants)
            .field("wait_for_moderator", &self.wait_for_moderator)
            .field("created_at_ms", &self.created_at_ms)
            .field("owner", &self.owner)
            .finish()
    }
}

/// A stored room; its PINs can be checked but never read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Room number, 1 to 10 digits.
    pub number: String,
    /// Whether participants must key in a PIN.
    pub has_pin: bool,
    /// Whether a moderator PIN is set.
    pub has_moderator_pin: bool,
    /// Most callers in the room at once.
    pub max_participants: u32,
    /// Whether participants hear hold music until a moderator joins.
    pub wait_for_moderator: bool,
    /// Unix time in milliseconds of creation.
    pub created_at_ms: i64,
    /// The console account that runs the room from the web console (None: admins only).
    pub owner: Option<String>,
}

/// What to do with one PIN in [`Store::room_update`].
#[derive(Clone, Default, PartialEq, Eq)]
pub enum PinChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Remove it.
    Clear,
    /// Replace it with this PIN.
    Set(String),
}

// PINs must not end up in logs through `{:?}`.
impl std::fmt::Debug for PinChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Keep => "Keep",
            Self::Clear => "Clear",
            Self::Set(_) => "Set(<redacted>)",
        })
    }
}

/// Changes to a stored room; `Default` changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomUpdate {
    /// The participant PIN.
    pub pin: PinChange,
    /// The moderator PIN.
    pub moderator_pin: PinChange,
    /// A new participant limit.
    pub max_participants: Option<u32>,
    /// A new wait-for-moderator setting.
    pub wait_for_moderator: Option<bool>,
}

/// Outcome of checking keyed-in digits against a room's PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// The caller joins as a participant.
    Participant,
    /// The caller joins as moderator.
    Moderator,
    /// The digits match no PIN of the room.
    Wrong,
}

/// Checks a room number: 1 to 10 ASCII digits, for a tenant's room followed by `@` and the
/// tenant's domain in lower case (`1234@stadt-a.example`), which keeps two towns' room 1234
/// apart.
pub(crate) fn validate_room_number(number: &str) -> Result<(), StoreError> {
    let (digits, domain) = number.split_once('@').unwrap_or((number, ""));
    let domain_ok = !number.contains('@')
        || (!domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }));
    if digits.is_empty()
        || digits.len() > MAX_ROOM_NUMBER_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !domain_ok
    {
        return Err(StoreError::InvalidRoomNumber {
            number: number.to_owned(),
        });
    }
    Ok(())
}

fn pin_problem(pin: &str) -> Option<PinProblem> {
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Some(PinProblem::NotDigits);
    }
    if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&pin.len()) {
        return Some(PinProblem::WrongLength(pin.len()));
    }
    None
}

pub(crate) fn validate_pin(pin: &str, kind: PinKind) -> Result<(), StoreError> {
    match pin_problem(pin) {
        Some(problem) => Err(StoreError::InvalidPin { kind, problem }),
        None => Ok(()),
    }
}

fn validate_max_participants(max: u32) -> Result<(), StoreError> {
    if max == 0 || max > MAX_PARTICIPANTS_LIMIT {
        return Err(StoreError::InvalidMaxParticipants(max));
    }
    Ok(())
}

pub(crate) fn new_salt() -> Result<[u8; PIN_SALT_LEN], StoreError> {
    let mut salt = [0u8; PIN_SALT_LEN];
    getrandom::fill(&mut salt).map_err(StoreError::Randomness)?;
    Ok(salt)
}

pub(crate) fn hash_pin(
    room: &str,
    scheme: i64,
    salt: &[u8],
    pin: &str,
) -> Result<[u8; PIN_HASH_LEN], StoreError> {
    let params = match scheme {
        PIN_SCHEME_ARGON2ID_1 => argon2::Params::new(19 * 1024, 2, 1, Some(PIN_HASH_LEN)),
        _ => {
            return Err(StoreError::UnknownPinScheme {
                room: room.to_owned(),
                scheme,
            });
        }
    }
    .map_err(StoreError::PinHashing)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; PIN_HASH_LEN];
    argon
        .hash_password_into(pin.as_bytes(), salt, &mut out)
        .map_err(StoreError::PinHashing)?;
    Ok(out)
}

/// Compares without an early exit, so the time taken does not tell how many leading bytes of
/// a guess were right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn same_hash(stored: Option<&[u8]>, candidate: &[u8]) -> bool {
    stored.is_some_and(|stored| constant_time_eq(stored, candidate))
}

/// One stored room row, including its PIN material.
struct RoomRow {
    room: Room,
    scheme: i64,
    salt: Vec<u8>,
    pin_hash: Option<Vec<u8>>,
    moderator_pin_hash: Option<Vec<u8>>,
}

const ROOM_COLUMNS: &str = "number, pin_hash IS NOT NULL, moderator_pin_hash IS NOT NULL, max_participants, wait_for_moderator, created_at_ms, owner";

fn room_from_row(row: &Row<'_>) -> crate::db::Result<Room> {
    Ok(Room {
        number: row.get(0)?,
        has_pin: row.get(1)?,
        has_moderator_pin: row.get(2)?,
        max_participants: row.get(3)?,
        wait_for_moderator: row.get(4)?,
        created_at_ms: row.get(5)?,
        owner: row.get(6)?,
    })
}

impl Store {
    /// Stores a new room, hashing its PINs; fails with `RoomExists` if the number is taken.
    pub fn room_create(&self, new: &NewRoom) -> Result<Room, StoreError> {
        validate_room_number(&new.number)?;
        if let Some(pin) = &new.pin {
            validate_pin(pin, PinKind::Participant)?;
        }
        if let Some(pin) = &new.moderator_pin {
            validate_pin(pin, PinKind::Moderator)?;
        }
        if new.pin.is_some() && new.pin == new.moderator_pin {
            return Err(StoreError::PinsIdentical);
        }
        if new.wait_for_moderator && new.moderator_pin.is_none() {
            return Err(StoreError::ModeratorPinRequired);
        }
        validate_max_participants(new.max_participants)?;
        if let Some(owner) = &new.owner {
            self.console_account_must_exist(owner)?;
        }

        let scheme = PIN_SCHEME_ARGON2ID_1;
        let salt = new_salt()?;
        let pin_hash = new
            .pin
            .as_deref()
            .map(|pin| hash_pin(&new.number, scheme, &salt, pin))
            .transpose()?;
        let moderator_pin_hash = new
            .moderator_pin
            .as_deref()
            .map(|pin| hash_pin(&new.number, scheme, &salt, pin))
            .transpose()?;

        let inserted = self.db.execute(
            "INSERT INTO room (number, pin_scheme, pin_salt, pin_hash, moderator_pin_hash, max_participants, wait_for_moderator, created_at_ms, owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(number) DO NOTHING",
            params![
                new.number,
                scheme,
                salt.as_slice(),
                pin_hash.as_ref().map(|h| h.as_slice()),
                moderator_pin_hash.as_ref().map(|h| h.as_slice()),
                new.max_participants,
                new.wait_for_moderator,
                new.created_at_ms,
                new.owner
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::RoomExists(new.number.clone()));
        }
        Ok(Room {
            number: new.number.clone(),
            has_pin: pin_hash.is_some(),
            has_moderator_pin: moderator_pin_hash.is_some(),
            max_participants: new.max_participants,
            wait_for_moderator: new.wait_for_moderator,
            created_at_ms: new.created_at_ms,
            owner: new.owner.clone(),
        })
    }

    /// The stored room with this number, if any.
    pub fn room_get(&self, number: &str) -> Result<Option<Room>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {ROOM_COLUMNS} FROM room WHERE number = ?1"),
                [number],
                room_from_row,
            )
            .optional()?)
    }

    /// All stored rooms in numeric order of their numbers.
    pub fn room_list(&self) -> Result<Vec<Room>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {ROOM_COLUMNS} FROM room ORDER BY length(number), number"
        ))?;
        let rows = stmt.query_map([], room_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored rooms `owner` runs, in numeric order (what a staff member's console lists).
    pub fn room_list_owned_by(&self, owner: &str) -> Result<Vec<Room>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {ROOM_COLUMNS} FROM room WHERE owner = ?1 ORDER BY length(number), number"
        ))?;
        let rows = stmt.query_map([owner], room_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Gives a stored room to the console account `owner` (which must exist), or with None
    /// back to admins only; returns the room as it is now.
    pub fn room_set_owner(&self, number: &str, owner: Option<&str>) -> Result<Room, StoreError> {
        let tx = self.db.transaction()?;
        if let Some(owner) = owner {
            self.console_account_must_exist(owner)?;
        }
        let changed = tx.execute(
            "UPDATE room SET owner = ?2 WHERE number = ?1",
            params![number, owner],
        )?;
        if changed == 0 {
            return Err(StoreError::NoSuchRoom(number.to_owned()));
        }
        let room = self
            .room_get(number)?
            .ok_or_else(|| StoreError::NoSuchRoom(number.to_owned()))?;
        tx.commit()?;
        Ok(room)
    }

    /// Deletes a room and its WebRTC tokens (a room created again under the number is a new
    /// room, not opened by the old room's tokens); false if there was none. Its recordings
    /// stay listed.
    pub fn room_delete(&self, number: &str) -> Result<bool, StoreError> {
        let tx = self.db.transaction()?;
        let deleted = tx.execute("DELETE FROM room WHERE number = ?1", [number])? > 0;
        if deleted {
            tx.execute("DELETE FROM room_token WHERE room = ?1", [number])?;
            tx.execute("DELETE FROM room_link WHERE room = ?1", [number])?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Changes a stored room's PINs or settings, validating the result as `room_create` does.
    pub fn room_update(&self, number: &str, update: &RoomUpdate) -> Result<Room, StoreError> {
        if let PinChange::Set(pin) = &update.pin {
            validate_pin(pin, PinKind::Participant)?;
        }
        if let PinChange::Set(pin) = &update.moderator_pin {
            validate_pin(pin, PinKind::Moderator)?;
        }
        if let Some(max) = update.max_participants {
            validate_max_participants(max)?;
        }
        let tx = self.db.transaction()?;
        let row = self
            .room_row(number)?
            .ok_or_else(|| StoreError::NoSuchRoom(number.to_owned()))?;

        // Both PINs share the room's salt, so a new PIN can be compared with the kept one.
        let hash = |pin: &str| hash_pin(number, row.scheme, &row.salt, pin);
        let pin_hash = match &update.pin {
            PinChange::Keep => row.pin_hash.clone(),
            PinChange::Clear => None,
            PinChange::Set(pin) => Some(hash(pin)?.to_vec()),
        };
        let moderator_pin_hash = match &update.moderator_pin {
            PinChange::Keep => row.moderator_pin_hash.clone(),
            PinChange::Clear => None,
            PinChange::Set(pin) => Some(hash(pin)?.to_vec()),
        };
        if let (Some(a), Some(b)) = (&pin_hash, &moderator_pin_hash)
            && constant_time_eq(a, b)
        {
            return Err(StoreError::PinsIdentical);
        }
        let wait_for_moderator = update
            .wait_for_moderator
            .unwrap_or(row.room.wait_for_moderator);
        if wait_for_moderator && moderator_pin_hash.is_none() {
            return Err(StoreError::ModeratorPinRequired);
        }
        let max_participants = update.max_participants.unwrap_or(row.room.max_participants);

        tx.execute(
            "UPDATE room SET pin_hash = ?2, moderator_pin_hash = ?3, max_participants = ?4, wait_for_moderator = ?5
             WHERE number = ?1",
            params![
                number,
                pin_hash,
                moderator_pin_hash,
                max_participants,
                wait_for_moderator
            ],
        )?;
        tx.commit()?;
        Ok(Room {
            number: row.room.number,
            has_pin: pin_hash.is_some(),
            has_moderator_pin: moderator_pin_hash.is_some(),
            max_participants,
            wait_for_moderator,
            created_at_ms: row.room.created_at_ms,
            owner: row.room.owner,
        })
    }

    /// Checks keyed-in digits against a stored room's PINs.
    ///
    /// Empty digits admit a participant only when the room has no participant PIN (the IVR's
    /// "key in the moderator PIN or press #"). Costs one Argon2id hash for well-formed digits.
    pub fn room_check_pin(&self, number: &str, digits: &str) -> Result<PinCheck, StoreError> {
        let row = self
            .room_row(number)?
            .ok_or_else(|| StoreError::NoSuchRoom(number.to_owned()))?;
        if digits.is_empty() {
            return Ok(if row.pin_hash.is_none() {
                PinCheck::Participant
            } else {
                PinCheck::Wrong
            });
        }
        if pin_problem(digits).is_some() {
            return Ok(PinCheck::Wrong);
        }
        let candidate = hash_pin(number, row.scheme, &row.salt, digits)?;
        // Both comparisons always run; which one matched is the answer, not a secret.
        let moderator = same_hash(row.moderator_pin_hash.as_deref(), &candidate);
        let participant = same_hash(row.pin_hash.as_deref(), &candidate);
        Ok(if moderator {
            PinCheck::Moderator
        } else if participant {
            PinCheck::Participant
        } else {
            PinCheck::Wrong
        })
    }

    fn room_row(&self, number: &str) -> Result<Option<RoomRow>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {ROOM_COLUMNS}, pin_scheme, pin_salt, pin_hash, moderator_pin_hash FROM room WHERE number = ?1"
                ),
                [number],
                |row| {
                    Ok(RoomRow {
                        room: room_from_row(row)?,
                        scheme: row.get(7)?,
                        salt: row.get(8)?,
                        pin_hash: row.get(9)?,
                        moderator_pin_hash: row.get(10)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn with_pins(number: &str, pin: Option<&str>, moderator_pin: Option<&str>) -> NewRoom {
        NewRoom {
            pin: pin.map(str::to_owned),
            moderator_pin: moderator_pin.map(str::to_owned),
            ..NewRoom::new(number, 1_700_000_000_000)
        }
    }

    fn created_room_is_listed_and_read_back_without_pins(backend: Backend) {
        let store = backend.open();
        let created = store
            .room_create(&NewRoom {
                max_participants: 12,
                wait_for_moderator: true,
                ..with_pins("4711", Some("1234"), Some("9999"))
            })
            .unwrap();
        let expected = Room {
            number: "4711".into(),
            has_pin: true,
            has_moderator_pin: true,
            max_participants: 12,
            wait_for_moderator: true,
            created_at_ms: 1_700_000_000_000,
            owner: None,
        };
        assert_eq!(created, expected);
        assert_eq!(store.room_get("4711").unwrap(), Some(expected.clone()));
        assert_eq!(store.room_list().unwrap(), vec![expected]);
        assert_eq!(store.room_get("4712").unwrap(), None);
    }

    fn pins_are_not_stored_in_plaintext(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("1", Some("246813"), Some("975319")))
            .unwrap();
        let (pin, moderator, salt): (Vec<u8>, Vec<u8>, Vec<u8>) = store
            .db
            .query_row(
                "SELECT pin_hash, moderator_pin_hash, pin_salt FROM room",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(pin.len(), PIN_HASH_LEN);
        assert_eq!(salt.len(), PIN_SALT_LEN);
        assert_ne!(pin, moderator);
        for blob in [&pin, &moderator, &salt] {
            assert!(!blob.windows(6).any(|w| w == b"246813" || w == b"975319"));
        }
    }

    fn rooms_get_different_salts(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("1", Some("1234"), None))
            .unwrap();
        store
            .room_create(&with_pins("2", Some("1234"), None))
            .unwrap();
        let hashes: Vec<Vec<u8>> = store
            .db
            .prepare("SELECT pin_hash FROM room")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_ne!(hashes[0], hashes[1], "same PIN, different rooms");
    }

    fn duplicate_room_number_is_rejected_and_keeps_the_first(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("4711", Some("1234"), None))
            .unwrap();
        match store.room_create(&with_pins("4711", Some("5678"), None)) {
            Err(StoreError::RoomExists(number)) => assert_eq!(number, "4711"),
            other => panic!("expected RoomExists, got {other:?}"),
        }
        assert_eq!(
            store.room_check_pin("4711", "1234").unwrap(),
            PinCheck::Participant
        );
    }

    fn rejects_bad_room_numbers(backend: Backend) {
        let store = backend.open();
        for number in [
            "",
            "12345678901",
            "47a1",
            " 4711",
            "４７",
            "4711@",
            "@stadt-a.example",
            "4711@Stadt-A.example",
            "4711@stadt a.example",
            "4711@stadt-a..example",
            "4711@a@b",
        ] {
            match store.room_create(&NewRoom::new(number, 0)) {
                Err(StoreError::InvalidRoomNumber { number: n }) => assert_eq!(n, number),
                other => panic!("{number:?}: expected InvalidRoomNumber, got {other:?}"),
            }
        }
        store.room_create(&NewRoom::new("1234567890", 0)).unwrap();
        store.room_create(&NewRoom::new("0", 0)).unwrap();
        // Two towns' room 4711, and the default domain's, are three rooms.
        for number in ["4711", "4711@stadt-a.example", "4711@stadt-b.example"] {
            store
                .room_create(&with_pins(number, Some("1234"), None))
                .unwrap();
        }
        assert!(store.room_get("4711@stadt-a.example").unwrap().is_some());
    }

    fn rejects_bad_pin_formats_naming_which_pin_and_why(backend: Backend) {
        let store = backend.open();
        let cases = [
            (
                Some("123"),
                None,
                PinKind::Participant,
                PinProblem::WrongLength(3),
            ),
            (
                Some("12345678901"),
                None,
                PinKind::Participant,
                PinProblem::WrongLength(11),
            ),
            (
                Some(""),
                None,
                PinKind::Participant,
                PinProblem::WrongLength(0),
            ),
            (
                Some("12a4"),
                None,
                PinKind::Participant,
                PinProblem::NotDigits,
            ),
            (
                Some("12#4"),
                None,
                PinKind::Participant,
                PinProblem::NotDigits,
            ),
            (
                None,
                Some("99"),
                PinKind::Moderator,
                PinProblem::WrongLength(2),
            ),
            (
                None,
                Some("99 99"),
                PinKind::Moderator,
                PinProblem::NotDigits,
            ),
        ];
        for (pin, moderator_pin, kind, problem) in cases {
            match store.room_create(&with_pins("4711", pin, moderator_pin)) {
                Err(StoreError::InvalidPin {
                    kind: k,
                    problem: p,
                }) => {
                    assert_eq!((k, p), (kind, problem), "{pin:?} {moderator_pin:?}");
                }
                other => panic!("{pin:?}/{moderator_pin:?}: expected InvalidPin, got {other:?}"),
            }
        }
        assert_eq!(store.room_list().unwrap(), vec![]);
    }

    fn pin_error_message_names_the_pin_but_does_not_show_it(backend: Backend) {
        let err = backend
            .open()
            .room_create(&with_pins("4711", Some("1234"), Some("987")))
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(text, "moderator PIN must be 4 to 10 digits long, got 3");
    }

    #[test]
    fn new_room_debug_output_redacts_pins() {
        let text = format!(
            "{:?}",
            with_pins("4711", Some("24681357"), Some("97531864"))
        );
        assert!(
            !text.contains("24681357") && !text.contains("97531864"),
            "{text}"
        );
        assert!(text.contains("4711"));
        assert_eq!(
            format!("{:?}", PinChange::Set("24681357".into())),
            "Set(<redacted>)"
        );
    }

    fn rejects_identical_pins_and_wait_without_moderator_and_bad_limits(backend: Backend) {
        let store = backend.open();
        assert!(matches!(
            store.room_create(&with_pins("1", Some("1234"), Some("1234"))),
            Err(StoreError::PinsIdentical)
        ));
        assert!(matches!(
            store.room_create(&NewRoom {
                wait_for_moderator: true,
                ..with_pins("1", Some("1234"), None)
            }),
            Err(StoreError::ModeratorPinRequired)
        ));
        for max in [0, MAX_PARTICIPANTS_LIMIT + 1] {
            assert!(matches!(
                store.room_create(&NewRoom {
                    max_participants: max,
                    ..NewRoom::new("1", 0)
                }),
                Err(StoreError::InvalidMaxParticipants(m)) if m == max
            ));
        }
    }

    fn pin_check_tells_participant_moderator_and_wrong_apart(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("4711", Some("1234"), Some("9999")))
            .unwrap();
        assert_eq!(
            store.room_check_pin("4711", "1234").unwrap(),
            PinCheck::Participant
        );
        assert_eq!(
            store.room_check_pin("4711", "9999").unwrap(),
            PinCheck::Moderator
        );
        for wrong in ["1235", "", "12345", "123", "12a4", "99999"] {
            assert_eq!(
                store.room_check_pin("4711", wrong).unwrap(),
                PinCheck::Wrong,
                "{wrong:?}"
            );
        }
        assert!(matches!(
            store.room_check_pin("4712", "1234"),
            Err(StoreError::NoSuchRoom(n)) if n == "4712"
        ));
    }

    fn room_without_participant_pin_admits_empty_digits_but_not_wrong_ones(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("10", None, Some("5555")))
            .unwrap();
        assert_eq!(
            store.room_check_pin("10", "").unwrap(),
            PinCheck::Participant
        );
        assert_eq!(
            store.room_check_pin("10", "5555").unwrap(),
            PinCheck::Moderator
        );
        assert_eq!(store.room_check_pin("10", "5556").unwrap(), PinCheck::Wrong);
    }

    fn update_changes_pins_and_settings_and_validates_the_result(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("4711", Some("1234"), Some("9999")))
            .unwrap();
        let updated = store
            .room_update(
                "4711",
                &RoomUpdate {
                    pin: PinChange::Set("4321".into()),
                    max_participants: Some(8),
                    wait_for_moderator: Some(true),
                    ..RoomUpdate::default()
                },
            )
            .unwrap();
        assert!(updated.has_pin && updated.has_moderator_pin && updated.wait_for_moderator);
        assert_eq!(updated.max_participants, 8);
        assert_eq!(store.room_get("4711").unwrap(), Some(updated));
        assert_eq!(
            store.room_check_pin("4711", "1234").unwrap(),
            PinCheck::Wrong
        );
        assert_eq!(
            store.room_check_pin("4711", "4321").unwrap(),
            PinCheck::Participant
        );
        assert_eq!(
            store.room_check_pin("4711", "9999").unwrap(),
            PinCheck::Moderator
        );

        // The kept moderator PIN is only known as a hash, yet a clash is still found.
        assert!(matches!(
            store.room_update(
                "4711",
                &RoomUpdate {
                    pin: PinChange::Set("9999".into()),
                    ..RoomUpdate::default()
                }
            ),
            Err(StoreError::PinsIdentical)
        ));
        assert!(matches!(
            store.room_update(
                "4711",
                &RoomUpdate {
                    moderator_pin: PinChange::Clear,
                    ..RoomUpdate::default()
                }
            ),
            Err(StoreError::ModeratorPinRequired)
        ));
        let cleared = store
            .room_update(
                "4711",
                &RoomUpdate {
                    pin: PinChange::Clear,
                    moderator_pin: PinChange::Clear,
                    wait_for_moderator: Some(false),
                    ..RoomUpdate::default()
                },
            )
            .unwrap();
        assert!(!cleared.has_pin && !cleared.has_moderator_pin);
        assert_eq!(
            store.room_check_pin("4711", "").unwrap(),
            PinCheck::Participant
        );
        assert!(matches!(
            store.room_update("1", &RoomUpdate::default()),
            Err(StoreError::NoSuchRoom(_))
        ));
    }

    fn failed_update_leaves_the_room_unchanged(backend: Backend) {
        let store = backend.open();
        store
            .room_create(&with_pins("4711", Some("1234"), Some("9999")))
            .unwrap();
        let before = store.room_get("4711").unwrap();
        let result = store.room_update(
            "4711",
            &RoomUpdate {
                pin: PinChange::Set("5678".into()),
                moderator_pin: PinChange::Set("5678".into()),
                max_participants: Some(3),
                ..RoomUpdate::default()
            },
        );
        assert!(matches!(result, Err(StoreError::PinsIdentical)));
        assert_eq!(store.room_get("4711").unwrap(), before);
        assert_eq!(
            store.room_check_pin("4711", "1234").unwrap(),
            PinCheck::Participant
        );
    }

    fn delete_removes_only_that_room(backend: Backend) {
        let store = backend.open();
        store.room_create(&NewRoom::new("1", 0)).unwrap();
        store.room_create(&NewRoom::new("2", 0)).unwrap();
        assert!(store.room_delete("1").unwrap());
        assert!(!store.room_delete("1").unwrap());
        let numbers: Vec<String> = store
            .room_list()
            .unwrap()
            .into_iter()
            .map(|r| r.number)
            .collect();
        assert_eq!(numbers, ["2"]);
    }

    fn list_is_in_numeric_order(backend: Backend) {
        let store = backend.open();
        for number in ["100", "20", "3", "1000", "21"] {
            store.room_create(&NewRoom::new(number, 0)).unwrap();
        }
        let numbers: Vec<String> = store
            .room_list()
            .unwrap()
            .into_iter()
            .map(|r| r.number)
            .collect();
        assert_eq!(numbers, ["3", "20", "21", "100", "1000"]);
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
    }

    on_both_backends!(
        created_room_is_listed_and_read_back_without_pins,
        pins_are_not_stored_in_plaintext,
        rooms_get_different_salts,
        duplicate_room_number_is_rejected_and_keeps_the_first,
        rejects_bad_room_numbers,
        rejects_bad_pin_formats_naming_which_pin_and_why,
        pin_error_message_names_the_pin_but_does_not_show_it,
        rejects_identical_pins_and_wait_without_moderator_and_bad_limits,
        pin_check_tells_participant_moderator_and_wrong_apart,
        room_without_participant_pin_admits_empty_digits_but_not_wrong_ones,
        update_changes_pins_and_settings_and_validates_the_result,
        failed_update_leaves_the_room_unchanged,
        delete_removes_only_that_room,
        list_is_in_numeric_order,
    );
}
