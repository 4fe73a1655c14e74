//! Console sign-in against LDAP / Active Directory (`[ldap]`): a simple bind with the
//! password typed, then what the console needs to know about the account (admin or not,
//! extension, name), read from the directory.
//!
//! The password is checked by the directory alone and never logged or kept. Nested groups
//! (a group inside the admin group) are not followed: membership is the group's `member` or
//! `uniqueMember` naming the user, or the user's `memberOf` naming the group.

use ldap3::asn1::StructureTag;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchOptions};

use crate::config::{LDAP_USER_PLACEHOLDER, LdapServiceAccount, LdapSettings, LdapUserLookup};

/// Longest user name accepted, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;

/// LDAP result codes (RFC 4511 appendix A) this module tells apart.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_INSUFFICIENT_ACCESS: u32 = 50;

/// Who signed in, as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapIdentity {
    /// The user's entry.
    pub dn: String,
    /// The user name as typed, lower-cased.
    pub name: String,
    /// Member of `admin-group`.
    pub admin: bool,
    /// The user's extension, if `extension-attribute` holds a plain internal one.
    pub extension: Option<String>,
    /// `displayName`, else `cn`.
    pub display_name: Option<String>,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// No such user, or the wrong password (the two are not told apart on purpose).
    #[error("wrong user name or password")]
    WrongCredentials,
    /// The password is right but the account is in neither `staff-group` nor `admin-group`.
    #[error("this account may not sign in: it is not in the staff group")]
    NotAllowed,
    /// The server did not answer, refused the connection, or TLS failed; the URL and cause.
    #[error("cannot reach the directory server {0}")]
    Unreachable(String),
    /// The server answered something unexpected, or refused the service account.
    #[error("directory error: {0}")]
    Protocol(String),
    /// The name typed is not one a directory account could have here.
    #[error(
        "not a user name: 1 to {MAX_USER_NAME_CHARS} characters of A-Z, a-z, 0-9, '.', '_', '@', '-'"
    )]
    BadUserName,
}

/// Signs `user` in with `password` against the directory `settings` describe: finds the
/// user's entry (`user-dn` template, or a search as the service account), binds as it with
/// the password, and reads admin-group and staff-group membership, extension and name. The
/// connection, and each request on it, gives up after `timeout-seconds`.
pub async fn authenticate(
    settings: &LdapSettings,
    user: &str,
    password: &str,
) -> Result<LdapIdentity, LdapError> {
    check_user_name(user)?;
    // RFC 4513 §5.1.2: a simple bind with a name and an empty password is an
    // unauthenticated bind, which many servers answer with success. Never send one.
    if password.is_empty() {
        return Err(LdapError::WrongCredentials);
    }
    let outcome = match Session::open(settings).await {
        Ok(mut session) => {
            let outcome = session.sign_in(user, password).await;
            session.close().await;
            outcome
        }
        Err(err) => Err(err),
    };
    // The name passed the check above, so it is safe to log; the password never is.
    match &outcome {
        Ok(identity) => tracing::info!(
            user = %identity.name,
            dn = %identity.dn,
            admin = identity.admin,
            "LDAP sign-in"
        ),
        Err(err) => tracing::info!(user, %err, "LDAP sign-in refused"),
    }
    outcome
}

/// A user name as typed, checked before it goes anywhere near a DN or a filter: the
/// characters account names have (sAMAccountName, uid, a UPN's `@` and dots), nothing that
/// means something in either.
pub fn check_user_name(user: &str) -> Result<(), LdapError> {
    let length = user.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if (1..=MAX_USER_NAME_CHARS).contains(&length) && user.chars().all(allowed) {
        Ok(())
    } else {
        Err(LdapError::BadUserName)
    }
}

/// `template` (`user-dn`) with the user name in it as an RFC 4514 attribute value.
pub fn fill_user_dn(template: &str, user: &str) -> String {
    template.replace(LDAP_USER_PLACEHOLDER, &ldap3::dn_escape(user))
}

/// `template` (`search-filter`) with the user name in it as an RFC 4515 assertion value.
pub fn fill_user_filter(template: &str, user: &str) -> String {
    template.replace(LDAP_USER_PLACEHOLDER, &ldap3::ldap_escape(user))
}

/// The extension in an attribute value, if it is a plain internal one (the digits a user
/// has here); a full number (`+49 711 12345-101`) or anything else is none.
pub fn plain_extension(value: &str) -> Option<String> {
    let value = value.trim();
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    let length = store::MIN_EXTENSION_DIGITS..=store::MAX_EXTENSION_DIGITS;
    (digits && length.contains(&value.len())).then(|| value.to_owned())
}

