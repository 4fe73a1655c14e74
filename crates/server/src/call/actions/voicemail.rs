//! The `voicemail` action (a caller leaves a message: greeting, tone, their words recorded
//! until `#`, silence, the length limit or hang-up) and `voicemail_main` (a user listens to
//! their own mailbox from the phone after keying its PIN: 1 repeats, 7 deletes, 9 or #
//! keeps a message and goes on).
//!
//! The recording itself and storing it happen outside the call (`voicemail.rs` of the
//! server): the call only starts it, stops it, and says goodbye.

use std::time::Duration;

use crate::call::logic::{CallLogic, Event, Stop};
use crate::call::{MailboxOpen, MediaAction, Question, Reply};
use crate::media_worker::MediaEvent;

/// Wrong PINs before a listener is sent away.
const PIN_ATTEMPTS: u32 = 3;
/// How long the menu after a message waits for a key before going on (as 9 would).
const MENU_WAIT: Duration = Duration::from_secs(10);
/// Highest count the shipped digit prompts can say.
const MAX_SPOKEN_COUNT: usize = 20;

/// What a listener chose after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::call) enum AfterMessage {
    Repeat,
    Delete,
    Next,
}

/// The key after a message: 1 repeats, 7 deletes, 9 and # go on (keeping it); other keys
/// are ignored (`None`), as a listener who slips deserves another try.
pub(in crate::call) fn after_message_key(digit: char) -> Option<AfterMessage> {
    match digit {
        '1' => Some(AfterMessage::Repeat),
        '7' => Some(AfterMessage::Delete),
        '9' | '#' => Some(AfterMessage::Next),
        _ => None,
    }
}

impl CallLogic {
    /// Runs `voicemail { mailbox }` with messages up to `max` long.
    pub(super) async fn voicemail(&mut self, mailbox: &str, max: Duration) -> Result<(), Stop> {
        self.answer();
        tracing::info!(%mailbox, "voicemail: taking a message");
        self.play("voicemail-greeting").await?;
        // A key pressed during the greeting only skipped it: it must not end the message.
        self.pending_digits.clear();
        self.play("voicemail-beep").await?;
        self.pending_digits.clear();
        match self
            .io
            .ask(Question::VoicemailRecord {
                mailbox: mailbox.to_owned(),
            })
            .await
        {
            Reply::Done(Ok(())) => {}
            Reply::Done(Err(reason)) => {
                tracing::error!(%mailbox, %reason, "voicemail: recording could not start");
                self.play("recording-failed").await?;
                return Err(Stop::EndedByUs("voicemail failed"));
            }
            other => {
                tracing::error!(%mailbox, ?other, "voicemail: start answered out of turn");
                return Err(Stop::EndedByUs("voicemail failed"));
            }
        }
        let until = self.io.now() + max;
        let ended_by = loop {
            match self.next_event_until(Some(until)).await {
                Ok(None) => break "length limit",
                Ok(Some(Event::Digit('#'))) => break "#",
                Ok(Some(Event::Media(MediaEvent::CallerSilent))) => break "silence",
                Ok(Some(_)) => {}
                // The media session ends with the leg, and with it the recording: the writer
                // keeps what was said.
                Err(Stop::HungUp) => {
                    tracing::info!(%mailbox, "voicemail: caller hung up; message ends");
                    return Err(Stop::EndedByUs("voicemail: message left"));
                }
                Err(stop) => return Err(stop),
            }
        };
        tracing::info!(%mailbox, ended_by, "voicemail: message ends");
        self.media(MediaAction::StopCapture);
        self.play("voicemail-saved").await?;
        self.play("goodbye").await?;
        // Call control hangs up with this reason, which the call record keeps.
        Err(Stop::EndedByUs("voicemail: message left"))
    }

