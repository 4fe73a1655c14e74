//! What each extension's line is doing: idle, ringing (a call rings one of its phones) or
//! busy (it is in a call), fed by call control as legs ring, answer and end. Busy lamp
//! fields show it (see `presence.rs`) and call pickup finds the ringing calls here.
//!
//! Pure: no I/O, no clock. Each change of what a line shows is queued once
//! ([`LineStates::poll_change`]), so a watcher is told about every step and nothing twice.

use std::collections::{HashMap, VecDeque};

use crate::ids::LegId;

/// The state of one call at a line, in the words of RFC 4235 §3.7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallState {
    /// It rings (a 1xx came): `early`.
    Ringing,
    /// It is up: `confirmed`.
    Confirmed,
}

/// Which side of the call the line's user is (RFC 4235 `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The user called.
    Initiator,
    /// The user is called.
    Recipient,
}

/// One call at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCall {
    /// The leg that is the line's side of the call: the leg we placed to its phone, or the
    /// phone's own leg when it called.
    pub leg: LegId,
    /// For a call to the line: the caller's leg that it rings for.
    pub caller_leg: Option<LegId>,
    /// The SIP Call-ID of `leg` (the dialog's id in the dialog-info document).
    pub call_id: String,
    /// Who is at the other end (an extension or a number).
    pub peer: String,
    /// Ringing or up.
    pub state: CallState,
    /// Who called.
    pub direction: Direction,
}

/// What a line shows: the "most busy" of its calls (a call up wins over one ringing; among
/// equals, the oldest), or idle with the call that ended last, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineView {
    /// No call. The last call to end here, for a `terminated` dialog in the document.
    Idle(Option<LineCall>),
    /// This call shows.
    InCall(LineCall),
}

impl LineView {
    /// The word for logs and call records: idle, ringing or busy.
    pub fn word(&self) -> &'static str {
        match self {
            LineView::Idle(_) => "idle",
            LineView::InCall(LineCall {
                state: CallState::Ringing,
                ..
            }) => "ringing",
            LineView::InCall(_) => "busy",
        }
    }
}

/// Line states of every extension (see the module documentation).
#[derive(Debug, Default)]
pub struct LineStates {
    /// Calls per extension, oldest first.
    lines: HashMap<String, Vec<LineCall>>,
    /// Which extension a leg is a call of.
    by_leg: HashMap<LegId, String>,
    /// The last call to end per extension, shown as terminated while the line is idle.
    last_ended: HashMap<String, LineCall>,
    /// Extensions whose view changed, in order, with the view they changed to.
    changes: VecDeque<(String, LineView)>,
}

/// Calls a line keeps at once: more are not shown (bounded everything; a phone has a few
/// line keys).
const MAX_CALLS_PER_LINE: usize = 32;

impl LineStates {
    /// A call placed to `extension`'s phone on `leg` for the caller on `caller_leg` rings.
    pub fn ringing(
        &mut self,
        extension: &str,
        leg: LegId,
        caller_leg: LegId,
        call_id: &str,
        peer: &str,
    ) {
        if self.by_leg.contains_key(&leg) {
            return;
        }
        self.add(
            extension,
            LineCall {
                leg,
                caller_leg: Some(caller_leg),
                call_id: call_id.to_string(),
                peer: peer.to_string(),
                state: CallState::Ringing,
                direction: Direction::Recipient,
            },
        );
    }

    /// `extension` called from its phone on `leg`: the line is busy (a phone that dials is
    /// off the hook) until the leg ends.
    pub fn calling(&mut self, extension: &str, leg: LegId, call_id: &str, peer: &str) {
        if self.by_leg.contains_key(&leg) {
            return;
        }
        self.add(
            extension,
            LineCall {
                leg,
                caller_leg: None,
                call_id: call_id.to_string(),
                peer: peer.to_string(),
                state: CallState::Confirmed,
                direction: Direction::Initiator,
            },
        );
    }

    /// The call on `leg` is up (answered, or picked up).
    pub fn confirmed(&mut self, leg: LegId) {
        self.change(leg, |calls| {
            if let Some(call) = calls.iter_mut().find(|c| c.leg == leg) {
                call.state = CallState::Confirmed;
            }
        });
    }

    /// The call on `leg` is over (or was never answered).
    pub fn ended(&mut self, leg: LegId) {
        let Some(extension) = self.by_leg.get(&leg).cloned() else {
            return;
        };
        if let Some(call) = self
            .lines
            .get(&extension)
            .and_then(|calls| calls.iter().find(|c| c.leg == leg))
            .cloned()
        {
            self.last_ended.insert(extension, call);
        }
        self.change(leg, |calls| calls.retain(|c| c.leg != leg));
        self.by_leg.remove(&leg);
    }

    /// What `extension`'s line shows now.
    pub fn view(&self, extension: &str) -> LineView {
        let shown = self.lines.get(extension).and_then(|calls| {
            // The first of the most busy: `max_by_key` would take the last of equals.
            let top = calls.iter().map(|c| c.state).max()?;
            calls.iter().find(|c| c.state == top)
        });
        match shown {
            Some(call) => LineView::InCall(call.clone()),
            None => LineView::Idle(self.last_ended.get(extension).cloned()),
        }
    }

