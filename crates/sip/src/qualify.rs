//! Qualifying registered contacts: an OPTIONS request to every contact at an interval, and a
//! contact that leaves one unanswered for too long counts as down until it answers again or
//! registers again. Sans-IO: the owner sends the probes this hands out and reports what came
//! back; time is passed in.
//!
//! Any final response proves the phone is there (RFC 3261 §11: a phone may well answer
//! OPTIONS with 405 or 404). A provisional one proves nothing yet.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often contacts are probed and how long an answer may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualifyConfig {
    /// Between two probes of one contact.
    pub interval: Duration,
    /// A probe unanswered this long marks the contact down.
    pub timeout: Duration,
}

impl Default for QualifyConfig {
    fn default() -> Self {
        // Asterisk's qualify_frequency and Kamailio's usual nathelper ping: 30 s keeps a home
        // router's UDP mapping open too. Phones answer OPTIONS in milliseconds; 5 s leaves
        // room for a busy VPN without leaving a dead phone ringing for long.
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A contact's reachability changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability<K> {
    /// It left a probe unanswered.
    Down(K),
    /// It answered again (or registered again) after being down.
    Up(K),
}

#[derive(Debug, Clone, Copy)]
struct Health {
    reachable: bool,
    next_probe: Instant,
    /// The probe in flight and when it counts as unanswered.
    waiting_until: Option<Instant>,
}

/// Probe schedule and reachability of a set of contacts, keyed by `K`.
#[derive(Debug)]
pub struct Qualifier<K> {
    config: QualifyConfig,
    contacts: HashMap<K, Health>,
}

impl<K: Copy + Eq + Hash> Qualifier<K> {
    /// Qualifies nothing yet.
    pub fn new(config: QualifyConfig) -> Self {
        Self {
            config,
            contacts: HashMap::new(),
        }
    }

    /// A contact registered just now (or was restored): reachable, first probe one interval
    /// from now. A contact already known and down comes back up: its REGISTER got here.
    pub fn track(&mut self, key: K, now: Instant) -> Option<Reachability<K>> {
        let next_probe = now + self.config.interval;
        match self.contacts.get_mut(&key) {
            Some(health) => {
                let was_down = !health.reachable;
                health.reachable = true;
                health.waiting_until = None;
                health.next_probe = next_probe;
                was_down.then_some(Reachability::Up(key))
            }
            None => {
                self.contacts.insert(
                    key,
                    Health {
                        reachable: true,
                        next_probe,
                        waiting_until: None,
                    },
                );
                None
            }
        }
    }

    /// The contact is gone (unregistered or expired).
    pub fn forget(&mut self, key: K) {
        self.contacts.remove(&key);
    }

    /// Whether the contact answered its last probe (unknown contacts count as reachable).
    pub fn is_reachable(&self, key: K) -> bool {
        self.contacts.get(&key).is_none_or(|h| h.reachable)
    }

    /// A contact due for a probe at `now`; the caller sends OPTIONS to it and reports the
    /// answer with [`answered`](Self::answered). Call until `None`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<K> {
        let timeout = self.config.timeout;
        let interval = self.config.interval;
        let (key, health) = self
            .contacts
            .iter_mut()
            .find(|(_, h)| h.waiting_until.is_none() && h.next_probe <= now)?;
        health.waiting_until = Some(now + timeout);
        health.next_probe = now + interval;
        Some(*key)
    }

    /// The contact answered a probe with a final response.
    pub fn answered(&mut self, key: K) -> Option<Reachability<K>> {
        let health = self.contacts.get_mut(&key)?;
        health.waiting_until = None;
        let was_down = !health.reachable;
        health.reachable = true;
        was_down.then_some(Reachability::Up(key))
    }