    /// Runs `voicemail_main`: the calling user's own mailbox.
    pub(super) async fn voicemail_main(&mut self) -> Result<(), Stop> {
        self.answer();
        let mut messages = None;
        for _ in 0..PIN_ATTEMPTS {
            self.play("enter-pin").await?;
            let digits = self.collect_digits().await?.unwrap_or_default();
            match self.io.ask(Question::VoicemailOpen { digits }).await {
                Reply::Mailbox(Ok(MailboxOpen::Open(list))) => {
                    messages = Some(list);
                    break;
                }
                Reply::Mailbox(Ok(MailboxOpen::WrongPin)) => self.play("wrong-pin").await?,
                Reply::Mailbox(Ok(MailboxOpen::NoPin)) => {
                    tracing::info!("voicemail: mailbox has no PIN; listening refused");
                    return self
                        .leave_mailbox("voicemail-no-pin", "refused: mailbox has no PIN")
                        .await;
                }
                Reply::Mailbox(Ok(MailboxOpen::NoMailbox)) => {
                    return self
                        .leave_mailbox("voicemail-no-mailbox", "refused: caller has no mailbox")
                        .await;
                }
                Reply::Mailbox(Err(reason)) => {
                    tracing::error!(%reason, "voicemail: mailbox could not be opened");
                    return self
                        .leave_mailbox("service-unavailable", "refused: store unavailable")
                        .await;
                }
                other => {
                    tracing::error!(?other, "voicemail: open answered out of turn");
                    return self
                        .leave_mailbox("service-unavailable", "refused: store unavailable")
                        .await;
                }
            }
        }
        let Some(messages) = messages else {
            return self
                .leave_mailbox("goodbye", "refused: wrong mailbox PIN")
                .await;
        };
        let new = messages.iter().filter(|m| !m.heard).count();
        tracing::info!(messages = messages.len(), new, "voicemail: mailbox opened");
        self.play("voicemail-you-have").await?;
        self.play(&format!("digit-{}", new.min(MAX_SPOKEN_COUNT)))
            .await?;
        self.play("voicemail-new-messages").await?;
        for message in messages {
            self.pending_digits.clear();
            // Marked once it played (or was cut short by a key): one the caller hung up on
            // before it started stays new.
            let mut heard = message.heard;
            loop {
                self.play_file(&message.path).await?;
                if !heard {
                    self.ask_done(Question::VoicemailHeard(message.id)).await;
                    heard = true;
                }
                let choice = self.menu_after_message().await?;
                match choice {
                    AfterMessage::Repeat => continue,
                    AfterMessage::Delete => {
                        self.ask_done(Question::VoicemailDelete(message.id)).await;
                        self.play("voicemail-deleted").await?;
                    }
                    AfterMessage::Next => {}
                }
                break;
            }
        }
        self.play("voicemail-no-more").await?;
        self.play("goodbye").await?;
        Err(Stop::EndedByUs("voicemail: mailbox listened to"))
    }

    /// The menu after a message, until a key chooses (or the wait runs out: next).
    async fn menu_after_message(&mut self) -> Result<AfterMessage, Stop> {
        self.play("voicemail-message-menu").await?;
        let until = self.io.now() + MENU_WAIT;
        loop {
            match self.next_event_until(Some(until)).await? {
                None => return Ok(AfterMessage::Next),
                Some(Event::Digit(digit)) => {
                    if let Some(choice) = after_message_key(digit) {
                        return Ok(choice);
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Plays a stored message to its end (a key cuts it short and is kept for the menu).
    async fn play_file(&mut self, path: &std::path::Path) -> Result<(), Stop> {
        let started = matches!(
            self.io.ask(Question::PlayFile(path.to_path_buf())).await,
            Reply::Started(true)
        );
        if !started {
            tracing::warn!(path = %path.display(), "voicemail: message file cannot be played");
            return Ok(());
        }
        self.until_played().await
    }

    /// Asks a question answered with `Done`; a failure is logged, the listener goes on.
    async fn ask_done(&mut self, question: Question) {
        let what = format!("{question:?}");
        match self.io.ask(question).await {
            Reply::Done(Ok(())) => {}
            other => tracing::error!(question = %what, ?other, "voicemail: store step failed"),
        }
    }

    /// Says why, goodbye, and hangs up.
    async fn leave_mailbox(&mut self, prompt: &str, reason: &'static str) -> Result<(), Stop> {
        self.play(prompt).await?;
        if prompt != "goodbye" {
            self.play("goodbye").await?;
        }
        Err(Stop::EndedByUs(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_after_a_message_repeat_delete_or_go_on() {
        assert_eq!(after_message_key('1'), Some(AfterMessage::Repeat));
        assert_eq!(after_message_key('7'), Some(AfterMessage::Delete));
        assert_eq!(after_message_key('9'), Some(AfterMessage::Next));
        assert_eq!(after_message_key('#'), Some(AfterMessage::Next));
        assert_eq!(after_message_key('5'), None);
        assert_eq!(after_message_key('*'), None);
    }
}
