//! `amtsleitung account ...`: the web console's local accounts: add, list, change the
//! password, disable, enable and delete.
//!
//! Works on the database file directly, like `room` and `user`. A password is read from
//! standard input (one line; not echoed when that is a terminal), never taken as an argument,
//! so it shows neither in `ps` nor in the shell history; only its Argon2id hash is stored.
//! Every change goes into the audit log (audit_cli.rs).

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use store::{ConsoleAccount, ConsoleRole, Store};

use crate::audit_cli::record_cli_change;
use crate::user_cli::{aligned_table, open, store_error, strip_line_end};

/// Console account commands.
#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Add a local account, e.g. `account add anna --role staff --extension 101 < pw.txt`;
    /// the password (at least 10 characters) is one line on standard input.
    Add {
        /// Login name: 1 to 64 characters a-z, 0-9, '.', '_', '-'.
        name: String,
        /// admin (runs the system) or staff (runs the rooms they own).
        #[arg(long)]
        role: ConsoleRole,
        /// The account holder's own extension (2 to 15 digits).
        #[arg(long, value_name = "EXT")]
        extension: Option<String>,
        /// The town (a `[[tenant]]` domain) the account runs: an admin of it sees and
        /// changes that town's rooms and users only. Without it, the default domain's, whose
        /// admins run the whole system.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// List accounts: name, role, extension, origin (local or ldap), disabled.
    List,
    /// Set a new password (one line on standard input) and end the account's console
    /// sessions.
    Passwd {
        /// Account name.
        name: String,
    },
    /// Disable an account: it cannot log in, and its console sessions end.
    Disable {
        /// Account name.
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Account name.
        name: String,
    },
    /// Delete an account and its sessions; the rooms it owned are for admins only then.
    #[command(alias = "delete")]
    Del {
        /// Account name.
        name: String,
    },
    /// API tokens for scripts: `Authorization: Bearer amt_...` acts as the account.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token for an account and print it (shown this once; only its hash is kept).
    Add {
        /// Account name.
        name: String,
        /// What it is for, e.g. "nightly room report".
        #[arg(long)]
        label: String,
    },
    /// List tokens (of one account, or all): id, account, label, made, last used.
    List {
        /// Account name.
        name: Option<String>,
    },
    /// Revoke a token by its id (from `account token list`).
    Revoke {
        /// Token id.
        id: i64,
    },
}

/// Runs one account command against the store in `data_dir`; exit 1 with a message on failure.
pub fn run(command: AccountCommand, data_dir: &Path) -> ExitCode {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    crate::room_cli::report(execute(command, data_dir, now_ms, &read_password))
}

