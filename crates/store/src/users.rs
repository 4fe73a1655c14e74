//! Staff users: the extensions whose desk phones register with the server.
//!
//! A user is keyed by SIP domain and extension. A single town hall uses [`DEFAULT_DOMAIN`] and
//! never names one; hosting several domains on one system only fills the column differently.
//!
//! Passwords are never stored, only the digest HA1s `H(username:realm:password)` with MD5
//! (RFC 2617) and SHA-256 (RFC 7616, RFC 8760 for SIP), where the username is the extension.
//! A stored HA1 is all a server needs to check a digest response, and it is not the password:
//! it works only for its realm, so the realm is stored next to it, and a later change of
//! the domain's name does not silently invalidate every phone's password. An HA1 is still
//! password-equivalent for that realm, so it is kept out of `Debug` output as well.
//!
//! Unlike room PINs (see rooms.rs) the HA1s are fast, unsalted hashes: SIP digest requires the
//! server to hold exactly these values, so no slower hash can stand in. The defence is a
//! password long enough not to be guessed from a stolen database, hence the minimum length.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use crate::db::{OptionalExtension, Row, params};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::call_settings::{CallSettings, follow_me_from_column, follow_me_to_column};
use crate::{Store, StoreError};

/// The SIP domain (and default digest realm) of a system that hosts one town hall.
pub const DEFAULT_DOMAIN: &str = "amtsleitung";
/// Fewest digits an extension may have.
pub const MIN_EXTENSION_DIGITS: usize = 2;
/// Most digits an extension may have (the longest E.164 number).
pub const MAX_EXTENSION_DIGITS: usize = 15;
/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters a password may have (desk phones' web pages take about this many).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Most characters of a display name (it travels in every call's From header).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Contacts a user may register at once when the admin does not say otherwise.
pub const DEFAULT_MAX_CONTACTS: u32 = 5;
/// Highest contact limit a user may be given (each contact rings on every call).
pub const MAX_CONTACTS_LIMIT: u32 = 20;
/// Most allowed source networks per user.
pub const MAX_ALLOWED_NETWORKS: usize = 16;
/// Most call class names per user (there are nine classes; a few more leave room for new ones).
pub const MAX_CALL_CLASSES: usize = 16;
/// Longest call class name stored (`international` has 13 characters).
const MAX_CALL_CLASS_CHARS: usize = 32;
/// The words a user's media encryption (SRTP) setting may be, as the server's
/// `media::sdp::SrtpPolicy` names them; the store checks the words without depending on
/// the media crate.
pub const MEDIA_ENCRYPTION_WORDS: [&str; 3] = ["off", "optional", "required"];

/// Language of the prompts a user hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// German, the default for a German town hall.
    #[default]
    De,
    /// English.
    En,
}

impl Language {
    /// The code stored and shown: `de` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::De => "de",
            Self::En => "en",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "de" => Ok(Self::De),
            "en" => Ok(Self::En),
            _ => Err(StoreError::InvalidLanguage(s.to_owned())),
        }
    }
}

/// A source network a user's phones may register from: an address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedNetwork(ipnet::IpNet);

impl AllowedNetwork {
    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::fmt::Display for AllowedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AllowedNetwork {
    type Err = StoreError;

    /// Parses `10.8.0.0/16`, `2001:db8::/32`, or a bare address (one host). A network with
    /// host bits set (`10.8.0.1/16`) is refused rather than silently widened or narrowed:
    /// the admin meant one of two things, and the error says which network it would be.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |problem: String| StoreError::InvalidNetwork {
            text: text.to_owned(),
            problem,
        };
        let net = match text.split_once('/') {
            None => text
                .parse::<IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| {
                    invalid("is not an IP address or a network like 10.8.0.0/16".into())
                })?,
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| {
                    invalid("is not an IP address or a network like 10.8.0.0/16".into())
                })?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max && !prefix.starts_with('+'))
                    .ok_or_else(|| invalid(format!("needs a prefix length of 0 to {max}")))?;
                ipnet::IpNet::new(addr, prefix)
                    .map_err(|_| invalid(format!("needs a prefix length of 0 to {max}")))?
            }
        };
        if net.trunc() != net {
            return Err(invalid(format!(
                "has host bits set; the network is {}",
                net.trunc()
            )));
        }
        Ok(Self(net))
    }
}

/// What is wrong with a password; never carries the password itself, which is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// No password at all.
    #[error(
        "is empty; at least {MIN_PASSWORD_CHARS} characters are needed (an admin types it into the desk phone once, so it can be long)"
    )]
    Empty,
    /// Fewer than the minimum characters.
    #[error(
        "has {0} characters; at least {MIN_PASSWORD_CHARS} are needed (an admin types it into the desk phone once, so it can be long)"
    )]
    TooShort(usize),
    /// More characters than a phone's configuration page takes.
    #[error("has {0} characters; at most {MAX_PASSWORD_CHARS}")]
    TooLong(usize),
    /// A line break, tab or other control character, usually a file's line end read along.
    #[error("contains a line break or other control character")]
    ControlCharacter,
    /// Leading or trailing spaces, which nobody sees when typing the password into a phone.
    #[error("begins or ends with a space")]
    OuterWhitespace,
}

/// What is wrong with a display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameProblem {
    /// Nothing but spaces.
    #[error("is empty")]
    Empty,
    /// Too long to show on a phone.
    #[error("has {0} characters; at most {MAX_DISPLAY_NAME_CHARS}")]
    TooLong(usize),
    /// A control character, which would break the header it is sent in.
    #[error("contains a line break or other control character")]
    ControlCharacter,
}

/// A user to create; the password is plaintext here and only its HA1s are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// SIP domain ([`DEFAULT_DOMAIN`] for a single town hall).
    pub domain: String,
    /// Extension, 2 to 15 digits; also the digest username.
    pub extension: String,
    /// Name shown on callers' phones.
    pub display_name: String,
    /// Digest realm of the HA1s; `None` means the domain.
    pub realm: Option<String>,
    /// The password the admin types into the phone.
    pub password: String,
    /// Networks the user's phones may register from; empty means from anywhere.
    pub allowed_networks: Vec<AllowedNetwork>,
    /// Most contacts registered at once.
    pub max_contacts: u32,
    /// Prompt language.
    pub language: Language,
    /// Names of the call classes the user may call out through a trunk; `None`: the default
    /// set. The store keeps the names only; what they mean is the server's (`trunks` crate).
    pub call_classes: Option<Vec<String>>,
    /// Whether the user's calls must, may or must not use SRTP: one of
    /// [`MEDIA_ENCRYPTION_WORDS`]; `None`: the server's default (`srtp` in its config).
    pub media_encryption: Option<String>,
    /// The user's line is a fax machine (an ATA on G.711): its calls are passed through
    /// unchanged, never transcoded.
    pub fax: bool,
    /// The user's own location number for emergency calls; `None`: the trunks file's.
    pub location: Option<UserLocation>,
    /// Unix time in milliseconds of creation.
    pub created_at_ms: i64,
}