/// Two DNs the same, as far as a plain comparison can tell: attribute names and values are
/// compared without case (as `member` and `memberOf` values are matched in practice), and
/// spaces around the separators do not count.
fn same_dn(a: &str, b: &str) -> bool {
    fn normal(dn: &str) -> String {
        dn.split(',')
            .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
            .collect::<Vec<_>>()
            .join(",")
            .to_lowercase()
    }
    normal(a) == normal(b)
}

/// One entry as a search returned it.
#[derive(Debug, Clone, Default)]
struct DirectoryEntry {
    dn: String,
    attributes: Vec<(String, Vec<String>)>,
}

impl DirectoryEntry {
    /// The entry in a search result, or none if it is not well formed. (ldap3's own
    /// `SearchEntry::construct` panics on a malformed entry; a server's answer must not.)
    fn read(entry: ResultEntry) -> Option<Self> {
        let mut parts = entry.0.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attributes = Vec::new();
        for attribute in parts.next()?.expect_constructed()? {
            let mut attribute = attribute.expect_constructed()?.into_iter();
            let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?;
            let values = attribute
                .next()?
                .expect_constructed()?
                .into_iter()
                .filter_map(StructureTag::expect_primitive)
                .filter_map(|bytes| String::from_utf8(bytes).ok())
                .collect();
            attributes.push((name, values));
        }
        Some(Self { dn, attributes })
    }

    /// The values of `name` (attribute names are case-insensitive).
    fn values(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, values)| values.as_slice())
            .unwrap_or_default()
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// Whom the connection is bound as now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoundAs {
    Nobody,
    User,
    ServiceAccount,
}

/// One connection to the directory, for one sign-in.
struct Session<'a> {
    settings: &'a LdapSettings,
    ldap: Ldap,
    bound: BoundAs,
}

impl<'a> Session<'a> {
    async fn open(settings: &'a LdapSettings) -> Result<Self, LdapError> {
        let url = settings.url.as_str();
        let mut connection = LdapConnSettings::new().set_conn_timeout(settings.timeout);
        if settings.starttls || settings.url.scheme() == "ldaps" {
            let tls = crate::tls::client_config_trusting(settings.ca_file.as_deref())
                .map_err(|err| LdapError::Protocol(format!("TLS settings: {err:#}")))?;
            connection = connection.set_config(tls).set_starttls(settings.starttls);
        }
        let (driver, ldap) = LdapConnAsync::from_url_with_settings(connection, &settings.url)
            .await
            .map_err(|err| match err {
                // Only StartTLS is asked of the server while connecting.
                ldap3::LdapError::LdapResult { result } => {
                    LdapError::Unreachable(format!("{url}: StartTLS refused: {result}"))
                }
                err => unreachable_or_protocol(settings, err),
            })?;
        tokio::spawn(async move {
            if let Err(err) = driver.drive().await {
                tracing::debug!(%err, "LDAP connection ended");
            }
        });
        Ok(Self {
            settings,
            ldap,
            bound: BoundAs::Nobody,
        })
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(self.settings.timeout, self.ldap.unbind()).await;
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Result<LdapIdentity, LdapError> {
        let settings = self.settings;
        let entry = match &settings.user {
            LdapUserLookup::Template(template) => {
                let dn = fill_user_dn(template, user);
                self.bind_user(&dn, password).await?;
                match self.read_entry(&dn).await? {
                    Some(entry) => entry,
                    None => {
                        return Err(LdapError::Protocol(format!(
                            "{dn} signed in but its entry cannot be read{}",
                            self.hint_service_account()
                        )));
                    }
                }
            }
            LdapUserLookup::Search { base, filter } => {
                if !self.bind_service_account().await? {
                    return Err(LdapError::Protocol(
                        "search-filter needs bind-dn and bind-password".into(),
                    ));
                }
                let filter = fill_user_filter(filter, user);
                let found = self.find_user(base, &filter).await?;
                self.bind_user(&found.dn, password).await?;
                found
            }
        };
        let member_of = entry.values("memberOf").to_vec();
        let admin = self
            .is_member(&settings.admin_group, &entry.dn, &member_of)
            .await?;
        if let Some(staff_group) = &settings.staff_group
            && !admin
            && !self.is_member(staff_group, &entry.dn, &member_of).await?
        {
            return Err(LdapError::NotAllowed);
        }
        Ok(LdapIdentity {
            name: user.to_lowercase(),
            admin,
            extension: entry
                .values(&settings.extension_attribute)
                .iter()
                .find_map(|value| plain_extension(value)),
            display_name: entry
                .first("displayName")
                .or_else(|| entry.first("cn"))
                .map(str::to_owned),
            dn: entry.dn,
        })
    }

    /// The attributes read from the user's entry.
    fn entry_attributes(&self) -> Vec<&'a str> {
        vec![
            "memberOf",
            self.settings.extension_attribute.as_str(),
            "displayName",
            "cn",
        ]
    }

