//! API tokens: bearer tokens with which scripts use the console's JSON API as a console
//! account, without a browser session. A token is shown once when made; the store keeps its
//! SHA-256 only, so a copy of the database does not hand out access. A token acts with its
//! account's role and stops working when the account is disabled, deleted, or the token is
//! revoked.

use crate::db::{OptionalExtension, params};

use crate::console::{ACCOUNT_COLUMNS, account_from_row, random_token};
use crate::{ConsoleAccount, Store, StoreError, token_hash};

/// Every API token starts with this, so that one pasted somewhere it should not be can be
/// recognised (and found by secret scanners).
pub const API_TOKEN_PREFIX: &str = "amt_";

/// A stored token, without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub account: String,
    /// What it is for, as its maker wrote ("backup script").
    pub label: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// A token just made: the secret is in `token`, here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub id: i64,
    pub token: String,
}

const LABEL_MAX: usize = 100;

fn token_from_row(row: &crate::db::Row<'_>) -> crate::db::Result<ApiToken> {
    Ok(ApiToken {
        id: row.get(0)?,
        account: row.get(1)?,
        label: row.get(2)?,
        created_at_ms: row.get(3)?,
        last_used_at_ms: row.get(4)?,
    })
}

impl Store {
    /// Makes a token for `account` (which must exist and not be disabled).
    pub fn api_token_create(
        &self,
        account: &str,
        label: &str,
        now_ms: i64,
    ) -> Result<NewApiToken, StoreError> {
        let found = self
            .console_account_get(account)?
            .ok_or_else(|| StoreError::NoSuchAccount(account.to_owned()))?;
        if found.disabled {
            return Err(StoreError::AccountDisabled(account.to_owned()));
        }
        let label = label.trim();
        if label.is_empty()
            || label.chars().count() > LABEL_MAX
            || label.chars().any(char::is_control)
        {
            return Err(StoreError::InvalidTokenLabel);
        }
        let token = format!("{API_TOKEN_PREFIX}{}", random_token()?);
        let id = self.db.query_row(
            "INSERT INTO api_token (token_hash, account, label, created_at_ms) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
            params![token_hash(&token).as_slice(), account, label, now_ms],
            |row| row.get(0),
        )?;
        Ok(NewApiToken { id, token })
    }

    /// The account a presented token acts as (noting when it was used), or `None` when the
    /// token is unknown or its account disabled or gone.
    pub fn api_token_account(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Option<ConsoleAccount>, StoreError> {
        let hash = token_hash(token);
        let account = self
            .db
            .query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM console_account
                     WHERE name = (SELECT account FROM api_token WHERE token_hash = ?1)"
                ),
                [hash.as_slice()],
                |row| account_from_row(row, 0),
            )
            .optional()?
            .filter(|account| !account.disabled);
        if account.is_some() {
            self.db.execute(
                "UPDATE api_token SET last_used_at_ms = ?2 WHERE token_hash = ?1",
                params![hash.as_slice(), now_ms],
            )?;
        }
        Ok(account)
    }

    /// The tokens of `account`, or everyone's with `None`; oldest first.
    pub fn api_token_list(&self, account: Option<&str>) -> Result<Vec<ApiToken>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT id, account, label, created_at_ms, last_used_at_ms FROM api_token
             WHERE CAST(?1 AS TEXT) IS NULL OR account = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([account], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The token `id`, if any.
    pub fn api_token_get(&self, id: i64) -> Result<Option<ApiToken>, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT id, account, label, created_at_ms, last_used_at_ms FROM api_token WHERE id = ?1",
                [id],
                token_from_row,
            )
            .optional()?)
    }

    /// Revokes token `id`; false if there was none.
    pub fn api_token_revoke(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .db
            .execute("DELETE FROM api_token WHERE id = ?1", [id])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{Backend, on_both_backends};
    use crate::{ConsoleRole, Store, StoreError};

    fn store_with_anna(backend: Backend) -> Store {
        let store = backend.open();
        store
            .console_account_create("anna", ConsoleRole::Staff, None, "anna-secret-1", 1)
            .unwrap();
        store
    }

    fn a_token_acts_as_its_account_until_revoked_and_only_its_hash_is_stored(backend: Backend) {
        let store = store_with_anna(backend);
        let made = store.api_token_create("anna", "backup script", 10).unwrap();
        assert!(
            made.token.starts_with("amt_") && made.token.len() > 40,
            "{}",
            made.token
        );
        let account = store.api_token_account(&made.token, 20).unwrap().unwrap();
        assert_eq!(account.name, "anna");
        assert_eq!(store.api_token_account("amt_guess", 20).unwrap(), None);
        let listed = store.api_token_list(Some("anna")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].label, "backup script");
        assert_eq!(listed[0].last_used_at_ms, Some(20));
        let stored: Vec<u8> = store
            .db
            .query_row("SELECT token_hash FROM api_token", [], |row| row.get(0))
            .unwrap();
        assert_ne!(stored, made.token.as_bytes());
        assert!(store.api_token_revoke(made.id).unwrap());
        assert_eq!(store.api_token_account(&made.token, 30).unwrap(), None);
        assert!(!store.api_token_revoke(made.id).unwrap());
    }

    fn a_disabled_or_deleted_account_s_tokens_stop_working(backend: Backend) {
        let store = store_with_anna(backend);
        let made = store.api_token_create("anna", "script", 10).unwrap();
        store.console_account_set_disabled("anna", true).unwrap();
        assert_eq!(store.api_token_account(&made.token, 20).unwrap(), None);
        assert!(matches!(
            store.api_token_create("anna", "again", 30),
            Err(StoreError::AccountDisabled(_))
        ));
        store.console_account_set_disabled("anna", false).unwrap();
        assert!(store.api_token_account(&made.token, 40).unwrap().is_some());
        assert!(matches!(
            store.api_token_create("anna", " ", 50),
            Err(StoreError::InvalidTokenLabel)
        ));
        store.console_account_delete("anna").unwrap();
        assert!(store.api_token_list(None).unwrap().is_empty());
        assert!(matches!(
            store.api_token_create("nobody", "x", 50),
            Err(StoreError::NoSuchAccount(_))
        ));
    }

    on_both_backends!(
        a_token_acts_as_its_account_until_revoked_and_only_its_hash_is_stored,
        a_disabled_or_deleted_account_s_tokens_stop_working,
    );
}
