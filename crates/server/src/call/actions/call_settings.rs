//! The feature codes users key on their phones to change their own settings: call
//! forwarding (`*21*102#`, `#21#`, `*61*`, `*67*`, ...) and do not disturb (`*76`). Each is
//! confirmed by a prompt; the change is stored at once and applies to the next call.

use dialplan::{ForwardWhen, Switch};

use crate::call::logic::{CallLogic, Stop};
use crate::call::{Question, Reply, SettingRefusal};

impl CallLogic {
    /// The `call_forward` action.
    pub(super) async fn call_forward(
        &mut self,
        when: ForwardWhen,
        to: &Option<String>,
        seconds: &Option<String>,
    ) -> Result<(), Stop> {
        self.answer();
        let seconds = match seconds.as_deref().map(str::parse::<u32>) {
            None => None,
            Some(Ok(seconds)) => Some(seconds),
            Some(Err(_)) => {
                tracing::info!(?seconds, "call forwarding: the ring time is not a number");
                return self.play("feature-refused").await;
            }
        };
        let reply = self
            .io
            .ask(Question::SetForward {
                when,
                to: to.clone(),
                seconds,
            })
            .await;
        if let Reply::Switched(Ok(on)) = &reply {
            let target = to.as_deref().filter(|_| *on).unwrap_or("off");
            self.note(format!(
                "{} forwarding set to {target} by phone",
                when.as_str()
            ));
        }
        let prompt = match reply {
            Reply::Switched(Ok(true)) => "forwarding-on",
            Reply::Switched(Ok(false)) => "forwarding-off",
            Reply::Switched(Err(refusal)) => refusal_prompt(&refusal),
            _ => "service-unavailable",
        };
        self.play(prompt).await
    }

    /// The `dnd` action.
    pub(super) async fn dnd(&mut self, switch: Switch) -> Result<(), Stop> {
        self.answer();
        let reply = self.io.ask(Question::SetDnd(switch)).await;
        if let Reply::Switched(Ok(on)) = &reply {
            let state = if *on { "on" } else { "off" };
            self.note(format!("do not disturb set {state} by phone"));
        }
        let prompt = match reply {
            Reply::Switched(Ok(true)) => "dnd-on",
            Reply::Switched(Ok(false)) => "dnd-off",
            Reply::Switched(Err(refusal)) => refusal_prompt(&refusal),
            _ => "service-unavailable",
        };
        self.play(prompt).await
    }
}

fn refusal_prompt(refusal: &SettingRefusal) -> &'static str {
    tracing::info!(%refusal, "setting not changed");
    match refusal {
        SettingRefusal::NotAUser | SettingRefusal::Invalid(_) => "feature-refused",
        SettingRefusal::Store(_) => "service-unavailable",
    }
}