    /// A simple bind with the timeout; until it succeeds the connection counts as bound
    /// to nobody (a failed bind leaves it anonymous, RFC 4511 §4.2.1).
    async fn simple_bind(
        &mut self,
        dn: &str,
        password: &str,
    ) -> Result<ldap3::LdapResult, LdapError> {
        self.bound = BoundAs::Nobody;
        self.ldap
            .with_timeout(self.settings.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|err| unreachable_or_protocol(self.settings, err))
    }

    /// Binds as the user: a wrong password (or no such DN) is [`LdapError::WrongCredentials`].
    async fn bind_user(&mut self, dn: &str, password: &str) -> Result<(), LdapError> {
        let result = self.simple_bind(dn, password).await?;
        match result.rc {
            RC_SUCCESS => {
                self.bound = BoundAs::User;
                Ok(())
            }
            RC_INVALID_CREDENTIALS => Err(LdapError::WrongCredentials),
            _ => Err(LdapError::Protocol(format!("signing in as {dn}: {result}"))),
        }
    }

    /// Binds as the service account; `false` if none is configured.
    async fn bind_service_account(&mut self) -> Result<bool, LdapError> {
        let Some(LdapServiceAccount { dn, password }) = &self.settings.service_account else {
            return Ok(false);
        };
        if self.bound == BoundAs::ServiceAccount {
            return Ok(true);
        }
        let result = self.simple_bind(dn, password).await?;
        if result.rc != RC_SUCCESS {
            // The admin's configuration, not the user's typing: say so.
            return Err(LdapError::Protocol(format!(
                "the service account bind-dn {dn} was refused: {result}"
            )));
        }
        self.bound = BoundAs::ServiceAccount;
        Ok(true)
    }

