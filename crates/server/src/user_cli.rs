//! `amtsleitung user ...`: add, list, show, change and delete staff users in the store, and
//! import hundreds of them from a CSV file at once.
//!
//! Works on the database file directly, like `room`, so it also works while the server runs.
//! Passwords go in and only their digest HA1s are stored; no command prints an HA1. A password
//! can come from a file or standard input so that it never shows in `ps` or shell history.
//! Every change goes into the audit log (audit_cli.rs), without passwords.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use store::{
    AllowedNetwork, Binding, DEFAULT_MAX_CONTACTS, Language, NewUser, Store, StoreError, User,
};

use crate::audit_cli::record_cli_change;
use crate::call_classes;
use crate::emergency_location;
use crate::srtp_setting;

/// A CSV file larger than this is not a town hall's staff list.
const MAX_IMPORT_BYTES: u64 = 8 << 20;
/// Bad rows listed one by one before the rest are only counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// User administration commands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user, e.g. `user add 101 --name "Bürgerbüro" --password - --allow 10.8.0.0/16`.
    Add {
        /// Extension (2 to 15 digits); the phone also uses it as its digest user name.
        extension: String,
        /// Name shown on the phones this user calls.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Network the user's phones may register from, e.g. the VPN's 10.8.0.0/16; repeat
        /// the flag or separate with commas. Without it, from anywhere.
        #[arg(long, value_name = "CIDR", value_delimiter = ',')]
        allow: Vec<AllowedNetwork>,
        /// Most phones registered at once.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONTACTS)]
        max_contacts: u32,
        /// Prompt language: de or en.
        #[arg(long, default_value_t = Language::De)]
        language: Language,
        /// Call classes the user may call out through a trunk, e.g. `internal,local,national`
        /// (known: internal, local, national, mobile, international, special, shared-cost,
        /// premium). Without it, the default set; emergency calls are always allowed.
        #[arg(long, value_name = "CLASSES")]
        calls: Option<String>,
        /// SRTP for this user's calls: off, optional or required. Without it, the server's
        /// `srtp` setting (optional unless set).
        #[arg(long, value_name = "POLICY")]
        srtp: Option<String>,
        /// The line is a fax machine (an ATA on G.711): its calls are passed through
        /// unchanged, never transcoded (`user fax EXT off` undoes it).
        #[arg(long)]
        fax: bool,
        /// The user's own location number for emergency calls (their home office's, e.g.
        /// `+49 7031 4711-0`); without it, the trunks file's.
        #[arg(long, value_name = "NUMBER")]
        location: Option<String>,
        /// Only emergency calls from phones in this network present --location (repeat or
        /// separate with commas); without it, calls from all the user's phones.
        #[arg(
            long,
            value_name = "CIDR",
            value_delimiter = ',',
            requires = "location"
        )]
        location_network: Vec<AllowedNetwork>,
    },
    /// List users: extension, name, allowed networks, registered contacts, language, calls,
    /// SRTP.
    List,
    /// Show one user's settings and registered contacts; with --trunks also which location
    /// number an emergency call from each of the user's phones presents.
    Show {
        /// Extension.
        extension: String,
        /// The server's trunks file (trunks.toml), whose emergency trunk and
        /// [[emergency-location]] networks apply where the user has no number of their own.
        #[arg(long, value_name = "FILE")]
        trunks: Option<PathBuf>,
    },
    /// Set a new password.
    Passwd {
        /// Extension.
        extension: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set the call classes a user may call out through a trunk (toll-fraud protection), e.g.
    /// `user calls 101 internal,local,national,mobile`, or `user calls 101 --default`.
    Calls {
        /// Extension.
        extension: String,
        /// Class names separated by commas (emergency calls are always allowed).
        #[arg(required_unless_present = "default")]
        classes: Option<String>,
        /// Back to the default set: internal, local, national, mobile, special.
        #[arg(long, conflicts_with = "classes")]
        default: bool,
    },
    /// Set whether a user's calls must, may or must not use SRTP, e.g. `user srtp 101
    /// required`, or `user srtp 101 --default` for the server's `srtp` setting.
    Srtp {
        /// Extension.
        extension: String,
        /// off, optional or required.
        #[arg(required_unless_present = "default")]
        policy: Option<String>,
        /// Back to the server's setting (`srtp` in its config; optional unless set).
        #[arg(long, conflicts_with = "policy")]
        default: bool,
    },
    /// Mark a user's line as a fax machine or not, e.g. `user fax 150 on`: calls from and to
    /// it are passed through on G.711 unchanged (no jitter buffer, concealment or
    /// transcoding).
    Fax {
        /// Extension.
        extension: String,
        /// on or off.
        setting: String,
    },
    /// Set the user's own location number for emergency calls (the address of a home office),
    /// e.g. `user location 101 "+49 7031 4711-0" --network 10.8.3.0/24`, or `user location
    /// 101 --clear`. It comes before the trunks file's [[emergency-location]] and
    /// location-number.
    Location {
        /// Extension.
        extension: String,
        /// The location number in international form.
        #[arg(required_unless_present = "clear")]
        number: Option<String>,
        /// Only emergency calls from phones in this network present it (the home office's
        /// VPN addresses; repeat or separate with commas); without it, calls from all the
        /// user's phones.
        #[arg(
            long,
            value_name = "CIDR",
            value_delimiter = ',',
            conflicts_with = "clear"
        )]
        network: Vec<AllowedNetwork>,
        /// Remove the user's own number: the trunks file's apply again.
        #[arg(long, conflicts_with = "number")]
        clear: bool,
    },
    /// Turn do not disturb on or off, e.g. `user dnd 101 on`: the phones do not ring, callers
    /// get busy or the busy forwarding (the phone's `*76` does the same).
    Dnd {
        /// Extension.
        extension: String,
        /// on or off.
        setting: String,
    },
    /// Forward the user's calls, e.g. `user forward 101 always 102`, `user forward 101
    /// no-answer 0711123456 --seconds 15`, `user forward 101 busy off`. The target is a number
    /// as the user would dial it (a colleague, a room, a group, an outside number), routed
    /// through the dialplan as the user's own call. Phones: *21*N# / #21#, *61*N# / #61#,
    /// *67*N# / #67#.
    Forward {
        /// Extension.
        extension: String,
        /// always, busy or no-answer.
        kind: String,
        /// The number, or `off`.
        target: String,
        /// With no-answer: ring this long first (5 to 180 s; default 20).
        #[arg(long, value_name = "S")]
        seconds: Option<u32>,
    },
    /// Ring numbers in turn instead of the user's phones, each step for its seconds, e.g.
    /// `user follow-me 101 101@192.168.10.0/24:15 101@10.98.0.0/16:20 017112345678:30`
    /// (office phone, then the home phone over the VPN, then the mobile); `+` rings numbers
    /// of one step at once (`101+102:20`); `user follow-me 101 off` ends it.
    #[command(name = "follow-me")]
    FollowMe {
        /// Extension.
        extension: String,
        /// Steps NUMBER[@NETWORK][+NUMBER...]:SECONDS, or `off`.
        #[arg(required = true)]
        steps: Vec<String>,
    },
    /// Delete a user and its registrations.
    #[command(alias = "delete")]
    Del {
        /// Extension.
        extension: String,
    },
    /// Add every user of a CSV file, or none when one row is bad.
    ///
    /// The file starts with a header line naming the columns, then one user per row:
    /// extension,name,password[,allow][,max_contacts][,language][,calls][,srtp][,fax]
    /// [,location][,location_networks]. Several networks go in one quoted field:
    /// "10.8.0.0/16,192.168.5.0/24"; several call classes too, or separated by semicolons or
    /// spaces: internal;local;national (empty: the default set). Columns may be separated by
    /// semicolons as well (German Excel); then call classes are separated by spaces or
    /// commas. srtp is off, optional or required (empty: the server's setting); fax is on or
    /// off (empty: off); location is the user's own location number for emergency calls
    /// (+49…; empty: none), location_networks the networks whose phones present it (empty:
    /// all the user's phones).
    Import {
        /// The CSV file (UTF-8).
        file: PathBuf,
    },
}