/// A user's own location number for emergency calls (the address of a home office) and the
/// networks whose phones present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLocation {
    /// In international form, `+` and digits; stored as given, checked as the server reads it.
    pub number: String,
    /// Only calls from phones in these networks present it; empty: all the user's phones.
    pub networks: Vec<AllowedNetwork>,
}

impl NewUser {
    /// A user in the default domain, from anywhere, with the default limits and language.
    pub fn new(
        extension: impl Into<String>,
        display_name: impl Into<String>,
        password: impl Into<String>,
        created_at_ms: i64,
    ) -> Self {
        Self {
            domain: DEFAULT_DOMAIN.to_owned(),
            extension: extension.into(),
            display_name: display_name.into(),
            realm: None,
            password: password.into(),
            allowed_networks: Vec::new(),
            max_contacts: DEFAULT_MAX_CONTACTS,
            language: Language::default(),
            call_classes: None,
            media_encryption: None,
            fax: false,
            location: None,
            created_at_ms,
        }
    }

    /// The realm the HA1s are computed for.
    pub fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or(&self.domain)
    }

    /// Checks every field as `user_create` does, without touching the store.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_domain("domain", &self.domain)?;
        validate_domain("realm", self.realm())?;
        validate_extension(&self.extension)?;
        validate_display_name(&self.display_name)?;
        validate_password(&self.password)?;
        if self.allowed_networks.len() > MAX_ALLOWED_NETWORKS {
            return Err(StoreError::TooManyAllowedNetworks(
                self.allowed_networks.len(),
            ));
        }
        validate_max_contacts(self.max_contacts)?;
        validate_call_classes(self.call_classes.as_deref())?;
        validate_media_encryption(self.media_encryption.as_deref())?;
        validate_location(self.location.as_ref())
    }
}

// The password must not end up in logs through `{:?}`.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("domain", &self.domain)
            .field("extension", &self.extension)
            .field("display_name", &self.display_name)
            .field("realm", &self.realm)
            .field("password", &"<redacted>")
            .field("allowed_networks", &self.allowed_networks)
            .field("max_contacts", &self.max_contacts)
            .field("language", &self.language)
            .field("call_classes", &self.call_classes)
            .field("media_encryption", &self.media_encryption)
            .field("fax", &self.fax)
            .field("location", &self.location)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// A stored user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// SIP domain.
    pub domain: String,
    /// Extension; also the digest username.
    pub extension: String,
    /// Name shown on callers' phones.
    pub display_name: String,
    /// Digest realm the HA1s belong to.
    pub realm: String,
    /// `MD5(extension:realm:password)` in lower-case hex.
    pub ha1_md5: String,
    /// `SHA-256(extension:realm:password)` in lower-case hex.
    pub ha1_sha256: String,
    /// Networks the user's phones may register from; empty means from anywhere.
    pub allowed_networks: Vec<AllowedNetwork>,
    /// Most contacts registered at once.
    pub max_contacts: u32,
    /// Prompt language.
    pub language: Language,
    /// Names of the call classes the user may call out through a trunk; `None`: the default
    /// set.
    pub call_classes: Option<Vec<String>>,
    /// The user's SRTP setting as stored; `None`: the server's default. Written only as one
    /// of [`MEDIA_ENCRYPTION_WORDS`], but read back as found, so that the server can refuse
    /// a word it does not know (a hand edit, a newer build) instead of the whole user.
    pub media_encryption: Option<String>,
    /// The user's line is a fax machine: its calls are passed through unchanged.
    pub fax: bool,
    /// The user's own location number for emergency calls; `None`: the trunks file's.
    pub location: Option<UserLocation>,
    /// Do not disturb, forwarding, follow-me.
    pub call_settings: CallSettings,
    /// Unix time in milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix time in milliseconds of the last change (password included).
    pub updated_at_ms: i64,
}

impl User {
    /// Whether a request from `ip` may act as this user (no allowed networks: any address).
    pub fn allows_source(&self, ip: IpAddr) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(ip))
    }
}

// HA1s are password-equivalent for their realm and must not end up in logs through `{:?}`.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("domain", &self.domain)
            .field("extension", &self.extension)
            .field("display_name", &self.display_name)
            .field("realm", &self.realm)
            .field("ha1_md5", &"<redacted>")
            .field("ha1_sha256", &"<redacted>")
            .field("allowed_networks", &self.allowed_networks)
            .field("max_contacts", &self.max_contacts)
            .field("language", &self.language)
            .field("call_classes", &self.call_classes)
            .field("media_encryption", &self.media_encryption)
            .field("fax", &self.fax)
            .field("location", &self.location)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

/// HA1 for digest algorithm MD5: `MD5(username:realm:password)` in lower-case hex (RFC 2617 §3.2.2.2).
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    lower_hex(&Md5::digest(a1(username, realm, password)))
}

/// HA1 for digest algorithm SHA-256: `SHA-256(username:realm:password)` in lower-case hex
/// (RFC 7616 §3.4.2, used for SIP by RFC 8760).
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    lower_hex(&Sha256::digest(a1(username, realm, password)))
}

fn a1(username: &str, realm: &str, password: &str) -> String {
    format!("{username}:{realm}:{password}")
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// How an error names a user: the bare extension in the default domain, `ext@domain` elsewhere.
pub(crate) fn aor_text(domain: &str, extension: &str) -> String {
    if domain == DEFAULT_DOMAIN {
        extension.to_owned()
    } else {
        format!("{extension}@{domain}")
    }
}

/// Checks an extension's form: 2 to 15 digits.
pub fn validate_extension(extension: &str) -> Result<(), StoreError> {
    if !(MIN_EXTENSION_DIGITS..=MAX_EXTENSION_DIGITS).contains(&extension.len())
        || !extension.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(StoreError::InvalidExtension {
            extension: extension.to_owned(),
        });
    }
    Ok(())
}

