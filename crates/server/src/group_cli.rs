//! `amtsleitung group ...`: which ring group members are logged in, and logging a member in
//! or out for them (a member does it from their phone with the dialplan's `group_login`
//! code, `*45` in the shipped plan).
//!
//! The groups and their members come from the dialplan (`[groups.NAME]`); the store keeps
//! who is logged out. Works on the database file directly, like `room` and `user`, so it
//! also works while the server runs: the next call to the group sees the change.

use std::path::Path;
use std::process::ExitCode;

use dialplan::{Plan, RingGroup};
use store::Store;

/// Ring group commands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Every ring group (or one): strategy, times, and each member logged in or out.
    Status {
        /// Only this group.
        group: Option<String>,
    },
    /// Log a member in to a group: its calls ring them again.
    Login {
        /// The group's name (`[groups.NAME]`).
        group: String,
        /// The member's extension.
        extension: String,
    },
    /// Log a member out of a group: its calls skip them until they log in again.
    Logout {
        /// The group's name (`[groups.NAME]`).
        group: String,
        /// The member's extension.
        extension: String,
    },
}

/// Runs one group command with the plan in `dialplans` and the store in `data_dir`.
pub fn run(command: GroupCommand, data_dir: &Path, dialplans: &Path) -> ExitCode {
    crate::room_cli::report(execute(command, data_dir, dialplans))
}

fn execute(command: GroupCommand, data_dir: &Path, dialplans: &Path) -> Result<String, String> {
    let plan = match crate::dialplan_files::compile_dir(dialplans, None) {
        Ok((plan, _)) => plan,
        Err(diagnostics) => {
            let first = diagnostics
                .first()
                .map_or_else(String::new, |d| format!(": {d}"));
            return Err(format!(
                "the dialplan in {} does not compile{first}",
                dialplans.display()
            ));
        }
    };
    let store = Store::open(data_dir).map_err(|e| e.to_string())?;
    match command {
        GroupCommand::Status { group } => status(&plan, &store, group.as_deref()),
        GroupCommand::Login { group, extension } => {
            member_of(&plan, &group, &extension)?;
            let changed = store
                .group_log_in(&group, &extension)
                .map_err(|e| e.to_string())?;
            if changed {
                crate::audit_cli::record_cli_change(
                    &store,
                    "group.login",
                    &format!("{extension} logged in to ring group {group}"),
                )?;
            }
            Ok(if changed {
                format!("{extension} logged in to ring group {group}\n")
            } else {
                format!("{extension} was logged in to ring group {group} already\n")
            })
        }
        GroupCommand::Logout { group, extension } => {
            member_of(&plan, &group, &extension)?;
            let now_ms = jiff::Timestamp::now().as_millisecond();
            let changed = store
                .group_log_out(&group, &extension, now_ms)
                .map_err(|e| e.to_string())?;
            if changed {
                crate::audit_cli::record_cli_change(
                    &store,
                    "group.logout",
                    &format!("{extension} logged out of ring group {group}"),
                )?;
            }
            Ok(if changed {
                format!("{extension} logged out of ring group {group}\n")
            } else {
                format!("{extension} was logged out of ring group {group} already\n")
            })
        }
    }
}

/// The group, if `extension` is one of its members.
fn member_of<'p>(plan: &'p Plan, group: &str, extension: &str) -> Result<&'p RingGroup, String> {
    let Some(g) = plan.group(group) else {
        let known: Vec<&str> = plan.groups().keys().map(String::as_str).collect();
        return Err(format!(
            "no ring group {group} in the dialplan (groups: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if !g.members.iter().any(|m| m == extension) {
        return Err(format!(
            "{extension} is not a member of ring group {group} (members: {})",
            g.members.join(", ")
        ));
    }
    Ok(g)
}

fn status(plan: &Plan, store: &Store, only: Option<&str>) -> Result<String, String> {
    if let Some(group) = only
        && plan.group(group).is_none()
    {
        return Err(format!("no ring group {group} in the dialplan"));
    }
    let logouts = store.group_logouts().map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (name, group) in plan.groups() {
        if only.is_some_and(|g| g != name) {
            continue;
        }
        out.push_str(&format!(
            "{name}: {}, {} s per member, {} s in all, do not disturb {}, forwarding {}\n",
            group.strategy.name(),
            group.ring_s,
            group.timeout_s,
            if group.respect_dnd {
                "respected"
            } else {
                "ignored"
            },
            if group.respect_forwarding {
                "respected"
            } else {
                "ignored"
            }
        ));
        for member in &group.members {
            let out_since = logouts
                .iter()
                .find(|l| &l.group == name && &l.extension == member);
            match out_since {
                Some(l) => out.push_str(&format!(
                    "  {member}\tlogged out since {}\n",
                    jiff::Timestamp::from_millisecond(l.since_ms)
                        .map_or_else(|_| l.since_ms.to_string(), |t| t.to_string())
                )),
                None => out.push_str(&format!("  {member}\tlogged in\n")),
            }
        }
    }
    if out.is_empty() {
        out.push_str("no ring groups in the dialplan\n");
    }
    Ok(out)
}