    fn hint_service_account(&self) -> &'static str {
        if self.settings.service_account.is_some() {
            " (not by the user, nor by bind-dn)"
        } else {
            " by the user (set bind-dn and bind-password to read it as a service account)"
        }
    }

    /// The one entry `filter` finds below `base`, as the service account. None is the same
    /// answer as a wrong password, so that names cannot be probed.
    async fn find_user(&mut self, base: &str, filter: &str) -> Result<DirectoryEntry, LdapError> {
        let attributes = self.entry_attributes();
        let (result, mut entries) = self
            .search(base, Scope::Subtree, filter, &attributes)
            .await?;
        match (result.rc, entries.len()) {
            (RC_SUCCESS, 0) => Err(LdapError::WrongCredentials),
            (RC_SUCCESS, 1) => Ok(entries.remove(0)),
            (RC_SUCCESS | RC_SIZE_LIMIT_EXCEEDED, _) => Err(LdapError::Protocol(format!(
                "search-filter {filter} finds more than one entry below {base}"
            ))),
            _ => Err(LdapError::Protocol(format!(
                "searching below {base}: {result}"
            ))),
        }
    }

    /// The user's own entry: read as the user, else as the service account when the user
    /// may not; none if neither may.
    async fn read_entry(&mut self, dn: &str) -> Result<Option<DirectoryEntry>, LdapError> {
        let attributes = self.entry_attributes();
        let (result, mut entries) = self
            .search(dn, Scope::Base, "(objectClass=*)", &attributes)
            .await?;
        if result.rc == RC_SUCCESS && !entries.is_empty() {
            return Ok(Some(entries.remove(0)));
        }
        if !matches!(
            result.rc,
            RC_SUCCESS | RC_NO_SUCH_OBJECT | RC_INSUFFICIENT_ACCESS
        ) {
            return Err(LdapError::Protocol(format!("reading {dn}: {result}")));
        }
        if self.bound == BoundAs::ServiceAccount || !self.bind_service_account().await? {
            return Ok(None);
        }
        let (result, mut entries) = self
            .search(dn, Scope::Base, "(objectClass=*)", &attributes)
            .await?;
        Ok((result.rc == RC_SUCCESS && !entries.is_empty()).then(|| entries.remove(0)))
    }

    /// Whether `user_dn` is a member of `group`: named in the user's `memberOf` (AD, the
    /// OpenLDAP memberof overlay), else in the group's `member` or `uniqueMember`, read as
    /// whoever the connection is bound as, or as the service account when that may not see
    /// the group.
    async fn is_member(
        &mut self,
        group: &str,
        user_dn: &str,
        member_of: &[String],
    ) -> Result<bool, LdapError> {
        if member_of.iter().any(|g| same_dn(g, group)) {
            return Ok(true);
        }
        let value = ldap3::ldap_escape(user_dn);
        let filter = format!("(|(member={value})(uniqueMember={value}))");
        // "1.1": no attributes (RFC 4511 §4.5.1.8), only whether the group matched.
        let mut answer = self.search(group, Scope::Base, &filter, &["1.1"]).await?;
        if matches!(answer.0.rc, RC_NO_SUCH_OBJECT | RC_INSUFFICIENT_ACCESS)
            && self.bound != BoundAs::ServiceAccount
            && self.bind_service_account().await?
        {
            answer = self.search(group, Scope::Base, &filter, &["1.1"]).await?;
        }
        let (result, entries) = answer;
        match result.rc {
            RC_SUCCESS => Ok(!entries.is_empty()),
            RC_NO_SUCH_OBJECT | RC_INSUFFICIENT_ACCESS => Err(LdapError::Protocol(format!(
                "the group {group} does not exist or cannot be read{}",
                self.hint_service_account()
            ))),
            _ => Err(LdapError::Protocol(format!(
                "reading the group {group}: {result}"
            ))),
        }
    }

    /// A search with the timeout and at most two entries (one is all any of ours wants;
    /// a second means the filter is ambiguous): the result and the entries.
    async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<(ldap3::LdapResult, Vec<DirectoryEntry>), LdapError> {
        let result = self
            .ldap
            .with_timeout(self.settings.timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, scope, filter, attributes.to_vec())
            .await
            .map_err(|err| unreachable_or_protocol(self.settings, err))?;
        let ldap3::SearchResult(entries, result) = result;
        let entries = entries
            .into_iter()
            .map(|entry| {
                DirectoryEntry::read(entry).ok_or_else(|| {
                    LdapError::Protocol(format!("a malformed entry in the answer to {filter}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((result, entries))
    }
}

/// An error of the LDAP client: the network's (no connection, no answer in time, TLS) is
/// [`LdapError::Unreachable`] naming the URL, anything else [`LdapError::Protocol`].
fn unreachable_or_protocol(settings: &LdapSettings, err: ldap3::LdapError) -> LdapError {
    let url = settings.url.as_str();
    let seconds = settings.timeout.as_secs();
    match err {
        ldap3::LdapError::Io { source } => LdapError::Unreachable(format!("{url}: {source}")),
        ldap3::LdapError::Timeout { .. } => {
            LdapError::Unreachable(format!("{url}: no answer within {seconds} s"))
        }
        ldap3::LdapError::Rustls { source } => {
            LdapError::Unreachable(format!("{url}: TLS: {source}"))
        }
        ldap3::LdapError::DNSName { source } => {
            LdapError::Unreachable(format!("{url}: TLS server name: {source}"))
        }
        ldap3::LdapError::ResultRecv { .. } | ldap3::LdapError::OpSend { .. } => {
            LdapError::Unreachable(format!("{url}: the server closed the connection"))
        }
        ldap3::LdapError::LdapResult { result } => LdapError::Protocol(result.to_string()),
        err => LdapError::Protocol(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> LdapSettings {
        toml::from_str::<crate::config::Config>(text)
            .unwrap()
            .ldap
            .unwrap()
    }

    /// A directory on a loopback port nothing listens on: reaching for it would be an
    /// `Unreachable`, so any other answer was given without the network.
    fn nowhere() -> LdapSettings {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        settings(&format!(
            "[ldap]\nurl = \"ldap://127.0.0.1:{port}\"\n\
             user-dn = \"uid={{user}},ou=people,dc=rathaus,dc=example\"\n\
             admin-group = \"cn=pbx-admins,ou=groups,dc=rathaus,dc=example\"\n"
        ))
    }

    #[test]
    fn user_names_are_account_characters_only() {
        for good in [
            "anna",
            "Anna.Amt",
            "a",
            "anna@rathaus.example",
            "b_c-d",
            &"x".repeat(64),
        ] {
            assert!(check_user_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "*",
            "*)(uid=*",
            "anna)(uid=*",
            "a,ou=x",
            "anna\0",
            " anna",
            "anna ",
            "an na",
            "änna",
            "uid=anna",
            "anna\\2a",
            "(anna)",
            "anna+cn=x",
            "anna;",
            "#anna",
            "anna\"",
        ] {
            assert!(
                matches!(check_user_name(bad), Err(LdapError::BadUserName)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn filter_values_are_escaped_per_rfc_4515() {
        assert_eq!(
            fill_user_filter("(uid={user})", "*)(uid=*"),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            fill_user_filter("(&(objectClass=person)(sAMAccountName={user}))", "a\\b\0"),
            "(&(objectClass=person)(sAMAccountName=a\\5cb\\00))"
        );
        assert_eq!(fill_user_filter("(uid={user})", "anna"), "(uid=anna)");
        // The escaped filter still parses, and as one equality assertion on the whole value.
        assert!(ldap3::parse_filter(fill_user_filter("(uid={user})", "*)(uid=*")).is_ok());
    }

    #[test]
    fn dn_values_are_escaped_per_rfc_4514() {
        let template = "uid={user},ou=people,dc=rathaus,dc=example";
        assert_eq!(
            fill_user_dn(template, "a,ou=x"),
            "uid=a\\2cou\\3dx,ou=people,dc=rathaus,dc=example"
        );
        assert_eq!(
            fill_user_dn(template, "a+cn=b;\"<>\\"),
            "uid=a\\2bcn\\3db\\3b\\22\\3c\\3e\\5c,ou=people,dc=rathaus,dc=example"
        );
        assert_eq!(
            fill_user_dn(template, "#a "),
            "uid=\\23a\\20,ou=people,dc=rathaus,dc=example"
        );
        assert_eq!(
            fill_user_dn(template, "anna"),
            "uid=anna,ou=people,dc=rathaus,dc=example"
        );
    }

    #[tokio::test]
    async fn injection_names_are_refused_before_the_directory_is_asked() {
        let settings = nowhere();
        for name in ["*", "anna)(uid=*", "*)(uid=*", "a,ou=x", ""] {
            let err = authenticate(&settings, name, "annapw").await.unwrap_err();
            assert!(matches!(err, LdapError::BadUserName), "{name:?}: {err}");
        }
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_before_any_bind() {
        let err = authenticate(&nowhere(), "anna", "").await.unwrap_err();
        assert!(matches!(err, LdapError::WrongCredentials), "{err}");
        assert_eq!(err.to_string(), "wrong user name or password");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_naming_the_url() {
        let settings = nowhere();
        let err = authenticate(&settings, "anna", "annapw").await.unwrap_err();
        assert!(matches!(err, LdapError::Unreachable(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(settings.url.as_str()) && text.contains("refused"),
            "{text}"
        );
    }

    #[test]
    fn extensions_are_plain_internal_numbers_only() {
        assert_eq!(plain_extension("101"), Some("101".into()));
        assert_eq!(plain_extension(" 4711 "), Some("4711".into()));
        assert_eq!(plain_extension("+49 711 12345-101"), None);
        assert_eq!(plain_extension("0711 12345 101"), None);
        assert_eq!(plain_extension("1"), None);
        assert_eq!(plain_extension(""), None);
        assert_eq!(plain_extension("101a"), None);
        assert_eq!(plain_extension(&"1".repeat(16)), None);
    }

    #[test]
    fn group_dns_compare_without_case_or_spaces() {
        assert!(same_dn(
            "CN=PBX-Admins, OU=Groups,DC=rathaus,DC=example",
            "cn=pbx-admins,ou=groups,dc=rathaus,dc=example"
        ));
        assert!(!same_dn(
            "cn=pbx-admins-old,ou=groups,dc=rathaus,dc=example",
            "cn=pbx-admins,ou=groups,dc=rathaus,dc=example"
        ));
    }

    #[test]
    fn a_malformed_entry_is_none_not_a_panic() {
        use ldap3::asn1::{PL, TagClass};
        let tag = |id, payload| StructureTag {
            class: TagClass::Application,
            id,
            payload,
        };
        // Not a SearchResultEntry at all, an empty one, and one whose DN is not UTF-8.
        assert!(DirectoryEntry::read(ResultEntry::new(tag(5, PL::C(vec![])))).is_none());
        assert!(DirectoryEntry::read(ResultEntry::new(tag(4, PL::C(vec![])))).is_none());
        let bad_dn = StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(vec![0xff, 0xfe]),
        };
        assert!(DirectoryEntry::read(ResultEntry::new(tag(4, PL::C(vec![bad_dn])))).is_none());
        assert!(DirectoryEntry::read(ResultEntry::new(tag(4, PL::P(vec![1])))).is_none());
    }
}