    /// Marks down every contact whose probe went unanswered until `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Reachability<K>> {
        let mut changes = Vec::new();
        for (key, health) in &mut self.contacts {
            if health.waiting_until.is_some_and(|until| until <= now) {
                health.waiting_until = None;
                if health.reachable {
                    health.reachable = false;
                    changes.push(Reachability::Down(*key));
                }
            }
        }
        changes
    }

    /// When [`poll_probe`](Self::poll_probe) or [`handle_timeout`](Self::handle_timeout)
    /// next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.contacts
            .values()
            .map(|h| h.waiting_until.unwrap_or(h.next_probe))
            .min()
    }

    /// Contacts down now.
    pub fn down_count(&self) -> usize {
        self.contacts.values().filter(|h| !h.reachable).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn qualifier() -> (Qualifier<u32>, Instant) {
        (Qualifier::new(QualifyConfig::default()), Instant::now())
    }

    #[test]
    fn a_contact_is_probed_every_interval_while_it_answers() {
        let (mut q, t0) = qualifier();
        q.track(1, t0);
        assert_eq!(q.next_deadline(), Some(t0 + 30 * SECOND));
        assert_eq!(q.poll_probe(t0 + 29 * SECOND), None);
        assert_eq!(q.poll_probe(t0 + 30 * SECOND), Some(1));
        // One probe in flight at a time.
        assert_eq!(q.poll_probe(t0 + 31 * SECOND), None);
        assert_eq!(q.answered(1), None);
        assert!(q.handle_timeout(t0 + 40 * SECOND).is_empty());
        assert!(q.is_reachable(1));
        assert_eq!(q.next_deadline(), Some(t0 + 60 * SECOND));
        assert_eq!(q.poll_probe(t0 + 60 * SECOND), Some(1));
    }

    #[test]
    fn an_unanswered_probe_marks_the_contact_down_until_it_answers_again() {
        let (mut q, t0) = qualifier();
        q.track(1, t0);
        q.track(2, t0);
        let mut probed = [
            q.poll_probe(t0 + 30 * SECOND),
            q.poll_probe(t0 + 30 * SECOND),
        ];
        probed.sort();
        assert_eq!(probed, [Some(1), Some(2)]);
        q.answered(2);
        assert_eq!(q.next_deadline(), Some(t0 + 35 * SECOND));
        assert!(q.handle_timeout(t0 + 34 * SECOND).is_empty());
        assert_eq!(
            q.handle_timeout(t0 + 35 * SECOND),
            vec![Reachability::Down(1)]
        );
        assert!(!q.is_reachable(1));
        assert!(q.is_reachable(2));
        assert_eq!(q.down_count(), 1);
        // Still probed while down (both are due again, in no particular order); the next
        // answer brings it back.
        let mut due = [
            q.poll_probe(t0 + 60 * SECOND),
            q.poll_probe(t0 + 60 * SECOND),
        ];
        due.sort();
        assert_eq!(due, [Some(1), Some(2)]);
        assert_eq!(q.answered(1), Some(Reachability::Up(1)));
        assert!(q.is_reachable(1));
    }

    #[test]
    fn a_late_answer_after_the_timeout_still_brings_the_contact_back() {
        let (mut q, t0) = qualifier();
        q.track(7, t0);
        q.poll_probe(t0 + 30 * SECOND);
        q.handle_timeout(t0 + 36 * SECOND);
        assert_eq!(q.answered(7), Some(Reachability::Up(7)));
    }

    #[test]
    fn registering_again_brings_a_down_contact_back_and_restarts_its_schedule() {
        let (mut q, t0) = qualifier();
        q.track(3, t0);
        q.poll_probe(t0 + 30 * SECOND);
        q.handle_timeout(t0 + 35 * SECOND);
        assert_eq!(q.track(3, t0 + 40 * SECOND), Some(Reachability::Up(3)));
        assert_eq!(q.next_deadline(), Some(t0 + 70 * SECOND));
    }

    #[test]
    fn forgotten_and_unknown_contacts_are_neither_probed_nor_down() {
        let (mut q, t0) = qualifier();
        q.track(4, t0);
        q.forget(4);
        assert_eq!(q.poll_probe(t0 + 60 * SECOND), None);
        assert_eq!(q.next_deadline(), None);
        assert!(q.is_reachable(4));
        assert_eq!(q.answered(4), None);
    }
}
