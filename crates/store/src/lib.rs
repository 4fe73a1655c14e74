//! Durable state of amtsleitung: call records, pre-created conference rooms (with hashed PINs),
//! recordings, dialplan history, staff users (with digest HA1s, never passwords) and the
//! registrations of their phones, web console accounts with their sessions, and the audit log
//! of administrative changes.
//!
//! SQLite (embedded, one file in the data directory) is the default; PostgreSQL
//! ([`Store::open_postgres`]) serves multi-node set-ups with the same operations, each query
//! written once over both (db.rs). The API is synchronous and small on purpose: the server
//! calls it from one plain thread (which the PostgreSQL client needs: no tokio runtime on
//! it). It knows nothing about SIP, and does not cache, notify other nodes or pool
//! connections.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use db::{Db, Dialect, OptionalExtension, ToValue, params};

mod api_tokens;
mod call_settings;
mod calls_in_progress;
mod console;
mod db;
mod dialplan_history;
mod live_rooms;
mod recordings;
mod registrations;
mod ring_groups;
mod room_links;
mod room_tokens;
mod rooms;
#[cfg(any(test, feature = "test-cluster"))]
pub mod test_cluster;
#[cfg(test)]
mod testing;
mod users;
mod voicemail;

pub use api_tokens::{API_TOKEN_PREFIX, ApiToken, NewApiToken};
pub use call_settings::{
    CallSettings, DEFAULT_NO_ANSWER_SECONDS, FollowMeStep, FollowMeTarget, ForwardKind,
    MAX_FOLLOW_ME_STEPS, RING_SECONDS, validate_target as validate_forward_target,
};
pub use calls_in_progress::{CallInProgress, INTERRUPTED_REASON};
pub use console::{
    AccountOrigin, AuditEntry, AuditRecord, ConsoleAccount, ConsolePasswordProblem, ConsoleRole,
    ConsoleSession, MAX_ACCOUNT_NAME_CHARS, MAX_CONSOLE_PASSWORD_CHARS, MIN_CONSOLE_PASSWORD_CHARS,
    NewConsoleSession, validate_account_name, validate_console_password,
};
pub use db::DatabaseError;
pub use dialplan_history::DialplanVersion;
pub use live_rooms::LiveRoom;
pub use recordings::{Recording, RecordingId};
pub use registrations::{Binding, BindingProblem, MAX_PATH_ENTRIES, UserBinding};
pub use ring_groups::GroupLogout;
pub use room_links::{RoomLink, validate_link_url};
pub use room_tokens::{TokenKind, same_token_hash, token_hash};
pub use rooms::{
    DEFAULT_MAX_PARTICIPANTS, MAX_PARTICIPANTS_LIMIT, MAX_PIN_DIGITS, MAX_ROOM_NUMBER_DIGITS,
    MIN_PIN_DIGITS, NewRoom, PinChange, PinCheck, PinKind, PinProblem, Room, RoomUpdate,
};
pub use users::{
    AllowedNetwork, DEFAULT_DOMAIN, DEFAULT_MAX_CONTACTS, DisplayNameProblem, Language,
    MAX_ALLOWED_NETWORKS, MAX_CALL_CLASSES, MAX_CONTACTS_LIMIT, MAX_DISPLAY_NAME_CHARS,
    MAX_EXTENSION_DIGITS, MAX_PASSWORD_CHARS, MEDIA_ENCRYPTION_WORDS, MIN_EXTENSION_DIGITS,
    MIN_PASSWORD_CHARS, NewUser, PasswordProblem, User, UserLocation, ha1_md5, ha1_sha256,
    validate_extension,
};
pub use voicemail::{
    MailboxPin, MailboxSettings, MessageCounts, NewVoicemail, Voicemail, VoicemailId,
};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory we tried to create.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The data directory exists but this process cannot make files in it (SQLite needs
    /// to, for its database, journal and WAL files).
    #[error("cannot write in data directory {path}: {source}")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A backup would overwrite a file (or its name is not UTF-8, which SQLite cannot take).
    #[error("will not write the backup to {0}: the file exists or its name is not UTF-8")]
    BackupTargetExists(PathBuf),
    /// The database refused an operation.
    #[error("database error: {0}")]
    Database(#[from] DatabaseError),
    /// A PostgreSQL connection string that cannot be read (the string itself is not in the
    /// message: it may hold a password).
    #[error("cannot read the PostgreSQL connection string for {location}: {source}")]
    PostgresUrl {
        /// The database as far as it could be read, without password.
        location: String,
        /// What the client library found wrong.
        source: postgres::Error,
    },
    /// The PostgreSQL server could not be reached or refused the login.
    #[error("cannot connect to {location}: {source}")]
    PostgresConnect {
        /// The database, without password.
        location: String,
        /// Why.
        source: DatabaseError,
    },
    /// `backup_to` copies a SQLite file; a PostgreSQL database is backed up by its own tools.
    #[error("the store is the PostgreSQL database {0}: back it up with pg_dump, not amtsleitung")]
    BackupNeedsPgDump(String),
    /// The database was written by a newer amtsleitung.
    #[error(
        "database schema version {found} is newer than this program knows ({known}); upgrade amtsleitung"
    )]
    SchemaTooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A room number is not 1 to 10 digits (a tenant's: followed by `@` and its domain).
    #[error(
        "room number {number:?} must be 1 to {MAX_ROOM_NUMBER_DIGITS} digits 0-9 (a tenant's room: NUMBER@DOMAIN)"
    )]
    InvalidRoomNumber {
        /// The rejected number.
        number: String,
    },
    /// A PIN has the wrong format; the PIN itself is never part of the message.
    #[error("{kind} {problem}")]
    InvalidPin {
        /// Participant or moderator PIN.
        kind: PinKind,
        /// What is wrong with it.
        problem: PinProblem,
    },
    /// PIN and moderator PIN are the same, so the moderator could never be recognised.
    #[error("the PIN and the moderator PIN must differ")]
    PinsIdentical,
    /// Wait-for-moderator without a moderator PIN would keep the room waiting forever.
    #[error("wait-for-moderator needs a moderator PIN, otherwise nobody can start the room")]
    ModeratorPinRequired,
    /// The participant limit is outside 1..=MAX_PARTICIPANTS_LIMIT.
    #[error("max participants must be 1 to {MAX_PARTICIPANTS_LIMIT}, got {0}")]
    InvalidMaxParticipants(u32),
    /// A room with this number is already stored.
    #[error("room {0} already exists")]
    RoomExists(String),
    /// No room with this number is stored.
    #[error("no room {0}")]
    NoSuchRoom(String),
    /// A room link's URL is not one the server can POST to.
    #[error("{which} URL {url:?} {problem}")]
    InvalidLinkUrl {
        /// `WHIP` or `WHEP`.
        which: &'static str,
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A bearer token that would not fit in an HTTP header.
    #[error("the {0} token must be 1 to 4096 visible ASCII characters")]
    InvalidLinkToken(&'static str),
    /// The operating system gave no randomness for a PIN salt.
    #[error("no randomness for a PIN salt: {0}")]
    Randomness(#[source] getrandom::Error),
    /// Argon2 refused to hash a PIN (a parameter bug, not user input).
    #[error("PIN hashing failed: {0}")]
    PinHashing(#[source] argon2::Error),
    /// PINs were stored by a newer amtsleitung with a hashing scheme this build lacks.
    #[error("room {room} uses PIN scheme {scheme}, unknown to this program; upgrade amtsleitung")]
    UnknownPinScheme {
        /// The room whose PINs cannot be checked.
        room: String,
        /// The scheme number found.
        scheme: i64,
    },
    /// An email address that cannot be a mailbox's (no `@`, spaces, control characters, or
    /// too long): it would break the mail's header.
    #[error("email address {0:?} must be local@domain, at most 254 characters, no spaces")]
    InvalidEmail(String),
    /// No voicemail message with this id.
    #[error("no voicemail message with id {0}")]
    NoSuchVoicemail(i64),
    /// A recording path is not valid UTF-8 and cannot be stored as text.
    #[error("recording path {0:?} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// A recording size does not fit SQLite's signed 64-bit integer.
    #[error("recording size {0} bytes is too large to store")]
    RecordingTooLarge(u64),
    /// No recording with this id was started.
    #[error("no recording with id {0}")]
    NoSuchRecording(i64),
    /// The recording was already finished once.
    #[error("recording {0} is already finished")]
    RecordingAlreadyFinished(i64),
    /// The same path appears twice in one dialplan version.
    #[error("dialplan file {0:?} appears twice in one version")]
    DuplicateDialplanFile(String),
    /// A dialplan file path is empty, absolute or climbs out with `..`.
    #[error("dialplan file path {0:?} must be relative to the dialplan directory")]
    DialplanPathNotRelative(String),
    /// An extension is not 2 to 15 digits (15 is the longest E.164 number).
    #[error(
        "extension {extension:?} must be {MIN_EXTENSION_DIGITS} to {MAX_EXTENSION_DIGITS} digits 0-9"
    )]
    InvalidExtension {
        /// The rejected extension.
        extension: String,
    },
    /// A SIP domain or digest realm is empty, too long, or holds characters that cannot appear
    /// in a SIP URI host or a quoted digest parameter.
    #[error("{what} {value:?} must be 1 to 253 characters without spaces, quotes or backslashes")]
    InvalidDomain {
        /// "domain" or "realm".
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A user's display name cannot be stored.
    #[error("display name {problem}")]
    InvalidDisplayName {
        /// What is wrong with it.
        problem: DisplayNameProblem,
    },
    /// A password has the wrong form; the password itself is never part of the message.
    #[error("password {0}")]
    InvalidPassword(PasswordProblem),
    /// An allowed source network is not an address or CIDR network.
    #[error("allowed network {text:?} {problem}")]
    InvalidNetwork {
        /// What the admin wrote.
        text: String,
        /// What is wrong with it, with a suggestion where one helps.
        problem: String,
    },
    /// A user has more allowed networks than a REGISTER check should walk through.
    #[error("at most {MAX_ALLOWED_NETWORKS} allowed networks per user, got {0}")]
    TooManyAllowedNetworks(usize),
    /// The contact limit is outside 1..=MAX_CONTACTS_LIMIT.
    #[error("max contacts must be 1 to {MAX_CONTACTS_LIMIT}, got {0}")]
    InvalidMaxContacts(u32),
    /// A language other than the ones the prompts exist in.
    #[error("language {0:?} must be de or en")]
    InvalidLanguage(String),
    /// A call class name that cannot be stored in the comma-separated column.
    #[error("call class {0:?} must be lower-case letters and hyphens")]
    InvalidCallClassName(String),
    /// More call class names than there are classes.
    #[error("at most {MAX_CALL_CLASSES} call classes per user, got {0}")]
    TooManyCallClasses(usize),
    /// An SRTP setting other than the three words the server knows.
    #[error("SRTP setting {0:?} must be off, optional or required")]
    InvalidMediaEncryption(String),
    /// A location number that is not `+` and 3 to 15 digits (the server checks it further).
    #[error("location number {0:?} must be in international form: + and 3 to 15 digits")]
    InvalidLocationNumber(String),
    /// A user with this extension is already stored in the domain.
    #[error("user {} already exists", users::aor_text(domain, extension))]
    UserExists {
        /// The user's domain.
        domain: String,
        /// The taken extension.
        extension: String,
    },
    /// No user with this extension is stored in the domain.
    #[error("no user {}", users::aor_text(domain, extension))]
    NoSuchUser {
        /// The domain looked in.
        domain: String,
        /// The extension looked for.
        extension: String,
    },
    /// The same user twice in one batch.
    #[error(
        "user {} appears twice (first at entry {first})",
        users::aor_text(domain, extension)
    )]
    RepeatedInBatch {
        /// The user's domain.
        domain: String,
        /// The repeated extension.
        extension: String,
        /// Position of its first appearance in the batch.
        first: usize,
    },
    /// Not a forwarding kind.
    #[error("forwarding kind must be always, busy or no-answer, got {0:?}")]
    InvalidForwardKind(String),
    /// A forwarding or follow-me target that is not a number.
    #[error(
        "forwarding target {0:?} must be a number: digits, * and #, an optional leading +, at most 32 characters"
    )]
    InvalidForwardTarget(String),
    /// A ring time outside what callers wait.
    #[error("ring time must be 5 to 180 seconds, got {0}")]
    InvalidRingSeconds(u32),
    /// A follow-me step that cannot be read.
    #[error(
        "follow-me step {0:?} must be NUMBER[@NETWORK][+NUMBER...]:SECONDS, with 1 to 8 numbers"
    )]
    InvalidFollowMeStep(String),
    /// More follow-me steps than a caller would wait through.
    #[error("at most 8 follow-me steps, got {0}")]
    TooManyFollowMeSteps(usize),
    /// Some users of a batch cannot be stored, so none of them was; each entry is the
    /// position in the batch and why.
    #[error("{} of the users cannot be stored; none was stored", .0.len())]
    BatchRejected(Vec<(usize, StoreError)>),
    /// More bindings than the user's contact limit.
    #[error(
        "user {} may have at most {max} contacts, got {got}",
        users::aor_text(domain, extension)
    )]
    TooManyContacts {
        /// The user's domain.
        domain: String,
        /// The user's extension.
        extension: String,
        /// The user's limit.
        max: u32,
        /// Bindings offered.
        got: usize,
    },
    /// A registration binding cannot be stored.
    #[error("binding {contact:?}: {problem}")]
    InvalidBinding {
        /// The binding's Contact URI.
        contact: String,
        /// What is wrong with it.
        problem: BindingProblem,
    },
    /// A console account name that is not 1 to 64 of the characters allowed.
    #[error(
        "console account name {0:?} must be 1 to {MAX_ACCOUNT_NAME_CHARS} characters a-z, 0-9, '.', '_' or '-' (lower-case)"
    )]
    InvalidAccountName(String),
    /// A console password has the wrong form; the password itself is never in the message.
    #[error("console password {0}")]
    InvalidConsolePassword(ConsolePasswordProblem),
    /// A console role other than admin or staff.
    #[error("role {0:?} must be admin or staff")]
    InvalidConsoleRole(String),
    /// A console account with this name is already stored.
    #[error("console account {0} already exists")]
    AccountExists(String),
    /// No console account with this name is stored.
    #[error("no console account {0}")]
    NoSuchAccount(String),
    /// The console account is disabled, so it cannot log in.
    #[error("console account {0} is disabled")]
    AccountDisabled(String),
    /// An API token's label must say what it is for, in one line of at most 100 characters.
    #[error("a token's label must be 1 to 100 characters on one line")]
    InvalidTokenLabel,
    /// An LDAP login would take over a local console account of the same name.
    #[error(
        "console account {0} is a local account; an LDAP login of the same name does not take it over"
    )]
    AccountIsLocal(String),
    /// A password was to be set for an account whose password the LDAP directory checks.
    #[error("console account {0} logs in through LDAP; its password is the directory's")]
    AccountIsLdap(String),
    /// Argon2 refused to hash a console password (a parameter bug, not user input).
    #[error("password hashing failed: {0}")]
    PasswordHashing(#[source] argon2::password_hash::Error),
    /// A stored console password hash this build cannot check (damaged, or written by a
    /// newer amtsleitung with another algorithm).
    #[error(
        "the stored password hash of console account {account} cannot be checked ({problem}); set a new password"
    )]
    UnreadablePasswordHash {
        /// The account.
        account: String,
        /// What the hash library said.
        problem: argon2::password_hash::Error,
    },
}

