//! `amtsleitung room ...`: create, list and delete pre-created conference rooms in the store,
//! and give rooms bearer tokens for WebRTC clients (WHIP/WHEP).
//!
//! Works on the database file directly, so it also works while the server runs (SQLite WAL,
//! busy timeout in the store). PINs and tokens go in hashed and never come out: the list says
//! "set", and a token is printed once when it is made. A room's link to an external meeting
//! (`room link`) keeps the meeting's tokens, since the server must present them; they are
//! never printed either. Every change goes into the audit log (audit_cli.rs), without PINs
//! or tokens.

use std::path::Path;
use std::process::ExitCode;

use store::{NewRoom, Room, RoomLink, Store, StoreError, TokenKind};

use crate::audit_cli::record_cli_change;

/// Room administration commands.
#[derive(Debug, clap::Subcommand)]
pub enum RoomCommand {
    /// Create a room, e.g. `room create 4711 --pin 1234 --moderator-pin 9999`.
    Create {
        /// Room number callers key in (1 to 10 digits).
        number: String,
        /// PIN every participant must key in (4 to 10 digits).
        #[arg(long)]
        pin: Option<String>,
        /// PIN that makes a caller moderator (4 to 10 digits).
        #[arg(long)]
        moderator_pin: Option<String>,
        /// Most callers in the room at once.
        #[arg(long, default_value_t = store::DEFAULT_MAX_PARTICIPANTS)]
        max_participants: u32,
        /// Participants wait (with music) until a moderator joins; needs --moderator-pin.
        #[arg(long)]
        wait_for_moderator: bool,
        /// If a room with this number is open on demand right now, end its calls (the
        /// room then opens only with the new PINs); without it, such a number is refused.
        #[arg(long)]
        end_calls: bool,
        /// The web console account that runs the room (see `account add`); without it,
        /// admins only.
        #[arg(long, value_name = "ACCOUNT")]
        owner: Option<String>,
    },
    /// List rooms: number, PIN set?, moderator PIN set?, max participants, wait-for-moderator,
    /// owner, meeting link.
    List,
    /// Give a stored room to a web console account, whose holder then runs it from the
    /// console (`room owner 4711 anna`), or back to admins only (`room owner 4711 --none`).
    Owner {
        /// Room number (a stored room).
        number: String,
        /// The console account.
        #[arg(required_unless_present = "none")]
        account: Option<String>,
        /// No owner: only admins run the room.
        #[arg(long, conflicts_with = "account")]
        none: bool,
    },
    /// Make a bearer token for WebRTC clients of a room: `--whip` to publish audio into it
    /// (POST /whip/rooms/NUMBER), `--whep` to listen to it (POST /whep/rooms/NUMBER). Prints
    /// the token once; only its hash is stored. A new token replaces the room's earlier one of
    /// that kind; `--revoke` removes it. Either way the sessions the old token let in end
    /// within a second on a running server.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["whip", "whep"])))]
    Token {
        /// Room number (stored, or one that opens on demand).
        number: String,
        /// A token for WHIP ingest (publishing into the room).
        #[arg(long)]
        whip: bool,
        /// A token for WHEP egress (listening to the room).
        #[arg(long)]
        whep: bool,
        /// Remove the room's token of this kind instead of making one.
        #[arg(long)]
        revoke: bool,
    },
    /// Link a stored room to an external video meeting over WHIP/WHEP: while the room is
    /// open the server publishes the room's mix to `--whip` and plays what it fetches from
    /// `--whep` into the room, so the meeting is one participant. Replaces an earlier link;
    /// a running link reconnects to the new endpoints within seconds.
    Link {
        /// Room number (a stored room).
        number: String,
        /// The meeting's WHIP endpoint (http:// or https://), where the room's mix goes.
        #[arg(long)]
        whip: String,
        /// Bearer token for the WHIP endpoint.
        #[arg(long)]
        whip_token: Option<String>,
        /// The meeting's WHEP endpoint, where the meeting's audio comes from.
        #[arg(long)]
        whep: String,
        /// Bearer token for the WHEP endpoint.
        #[arg(long)]
        whep_token: Option<String>,
    },
    /// Remove a room's link to a meeting; a running link ends within seconds.
    Unlink {
        /// Room number.
        number: String,
    },
    /// Show one stored room: its settings, WebRTC tokens (set or not) and meeting link.
    Show {
        /// Room number.
        number: String,
    },
    /// Delete a room; refused while callers are in it, unless --end-calls.
    Delete {
        /// Room number.
        number: String,
        /// End the calls of everyone in the room (they hear that the conference ended).
        #[arg(long)]
        end_calls: bool,
    },
}

