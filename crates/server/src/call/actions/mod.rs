//! The dialplan's actions, one file each, as steps of a [`CallLogic`].

use dialplan::Action;

use super::logic::{CallLogic, Stop};

mod call_settings;
mod conference;
mod dial;
mod echo;
mod hangup;
mod pickup;
mod play;
mod reach;
mod ring_group;
mod set;
mod voicemail;
mod wait;
mod webrtc_bridge;

/// The dialplan's action names that [`CallLogic::run_actions`] runs (`lobby` is a
/// `conference`); `dialplan check` warns about any other, which a call would meet as 501.
/// Keep in step with the match below.
pub const RUNNABLE_ACTIONS: &[&str] = &[
    "answer",
    "play",
    "echo",
    "wait",
    "dial",
    "forward",
    "conference",
    "lobby",
    "webrtc_bridge",
    "set",
    "hangup",
    "call_forward",
    "dnd",
    "group_login",
    "pickup",
    "voicemail",
    "voicemail_main",
];

impl CallLogic {
    /// Runs `actions` in order; `Err` when the call ended on the way.
    pub(in crate::call) async fn run_actions(&mut self, actions: &[Action]) -> Result<(), Stop> {
        for action in actions {
            tracing::debug!(?action, "action");
            match action {
                Action::Answer => self.answer(),
                Action::Play { sound } => self.play_action(sound).await?,
                Action::Echo => self.echo().await?,
                Action::Wait { seconds } => self.wait(*seconds).await?,
                Action::Dial {
                    target,
                    timeout_s,
                    fax,
                } => self.dial(target, *timeout_s, *fax).await?,
                Action::Forward { target } => self.forward(target).await?,
                Action::Conference { room, pin_prompt } => {
                    self.conference(room.clone(), *pin_prompt).await?;
                }
                Action::WebrtcBridge { room } => self.webrtc_bridge(room).await?,
                Action::SetCallerId { number, name } => self.set_caller_id(number, name),
                Action::Hangup { cause } => return self.hangup(*cause),
                Action::CallForward { when, to, seconds } => {
                    self.call_forward(*when, to, seconds).await?;
                }
                Action::Dnd { switch } => self.dnd(*switch).await?,
                Action::GroupLogin { group, mode } => return self.group_login(group, *mode).await,
                Action::Pickup { target } => self.pickup(target).await?,
                Action::Voicemail { mailbox } => {
                    return self.voicemail(mailbox, self.voicemail_max).await;
                }
                Action::VoicemailMain => match self.diverted_by.clone() {
                    // Reached through a user's forwarding (`user forward 101 no-answer *98`):
                    // the caller is not the mailbox's owner but someone who called them, so
                    // the number means "my mailbox" and takes a message for it.
                    Some(user) => return self.voicemail(&user, self.voicemail_max).await,
                    None => return self.voicemail_main().await,
                },
                other => return self.not_available(other),
            }
        }
        Ok(())
    }
}