/// Schema migrations, applied in order; index + 1 is the schema version after applying.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: call log.
    "CREATE TABLE call_record (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER NOT NULL,
        answered INTEGER NOT NULL,
        final_status INTEGER NOT NULL,
        end_reason TEXT NOT NULL
    );
    CREATE INDEX call_record_started ON call_record(started_at_ms);",
    // 2: rooms (PINs as Argon2id hashes under one per-room salt), recordings, dialplan history.
    "CREATE TABLE room (
        number TEXT PRIMARY KEY,
        pin_scheme INTEGER NOT NULL,
        pin_salt BLOB NOT NULL,
        pin_hash BLOB,
        moderator_pin_hash BLOB,
        max_participants INTEGER NOT NULL,
        wait_for_moderator INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE recording (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        path TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER,
        bytes INTEGER
    );
    CREATE INDEX recording_room ON recording(room, started_at_ms);
    CREATE TABLE dialplan_version (
        version INTEGER PRIMARY KEY,
        created_at_ms INTEGER NOT NULL,
        comment TEXT NOT NULL
    );
    CREATE TABLE dialplan_file (
        version INTEGER NOT NULL REFERENCES dialplan_version(version),
        path TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (version, path)
    ) WITHOUT ROWID;",
    // 3: rooms a running server has open, for admin commands and change detection.
    "CREATE TABLE live_room (
        number TEXT PRIMARY KEY,
        participants INTEGER NOT NULL,
        server_pid INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );",
    // 4: media quality of each call (our receive statistics and the peer's RTCP reports).
    "ALTER TABLE call_record ADD COLUMN packets_received INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN packets_expected INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN packets_lost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN jitter_us INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN packets_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN peer_packets_lost INTEGER;
    ALTER TABLE call_record ADD COLUMN peer_loss_permille INTEGER;
    ALTER TABLE call_record ADD COLUMN peer_jitter_us INTEGER;
    ALTER TABLE call_record ADD COLUMN round_trip_us INTEGER;
    ALTER TABLE call_record ADD COLUMN rtcp_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN rtcp_received INTEGER NOT NULL DEFAULT 0;",
    // 5: staff users (digest HA1s per realm, never passwords) and their phones' registrations.
    // allowed_networks is a comma-separated list of CIDRs ('' = from anywhere); path is the
    // ordered Path header values (RFC 3327), one per line; q is in thousandths (RFC 3261 q has
    // at most three decimals, so it is exact).
    "CREATE TABLE sip_user (
        domain TEXT NOT NULL,
        extension TEXT NOT NULL,
        display_name TEXT NOT NULL,
        realm TEXT NOT NULL,
        ha1_md5 TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL,
        allowed_networks TEXT NOT NULL,
        max_contacts INTEGER NOT NULL,
        language TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (domain, extension)
    ) WITHOUT ROWID;
    CREATE TABLE registration (
        domain TEXT NOT NULL,
        extension TEXT NOT NULL,
        contact TEXT NOT NULL,
        source TEXT NOT NULL,
        transport TEXT NOT NULL,
        path TEXT NOT NULL,
        q_milli INTEGER,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        user_agent TEXT,
        instance_id TEXT,
        PRIMARY KEY (domain, extension, contact)
    ) WITHOUT ROWID;
    CREATE INDEX registration_expires ON registration(expires_at_ms);",
    // 6: the leg a dialled call was connected to (all NULL when nobody answered or nothing
    // was dialled), with its own media figures, and how many contacts the call rang.
    "ALTER TABLE call_record ADD COLUMN contacts_rung INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_record ADD COLUMN callee_call_id TEXT;
    ALTER TABLE call_record ADD COLUMN callee_target TEXT;
    ALTER TABLE call_record ADD COLUMN callee_extension TEXT;
    ALTER TABLE call_record ADD COLUMN callee_answered_at_ms INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_ended_at_ms INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_end_reason TEXT;
    ALTER TABLE call_record ADD COLUMN callee_packets_received INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_packets_expected INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_packets_lost INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_jitter_us INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_packets_sent INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_peer_packets_lost INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_peer_loss_permille INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_peer_jitter_us INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_round_trip_us INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_rtcp_sent INTEGER;
    ALTER TABLE call_record ADD COLUMN callee_rtcp_received INTEGER;",
    // 7: the call classes a user may call out through a trunk, comma-separated class names
    // (NULL: the default set; the store does not know the names, the server checks them).
    "ALTER TABLE sip_user ADD COLUMN call_classes TEXT;",
    // 8: whether a user's calls must, may or must not use SRTP: off, optional or required
    // (NULL: the server's default, `srtp` in its config).
    "ALTER TABLE sip_user ADD COLUMN media_encryption TEXT;",
    // 9: the user's line is a fax machine (an ATA on G.711): its calls are passed through
    // unchanged (0: a phone, as every existing user is).
    "ALTER TABLE sip_user ADD COLUMN fax INTEGER NOT NULL DEFAULT 0;",
    // 10: the user's own location number for emergency calls (a home office's address) and
    // the networks whose phones present it, comma-separated (empty: all the user's phones).
    // NULL: none; the trunks file's numbers apply.
    "ALTER TABLE sip_user ADD COLUMN location_number TEXT;
     ALTER TABLE sip_user ADD COLUMN location_networks TEXT NOT NULL DEFAULT '';",
    // 11: bearer tokens for WebRTC clients, one per room and kind ('whip' publishes into the
    // room, 'whep' listens), stored as SHA-256 of the random token (see room_tokens.rs).
    "CREATE TABLE room_token (
        room TEXT NOT NULL,
        kind TEXT NOT NULL,
        token_hash BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (room, kind)
    ) WITHOUT ROWID;",
    // 12: a stored room's link to an external meeting (room_links.rs): the meeting's WHIP
    // ingress and WHEP egress URLs and the bearer tokens the server presents there. The tokens
    // are the meeting's secrets, not ours, so they are kept as given (they must be sent).
    "CREATE TABLE room_link (
        room TEXT PRIMARY KEY NOT NULL,
        whip_url TEXT NOT NULL,
        whip_token TEXT,
        whep_url TEXT NOT NULL,
        whep_token TEXT,
        created_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 13: the user's call settings (call_settings.rs): do not disturb, forwarding targets
    // (numbers as the user dials them; NULL: off), the ring time before the no-answer
    // forwarding, and follow-me steps one per line.
    "ALTER TABLE sip_user ADD COLUMN dnd INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE sip_user ADD COLUMN forward_always TEXT;
     ALTER TABLE sip_user ADD COLUMN forward_busy TEXT;
     ALTER TABLE sip_user ADD COLUMN forward_no_answer TEXT;
     ALTER TABLE sip_user ADD COLUMN forward_no_answer_s INTEGER NOT NULL DEFAULT 20;
     ALTER TABLE sip_user ADD COLUMN follow_me TEXT NOT NULL DEFAULT '';",
    // 14: what happened to a call besides ringing and talking ("forwarded by 101 (always)
    // to 102", "transferred by 101 to 103", "picked up by 104"), in order, `; `-separated.
    "ALTER TABLE call_record ADD COLUMN features TEXT NOT NULL DEFAULT '';",
    // 15: ring group members who logged out (ring_groups.rs; the dialplan says who belongs to
    // a group, so only the logged-out are kept), and the ring group a call dialled.
    "CREATE TABLE ring_group_logout (
        group_name TEXT NOT NULL,
        extension TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        PRIMARY KEY (group_name, extension)
    ) WITHOUT ROWID;
    ALTER TABLE call_record ADD COLUMN ring_group TEXT;",
    // 16: voicemail (voicemail.rs): one row per message left in a mailbox (the user's
    // extension), with the WAV's absolute path, and per mailbox the listening PIN (Argon2id,
    // as room PINs) and the address new messages are mailed to.
    "CREATE TABLE voicemail_message (
        id INTEGER PRIMARY KEY,
        mailbox TEXT NOT NULL,
        caller TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        path TEXT NOT NULL,
        heard INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX voicemail_message_by_mailbox ON voicemail_message (mailbox, received_at_ms);
    CREATE INDEX voicemail_message_by_age ON voicemail_message (received_at_ms);
    CREATE TABLE voicemail_box (
        mailbox TEXT PRIMARY KEY NOT NULL,
        pin_scheme INTEGER,
        pin_salt BLOB,
        pin_hash BLOB,
        email TEXT
    ) WITHOUT ROWID;",
    // 17: the web console (console.rs): accounts (a local one with an Argon2id PHC string, an
    // LDAP one without a password), login sessions (SHA-256 of the token only), the audit log
    // of changes by the CLI and the console, and the console account that owns a room (NULL:
    // admins only).
    "CREATE TABLE console_account (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
        extension TEXT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('local', 'ldap')),
        password_hash TEXT NULL,
        created_at_ms INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE console_session (
        token_hash BLOB PRIMARY KEY,
        account TEXT NOT NULL REFERENCES console_account(name) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_seen_at_ms INTEGER NOT NULL
    );
    CREATE INDEX console_session_by_account ON console_session (account);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_time ON audit_log (at_ms);
    ALTER TABLE room ADD COLUMN owner TEXT NULL;",
    // 18: API tokens for scripts (api_tokens.rs): a console account's bearer token, of which
    // only the SHA-256 is kept.
    "CREATE TABLE api_token (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash BLOB NOT NULL UNIQUE,
        account TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_used_at_ms INTEGER NULL
    );
    CREATE INDEX api_token_by_account ON api_token (account);",
    // 19: calls in progress (calls_in_progress.rs), so that a node's failure leaves no call
    // without a record.
    "CREATE TABLE call_in_progress (
        call_id TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL
    );
    CREATE INDEX call_in_progress_by_node ON call_in_progress (node);",
    // 20: the town (SIP domain) a console account runs; NULL: the default domain, whose
    // admins run the whole system.
    "ALTER TABLE console_account ADD COLUMN domain TEXT NULL;",
];

