//! Outside lines: the configuration of SIP trunks (`trunks.toml`) and the handling of phone
//! numbers on them.
//!
//! Pure: the caller hands in the file's text and the numbers, and gets back a checked
//! [`TrunkConfig`] (or diagnostics with file:line:column), numbers in E.164, the form a trunk
//! wants, and the [`CallClass`] of what a user dialled, each with an explanation of the rules
//! applied. It opens no socket, reads no file (not even `password-file`) and no clock;
//! registering, keep-alives, failover, call counting and routing belong to the server. The
//! [`CostGuard`] sums what calls out cost over the last hour with time passed in; refusing
//! and ending calls over its limits is the server's.
//!
//! The numbering knowledge is German (Bundesnetzagentur's plan: 0 national and 00
//! international prefix, 015x/016x/017x mobile, 0800/0180/0700/0900 services, 110/112). A
//! site abroad gets the E.164 handling but none of the German ranges.
//!
//! Entry points: [`parse`] reads `trunks.toml` (every key is shown in
//! `crates/trunks/examples/trunks.toml`); [`Numbering::dialled`] normalises and classifies
//! what a user dialled; [`TrunkNumbers::inbound`] reads a carrier's number and
//! [`TrunkNumbers::format`] writes one for it; the `explain_*` variants list the steps;
//! [`AllowedClasses`] says what a user may call; [`CostGuard`] what calls out have cost.

mod class;
mod config;
mod cost_guard;
mod diag;
mod number;

pub use class::{AllowedClasses, CallClass, Classified, UnknownCallClass};
pub use config::{
    CallerId, Checked, Codec, DEFAULT_CODECS, DEFAULT_EXPIRES, DEFAULT_OPTIONS_INTERVAL,
    DEFAULT_OUTSIDE_CALLS_PER_USER, DEFAULT_RESPONSE_TIMEOUT, DiversionHeader, EmergencyLocation,
    LocationOrigin, MAX_CALLS_LIMIT, OutsideCallLimits, Password, PersonalLocation, Registration,
    SipUri, Transport, Trunk, TrunkConfig, TrunkMode, parse,
};
pub use cost_guard::{Budget, COST_WINDOW, CostGuard, CostRules, CutCall, Money, OverBudget};
pub use diag::{Diagnostic, Severity};
pub use number::{
    AreaCode, CountryCode, DEFAULT_EMERGENCY_NUMBERS, Dialled, DidBlock, E164, Explanation,
    ExtensionRange, FIXED_EMERGENCY_NUMBERS, MAX_E164_DIGITS, MAX_INPUT_LEN, MIN_E164_DIGITS,
    NumberError, NumberFormat, NumberRule, Numbering, Step, TrunkNumbers,
};
