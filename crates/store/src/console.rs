//! Web console accounts, their login sessions, and the audit log of administrative changes
//! (issue 18: staff run their own rooms; admins run the system).
//!
//! An account is an admin or a staff member. A local account has a password, stored as an
//! Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, the OWASP baseline that
//! rooms.rs uses for PINs): unlike a SIP password (users.rs), nothing forces a fast hash here,
//! and the PHC string carries its own parameters, so a later build can raise the cost and
//! still check old passwords. An LDAP account has no password here; the directory checks it,
//! and the store only remembers the role and extension the directory gave it.
//!
//! A session is a random bearer token (32 bytes, base64url) handed to the browser once and
//! stored only as its SHA-256, as room tokens are (room_tokens.rs explains why a fast hash is
//! enough for 256 random bits), next to a CSRF token the console puts into its forms. A
//! session ends when it is ended, when it was idle longer than the caller's timeout, or when
//! its account is disabled or deleted. Time is always passed in, never read here.
//!
//! The audit log records who changed what, from where (the CLI or the console); it never
//! holds a password or a PIN, only the name of what was changed.
//!
//! The tables declare their foreign keys, but SQLite enforces them only with
//! `PRAGMA foreign_keys`, which the store does not switch on (older tables were not written
//! for it); the methods here therefore delete an account's sessions themselves.

use crate::db::{OptionalExtension, Row, params};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64ct::{Base64UrlUnpadded, Encoding};

use crate::room_tokens::token_hash;
use crate::users::validate_extension;
use crate::{Store, StoreError};

/// Most characters of an account name.
pub const MAX_ACCOUNT_NAME_CHARS: usize = 64;
/// Fewest characters of a console password.
pub const MIN_CONSOLE_PASSWORD_CHARS: usize = 10;
/// Most characters of a console password.
pub const MAX_CONSOLE_PASSWORD_CHARS: usize = 256;
/// Random bytes in a session or CSRF token.
const SESSION_TOKEN_BYTES: usize = 32;
/// Salt bytes of a password hash (the PHC string format's recommendation).
const PASSWORD_SALT_BYTES: usize = 16;
/// Argon2id cost of new password hashes: m = 19 MiB, t = 2, p = 1, as for room PINs.
const PASSWORD_M_COST_KIB: u32 = 19 * 1024;
const PASSWORD_T_COST: u32 = 2;
const PASSWORD_P_COST: u32 = 1;
/// A hash of a password nobody has, at the cost above, checked when the account name is
/// unknown (or has no password here), so that the time a login takes does not tell whether
/// the name exists.
const DUMMY_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YW10c2xlaXR1bmdkdW1teQ$SBFW7aiaBPQ1KkPGIYcDEbkkMp9snKcB8AAmj57JrUo";

/// Longest stored source of a session or an audit entry (an address, "cli").
const MAX_SOURCE_CHARS: usize = 256;
/// Longest stored audit actor.
const MAX_ACTOR_CHARS: usize = 128;
/// Longest stored audit action word.
const MAX_ACTION_CHARS: usize = 64;
/// Longest stored audit detail; a longer one is cut (an entry must not fail the change).
const MAX_DETAIL_CHARS: usize = 1024;

/// What a console account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsoleRole {
    /// Runs the whole system.
    Admin,
    /// Runs the rooms they own.
    Staff,
}

impl ConsoleRole {
    /// The word stored and shown: `admin` or `staff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }
}

impl std::fmt::Display for ConsoleRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConsoleRole {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "staff" => Ok(Self::Staff),
            _ => Err(StoreError::InvalidConsoleRole(s.to_owned())),
        }
    }
}

/// Where an account's password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountOrigin {
    /// Here, against the stored hash.
    Local,
    /// By the LDAP directory; the store keeps no password.
    Ldap,
}

impl AccountOrigin {
    /// The word stored and shown: `local` or `ldap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Ldap => "ldap",
        }
    }
}

impl std::fmt::Display for AccountOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A web console account; its password can be checked but never read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAccount {
    /// Login name: 1 to 64 characters a-z, 0-9, `.`, `_`, `-`.
    pub name: String,
    /// Admin or staff.
    pub role: ConsoleRole,
    /// The account holder's own extension, if any (their desk phone).
    pub extension: Option<String>,
    /// Local password or LDAP.
    pub origin: AccountOrigin,
    /// Unix time in milliseconds of creation.
    pub created_at_ms: i64,
    /// A disabled account cannot log in and has no sessions.
    pub disabled: bool,
    /// The town (tenant's SIP domain) the account runs: an admin of it sees and changes that
    /// town's rooms and users only. `None`: the default domain, whose admins run the system.
    pub domain: Option<String>,
}

/// A session just made: the tokens to hand to the browser, shown only this once.
#[derive(Clone, PartialEq, Eq)]
pub struct NewConsoleSession {
    /// The bearer token (cookie): 32 random bytes, base64url without padding.
    pub token: String,
    /// The CSRF token the console's forms carry: 32 random bytes, base64url without padding.
    pub csrf_token: String,
}

// Tokens must not end up in logs through `{:?}`.
impl std::fmt::Debug for NewConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConsoleSession")
            .field("token", &"<redacted>")
            .field("csrf_token", &"<redacted>")
            .finish()
    }
}

/// A live session, as found by its token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The account logged in.
    pub account: ConsoleAccount,
    /// The session's CSRF token, to compare with the one a form sends.
    pub csrf_token: String,
    /// Where the login came from (the client's address, as the console recorded it).
    pub source: String,
    /// Unix time in milliseconds of the login.
    pub created_at_ms: i64,
    /// Unix time in milliseconds of the latest request in this session (this one included).
    pub last_seen_at_ms: i64,
}

// The CSRF token must not end up in logs through `{:?}`.
impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("account", &self.account)
            .field("csrf_token", &"<redacted>")
            .field("source", &self.source)
            .field("created_at_ms", &self.created_at_ms)
            .field("last_seen_at_ms", &self.last_seen_at_ms)
            .finish()
    }
}