/// Where a password comes from: one of the two flags. Not a required clap group: clap's
/// message for a missing one spans lines, and `main` shows only an error's first line.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct PasswordSource {
    /// The password (at least 8 characters); `-` reads one line from standard input, which
    /// keeps it out of `ps` and the shell history.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Read the password from FILE (one line).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl PasswordSource {
    fn read(&self) -> Result<String, String> {
        match (&self.password, &self.password_file) {
            (Some(dash), _) if dash == "-" => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|err| {
                        format!("cannot read the password from standard input: {err}")
                    })?;
                Ok(strip_line_end(&line).to_owned())
            }
            (Some(password), _) => Ok(password.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    format!("cannot read the password file {}: {err}", path.display())
                })?;
                let password = strip_line_end(&text);
                if password.contains('\n') {
                    return Err(format!(
                        "the password file {} has more than one line",
                        path.display()
                    ));
                }
                Ok(password.to_owned())
            }
            (None, None) => Err(
                "a password is needed: --password PASSWORD, --password - (read from standard \
                 input) or --password-file FILE"
                    .to_owned(),
            ),
        }
    }
}

/// The text without one final line end, which editors and `echo` add to a file.
pub(crate) fn strip_line_end(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// Runs one user command against the store in `data_dir`; exit 1 with a message on failure.
/// Runs a user command on the users of `domain` (the default domain, or a tenant's).
pub fn run(command: UserCommand, data_dir: &Path, domain: &str) -> ExitCode {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    crate::room_cli::report(execute(command, data_dir, domain, now_ms))
}

/// Does the work and returns what to print: stdout text on success, the error otherwise.
fn execute(
    command: UserCommand,
    data_dir: &Path,
    domain: &str,
    now_ms: i64,
) -> Result<String, String> {
    // Reading or deleting must not leave a fresh empty database behind in a mistyped directory.
    let exists = Store::database_file(data_dir).exists();
    let no_database = || format!("no database in {}", data_dir.display());
    match command {
        UserCommand::Add {
            extension,
            name,
            password,
            allow,
            max_contacts,
            language,
            calls,
            srtp,
            fax,
            location,
            location_network,
        } => {
            let calls = calls.as_deref().map(call_classes::parse_list).transpose()?;
            let srtp = srtp.as_deref().map(srtp_setting::parse).transpose()?;
            let location = location
                .map(|number| emergency_location::parse(&number, location_network))
                .transpose()?;
            let new = NewUser {
                allowed_networks: allow,
                max_contacts,
                language,
                call_classes: calls.as_ref().map(call_classes::ClassList::names),
                media_encryption: srtp.map(|policy| policy.name().to_owned()),
                fax,
                location,
                domain: domain.to_owned(),
                ..NewUser::new(extension, name, password.read()?, now_ms)
            };
            // Checked before opening, so a typo does not create a database.
            new.validate().map_err(|err| err.to_string())?;
            let store = open(data_dir)?;
            let user = store
                .user_create(&new)
                .map_err(|err| store_error("cannot add the user", err))?;
            record_cli_change(
                &store,
                "user.add",
                &format!("user {} ({})", user.extension, user.display_name),
            )?;
            let mut out = format!("{}\n", added_line(&user));
            if let Some(calls) = calls {
                out.push_str(&format!("{}\n", calls.emergency_note()));
            }
            if let Some(note) = srtp.and_then(srtp_setting::sdes_note) {
                out.push_str(&format!("{note}\n"));
            }
            Ok(out)
        }
        UserCommand::List => {
            if !exists {
                return Ok(format!("no users ({})\n", no_database()));
            }
            let store = open(data_dir)?;
            let users = store
                .user_list(domain)
                .map_err(|err| format!("cannot list users: {err}"))?;
            let counts = store
                .registration_counts(domain, now_ms)
                .map_err(|err| format!("cannot read registrations: {err}"))?;
            Ok(user_table(&users, &counts))
        }
        UserCommand::Show { extension, trunks } => {
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let user = store
                .user_get(domain, &extension)
                .map_err(|err| format!("cannot read user {extension}: {err}"))?
                .ok_or_else(|| format!("no user {extension}"))?;
            let bindings = store
                .registrations_of(domain, &extension, now_ms)
                .map_err(|err| format!("cannot read the registrations of {extension}: {err}"))?;
            let mut out = user_details(&user, &bindings, now_ms);
            match trunks {
                Some(file) => out.push_str(&emergency_location::presented_lines(
                    &file,
                    user.location.as_ref(),
                    &bindings,
                )?),
                None => out.push_str(
                    "(with --trunks FILE, shows which location number an emergency call presents)\n",
                ),
            }
            Ok(out)
        }
        UserCommand::Passwd {
            extension,
            password,
        } => {
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let password = password.read()?;
            let store = open(data_dir)?;
            store
                .user_set_password(domain, &extension, &password, now_ms)
                .map_err(|err| store_error("cannot change the password", err))?;
            record_cli_change(&store, "user.passwd", &format!("user {extension}"))?;
            Ok(format!("password of user {extension} changed\n"))
        }
        UserCommand::Calls {
            extension,
            classes,
            default,
        } => {
            // clap makes sure one of the two is given.
            let calls = match (classes, default) {
                (Some(text), false) => Some(call_classes::parse_list(&text)?),
                _ => None,
            };
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let names = calls.as_ref().map(call_classes::ClassList::names);
            let store = open(data_dir)?;
            let user = store
                .user_set_call_classes(domain, &extension, names.as_deref(), now_ms)
                .map_err(|err| store_error("cannot change the call classes", err))?;
            let line = format!(
                "user {extension} may call out: {}",
                call_classes::describe(user.call_classes.as_deref())
            );
            record_cli_change(&store, "user.calls", &line)?;
            let mut out = format!("{line}\n");
            if let Some(calls) = calls {
                out.push_str(&format!("{}\n", calls.emergency_note()));
            }
            Ok(out)
        }
        UserCommand::Srtp {
            extension,
            policy,
            default,
        } => {
            // clap makes sure one of the two is given.
            let policy = match (policy, default) {
                (Some(word), false) => Some(srtp_setting::parse(&word)?),
                _ => None,
            };
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let user = store
                .user_set_media_encryption(domain, &extension, policy.map(|p| p.name()), now_ms)
                .map_err(|err| store_error("cannot change the SRTP setting", err))?;
            let line = format!(
                "SRTP of user {extension}: {}",
                srtp_setting::describe(user.media_encryption.as_deref())
            );
            record_cli_change(&store, "user.srtp", &line)?;
            let mut out = format!("{line}\n");
            if let Some(note) = policy.and_then(srtp_setting::sdes_note) {
                out.push_str(&format!("{note}\n"));
            }
            Ok(out)
        }
        UserCommand::Fax { extension, setting } => {
            let fax = parse_fax(&setting)?;
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let user = store
                .user_set_fax(domain, &extension, fax, now_ms)
                .map_err(|err| store_error("cannot change the fax setting", err))?;
            let line = format!("fax line {extension}: {}", describe_fax(user.fax));
            record_cli_change(&store, "user.fax", &line)?;
            Ok(format!("{line}\n"))
        }
        UserCommand::Dnd { extension, setting } => {
            let dnd = parse_on_off("do not disturb", &setting)?;
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let settings = store
                .user_set_dnd(domain, &extension, dnd, now_ms)
                .map_err(|err| store_error("cannot change do not disturb", err))?;
            let line = format!(
                "do not disturb {extension}: {}",
                crate::call_settings_cli::on_off(settings.dnd)
            );
            record_cli_change(&store, "user.dnd", &line)?;
            Ok(format!("{line}\n"))
        }
        UserCommand::Forward {
            extension,
            kind,
            target,
            seconds,
        } => {
            let (kind, target) = crate::call_settings_cli::parse_forward(&kind, &target)?;
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let settings = store
                .user_set_forward(domain, &extension, kind, target.as_deref(), seconds, now_ms)
                .map_err(|err| store_error("cannot change the forwarding", err))?;
            let line = format!(
                "forwarding of {extension}: {}",
                crate::call_settings_cli::describe_forwarding(&settings)
            );
            record_cli_change(&store, "user.forward", &line)?;
            Ok(format!("{line}\n"))
        }
        UserCommand::FollowMe { extension, steps } => {
            let steps = crate::call_settings_cli::parse_follow_me(&steps)?;
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let settings = store
                .user_set_follow_me(domain, &extension, &steps, now_ms)
                .map_err(|err| store_error("cannot change follow-me", err))?;
            let line = format!(
                "follow-me of {extension}: {}",
                crate::call_settings_cli::describe_follow_me(&settings.follow_me)
            );
            record_cli_change(&store, "user.follow-me", &line)?;
            Ok(format!("{line}\n"))
        }
        UserCommand::Location {
            extension,
            number,
            network,
            clear: _,
        } => {
            // clap makes sure there is a number unless --clear is given.
            let location = number
                .map(|number| emergency_location::parse(&number, network))
                .transpose()?;
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let user = store
                .user_set_location(domain, &extension, location, now_ms)
                .map_err(|err| store_error("cannot change the location number", err))?;
            let line = format!(
                "location number of user {extension}: {}",
                emergency_location::describe(user.location.as_ref())
            );
            record_cli_change(&store, "user.location", &line)?;
            Ok(format!("{line}\n"))
        }
        UserCommand::Del { extension } => {
            if !exists {
                return Err(format!("no user {extension} ({})", no_database()));
            }
            let store = open(data_dir)?;
            let deleted = store
                .user_delete(domain, &extension)
                .map_err(|err| format!("cannot delete user {extension}: {err}"))?;
            if deleted {
                record_cli_change(&store, "user.del", &format!("user {extension}"))?;
                Ok(format!("user {extension} deleted\n"))
            } else {
                Err(format!("no user {extension}"))
            }
        }
        // The import's checks (shared with the console) know the default domain only.
        UserCommand::Import { .. } if !crate::tenants::is_default(domain) => Err(format!(
            "user import reads users of the default domain only; add {domain}'s users with `user add --domain {domain}`"
        )),
        UserCommand::Import { file } => import(&file, data_dir, now_ms),
    }
}

/// Reads a fax setting as an admin writes it: `on` or `off` (any case; yes/no and
/// true/false too, as spreadsheets write them).
fn parse_fax(word: &str) -> Result<bool, String> {
    parse_on_off("fax", word)
}

/// A switch of `what` written as on or off (or yes/no, true/false, 1/0).
pub(crate) fn parse_on_off(what: &str, word: &str) -> Result<bool, String> {
    match word.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "unknown {what} setting '{}' (expected on or off)",
            word.trim()
        )),
    }
}