/// Runs one room command against the store in `data_dir`; exit 1 with a message on failure.
/// Runs a room command on the rooms of `domain` (the default domain, or a tenant's).
pub fn run(mut command: RoomCommand, data_dir: &Path, domain: &str) -> ExitCode {
    if let Some(number) = command.number_mut() {
        *number = crate::tenants::room_key(domain, number);
    }
    report(match command {
        RoomCommand::List => list(data_dir, domain),
        command => execute(command, data_dir),
    })
}

impl RoomCommand {
    /// The room the command is about, if it names one.
    fn number_mut(&mut self) -> Option<&mut String> {
        match self {
            RoomCommand::Create { number, .. }
            | RoomCommand::Owner { number, .. }
            | RoomCommand::Token { number, .. }
            | RoomCommand::Link { number, .. }
            | RoomCommand::Unlink { number, .. }
            | RoomCommand::Show { number, .. }
            | RoomCommand::Delete { number, .. } => Some(number),
            RoomCommand::List => None,
        }
    }
}

/// `room list`: the rooms of `domain`.
fn list(data_dir: &Path, domain: &str) -> Result<String, String> {
    if !Store::database_file(data_dir).exists() {
        return Ok(format!(
            "no rooms (no database in {})\n",
            data_dir.display()
        ));
    }
    let store = open(data_dir)?;
    let rooms: Vec<_> = store
        .room_list()
        .map_err(|err| format!("cannot list rooms: {err}"))?
        .into_iter()
        .filter(|room| crate::tenants::room_domain(&room.number) == domain)
        .collect();
    let links = store
        .room_links()
        .map_err(|err| format!("cannot list room links: {err}"))?;
    Ok(room_table(&rooms, &links))
}