/// One change to record in the audit log; never a password or PIN in any field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// Who: `cli:<unix user>` or a console account's name.
    pub actor: &'a str,
    /// From where: `cli`, or the console client's address.
    pub source: &'a str,
    /// What, as a short word: `room.create`, `account.add`, `user.passwd`, ...
    pub action: &'a str,
    /// Which object, in words ("room 4711", "account anna (staff)").
    pub detail: &'a str,
}

/// A stored audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its number; later entries have higher ones.
    pub id: i64,
    /// Unix time in milliseconds of the change.
    pub at_ms: i64,
    /// Who made it.
    pub actor: String,
    /// From where.
    pub source: String,
    /// What kind of change.
    pub action: String,
    /// Which object.
    pub detail: String,
}

/// What is wrong with a console password; never carries the password itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsolePasswordProblem {
    /// Fewer than the minimum characters (0: none at all).
    #[error("has {0} characters; at least {MIN_CONSOLE_PASSWORD_CHARS} are needed")]
    TooShort(usize),
    /// More than the maximum characters.
    #[error("has {0} characters; at most {MAX_CONSOLE_PASSWORD_CHARS}")]
    TooLong(usize),
    /// A line break, tab or other control character, usually a file's line end read along.
    #[error("contains a line break or other control character")]
    ControlCharacter,
}

/// Checks an account name: 1 to 64 characters of lower-case a-z, 0-9, `.`, `_`, `-`.
pub fn validate_account_name(name: &str) -> Result<(), StoreError> {
    let fits = !name.is_empty()
        && name.len() <= MAX_ACCOUNT_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(StoreError::InvalidAccountName(name.to_owned()))
    }
}

fn console_password_problem(password: &str) -> Option<ConsolePasswordProblem> {
    let chars = password.chars().count();
    if password.chars().any(char::is_control) {
        Some(ConsolePasswordProblem::ControlCharacter)
    } else if chars < MIN_CONSOLE_PASSWORD_CHARS {
        Some(ConsolePasswordProblem::TooShort(chars))
    } else if chars > MAX_CONSOLE_PASSWORD_CHARS {
        Some(ConsolePasswordProblem::TooLong(chars))
    } else {
        None
    }
}

/// Checks a new console password's form.
pub fn validate_console_password(password: &str) -> Result<(), StoreError> {
    match console_password_problem(password) {
        Some(problem) => Err(StoreError::InvalidConsolePassword(problem)),
        None => Ok(()),
    }
}

fn password_hasher() -> Result<argon2::Argon2<'static>, StoreError> {
    let params = argon2::Params::new(PASSWORD_M_COST_KIB, PASSWORD_T_COST, PASSWORD_P_COST, None)
        .map_err(StoreError::PinHashing)?;
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// A new PHC string for `password` under a fresh random salt.
fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; PASSWORD_SALT_BYTES];
    getrandom::fill(&mut salt).map_err(StoreError::Randomness)?;
    let hash = password_hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(StoreError::PasswordHashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, with the parameters written in it.
fn password_matches(account: &str, stored: &str, password: &str) -> Result<bool, StoreError> {
    let unreadable = |problem| StoreError::UnreadablePasswordHash {
        account: account.to_owned(),
        problem,
    };
    let hash = PasswordHash::new(stored).map_err(|err| unreadable(err.into()))?;
    match argon2::Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(problem) => Err(unreadable(problem)),
    }
}

/// 32 random bytes as base64url without padding (43 characters).
pub(crate) fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; SESSION_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(StoreError::Randomness)?;
    Ok(Base64UrlUnpadded::encode_string(&bytes))
}

/// At most `max` characters of `text`, cut at a character boundary.
fn at_most(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(at, _)| &text[..at])
}

pub(crate) const ACCOUNT_COLUMNS: &str =
    "name, role, extension, origin, created_at_ms, disabled, domain";

/// An account from [`ACCOUNT_COLUMNS`] starting at column `at`.
pub(crate) fn account_from_row(row: &Row<'_>, at: usize) -> crate::db::Result<ConsoleAccount> {
    let role: String = row.get(at + 1)?;
    let origin: String = row.get(at + 3)?;
    Ok(ConsoleAccount {
        name: row.get(at)?,
        // The table's CHECK constraints admit only these words.
        role: if role == "admin" {
            ConsoleRole::Admin
        } else {
            ConsoleRole::Staff
        },
        extension: row.get(at + 2)?,
        origin: if origin == "ldap" {
            AccountOrigin::Ldap
        } else {
            AccountOrigin::Local
        },
        created_at_ms: row.get(at + 4)?,
        disabled: row.get(at + 5)?,
        domain: row.get(at + 6)?,
    })
}

impl Store {
    /// Adds a local account with a password (hashed with Argon2id); fails with
    /// `AccountExists` if the name is taken, by a local or an LDAP account.
    pub fn console_account_create(
        &self,
        name: &str,
        role: ConsoleRole,
        extension: Option<&str>,
        password: &str,
        now_ms: i64,
    ) -> Result<ConsoleAccount, StoreError> {
        self.console_account_create_in(None, name, role, extension, password, now_ms)
    }