/// The fax setting as `user show` and `user fax` print it.
fn describe_fax(fax: bool) -> &'static str {
    if fax {
        "on (calls passed through on G.711 unchanged, never transcoded)"
    } else {
        "off"
    }
}

/// A store error as one line: validation errors speak for themselves, database errors get
/// the context of what was being done.
pub(crate) fn store_error(doing: &str, err: StoreError) -> String {
    match err {
        StoreError::Database(_) => format!("{doing}: {err}"),
        other => other.to_string(),
    }
}

/// Opens the store in `data_dir`, or one error line that names its file.
pub(crate) fn open(data_dir: &Path) -> Result<Store, String> {
    Store::open(data_dir).map_err(|err| {
        format!(
            "cannot open the store {}: {err}",
            Store::database_file(data_dir).display()
        )
    })
}

/// `user import FILE`: parse every row, let the store check the parsed ones, and store all of
/// them in one transaction only if no row has a problem; otherwise name every bad row's line.
fn import(file: &Path, data_dir: &Path, now_ms: i64) -> Result<String, String> {
    let name = file.display().to_string();
    let size = std::fs::metadata(file)
        .map_err(|err| format!("cannot read {name}: {err}"))?
        .len();
    if size > MAX_IMPORT_BYTES {
        return Err(too_large(&name, size));
    }
    let bytes = std::fs::read(file).map_err(|err| format!("cannot read {name}: {err}"))?;

    // A file refused whole must not leave an empty database behind in a mistyped directory:
    // without one, an empty in-memory store does the checks.
    let store = if Store::database_file(data_dir).exists() {
        open(data_dir)?
    } else {
        Store::open_in_memory().map_err(|err| format!("cannot check the users: {err}"))?
    };
    let checked = check_import(&store, &bytes, now_ms).map_err(|refusal| refusal.report(&name))?;
    let store = open(data_dir)?;
    let count = store_import(&store, &checked).map_err(|refusal| refusal.report(&name))?;
    // The store cuts a long list; the count and the file stay readable before it.
    record_cli_change(
        &store,
        "user.import",
        &format!(
            "{count} users imported from {name}: {}",
            checked.extensions().join(", ")
        ),
    )?;
    Ok(format!("{count} users imported from {name}\n"))
}

fn too_large(name: &str, size: u64) -> String {
    format!(
        "{name} is {size} bytes; a user list of more than {MAX_IMPORT_BYTES} bytes is not imported"
    )
}

/// Why a user CSV was not imported (nothing of it was stored).
#[derive(Debug)]
pub(crate) enum ImportRefusal {
    /// The file as a whole: too large, empty, a bad header, broken quoting.
    File(String),
    /// These rows (file line, problem), in line order.
    Rows(Vec<(u64, String)>),
    /// The store failed while checking or storing.
    Store(StoreError),
}

impl ImportRefusal {
    /// The refusal as one text naming the file (`name`) and every bad line.
    pub(crate) fn report(&self, name: &str) -> String {
        match self {
            ImportRefusal::File(problem) => format!("{name}: {problem}"),
            ImportRefusal::Rows(problems) => problem_report(name, problems),
            ImportRefusal::Store(err @ StoreError::Database(_)) => {
                format!("cannot import the users: {err}")
            }
            ImportRefusal::Store(err) => err.to_string(),
        }
    }
}

/// The users of a CSV file that passed every check, with the file line of each.
#[derive(Debug)]
pub(crate) struct CheckedImport {
    users: Vec<NewUser>,
    lines: Vec<u64>,
}

impl CheckedImport {
    /// The extensions to be created, in file order.
    pub(crate) fn extensions(&self) -> Vec<&str> {
        self.users.iter().map(|u| u.extension.as_str()).collect()
    }
}

/// Reads a user CSV (`amtsleitung user import`'s format, see [`UserCommand::Import`]) and
/// checks every row, and the rows against the users `store` holds; stores nothing. Used by
/// the CLI and the web console alike.
pub(crate) fn check_import(
    store: &Store,
    bytes: &[u8],
    now_ms: i64,
) -> Result<CheckedImport, ImportRefusal> {
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(ImportRefusal::File(format!(
            "{} bytes; a user list of more than {MAX_IMPORT_BYTES} bytes is not imported",
            bytes.len()
        )));
    }
    let parsed = parse_user_csv(bytes, now_ms).map_err(ImportRefusal::File)?;
    if parsed.rows.is_empty() && parsed.problems.is_empty() {
        return Err(ImportRefusal::File(
            "no users below its header line".to_owned(),
        ));
    }
    let users: Vec<NewUser> = parsed.rows.iter().map(|(_, user)| user.clone()).collect();
    let lines: Vec<u64> = parsed.rows.iter().map(|(line, _)| *line).collect();
    let mut problems = parsed.problems;
    let found = store
        .user_check_many(&users)
        .map_err(ImportRefusal::Store)?;
    problems.extend(batch_problems(found, &lines));
    if problems.is_empty() {
        Ok(CheckedImport { users, lines })
    } else {
        problems.sort_by_key(|(line, _)| *line);
        Err(ImportRefusal::Rows(problems))
    }
}

