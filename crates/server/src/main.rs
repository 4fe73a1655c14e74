//! `amtsleitung`: the telephone conference and call-routing server.
//!
//! This binary is the only place that wires sockets, files, threads and tokio to the pure
//! crates (`sip`, `media`, `dialplan`, `store`).

mod account_cli;
mod audit_cli;
mod browser_media;
mod call;
mod call_classes;
mod call_control;
mod call_cost;
mod call_effects;
mod call_event;
mod call_hold;
mod call_settings_cli;
mod calls_cli;
mod conference;
mod config;
mod console;
mod console_dialplan;
mod console_dialplan_page;
mod console_openapi;
mod console_page;
mod console_records;
mod console_system;
mod console_users;
mod console_users_page;
mod core_command;
mod dialplan_edit;
mod dialplan_files;
mod emergency_location;
mod explain_phones;
mod fax;
mod file_watch;
mod group_cli;
mod http;
mod http_serve;
mod https_listener;
mod ice_servers;
mod ids;
mod join_http;
mod join_page;
mod ldap_auth;
mod ldap_cli;
mod line_state;
mod link_backoff;
mod link_http;
mod media_worker;
mod meeting_link;
mod node_cli;
mod pin_attempts;
mod presence;
mod registrar;
mod registration_sync;
mod room_cli;
mod room_watch;
mod runtime;
mod security_cli;
mod shared;
mod sign_in_guard;
mod sip_endpoint;
mod sounds;
mod srtp_setting;
mod store_handle;
mod telemetry;
mod tenants;
mod tick_schedule;
mod tls;
mod transport;
mod trunk_reload;
mod trunk_service;
mod udp_arrival;
mod udptl_relay;
mod user_cli;
mod user_directory;
mod voicemail;
mod voicemail_cli;
mod voicemail_mail;
mod webrtc_sessions;
mod whip_http;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use config::{Config, LogFormat, PortRange};