/// Does the work and returns what to print; `password` reads the password of the account
/// it is given (standard input, or a test's stand-in).
fn execute(
    command: AccountCommand,
    data_dir: &Path,
    now_ms: i64,
    password: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    // Reading or changing must not leave a fresh empty database behind in a mistyped
    // directory.
    let exists = Store::database_file(data_dir).exists();
    let no_account = |name: &str| {
        if exists {
            format!("no console account {name}")
        } else {
            format!(
                "no console account {name} (no database in {})",
                data_dir.display()
            )
        }
    };
    match command {
        AccountCommand::Add {
            name,
            role,
            extension,
            domain,
        } => {
            // The default domain's accounts are the ones without a town.
            let domain = domain.filter(|domain| !crate::tenants::is_default(domain));
            // Checked before reading the password and before opening, so a typo neither
            // asks for one nor creates a database.
            store::validate_account_name(&name).map_err(|err| err.to_string())?;
            if let Some(extension) = &extension {
                store::validate_extension(extension).map_err(|err| err.to_string())?;
            }
            let password = password(&name)?;
            store::validate_console_password(&password).map_err(|err| err.to_string())?;
            let store = open(data_dir)?;
            let account = store
                .console_account_create_in(
                    domain.as_deref(),
                    &name,
                    role,
                    extension.as_deref(),
                    &password,
                    now_ms,
                )
                .map_err(|err| store_error("cannot add the account", err))?;
            record_cli_change(&store, "account.add", &describe(&account))?;
            Ok(format!("{} added\n", describe(&account)))
        }
        AccountCommand::List => {
            if !exists {
                return Ok(format!(
                    "no console accounts (no database in {})\n",
                    data_dir.display()
                ));
            }
            let accounts = open(data_dir)?
                .console_account_list()
                .map_err(|err| format!("cannot list the console accounts: {err}"))?;
            Ok(account_table(&accounts))
        }
        AccountCommand::Passwd { name } => {
            if !exists {
                return Err(no_account(&name));
            }
            let store = open(data_dir)?;
            if store
                .console_account_get(&name)
                .map_err(|err| format!("cannot read console account {name}: {err}"))?
                .is_none()
            {
                return Err(no_account(&name));
            }
            let password = password(&name)?;
            let changed = store
                .console_account_set_password(&name, &password)
                .map_err(|err| store_error("cannot change the password", err))?;
            if !changed {
                return Err(no_account(&name));
            }
            let ended = store
                .console_sessions_end_for(&name)
                .map_err(|err| format!("password changed, but sessions not ended: {err}"))?;
            record_cli_change(
                &store,
                "account.passwd",
                &format!("console account {name} ({})", sessions_ended(ended)),
            )?;
            Ok(format!(
                "password of console account {name} changed; {}\n",
                sessions_ended(ended)
            ))
        }
        AccountCommand::Disable { name } | AccountCommand::Enable { name } if !exists => {
            Err(no_account(&name))
        }
        AccountCommand::Disable { name } => switch(&open(data_dir)?, &name, true),
        AccountCommand::Enable { name } => switch(&open(data_dir)?, &name, false),
        AccountCommand::Token(_) if !exists => Err(format!(
            "no console accounts (no database in {})",
            data_dir.display()
        )),
        AccountCommand::Token(TokenCommand::Add { name, label }) => {
            let store = open(data_dir)?;
            let made = store
                .api_token_create(&name, &label, now_ms)
                .map_err(|err| store_error("cannot make the token", err))?;
            record_cli_change(
                &store,
                "token.add",
                &format!("API token {} ({}) for {name}", made.id, label.trim()),
            )?;
            Ok(format!(
                "API token {} for {name}; shown this once:\n{}\n",
                made.id, made.token
            ))
        }
        AccountCommand::Token(TokenCommand::List { name }) => {
            let tokens = open(data_dir)?
                .api_token_list(name.as_deref())
                .map_err(|err| format!("cannot list the tokens: {err}"))?;
            let mut out = String::from("id\taccount\tlabel\tmade\tlast used\n");
            for token in tokens {
                let when = |ms: i64| {
                    jiff::Timestamp::from_millisecond(ms).map_or_else(
                        |_| ms.to_string(),
                        |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
                    )
                };
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    token.id,
                    token.account,
                    token.label,
                    when(token.created_at_ms),
                    token
                        .last_used_at_ms
                        .map_or_else(|| "never".to_owned(), when)
                ));
            }
            Ok(out)
        }
        AccountCommand::Token(TokenCommand::Revoke { id }) => {
            let store = open(data_dir)?;
            let token = store
                .api_token_get(id)
                .map_err(|err| format!("cannot read token {id}: {err}"))?
                .ok_or_else(|| format!("no API token {id}"))?;
            store
                .api_token_revoke(id)
                .map_err(|err| format!("cannot revoke token {id}: {err}"))?;
            record_cli_change(
                &store,
                "token.revoke",
                &format!("API token {id} ({}) of {}", token.label, token.account),
            )?;
            Ok(format!("API token {id} of {} revoked\n", token.account))
        }
        AccountCommand::Del { name } => {
            if !exists {
                return Err(no_account(&name));
            }
            let store = open(data_dir)?;
            let owned = store
                .room_list_owned_by(&name)
                .map_err(|err| format!("cannot read the rooms of {name}: {err}"))?
                .len();
            if !store
                .console_account_delete(&name)
                .map_err(|err| format!("cannot delete console account {name}: {err}"))?
            {
                return Err(no_account(&name));
            }
            let rooms = match owned {
                0 => String::new(),
                1 => "; the room it owned is for admins only now".to_owned(),
                n => format!("; the {n} rooms it owned are for admins only now"),
            };
            record_cli_change(
                &store,
                "account.del",
                &format!("console account {name}{rooms}"),
            )?;
            Ok(format!("console account {name} deleted{rooms}\n"))
        }
    }
}