/// Prints an offline command's outcome: its text on stdout, or one error line on stderr
/// and exit 1 (shared by the `room` and `user` commands).
pub fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(message) => {
            print!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("amtsleitung: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Does the work and returns what to print: stdout text on success, one error line otherwise.
fn execute(command: RoomCommand, data_dir: &Path) -> Result<String, String> {
    // Listing or deleting must not leave a fresh empty database behind in a mistyped directory.
    let exists = Store::database_file(data_dir).exists();
    match command {
        RoomCommand::Create {
            number,
            pin,
            moderator_pin,
            max_participants,
            wait_for_moderator,
            end_calls,
            owner,
        } => {
            let store = open(data_dir)?;
            let in_use = callers_in(&store, &number)?;
            if in_use > 0 && !end_calls {
                return Err(format!(
                    "room {number} is open with {in_use} caller(s) right now; not created \
                     (add --end-calls to end their calls)"
                ));
            }
            let room = store
                .room_create(&NewRoom {
                    number,
                    pin,
                    moderator_pin,
                    max_participants,
                    wait_for_moderator,
                    created_at_ms: jiff::Timestamp::now().as_millisecond(),
                    owner,
                })
                .map_err(|err| match err {
                    StoreError::Database(_) => format!("cannot create the room: {err}"),
                    other => other.to_string(),
                })?;
            record_cli_change(
                &store,
                "room.create",
                &format!("room {} {}{}", room.number, settings(&room), ended(in_use)),
            )?;
            Ok(format!("{}\n{}", created_line(&room), ending_note(in_use)))
        }
        RoomCommand::Owner {
            number,
            account,
            none: _,
        } => {
            if !exists {
                return Err(format!(
                    "no room {number} (no database in {})",
                    data_dir.display()
                ));
            }
            let store = open(data_dir)?;
            // clap makes sure there is an account unless --none is given.
            let room =
                store
                    .room_set_owner(&number, account.as_deref())
                    .map_err(|err| match err {
                        StoreError::Database(_) => format!("cannot change the owner: {err}"),
                        other => other.to_string(),
                    })?;
            let line = owner_line(&room);
            record_cli_change(&store, "room.owner", &line)?;
            Ok(format!("{line}\n"))
        }
        RoomCommand::List => list(data_dir, store::DEFAULT_DOMAIN),
        RoomCommand::Link {
            number,
            whip,
            whip_token,
            whep,
            whep_token,
        } => {
            if !exists {
                return Err(format!(
                    "no room {number} (no database in {})",
                    data_dir.display()
                ));
            }
            let link = RoomLink {
                room: number.clone(),
                whip_url: whip,
                whip_token,
                whep_url: whep,
                whep_token,
            };
            let store = open(data_dir)?;
            store
                .room_link_set(&link, jiff::Timestamp::now().as_millisecond())
                .map_err(|err| match err {
                    StoreError::Database(_) => format!("cannot store the link: {err}"),
                    other => other.to_string(),
                })?;
            // Only the hosts: a URL's path or query may carry a meeting's own secret.
            record_cli_change(
                &store,
                "room.link",
                &format!(
                    "room {number} linked to a meeting: WHIP at {}, WHEP at {}",
                    url_host(&link.whip_url),
                    url_host(&link.whep_url)
                ),
            )?;
            Ok(format!(
                "room {number} linked to a meeting: WHIP {}, WHEP {}\n",
                link.whip_url, link.whep_url
            ))
        }
        RoomCommand::Unlink { number } => {
            let store = if exists { Some(open(data_dir)?) } else { None };
            let removed = match &store {
                Some(store) => store
                    .room_link_remove(&number)
                    .map_err(|err| format!("cannot remove the link: {err}"))?,
                None => false,
            };
            if let (true, Some(store)) = (removed, &store) {
                record_cli_change(store, "room.unlink", &format!("room {number}"))?;
                Ok(format!("room {number} unlinked\n"))
            } else {
                Err(format!("room {number} has no meeting link"))
            }
        }
        RoomCommand::Show { number } => {
            if !exists {
                return Err(format!(
                    "no room {number} (no database in {})",
                    data_dir.display()
                ));
            }
            let store = open(data_dir)?;
            let room = store
                .room_get(&number)
                .map_err(|err| format!("cannot read room {number}: {err}"))?
                .ok_or_else(|| format!("no room {number}"))?;
            let tokens = store
                .room_token_kinds(&number)
                .map_err(|err| format!("cannot read room {number}'s tokens: {err}"))?;
            let link = store
                .room_link_get(&number)
                .map_err(|err| format!("cannot read room {number}'s link: {err}"))?;
            Ok(room_details(&room, &tokens, link.as_ref()))
        }
        RoomCommand::Token {
            number,
            whip,
            whep: _,
            revoke,
        } => {
            let kind = if whip {
                TokenKind::Whip
            } else {
                TokenKind::Whep
            };
            if revoke {
                if !exists {
                    return Err(format!(
                        "room {number} has no {kind} token (no database in {})",
                        data_dir.display()
                    ));
                }
                let store = open(data_dir)?;
                let revoked = store
                    .room_token_revoke(&number, kind)
                    .map_err(|err| format!("cannot revoke the token: {err}"))?;
                return if revoked {
                    record_cli_change(
                        &store,
                        "room.token-revoke",
                        &format!("room {number}: {kind} token revoked"),
                    )?;
                    Ok(format!("{kind} token of room {number} revoked\n"))
                } else {
                    Err(format!("room {number} has no {kind} token"))
                };
            }
            let store = open(data_dir)?;
            let token = store
                .room_token_issue(&number, kind, jiff::Timestamp::now().as_millisecond())
                .map_err(|err| match err {
                    StoreError::Database(_) => format!("cannot store the token: {err}"),
                    other => other.to_string(),
                })?;
            record_cli_change(
                &store,
                "room.token",
                &format!("room {number}: new {kind} token"),
            )?;
            // The token alone on stdout, so that scripts can take it; the note for people.
            eprintln!(
                "{kind} token for room {number}: shown only now (the server keeps its hash); \
                 it replaces any earlier {kind} token of the room"
            );
            Ok(format!("{token}\n"))
        }
        RoomCommand::Delete { number, end_calls } => {
            if !exists {
                return Err(format!(
                    "no room {number} (no database in {})",
                    data_dir.display()
                ));
            }
            let store = open(data_dir)?;
            let in_use = callers_in(&store, &number)?;
            if in_use > 0 && !end_calls {
                return Err(format!(
                    "room {number} is in use by {in_use} caller(s); not deleted \
                     (add --end-calls to end their calls)"
                ));
            }
            let deleted = store
                .room_delete(&number)
                .map_err(|err| format!("cannot delete room {number}: {err}"))?;
            if deleted {
                record_cli_change(
                    &store,
                    "room.delete",
                    &format!("room {number}{}", ended(in_use)),
                )?;
                Ok(format!("room {number} deleted\n{}", ending_note(in_use)))
            } else {
                Err(format!("no room {number}"))
            }
        }
    }
}

/// Callers in the room on a running server (0 when it is not open, or when the server that
/// reported it is gone).
fn callers_in(store: &Store, number: &str) -> Result<u32, String> {
    let live = store
        .live_room(number)
        .map_err(|err| format!("cannot tell whether room {number} is in use: {err}"))?;
    Ok(live
        .filter(|room| Path::new(&format!("/proc/{}", room.server_pid)).exists())
        .map_or(0, |room| room.participants))
}

/// What happens to the callers of a room whose calls the command ends.
fn ending_note(callers: u32) -> String {
    if callers == 0 {
        String::new()
    } else {
        format!("the server ends the calls of the {callers} caller(s) in it within a few seconds\n")
    }
}

fn open(data_dir: &Path) -> Result<Store, String> {
    Store::open(data_dir).map_err(|err| {
        format!(
            "cannot open the store {}: {err}",
            Store::database_file(data_dir).display()
        )
    })
}

/// For the audit log: the calls a command ended, if any.
fn ended(callers: u32) -> String {
    if callers == 0 {
        String::new()
    } else {
        format!(", ending the calls of {callers} caller(s)")
    }
}

/// The host of a URL, or "?" (never its path or query, which may hold a secret).
fn url_host(text: &str) -> String {
    url::Url::parse(text)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Who runs a room, as `room owner` confirms it.
fn owner_line(room: &Room) -> String {
    match &room.owner {
        Some(owner) => format!("room {} is run by console account {owner}", room.number),
        None => format!("room {} is run by admins only", room.number),
    }
}

/// The one line that confirms a created room, without its PINs.
fn created_line(room: &Room) -> String {
    format!("room {} created {}", room.number, settings(room))
}

/// A room's settings in parentheses, PINs only as set or not.
fn settings(room: &Room) -> String {
    format!(
        "({}, {}, up to {} participants{}{})",
        if room.has_pin { "PIN set" } else { "no PIN" },
        if room.has_moderator_pin {
            "moderator PIN set"
        } else {
            "no moderator PIN"
        },
        room.max_participants,
        if room.wait_for_moderator {
            ", waits for moderator"
        } else {
            ""
        },
        match &room.owner {
            Some(owner) => format!(", run by {owner}"),
            None => String::new(),
        }
    )
}

/// `room show`: one room's settings, which tokens it has and its link, without secrets.
fn room_details(room: &Room, tokens: &[TokenKind], link: Option<&RoomLink>) -> String {
    let set = |flag: bool| if flag { "set" } else { "-" };
    let has = |kind| set(tokens.contains(&kind));
    let token = |t: &Option<String>| if t.is_some() { "token set" } else { "no token" };
    let mut out = format!(
        "room {}\nPIN: {}\nmoderator PIN: {}\nmax participants: {}\nwait for moderator: {}\n\
         owner: {}\nWHIP token: {}\nWHEP token: {}\n",
        room.number,
        set(room.has_pin),
        set(room.has_moderator_pin),
        room.max_participants,
        if room.wait_for_moderator { "yes" } else { "no" },
        room.owner.as_deref().unwrap_or("- (admins only)"),
        has(TokenKind::Whip),
        has(TokenKind::Whep),
    );
    match link {
        Some(link) => out.push_str(&format!(
            "meeting link: WHIP {} ({}), WHEP {} ({})\n",
            link.whip_url,
            token(&link.whip_token),
            link.whep_url,
            token(&link.whep_token)
        )),
        None => out.push_str("meeting link: -\n"),
    }
    out
}

/// The room list as an aligned text table; PINs appear only as "set" or "-", a meeting link
/// as its WHIP URL.
fn room_table(rooms: &[Room], links: &[RoomLink]) -> String {
    use std::fmt::Write;

    if rooms.is_empty() {
        return "no rooms\n".to_owned();
    }
    const HEADER: [&str; 7] = [
        "NUMBER",
        "PIN",
        "MODERATOR PIN",
        "MAX",
        "WAIT FOR MODERATOR",
        "OWNER",
        "MEETING LINK",
    ];
    let set = |flag: bool| if flag { "set" } else { "-" };
    let rows: Vec<[String; 7]> = rooms
        .iter()
        .map(|room| {
            [
                room.number.clone(),
                set(room.has_pin).to_owned(),
                set(room.has_moderator_pin).to_owned(),
                room.max_participants.to_string(),
                if room.wait_for_moderator { "yes" } else { "no" }.to_owned(),
                room.owner.clone().unwrap_or_else(|| "-".to_owned()),
                links
                    .iter()
                    .find(|link| link.room == room.number)
                    .map_or_else(|| "-".to_owned(), |link| link.whip_url.clone()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(&text);
        out.push('\n');
    };
    line(HEADER);
    for row in &rows {
        line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(number: &str, pin: bool, moderator: bool, max: u32, wait: bool) -> Room {
        Room {
            number: number.into(),
            has_pin: pin,
            has_moderator_pin: moderator,
            max_participants: max,
            wait_for_moderator: wait,
            created_at_ms: 0,
            owner: None,
        }
    }

    #[test]
    fn table_aligns_columns_and_shows_pins_only_as_set() {
        let link = RoomLink {
            room: "4711".into(),
            whip_url: "https://m.example/whip".into(),
            whip_token: Some("meeting-secret".into()),
            whep_url: "https://m.example/whep".into(),
            whep_token: None,
        };
        let table = room_table(
            &[
                Room {
                    owner: Some("anna".into()),
                    ..room("4711", true, true, 50, true)
                },
                room("1234567890", false, false, 1000, false),
            ],
            &[link],
        );
        assert_eq!(
            table,
            "NUMBER      PIN  MODERATOR PIN  MAX   WAIT FOR MODERATOR  OWNER  MEETING LINK\n\
             4711        set  set            50    yes                 anna   https://m.example/whip\n\
             1234567890  -    -              1000  no                  -      -\n"
        );
    }

    #[test]
    fn empty_list_says_so() {
        assert_eq!(room_table(&[], &[]), "no rooms\n");
    }

    #[test]
    fn link_show_unlink_round_trip_never_prints_the_meeting_tokens() {
        let dir = temp_dir("link");
        let link = |number: &str, whip: &str| RoomCommand::Link {
            number: number.into(),
            whip: whip.into(),
            whip_token: Some("in-secret".into()),
            whep: "http://127.0.0.1:9/whep".into(),
            whep_token: Some("out-secret".into()),
        };
        assert!(execute(link("4711", "http://127.0.0.1:9/whip"), &dir).is_err());
        execute(
            RoomCommand::Create {
                number: "4711".into(),
                pin: None,
                moderator_pin: None,
                max_participants: 50,
                wait_for_moderator: false,
                end_calls: false,
                owner: None,
            },
            &dir,
        )
        .unwrap();
        let bad = execute(link("4711", "meet.example/whip"), &dir).unwrap_err();
        assert!(bad.contains("http:// or https://"), "{bad}");
        let linked = execute(link("4711", "http://127.0.0.1:9/whip"), &dir).unwrap();
        let shown = execute(
            RoomCommand::Show {
                number: "4711".into(),
            },
            &dir,
        )
        .unwrap();
        let list = execute(RoomCommand::List, &dir).unwrap();
        assert!(
            shown.contains("meeting link: WHIP http://127.0.0.1:9/whip (token set), WHEP http://127.0.0.1:9/whep (token set)"),
            "{shown}"
        );
        assert!(list.contains("http://127.0.0.1:9/whip"), "{list}");
        for text in [&linked, &shown, &list] {
            assert!(!text.contains("secret"), "{text}");
        }
        let unlink = || RoomCommand::Unlink {
            number: "4711".into(),
        };
        assert_eq!(
            execute(unlink(), &dir),
            Ok("room 4711 unlinked\n".to_owned())
        );
        assert_eq!(
            execute(unlink(), &dir),
            Err("room 4711 has no meeting link".to_owned())
        );
        let shown = execute(
            RoomCommand::Show {
                number: "4711".into(),
            },
            &dir,
        )
        .unwrap();
        assert!(shown.contains("meeting link: -"), "{shown}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn created_line_names_settings_not_pins() {
        assert_eq!(
            created_line(&room("4711", true, true, 50, true)),
            "room 4711 created (PIN set, moderator PIN set, up to 50 participants, waits for moderator)"
        );
        assert_eq!(
            created_line(&room("1", false, false, 5, false)),
            "room 1 created (no PIN, no moderator PIN, up to 5 participants)"
        );
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("amt-room-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn create_list_delete_round_trip_never_prints_a_pin() {
        let dir = temp_dir("roundtrip");
        let created = execute(
            RoomCommand::Create {
                number: "4711".into(),
                pin: Some("24681357".into()),
                moderator_pin: Some("97531864".into()),
                max_participants: 50,
                wait_for_moderator: false,
                end_calls: false,
                owner: None,
            },
            &dir,
        )
        .unwrap();
        assert!(created.starts_with("room 4711 created"), "{created}");
        let list = execute(RoomCommand::List, &dir).unwrap();
        assert!(list.contains("4711"), "{list}");
        for text in [&created, &list] {
            assert!(!text.contains("24681357") && !text.contains("97531864"));
        }
        assert_eq!(
            execute(
                RoomCommand::Delete {
                    number: "4711".into(),
                    end_calls: false,
                },
                &dir
            ),
            Ok("room 4711 deleted\n".to_owned())
        );
        assert_eq!(
            execute(
                RoomCommand::Delete {
                    number: "4711".into(),
                    end_calls: false,
                },
                &dir
            ),
            Err("no room 4711".to_owned())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_errors_name_the_problem() {
        let dir = temp_dir("errors");
        let create = |number: &str, pin: &str| RoomCommand::Create {
            number: number.into(),
            pin: Some(pin.into()),
            moderator_pin: None,
            max_participants: 50,
            wait_for_moderator: false,
            end_calls: false,
            owner: None,
        };
        assert_eq!(
            execute(create("4711", "12"), &dir),
            Err("PIN must be 4 to 10 digits long, got 2".to_owned())
        );
        execute(create("4711", "1234"), &dir).unwrap();
        assert_eq!(
            execute(create("4711", "1234"), &dir),
            Err("room 4711 already exists".to_owned())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn list_and_delete_do_not_create_a_database() {
        let dir = temp_dir("nodb");
        assert!(
            execute(RoomCommand::List, &dir)
                .unwrap()
                .starts_with("no rooms")
        );
        let delete = RoomCommand::Delete {
            number: "1".into(),
            end_calls: false,
        };
        assert!(execute(delete, &dir).is_err());
        assert!(!dir.exists());
    }

    #[test]
    fn token_prints_a_new_token_that_the_store_checks_and_revoke_removes_it() {
        let dir = temp_dir("token");
        let token = |whip: bool, revoke: bool| RoomCommand::Token {
            number: "1234".into(),
            whip,
            whep: !whip,
            revoke,
        };
        assert_eq!(
            execute(token(true, true), &dir),
            Err(format!(
                "room 1234 has no WHIP token (no database in {})",
                dir.display()
            ))
        );
        let printed = execute(token(true, false), &dir).unwrap();
        let whip = printed.trim_end();
        assert_eq!(printed, format!("{whip}\n"), "the token alone on its line");
        let store = Store::open(&dir).unwrap();
        let valid = |kind, token: &str| store.room_token_check("1234", kind, token).unwrap();
        assert!(valid(TokenKind::Whip, whip));
        assert!(!valid(TokenKind::Whep, whip));
        let whep = execute(token(false, false), &dir).unwrap();
        let whep = whep.trim_end();
        assert!(valid(TokenKind::Whep, whep));
        assert_eq!(
            execute(token(true, true), &dir),
            Ok("WHIP token of room 1234 revoked\n".to_owned())
        );
        assert!(!valid(TokenKind::Whip, whip));
        assert!(valid(TokenKind::Whep, whep), "the other kind stays");
        assert_eq!(
            execute(token(true, true), &dir),
            Err("room 1234 has no WHIP token".to_owned())
        );
        let bad = RoomCommand::Token {
            number: "12x".into(),
            whip: true,
            whep: false,
            revoke: false,
        };
        assert!(
            execute(bad, &dir)
                .unwrap_err()
                .contains("must be 1 to 10 digits")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_room_in_use_is_deleted_or_created_over_only_with_end_calls() {
        let dir = temp_dir("inuse");
        let create = |number: &str, end_calls: bool| RoomCommand::Create {
            number: number.into(),
            pin: Some("4321".into()),
            moderator_pin: None,
            max_participants: 50,
            wait_for_moderator: false,
            end_calls,
            owner: None,
        };
        let delete = |number: &str, end_calls: bool| RoomCommand::Delete {
            number: number.into(),
            end_calls,
        };
        execute(create("4711", false), &dir).unwrap();
        // This test's process stands in for a running server that has 4711 and 77 open, and a
        // server that is gone left 88 behind.
        let store = Store::open(&dir).unwrap();
        let me = std::process::id();
        store
            .live_rooms_replace(me, &[("4711".into(), 3), ("77".into(), 1)], 1)
            .unwrap();
        store
            .live_rooms_replace(u32::MAX, &[("88".into(), 2)], 1)
            .unwrap();

        let refused = execute(delete("4711", false), &dir).unwrap_err();
        assert!(refused.contains("in use by 3 caller(s)"), "{refused}");
        assert!(store.room_get("4711").unwrap().is_some(), "still stored");
        let deleted = execute(delete("4711", true), &dir).unwrap();
        assert!(
            deleted.contains("ends the calls of the 3 caller(s)"),
            "{deleted}"
        );
        assert!(store.room_get("4711").unwrap().is_none());

        let refused = execute(create("77", false), &dir).unwrap_err();
        assert!(refused.contains("open with 1 caller(s)"), "{refused}");
        assert!(store.room_get("77").unwrap().is_none());
        execute(create("77", true), &dir).unwrap();
        execute(create("88", false), &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