/// Telephone conference and call-routing server.
#[derive(Debug, Parser)]
#[command(name = "amtsleitung", version, about)]
struct Cli {
    /// Config file, for every command (default: $AMT_CONFIG, else ./amtsleitung.toml, else
    /// /etc/amtsleitung/amtsleitung.toml, else built-in defaults); flags override its keys.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (defaults: SIP on 0.0.0.0:5060, admin HTTP on 127.0.0.1:8080).
    Serve(ServeArgs),
    /// Check or explain dialplans.
    #[command(subcommand)]
    Dialplan(DialplanCommand),
    /// Create, list and delete conference rooms with PINs.
    Room {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// The tenant whose rooms these are (a `[[tenant]]` domain of the config); without
        /// it, the default domain's.
        #[arg(long, value_name = "DOMAIN", global = true)]
        domain: Option<String>,
        #[command(subcommand)]
        command: room_cli::RoomCommand,
    },
    /// Add, list, show, change, delete and import staff users (desk phone extensions).
    User {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// The tenant whose users these are (a `[[tenant]]` domain of the config); without
        /// it, the default domain's.
        #[arg(long, value_name = "DOMAIN", global = true)]
        domain: Option<String>,
        #[command(subcommand)]
        command: user_cli::UserCommand,
    },
    /// Web console accounts: add, list, change the password of, disable, enable and delete.
    Account {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: account_cli::AccountCommand,
    },
    /// The audit log: who changed rooms, users, accounts and the dialplan, when and from where.
    Audit {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: audit_cli::AuditCommand,
    },
    /// Ring groups: who is logged in, and logging members in and out.
    Group {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Dialplan directory that defines the groups (default: the config's `dialplans`).
        #[arg(long, value_name = "DIR", global = true)]
        dialplans: Option<PathBuf>,
        #[command(subcommand)]
        command: group_cli::GroupCommand,
    },
    /// List voicemail messages; set a mailbox's PIN and mail address; delete messages.
    Voicemail {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: voicemail_cli::VoicemailCommand,
    },
    /// List the call records (as a table or CSV).
    Calls {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: calls_cli::CallsCommand,
    },
    /// Write a consistent copy of the store to FILE while the server runs (restore: stop
    /// the server, put the copy in the data directory as amtsleitung.db, start it).
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Show and lift the bans on addresses that kept sending wrong passwords (asks the
    /// running server).
    Security {
        /// The server's admin HTTP address (default: the config's `http-listen`).
        #[arg(long, value_name = "ADDR", global = true)]
        http: Option<SocketAddr>,
        #[command(subcommand)]
        command: security_cli::SecurityCommand,
    },
    /// Check the console's LDAP / Active Directory sign-in (`[ldap]` in the config).
    #[command(subcommand)]
    Ldap(ldap_cli::LdapCommand),
    /// This node in a pool: `drain` for maintenance without cutting calls (asks the running
    /// server).
    Node {
        /// The server's admin HTTP address (default: the config's `http-listen`).
        #[arg(long, value_name = "ADDR", global = true)]
        http: Option<SocketAddr>,
        #[command(subcommand)]
        command: node_cli::NodeCommand,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// SIP listen address (UDP and TCP).
    #[arg(long, value_name = "ADDR")]
    sip_listen: Option<SocketAddr>,
    /// SIP-over-TLS listen address (default: the SIP port + 1, with a certificate only).
    #[arg(long, value_name = "ADDR")]
    sip_tls_listen: Option<SocketAddr>,
    /// Certificate chain for SIP over TLS (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    tls_certificate: Option<PathBuf>,
    /// Private key of the TLS certificate (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// IP address written into SDP for media.
    #[arg(long, value_name = "IP")]
    media_ip: Option<IpAddr>,
    /// RTP port range, e.g. 20000-29999.
    #[arg(long, value_name = "LO-HI")]
    rtp_ports: Option<PortRange>,
    /// Admin HTTP listen address.
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Admin HTTPS listen address: the same routes over TLS, for browsers (default: none).
    #[arg(long, value_name = "ADDR")]
    https_listen: Option<SocketAddr>,
    /// Certificate chain for HTTPS (PEM; default: --tls-certificate); reloaded when the file
    /// changes.
    #[arg(long, value_name = "FILE")]
    https_certificate: Option<PathBuf>,
    /// Private key of the HTTPS certificate (PEM; default: --tls-key).
    #[arg(long, value_name = "FILE")]
    https_key: Option<PathBuf>,
    /// Data directory (SQLite database).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Dialplan directory.
    #[arg(long, value_name = "DIR")]
    dialplans: Option<PathBuf>,
    /// Prompt directory.
    #[arg(long, value_name = "DIR")]
    sounds: Option<PathBuf>,
    /// SIP trunks file (trunks.toml); without one there are no outside lines.
    #[arg(long, value_name = "FILE")]
    trunks: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Media worker threads (0 = one per core).
    #[arg(long, value_name = "N")]
    media_workers: Option<usize>,
    /// Conference mixer: shared (default) or conventional (a baseline for benchmarks); the
    /// key is `mixer` in `[conference]`.
    #[arg(long, value_name = "MODE")]
    mixer: Option<config::MixerMode>,
    /// SRTP for users without their own setting: off, optional (default) or required.
    #[arg(long, value_name = "POLICY")]
    srtp: Option<media::sdp::SrtpPolicy>,
}

#[derive(Debug, Subcommand)]
enum DialplanCommand {
    /// Check every dialplan file; exit 1 on errors.
    Check {
        /// Dialplan directory (default: the config's `dialplans`).
        dir: Option<PathBuf>,
        /// Prompt directory the sound names are checked against (default: the config's
        /// `sounds`).
        #[arg(long, value_name = "DIR")]
        sounds: Option<PathBuf>,
    },
    /// Explain how a call would be routed.
    Explain {
        /// Dialled number.
        #[arg(long, value_name = "NUMBER")]
        to: String,
        /// Caller number.
        #[arg(long, value_name = "NUMBER")]
        from: Option<String>,
        /// Local time of the call, "YYYY-MM-DD HH:MM" (default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Inbound trunk name: the numbers are normalised by its rules (with --trunks).
        #[arg(long, value_name = "TRUNK")]
        trunk: Option<String>,
        /// The trunks file whose number rules --trunk applies (default: the config's
        /// `trunks`).
        #[arg(long, value_name = "FILE", requires = "trunk")]
        trunks: Option<PathBuf>,
        /// Caller's source IP.
        #[arg(long, value_name = "IP")]
        source: Option<IpAddr>,
        /// Dialplan directory (default: the config's `dialplans`).
        #[arg(long, value_name = "DIR")]
        dialplans: Option<PathBuf>,
        /// Prompt directory (default: the config's `sounds`).
        #[arg(long, value_name = "DIR")]
        sounds: Option<PathBuf>,
        /// Data directory whose users' forwarding, do not disturb and follow-me are shown
        /// (default: the config's `data-dir`; nothing is created).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List the dialplan versions the server has accepted.
    History {
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the files of a stored version.
    Show {
        /// Version number from `dialplan history`.
        version: u32,
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Show what changed from one stored version to another (unified diff).
    Diff {
        /// The older version.
        from: u32,
        /// The newer version.
        to: u32,
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Write an earlier version back into the dialplan directory; a running server reloads it.
    Rollback {
        /// Version number from `dialplan history`.
        version: u32,
        /// Data directory of the server (default: the config's `data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Dialplan directory to write into (default: the config's `dialplans`).
        #[arg(long, value_name = "DIR")]
        dialplans: Option<PathBuf>,
        /// Prompt directory used to check the version before writing it (default: the
        /// config's `sounds`).
        #[arg(long, value_name = "DIR")]
        sounds: Option<PathBuf>,
    },
}

impl ServeArgs {
    /// `config` with the flags given on top.
    fn apply_to(self, mut config: Config) -> Config {
        if let Some(v) = self.sip_listen {
            config.sip_listen = v;
        }
        if let Some(v) = self.sip_tls_listen {
            config.sip_tls_listen = Some(v);
        }
        if let Some(v) = self.tls_certificate {
            config.tls_certificate = Some(v);
        }
        if let Some(v) = self.tls_key {
            config.tls_key = Some(v);
        }
        if let Some(v) = self.media_ip {
            config.media_ip = Some(v);
        }
        if let Some(v) = self.rtp_ports {
            config.rtp_ports = v;
        }
        if let Some(v) = self.http_listen {
            config.http_listen = v;
        }
        if let Some(v) = self.https_listen {
            config.https_listen = Some(v);
        }
        if let Some(v) = self.https_certificate {
            config.https_certificate = Some(v);
        }
        if let Some(v) = self.https_key {
            config.https_key = Some(v);
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.dialplans {
            config.dialplans = v;
        }
        if let Some(v) = self.sounds {
            config.sounds = v;
        }
        if let Some(v) = self.trunks {
            config.trunks = Some(v);
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(v) = self.mixer {
            config.conference.mixer = v;
        }
        if let Some(v) = self.media_workers {
            config.media_workers = v;
        }
        if let Some(v) = self.srtp {
            config.srtp = v;
        }
        config
    }
}

/// The command line with `serve --help` showing each flag's default, taken from the
/// embedded defaults themselves so that the help cannot drift from what the server does
/// (the flags are `Option`s: a flag left out falls back to the config file, then to these).
fn command_with_defaults() -> clap::Command {
    let d = Config::default();
    let shown = |p: &Path| format!("{}, in the working directory", p.display());
    let log_format = match d.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mixer = match d.conference.mixer {
        config::MixerMode::Shared => "shared",
        config::MixerMode::Conventional => "conventional",
    };
    let defaults = [
        ("sip_listen", d.sip_listen.to_string()),
        (
            "rtp_ports",
            format!("{}-{}", d.rtp_ports.low, d.rtp_ports.high),
        ),
        ("http_listen", d.http_listen.to_string()),
        ("data_dir", shown(&d.data_dir)),
        ("dialplans", shown(&d.dialplans)),
        ("sounds", shown(&d.sounds)),
        ("log_format", log_format.to_owned()),
        ("media_workers", d.media_workers.to_string()),
        ("mixer", mixer.to_owned()),
        ("srtp", d.srtp.name().to_owned()),
    ];
    Cli::command().mut_subcommand("serve", |mut serve| {
        for (id, value) in defaults {
            serve = serve.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            });
        }
        serve
    })
}

/// The data directory an offline command acts on: `--data-dir`, else the config's. In the
/// second case it says on stderr which store that is, so that an admin who typed the command
/// in the wrong place (or with the wrong config) sees it before trusting "no rooms"; with
/// `--data-dir` the admin named it and success stays silent.
pub(crate) fn store_dir(
    flag: Option<PathBuf>,
    config: &Config,
    source: &config::ConfigSource,
) -> PathBuf {
    let dir = match flag {
        Some(dir) => dir,
        None if config.store.url.is_some() => {
            // The offline commands open the SQLite file of a data directory; a node whose
            // store is PostgreSQL would have them change a file the server never reads.
            eprintln!(
                "amtsleitung: the store of this configuration ({source}) is the PostgreSQL \
                 database {}; the offline commands work on a SQLite data directory only, \
                 so nothing was done (give --data-dir to work on one)",
                config
                    .store
                    .url
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string)
            );
            std::process::exit(2);
        }
        None => {
            let file = store::Store::database_file(&config.data_dir);
            let file = std::path::absolute(&file).unwrap_or(file);
            eprintln!("amtsleitung: store {} (config: {source})", file.display());
            config.data_dir.clone()
        }
    };
    act_as_store_owner(&dir);
    dir
}

/// An admin typing `amtsleitung room create` as root (as after `apt-get install`) would
/// leave root-owned database, journal and WAL files in a data directory that belongs to the
/// service's user, and the server could no longer write its store. As root, the command
/// therefore takes on the owner of an existing data directory before touching it.
fn act_as_store_owner(data_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(meta) = std::fs::metadata(data_dir) else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 {
        return;
    }
    // The audit log names who ran the command, not the owner it is about to become.
    audit_cli::unix_user();
    // Group first: once the uid is dropped, the gid can no longer be changed.
    // SAFETY: plain system calls on this single-threaded process; each result is checked.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !dropped {
        eprintln!(
            "amtsleitung: cannot act as the owner (uid {uid}) of {}: {}",
            data_dir.display(),
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
}

/// The domain a `--domain` names (the default domain without it), if the config hosts it.
fn tenant_domain(config: &config::Config, domain: Option<String>) -> Result<String, ExitCode> {
    let domain = domain.unwrap_or_else(|| store::DEFAULT_DOMAIN.to_owned());
    let tenants = tenants::Tenants::new(&config.tenants).map_err(|err| {
        eprintln!("error: [[tenant]]: {err}");
        ExitCode::FAILURE
    })?;
    if !tenants.knows(&domain) {
        let hosted: Vec<&str> = config.tenants.iter().map(|t| t.domain.as_str()).collect();
        eprintln!(
            "error: no tenant {domain} in the config (its [[tenant]] sections name: {})",
            hosted.join(", ")
        );
        return Err(ExitCode::FAILURE);
    }
    Ok(domain)
}

fn main() -> ExitCode {
    let cli = match command_with_defaults()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            // One line that names the flag, as admins read it in a terminal or a unit log.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("amtsleitung: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let located = match config::locate(cli.config.as_deref()) {
        Ok(located) => located,
        Err(err) => {
            eprintln!("amtsleitung: {err:#}");
            return ExitCode::from(2);
        }
    };
    let source = located.source;
    let config = located.config;
    if !matches!(cli.command, Command::Serve(_)) {
        // `amtsleitung room list | head`: a closed pipe ends a command quietly, as for any
        // Unix tool, instead of a panic in `println!`. Not for `serve`, whose writes to a
        // peer that went away must stay errors, never a signal that kills the server.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Serve(args) => {
            let config = args.apply_to(config);
            runtime::init_logging(config.log_format);
            tracing::info!(config = %source, "configuration");
            match runtime::serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Dialplan(command) => dialplan_files::run_command(command, &config, &source),
        Command::Room {
            data_dir,
            domain,
            command,
        } => match tenant_domain(&config, domain) {
            Ok(domain) => room_cli::run(command, &store_dir(data_dir, &config, &source), &domain),
            Err(code) => code,
        },
        Command::User {
            data_dir,
            domain,
            command,
        } => match tenant_domain(&config, domain) {
            Ok(domain) => user_cli::run(command, &store_dir(data_dir, &config, &source), &domain),
            Err(code) => code,
        },
        Command::Account { data_dir, command } => {
            // An account for a town the config does not host would run nothing.
            if let account_cli::AccountCommand::Add {
                domain: Some(domain),
                ..
            } = &command
                && let Err(code) = tenant_domain(&config, Some(domain.clone()))
            {
                return code;
            }
            account_cli::run(command, &store_dir(data_dir, &config, &source))
        }
        Command::Audit { data_dir, command } => {
            audit_cli::run(command, &store_dir(data_dir, &config, &source))
        }
        Command::Group {
            data_dir,
            dialplans,
            command,
        } => {
            let dialplans = dialplans.unwrap_or_else(|| config.dialplans.clone());
            group_cli::run(command, &store_dir(data_dir, &config, &source), &dialplans)
        }
        Command::Voicemail { data_dir, command } => {
            voicemail_cli::run(command, &store_dir(data_dir, &config, &source))
        }
        Command::Calls { data_dir, command } => {
            calls_cli::run(command, &store_dir(data_dir, &config, &source))
        }
        Command::Backup { file, data_dir } => {
            calls_cli::backup(&store_dir(data_dir, &config, &source), &file)
        }
        Command::Security { http, command } => {
            security_cli::run(command, http.unwrap_or(config.http_listen))
        }
        Command::Ldap(command) => ldap_cli::run(command, config.ldap.as_ref(), &source),
        Command::Node { http, command } => {
            node_cli::run(command, http.unwrap_or(config.http_listen))
        }
    }
}