/// One finished call, as written to the call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// Caller's user part or URI.
    pub caller: String,
    /// Dialled number.
    pub callee: String,
    /// Unix time in milliseconds when the INVITE arrived.
    pub started_at_ms: i64,
    /// Unix time in milliseconds when the call ended.
    pub ended_at_ms: i64,
    /// Whether the call was answered.
    pub answered: bool,
    /// Final SIP status of the inbound INVITE (200 when answered).
    pub final_status: u16,
    /// Why the call ended, in words ("caller hung up", "no route", ...).
    pub end_reason: String,
    /// How the caller's media went (zero for calls that never had any).
    pub media: CallMedia,
    /// Contacts a `dial` rang for this call, answered or not (0 when nothing was dialled).
    pub contacts_rung: u32,
    /// The leg that answered a `dial`, when someone did.
    pub connected: Option<ConnectedLeg>,
    /// What happened besides ringing and talking (forwarding, follow-me, transfer, pickup,
    /// settings keyed), in order; empty when nothing did.
    pub features: Vec<String>,
    /// The ring group the call dialled, if it did (the member who answered is the
    /// connected leg's extension).
    pub ring_group: Option<String>,
}

/// The outbound leg a caller was connected to: who answered, when, and how that leg went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedLeg {
    /// SIP Call-ID of the outbound leg (ours, not the caller's).
    pub call_id: String,
    /// Where the answered INVITE went: the phone's registered contact URI, or the dialled
    /// SIP URI.
    pub target: String,
    /// The staff extension dialled, when the target is one of its phones.
    pub extension: Option<String>,
    /// Unix time in milliseconds when the leg answered.
    pub answered_at_ms: i64,
    /// Unix time in milliseconds when the leg ended.
    pub ended_at_ms: i64,
    /// Why the leg ended, in words ("callee hung up", "caller hung up", ...).
    pub end_reason: String,
    /// How this leg's media went, as seen on this leg (the callee's packets and reports).
    pub media: CallMedia,
}

