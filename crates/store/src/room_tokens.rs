//! Bearer tokens that let a WebRTC client publish into a room (WHIP, RFC 9725) or listen to
//! it (WHEP): one token per room and direction.
//!
//! A token is 32 random bytes, shown once as 64 hex digits and stored only as its SHA-256.
//! Unlike a PIN (see `rooms.rs`, which needs Argon2id because a 4-10 digit PIN has at most
//! 10^10 candidates), a 256-bit random token cannot be found by trying candidates against a
//! stolen hash, so a fast hash protects it fully and costs nothing per request.

use crate::db::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::rooms::validate_room_number;
use crate::{Store, StoreError};

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// What a room token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Publishing audio into the room (WHIP ingest).
    Whip,
    /// Receiving the room's mix (WHEP egress).
    Whep,
}

impl TokenKind {
    /// The word stored in the database and shown to admins.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Whip => "whip",
            TokenKind::Whep => "whep",
        }
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenKind::Whip => "WHIP",
            TokenKind::Whep => "WHEP",
        })
    }
}

/// The SHA-256 of a token as presented (what is stored and what sessions remember).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
pub fn same_token_hash(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

impl Store {
    /// Makes a new random token for `room` and `kind` and returns it; only its hash is kept.
    /// It replaces the room's earlier token of that kind, which stops working at once. The
    /// room need not be stored: a room opened on demand can be given tokens too.
    pub fn room_token_issue(
        &self,
        room: &str,
        kind: TokenKind,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        validate_room_number(room)?;
        let mut secret = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut secret).map_err(StoreError::Randomness)?;
        let token = hex(&secret);
        self.db.execute(
            "INSERT INTO room_token (room, kind, token_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(room, kind) DO UPDATE SET token_hash = excluded.token_hash,
             created_at_ms = excluded.created_at_ms",
            params![room, kind.as_str(), token_hash(&token).as_slice(), now_ms],
        )?;
        Ok(token)
    }

    /// Removes the room's token of `kind`; false if it had none.
    pub fn room_token_revoke(&self, room: &str, kind: TokenKind) -> Result<bool, StoreError> {
        Ok(self.db.execute(
            "DELETE FROM room_token WHERE room = ?1 AND kind = ?2",
            params![room, kind.as_str()],
        )? > 0)
    }

    /// Whether `token` is the room's current token of `kind` (false when it has none).
    pub fn room_token_check(
        &self,
        room: &str,
        kind: TokenKind,
        token: &str,
    ) -> Result<bool, StoreError> {
        self.room_token_hash_is_current(room, kind, &token_hash(token))
    }

    /// Whether the token whose hash is `hash` is still the room's token of `kind`: a session
    /// opened with a token that was since revoked or replaced must end.
    pub fn room_token_hash_is_current(
        &self,
        room: &str,
        kind: TokenKind,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let stored: Option<Vec<u8>> = self
            .db
            .query_row(
                "SELECT token_hash FROM room_token WHERE room = ?1 AND kind = ?2",
                params![room, kind.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(stored.is_some_and(|stored| same_token_hash(&stored, hash)))
    }

    /// Which kinds of token the room has, for listings.
    pub fn room_token_kinds(&self, room: &str) -> Result<Vec<TokenKind>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT kind FROM room_token WHERE room = ?1 ORDER BY kind")?;
        let kinds = stmt
            .query_map([room], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(kinds
            .iter()
            .filter_map(|kind| match kind.as_str() {
                "whip" => Some(TokenKind::Whip),
                "whep" => Some(TokenKind::Whep),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRoom;
    use crate::testing::{Backend, on_both_backends};

    fn an_issued_token_checks_only_for_its_room_and_kind(backend: Backend) {
        let store = backend.open();
        let token = store.room_token_issue("1234", TokenKind::Whip, 1).unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            store
                .room_token_check("1234", TokenKind::Whip, &token)
                .unwrap()
        );
        assert!(
            !store
                .room_token_check("1234", TokenKind::Whep, &token)
                .unwrap()
        );
        assert!(
            !store
                .room_token_check("1235", TokenKind::Whip, &token)
                .unwrap()
        );
        assert!(!store.room_token_check("1234", TokenKind::Whip, "").unwrap());
        let mut wrong = token.clone();
        wrong.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
        assert!(
            !store
                .room_token_check("1234", TokenKind::Whip, &wrong)
                .unwrap()
        );
    }

    fn a_new_token_replaces_the_old_and_revoking_removes_it(backend: Backend) {
        let store = backend.open();
        let first = store.room_token_issue("7", TokenKind::Whep, 1).unwrap();
        let second = store.room_token_issue("7", TokenKind::Whep, 2).unwrap();
        assert_ne!(first, second);
        assert!(
            !store
                .room_token_check("7", TokenKind::Whep, &first)
                .unwrap()
        );
        assert!(
            store
                .room_token_check("7", TokenKind::Whep, &second)
                .unwrap()
        );
        assert_eq!(store.room_token_kinds("7").unwrap(), vec![TokenKind::Whep]);
        assert!(store.room_token_revoke("7", TokenKind::Whep).unwrap());
        assert!(!store.room_token_revoke("7", TokenKind::Whep).unwrap());
        assert!(
            !store
                .room_token_check("7", TokenKind::Whep, &second)
                .unwrap()
        );
    }

    fn tokens_are_stored_only_as_hashes(backend: Backend) {
        let store = backend.open();
        let token = store.room_token_issue("1234", TokenKind::Whip, 1).unwrap();
        let stored: Vec<u8> = store
            .db
            .query_row("SELECT token_hash FROM room_token", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, token_hash(&token).to_vec());
        let hex = match store.db.dialect() {
            crate::db::Dialect::Sqlite => "hex(token_hash)",
            crate::db::Dialect::Postgres => "encode(token_hash, 'hex')",
        };
        let dump: String = store
            .db
            .query_row(
                &format!("SELECT room || kind || {hex} || created_at_ms FROM room_token"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!dump.to_lowercase().contains(&token), "{dump}");
    }

    fn rejects_a_room_number_no_room_can_have(backend: Backend) {
        let store = backend.open();
        assert!(matches!(
            store.room_token_issue("12a4", TokenKind::Whip, 1),
            Err(StoreError::InvalidRoomNumber { .. })
        ));
    }

    fn deleting_a_stored_room_deletes_its_tokens(backend: Backend) {
        let store = backend.open();
        store.room_create(&NewRoom::new("4711", 0)).unwrap();
        let token = store.room_token_issue("4711", TokenKind::Whip, 1).unwrap();
        assert!(store.room_delete("4711").unwrap());
        assert!(
            !store
                .room_token_check("4711", TokenKind::Whip, &token)
                .unwrap()
        );
        // A room that is created again is a new room: the old token does not open it.
        store.room_create(&NewRoom::new("4711", 2)).unwrap();
        assert!(
            !store
                .room_token_check("4711", TokenKind::Whip, &token)
                .unwrap()
        );
    }

    on_both_backends!(
        an_issued_token_checks_only_for_its_room_and_kind,
        a_new_token_replaces_the_old_and_revoking_removes_it,
        tokens_are_stored_only_as_hashes,
        rejects_a_room_number_no_room_can_have,
        deleting_a_stored_room_deletes_its_tokens,
    );
}