/// Stores checked users in one transaction: all of them, or none when one was added since
/// the check (another admin); the count stored.
pub(crate) fn store_import(store: &Store, checked: &CheckedImport) -> Result<usize, ImportRefusal> {
    match store.user_create_many(&checked.users) {
        Ok(count) => Ok(count),
        Err(StoreError::BatchRejected(found)) => {
            let mut problems = batch_problems(found, &checked.lines);
            problems.sort_by_key(|(line, _)| *line);
            Err(ImportRefusal::Rows(problems))
        }
        Err(err) => Err(ImportRefusal::Store(err)),
    }
}

/// Store problems of a batch, by file line instead of batch position.
fn batch_problems(found: Vec<(usize, StoreError)>, lines: &[u64]) -> Vec<(u64, String)> {
    let line_of = |index: usize| lines.get(index).copied().unwrap_or(0);
    found
        .into_iter()
        .map(|(index, err)| {
            let text = match err {
                StoreError::RepeatedInBatch {
                    extension, first, ..
                } => format!(
                    "extension {extension} appears again (first on line {})",
                    line_of(first)
                ),
                other => other.to_string(),
            };
            (line_of(index), text)
        })
        .collect()
}

/// The error text of a refused import: a count, then one indented line per bad row.
fn problem_report(file: &str, problems: &[(u64, String)]) -> String {
    let rows = problems.len();
    let mut out = format!(
        "{file}: {rows} bad row{}, nothing imported",
        if rows == 1 { "" } else { "s" }
    );
    for (line, text) in problems.iter().take(MAX_LISTED_PROBLEMS) {
        out.push_str(&format!("\n  line {line}: {text}"));
    }
    if rows > MAX_LISTED_PROBLEMS {
        out.push_str(&format!("\n  ... and {} more", rows - MAX_LISTED_PROBLEMS));
    }
    out
}

/// Columns a user CSV may have; the header line names which, in any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Extension,
    Name,
    Password,
    Allow,
    MaxContacts,
    Language,
    Calls,
    Srtp,
    Fax,
    Location,
    LocationNetworks,
}

impl Column {
    const ALL: [(&'static str, Column); 11] = [
        ("extension", Column::Extension),
        ("name", Column::Name),
        ("password", Column::Password),
        ("allow", Column::Allow),
        ("max_contacts", Column::MaxContacts),
        ("language", Column::Language),
        ("calls", Column::Calls),
        ("srtp", Column::Srtp),
        ("fax", Column::Fax),
        ("location", Column::Location),
        ("location_networks", Column::LocationNetworks),
    ];
}

/// A CSV file read into users (with their line numbers) and the rows that could not be read.
#[derive(Debug, Default)]
struct ParsedCsv {
    rows: Vec<(u64, NewUser)>,
    problems: Vec<(u64, String)>,
}

/// Reads a user CSV: a header line naming the columns, then one user per row. A problem with
/// the header or the quoting is an error of its own; a bad row is recorded with its line and
/// reading goes on, so the admin sees every bad row at once.
fn parse_user_csv(bytes: &[u8], now_ms: i64) -> Result<ParsedCsv, String> {
    // Spreadsheets write a byte-order mark first, and German Excel separates with semicolons.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = if first_line.contains(&b';') && !first_line.contains(&b',') {
        b';'
    } else {
        b','
    };
    let mut records = csv_records(bytes, delimiter)?.into_iter();
    let header = records
        .next()
        .ok_or_else(|| "the file is empty; it needs a header line".to_owned())?;
    let columns = header_columns(&header)?;

    let mut parsed = ParsedCsv::default();
    for record in records {
        match parse_row(&record.fields, &columns, now_ms) {
            Ok(user) => parsed.rows.push((record.line, user)),
            Err(problem) => parsed.problems.push((record.line, problem)),
        }
    }
    Ok(parsed)
}

/// One CSV record: the file line it starts on and its fields, unquoted but not yet UTF-8.
#[derive(Debug, PartialEq, Eq)]
struct CsvRecord {
    line: u64,
    fields: Vec<Vec<u8>>,
}

/// Splits CSV text into records as RFC 4180 describes: fields in double quotes may hold the
/// delimiter, line breaks and `""` for a quote; records end with LF or CRLF; blank lines are
/// skipped. Hand-written rather than the `csv` crate because that crate's record line numbers
/// are wrong after CRLF line ends and after blank lines (rust-csv issues 395 and 208), and a
/// wrong line number is worse than none when an admin fixes an Excel export.
fn csv_records(bytes: &[u8], delimiter: u8) -> Result<Vec<CsvRecord>, String> {
    let mut records = Vec::new();
    let mut line = 1u64;
    let mut i = 0;
    while i < bytes.len() {
        let record_line = line;
        let mut fields = Vec::new();
        loop {
            let mut field = Vec::new();
            // `101, "Amt, Standesamt"`: spaces before an opening quote are common and harmless.
            let quote_at = i + bytes[i..].iter().take_while(|b| **b == b' ').count();
            if bytes.get(quote_at) == Some(&b'"') {
                let opened_on = line;
                i = quote_at + 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(format!(
                                "line {opened_on}: a quoted field is never closed"
                            ));
                        }
                        Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                            field.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            line += u64::from(b == b'\n');
                            field.push(b);
                            i += 1;
                        }
                    }
                }
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
                let rest = &bytes[i..];
                let ends = rest.is_empty()
                    || rest[0] == delimiter
                    || rest.starts_with(b"\n")
                    || rest.starts_with(b"\r\n")
                    || rest == b"\r";
                if !ends {
                    return Err(format!(
                        "line {line}: text after the closing quote of a field; \
                         a quote inside a quoted field is written \"\""
                    ));
                }
            } else {
                while let Some(&b) = bytes.get(i) {
                    if b == delimiter || b == b'\n' {
                        break;
                    }
                    field.push(b);
                    i += 1;
                }
                // The CR of a CRLF line end.
                if matches!(bytes.get(i), None | Some(b'\n')) && field.last() == Some(&b'\r') {
                    field.pop();
                }
            }
            fields.push(field);
            match bytes.get(i) {
                Some(&b) if b == delimiter => i += 1,
                _ => break,
            }
        }
        // The record ends at a line end or at the end of the file.
        if bytes.get(i) == Some(&b'\r') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'\n') {
            i += 1;
            line += 1;
        }
        if fields != [Vec::<u8>::new()] {
            records.push(CsvRecord {
                line: record_line,
                fields,
            });
        }
    }
    Ok(records)
}

fn header_columns(header: &CsvRecord) -> Result<Vec<Column>, String> {
    let mut columns = Vec::with_capacity(header.fields.len());
    for field in &header.fields {
        let name = String::from_utf8_lossy(field).trim().to_ascii_lowercase();
        let column = Column::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, column)| *column)
            .ok_or_else(|| {
                format!(
                    "line {}: unknown column {name:?}; the header names columns among extension, name, password, allow, max_contacts, language, calls, srtp, fax, location, location_networks",
                    header.line
                )
            })?;
        if columns.contains(&column) {
            return Err(format!(
                "line {}: column {name:?} appears twice",
                header.line
            ));
        }
        columns.push(column);
    }
    for (required, column) in &Column::ALL[..3] {
        if !columns.contains(column) {
            return Err(format!(
                "line {}: the header has no {required:?} column (needed: extension,name,password)",
                header.line
            ));
        }
    }
    Ok(columns)
}