/// Media quality of one call: what we received (RFC 3550 A.3/A.8) and what the peer's RTCP
/// reports said about what we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallMedia {
    /// RTP packets received from the caller.
    pub packets_received: i64,
    /// Packets the caller's sequence numbers say it sent.
    pub packets_expected: i64,
    /// Caller's packets lost on the way to us.
    pub packets_lost: i64,
    /// Interarrival jitter of the caller's stream, in microseconds.
    pub jitter_us: i64,
    /// RTP packets we sent.
    pub packets_sent: i64,
    /// The caller's latest report: cumulative packets of ours it lost.
    pub peer_packets_lost: Option<i64>,
    /// The caller's latest report: fraction of ours lost in its last interval, per mille.
    pub peer_loss_permille: Option<i64>,
    /// The caller's latest report: jitter of our stream, in microseconds.
    pub peer_jitter_us: Option<i64>,
    /// Round-trip time from the caller's reports (RFC 3550 §6.4.1), in microseconds.
    pub round_trip_us: Option<i64>,
    /// RTCP compound packets we sent.
    pub rtcp_sent: i64,
    /// RTCP reports received from the caller.
    pub rtcp_received: i64,
}

impl CallMedia {
    /// Share of the caller's packets that never reached us, 0.0..=1.0.
    pub fn loss_ratio(&self) -> f64 {
        if self.packets_expected <= 0 || self.packets_lost <= 0 {
            0.0
        } else {
            (self.packets_lost as f64 / self.packets_expected as f64).min(1.0)
        }
    }
}

/// The store, on SQLite or PostgreSQL: the same operations on either.
pub struct Store {
    db: Db,
    location: Location,
}

/// Where a store's data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file (`:memory:` for a private in-memory one).
    Sqlite(PathBuf),
    /// A PostgreSQL database, described without its password (see [`postgres_description`]).
    Postgres(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(description) => f.write_str(description),
        }
    }
}

