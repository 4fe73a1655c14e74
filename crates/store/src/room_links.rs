//! A stored room's link to an external video meeting: the meeting's WHIP endpoint (where the
//! server publishes the room's mix) and WHEP endpoint (where it fetches the meeting's audio),
//! each with the bearer token the meeting gave out. While the room is open the server keeps
//! both sessions up, so the meeting is one participant of the room.
//!
//! The tokens are the meeting's credentials, not ours: they must be presented as they are, so
//! unlike room PINs and our own room tokens they are stored in clear (the database file is
//! readable by the service user only), and listings show only whether one is set.

use crate::db::{OptionalExtension, params};

use crate::{Store, StoreError};

/// Longest URL taken; meeting endpoints are short, this only bounds what is stored.
const MAX_URL: usize = 2048;
/// Longest bearer token taken (JWTs from meeting servers run to a few hundred bytes).
const MAX_TOKEN: usize = 4096;

/// A room's link to a meeting's WHIP ingress and WHEP egress.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomLink {
    /// The room.
    pub room: String,
    /// Where the server POSTs its WHIP offer (the room's mix goes there).
    pub whip_url: String,
    /// Bearer token for the WHIP endpoint, if it needs one.
    pub whip_token: Option<String>,
    /// Where the server POSTs its WHEP offer (the meeting's audio comes from there).
    pub whep_url: String,
    /// Bearer token for the WHEP endpoint, if it needs one.
    pub whep_token: Option<String>,
}

// The meeting's tokens must not end up in logs through `{:?}`.
impl std::fmt::Debug for RoomLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomLink")
            .field("room", &self.room)
            .field("whip_url", &self.whip_url)
            .field(
                "whip_token",
                &self.whip_token.as_ref().map(|_| "<redacted>"),
            )
            .field("whep_url", &self.whep_url)
            .field(
                "whep_token",
                &self.whep_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Checks that `url` is an absolute `http://` or `https://` URL with a host, as the link's
/// HTTP client needs; `which` names it in the error.
pub fn validate_link_url(which: &'static str, url: &str) -> Result<(), StoreError> {
    let bad = |problem| {
        Err(StoreError::InvalidLinkUrl {
            which,
            url: url.to_owned(),
            problem,
        })
    };
    if url.len() > MAX_URL {
        return bad("is longer than 2048 characters");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains spaces or control characters");
    }
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        _ => return bad("must start with http:// or https://"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return bad("has no host");
    }
    Ok(())
}

fn validate_token(which: &'static str, token: Option<&str>) -> Result<(), StoreError> {
    match token {
        Some(t)
            if t.is_empty() || t.len() > MAX_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(StoreError::InvalidLinkToken(which))
        }
        _ => Ok(()),
    }
}

impl Store {
    /// Links stored room `link.room` to a meeting, replacing an earlier link of the room.
    pub fn room_link_set(&self, link: &RoomLink, now_ms: i64) -> Result<(), StoreError> {
        validate_link_url("WHIP", &link.whip_url)?;
        validate_link_url("WHEP", &link.whep_url)?;
        validate_token("WHIP", link.whip_token.as_deref())?;
        validate_token("WHEP", link.whep_token.as_deref())?;
        let tx = self.db.transaction()?;
        if self.room_get(&link.room)?.is_none() {
            return Err(StoreError::NoSuchRoom(link.room.clone()));
        }
        tx.execute(
            "INSERT INTO room_link (room, whip_url, whip_token, whep_url, whep_token, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(room) DO UPDATE SET whip_url = excluded.whip_url,
             whip_token = excluded.whip_token, whep_url = excluded.whep_url,
             whep_token = excluded.whep_token, created_at_ms = excluded.created_at_ms",
            params![
                link.room,
                link.whip_url,
                link.whip_token,
                link.whep_url,
                link.whep_token,
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes room `room`'s link; false if it had none.
    pub fn room_link_remove(&self, room: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .execute("DELETE FROM room_link WHERE room = ?1", [room])?
            > 0)
    }

    /// Room `room`'s link, if it has one.
    pub fn room_link_get(&self, room: &str) -> Result<Option<RoomLink>, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT room, whip_url, whip_token, whep_url, whep_token FROM room_link
                 WHERE room = ?1",
                [room],
                link_from_row,
            )
            .optional()?)
    }

    /// Every room link, by room number.
    pub fn room_links(&self) -> Result<Vec<RoomLink>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT room, whip_url, whip_token, whep_url, whep_token FROM room_link ORDER BY room",
        )?;
        let links = stmt
            .query_map([], link_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(links)
    }
}