/// `account disable` (its sessions end with it) or `account enable`.
fn switch(store: &Store, name: &str, disabled: bool) -> Result<String, String> {
    let (verb, done, note) = if disabled {
        ("disable", "disabled", "; its console sessions ended")
    } else {
        ("enable", "enabled", "")
    };
    if !store
        .console_account_set_disabled(name, disabled)
        .map_err(|err| format!("cannot {verb} console account {name}: {err}"))?
    {
        return Err(format!("no console account {name}"));
    }
    record_cli_change(
        store,
        &format!("account.{verb}"),
        &format!("console account {name}"),
    )?;
    Ok(format!("console account {name} {done}{note}\n"))
}

/// "console account anna (staff, extension 101)": what an account is, without secrets.
fn describe(account: &ConsoleAccount) -> String {
    let town = account
        .domain
        .as_deref()
        .map_or_else(String::new, |domain| format!(" of {domain}"));
    match &account.extension {
        Some(extension) => format!(
            "console account {}{town} ({}, extension {extension})",
            account.name, account.role
        ),
        None => format!("console account {}{town} ({})", account.name, account.role),
    }
}

fn sessions_ended(count: usize) -> String {
    match count {
        0 => "it had no console sessions".to_owned(),
        1 => "its console session ended".to_owned(),
        n => format!("its {n} console sessions ended"),
    }
}