    /// The oldest call ringing at `extension`: the caller's leg and every leg ringing for
    /// it there (a user with several phones rings on each).
    pub fn ringing_at(&self, extension: &str) -> Option<(LegId, Vec<LegId>)> {
        let calls = self.lines.get(extension)?;
        let first = calls
            .iter()
            .find(|c| c.state == CallState::Ringing && c.caller_leg.is_some())?;
        let caller = first.caller_leg?;
        let legs = calls
            .iter()
            .filter(|c| c.state == CallState::Ringing && c.caller_leg == Some(caller))
            .map(|c| c.leg)
            .collect();
        Some((caller, legs))
    }

    /// The next extension whose line changed, with what it shows now.
    pub fn poll_change(&mut self) -> Option<(String, LineView)> {
        self.changes.pop_front()
    }

    fn add(&mut self, extension: &str, call: LineCall) {
        let leg = call.leg;
        let before = self.view(extension);
        let calls = self.lines.entry(extension.to_string()).or_default();
        if calls.len() >= MAX_CALLS_PER_LINE {
            tracing::debug!(%extension, "line keeps no more calls");
            return;
        }
        calls.push(call);
        self.by_leg.insert(leg, extension.to_string());
        self.note(extension, before);
    }

    fn change(&mut self, leg: LegId, edit: impl FnOnce(&mut Vec<LineCall>)) {
        let Some(extension) = self.by_leg.get(&leg).cloned() else {
            return;
        };
        let before = self.view(&extension);
        if let Some(calls) = self.lines.get_mut(&extension) {
            edit(calls);
            if calls.is_empty() {
                self.lines.remove(&extension);
            }
        }
        self.note(&extension, before);
    }

    /// Queues the line's new view when it differs from `before`.
    fn note(&mut self, extension: &str, before: LineView) {
        let after = self.view(extension);
        if after != before {
            tracing::info!(%extension, line = %after.word(), "line state");
            self.changes.push_back((extension.to_string(), after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(lines: &mut LineStates) -> Vec<(String, &'static str)> {
        std::iter::from_fn(|| lines.poll_change())
            .map(|(ext, view)| (ext, view.word()))
            .collect()
    }

    #[test]
    fn a_call_to_a_line_goes_idle_ringing_busy_idle_once_each() {
        let mut lines = LineStates::default();
        assert_eq!(lines.view("102"), LineView::Idle(None));
        let (caller, phone) = (LegId::new(1), LegId::new(2));
        lines.ringing("102", phone, caller, "call-2", "101");
        lines.ringing("102", phone, caller, "call-2", "101");
        lines.confirmed(phone);
        lines.confirmed(phone);
        lines.ended(phone);
        lines.ended(phone);
        assert_eq!(
            words(&mut lines),
            [
                ("102".to_string(), "ringing"),
                ("102".to_string(), "busy"),
                ("102".to_string(), "idle"),
            ]
        );
        match lines.view("102") {
            LineView::Idle(Some(last)) => assert_eq!(last.call_id, "call-2"),
            other => panic!("idle with the last call expected, got {other:?}"),
        }
    }

    #[test]
    fn the_line_shows_the_most_busy_call() {
        let mut lines = LineStates::default();
        lines.calling("102", LegId::new(10), "out", "0711");
        lines.ringing("102", LegId::new(12), LegId::new(11), "in", "101");
        // A second call ringing while the user talks changes nothing on the lamp.
        assert_eq!(words(&mut lines), [("102".to_string(), "busy")]);
        match lines.view("102") {
            LineView::InCall(call) => assert_eq!(call.call_id, "out"),
            other => panic!("busy expected, got {other:?}"),
        }
        lines.ended(LegId::new(10));
        assert_eq!(words(&mut lines), [("102".to_string(), "ringing")]);
        lines.ended(LegId::new(12));
        assert_eq!(words(&mut lines), [("102".to_string(), "idle")]);
    }

    #[test]
    fn ringing_at_names_the_oldest_ringing_caller_and_all_its_phones() {
        let mut lines = LineStates::default();
        assert_eq!(lines.ringing_at("101"), None);
        let caller = LegId::new(1);
        lines.ringing("101", LegId::new(2), caller, "a", "0711");
        lines.ringing("101", LegId::new(3), caller, "b", "0711");
        lines.ringing("101", LegId::new(5), LegId::new(4), "c", "0712");
        assert_eq!(
            lines.ringing_at("101"),
            Some((caller, vec![LegId::new(2), LegId::new(3)]))
        );
        lines.confirmed(LegId::new(2));
        lines.ended(LegId::new(3));
        assert_eq!(
            lines.ringing_at("101"),
            Some((LegId::new(4), vec![LegId::new(5)]))
        );
        // A call out from the line itself is never picked up.
        lines.calling("102", LegId::new(6), "d", "101");
        assert_eq!(lines.ringing_at("102"), None);
    }
}