/// A PostgreSQL connection string (URL or `key=value` form) as it may be logged: user, hosts,
/// ports and database, never the password. Unparseable strings are not shown at all, since
/// where the password is in them cannot be known.
pub fn postgres_description(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "postgresql (connection string not readable)".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "postgresql://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Checks, without connecting, that `url` is a PostgreSQL connection string the client can
/// read (for a configuration check). The error never quotes the string: it may hold a
/// password.
pub fn check_postgres_url(url: &str) -> Result<(), StoreError> {
    url.parse::<postgres::Config>()
        .map(|_| ())
        .map_err(|source| StoreError::PostgresUrl {
            location: postgres_description(url),
            source,
        })
}

impl Store {
    /// Opens (creating if needed) `amtsleitung.db` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Self::check_writable(data_dir)?;
        let path = Self::database_file(data_dir);
        let conn = Connection::open(&path).map_err(DatabaseError::from)?;
        // WAL keeps readers (admin API) from blocking the writer (call records at hangup);
        // synchronous=NORMAL is durable across process crashes, which is what we promise.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(DatabaseError::from)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(DatabaseError::from)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(DatabaseError::from)?;
        let store = Self {
            db: Db::Sqlite(conn),
            location: Location::Sqlite(path),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database `url` (`postgresql://user:password@host:port/db`
    /// or libpq's `key=value` form) and brings its schema up to date. The database must exist
    /// and the user must be allowed to create tables in it.
    ///
    /// The `postgres` client runs a tokio runtime of its own: call this and every method of
    /// the store it returns from a plain thread, never from inside a tokio runtime (that
    /// panics with "Cannot start a runtime from within a runtime"). See `db.rs`.
    pub fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config = url.parse().map_err(|source| StoreError::PostgresUrl {
            location: postgres_description(url),
            source,
        })?;
        let connection = db::PostgresConnection::connect(config).map_err(|source| {
            StoreError::PostgresConnect {
                location: postgres_description(url),
                source,
            }
        })?;
        let store = Self {
            db: Db::Postgres(Box::new(connection)),
            location: Location::Postgres(postgres_description(url)),
        };
        store.migrate()?;
        Ok(store)
    }

    /// SQLite reports a directory it cannot write as "unable to open database file" (code
    /// 14), which names neither the directory nor the cause: try it ourselves first.
    fn check_writable(data_dir: &Path) -> Result<(), StoreError> {
        let probe = data_dir.join(format!(".amtsleitung-write-test-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)
            .map_err(|source| StoreError::NotWritable {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// The database file `open` uses in `data_dir`, to check for it without creating it.
    pub fn database_file(data_dir: &Path) -> PathBuf {
        data_dir.join("amtsleitung.db")
    }

    /// Opens a database file read-only, as it is (a backup, to look into it): no
    /// migrations, nothing written.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(DatabaseError::from)?;
        Ok(Self {
            db: Db::Sqlite(conn),
            location: Location::Sqlite(path.to_path_buf()),
        })
    }

    /// Opens a private in-memory store (tests, `dialplan check` without a data dir).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let store = Self {
            db: Db::Sqlite(Connection::open_in_memory().map_err(DatabaseError::from)?),
            location: Location::Sqlite(PathBuf::from(":memory:")),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the data is: the database file, or the PostgreSQL database without password.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Current schema version: SQLite keeps it in the file header (`PRAGMA user_version`),
    /// PostgreSQL has no such slot, so a one-row table holds it.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(match self.db.dialect() {
            Dialect::Sqlite => self
                .db
                .query_row("PRAGMA user_version", [], |row| row.get(0))?,
            Dialect::Postgres => self
                .db
                .query_row(
                    "SELECT coalesce(max(version), 0) FROM amtsleitung_schema",
                    [],
                    |row| row.get(0),
                )
                .or_else(|err| match &err {
                    // A database amtsleitung never migrated has no version table yet.
                    DatabaseError::Postgres(e)
                        if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) =>
                    {
                        Ok(0)
                    }
                    _ => Err(err),
                })?,
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let tx = self.db.transaction()?;
        if self.db.dialect() == Dialect::Postgres {
            // Two servers starting at once against one database: the second waits here for
            // the first's migrations and then finds nothing left to do.
            // (SET LOCAL: no NOTICE in the log that the table exists, at every start.)
            tx.execute_batch(
                "SET LOCAL client_min_messages TO WARNING;
                 CREATE TABLE IF NOT EXISTS amtsleitung_schema (version BIGINT NOT NULL);
                 LOCK TABLE amtsleitung_schema IN EXCLUSIVE MODE;",
            )?;
        }
        let found = self.schema_version()?;
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = index as i64 + 1;
            match tx.dialect() {
                Dialect::Sqlite => {
                    tx.execute_batch(sql)?;
                    tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
                }
                Dialect::Postgres => {
                    tx.execute_batch(&db::postgres_ddl(sql))?;
                    tx.execute("DELETE FROM amtsleitung_schema", ())?;
                    tx.execute(
                        "INSERT INTO amtsleitung_schema (version) VALUES (?1)",
                        [version],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends a finished call to the call log.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let connected = record.connected.as_ref();
        let caller_media = media_values(&record.media);
        let callee_media = connected.map_or([None; MEDIA_COLUMNS], |c| media_values(&c.media));
        let mut values: Vec<&dyn ToValue> = vec![
            &record.call_id,
            &record.caller,
            &record.callee,
            &record.started_at_ms,
            &record.ended_at_ms,
            &record.answered,
            &record.final_status,
            &record.end_reason,
        ];
        values.extend(caller_media.iter().map(|v| v as &dyn ToValue));
        let callee_call_id = connected.map(|c| &c.call_id);
        let callee_target = connected.map(|c| &c.target);
        let callee_extension = connected.and_then(|c| c.extension.as_ref());
        let callee_answered_at_ms = connected.map(|c| c.answered_at_ms);
        let callee_ended_at_ms = connected.map(|c| c.ended_at_ms);
        let callee_end_reason = connected.map(|c| &c.end_reason);
        values.extend([
            &record.contacts_rung as &dyn ToValue,
            &callee_call_id,
            &callee_target,
            &callee_extension,
            &callee_answered_at_ms,
            &callee_ended_at_ms,
            &callee_end_reason,
        ]);
        values.extend(callee_media.iter().map(|v| v as &dyn ToValue));
        let features = record.features.join(FEATURE_SEPARATOR);
        values.push(&features);
        values.push(&record.ring_group);
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
        // The record and the end of the call's "in progress" note go together.
        let tx = self.db.transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO call_record ({CALL_RECORD_COLUMNS}) VALUES ({})",
                placeholders.join(", ")
            ),
            values.as_slice(),
        )?;
        tx.execute(
            "DELETE FROM call_in_progress WHERE call_id = ?1",
            params![record.call_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` call records, newest first.
    pub fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {CALL_RECORD_COLUMNS} FROM call_record ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit], call_record_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reads one row of each table a call depends on, so that a damaged or half-migrated
    /// database is found by a health check, not only by the next caller.
    pub fn check_health(&self) -> Result<(), StoreError> {
        for table in ["room", "sip_user", "call_record", "dialplan_version"] {
            self.db.query_row(
                &format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"),
                [],
                |row| row.get::<_, i64>(0),
            )?;
        }
        Ok(())
    }

    /// Call records of calls that started at or after `since_ms`, oldest first.
    pub fn calls_since(&self, since_ms: i64) -> Result<Vec<CallRecord>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {CALL_RECORD_COLUMNS} FROM call_record WHERE started_at_ms >= ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([since_ms], call_record_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a consistent copy of the whole database to `target` while the server keeps
    /// running (`VACUUM INTO`: one read transaction, so calls ending meanwhile are either
    /// wholly in the copy or not at all). `target` must not exist yet.
    pub fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        if target.exists() {
            return Err(StoreError::BackupTargetExists(target.to_path_buf()));
        }
        if self.db.dialect() == Dialect::Postgres {
            return Err(StoreError::BackupNeedsPgDump(self.location.to_string()));
        }
        let target = target
            .to_str()
            .ok_or_else(|| StoreError::BackupTargetExists(target.to_path_buf()))?;
        self.db.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// The call record of one Call-ID, if any.
    pub fn call_by_id(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {CALL_RECORD_COLUMNS} FROM call_record WHERE call_id = ?1 ORDER BY id DESC LIMIT 1"
                ),
                [call_id],
                call_record_from_row,
            )
            .optional()?)
    }
}

/// Columns written by [`Store::record_call`] and read by [`call_record_from_row`], in their
/// order: the caller's leg, then the connected leg, each leg's media in [`media_values`] order.
const CALL_RECORD_COLUMNS: &str = "call_id, caller, callee, started_at_ms, ended_at_ms, answered, \
     final_status, end_reason, packets_received, packets_expected, packets_lost, jitter_us, \
     packets_sent, peer_packets_lost, peer_loss_permille, peer_jitter_us, round_trip_us, \
     rtcp_sent, rtcp_received, contacts_rung, callee_call_id, callee_target, callee_extension, \
     callee_answered_at_ms, callee_ended_at_ms, callee_end_reason, callee_packets_received, \
     callee_packets_expected, callee_packets_lost, callee_jitter_us, callee_packets_sent, \
     callee_peer_packets_lost, callee_peer_loss_permille, callee_peer_jitter_us, \
     callee_round_trip_us, callee_rtcp_sent, callee_rtcp_received, features, ring_group";

/// Columns of one leg's [`CallMedia`].
const MEDIA_COLUMNS: usize = 11;
/// Where the caller's media columns start in [`CALL_RECORD_COLUMNS`].
const CALLER_MEDIA_AT: usize = 8;
/// Where `contacts_rung` is.
const CONTACTS_RUNG_AT: usize = CALLER_MEDIA_AT + MEDIA_COLUMNS;
/// Where the connected leg's columns start (its Call-ID).
const CONNECTED_AT: usize = CONTACTS_RUNG_AT + 1;
/// Where the connected leg's media columns start.
const CONNECTED_MEDIA_AT: usize = CONNECTED_AT + 6;
/// Where `features` is.
const FEATURES_AT: usize = CONNECTED_MEDIA_AT + MEDIA_COLUMNS;
/// Between two features in their column (a feature's text never holds it).
const FEATURE_SEPARATOR: &str = "; ";
/// Where the ring group is.
const RING_GROUP_AT: usize = FEATURES_AT + 1;

/// One leg's media figures as column values; both legs are stored the same way, the
/// connected leg's as NULLs when there is none.
fn media_values(m: &CallMedia) -> [Option<i64>; MEDIA_COLUMNS] {
    [
        Some(m.packets_received),
        Some(m.packets_expected),
        Some(m.packets_lost),
        Some(m.jitter_us),
        Some(m.packets_sent),
        m.peer_packets_lost,
        m.peer_loss_permille,
        m.peer_jitter_us,
        m.round_trip_us,
        Some(m.rtcp_sent),
        Some(m.rtcp_received),
    ]
}

/// The inverse of [`media_values`], reading from column `at` on.
fn media_from_row(row: &db::Row<'_>, at: usize) -> db::Result<CallMedia> {
    Ok(CallMedia {
        packets_received: row.get(at)?,
        packets_expected: row.get(at + 1)?,
        packets_lost: row.get(at + 2)?,
        jitter_us: row.get(at + 3)?,
        packets_sent: row.get(at + 4)?,
        peer_packets_lost: row.get(at + 5)?,
        peer_loss_permille: row.get(at + 6)?,
        peer_jitter_us: row.get(at + 7)?,
        round_trip_us: row.get(at + 8)?,
        rtcp_sent: row.get(at + 9)?,
        rtcp_received: row.get(at + 10)?,
    })
}

fn call_record_from_row(row: &crate::db::Row<'_>) -> crate::db::Result<CallRecord> {
    // A connected leg is written whole, so its Call-ID says whether there is one.
    let connected = match row.get::<_, Option<String>>(CONNECTED_AT)? {
        None => None,
        Some(call_id) => Some(ConnectedLeg {
            call_id,
            target: row.get(CONNECTED_AT + 1)?,
            extension: row.get(CONNECTED_AT + 2)?,
            answered_at_ms: row.get(CONNECTED_AT + 3)?,
            ended_at_ms: row.get(CONNECTED_AT + 4)?,
            end_reason: row.get(CONNECTED_AT + 5)?,
            media: media_from_row(row, CONNECTED_MEDIA_AT)?,
        }),
    };
    Ok(CallRecord {
        call_id: row.get(0)?,
        caller: row.get(1)?,
        callee: row.get(2)?,
        started_at_ms: row.get(3)?,
        ended_at_ms: row.get(4)?,
        answered: row.get(5)?,
        final_status: row.get(6)?,
        end_reason: row.get(7)?,
        media: media_from_row(row, CALLER_MEDIA_AT)?,
        contacts_rung: row.get(CONTACTS_RUNG_AT)?,
        connected,
        features: row
            .get::<_, String>(FEATURES_AT)?
            .split(FEATURE_SEPARATOR)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        ring_group: row.get(RING_GROUP_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn sample(call_id: &str) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            caller: "alice".into(),
            callee: "600".into(),
            started_at_ms: 1_700_000_000_000,
            ended_at_ms: 1_700_000_010_000,
            answered: true,
            final_status: 200,
            end_reason: "caller hung up".into(),
            media: CallMedia {
                packets_received: 480,
                packets_expected: 500,
                packets_lost: 20,
                jitter_us: 1250,
                packets_sent: 499,
                peer_packets_lost: Some(3),
                peer_loss_permille: Some(4),
                peer_jitter_us: Some(800),
                round_trip_us: Some(61_000),
                rtcp_sent: 3,
                rtcp_received: 2,
            },
            contacts_rung: 0,
            connected: None,
            features: Vec::new(),
            ring_group: None,
        }
    }

    /// A call to extension 101 that rang two phones, one answered; every figure differs from
    /// every other so a column read from the wrong place shows.
    fn sample_connected(call_id: &str) -> CallRecord {
        CallRecord {
            callee: "101".into(),
            contacts_rung: 2,
            connected: Some(ConnectedLeg {
                call_id: "out-1@10.99.0.1".into(),
                target: "sip:101@10.99.0.2:5060;transport=udp".into(),
                extension: Some("101".into()),
                answered_at_ms: 1_700_000_002_000,
                ended_at_ms: 1_700_000_009_990,
                end_reason: "callee hung up".into(),
                media: CallMedia {
                    packets_received: 401,
                    packets_expected: 402,
                    packets_lost: 1,
                    jitter_us: 903,
                    packets_sent: 404,
                    peer_packets_lost: Some(5),
                    peer_loss_permille: Some(6),
                    peer_jitter_us: Some(707),
                    round_trip_us: Some(8_008),
                    rtcp_sent: 9,
                    rtcp_received: 10,
                },
            }),
            features: vec![
                "forwarded by 102 (busy) to 101".into(),
                "transferred by 101 to 103".into(),
            ],
            ..sample(call_id)
        }
    }

    fn call_records_survive_reopening_the_database(backend: Backend) {
        let place = backend.durable();
        {
            let store = place.open();
            store.record_call(&sample("a@x")).unwrap();
            store.record_call(&sample("b@x")).unwrap();
        }
        let store = place.open();
        let calls = store.recent_calls(10).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].call_id, "b@x", "newest first");
        assert_eq!(store.call_by_id("a@x").unwrap(), Some(sample("a@x")));
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_database_from_a_newer_version() {
        let dir = std::env::temp_dir().join(format!("amt-store-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("amtsleitung.db")).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        match Store::open(&dir) {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn postgres_migrates_an_empty_database_once_and_a_reopen_changes_nothing() {
        let url = crate::test_cluster::empty_database();
        let store = Store::open_postgres(&url).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        store.record_call(&sample_connected("a@x")).unwrap();
        drop(store);
        let store = Store::open_postgres(&url).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(
            store.call_by_id("a@x").unwrap(),
            Some(sample_connected("a@x"))
        );
        let versions: i64 = store
            .db
            .query_row("SELECT count(*) FROM amtsleitung_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(versions, 1, "one version row");
    }

    #[test]
    fn a_postgres_store_connects_again_after_the_server_dropped_its_connection() {
        let url = crate::test_cluster::fresh_database();
        let store = Store::open_postgres(&url).unwrap();
        store.room_create(&NewRoom::new("4711", 1)).unwrap();
        let admin = Store::open_postgres(&url).unwrap();
        let ended: bool = admin
            .db
            .query_row(
                "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(ended, "the store's connection was ended");
        // The call that finds the connection gone may fail; the next one connects again.
        let _ = store.room_get("4711");
        assert_eq!(store.room_get("4711").unwrap().unwrap().number, "4711");
        store.room_create(&NewRoom::new("4712", 2)).unwrap();
        assert_eq!(store.room_list().unwrap().len(), 2);
    }

    #[test]
    fn postgres_refuses_a_database_from_a_newer_version() {
        let url = crate::test_cluster::fresh_database();
        let store = Store::open_postgres(&url).unwrap();
        store
            .db
            .execute("UPDATE amtsleitung_schema SET version = 999", ())
            .unwrap();
        drop(store);
        match Store::open_postgres(&url) {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_postgres_store_is_backed_up_with_pg_dump_not_by_amtsleitung() {
        let store = Store::open_postgres(&crate::test_cluster::fresh_database()).unwrap();
        let target = std::env::temp_dir().join(format!("amt-pg-backup-{}", std::process::id()));
        let err = store.backup_to(&target).unwrap_err();
        assert!(matches!(err, StoreError::BackupNeedsPgDump(_)), "{err:?}");
        assert!(err.to_string().contains("pg_dump"), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn a_postgres_location_is_described_without_its_password() {
        let text = postgres_description("postgresql://sipuser:s3cret@db.example:5433/sipdb");
        assert_eq!(text, "postgresql://sipuser@db.example:5433/sipdb");
        let text = postgres_description("host=/run/pg user=a password=s3cret dbname=b");
        assert_eq!(text, "postgresql://a@/run/pg/b");
        assert!(!postgres_description("postgresql://a:s3cret@[bad").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_postgres_is_an_error_that_does_not_show_the_password() {
        let err = Store::open_postgres("postgresql://nobody:s3cret@127.0.0.1:1/none")
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, StoreError::PostgresConnect { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    fn rooms_recordings_and_dialplan_history_survive_reopening(backend: Backend) {
        let place = backend.durable();
        let files = vec![("default.toml".to_string(), "x = 1\n".to_string())];
        let recording;
        {
            let store = place.open();
            store
                .room_create(&NewRoom {
                    pin: Some("1234".into()),
                    moderator_pin: Some("9999".into()),
                    ..NewRoom::new("4711", 5)
                })
                .unwrap();
            recording = store
                .recording_start("4711", Path::new("rec/a.wav"), 10)
                .unwrap();
            assert_eq!(store.dialplan_version_add(&files, "boot", 20).unwrap(), 1);
        }
        let store = place.open();
        assert_eq!(store.room_list().unwrap().len(), 1);
        assert_eq!(
            store.room_check_pin("4711", "9999").unwrap(),
            PinCheck::Moderator
        );
        assert_eq!(
            store.room_check_pin("4711", "1234").unwrap(),
            PinCheck::Participant
        );
        store.recording_finish(recording, 30, 960).unwrap();
        assert_eq!(
            store.recordings_for_room("4711").unwrap()[0].bytes,
            Some(960)
        );
        assert_eq!(store.dialplan_version_add(&files, "boot", 40).unwrap(), 1);
        assert_eq!(store.dialplan_version_files(1).unwrap(), Some(files));
        drop(store);
    }

    #[test]
    fn upgrading_a_version_1_database_keeps_its_call_records() {
        let dir = std::env::temp_dir().join(format!("amt-store-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("amtsleitung.db")).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO call_record (call_id, caller, callee, started_at_ms, ended_at_ms, answered, final_status, end_reason)
             VALUES ('old@x', 'alice', '600', 1, 2, 1, 200, 'caller hung up')",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.call_by_id("old@x").unwrap().unwrap();
        assert_eq!((old.caller.as_str(), old.final_status), ("alice", 200));
        assert_eq!(
            old.media,
            CallMedia::default(),
            "no media figures for old calls"
        );
        store.room_create(&NewRoom::new("1", 0)).unwrap();
        store
            .user_create(&NewUser::new("101", "Bürgerbüro", "geheim123", 0))
            .unwrap();
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn a_call_connected_to_nobody_reads_back_without_a_connected_leg(backend: Backend) {
        let store = backend.open();
        store.record_call(&sample("alone@x")).unwrap();
        let call = store.call_by_id("alone@x").unwrap().unwrap();
        assert_eq!(call, sample("alone@x"));
        assert_eq!(call.connected, None);
    }

    fn a_connected_call_keeps_both_legs_and_each_legs_own_media(backend: Backend) {
        let store = backend.open();
        store.record_call(&sample_connected("both@x")).unwrap();
        store.record_call(&sample("alone@x")).unwrap();
        assert_eq!(
            store.call_by_id("both@x").unwrap(),
            Some(sample_connected("both@x"))
        );
        let calls = store.recent_calls(10).unwrap();
        assert_eq!(calls, [sample("alone@x"), sample_connected("both@x")]);
    }

    fn a_connected_leg_to_a_sip_uri_has_no_extension(backend: Backend) {
        let store = backend.open();
        let mut record = sample_connected("uri@x");
        if let Some(leg) = record.connected.as_mut() {
            leg.target = "sip:partner@10.99.0.3:5070".into();
            leg.extension = None;
            leg.media.peer_packets_lost = None;
            leg.media.round_trip_us = None;
        }
        store.record_call(&record).unwrap();
        assert_eq!(store.call_by_id("uri@x").unwrap(), Some(record));
    }

    /// A data directory whose database has the schema of `version`, with `rows` inserted;
    /// the directory is named after the version so tests of different versions do not meet.
    fn database_at_version(version: usize, rows: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amt-store-v{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("amtsleitung.db")).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(rows).unwrap();
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        dir
    }

    #[test]
    fn upgrading_a_version_5_database_keeps_its_call_records() {
        // Version 5 is the schema before calls kept their connected leg.
        const BEFORE_CONNECTED_LEG: usize = 5;
        let dir = database_at_version(
            BEFORE_CONNECTED_LEG,
            "INSERT INTO call_record (call_id, caller, callee, started_at_ms, ended_at_ms, answered,
                 final_status, end_reason, packets_received, packets_sent, round_trip_us)
             VALUES ('old@x', '102', '101', 1, 2, 1, 200, 'callee hung up', 350, 349, 61000)",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.call_by_id("old@x").unwrap().unwrap();
        assert_eq!(
            (old.caller.as_str(), old.callee.as_str(), old.answered),
            ("102", "101", true)
        );
        assert_eq!(
            (old.media.packets_received, old.media.packets_sent),
            (350, 349)
        );
        assert_eq!(old.media.round_trip_us, Some(61_000));
        assert_eq!(
            (old.contacts_rung, old.connected),
            (0, None),
            "old calls say nothing about a connected leg"
        );
        // New calls go into the same table next to it.
        store.record_call(&sample_connected("new@x")).unwrap();
        assert_eq!(store.recent_calls(10).unwrap().len(), 2);
        assert_eq!(
            store.call_by_id("new@x").unwrap(),
            Some(sample_connected("new@x"))
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_6_database_keeps_its_users_on_the_default_call_classes() {
        // Version 6 is the schema before users had call classes.
        const BEFORE_CALL_CLASSES: usize = 6;
        let dir = database_at_version(
            BEFORE_CALL_CLASSES,
            "INSERT INTO sip_user (domain, extension, display_name, realm, ha1_md5, ha1_sha256,
                 allowed_networks, max_contacts, language, created_at_ms, updated_at_ms)
             VALUES ('amtsleitung', '101', 'Bürgerbüro', 'amtsleitung', 'a', 'b', '', 5, 'de', 1, 2)",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(
            (old.display_name.as_str(), old.updated_at_ms),
            ("Bürgerbüro", 2)
        );
        assert_eq!(old.call_classes, None, "an existing user keeps the default");
        let limited = store
            .user_set_call_classes(DEFAULT_DOMAIN, "101", Some(&["internal".to_owned()]), 3)
            .unwrap();
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(limited)
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_7_database_keeps_its_users_on_the_server_default_srtp() {
        // Version 7 is the schema before users had an SRTP setting.
        const BEFORE_MEDIA_ENCRYPTION: usize = 7;
        let dir = database_at_version(
            BEFORE_MEDIA_ENCRYPTION,
            "INSERT INTO sip_user (domain, extension, display_name, realm, ha1_md5, ha1_sha256,
                 allowed_networks, max_contacts, language, created_at_ms, updated_at_ms,
                 call_classes)
             VALUES ('amtsleitung', '101', 'Bürgerbüro', 'amtsleitung', 'a', 'b', '', 5, 'de', 1, 2,
                 'internal,local')",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(
            (old.display_name.as_str(), old.updated_at_ms),
            ("Bürgerbüro", 2)
        );
        assert_eq!(
            old.call_classes,
            Some(vec!["internal".to_owned(), "local".to_owned()]),
            "the call classes survive the upgrade"
        );
        assert_eq!(
            old.media_encryption, None,
            "an existing user keeps the server's default"
        );
        let required = store
            .user_set_media_encryption(DEFAULT_DOMAIN, "101", Some("required"), 3)
            .unwrap();
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(required)
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_8_database_keeps_its_users_as_phones_not_fax_lines() {
        // Version 8 is the schema before users could be marked as fax lines.
        const BEFORE_FAX: usize = 8;
        let dir = database_at_version(
            BEFORE_FAX,
            "INSERT INTO sip_user (domain, extension, display_name, realm, ha1_md5, ha1_sha256,
                 allowed_networks, max_contacts, language, created_at_ms, updated_at_ms,
                 call_classes, media_encryption)
             VALUES ('amtsleitung', '101', 'Poststelle', 'amtsleitung', 'a', 'b', '', 5, 'de', 1, 2,
                 NULL, 'required')",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(
            (old.media_encryption.as_deref(), old.updated_at_ms),
            (Some("required"), 2),
            "the SRTP setting survives the upgrade"
        );
        assert!(!old.fax, "an existing user is a phone");
        let fax = store.user_set_fax(DEFAULT_DOMAIN, "101", true, 3).unwrap();
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(fax));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_9_database_keeps_its_users_without_a_location_number_of_their_own() {
        // Version 9 is the schema before users had a location number of their own.
        const BEFORE_LOCATION: usize = 9;
        let dir = database_at_version(
            BEFORE_LOCATION,
            "INSERT INTO sip_user (domain, extension, display_name, realm, ha1_md5, ha1_sha256,
                 allowed_networks, max_contacts, language, created_at_ms, updated_at_ms,
                 call_classes, media_encryption, fax)
             VALUES ('amtsleitung', '150', 'Fax', 'amtsleitung', 'a', 'b', '', 5, 'de', 1, 2,
                 NULL, NULL, 1)",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let old = store.user_get(DEFAULT_DOMAIN, "150").unwrap().unwrap();
        assert_eq!((old.fax, old.location), (true, None));
        let home = UserLocation {
            number: "+4970314711".into(),
            networks: vec!["10.8.0.0/16".parse().unwrap()],
        };
        let set = store
            .user_set_location(DEFAULT_DOMAIN, "150", Some(home), 3)
            .unwrap();
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "150").unwrap(), Some(set));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_10_database_keeps_its_rooms_without_webrtc_tokens() {
        // Version 10 is the schema before rooms had WHIP/WHEP tokens.
        const BEFORE_TOKENS: usize = 10;
        let dir = database_at_version(
            BEFORE_TOKENS,
            "INSERT INTO room (number, pin_scheme, pin_salt, pin_hash, moderator_pin_hash,
                 max_participants, wait_for_moderator, created_at_ms)
             VALUES ('1234', 1, x'00', NULL, NULL, 12, 0, 5)",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(
            store.room_get("1234").unwrap().map(|r| r.max_participants),
            Some(12)
        );
        assert_eq!(store.room_token_kinds("1234").unwrap(), vec![]);
        let token = store.room_token_issue("1234", TokenKind::Whip, 6).unwrap();
        assert!(
            store
                .room_token_check("1234", TokenKind::Whip, &token)
                .unwrap()
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upgrading_a_version_16_database_keeps_its_rooms_without_owners() {
        // Version 16 is the schema before the web console's accounts, sessions and audit log.
        const BEFORE_CONSOLE: usize = 16;
        let dir = database_at_version(
            BEFORE_CONSOLE,
            "INSERT INTO room (number, pin_scheme, pin_salt, pin_hash, moderator_pin_hash,
                 max_participants, wait_for_moderator, created_at_ms)
             VALUES ('4711', 1, x'00', NULL, NULL, 12, 0, 5), ('4712', 1, x'00', NULL, NULL, 3, 0, 6)",
        );
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let rooms = store.room_list().unwrap();
        assert_eq!(
            rooms
                .iter()
                .map(|r| (r.number.as_str(), r.max_participants, r.owner.as_deref()))
                .collect::<Vec<_>>(),
            [("4711", 12, None), ("4712", 3, None)],
            "existing rooms stay, for admins only"
        );
        assert!(store.console_account_list().unwrap().is_empty());
        assert!(store.audit_list(None, None, 10).unwrap().is_empty());
        store
            .console_account_create(
                "anna",
                ConsoleRole::Staff,
                None,
                "korrekt-pferd-batterie",
                7,
            )
            .unwrap();
        assert_eq!(
            store
                .room_set_owner("4711", Some("anna"))
                .unwrap()
                .owner
                .as_deref(),
            Some("anna")
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn unknown_call_id_is_none(backend: Backend) {
        let store = backend.open();
        assert_eq!(store.call_by_id("nope").unwrap(), None);
    }

    on_both_backends!(
        rooms_recordings_and_dialplan_history_survive_reopening,
        call_records_survive_reopening_the_database,
        a_call_connected_to_nobody_reads_back_without_a_connected_leg,
        a_connected_call_keeps_both_legs_and_each_legs_own_media,
        a_connected_leg_to_a_sip_uri_has_no_extension,
        unknown_call_id_is_none,
    );
}