/// A domain or realm: it is sent as a URI host and as a quoted digest parameter, so neither
/// whitespace nor quotes nor backslashes may appear.
pub(crate) fn validate_domain(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty()
        || value.len() > 253
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        return Err(StoreError::InvalidDomain {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn validate_display_name(name: &str) -> Result<(), StoreError> {
    let problem = if name.trim().is_empty() {
        Some(DisplayNameProblem::Empty)
    } else if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        Some(DisplayNameProblem::TooLong(name.chars().count()))
    } else if name.chars().any(char::is_control) {
        Some(DisplayNameProblem::ControlCharacter)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(StoreError::InvalidDisplayName { problem }),
        None => Ok(()),
    }
}

fn validate_password(password: &str) -> Result<(), StoreError> {
    let chars = password.chars().count();
    let problem = if password.is_empty() {
        Some(PasswordProblem::Empty)
    } else if password.chars().any(char::is_control) {
        Some(PasswordProblem::ControlCharacter)
    } else if password.trim() != password {
        Some(PasswordProblem::OuterWhitespace)
    } else if chars < MIN_PASSWORD_CHARS {
        Some(PasswordProblem::TooShort(chars))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(PasswordProblem::TooLong(chars))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(StoreError::InvalidPassword(problem)),
        None => Ok(()),
    }
}

fn validate_max_contacts(max: u32) -> Result<(), StoreError> {
    if max == 0 || max > MAX_CONTACTS_LIMIT {
        return Err(StoreError::InvalidMaxContacts(max));
    }
    Ok(())
}

/// Class names go into one comma-separated column, so each must be a plain word; whether it
/// names a class is for the server to say.
fn validate_call_classes(classes: Option<&[String]>) -> Result<(), StoreError> {
    let Some(classes) = classes else {
        return Ok(());
    };
    if classes.len() > MAX_CALL_CLASSES {
        return Err(StoreError::TooManyCallClasses(classes.len()));
    }
    for name in classes {
        if name.is_empty()
            || name.len() > MAX_CALL_CLASS_CHARS
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            return Err(StoreError::InvalidCallClassName(name.clone()));
        }
    }
    Ok(())
}

/// One of the three words exactly, lower-case as the CLI writes it: the column is compared
/// by the server, and a second spelling would only be a second thing to read.
fn validate_media_encryption(word: Option<&str>) -> Result<(), StoreError> {
    match word {
        Some(word) if !MEDIA_ENCRYPTION_WORDS.contains(&word) => {
            Err(StoreError::InvalidMediaEncryption(word.to_owned()))
        }
        _ => Ok(()),
    }
}

fn validate_location(location: Option<&UserLocation>) -> Result<(), StoreError> {
    let Some(location) = location else {
        return Ok(());
    };
    let digits = location.number.strip_prefix('+').unwrap_or("");
    if !(3..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidLocationNumber(location.number.clone()));
    }
    if location.networks.len() > MAX_ALLOWED_NETWORKS {
        return Err(StoreError::TooManyAllowedNetworks(location.networks.len()));
    }
    Ok(())
}

fn location_from_columns(
    number: Option<String>,
    networks: &str,
) -> Result<Option<UserLocation>, StoreError> {
    number
        .map(|number| {
            Ok(UserLocation {
                number,
                networks: networks_from_column(networks)?,
            })
        })
        .transpose()
}

fn call_classes_to_column(classes: Option<&[String]>) -> Option<String> {
    classes.map(|names| names.join(","))
}