fn parse_row(fields: &[Vec<u8>], columns: &[Column], now_ms: i64) -> Result<NewUser, String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "{} fields, but the header has {}",
            fields.len(),
            columns.len()
        ));
    }
    let mut user = NewUser::new("", "", "", now_ms);
    let mut location_networks = None;
    for (index, (field, column)) in fields.iter().zip(columns).enumerate() {
        let text = std::str::from_utf8(field).map_err(|_| {
            format!(
                "field {} is not valid UTF-8 (save the file as CSV UTF-8)",
                index + 1
            )
        })?;
        match column {
            Column::Extension => user.extension = text.trim().to_owned(),
            Column::Name => user.display_name = text.trim().to_owned(),
            // Taken as written: spaces around a password are refused by the store, not cut off.
            Column::Password => user.password = text.to_owned(),
            Column::Allow => user.allowed_networks = csv_networks(text)?,
            Column::MaxContacts if text.trim().is_empty() => {}
            Column::MaxContacts => {
                user.max_contacts = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("max_contacts {:?} is not a number", text.trim()))?;
            }
            Column::Language if text.trim().is_empty() => {}
            Column::Language => {
                user.language = text
                    .trim()
                    .parse()
                    .map_err(|err: StoreError| err.to_string())?;
            }
            Column::Calls if text.trim().is_empty() => {}
            Column::Calls => {
                user.call_classes = Some(call_classes::parse_list(text)?.names());
            }
            Column::Srtp if text.trim().is_empty() => {}
            Column::Srtp => {
                user.media_encryption = Some(srtp_setting::parse(text)?.name().to_owned());
            }
            Column::Fax if text.trim().is_empty() => {}
            Column::Fax => user.fax = parse_fax(text)?,
            Column::Location if text.trim().is_empty() => {}
            Column::Location => {
                user.location = Some(emergency_location::parse(text, Vec::new())?);
            }
            Column::LocationNetworks => location_networks = Some(csv_networks(text)?),
        }
    }
    match (&mut user.location, location_networks) {
        (Some(location), Some(networks)) => location.networks = networks,
        (None, Some(networks)) if !networks.is_empty() => {
            return Err("location_networks without a location number".to_owned());
        }
        _ => {}
    }
    Ok(user)
}

/// A user from named text fields, each read exactly as the CSV column of that name is read
/// (`extension`, `name`, `password`, `allow`, `max_contacts`, `language`, `calls`, `srtp`,
/// `fax`, `location`, `location_networks`), then checked as `user_create` checks it: the web
/// console's add form and API, so that they accept what an import row accepts.
pub(crate) fn user_from_fields(fields: &[(&str, &str)], now_ms: i64) -> Result<NewUser, String> {
    let mut columns = Vec::with_capacity(fields.len());
    let mut values = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let column = Column::ALL
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, column)| *column)
            .ok_or_else(|| format!("unknown field {name:?}"))?;
        if columns.contains(&column) {
            return Err(format!("field {name:?} appears twice"));
        }
        columns.push(column);
        values.push(value.as_bytes().to_vec());
    }
    for (required, column) in &Column::ALL[..3] {
        if !columns.contains(column) {
            return Err(format!("the {required} is missing"));
        }
    }
    let user = parse_row(&values, &columns, now_ms)?;
    user.validate().map_err(|err| err.to_string())?;
    Ok(user)
}

/// Networks in one CSV field, separated by commas or spaces.
fn csv_networks(text: &str) -> Result<Vec<AllowedNetwork>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, StoreError>>()
        .map_err(|err| err.to_string())
}

/// The one line that confirms an added user, without its password.
fn added_line(user: &User) -> String {
    let calls = match &user.call_classes {
        None => String::new(),
        Some(names) => format!(", calls out: {}", names.join(", ")),
    };
    let srtp = match &user.media_encryption {
        None => String::new(),
        Some(word) => format!(", SRTP {word}"),
    };
    let fax = if user.fax { ", fax line" } else { "" };
    let location = match &user.location {
        None => String::new(),
        Some(location) => format!(", location number {}", location.number),
    };
    format!(
        "user {} added ({}, from {}, up to {} contacts, language {}{calls}{srtp}{fax}{location})",
        user.extension,
        user.display_name,
        networks_text(&user.allowed_networks),
        user.max_contacts,
        user.language
    )
}

