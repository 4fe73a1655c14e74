//! `amtsleitung voicemail ...`: list a mailbox's messages, set its listening PIN and mail
//! address, delete a message (its file too).
//!
//! Works on the database file directly, as `room` and `user` do. The PIN goes in hashed and
//! never comes out. A change made here reaches the phones' message lamps with the mailbox's
//! next change or the phone's next registration (the running server is not asked).

use std::path::Path;
use std::process::ExitCode;

use store::{Store, VoicemailId};

use crate::audit_cli::record_cli_change;

/// Voicemail administration commands.
#[derive(Debug, clap::Subcommand)]
pub enum VoicemailCommand {
    /// List a mailbox's messages, new ones first: id, time, caller, length, heard, file.
    List {
        /// The mailbox (the user's extension).
        mailbox: String,
    },
    /// Set the PIN that guards listening by phone (`*98`), 4 to 10 digits; `--clear`
    /// removes it (nobody can listen by phone then).
    Pin {
        /// The mailbox.
        mailbox: String,
        /// The new PIN.
        pin: Option<String>,
        /// Remove the PIN.
        #[arg(long, conflicts_with = "pin")]
        clear: bool,
    },
    /// Set the address new messages are mailed to (`[voicemail] smtp` must be set);
    /// `--clear` stops mailing.
    Email {
        /// The mailbox.
        mailbox: String,
        /// The address.
        address: Option<String>,
        /// Stop mailing.
        #[arg(long, conflicts_with = "address")]
        clear: bool,
    },
    /// Delete a message and its file.
    Delete {
        /// The message id (from `voicemail list`).
        id: i64,
    },
}

/// Runs `amtsleitung voicemail ...` against the store in `data_dir`.
pub fn run(command: VoicemailCommand, data_dir: &Path) -> ExitCode {
    crate::room_cli::report(execute(command, data_dir))
}

fn execute(command: VoicemailCommand, data_dir: &Path) -> Result<String, String> {
    if !Store::database_file(data_dir).exists() {
        return Err(format!("no database in {}", data_dir.display()));
    }
    let store = Store::open(data_dir).map_err(|err| err.to_string())?;
    let err = |e: store::StoreError| e.to_string();
    match command {
        VoicemailCommand::List { mailbox } => {
            let messages = store.voicemail_list(&mailbox).map_err(err)?;
            let tz = jiff::tz::TimeZone::system();
            let mut out = format!(
                "{:>6}  {:<19}  {:<16}  {:>7}  {:<5}  file\n",
                "id", "time", "caller", "seconds", "heard"
            );
            for m in messages {
                let at = jiff::Timestamp::from_millisecond(m.received_at_ms)
                    .map(|t| {
                        t.to_zoned(tz.clone())
                            .strftime("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_else(|_| "?".into());
                out.push_str(&format!(
                    "{:>6}  {:<19}  {:<16}  {:>7.1}  {:<5}  {}\n",
                    m.id.0,
                    at,
                    m.caller,
                    m.duration_ms as f64 / 1000.0,
                    if m.heard { "yes" } else { "no" },
                    m.path.display()
                ));
            }
            Ok(out)
        }
        VoicemailCommand::Pin {
            mailbox,
            pin,
            clear,
        } => {
            if pin.is_none() && !clear {
                return Err("give the PIN, or --clear to remove it".into());
            }
            store
                .voicemail_set_pin(&mailbox, pin.as_deref())
                .map_err(err)?;
            let (action, what) = if clear {
                ("voicemail.pin-clear", "PIN removed")
            } else {
                ("voicemail.pin", "PIN set")
            };
            record_cli_change(&store, action, &format!("mailbox {mailbox}: {what}"))?;
            Ok(if clear {
                format!("mailbox {mailbox}: PIN removed; nobody can listen by phone\n")
            } else {
                format!("mailbox {mailbox}: PIN set\n")
            })
        }
        VoicemailCommand::Email {
            mailbox,
            address,
            clear,
        } => {
            if address.is_none() && !clear {
                return Err("give the address, or --clear to stop mailing".into());
            }
            store
                .voicemail_set_email(&mailbox, address.as_deref())
                .map_err(err)?;
            let line = match address {
                Some(address) => format!("mailbox {mailbox}: new messages go to {address}"),
                None => format!("mailbox {mailbox}: messages are no longer mailed"),
            };
            record_cli_change(&store, "voicemail.email", &line)?;
            Ok(format!("{line}\n"))
        }
        VoicemailCommand::Delete { id } => {
            let message = store.voicemail_delete(VoicemailId(id)).map_err(err)?;
            record_cli_change(
                &store,
                "voicemail.delete",
                &format!("message {id} of mailbox {}", message.mailbox),
            )?;
            match std::fs::remove_file(&message.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "message {id} deleted, but its file {} was not: {e}",
                        message.path.display()
                    ));
                }
            }
            Ok(format!(
                "message {id} of mailbox {} deleted\n",
                message.mailbox
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_email_list_and_delete_round_trip_never_print_the_pin() {
        let dir = std::env::temp_dir().join(format!("amt-vm-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let wav = dir.join("m.wav");
        std::fs::write(&wav, b"RIFF").unwrap();
        let id = store
            .voicemail_add(&store::NewVoicemail {
                mailbox: "101".into(),
                caller: "0711555".into(),
                received_at_ms: 0,
                duration_ms: 2500,
                path: wav.clone(),
            })
            .unwrap();
        drop(store);
        let out = execute(
            VoicemailCommand::Pin {
                mailbox: "101".into(),
                pin: Some("80417".into()),
                clear: false,
            },
            &dir,
        )
        .unwrap();
        assert!(!out.contains("80417"), "{out}");
        execute(
            VoicemailCommand::Email {
                mailbox: "101".into(),
                address: Some("anna@rathaus.example".into()),
                clear: false,
            },
            &dir,
        )
        .unwrap();
        let listed = execute(
            VoicemailCommand::List {
                mailbox: "101".into(),
            },
            &dir,
        )
        .unwrap();
        assert!(listed.contains("0711555"), "{listed}");
        assert!(listed.contains("2.5"), "{listed}");
        execute(VoicemailCommand::Delete { id: id.0 }, &dir).unwrap();
        assert!(!wav.exists());
        assert!(execute(VoicemailCommand::Delete { id: id.0 }, &dir).is_err());
        assert!(
            execute(
                VoicemailCommand::Pin {
                    mailbox: "101".into(),
                    pin: None,
                    clear: false
                },
                &dir
            )
            .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