    /// [`Store::console_account_create`] for an account of the town `domain` (`None`: the
    /// default domain), in one statement: there is no moment at which the account exists
    /// without its town and so could see every town.
    pub fn console_account_create_in(
        &self,
        domain: Option<&str>,
        name: &str,
        role: ConsoleRole,
        extension: Option<&str>,
        password: &str,
        now_ms: i64,
    ) -> Result<ConsoleAccount, StoreError> {
        validate_account_name(name)?;
        if let Some(domain) = domain {
            crate::users::validate_domain("domain", domain)?;
        }
        if let Some(extension) = extension {
            validate_extension(extension)?;
        }
        validate_console_password(password)?;
        let hash = hash_password(password)?;
        let inserted = self.db.execute(
            "INSERT INTO console_account (name, role, extension, origin, password_hash, created_at_ms, domain)
             VALUES (?1, ?2, ?3, 'local', ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
            params![name, role.as_str(), extension, hash, now_ms, domain],
        )?;
        if inserted == 0 {
            return Err(StoreError::AccountExists(name.to_owned()));
        }
        Ok(ConsoleAccount {
            name: name.to_owned(),
            role,
            extension: extension.map(str::to_owned),
            origin: AccountOrigin::Local,
            created_at_ms: now_ms,
            disabled: false,
            domain: domain.map(str::to_owned),
        })
    }

    /// The account, if `password` is its local password and it is enabled; None for an
    /// unknown name, a wrong password, a disabled or an LDAP account. Costs one Argon2id
    /// hash in every case (a dummy one when there is no stored hash), so the time taken
    /// does not tell which.
    pub fn console_account_verify(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<ConsoleAccount>, StoreError> {
        // The caller knows the length of what it sent: refusing early tells it nothing.
        if password.chars().count() > MAX_CONSOLE_PASSWORD_CHARS {
            return Ok(None);
        }
        let found: Option<(ConsoleAccount, Option<String>)> = self
            .db
            .query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS}, password_hash FROM console_account WHERE name = ?1"
                ),
                [name],
                |row| Ok((account_from_row(row, 0)?, row.get(7)?)),
            )
            .optional()?;
        let stored = found
            .as_ref()
            .and_then(|(account, hash)| match account.origin {
                AccountOrigin::Local => hash.as_deref(),
                AccountOrigin::Ldap => None,
            });
        let matches = match stored {
            Some(stored) => password_matches(name, stored, password)?,
            None => {
                password_matches("(none)", DUMMY_PASSWORD_HASH, password)?;
                false
            }
        };
        Ok(found
            .map(|(account, _)| account)
            .filter(|account| matches && !account.disabled))
    }

    /// Replaces a local account's password; false if there is no such account. The
    /// account's sessions stay: ending them is the caller's choice
    /// ([`Store::console_sessions_end_for`]), as a user changing their own password may keep
    /// the session they are in.
    pub fn console_account_set_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<bool, StoreError> {
        validate_console_password(password)?;
        let Some(account) = self.console_account_get(name)? else {
            return Ok(false);
        };
        if account.origin == AccountOrigin::Ldap {
            return Err(StoreError::AccountIsLdap(name.to_owned()));
        }
        let hash = hash_password(password)?;
        Ok(self.db.execute(
            "UPDATE console_account SET password_hash = ?2 WHERE name = ?1 AND origin = 'local'",
            params![name, hash],
        )? > 0)
    }

    /// Disables or enables an account; false if there is no such account. Disabling ends
    /// the account's sessions at once.
    pub fn console_account_set_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let tx = self.db.transaction()?;
        let changed = tx.execute(
            "UPDATE console_account SET disabled = ?2 WHERE name = ?1",
            params![name, disabled],
        )? > 0;
        if changed && disabled {
            tx.execute("DELETE FROM console_session WHERE account = ?1", [name])?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Adds an LDAP account, or brings an existing one's role and extension up to what the
    /// directory says (after each LDAP login); a disabled one stays disabled. Refuses with
    /// `AccountIsLocal` to turn a local account into an LDAP one: a directory entry that
    /// happens to share a local admin's name must not take that account over.
    pub fn console_account_upsert_ldap(
        &self,
        name: &str,
        role: ConsoleRole,
        extension: Option<&str>,
        now_ms: i64,
    ) -> Result<ConsoleAccount, StoreError> {
        validate_account_name(name)?;
        if let Some(extension) = extension {
            validate_extension(extension)?;
        }
        let tx = self.db.transaction()?;
        match self.console_account_get(name)? {
            Some(existing) if existing.origin == AccountOrigin::Local => {
                return Err(StoreError::AccountIsLocal(name.to_owned()));
            }
            Some(_) => {
                tx.execute(
                    "UPDATE console_account SET role = ?2, extension = ?3 WHERE name = ?1",
                    params![name, role.as_str(), extension],
                )?;
            }
            None => {
                tx.execute(
                    "INSERT INTO console_account (name, role, extension, origin, password_hash, created_at_ms)
                     VALUES (?1, ?2, ?3, 'ldap', NULL, ?4)",
                    params![name, role.as_str(), extension, now_ms],
                )?;
            }
        }
        let account = self
            .console_account_get(name)?
            .ok_or_else(|| StoreError::NoSuchAccount(name.to_owned()))?;
        tx.commit()?;
        Ok(account)
    }

    /// The account with this name, if any.
    pub fn console_account_get(&self, name: &str) -> Result<Option<ConsoleAccount>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM console_account WHERE name = ?1"),
                [name],
                |row| account_from_row(row, 0),
            )
            .optional()?)
    }

    /// All accounts, by name.
    pub fn console_account_list(&self) -> Result<Vec<ConsoleAccount>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM console_account ORDER BY name"
        ))?;
        let rows = stmt.query_map([], |row| account_from_row(row, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes an account with its sessions; the rooms it owned go back to admins only (an
    /// account made again under the name does not inherit them). False if there was none.
    pub fn console_account_delete(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.transaction()?;
        let deleted = tx.execute("DELETE FROM console_account WHERE name = ?1", [name])? > 0;
        if deleted {
            tx.execute("DELETE FROM console_session WHERE account = ?1", [name])?;
            tx.execute("DELETE FROM api_token WHERE account = ?1", [name])?;
            tx.execute("UPDATE room SET owner = NULL WHERE owner = ?1", [name])?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// `NoSuchAccount` unless an account with this name exists.
    pub(crate) fn console_account_must_exist(&self, name: &str) -> Result<(), StoreError> {
        match self.console_account_get(name)? {
            Some(_) => Ok(()),
            None => Err(StoreError::NoSuchAccount(name.to_owned())),
        }
    }

    /// Logs `account` in from `source` (the client's address): a new session whose tokens
    /// are returned once; only the session token's SHA-256 is stored. Refuses an unknown
    /// (`NoSuchAccount`) or disabled (`AccountDisabled`) account.
    pub fn console_session_create(
        &self,
        account: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<NewConsoleSession, StoreError> {
        let found = self
            .console_account_get(account)?
            .ok_or_else(|| StoreError::NoSuchAccount(account.to_owned()))?;
        if found.disabled {
            return Err(StoreError::AccountDisabled(account.to_owned()));
        }
        let session = NewConsoleSession {
            token: random_token()?,
            csrf_token: random_token()?,
        };
        self.db.execute(
            "INSERT INTO console_session (token_hash, account, csrf_token, source, created_at_ms, last_seen_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                token_hash(&session.token).as_slice(),
                account,
                session.csrf_token,
                at_most(source, MAX_SOURCE_CHARS),
                now_ms
            ],
        )?;
        Ok(session)
    }

    /// The live session of `token`, its last request moved to `now_ms`. None if the token is
    /// unknown, the session was idle more than `idle_timeout_ms` (it is ended then), or its
    /// account is disabled or gone.
    ///
    /// The lookup goes by the token's SHA-256: a request's timing could at most tell how
    /// much of a hash matched, and a hash's preimage is what an attacker would need.
    pub fn console_session_get(
        &self,
        token: &str,
        now_ms: i64,
        idle_timeout_ms: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let hash = token_hash(token);
        let tx = self.db.transaction()?;
        let found = tx
            .query_row(
                // The account's columns in ACCOUNT_COLUMNS order, named by table: both
                // tables have a created_at_ms.
                "SELECT s.csrf_token, s.source, s.created_at_ms, s.last_seen_at_ms,
                     a.name, a.role, a.extension, a.origin, a.created_at_ms, a.disabled, a.domain
                 FROM console_session s LEFT JOIN console_account a ON a.name = s.account
                 WHERE s.token_hash = ?1",
                [hash.as_slice()],
                |row| {
                    let account = match row.get::<_, Option<String>>(4)? {
                        Some(_) => Some(account_from_row(row, 4)?),
                        None => None,
                    };
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        account,
                    ))
                },
            )
            .optional()?;
        let Some((csrf_token, source, created_at_ms, last_seen_at_ms, account)) = found else {
            return Ok(None);
        };
        let idle = now_ms.saturating_sub(last_seen_at_ms) > idle_timeout_ms;
        let account = account.filter(|account| !account.disabled && !idle);
        let Some(account) = account else {
            tx.execute(
                "DELETE FROM console_session WHERE token_hash = ?1",
                [hash.as_slice()],
            )?;
            tx.commit()?;
            return Ok(None);
        };
        // A request that took its time must not move the clock back for a later one.
        let last_seen_at_ms = last_seen_at_ms.max(now_ms);
        tx.execute(
            "UPDATE console_session SET last_seen_at_ms = ?2 WHERE token_hash = ?1",
            params![hash.as_slice(), last_seen_at_ms],
        )?;
        tx.commit()?;
        Ok(Some(ConsoleSession {
            account,
            csrf_token,
            source,
            created_at_ms,
            last_seen_at_ms,
        }))
    }

    /// Ends the session of `token` (logout); false if there was none.
    pub fn console_session_end(&self, token: &str) -> Result<bool, StoreError> {
        Ok(self.db.execute(
            "DELETE FROM console_session WHERE token_hash = ?1",
            [token_hash(token).as_slice()],
        )? > 0)
    }

    /// Ends every session of `account` (after a password change); how many there were.
    pub fn console_sessions_end_for(&self, account: &str) -> Result<usize, StoreError> {
        Ok(self
            .db
            .execute("DELETE FROM console_session WHERE account = ?1", [account])?)
    }

    /// Ends every session idle more than `idle_timeout_ms` at `now_ms` (a periodic sweep:
    /// [`Store::console_session_get`] ends only the sessions that come back); how many.
    pub fn console_sessions_expire(
        &self,
        now_ms: i64,
        idle_timeout_ms: i64,
    ) -> Result<usize, StoreError> {
        Ok(self.db.execute(
            "DELETE FROM console_session WHERE last_seen_at_ms < ?1",
            [now_ms.saturating_sub(idle_timeout_ms)],
        )?)
    }

    /// Appends a change to the audit log. Overlong fields are cut (at 128 characters for the
    /// actor, 256 for the source, 64 for the action, 1024 for the detail) rather than refused,
    /// so that recording a change that was made cannot fail on its wording.
    pub fn audit_record(&self, entry: &AuditEntry<'_>, now_ms: i64) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO audit_log (at_ms, actor, source, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now_ms,
                at_most(entry.actor, MAX_ACTOR_CHARS),
                at_most(entry.source, MAX_SOURCE_CHARS),
                at_most(entry.action, MAX_ACTION_CHARS),
                at_most(entry.detail, MAX_DETAIL_CHARS)
            ],
        )?;
        Ok(())
    }

    /// Up to `limit` audit entries, newest first: those at or after `since_ms`, by `actor`
    /// (exactly), or all.
    pub fn audit_list(
        &self,
        since_ms: Option<i64>,
        actor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.db.prepare(
            "SELECT id, at_ms, actor, source, action, detail FROM audit_log
             WHERE (CAST(?1 AS BIGINT) IS NULL OR at_ms >= ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR actor = ?2)
             ORDER BY at_ms DESC, id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![since_ms, actor, limit], |row| {
            Ok(AuditRecord {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                actor: row.get(2)?,
                source: row.get(3)?,
                action: row.get(4)?,
                detail: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRoom;
    use crate::testing::{Backend, on_both_backends};

    const MINUTE: i64 = 60_000;
    const IDLE: i64 = 30 * MINUTE;

    fn store_with_anna_and_otto(backend: Backend) -> Store {
        let store = backend.open();
        store
            .console_account_create(
                "anna",
                ConsoleRole::Admin,
                None,
                "korrekt-pferd-batterie",
                1,
            )
            .unwrap();
        store
            .console_account_create(
                "otto.k",
                ConsoleRole::Staff,
                Some("101"),
                "heftklammer-42",
                2,
            )
            .unwrap();
        store
    }

    fn created_accounts_are_listed_by_name_and_read_back(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let otto = ConsoleAccount {
            name: "otto.k".into(),
            role: ConsoleRole::Staff,
            extension: Some("101".into()),
            origin: AccountOrigin::Local,
            created_at_ms: 2,
            disabled: false,
            domain: None,
        };
        assert_eq!(store.console_account_get("otto.k").unwrap(), Some(otto));
        let names: Vec<String> = store
            .console_account_list()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["anna", "otto.k"]);
        assert_eq!(store.console_account_get("nobody").unwrap(), None);
    }

    fn verify_admits_only_the_right_password_of_an_enabled_local_account(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let anna = store
            .console_account_verify("anna", "korrekt-pferd-batterie")
            .unwrap()
            .unwrap();
        assert_eq!(
            (anna.name.as_str(), anna.role),
            ("anna", ConsoleRole::Admin)
        );
        for (name, password) in [
            ("anna", "korrekt-pferd-batteriE"),
            ("anna", ""),
            ("anna", "heftklammer-42"),
            ("nobody", "korrekt-pferd-batterie"),
            ("", "korrekt-pferd-batterie"),
        ] {
            assert_eq!(
                store.console_account_verify(name, password).unwrap(),
                None,
                "{name:?} {password:?}"
            );
        }
        let huge = "x".repeat(MAX_CONSOLE_PASSWORD_CHARS + 1);
        assert_eq!(store.console_account_verify("anna", &huge).unwrap(), None);
    }

    fn a_disabled_account_does_not_verify_until_enabled_again(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        assert!(store.console_account_set_disabled("otto.k", true).unwrap());
        assert!(
            store
                .console_account_get("otto.k")
                .unwrap()
                .unwrap()
                .disabled
        );
        assert_eq!(
            store
                .console_account_verify("otto.k", "heftklammer-42")
                .unwrap(),
            None
        );
        assert!(store.console_account_set_disabled("otto.k", false).unwrap());
        assert!(
            store
                .console_account_verify("otto.k", "heftklammer-42")
                .unwrap()
                .is_some()
        );
        assert!(!store.console_account_set_disabled("nobody", true).unwrap());
    }

    fn an_ldap_account_never_verifies_here(backend: Backend) {
        let store = backend.open();
        store
            .console_account_upsert_ldap("lena", ConsoleRole::Staff, None, 5)
            .unwrap();
        for password in ["", "irgendein-passwort", "(none)"] {
            assert_eq!(
                store.console_account_verify("lena", password).unwrap(),
                None
            );
        }
        assert!(matches!(
            store.console_account_set_password("lena", "ein-neues-passwort"),
            Err(StoreError::AccountIsLdap(name)) if name == "lena"
        ));
    }

    #[test]
    fn the_dummy_hash_has_the_cost_of_real_ones() {
        let real = hash_password("korrekt-pferd-batterie").unwrap();
        let params = |phc: &str| phc.split('$').nth(3).unwrap().to_owned();
        assert_eq!(params(DUMMY_PASSWORD_HASH), params(&real));
        assert_eq!(&real[..14], "$argon2id$v=19");
        assert!(!password_matches("-", DUMMY_PASSWORD_HASH, "").unwrap());
    }

    fn passwords_are_stored_only_as_salted_argon2id(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        store
            .console_account_create("bert", ConsoleRole::Staff, None, "heftklammer-42", 3)
            .unwrap();
        let hashes: Vec<String> = store
            .db
            .prepare("SELECT password_hash FROM console_account WHERE name IN ('otto.k', 'bert')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(hashes.len(), 2);
        assert_ne!(hashes[0], hashes[1], "same password, different salts");
        for hash in &hashes {
            assert!(
                hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{hash}"
            );
            assert!(!hash.contains("heftklammer"));
        }
    }

    fn a_new_password_replaces_the_old(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        assert!(
            store
                .console_account_set_password("anna", "neues-langes-passwort")
                .unwrap()
        );
        assert_eq!(
            store
                .console_account_verify("anna", "korrekt-pferd-batterie")
                .unwrap(),
            None
        );
        assert!(
            store
                .console_account_verify("anna", "neues-langes-passwort")
                .unwrap()
                .is_some()
        );
        assert!(
            !store
                .console_account_set_password("nobody", "neues-langes-passwort")
                .unwrap()
        );
        assert!(matches!(
            store.console_account_set_password("anna", "kurz"),
            Err(StoreError::InvalidConsolePassword(
                ConsolePasswordProblem::TooShort(4)
            ))
        ));
    }

    fn create_refuses_bad_names_passwords_extensions_and_duplicates(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        for name in ["", "Anna", "an na", "anna!", "änna", &"a".repeat(65)] {
            assert!(
                matches!(
                    store.console_account_create(name, ConsoleRole::Staff, None, "lang-genug-1", 0),
                    Err(StoreError::InvalidAccountName(n)) if n == name
                ),
                "{name:?}"
            );
        }
        store
            .console_account_create(&"a".repeat(64), ConsoleRole::Staff, None, "lang-genug-1", 0)
            .unwrap();
        store
            .console_account_create("a-b_c.9", ConsoleRole::Staff, None, "lang-genug-1", 0)
            .unwrap();
        for (password, problem) in [
            ("", ConsolePasswordProblem::TooShort(0)),
            ("neun-zch9", ConsolePasswordProblem::TooShort(9)),
            ("zehn\nzeichen", ConsolePasswordProblem::ControlCharacter),
        ] {
            match store.console_account_create("neu", ConsoleRole::Staff, None, password, 0) {
                Err(StoreError::InvalidConsolePassword(p)) => assert_eq!(p, problem),
                other => panic!("{password:?}: {other:?}"),
            }
        }
        let long = "x".repeat(MAX_CONSOLE_PASSWORD_CHARS + 1);
        assert!(matches!(
            store.console_account_create("neu", ConsoleRole::Staff, None, &long, 0),
            Err(StoreError::InvalidConsolePassword(
                ConsolePasswordProblem::TooLong(257)
            ))
        ));
        for extension in ["1", "10a", "1234567890123456"] {
            assert!(matches!(
                store.console_account_create(
                    "neu",
                    ConsoleRole::Staff,
                    Some(extension),
                    "lang-genug-1",
                    0
                ),
                Err(StoreError::InvalidExtension { .. })
            ));
        }
        match store.console_account_create("anna", ConsoleRole::Staff, None, "lang-genug-1", 0) {
            Err(StoreError::AccountExists(name)) => assert_eq!(name, "anna"),
            other => panic!("expected AccountExists, got {other:?}"),
        }
        assert_eq!(
            store.console_account_get("anna").unwrap().unwrap().role,
            ConsoleRole::Admin,
            "the first stays"
        );
        assert_eq!(store.console_account_get("neu").unwrap(), None);
    }

    #[test]
    fn error_messages_name_the_problem_but_never_the_password() {
        let err = validate_console_password("geheim").unwrap_err().to_string();
        assert_eq!(
            err,
            "console password has 6 characters; at least 10 are needed"
        );
        let err = StoreError::InvalidAccountName("Anna".into()).to_string();
        assert!(err.contains("\"Anna\"") && err.contains("a-z"), "{err}");
    }

    fn upsert_ldap_adds_and_updates_ldap_accounts_but_never_takes_over_a_local_one(
        backend: Backend,
    ) {
        let store = store_with_anna_and_otto(backend);
        let lena = store
            .console_account_upsert_ldap("lena", ConsoleRole::Staff, Some("205"), 10)
            .unwrap();
        assert_eq!(
            (
                lena.origin,
                lena.role,
                lena.extension.as_deref(),
                lena.created_at_ms
            ),
            (AccountOrigin::Ldap, ConsoleRole::Staff, Some("205"), 10)
        );
        store.console_account_set_disabled("lena", true).unwrap();
        let again = store
            .console_account_upsert_ldap("lena", ConsoleRole::Admin, None, 20)
            .unwrap();
        assert_eq!(
            (
                again.role,
                again.extension,
                again.created_at_ms,
                again.disabled
            ),
            (ConsoleRole::Admin, None, 10, true),
            "role and extension follow the directory; creation time and disabling stay"
        );
        match store.console_account_upsert_ldap("anna", ConsoleRole::Staff, None, 30) {
            Err(StoreError::AccountIsLocal(name)) => assert_eq!(name, "anna"),
            other => panic!("expected AccountIsLocal, got {other:?}"),
        }
        let anna = store.console_account_get("anna").unwrap().unwrap();
        assert_eq!(
            (anna.origin, anna.role),
            (AccountOrigin::Local, ConsoleRole::Admin)
        );
        assert!(
            store
                .console_account_verify("anna", "korrekt-pferd-batterie")
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            store.console_account_create("lena", ConsoleRole::Staff, None, "lang-genug-1", 0),
            Err(StoreError::AccountExists(_))
        ));
    }

    fn a_session_is_found_by_its_token_and_touched(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let new = store
            .console_session_create("otto.k", "10.8.0.7", 1_000)
            .unwrap();
        assert_eq!(new.token.len(), 43);
        assert_eq!(new.csrf_token.len(), 43);
        assert_ne!(new.token, new.csrf_token);
        for token in [&new.token, &new.csrf_token] {
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
        }
        let session = store
            .console_session_get(&new.token, 5_000, IDLE)
            .unwrap()
            .unwrap();
        assert_eq!(session.account.name, "otto.k");
        assert_eq!(session.csrf_token, new.csrf_token);
        assert_eq!(session.source, "10.8.0.7");
        assert_eq!(
            (session.created_at_ms, session.last_seen_at_ms),
            (1_000, 5_000)
        );
        // A late request with an older time does not move the last request back.
        let late = store
            .console_session_get(&new.token, 4_000, IDLE)
            .unwrap()
            .unwrap();
        assert_eq!(late.last_seen_at_ms, 5_000);
        assert_eq!(
            store
                .console_session_get(&new.csrf_token, 5_000, IDLE)
                .unwrap(),
            None
        );
        assert_eq!(store.console_session_get("", 5_000, IDLE).unwrap(), None);
        let text = format!("{new:?} {session:?}");
        assert!(
            !text.contains(&new.token) && !text.contains(&new.csrf_token),
            "{text}"
        );
    }

    fn sessions_are_stored_only_as_token_hashes(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let new = store.console_session_create("anna", "cli", 1).unwrap();
        let stored: Vec<u8> = store
            .db
            .query_row("SELECT token_hash FROM console_session", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, token_hash(&new.token).to_vec());
    }

    fn a_session_idle_too_long_ends_and_an_active_one_lives_on(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let new = store.console_session_create("anna", "10.8.0.7", 0).unwrap();
        // Each request within the timeout keeps it alive, however long the whole session.
        for minute in [29, 58, 87, 116] {
            assert!(
                store
                    .console_session_get(&new.token, minute * MINUTE, IDLE)
                    .unwrap()
                    .is_some(),
                "at minute {minute}"
            );
        }
        // Exactly the timeout is still in time; one millisecond more is not.
        assert!(
            store
                .console_session_get(&new.token, 146 * MINUTE, IDLE)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store
                .console_session_get(&new.token, 176 * MINUTE + 1, IDLE)
                .unwrap(),
            None
        );
        // Ended, not just refused: coming back at once does not revive it.
        assert_eq!(
            store
                .console_session_get(&new.token, 176 * MINUTE + 2, i64::MAX)
                .unwrap(),
            None
        );
    }

    fn the_sweep_ends_only_idle_sessions(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let old = store.console_session_create("anna", "a", 0).unwrap();
        let fresh = store
            .console_session_create("anna", "b", 20 * MINUTE)
            .unwrap();
        assert_eq!(store.console_sessions_expire(40 * MINUTE, IDLE).unwrap(), 1);
        assert_eq!(
            store
                .console_session_get(&old.token, 40 * MINUTE, i64::MAX)
                .unwrap(),
            None
        );
        assert!(
            store
                .console_session_get(&fresh.token, 40 * MINUTE, IDLE)
                .unwrap()
                .is_some()
        );
    }

    fn logout_ends_one_session_and_end_for_all_of_an_account(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let a1 = store.console_session_create("anna", "a", 0).unwrap();
        let a2 = store.console_session_create("anna", "b", 0).unwrap();
        let a3 = store.console_session_create("anna", "c", 0).unwrap();
        let otto = store.console_session_create("otto.k", "d", 0).unwrap();
        assert!(store.console_session_end(&a1.token).unwrap());
        assert!(!store.console_session_end(&a1.token).unwrap());
        assert_eq!(store.console_session_get(&a1.token, 1, IDLE).unwrap(), None);
        assert!(
            store
                .console_session_get(&a2.token, 1, IDLE)
                .unwrap()
                .is_some()
        );
        assert_eq!(store.console_sessions_end_for("anna").unwrap(), 2);
        for token in [&a2.token, &a3.token] {
            assert_eq!(store.console_session_get(token, 1, IDLE).unwrap(), None);
        }
        assert!(
            store
                .console_session_get(&otto.token, 1, IDLE)
                .unwrap()
                .is_some()
        );
    }

    fn disabling_or_deleting_an_account_ends_its_sessions(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        let otto = store.console_session_create("otto.k", "a", 0).unwrap();
        let anna = store.console_session_create("anna", "b", 0).unwrap();
        store.console_account_set_disabled("otto.k", true).unwrap();
        store.console_account_set_disabled("otto.k", false).unwrap();
        assert_eq!(
            store.console_session_get(&otto.token, 1, IDLE).unwrap(),
            None,
            "enabling again does not bring the session back"
        );
        assert!(store.console_account_delete("anna").unwrap());
        assert!(!store.console_account_delete("anna").unwrap());
        assert_eq!(
            store.console_session_get(&anna.token, 1, IDLE).unwrap(),
            None
        );
        let count: i64 = store
            .db
            .query_row("SELECT count(*) FROM console_session", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
        assert_eq!(store.console_account_get("anna").unwrap(), None);
    }

    fn a_session_whose_account_was_disabled_behind_its_back_is_refused_and_ended(backend: Backend) {
        // Another writer (an older build, a manual fix) disabled the account without the
        // session sweep that `console_account_set_disabled` does.
        let store = store_with_anna_and_otto(backend);
        let otto = store.console_session_create("otto.k", "a", 0).unwrap();
        store
            .db
            .execute(
                "UPDATE console_account SET disabled = 1 WHERE name = 'otto.k'",
                [],
            )
            .unwrap();
        assert_eq!(
            store.console_session_get(&otto.token, 1, IDLE).unwrap(),
            None
        );
        store
            .db
            .execute(
                "UPDATE console_account SET disabled = 0 WHERE name = 'otto.k'",
                [],
            )
            .unwrap();
        assert_eq!(
            store.console_session_get(&otto.token, 2, IDLE).unwrap(),
            None
        );
    }

    fn sessions_are_refused_for_unknown_and_disabled_accounts(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        assert!(matches!(
            store.console_session_create("nobody", "a", 0),
            Err(StoreError::NoSuchAccount(n)) if n == "nobody"
        ));
        store.console_account_set_disabled("anna", true).unwrap();
        assert!(matches!(
            store.console_session_create("anna", "a", 0),
            Err(StoreError::AccountDisabled(n)) if n == "anna"
        ));
    }

    fn rooms_have_owners_who_must_exist_and_lose_them_when_deleted(backend: Backend) {
        let store = store_with_anna_and_otto(backend);
        store.room_create(&NewRoom::new("4711", 0)).unwrap();
        let owned = store
            .room_create(&NewRoom {
                owner: Some("otto.k".into()),
                ..NewRoom::new("4712", 0)
            })
            .unwrap();
        assert_eq!(owned.owner.as_deref(), Some("otto.k"));
        assert!(matches!(
            store.room_create(&NewRoom {
                owner: Some("nobody".into()),
                ..NewRoom::new("4713", 0)
            }),
            Err(StoreError::NoSuchAccount(n)) if n == "nobody"
        ));
        assert_eq!(store.room_get("4713").unwrap(), None);
        let given = store.room_set_owner("4711", Some("otto.k")).unwrap();
        assert_eq!(given.owner.as_deref(), Some("otto.k"));
        let numbers = |rooms: Vec<crate::Room>| -> Vec<String> {
            rooms.into_iter().map(|r| r.number).collect()
        };
        assert_eq!(
            numbers(store.room_list_owned_by("otto.k").unwrap()),
            ["4711", "4712"]
        );
        assert!(matches!(
            store.room_set_owner("4711", Some("nobody")),
            Err(StoreError::NoSuchAccount(_))
        ));
        assert!(matches!(
            store.room_set_owner("9", Some("anna")),
            Err(StoreError::NoSuchRoom(_))
        ));
        assert_eq!(store.room_set_owner("4711", None).unwrap().owner, None);
        assert_eq!(
            numbers(store.room_list_owned_by("otto.k").unwrap()),
            ["4712"]
        );
        store.console_account_delete("otto.k").unwrap();
        assert_eq!(store.room_get("4712").unwrap().unwrap().owner, None);
        // A new account under the old name does not inherit the rooms.
        store
            .console_account_create("otto.k", ConsoleRole::Staff, None, "heftklammer-42", 9)
            .unwrap();
        assert!(store.room_list_owned_by("otto.k").unwrap().is_empty());
    }

    fn entry<'a>(actor: &'a str, action: &'a str, detail: &'a str) -> AuditEntry<'a> {
        AuditEntry {
            actor,
            source: "cli",
            action,
            detail,
        }
    }

    fn audit_entries_come_newest_first_and_filter_by_time_and_actor(backend: Backend) {
        let store = backend.open();
        store
            .audit_record(&entry("cli:root", "room.create", "room 4711"), 100)
            .unwrap();
        store
            .audit_record(&entry("anna", "room.update", "room 4711"), 200)
            .unwrap();
        store
            .audit_record(&entry("cli:root", "account.add", "account otto"), 200)
            .unwrap();
        store
            .audit_record(&entry("anna", "room.delete", "room 4711"), 300)
            .unwrap();
        let actions = |records: Vec<AuditRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.action).collect()
        };
        let all = store.audit_list(None, None, 100).unwrap();
        assert_eq!(
            all[0],
            AuditRecord {
                id: 4,
                at_ms: 300,
                actor: "anna".into(),
                source: "cli".into(),
                action: "room.delete".into(),
                detail: "room 4711".into(),
            }
        );
        // Same time: the one recorded later comes first.
        assert_eq!(
            actions(all),
            ["room.delete", "account.add", "room.update", "room.create"]
        );
        assert_eq!(
            actions(store.audit_list(Some(200), None, 100).unwrap()),
            ["room.delete", "account.add", "room.update"]
        );
        assert_eq!(
            actions(store.audit_list(None, Some("cli:root"), 100).unwrap()),
            ["account.add", "room.create"]
        );
        assert_eq!(
            actions(store.audit_list(Some(150), Some("anna"), 1).unwrap()),
            ["room.delete"]
        );
        assert!(store.audit_list(None, Some("cli"), 100).unwrap().is_empty());
        assert!(store.audit_list(None, None, 0).unwrap().is_empty());
        assert_eq!(store.audit_list(None, None, usize::MAX).unwrap().len(), 4);
    }

    fn overlong_audit_fields_are_cut_at_a_character_boundary(backend: Backend) {
        let store = backend.open();
        let detail = "ä".repeat(MAX_DETAIL_CHARS + 10);
        store
            .audit_record(&entry("cli:root", "room.create", &detail), 1)
            .unwrap();
        let stored = &store.audit_list(None, None, 1).unwrap()[0];
        assert_eq!(stored.detail.chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(at_most("abc", 5), "abc");
        assert_eq!(at_most("abc", 2), "ab");
    }

    #[test]
    fn roles_read_as_words() {
        assert_eq!("admin".parse::<ConsoleRole>().unwrap(), ConsoleRole::Admin);
        assert_eq!("Staff".parse::<ConsoleRole>().unwrap(), ConsoleRole::Staff);
        assert!(matches!(
            "boss".parse::<ConsoleRole>(),
            Err(StoreError::InvalidConsoleRole(w)) if w == "boss"
        ));
        assert_eq!(ConsoleRole::Staff.to_string(), "staff");
        assert_eq!(AccountOrigin::Ldap.to_string(), "ldap");
    }

    fn a_towns_account_keeps_its_town_through_sign_in_and_session(backend: Backend) {
        let store = backend.open();
        let created = store
            .console_account_create_in(
                Some("stadt-a.example"),
                "amt-a",
                ConsoleRole::Admin,
                None,
                "lang-genug-1",
                1,
            )
            .unwrap();
        assert_eq!(created.domain.as_deref(), Some("stadt-a.example"));
        let verified = store
            .console_account_verify("amt-a", "lang-genug-1")
            .unwrap()
            .unwrap();
        assert_eq!(verified, created);
        let new = store.console_session_create("amt-a", "cli", 2).unwrap();
        let session = store
            .console_session_get(&new.token, 3, 60_000)
            .unwrap()
            .unwrap();
        assert_eq!(session.account.domain.as_deref(), Some("stadt-a.example"));
        let operator = store
            .console_account_create("root", ConsoleRole::Admin, None, "lang-genug-2", 4)
            .unwrap();
        assert_eq!(operator.domain, None);
        assert!(matches!(
            store.console_account_create_in(
                Some("stadt a"),
                "amt-x",
                ConsoleRole::Admin,
                None,
                "lang-genug-3",
                5
            ),
            Err(StoreError::InvalidDomain { .. })
        ));
        assert_eq!(store.console_account_get("amt-x").unwrap(), None);
    }

    on_both_backends!(
        a_towns_account_keeps_its_town_through_sign_in_and_session,
        created_accounts_are_listed_by_name_and_read_back,
        verify_admits_only_the_right_password_of_an_enabled_local_account,
        a_disabled_account_does_not_verify_until_enabled_again,
        an_ldap_account_never_verifies_here,
        passwords_are_stored_only_as_salted_argon2id,
        a_new_password_replaces_the_old,
        create_refuses_bad_names_passwords_extensions_and_duplicates,
        upsert_ldap_adds_and_updates_ldap_accounts_but_never_takes_over_a_local_one,
        a_session_is_found_by_its_token_and_touched,
        sessions_are_stored_only_as_token_hashes,
        a_session_idle_too_long_ends_and_an_active_one_lives_on,
        the_sweep_ends_only_idle_sessions,
        logout_ends_one_session_and_end_for_all_of_an_account,
        disabling_or_deleting_an_account_ends_its_sessions,
        a_session_whose_account_was_disabled_behind_its_back_is_refused_and_ended,
        sessions_are_refused_for_unknown_and_disabled_accounts,
        rooms_have_owners_who_must_exist_and_lose_them_when_deleted,
        audit_entries_come_newest_first_and_filter_by_time_and_actor,
        overlong_audit_fields_are_cut_at_a_character_boundary,
    );
}