fn networks_text(networks: &[AllowedNetwork]) -> String {
    if networks.is_empty() {
        "anywhere".to_owned()
    } else {
        networks
            .iter()
            .map(AllowedNetwork::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The user list as an aligned text table, with each user's registered contacts of its limit.
fn user_table(users: &[User], registered: &HashMap<String, u32>) -> String {
    if users.is_empty() {
        return "no users\n".to_owned();
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|user| {
            vec![
                user.extension.clone(),
                user.display_name.clone(),
                networks_text(&user.allowed_networks),
                format!(
                    "{}/{}",
                    registered.get(&user.extension).copied().unwrap_or(0),
                    user.max_contacts
                ),
                user.language.to_string(),
                call_classes::short(user.call_classes.as_deref()),
                srtp_setting::short(user.media_encryption.as_deref()),
            ]
        })
        .collect();
    aligned_table(
        &[
            "EXTENSION",
            "NAME",
            "ALLOWED FROM",
            "REGISTERED",
            "LANGUAGE",
            "CALLS",
            "SRTP",
        ],
        &rows,
    )
}

/// Left-aligned columns two spaces apart; widths count characters, so "Bürgerbüro" lines up.
pub(crate) fn aligned_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Everything about one user except its HA1s, then its registered contacts.
fn user_details(user: &User, bindings: &[Binding], now_ms: i64) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| out.push_str(&format!("{name:<14}{value}\n"));
    field("extension", &user.extension);
    field("domain", &user.domain);
    field("name", &user.display_name);
    field("realm", &user.realm);
    field("allowed from", &networks_text(&user.allowed_networks));
    field("max contacts", &user.max_contacts.to_string());
    field("language", user.language.as_str());
    field(
        "calls out",
        &call_classes::describe(user.call_classes.as_deref()),
    );
    field(
        "srtp",
        &srtp_setting::describe(user.media_encryption.as_deref()),
    );
    field("fax", describe_fax(user.fax));
    field(
        "location",
        &emergency_location::describe(user.location.as_ref()),
    );
    let settings = &user.call_settings;
    field(
        "do not disturb",
        crate::call_settings_cli::on_off(settings.dnd),
    );
    field(
        "forwarding",
        &crate::call_settings_cli::describe_forwarding(settings),
    );
    field(
        "follow-me",
        &crate::call_settings_cli::describe_follow_me(&settings.follow_me),
    );
    field("created", &utc_time(user.created_at_ms));
    field("updated", &utc_time(user.updated_at_ms));
    field("registered", &format!("{} contact(s)", bindings.len()));
    for binding in bindings {
        out.push_str(&binding_lines(binding, now_ms));
    }
    out
}

fn binding_lines(binding: &Binding, now_ms: i64) -> String {
    let mut out = format!(
        "  {}\n    from {} over {}, expires in {} s ({})",
        binding.contact,
        binding.source,
        binding.transport,
        (binding.expires_at_ms - now_ms).max(0) / 1000,
        utc_time(binding.expires_at_ms),
    );
    if let Some(q) = binding.q_milli {
        out.push_str(&format!(", q={}", q_text(q)));
    }
    out.push('\n');
    if let Some(agent) = &binding.user_agent {
        out.push_str(&format!("    user agent {agent}\n"));
    }
    if let Some(instance) = &binding.instance_id {
        out.push_str(&format!("    instance {instance}\n"));
    }
    if !binding.path.is_empty() {
        out.push_str(&format!("    path {}\n", binding.path.join(", ")));
    }
    out
}

/// A q-value in thousandths as SIP writes it: 1000 → "1", 700 → "0.7", 25 → "0.025".
fn q_text(q_milli: u16) -> String {
    let text = format!("{}.{:03}", q_milli / 1000, q_milli % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn utc_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::DEFAULT_DOMAIN;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(text: &str) -> ParsedCsv {
        parse_user_csv(text.as_bytes(), NOW).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amt-user-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn csv_rows_become_users_with_defaults_and_quoted_commas() {
        let parsed = parse(
            "extension,name,password,allow,max_contacts,language\n\
             101,Bürgerbüro,geheim123,,,\n\
             102,\"Amt, Standesamt\",\"pass,word1\",\"10.8.0.0/16, 192.168.5.0/24\",2,en\n",
        );
        assert_eq!(parsed.problems, vec![]);
        let (line, first) = &parsed.rows[0];
        assert_eq!(*line, 2);
        assert_eq!(first.display_name, "Bürgerbüro");
        assert!(first.allowed_networks.is_empty());
        assert_eq!(
            (first.max_contacts, first.language),
            (DEFAULT_MAX_CONTACTS, Language::De)
        );
        let (line, second) = &parsed.rows[1];
        assert_eq!(*line, 3);
        assert_eq!(second.display_name, "Amt, Standesamt");
        assert_eq!(second.password, "pass,word1");
        assert_eq!(
            networks_text(&second.allowed_networks),
            "10.8.0.0/16,192.168.5.0/24"
        );
        assert_eq!((second.max_contacts, second.language), (2, Language::En));
    }

    #[test]
    fn csv_calls_column_takes_a_list_or_nothing_and_names_a_bad_class() {
        let parsed = parse(
            "extension,name,password,calls\n\
             101,A,geheim123,internal;local\n\
             102,B,geheim123,\n\
             103,C,geheim123,\"national, mobile special\"\n\
             104,D,geheim123,internal;premuim\n",
        );
        let calls: Vec<Option<Vec<String>>> = parsed
            .rows
            .iter()
            .map(|(_, u)| u.call_classes.clone())
            .collect();
        assert_eq!(
            calls,
            [
                Some(vec!["internal".to_owned(), "local".to_owned()]),
                None,
                Some(vec![
                    "national".to_owned(),
                    "mobile".to_owned(),
                    "special".to_owned()
                ]),
            ]
        );
        assert_eq!(parsed.problems.len(), 1);
        let (line, problem) = &parsed.problems[0];
        assert_eq!(*line, 5);
        assert!(
            problem.starts_with("unknown call class \"premuim\"; known: emergency, internal"),
            "{problem}"
        );
    }

    #[test]
    fn csv_srtp_column_takes_a_word_in_any_case_or_nothing_and_names_a_wrong_one() {
        let parsed = parse(
            "extension;name;password;srtp\n\
             101;A;geheim123;Required\n\
             102;B;geheim123;\n\
             103;C;geheim123; off \n\
             104;D;geheim123;on\n",
        );
        let srtp: Vec<Option<&str>> = parsed
            .rows
            .iter()
            .map(|(_, u)| u.media_encryption.as_deref())
            .collect();
        assert_eq!(srtp, [Some("required"), None, Some("off")]);
        assert_eq!(parsed.problems.len(), 1);
        let (line, problem) = &parsed.problems[0];
        assert_eq!(*line, 5);
        assert_eq!(
            problem,
            "unknown SRTP setting 'on' (expected off, optional or required)"
        );
    }

    #[test]
    fn csv_fax_column_takes_on_or_off_in_any_case_or_nothing_and_names_a_wrong_one() {
        let parsed = parse(
            "extension;name;password;fax\n\
             150;Fax Poststelle;geheim123;On\n\
             151;B;geheim123;\n\
             152;C;geheim123; off \n\
             153;D;geheim123;t38\n",
        );
        let fax: Vec<bool> = parsed.rows.iter().map(|(_, u)| u.fax).collect();
        assert_eq!(fax, [true, false, false]);
        assert_eq!(parsed.problems.len(), 1);
        let (line, problem) = &parsed.problems[0];
        assert_eq!(*line, 5);
        assert_eq!(problem, "unknown fax setting 't38' (expected on or off)");
    }

    #[test]
    fn csv_columns_follow_the_header_and_semicolons_and_bom_work() {
        let parsed = parse(
            "\u{feff}Name;Extension;Password\r\nEmpfang;100;geheim123\r\n\r\nIT;200;geheim123\r\n\r\n",
        );
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(parsed.rows[0].1.extension, "100");
        assert_eq!(parsed.rows[0].1.display_name, "Empfang");
        assert_eq!(parsed.rows.len(), 2, "blank lines are skipped");
        assert_eq!(parsed.rows[1].0, 4);
    }

    #[test]
    fn csv_bad_rows_are_named_by_line_and_reading_goes_on() {
        let mut bytes = b"extension,name,password,allow\n\
            101,A,geheim123,10.8.0.0/16\n\
            102,\"B\nzweizeilig\",geheim123,\n\
            103,C,geheim123\n\
            104,D,geheim123,10.8.0.1/16\n\
            105,E,geheim123,\n"
            .to_vec();
        bytes.extend_from_slice(b"106,\xff\xfe,geheim123,\n");
        let parsed = parse_user_csv(&bytes, NOW).unwrap();
        let lines: Vec<u64> = parsed.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            lines,
            [2, 3, 7],
            "a quoted line break does not shift later lines"
        );
        assert_eq!(
            parsed.problems,
            vec![
                (5, "3 fields, but the header has 4".to_owned()),
                (
                    6,
                    "allowed network \"10.8.0.1/16\" has host bits set; the network is 10.8.0.0/16"
                        .to_owned()
                ),
                (
                    8,
                    "field 2 is not valid UTF-8 (save the file as CSV UTF-8)".to_owned()
                ),
            ]
        );
    }

    fn records(text: &str) -> Vec<(u64, Vec<String>)> {
        csv_records(text.as_bytes(), b',')
            .unwrap()
            .into_iter()
            .map(|r| {
                let fields = r
                    .fields
                    .iter()
                    .map(|f| String::from_utf8(f.clone()).unwrap())
                    .collect();
                (r.line, fields)
            })
            .collect()
    }

    #[test]
    fn csv_records_carry_the_file_line_with_crlf_blank_lines_and_quoted_breaks() {
        let expected = vec![
            (1, vec!["h1".to_owned(), "h2".to_owned()]),
            (3, vec!["a".to_owned(), "".to_owned()]),
            (4, vec!["zwei\nzeilig".to_owned(), "b".to_owned()]),
            (8, vec!["c".to_owned(), "d".to_owned()]),
        ];
        let lf = "h1,h2\n\na,\n\"zwei\nzeilig\",b\n\n\nc,d";
        assert_eq!(records(lf), expected);
        assert_eq!(records(&lf.replace('\n', "\r\n")), {
            let mut crlf = expected.clone();
            crlf[2].1[0] = "zwei\r\nzeilig".to_owned();
            crlf
        });
    }

    #[test]
    fn csv_quoting_follows_rfc_4180() {
        assert_eq!(
            records("\"a,b\",\"say \"\"hi\"\"\",\"\",x\"y\n"),
            vec![(
                1,
                vec!["a,b".into(), "say \"hi\"".into(), "".into(), "x\"y".into()]
            )]
        );
        assert_eq!(
            records("101, \"Amt, Standesamt\" ,pw\r\n"),
            vec![(1, vec!["101".into(), "Amt, Standesamt".into(), "pw".into()])]
        );
        assert_eq!(
            records("a,b,\n"),
            vec![(1, vec!["a".into(), "b".into(), "".into()])]
        );
        let err = csv_records(b"h\n\"open\n\nnever closed", b',').unwrap_err();
        assert_eq!(err, "line 2: a quoted field is never closed");
        let err = csv_records(b"h\n\n\"a\"b,c\n", b',').unwrap_err();
        assert!(
            err.starts_with("line 3: text after the closing quote"),
            "{err}"
        );
    }

    /// A field as a spreadsheet writes it when it quotes everything.
    fn quoted(field: &str) -> String {
        format!("\"{}\"", field.replace('"', "\"\""))
    }

    proptest::proptest! {
        #[test]
        fn csv_reads_back_what_was_written_quoted_with_its_lines(
            rows in proptest::collection::vec(
                proptest::collection::vec("[a-zä0-9 ,;\"\r\n]{0,6}", 2..5),
                1..6,
            ),
            crlf: bool,
            blank_after in proptest::collection::vec(proptest::bool::ANY, 6),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            let mut expected = Vec::new();
            for (row, blank) in rows.iter().zip(&blank_after) {
                let line = 1 + text.matches('\n').count() as u64;
                expected.push((line, row.clone()));
                let fields: Vec<String> = row.iter().map(|f| quoted(f)).collect();
                text.push_str(&fields.join(","));
                text.push_str(end);
                if *blank {
                    text.push_str(end);
                }
            }
            proptest::prop_assert_eq!(records(&text), expected);
        }

        #[test]
        fn csv_import_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut text = b"extension,name,password\n".to_vec();
            text.extend_from_slice(&bytes);
            let _ = parse_user_csv(&text, NOW);
            let _ = parse_user_csv(&bytes, NOW);
        }
    }

    #[test]
    fn the_console_add_form_reads_fields_as_import_columns_do() {
        let user = user_from_fields(
            &[
                ("extension", "101"),
                ("name", " Bürgerbüro "),
                ("password", "geheim123"),
                ("allow", "10.8.0.0/16, 192.168.5.0/24"),
                ("max_contacts", ""),
                ("language", "EN"),
            ],
            NOW,
        )
        .unwrap();
        assert_eq!(user.display_name, "Bürgerbüro");
        assert_eq!(user.max_contacts, DEFAULT_MAX_CONTACTS);
        assert_eq!(user.language, Language::En);
        assert_eq!(
            networks_text(&user.allowed_networks),
            "10.8.0.0/16,192.168.5.0/24"
        );
        let refused = |fields: &[(&str, &str)]| user_from_fields(fields, NOW).unwrap_err();
        assert!(
            refused(&[("extension", "101"), ("name", "A"), ("password", "kurz")])
                .starts_with("password has 4 characters")
        );
        assert!(
            refused(&[("extension", "1"), ("name", "A"), ("password", "geheim123")])
                .contains("extension")
        );
        assert_eq!(
            refused(&[("extension", "101"), ("password", "geheim123")]),
            "the name is missing"
        );
        assert_eq!(
            refused(&[
                ("extension", "101"),
                ("name", "A"),
                ("password", "geheim123"),
                ("room", "1")
            ]),
            "unknown field \"room\""
        );
    }

    #[test]
    fn an_import_is_checked_against_the_store_before_anything_is_stored() {
        let store = Store::open_in_memory().unwrap();
        store
            .user_create(&NewUser::new("200", "Vorhanden", "geheim123", 0))
            .unwrap();
        let refused = check_import(
            &store,
            b"extension,name,password\n101,A,geheim123\n200,B,geheim123\n102,C,kurz\n",
            NOW,
        )
        .unwrap_err();
        let report = refused.report("upload");
        assert!(
            report.starts_with("upload: 2 bad rows, nothing imported"),
            "{report}"
        );
        assert!(
            report.contains("line 3: user 200 already exists"),
            "{report}"
        );
        assert!(report.contains("line 4: password has 4"), "{report}");
        assert!(matches!(
            check_import(&store, b"extension,name,password\n", NOW),
            Err(ImportRefusal::File(_))
        ));
        let checked = check_import(
            &store,
            b"extension,name,password\n101,A,geheim123\n102,B,geheim456\n",
            NOW,
        )
        .unwrap();
        assert_eq!(checked.extensions(), ["101", "102"]);
        assert_eq!(store_import(&store, &checked).unwrap(), 2);
        // Stored meanwhile: the same rows are refused whole, by line.
        let again = store_import(&store, &checked).unwrap_err().report("upload");
        assert!(again.contains("line 2: user 101 already exists"), "{again}");
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap().len(), 3);
    }

    #[test]
    fn csv_header_problems_are_refused_whole() {
        for (text, expected) in [
            ("", "the file is empty"),
            ("extension,name\n101,A\n", "no \"password\" column"),
            ("extension,name,password,room\n", "unknown column \"room\""),
            (
                "extension,name,password,name\n",
                "column \"name\" appears twice",
            ),
        ] {
            let err = parse_user_csv(text.as_bytes(), NOW).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn import_is_all_or_nothing_and_names_every_bad_line() {
        let dir = temp_dir("import");
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        store
            .user_create(&NewUser::new("200", "Vorhanden", "geheim123", 0))
            .unwrap();
        let file = dir.join("users.csv");
        std::fs::write(
            &file,
            "extension,name,password\n101,A,geheim123\n102,B,kurz\n101,C,geheim123\n200,D,geheim123\n",
        )
        .unwrap();
        let err = execute(
            UserCommand::Import { file: file.clone() },
            &dir,
            DEFAULT_DOMAIN,
            NOW,
        )
        .unwrap_err();
        let expected_lines = [
            "line 3: password has 4 characters",
            "line 4: extension 101 appears again (first on line 2)",
            "line 5: user 200 already exists",
        ];
        assert!(err.contains("3 bad rows, nothing imported"), "{err}");
        for expected in expected_lines {
            assert!(err.contains(expected), "{expected:?} missing in:\n{err}");
        }
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap().len(), 1);

        std::fs::write(
            &file,
            "extension,name,password\n101,A,geheim123\n102,B,geheim456\n",
        )
        .unwrap();
        let done = execute(UserCommand::Import { file }, &dir, DEFAULT_DOMAIN, NOW).unwrap();
        assert!(done.starts_with("2 users imported"), "{done}");
        assert_eq!(store.user_list(DEFAULT_DOMAIN).unwrap().len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn problem_report_lists_a_bounded_number_of_rows() {
        let problems: Vec<(u64, String)> = (2..40).map(|l| (l, "bad".to_owned())).collect();
        let report = problem_report("u.csv", &problems);
        assert!(report.starts_with("u.csv: 38 bad rows, nothing imported\n  line 2: bad"));
        assert_eq!(report.lines().count(), 1 + MAX_LISTED_PROBLEMS + 1);
        assert!(report.ends_with("... and 18 more"));
    }

    #[test]
    fn table_aligns_by_characters_and_counts_registrations() {
        let store = Store::open_in_memory().unwrap();
        let a = store
            .user_create(&NewUser {
                allowed_networks: vec!["10.8.0.0/16".parse().unwrap()],
                ..NewUser::new("101", "Bürgerbüro", "geheim123", 0)
            })
            .unwrap();
        let b = store
            .user_create(&NewUser {
                language: Language::En,
                max_contacts: 2,
                call_classes: Some(vec!["internal".into(), "local".into()]),
                media_encryption: Some("required".into()),
                ..NewUser::new("1000", "IT", "geheim123", 0)
            })
            .unwrap();
        let table = user_table(&[a, b], &HashMap::from([("101".to_owned(), 2)]));
        assert_eq!(
            table,
            "EXTENSION  NAME        ALLOWED FROM  REGISTERED  LANGUAGE  CALLS           SRTP\n\
             101        Bürgerbüro  10.8.0.0/16   2/5         de        default         default\n\
             1000       IT          anywhere      0/2         en        internal,local  required\n"
        );
        assert_eq!(user_table(&[], &HashMap::new()), "no users\n");
    }

    #[test]
    fn q_values_print_as_sip_writes_them() {
        assert_eq!(q_text(1000), "1");
        assert_eq!(q_text(700), "0.7");
        assert_eq!(q_text(25), "0.025");
        assert_eq!(q_text(0), "0");
    }

    #[test]
    fn password_file_loses_its_line_end_but_not_more() {
        let dir = temp_dir("pwfile");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        let source = PasswordSource {
            password: None,
            password_file: Some(file.clone()),
        };
        std::fs::write(&file, "geheim 123\r\n").unwrap();
        assert_eq!(source.read().unwrap(), "geheim 123");
        std::fs::write(&file, "geheim123\nzweite\n").unwrap();
        assert!(source.read().unwrap_err().contains("more than one line"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_users_own_location_number_is_set_shown_with_what_each_phone_presents_and_cleared() {
        let dir = temp_dir("location");
        let add = |extension: &str| UserCommand::Add {
            extension: extension.into(),
            name: "Bauamt".into(),
            password: PasswordSource {
                password: Some("geheim123".into()),
                password_file: None,
            },
            allow: vec![],
            max_contacts: 5,
            language: Language::De,
            calls: Some("internal".into()),
            srtp: None,
            fax: false,
            location: None,
            location_network: vec![],
        };
        execute(add("101"), &dir, DEFAULT_DOMAIN, NOW).unwrap();
        let trunks = dir.join("trunks.toml");
        std::fs::write(
            &trunks,
            "[numbering]\narea-code = \"711\"\n\
             [[emergency-location]]\nnetwork = \"10.8.0.0/16\"\nnumber = \"+49 7031 55 0\"\n\
             [[trunk]]\nname = \"main\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.10/32\"]\n\
             proxy = \"sip:192.0.2.10\"\nmax-calls = 2\nemergency = true\n\
             location-number = \"+49 711 12345 0\"\n",
        )
        .unwrap();
        let show = || {
            execute(
                UserCommand::Show {
                    extension: "101".into(),
                    trunks: Some(trunks.clone()),
                },
                &dir,
                DEFAULT_DOMAIN,
                NOW,
            )
            .unwrap()
        };
        let shown = show();
        assert!(
            shown.contains("location      none (the trunks file's location numbers apply)"),
            "{shown}"
        );
        assert!(
            shown.contains("from a phone of the user (none registered now): +49711123450 (location-number of trunk main), on trunk main"),
            "{shown}"
        );

        let set = |number: &str, network: &[&str]| {
            execute(
                UserCommand::Location {
                    extension: "101".into(),
                    number: Some(number.into()),
                    network: network.iter().map(|n| n.parse().unwrap()).collect(),
                    clear: false,
                },
                &dir,
                DEFAULT_DOMAIN,
                NOW + 1,
            )
        };
        let err = set("07031 4711-0", &[]).unwrap_err();
        assert!(
            err.contains("07031 4711-0") && err.contains("+49 7031 4711-0"),
            "{err}"
        );
        assert_eq!(
            set("+49 7031 4711-0", &["10.8.3.0/24"]).unwrap(),
            "location number of user 101: +49703147110 (emergency calls from phones in 10.8.3.0/24)\n"
        );
        let store = Store::open(&dir).unwrap();
        let phone = |contact: &str, source: &str| Binding {
            contact: contact.into(),
            source: source.parse().unwrap(),
            transport: "udp".into(),
            path: vec![],
            q_milli: None,
            call_id: format!("reg-{contact}"),
            cseq: 1,
            expires_at_ms: NOW + 600_000,
            user_agent: None,
            instance_id: None,
        };
        store
            .registration_replace(
                DEFAULT_DOMAIN,
                "101",
                &[
                    phone("sip:101@10.8.3.9:5060", "10.8.3.9:5060"),
                    phone("sip:101@10.8.7.2:5060", "10.8.7.2:5060"),
                    phone("sip:101@172.16.0.9:5060", "172.16.0.9:5060"),
                ],
            )
            .unwrap();
        drop(store);
        let shown = show();
        for line in [
            "location      +49703147110 (emergency calls from phones in 10.8.3.0/24)",
            "  from the phone at 10.8.3.9: +49703147110 (the user's own location number), on trunk main",
            "  from the phone at 10.8.7.2: +497031550 ([[emergency-location]] 10.8.0.0/16), on trunk main",
            "  from the phone at 172.16.0.9: +49711123450 (location-number of trunk main), on trunk main",
            "  from a phone anywhere else: +49711123450 (location-number of trunk main), on trunk main",
        ] {
            assert!(shown.contains(line), "{line}\n{shown}");
        }

        let cleared = execute(
            UserCommand::Location {
                extension: "101".into(),
                number: None,
                network: vec![],
                clear: true,
            },
            &dir,
            DEFAULT_DOMAIN,
            NOW + 2,
        )
        .unwrap();
        assert_eq!(
            cleared,
            "location number of user 101: none (the trunks file's location numbers apply)\n"
        );
        assert!(
            show().contains("  from the phone at 10.8.3.9: +497031550 ([[emergency-location]]")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_location_columns_give_a_user_its_own_location_number_and_refuse_networks_without_one() {
        let parsed = parse(
            "extension;name;password;location;location_networks\n\
             101;A;geheim123;+49 7031 4711-0;10.8.3.0/24\n\
             102;B;geheim123;+49 711 1234-55;\n\
             103;C;geheim123;;\n\
             104;D;geheim123;07031 4711;\n\
             105;E;geheim123;;10.8.0.0/16\n",
        );
        let locations: Vec<Option<(String, String)>> = parsed
            .rows
            .iter()
            .map(|(_, u)| {
                u.location
                    .as_ref()
                    .map(|l| (l.number.clone(), networks_text(&l.networks)))
            })
            .collect();
        assert_eq!(
            locations,
            [
                Some(("+49703147110".to_owned(), "10.8.3.0/24".to_owned())),
                Some(("+49711123455".to_owned(), "anywhere".to_owned())),
                None,
            ]
        );
        let problems: Vec<u64> = parsed.problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(problems, [5, 6], "{:?}", parsed.problems);
        assert!(parsed.problems[1].1.contains("without a location number"));
    }

    #[test]
    fn read_commands_do_not_create_a_database() {
        let dir = temp_dir("nodb");
        assert!(
            execute(UserCommand::List, &dir, DEFAULT_DOMAIN, NOW)
                .unwrap()
                .starts_with("no users")
        );
        for command in [
            UserCommand::Show {
                extension: "101".into(),
                trunks: None,
            },
            UserCommand::Del {
                extension: "101".into(),
            },
        ] {
            assert!(execute(command, &dir, DEFAULT_DOMAIN, NOW).is_err());
        }
        let bad_add = UserCommand::Add {
            extension: "101".into(),
            name: "A".into(),
            password: PasswordSource {
                password: Some("kurz".into()),
                password_file: None,
            },
            allow: vec![],
            max_contacts: 5,
            language: Language::De,
            calls: None,
            srtp: None,
            fax: false,
            location: None,
            location_network: vec![],
        };
        assert!(
            execute(bad_add, &dir, DEFAULT_DOMAIN, NOW)
                .unwrap_err()
                .starts_with("password has 4")
        );
        assert!(!dir.exists());
    }
}
