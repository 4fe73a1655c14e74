//! Dialplans: parse, check, evaluate and explain the routing rules admins keep in
//! `dialplans/*.toml`.
//!
//! Pure: the caller hands in file contents and the call's facts (numbers, time, source), and
//! gets back the actions to run or a list of diagnostics with file:line:column. Reading files,
//! watching them and running actions belong to the server. The only outside data read is the
//! system tzdata (through `jiff`) when a plan names its time zone.
//!
//! Entry points: [`compile`] turns [`SourceFile`]s into a [`Plan`] (or errors), [`Plan::route`]
//! gives the [`Action`]s for a call, [`Plan::explain`] says why. The file format is documented
//! in `dialplans/default.toml`.

mod action;
mod compile;
mod diag;
mod holidays;
mod pattern;
mod plan;
mod walk;
mod when;

use std::collections::BTreeSet;

pub use action::{Action, DialTarget, ForwardWhen, GroupLoginMode, PickupTarget, Switch};

/// Numbers that always reach the emergency services (police, fire and ambulance), whatever
/// the plan says: no rule may match them.
pub const EMERGENCY_NUMBERS: [&str; 2] = ["110", "112"];
pub use compile::compile;
pub use diag::{Diagnostic, Severity};
pub use plan::{
    CallFacts, ExplainPass, Explanation, Plan, RingGroup, RingStrategy, Route, RuleCheck,
    TimeError, Verdict,
};

/// One dialplan file as read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path used in diagnostics and to resolve `include` (relative paths are joined to the including file's directory).
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// Names the server knows, to check references against; `None` skips that check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckContext {
    /// Sound names available (`welcome`, ...), without language or extension.
    pub sounds: Option<BTreeSet<String>>,
    /// Registered user names.
    pub users: Option<BTreeSet<String>>,
    /// Conference room names or numbers.
    pub rooms: Option<BTreeSet<String>>,
    /// Configured trunk names.
    pub trunks: Option<BTreeSet<String>>,
    /// Actions the server can run; any other action gets a warning (a call reaching it
    /// would be refused). `None`: not checked.
    pub runnable_actions: Option<BTreeSet<String>>,
}

/// A plan that passed the checks, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The plan to route calls with.
    pub plan: Plan,
    /// Findings that do not stop the plan from taking effect.
    pub warnings: Vec<Diagnostic>,
}