/// `''` is an empty set (emergency calls only), which differs from NULL (the default set).
fn call_classes_from_column(text: Option<String>) -> Option<Vec<String>> {
    text.map(|text| {
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn networks_to_column(networks: &[AllowedNetwork]) -> String {
    networks
        .iter()
        .map(AllowedNetwork::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn networks_from_column(text: &str) -> Result<Vec<AllowedNetwork>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

const USER_COLUMNS: &str = "domain, extension, display_name, realm, ha1_md5, ha1_sha256, \
     allowed_networks, max_contacts, language, created_at_ms, updated_at_ms, call_classes, \
     media_encryption, fax, location_number, location_networks, dnd, forward_always, \
     forward_busy, forward_no_answer, forward_no_answer_s, follow_me";

fn user_from_row(row: &Row<'_>) -> crate::db::Result<User> {
    // A value this build cannot read was written by hand or by a newer build: say which column.
    let unreadable = |column: usize, err: StoreError| crate::db::DatabaseError::Column {
        column,
        problem: err.to_string(),
    };
    let networks: String = row.get(6)?;
    let language: String = row.get(8)?;
    Ok(User {
        domain: row.get(0)?,
        extension: row.get(1)?,
        display_name: row.get(2)?,
        realm: row.get(3)?,
        ha1_md5: row.get(4)?,
        ha1_sha256: row.get(5)?,
        allowed_networks: networks_from_column(&networks).map_err(|e| unreadable(6, e))?,
        max_contacts: row.get(7)?,
        language: language.parse().map_err(|e| unreadable(8, e))?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        call_classes: call_classes_from_column(row.get(11)?),
        media_encryption: row.get(12)?,
        fax: row.get(13)?,
        location: location_from_columns(row.get(14)?, &row.get::<_, String>(15)?)
            .map_err(|e| unreadable(15, e))?,
        call_settings: CallSettings {
            dnd: row.get(16)?,
            forward_always: row.get(17)?,
            forward_busy: row.get(18)?,
            forward_no_answer: row.get(19)?,
            no_answer_seconds: row.get(20)?,
            follow_me: follow_me_from_column(&row.get::<_, String>(21)?)
                .map_err(|e| unreadable(21, e))?,
        },
    })
}

impl Store {
    /// Stores a new user with the HA1s of its password; `UserExists` if the extension is taken.
    pub fn user_create(&self, new: &NewUser) -> Result<User, StoreError> {
        new.validate()?;
        let user = stored_user(new);
        let inserted = self.db.execute(
            &format!(
                "INSERT INTO sip_user ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
                 ON CONFLICT(domain, extension) DO NOTHING"
            ),
            params![
                user.domain,
                user.extension,
                user.display_name,
                user.realm,
                user.ha1_md5,
                user.ha1_sha256,
                networks_to_column(&user.allowed_networks),
                user.max_contacts,
                user.language.as_str(),
                user.created_at_ms,
                user.updated_at_ms,
                call_classes_to_column(user.call_classes.as_deref()),
                user.media_encryption,
                user.fax,
                user.location.as_ref().map(|l| l.number.as_str()),
                user.location
                    .as_ref()
                    .map_or_else(String::new, |l| networks_to_column(&l.networks)),
                user.call_settings.dnd,
                user.call_settings.forward_always,
                user.call_settings.forward_busy,
                user.call_settings.forward_no_answer,
                user.call_settings.no_answer_seconds,
                follow_me_to_column(&user.call_settings.follow_me),
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::UserExists {
                domain: user.domain,
                extension: user.extension,
            });
        }
        Ok(user)
    }

    /// Why each user of `users` could not be created (position in `users`, error), without
    /// storing anything: field checks, an extension twice in `users`, or one already stored.
    pub fn user_check_many(
        &self,
        users: &[NewUser],
    ) -> Result<Vec<(usize, StoreError)>, StoreError> {
        let mut problems = Vec::new();
        let mut first_of = HashMap::new();
        for (index, new) in users.iter().enumerate() {
            if let Err(err) = new.validate() {
                problems.push((index, err));
                continue;
            }
            let key = (new.domain.as_str(), new.extension.as_str());
            if let Some(&first) = first_of.get(&key) {
                problems.push((
                    index,
                    StoreError::RepeatedInBatch {
                        domain: new.domain.clone(),
                        extension: new.extension.clone(),
                        first,
                    },
                ));
                continue;
            }
            first_of.insert(key, index);
            if self.user_get(&new.domain, &new.extension)?.is_some() {
                problems.push((
                    index,
                    StoreError::UserExists {
                        domain: new.domain.clone(),
                        extension: new.extension.clone(),
                    },
                ));
            }
        }
        Ok(problems)
    }

    /// Creates all of `users` in one transaction, or none of them: `BatchRejected` lists every
    /// user that cannot be stored (see [`Store::user_check_many`]). Returns how many were stored.
    pub fn user_create_many(&self, users: &[NewUser]) -> Result<usize, StoreError> {
        let tx = self.db.transaction()?;
        let problems = self.user_check_many(users)?;
        if !problems.is_empty() {
            return Err(StoreError::BatchRejected(problems));
        }
        for new in users {
            self.user_create(new)?;
        }
        tx.commit()?;
        Ok(users.len())
    }

    /// The user with this extension in `domain`, if any.
    pub fn user_get(&self, domain: &str, extension: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {USER_COLUMNS} FROM sip_user WHERE domain = ?1 AND extension = ?2"
                ),
                [domain, extension],
                user_from_row,
            )
            .optional()?)
    }

    /// All users of `domain` in numeric order of their extensions.
    pub fn user_list(&self, domain: &str) -> Result<Vec<User>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM sip_user WHERE domain = ?1 ORDER BY length(extension), extension"
        ))?;
        let rows = stmt.query_map([domain], user_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces a user's HA1s with those of `password` (for the user's stored realm).
    pub fn user_set_password(
        &self,
        domain: &str,
        extension: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        validate_password(password)?;
        let tx = self.db.transaction()?;
        let mut user = self.user_existing(domain, extension)?;
        user.ha1_md5 = ha1_md5(extension, &user.realm, password);
        user.ha1_sha256 = ha1_sha256(extension, &user.realm, password);
        user.updated_at_ms = now_ms;
        tx.execute(
            "UPDATE sip_user SET ha1_md5 = ?3, ha1_sha256 = ?4, updated_at_ms = ?5
             WHERE domain = ?1 AND extension = ?2",
            params![domain, extension, user.ha1_md5, user.ha1_sha256, now_ms],
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// The stored user, or `NoSuchUser`.
    pub(crate) fn user_existing(&self, domain: &str, extension: &str) -> Result<User, StoreError> {
        self.user_get(domain, extension)?
            .ok_or_else(|| StoreError::NoSuchUser {
                domain: domain.to_owned(),
                extension: extension.to_owned(),
            })
    }

    /// Sets the call classes a user may call out through a trunk (`None`: the default set).
    pub fn user_set_call_classes(
        &self,
        domain: &str,
        extension: &str,
        classes: Option<&[String]>,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        validate_call_classes(classes)?;
        let tx = self.db.transaction()?;
        let mut user = self.user_existing(domain, extension)?;
        user.call_classes = classes.map(<[String]>::to_vec);
        user.updated_at_ms = now_ms;
        tx.execute(
            "UPDATE sip_user SET call_classes = ?3, updated_at_ms = ?4
             WHERE domain = ?1 AND extension = ?2",
            params![domain, extension, call_classes_to_column(classes), now_ms],
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// Sets whether the user's calls must, may or must not use SRTP: one of
    /// [`MEDIA_ENCRYPTION_WORDS`], or `None` for the server's default.
    pub fn user_set_media_encryption(
        &self,
        domain: &str,
        extension: &str,
        word: Option<&str>,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        validate_media_encryption(word)?;
        let tx = self.db.transaction()?;
        let mut user = self.user_existing(domain, extension)?;
        user.media_encryption = word.map(str::to_owned);
        user.updated_at_ms = now_ms;
        tx.execute(
            "UPDATE sip_user SET media_encryption = ?3, updated_at_ms = ?4
             WHERE domain = ?1 AND extension = ?2",
            params![domain, extension, word, now_ms],
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// Marks the user's line as a fax machine (its calls passed through unchanged) or not.
    pub fn user_set_fax(
        &self,
        domain: &str,
        extension: &str,
        fax: bool,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        let tx = self.db.transaction()?;
        let mut user = self.user_existing(domain, extension)?;
        user.fax = fax;
        user.updated_at_ms = now_ms;
        tx.execute(
            "UPDATE sip_user SET fax = ?3, updated_at_ms = ?4
             WHERE domain = ?1 AND extension = ?2",
            params![domain, extension, fax, now_ms],
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// Sets the user's own location number for emergency calls, or clears it (`None`: the
    /// trunks file's numbers apply).
    pub fn user_set_location(
        &self,
        domain: &str,
        extension: &str,
        location: Option<UserLocation>,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        validate_location(location.as_ref())?;
        let tx = self.db.transaction()?;
        let mut user = self.user_existing(domain, extension)?;
        let number = location.as_ref().map(|l| l.number.clone());
        let networks = location
            .as_ref()
            .map_or_else(String::new, |l| networks_to_column(&l.networks));
        user.location = location;
        user.updated_at_ms = now_ms;
        tx.execute(
            "UPDATE sip_user SET location_number = ?3, location_networks = ?4, updated_at_ms = ?5
             WHERE domain = ?1 AND extension = ?2",
            params![domain, extension, number, networks, now_ms],
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// Deletes a user and its registrations; false if there was none.
    pub fn user_delete(&self, domain: &str, extension: &str) -> Result<bool, StoreError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "DELETE FROM registration WHERE domain = ?1 AND extension = ?2",
            [domain, extension],
        )?;
        let deleted = tx.execute(
            "DELETE FROM sip_user WHERE domain = ?1 AND extension = ?2",
            [domain, extension],
        )?;
        tx.commit()?;
        Ok(deleted > 0)
    }
}

/// The row `user_create` stores for a validated new user.
fn stored_user(new: &NewUser) -> User {
    let realm = new.realm().to_owned();
    User {
        domain: new.domain.clone(),
        extension: new.extension.clone(),
        display_name: new.display_name.clone(),
        ha1_md5: ha1_md5(&new.extension, &realm, &new.password),
        ha1_sha256: ha1_sha256(&new.extension, &realm, &new.password),
        realm,
        allowed_networks: new.allowed_networks.clone(),
        max_contacts: new.max_contacts,
        language: new.language,
        call_classes: new.call_classes.clone(),
        media_encryption: new.media_encryption.clone(),
        fax: new.fax,
        location: new.location.clone(),
        call_settings: CallSettings::default(),
        created_at_ms: new.created_at_ms,
        updated_at_ms: new.created_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    const T0: i64 = 1_700_000_000_000;

    fn user(extension: &str) -> NewUser {
        NewUser::new(extension, "Bürgerbüro", "Circle of Life", T0)
    }

    fn net(text: &str) -> AllowedNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn ha1_matches_rfc_7616_example_user_computed_independently() {
        // RFC 7616 §3.9.1's credentials; expected values from `printf 'Mufasa:http-auth@example.org:Circle of Life' | md5sum` and `| sha256sum`.
        assert_eq!(
            ha1_md5("Mufasa", "http-auth@example.org", "Circle of Life"),
            "3d78807defe7de2157e2b0b6573a855f"
        );
        assert_eq!(
            ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    fn created_user_reads_back_with_ha1s_for_extension_and_realm(backend: Backend) {
        let store = backend.open();
        let created = store
            .user_create(&NewUser {
                allowed_networks: vec![net("10.8.0.0/16"), net("2001:db8::/32")],
                max_contacts: 3,
                language: Language::En,
                ..user("101")
            })
            .unwrap();
        assert_eq!(
            created.realm, DEFAULT_DOMAIN,
            "realm defaults to the domain"
        );
        assert_eq!(
            created.ha1_md5,
            ha1_md5("101", DEFAULT_DOMAIN, "Circle of Life")
        );
        assert_eq!(
            created.ha1_sha256,
            ha1_sha256("101", DEFAULT_DOMAIN, "Circle of Life")
        );
        assert_eq!(created.updated_at_ms, T0);
        let read = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(read, created);
        assert_eq!(read.allowed_networks.len(), 2);
        assert_eq!(read.language, Language::En);
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "102").unwrap(), None);
        assert_eq!(store.user_get("other.example", "101").unwrap(), None);
    }

    fn ha1_uses_an_explicit_realm_when_given(backend: Backend) {
        let store = backend.open();
        let created = store
            .user_create(&NewUser {
                realm: Some("rathaus".into()),
                ..user("101")
            })
            .unwrap();
        assert_eq!(created.realm, "rathaus");
        assert_eq!(created.ha1_md5, ha1_md5("101", "rathaus", "Circle of Life"));
    }

    fn password_is_not_stored_anywhere_in_the_row(backend: Backend) {
        let store = backend.open();
        // Every column filled: a NULL would make the concatenation below NULL.
        store
            .user_create(&NewUser {
                call_classes: Some(vec!["internal".into()]),
                media_encryption: Some("required".into()),
                ..user("101")
            })
            .unwrap();
        let row: String = store
            .db
            .query_row(
                &format!(
                    "SELECT {} FROM sip_user",
                    // A NULL column would make the whole concatenation NULL.
                    USER_COLUMNS
                        .split(", ")
                        .map(|c| format!("COALESCE(CAST({} AS TEXT), '')", c.trim()))
                        .collect::<Vec<_>>()
                        .join(" || ")
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!row.contains("Circle"), "{row}");
    }

    fn duplicate_extension_is_rejected_per_domain(backend: Backend) {
        let store = backend.open();
        store.user_create(&user("101")).unwrap();
        let err = store.user_create(&user("101")).unwrap_err();
        assert!(
            matches!(&err, StoreError::UserExists { extension, .. } if extension == "101"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "user 101 already exists");
        store
            .user_create(&NewUser {
                domain: "zweites-rathaus.example".into(),
                ..user("101")
            })
            .unwrap();
        let err = store
            .user_create(&NewUser {
                domain: "zweites-rathaus.example".into(),
                ..user("101")
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user 101@zweites-rathaus.example already exists"
        );
    }

    fn rejects_bad_extensions(backend: Backend) {
        let store = backend.open();
        for extension in [
            "",
            "1",
            "1234567890123456",
            "10a",
            " 101",
            "１０１",
            "+49101",
        ] {
            match store.user_create(&user(extension)) {
                Err(StoreError::InvalidExtension { extension: e }) => assert_eq!(e, extension),
                other => panic!("{extension:?}: expected InvalidExtension, got {other:?}"),
            }
        }
        store.user_create(&user("10")).unwrap();
        store.user_create(&user("123456789012345")).unwrap();
    }

    fn rejects_short_and_malformed_passwords_without_showing_them(backend: Backend) {
        let cases = [
            ("", PasswordProblem::Empty),
            ("geheim1", PasswordProblem::TooShort(7)),
            ("äöüßäöü", PasswordProblem::TooShort(7)),
            ("geheim123\n", PasswordProblem::ControlCharacter),
            (" geheim123", PasswordProblem::OuterWhitespace),
            ("geheim123 ", PasswordProblem::OuterWhitespace),
        ];
        let store = backend.open();
        for (password, problem) in cases {
            match store.user_create(&NewUser::new("101", "x", password, 0)) {
                Err(StoreError::InvalidPassword(p)) => assert_eq!(p, problem, "{password:?}"),
                other => panic!("{password:?}: expected InvalidPassword, got {other:?}"),
            }
        }
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert!(matches!(
            store.user_create(&NewUser::new("101", "x", long, 0)),
            Err(StoreError::InvalidPassword(PasswordProblem::TooLong(_)))
        ));
        // Eight characters, some of them multi-byte, are enough; inner spaces are fine.
        store
            .user_create(&NewUser::new("101", "x", "Grüß Gott", 0))
            .unwrap();
        let text = StoreError::InvalidPassword(PasswordProblem::TooShort(5)).to_string();
        assert!(
            text.contains("at least 8") && text.contains("desk phone"),
            "{text}"
        );
        assert!(
            StoreError::InvalidPassword(PasswordProblem::Empty)
                .to_string()
                .starts_with("password is empty"),
        );
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap().len(), 1);
    }

    fn rejects_bad_names_limits_domains_and_too_many_networks(backend: Backend) {
        let store = backend.open();
        let check = |new: NewUser| store.user_create(&new).unwrap_err();
        assert!(matches!(
            check(NewUser::new("101", "  ", "geheim123", 0)),
            StoreError::InvalidDisplayName {
                problem: DisplayNameProblem::Empty
            }
        ));
        assert!(matches!(
            check(NewUser::new("101", "a\r\nVia: x", "geheim123", 0)),
            StoreError::InvalidDisplayName {
                problem: DisplayNameProblem::ControlCharacter
            }
        ));
        assert!(matches!(
            check(NewUser::new("101", "ä".repeat(65), "geheim123", 0)),
            StoreError::InvalidDisplayName {
                problem: DisplayNameProblem::TooLong(65)
            }
        ));
        for max in [0, MAX_CONTACTS_LIMIT + 1] {
            assert!(matches!(
                check(NewUser { max_contacts: max, ..user("101") }),
                StoreError::InvalidMaxContacts(m) if m == max
            ));
        }
        assert!(matches!(
            check(NewUser {
                domain: "".into(),
                ..user("101")
            }),
            StoreError::InvalidDomain { what: "domain", .. }
        ));
        assert!(matches!(
            check(NewUser {
                realm: Some("a\"b".into()),
                ..user("101")
            }),
            StoreError::InvalidDomain { what: "realm", .. }
        ));
        assert!(matches!(
            check(NewUser {
                allowed_networks: vec![net("10.0.0.0/8"); MAX_ALLOWED_NETWORKS + 1],
                ..user("101")
            }),
            StoreError::TooManyAllowedNetworks(17)
        ));
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap(), vec![]);
    }

    #[test]
    fn allowed_networks_parse_strictly_and_contain_their_hosts() {
        let vpn = net("10.8.0.0/16");
        assert!(vpn.contains("10.8.200.1".parse().unwrap()));
        assert!(
            vpn.contains("::ffff:10.8.0.9".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(!vpn.contains("10.9.0.1".parse().unwrap()));
        assert!(!vpn.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(net("192.168.1.7").to_string(), "192.168.1.7/32");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert!(net("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "",
            "10.8.0.0/",
            "10.8.0.0/33",
            "10.8.0.0/+16",
            "10.8/16",
            "vpn",
            "::/129",
            "10.8.0.0/16/1",
        ] {
            assert!(
                matches!(bad.parse::<AllowedNetwork>(), Err(StoreError::InvalidNetwork { text, .. }) if text == bad),
                "{bad:?}"
            );
        }
        let err = "10.8.0.1/16".parse::<AllowedNetwork>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "allowed network \"10.8.0.1/16\" has host bits set; the network is 10.8.0.0/16"
        );
    }

    fn allows_source_from_anywhere_only_without_networks(backend: Backend) {
        let store = backend.open();
        let open = store.user_create(&user("101")).unwrap();
        let vpn_only = store
            .user_create(&NewUser {
                allowed_networks: vec![net("10.8.0.0/16"), net("192.168.5.0/24")],
                ..user("102")
            })
            .unwrap();
        let outside = "203.0.113.9".parse().unwrap();
        assert!(open.allows_source(outside));
        assert!(!vpn_only.allows_source(outside));
        assert!(vpn_only.allows_source("192.168.5.77".parse().unwrap()));
    }

    fn set_password_changes_both_ha1s_and_the_update_time_only(backend: Backend) {
        let store = backend.open();
        let before = store.user_create(&user("101")).unwrap();
        let after = store
            .user_set_password(DEFAULT_DOMAIN, "101", "Hakuna Matata", T0 + 5)
            .unwrap();
        assert_eq!(
            after.ha1_md5,
            ha1_md5("101", DEFAULT_DOMAIN, "Hakuna Matata")
        );
        assert_eq!(
            after.ha1_sha256,
            ha1_sha256("101", DEFAULT_DOMAIN, "Hakuna Matata")
        );
        assert_ne!(after.ha1_md5, before.ha1_md5);
        assert_eq!((after.created_at_ms, after.updated_at_ms), (T0, T0 + 5));
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(after.clone())
        );
        assert!(matches!(
            store.user_set_password(DEFAULT_DOMAIN, "101", "short", T0 + 9),
            Err(StoreError::InvalidPassword(PasswordProblem::TooShort(5)))
        ));
        assert!(matches!(
            store.user_set_password(DEFAULT_DOMAIN, "102", "Hakuna Matata", T0),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "102"
        ));
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(after));
    }

    fn delete_removes_only_that_user(backend: Backend) {
        let store = backend.open();
        store.user_create(&user("101")).unwrap();
        store.user_create(&user("102")).unwrap();
        assert!(store.user_delete(DEFAULT_DOMAIN, "101").unwrap());
        assert!(!store.user_delete(DEFAULT_DOMAIN, "101").unwrap());
        let left: Vec<String> = store
            .user_list(DEFAULT_DOMAIN)
            .unwrap()
            .into_iter()
            .map(|u| u.extension)
            .collect();
        assert_eq!(left, ["102"]);
    }

    fn list_is_per_domain_in_numeric_order(backend: Backend) {
        let store = backend.open();
        for extension in ["100", "20", "1000", "21"] {
            store.user_create(&user(extension)).unwrap();
        }
        store
            .user_create(&NewUser {
                domain: "b.example".into(),
                ..user("30")
            })
            .unwrap();
        let extensions: Vec<String> = store
            .user_list(DEFAULT_DOMAIN)
            .unwrap()
            .into_iter()
            .map(|u| u.extension)
            .collect();
        assert_eq!(extensions, ["20", "21", "100", "1000"]);
    }

    fn create_many_stores_all_or_names_every_bad_entry_and_stores_none(backend: Backend) {
        let store = backend.open();
        store.user_create(&user("200")).unwrap();
        let batch = vec![
            user("101"),
            NewUser::new("102", "x", "kurz", 0),
            user("103"),
            user("101"),
            user("200"),
        ];
        match store.user_create_many(&batch) {
            Err(StoreError::BatchRejected(problems)) => {
                let found: Vec<(usize, String)> =
                    problems.iter().map(|(i, e)| (*i, e.to_string())).collect();
                assert_eq!(found.len(), 3, "{found:?}");
                assert_eq!(found[0].0, 1);
                assert!(found[0].1.starts_with("password has 4 characters"));
                assert_eq!(
                    found[1],
                    (3, "user 101 appears twice (first at entry 0)".to_owned())
                );
                assert_eq!(found[2], (4, "user 200 already exists".to_owned()));
            }
            other => panic!("expected BatchRejected, got {other:?}"),
        }
        assert_eq!(
            store.user_list(DEFAULT_DOMAIN).unwrap().len(),
            1,
            "nothing stored"
        );
        assert_eq!(
            store
                .user_create_many(&[user("101"), user("102"), user("103")])
                .unwrap(),
            3
        );
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap().len(), 4);
    }

    fn debug_output_redacts_password_and_ha1s(backend: Backend) {
        let new = user("101");
        let text = format!("{new:?}");
        assert!(
            !text.contains("Circle of Life") && text.contains("101"),
            "{text}"
        );
        let store = backend.open();
        let stored = store.user_create(&new).unwrap();
        let text = format!("{stored:?}");
        assert!(
            !text.contains(&stored.ha1_md5) && !text.contains(&stored.ha1_sha256),
            "{text}"
        );
    }

    fn classes(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    fn call_classes_round_trip_with_none_as_the_default_and_empty_as_nothing(backend: Backend) {
        let store = backend.open();
        let default = store.user_create(&user("101")).unwrap();
        assert_eq!(default.call_classes, None);
        let limited = store
            .user_create(&NewUser {
                call_classes: classes(&["internal", "local", "shared-cost"]),
                ..user("102")
            })
            .unwrap();
        let nothing = store
            .user_create(&NewUser {
                call_classes: classes(&[]),
                ..user("103")
            })
            .unwrap();
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(default)
        );
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "102").unwrap(),
            Some(limited)
        );
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "103").unwrap(),
            Some(nothing),
            "an empty set stays empty and does not become the default"
        );
    }

    fn set_call_classes_changes_them_and_back_to_the_default(backend: Backend) {
        let store = backend.open();
        let before = store.user_create(&user("101")).unwrap();
        let changed = store
            .user_set_call_classes(
                DEFAULT_DOMAIN,
                "101",
                classes(&["internal", "mobile"]).as_deref(),
                T0 + 7,
            )
            .unwrap();
        assert_eq!(changed.call_classes, classes(&["internal", "mobile"]));
        assert_eq!((changed.created_at_ms, changed.updated_at_ms), (T0, T0 + 7));
        assert_eq!(changed.ha1_md5, before.ha1_md5, "password untouched");
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(changed)
        );
        let reset = store
            .user_set_call_classes(DEFAULT_DOMAIN, "101", None, T0 + 9)
            .unwrap();
        assert_eq!(reset.call_classes, None);
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(reset));
        assert!(matches!(
            store.user_set_call_classes(DEFAULT_DOMAIN, "102", None, T0),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "102"
        ));
    }

    fn call_class_names_that_would_break_the_column_are_refused(backend: Backend) {
        let store = backend.open();
        for bad in ["", "local,premium", "Local", "local ", "pr\u{e4}mie"] {
            let err = store
                .user_create(&NewUser {
                    call_classes: classes(&[bad]),
                    ..user("101")
                })
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidCallClassName(n) if n == bad),
                "{bad:?}: {err:?}"
            );
        }
        let many = vec!["local".to_owned(); MAX_CALL_CLASSES + 1];
        assert!(matches!(
            store.user_set_call_classes(DEFAULT_DOMAIN, "101", Some(&many), T0),
            Err(StoreError::TooManyCallClasses(17))
        ));
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap(), vec![]);
    }

    fn media_encryption_round_trips_with_none_as_the_server_default(backend: Backend) {
        let store = backend.open();
        let default = store.user_create(&user("101")).unwrap();
        assert_eq!(default.media_encryption, None);
        let required = store
            .user_create(&NewUser {
                media_encryption: Some("required".into()),
                ..user("102")
            })
            .unwrap();
        assert_eq!(required.media_encryption.as_deref(), Some("required"));
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(default)
        );
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "102").unwrap(),
            Some(required)
        );
    }

    fn a_users_own_location_number_round_trips_with_its_networks_and_bad_numbers_are_refused(
        backend: Backend,
    ) {
        let store = backend.open();
        let plain = store.user_create(&user("101")).unwrap();
        assert_eq!(plain.location, None, "a new user has none");
        let home = UserLocation {
            number: "+4970314711".into(),
            networks: vec!["10.8.3.0/24".parse().unwrap(), "fd00::/64".parse().unwrap()],
        };
        let created = store
            .user_create(&NewUser {
                location: Some(home.clone()),
                ..user("102")
            })
            .unwrap();
        assert_eq!(created.location.as_ref(), Some(&home));
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "102").unwrap(),
            Some(created)
        );
        let everywhere = UserLocation {
            number: "+4971112340".into(),
            networks: Vec::new(),
        };
        let set = store
            .user_set_location(DEFAULT_DOMAIN, "101", Some(everywhere.clone()), T0 + 5)
            .unwrap();
        assert_eq!(
            (set.location.as_ref(), set.updated_at_ms),
            (Some(&everywhere), T0 + 5)
        );
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(set));
        let cleared = store
            .user_set_location(DEFAULT_DOMAIN, "102", None, T0 + 6)
            .unwrap();
        assert_eq!(cleared.location, None);
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "102").unwrap(),
            Some(cleared)
        );
        for bad in ["07031 4711", "+49", "+49703147110000000", "+49x7031"] {
            let location = UserLocation {
                number: bad.into(),
                networks: Vec::new(),
            };
            assert!(
                matches!(
                    store.user_set_location(DEFAULT_DOMAIN, "101", Some(location), T0 + 7),
                    Err(StoreError::InvalidLocationNumber(n)) if n == bad
                ),
                "{bad}"
            );
        }
        assert_eq!(
            store
                .user_get(DEFAULT_DOMAIN, "101")
                .unwrap()
                .unwrap()
                .location,
            Some(everywhere),
            "a refused change keeps what was stored"
        );
        assert!(matches!(
            store.user_set_location(DEFAULT_DOMAIN, "103", None, T0),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "103"
        ));
    }

    fn fax_lines_round_trip_and_are_set_and_cleared(backend: Backend) {
        let store = backend.open();
        let phone = store.user_create(&user("101")).unwrap();
        assert!(!phone.fax, "a new user is a phone");
        let fax = store
            .user_create(&NewUser {
                fax: true,
                ..user("102")
            })
            .unwrap();
        assert!(fax.fax);
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "102").unwrap(), Some(fax));
        let marked = store
            .user_set_fax(DEFAULT_DOMAIN, "101", true, T0 + 5)
            .unwrap();
        assert!(marked.fax);
        assert_eq!((marked.created_at_ms, marked.updated_at_ms), (T0, T0 + 5));
        assert_eq!(marked.ha1_md5, phone.ha1_md5, "password untouched");
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(marked));
        let cleared = store
            .user_set_fax(DEFAULT_DOMAIN, "101", false, T0 + 6)
            .unwrap();
        assert!(!cleared.fax);
        assert_eq!(
            store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
            Some(cleared)
        );
        assert!(matches!(
            store.user_set_fax(DEFAULT_DOMAIN, "103", true, T0),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "103"
        ));
    }

    fn set_media_encryption_changes_it_and_back_to_the_server_default(backend: Backend) {
        let store = backend.open();
        let before = store.user_create(&user("101")).unwrap();
        for word in MEDIA_ENCRYPTION_WORDS {
            let changed = store
                .user_set_media_encryption(DEFAULT_DOMAIN, "101", Some(word), T0 + 7)
                .unwrap();
            assert_eq!(changed.media_encryption.as_deref(), Some(word));
            assert_eq!((changed.created_at_ms, changed.updated_at_ms), (T0, T0 + 7));
            assert_eq!(changed.ha1_md5, before.ha1_md5, "password untouched");
            assert_eq!(
                store.user_get(DEFAULT_DOMAIN, "101").unwrap(),
                Some(changed)
            );
        }
        let reset = store
            .user_set_media_encryption(DEFAULT_DOMAIN, "101", None, T0 + 9)
            .unwrap();
        assert_eq!(reset.media_encryption, None);
        assert_eq!(store.user_get(DEFAULT_DOMAIN, "101").unwrap(), Some(reset));
        assert!(matches!(
            store.user_set_media_encryption(DEFAULT_DOMAIN, "102", Some("off"), T0),
            Err(StoreError::NoSuchUser { extension, .. }) if extension == "102"
        ));
    }

    fn media_encryption_other_than_the_three_lower_case_words_is_refused(backend: Backend) {
        let store = backend.open();
        store.user_create(&user("101")).unwrap();
        for bad in ["", "on", "Required", " optional", "srtp", "mandatory"] {
            let err = store
                .user_create(&NewUser {
                    media_encryption: Some(bad.into()),
                    ..user("102")
                })
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidMediaEncryption(w) if w == bad),
                "{bad:?}: {err:?}"
            );
            assert!(
                err.to_string().contains("off, optional or required"),
                "{err}"
            );
            let err = store
                .user_set_media_encryption(DEFAULT_DOMAIN, "101", Some(bad), T0 + 1)
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidMediaEncryption(w) if w == bad),
                "{bad:?}: {err:?}"
            );
        }
        assert_eq!(
            store.user_list(DEFAULT_DOMAIN).unwrap().len(),
            1,
            "102 not added"
        );
        let unchanged = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(
            (unchanged.media_encryption, unchanged.updated_at_ms),
            (None, T0)
        );
    }

    fn a_stored_word_this_build_does_not_know_is_read_back_as_found(backend: Backend) {
        // The server, not the store, decides what an unknown word means (it fails closed);
        // refusing the row here would hide the user and stop the directory from reloading.
        let store = backend.open();
        store.user_create(&user("101")).unwrap();
        store
            .db
            .execute(
                "UPDATE sip_user SET media_encryption = 'dtls' WHERE extension = '101'",
                [],
            )
            .unwrap();
        let user = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(user.media_encryption.as_deref(), Some("dtls"));
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap(), vec![user]);
    }

    #[test]
    fn language_parses_de_and_en_only() {
        assert_eq!("de".parse::<Language>().unwrap(), Language::De);
        assert_eq!("EN".parse::<Language>().unwrap(), Language::En);
        assert!(
            matches!("fr".parse::<Language>(), Err(StoreError::InvalidLanguage(l)) if l == "fr")
        );
        assert_eq!(Language::default(), Language::De);
    }

    on_both_backends!(
        created_user_reads_back_with_ha1s_for_extension_and_realm,
        ha1_uses_an_explicit_realm_when_given,
        password_is_not_stored_anywhere_in_the_row,
        duplicate_extension_is_rejected_per_domain,
        rejects_bad_extensions,
        rejects_short_and_malformed_passwords_without_showing_them,
        rejects_bad_names_limits_domains_and_too_many_networks,
        allows_source_from_anywhere_only_without_networks,
        set_password_changes_both_ha1s_and_the_update_time_only,
        delete_removes_only_that_user,
        list_is_per_domain_in_numeric_order,
        create_many_stores_all_or_names_every_bad_entry_and_stores_none,
        debug_output_redacts_password_and_ha1s,
        call_classes_round_trip_with_none_as_the_default_and_empty_as_nothing,
        set_call_classes_changes_them_and_back_to_the_default,
        call_class_names_that_would_break_the_column_are_refused,
        media_encryption_round_trips_with_none_as_the_server_default,
        a_users_own_location_number_round_trips_with_its_networks_and_bad_numbers_are_refused,
        fax_lines_round_trip_and_are_set_and_cleared,
        set_media_encryption_changes_it_and_back_to_the_server_default,
        media_encryption_other_than_the_three_lower_case_words_is_refused,
        a_stored_word_this_build_does_not_know_is_read_back_as_found,
    );
}