fn account_table(accounts: &[ConsoleAccount]) -> String {
    if accounts.is_empty() {
        return "no console accounts\n".to_owned();
    }
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|account| {
            vec![
                account.name.clone(),
                account.role.to_string(),
                account.extension.clone().unwrap_or_else(|| "-".to_owned()),
                account.origin.to_string(),
                if account.disabled { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    // A single town hall's accounts have no town: the column shows only where some do.
    if !accounts.iter().any(|account| account.domain.is_some()) {
        return aligned_table(&["NAME", "ROLE", "EXTENSION", "ORIGIN", "DISABLED"], &rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .zip(accounts)
        .map(|(mut row, account)| {
            row.push(account.domain.clone().unwrap_or_else(|| "-".to_owned()));
            row
        })
        .collect();
    aligned_table(
        &["NAME", "ROLE", "EXTENSION", "ORIGIN", "DISABLED", "TOWN"],
        &rows,
    )
}

/// One line of standard input as the password of `account`; at a terminal, asked for on
/// stderr and not echoed. Nothing at all is refused here, with a message saying how to give
/// one; the store checks the rest of its form.
fn read_password(account: &str) -> Result<String, String> {
    let mut line = String::new();
    let read = {
        let _quiet = TerminalEcho::off(account);
        std::io::stdin().lock().read_line(&mut line)
    };
    read.map_err(|err| format!("cannot read the password from standard input: {err}"))?;
    let password = strip_line_end(&line);
    if password.is_empty() {
        return Err(format!(
            "no password for console account {account} on standard input: give it as one line, \
             e.g. `amtsleitung account ... < file`"
        ));
    }
    Ok(password.to_owned())
}

/// A terminal's echo, switched off while a password is typed and back on when dropped.
/// Does nothing when standard input is not a terminal (a pipe or a file).
struct TerminalEcho(Option<libc::termios>);

impl TerminalEcho {
    fn off(account: &str) -> Self {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
            return Self(None);
        }
        eprint!("password for console account {account}: ");
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios it is given when it returns 0.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, saved.as_mut_ptr()) } != 0 {
            return Self(None);
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a valid termios for this terminal, changed only in its echo flag.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) };
        Self(Some(saved))
    }
}

impl Drop for TerminalEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: the settings read from this terminal before.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
            // The Enter key was not echoed either.
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("amt-account-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn with_password(
        command: AccountCommand,
        dir: &Path,
        password: &str,
    ) -> Result<String, String> {
        execute(command, dir, 1, &|_: &str| Ok(password.to_owned()))
    }

    fn without_password(command: AccountCommand, dir: &Path) -> Result<String, String> {
        execute(command, dir, 1, &|_: &str| {
            panic!("no password is asked for")
        })
    }

    fn add(name: &str, role: ConsoleRole, extension: Option<&str>) -> AccountCommand {
        AccountCommand::Add {
            name: name.into(),
            role,
            extension: extension.map(str::to_owned),
            domain: None,
        }
    }

    #[test]
    fn the_table_lists_accounts_without_secrets() {
        let accounts = [
            ConsoleAccount {
                name: "anna".into(),
                role: ConsoleRole::Admin,
                extension: None,
                origin: store::AccountOrigin::Local,
                created_at_ms: 0,
                disabled: false,
                domain: None,
            },
            ConsoleAccount {
                name: "lena.m".into(),
                role: ConsoleRole::Staff,
                extension: Some("205".into()),
                origin: store::AccountOrigin::Ldap,
                created_at_ms: 0,
                disabled: true,
                domain: None,
            },
        ];
        assert_eq!(
            account_table(&accounts),
            "NAME    ROLE   EXTENSION  ORIGIN  DISABLED\n\
             anna    admin  -          local   no\n\
             lena.m  staff  205        ldap    yes\n"
        );
        let with_town = [
            accounts[0].clone(),
            ConsoleAccount {
                domain: Some("stadt-a.example".into()),
                ..accounts[1].clone()
            },
        ];
        assert_eq!(
            account_table(&with_town),
            "NAME    ROLE   EXTENSION  ORIGIN  DISABLED  TOWN\n\
             anna    admin  -          local   no        -\n\
             lena.m  staff  205        ldap    yes       stadt-a.example\n"
        );
        assert_eq!(account_table(&[]), "no console accounts\n");
    }

    #[test]
    fn a_bad_name_or_extension_is_refused_before_a_password_is_asked_or_a_database_made() {
        let dir = temp_dir("early");
        assert_eq!(
            without_password(add("Anna", ConsoleRole::Admin, None), &dir),
            Err(store::StoreError::InvalidAccountName("Anna".into()).to_string())
        );
        assert!(
            without_password(add("anna", ConsoleRole::Admin, Some("1")), &dir)
                .unwrap_err()
                .contains("must be 2 to 15 digits")
        );
        assert_eq!(
            with_password(add("anna", ConsoleRole::Admin, None), &dir, "kurz"),
            Err("console password has 4 characters; at least 10 are needed".into())
        );
        for command in [
            AccountCommand::List,
            AccountCommand::Passwd {
                name: "anna".into(),
            },
            AccountCommand::Disable {
                name: "anna".into(),
            },
            AccountCommand::Del {
                name: "anna".into(),
            },
        ] {
            let _ = without_password(command, &dir);
        }
        assert!(!dir.exists());
    }

    #[test]
    fn deleting_an_account_says_which_rooms_went_back_to_admins() {
        let dir = temp_dir("rooms");
        with_password(
            add("otto", ConsoleRole::Staff, Some("101")),
            &dir,
            "heftklammer-42",
        )
        .unwrap();
        let store = Store::open(&dir).unwrap();
        for number in ["4711", "4712"] {
            store
                .room_create(&store::NewRoom {
                    owner: Some("otto".into()),
                    ..store::NewRoom::new(number, 0)
                })
                .unwrap();
        }
        assert_eq!(
            without_password(
                AccountCommand::Del {
                    name: "otto".into()
                },
                &dir
            ),
            Ok(
                "console account otto deleted; the 2 rooms it owned are for admins only now\n"
                    .into()
            )
        );
        assert_eq!(store.room_get("4711").unwrap().unwrap().owner, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