fn link_from_row(row: &crate::db::Row<'_>) -> crate::db::Result<RoomLink> {
    Ok(RoomLink {
        room: row.get(0)?,
        whip_url: row.get(1)?,
        whip_token: row.get(2)?,
        whep_url: row.get(3)?,
        whep_token: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRoom;
    use crate::testing::{Backend, on_both_backends};

    fn link(room: &str) -> RoomLink {
        RoomLink {
            room: room.to_owned(),
            whip_url: "https://meet.example/whip/abc".to_owned(),
            whip_token: Some("secret-in".to_owned()),
            whep_url: "http://10.0.0.5:8080/whep/abc".to_owned(),
            whep_token: None,
        }
    }

    fn store_with_room(backend: Backend, number: &str) -> Store {
        let store = backend.open();
        store.room_create(&NewRoom::new(number, 1)).unwrap();
        store
    }

    fn a_link_is_stored_replaced_and_removed(backend: Backend) {
        let store = store_with_room(backend, "1234");
        assert_eq!(store.room_link_get("1234").unwrap(), None);
        store.room_link_set(&link("1234"), 5).unwrap();
        assert_eq!(store.room_link_get("1234").unwrap(), Some(link("1234")));
        let mut other = link("1234");
        other.whep_token = Some("t2".to_owned());
        store.room_link_set(&other, 6).unwrap();
        assert_eq!(store.room_links().unwrap(), vec![other]);
        assert!(store.room_link_remove("1234").unwrap());
        assert!(!store.room_link_remove("1234").unwrap());
        assert_eq!(store.room_link_get("1234").unwrap(), None);
    }

    fn only_a_stored_room_can_be_linked_and_deleting_it_drops_the_link(backend: Backend) {
        let store = store_with_room(backend, "1234");
        assert!(matches!(
            store.room_link_set(&link("99"), 1),
            Err(StoreError::NoSuchRoom(_))
        ));
        store.room_link_set(&link("1234"), 1).unwrap();
        assert!(store.room_delete("1234").unwrap());
        assert_eq!(store.room_link_get("1234").unwrap(), None);
    }

    fn refuses_urls_and_tokens_the_client_cannot_use(backend: Backend) {
        let store = store_with_room(backend, "1");
        for url in [
            "ftp://x/whip",
            "meet.example/whip",
            "https:///whip",
            "https://:443/whip",
            "https://a b/whip",
        ] {
            let mut l = link("1");
            l.whip_url = url.to_owned();
            assert!(
                matches!(
                    store.room_link_set(&l, 1),
                    Err(StoreError::InvalidLinkUrl { .. })
                ),
                "{url}"
            );
        }
        let mut l = link("1");
        l.whep_token = Some("two words".to_owned());
        assert!(matches!(
            store.room_link_set(&l, 1),
            Err(StoreError::InvalidLinkToken("WHEP"))
        ));
    }

    #[test]
    fn debug_hides_the_tokens() {
        let shown = format!("{:?}", link("1"));
        assert!(!shown.contains("secret-in"), "{shown}");
        assert!(shown.contains("meet.example"), "{shown}");
    }

    on_both_backends!(
        a_link_is_stored_replaced_and_removed,
        only_a_stored_room_can_be_linked_and_deleting_it_drops_the_link,
        refuses_urls_and_tokens_the_client_cannot_use,
    );
}
