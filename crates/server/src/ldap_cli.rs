//! `amtsleitung ldap test USER`: signs a user in against the configured directory exactly
//! as the console will, so that an admin can check `[ldap]` before anyone depends on it.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::{ConfigSource, LdapSettings};
use crate::ldap_auth::{self, LdapIdentity};

/// `amtsleitung ldap ...`
#[derive(Debug, Subcommand)]
pub enum LdapCommand {
    /// Sign USER in with the password on stdin (one line) and show what the console would
    /// make of the account: admin or not, extension, name. Exit 1 if refused.
    Test {
        /// The user name as it would be typed into the console.
        user: String,
    },
}

/// Runs an `ldap` command with the configuration's `[ldap]`; exit 2 without one.
pub fn run(
    command: LdapCommand,
    settings: Option<&LdapSettings>,
    source: &ConfigSource,
) -> ExitCode {
    let Some(settings) = settings else {
        eprintln!(
            "amtsleitung: no [ldap] section in the configuration ({source}); see README.md, \
             \"Signing in to the console with LDAP\""
        );
        return ExitCode::from(2);
    };
    match command {
        LdapCommand::Test { user } => {
            let password = match read_password(&user) {
                Ok(password) => password,
                Err(err) => {
                    eprintln!("amtsleitung: cannot read the password from stdin: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("amtsleitung: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let outcome = runtime.block_on(ldap_auth::authenticate(settings, &user, &password));
            crate::room_cli::report(
                outcome
                    .map(|identity| format!("{}\n", signed_in(&identity)))
                    .map_err(|err| err.to_string()),
            )
        }
    }
}

/// One line on who signed in: `signed in as DN: admin, extension 101, "Anna Amt"`.
fn signed_in(identity: &LdapIdentity) -> String {
    let role = if identity.admin { "admin" } else { "staff" };
    let extension = match &identity.extension {
        Some(extension) => format!("extension {extension}"),
        None => "no extension".to_owned(),
    };
    let name = match &identity.display_name {
        Some(name) => format!(", {name:?}"),
        None => String::new(),
    };
    format!("signed in as {}: {role}, {extension}{name}", identity.dn)
}

/// The password: the first line of stdin without its line end. At a terminal it asks for
/// it on stderr and does not echo what is typed.
fn read_password(user: &str) -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let _quiet = if terminal {
        eprint!("password for {user}: ");
        std::io::stderr().flush()?;
        EchoOff::new()
    } else {
        None
    };
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if terminal {
        eprintln!();
    }
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    Ok(password.to_owned())
}

/// The terminal's echo switched off while it lives.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails, which is checked.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a termios tcgetattr filled, with one flag changed.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) } != 0 {
            return None;
        }
        Some(Self(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings tcgetattr returned.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_in_line_names_the_dn_role_extension_and_name() {
        let identity = LdapIdentity {
            dn: "uid=anna,ou=people,dc=rathaus,dc=example".into(),
            name: "anna".into(),
            admin: true,
            extension: Some("101".into()),
            display_name: Some("Anna Amt".into()),
        };
        assert_eq!(
            signed_in(&identity),
            "signed in as uid=anna,ou=people,dc=rathaus,dc=example: admin, extension 101, \"Anna Amt\""
        );
        let identity = LdapIdentity {
            admin: false,
            extension: None,
            display_name: None,
            ..identity
        };
        assert_eq!(
            signed_in(&identity),
            "signed in as uid=anna,ou=people,dc=rathaus,dc=example: staff, no extension"
        );
    }
}
