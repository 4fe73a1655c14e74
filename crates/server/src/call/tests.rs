//! Calls driven by hand: events, replies and time in, outputs checked. No sockets, no
//! runtime, no sleeping.

use std::time::{Duration, Instant};

use dialplan::{Action, DialTarget, Route};

use super::*;
use crate::call_event::Notice;
use crate::conference::RoomTerms;
use crate::media_worker::MediaEvent;

struct Harness {
    call: Call,
    now: Instant,
    /// Answered at once to every `UserSettings` question (tests of forwarding answer it
    /// themselves: `None` here).
    user_settings: Option<Option<store::CallSettings>>,
}

fn route(actions: Vec<Action>) -> Route {
    Route {
        rule_name: "test".into(),
        file: "test.toml".into(),
        line: 1,
        actions,
        hops: 0,
        public: true,
    }
}

fn leg(n: u64) -> LegId {
    LegId::new(n)
}

fn ask(question: Question) -> Output {
    Output::Ask(question)
}

fn sip(action: SipAction) -> Output {
    Output::Sip(action)
}

fn finished(reason: &str) -> Output {
    Output::Finished(reason.to_string())
}

fn play(sound: &str) -> Output {
    ask(Question::Play(sound.to_string()))
}

fn overlay(sound: &str) -> Output {
    ask(Question::Overlay(sound.to_string()))
}

fn cancel(n: u64, reason: &'static str) -> Output {
    sip(SipAction::Cancel {
        leg: leg(n),
        reason,
    })
}

impl Harness {
    /// A call running `actions`, whose users have no forwarding or follow-me.
    fn start(actions: Vec<Action>) -> (Self, Vec<Output>) {
        Self::start_with(actions, Some(None))
    }

    /// A call running `actions` whose `UserSettings` questions the test answers itself.
    fn start_asking_settings(actions: Vec<Action>) -> (Self, Vec<Output>) {
        Self::start_with(actions, None)
    }

    fn start_with(
        actions: Vec<Action>,
        user_settings: Option<Option<store::CallSettings>>,
    ) -> (Self, Vec<Output>) {
        let now = Instant::now();
        let setup = CallSetup {
            route: route(actions),
            require_precreated_rooms: false,
            voicemail_max: Duration::from_secs(120),
            pool_proxy: None,
            tenant: store::DEFAULT_DOMAIN.to_owned(),
        };
        let mut harness = Self {
            call: Call::new(setup, now),
            now,
            user_settings,
        };
        let out = harness.drain();
        (harness, out)
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(output) = self.call.poll_output() {
            match (&output, &self.user_settings) {
                (Output::Ask(Question::UserSettings(_)), Some(settings)) => {
                    let reply = Reply::Settings(settings.clone());
                    self.call.handle_reply(reply, self.now);
                }
                _ => out.push(output),
            }
        }
        out
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.call.handle_input(input, self.now);
        self.drain()
    }

    fn reply(&mut self, reply: Reply) -> Vec<Output> {
        self.call.handle_reply(reply, self.now);
        self.drain()
    }

    fn digits(&mut self, keys: &str) -> Vec<Output> {
        keys.chars()
            .flat_map(|key| self.input(Input::Digit(key)))
            .collect()
    }

    /// Lets `by` pass, waking the call whenever its time comes on the way.
    fn advance(&mut self, by: Duration) -> Vec<Output> {
        let until = self.now + by;
        let mut out = Vec::new();
        while let Some(at) = self.call.poll_timeout().filter(|at| *at <= until) {
            self.now = at;
            self.call.handle_timeout(at);
            out.extend(self.drain());
        }
        self.now = until;
        out
    }

    /// Into room 4711 (not stored, no PIN, the first one there, prompts missing).
    fn in_room() -> Self {
        let (mut h, out) = Harness::start(vec![Action::Conference {
            room: Some("4711".into()),
            pin_prompt: true,
        }]);
        assert_eq!(
            out,
            [
                sip(SipAction::Answer),
                ask(Question::RoomGet("4711".into()))
            ]
        );
        let out = h.reply(Reply::Room(Ok(None)));
        assert_eq!(
            out,
            [ask(Question::Admit {
                room: "4711".into(),
                moderator: false,
                terms: RoomTerms::of(None),
            })]
        );
        let out = h.reply(Reply::Admission(Ok(false)));
        assert_eq!(
            out,
            [Output::Media(MediaAction::JoinRoom {
                room: "4711".into(),
                muted: false
            })]
        );
        let out = h.input(Input::Media(MediaEvent::Joined { participants: 1 }));
        assert_eq!(
            out,
            [
                Output::Room(RoomAction::TellOthers {
                    room: "4711".into(),
                    notice: Notice::Announce("join-tone"),
                }),
                overlay("first-participant"),
            ]
        );
        assert!(h.reply(Reply::Started(false)).is_empty());
        h
    }
}

#[test]
fn a_prompt_plays_to_its_end_then_the_dialplan_ending_hangs_up() {
    let (mut h, out) = Harness::start(vec![Action::Play {
        sound: "welcome".into(),
    }]);
    assert_eq!(out, [sip(SipAction::Answer), play("welcome")]);
    assert!(h.reply(Reply::Started(true)).is_empty());
    assert_eq!(
        h.call.poll_timeout(),
        None,
        "a prompt waits for its end, not a time"
    );
    let out = h.input(Input::Media(MediaEvent::PlayFinished));
    assert_eq!(out, [sip(SipAction::Hangup), finished("dialplan finished")]);
    assert!(h.call.is_over());
}

#[test]
fn a_missing_prompt_is_skipped_and_the_next_action_runs() {
    let (mut h, _) = Harness::start(vec![
        Action::Play {
            sound: "missing".into(),
        },
        Action::Hangup { cause: 486 },
    ]);
    let out = h.reply(Reply::Started(false));
    assert_eq!(out, [sip(SipAction::Hangup), finished("caller hung up")]);
}

#[test]
fn an_unanswered_call_whose_dialplan_ends_is_refused_with_480() {
    let (_, out) = Harness::start(vec![Action::Wait { seconds: 0 }]);
    assert_eq!(
        out,
        [sip(SipAction::Reject(480)), finished("dialplan finished")]
    );
}

#[test]
fn hangup_before_answer_sends_its_cause() {
    let (_, out) = Harness::start(vec![Action::Hangup { cause: 403 }]);
    assert_eq!(
        out,
        [sip(SipAction::Reject(403)), finished("caller hung up")]
    );
}

#[test]
fn actions_that_cannot_run_yet_are_refused_with_501() {
    let (_, out) = Harness::start(vec![Action::Goto {
        number: "100".into(),
    }]);
    assert_eq!(
        out,
        [sip(SipAction::Reject(501)), finished("caller hung up")]
    );
}

#[test]
fn echo_lasts_until_the_caller_hangs_up() {
    let (mut h, out) = Harness::start(vec![Action::Echo, Action::Hangup { cause: 480 }]);
    assert_eq!(
        out,
        [sip(SipAction::Answer), Output::Media(MediaAction::Echo)]
    );
    assert!(h.advance(Duration::from_secs(3600)).is_empty());
    assert!(h.digits("123").is_empty());
    // The caller's BYE ends it: nothing more is sent on the leg.
    assert_eq!(h.input(Input::Hangup), [finished("caller hung up")]);
}

#[test]
fn wait_wakes_at_its_time() {
    let (mut h, out) = Harness::start(vec![
        Action::Answer,
        Action::Wait { seconds: 2 },
        Action::Hangup { cause: 480 },
    ]);
    assert_eq!(out, [sip(SipAction::Answer)]);
    assert_eq!(h.call.poll_timeout(), Some(h.now + Duration::from_secs(2)));
    assert!(h.advance(Duration::from_millis(1999)).is_empty());
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        [sip(SipAction::Hangup), finished("caller hung up")]
    );
}

#[test]
fn a_key_cuts_the_lobby_prompt_short_and_counts_as_the_first_digit() {
    let (mut h, out) = Harness::start(vec![Action::Conference {
        room: None,
        pin_prompt: true,
    }]);
    assert_eq!(out, [sip(SipAction::Answer), play("enter-room")]);
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Digit('4')),
        [Output::Media(MediaAction::Silence)]
    );
    // The prompt's end, reported after the key, must not confuse what follows.
    assert!(h.input(Input::Media(MediaEvent::PlayFinished)).is_empty());
    assert_eq!(h.digits("2#"), [ask(Question::RoomGet("42".into()))]);
}

#[test]
fn the_lobby_asks_three_times_then_says_goodbye() {
    let (mut h, _) = Harness::start(vec![Action::Conference {
        room: None,
        pin_prompt: true,
    }]);
    for attempt in 0..3 {
        assert!(h.reply(Reply::Started(true)).is_empty());
        assert!(h.input(Input::Media(MediaEvent::PlayFinished)).is_empty());
        let out = h.advance(Duration::from_secs(10));
        if attempt < 2 {
            assert_eq!(out, [play("enter-room")], "attempt {attempt}");
        } else {
            assert_eq!(out, [play("goodbye")]);
        }
    }
    assert_eq!(
        h.reply(Reply::Started(false)),
        [sip(SipAction::Hangup), finished("dialplan finished")]
    );
}

#[test]
fn each_key_gives_the_caller_ten_more_seconds() {
    let (mut h, _) = Harness::start(vec![Action::Conference {
        room: None,
        pin_prompt: true,
    }]);
    h.reply(Reply::Started(false));
    assert!(h.advance(Duration::from_secs(9)).is_empty());
    h.digits("1");
    assert!(h.advance(Duration::from_secs(9)).is_empty());
    h.digits("2");
    // Time runs out with digits keyed: they are the room number.
    assert_eq!(
        h.advance(Duration::from_secs(10)),
        [ask(Question::RoomGet("12".into()))]
    );
}

#[test]
fn a_store_that_cannot_say_whether_the_room_has_a_pin_keeps_the_caller_out() {
    let (mut h, _) = Harness::start(vec![Action::Conference {
        room: Some("4711".into()),
        pin_prompt: true,
    }]);
    let out = h.reply(Reply::Room(Err("database is locked".into())));
    assert_eq!(out, [play("service-unavailable")]);
    assert_eq!(h.reply(Reply::Started(false)), [play("goodbye")]);
    let out = h.reply(Reply::Started(false));
    assert_eq!(out, [finished("refused: store unavailable")]);
    // No admission was ever asked for, and no later action runs.
    assert!(h.call.is_over());
}

fn pin_room() -> store::Room {
    store::Room {
        number: "4711".into(),
        has_pin: true,
        has_moderator_pin: false,
        max_participants: 10,
        wait_for_moderator: false,
        created_at_ms: 1,
        owner: None,
    }
}

#[test]
fn three_wrong_pins_end_the_call_without_admission() {
    let (mut h, _) = Harness::start(vec![
        Action::Conference {
            room: Some("4711".into()),
            pin_prompt: true,
        },
        Action::Hangup { cause: 480 },
    ]);
    assert_eq!(
        h.reply(Reply::Room(Ok(Some(pin_room())))),
        [play("enter-pin")]
    );
    for attempt in 1..=3 {
        h.reply(Reply::Started(false));
        assert_eq!(
            h.digits("0000#"),
            [ask(Question::CheckPin {
                room: "4711".into(),
                digits: "0000".into()
            })]
        );
        assert_eq!(
            h.reply(Reply::Pin(Ok(store::PinCheck::Wrong))),
            [play("wrong-pin")]
        );
        let next = if attempt < 3 { "enter-pin" } else { "goodbye" };
        assert_eq!(
            h.reply(Reply::Started(false)),
            [play(next)],
            "attempt {attempt}"
        );
    }
    // Goodbye, then the dialplan's next action (hangup).
    assert_eq!(
        h.reply(Reply::Started(false)),
        [sip(SipAction::Hangup), finished("caller hung up")]
    );
}

#[test]
fn a_pin_check_the_store_cannot_do_keeps_the_caller_out() {
    let (mut h, _) = Harness::start(vec![Action::Conference {
        room: Some("4711".into()),
        pin_prompt: true,
    }]);
    h.reply(Reply::Room(Ok(Some(pin_room()))));
    h.reply(Reply::Started(false));
    h.digits("1234#");
    let out = h.reply(Reply::Pin(Err("disk I/O error".into())));
    assert_eq!(out, [play("service-unavailable")]);
    h.reply(Reply::Started(false));
    assert_eq!(
        h.reply(Reply::Started(false)),
        [finished("refused: store unavailable")]
    );
}

#[test]
fn the_star_menu_takes_its_digit_only_within_three_seconds() {
    let mut h = Harness::in_room();
    // `*` then `6` too late: nothing.
    assert!(h.digits("*").is_empty());
    h.advance(Duration::from_secs(4));
    assert!(h.digits("6").is_empty());
    // `*6` in time: muted, in the mix and in the registry, with a confirmation.
    h.digits("*");
    h.advance(Duration::from_secs(2));
    assert_eq!(
        h.digits("6"),
        [
            Output::Media(MediaAction::SetMuted(true)),
            Output::Room(RoomAction::SetMuted {
                room: "4711".into(),
                muted: true
            }),
            overlay("muted"),
        ]
    );
}

#[test]
fn leaving_the_room_on_hangup_stops_its_recording_when_it_was_the_last_one() {
    let mut h = Harness::in_room();
    assert_eq!(
        h.input(Input::Hangup),
        [
            Output::Media(MediaAction::LeaveRoom),
            ask(Question::Leave("4711".into()))
        ]
    );
    assert_eq!(
        h.reply(Reply::Flag(true)),
        [
            Output::Media(MediaAction::StopRecording {
                room: "4711".into()
            }),
            Output::Room(RoomAction::TellOthers {
                room: "4711".into(),
                notice: Notice::Announce("leave-tone"),
            }),
            finished("caller hung up"),
        ]
    );
}

#[test]
fn an_admin_closing_the_room_ends_the_call_with_that_reason() {
    let mut h = Harness::in_room();
    assert_eq!(
        h.input(Input::Notice(Notice::Closed)),
        [overlay("conference-ended")]
    );
    h.reply(Reply::Started(true));
    let out = h.input(Input::Media(MediaEvent::OverlayFinished));
    assert_eq!(out[0], Output::Media(MediaAction::LeaveRoom));
    assert_eq!(
        h.reply(Reply::Flag(false)),
        [
            Output::Room(RoomAction::TellOthers {
                room: "4711".into(),
                notice: Notice::Announce("leave-tone"),
            }),
            finished("room closed by an admin"),
        ]
    );
    assert!(h.call.is_over());
}

fn dial_user() -> Vec<Action> {
    vec![
        Action::Dial {
            target: DialTarget::User("101".into()),
            timeout_s: 20,
            fax: false,
        },
        Action::Play {
            sound: "not-reachable".into(),
        },
    ]
}

fn place_101() -> Output {
    ask(Question::Place {
        target: DialTarget::User("101".into()),
        fax: false,
        caller_id: CallerId::default(),
    })
}

#[test]
fn dial_connects_the_first_answer_cancels_the_others_and_passes_keys_on() {
    let (mut h, out) = Harness::start(dial_user());
    assert_eq!(out, [place_101()]);
    assert!(
        h.reply(Reply::Placed {
            legs: vec![leg(2), leg(3)],
            unplaced: 0,
            fax: false,
        })
        .is_empty()
    );
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ringing(leg(2)))),
        [sip(SipAction::Ring)]
    );
    // Keys pressed while it rings wait for the callee.
    assert!(h.digits("5").is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(3)))),
        [
            cancel(2, "answered elsewhere"),
            sip(SipAction::Connect(leg(3))),
            Output::Media(MediaAction::SendDtmf {
                to: leg(3),
                digit: '5'
            }),
        ]
    );
    // The ring time no longer matters once connected.
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    // The cancelled phone's 2xx crossed our CANCEL: it is hung up, not connected.
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(2)))),
        [cancel(2, "answered too late")]
    );
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(3),
            status: 200
        })),
        [finished("callee hung up")]
    );
}

#[test]
fn dial_ring_time_cancels_everyone_and_runs_the_next_action() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2), leg(3)],
        unplaced: 0,
        fax: false,
    });
    assert!(h.advance(Duration::from_secs(19)).is_empty());
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [
            cancel(2, "no answer in time"),
            cancel(3, "no answer in time"),
            sip(SipAction::Answer),
            play("not-reachable"),
        ]
    );
    // A phone answering after that is hung up.
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(3)))),
        [cancel(3, "answered too late")]
    );
}

#[test]
fn an_answer_that_came_before_the_ring_time_ran_out_wins() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    });
    // The 200 and the deadline are handled in the same instant: the 200 came first.
    h.now += Duration::from_secs(21);
    h.call
        .handle_input(Input::Callee(CalleeEvent::Answered(leg(2))), h.now);
    assert_eq!(h.drain(), [sip(SipAction::Connect(leg(2)))]);
}

#[test]
fn dial_to_nobody_goes_on_at_once() {
    let (mut h, _) = Harness::start(dial_user());
    let out = h.reply(Reply::Placed {
        legs: vec![],
        unplaced: 0,
        fax: false,
    });
    assert_eq!(out, [sip(SipAction::Answer), play("not-reachable")]);
}

#[test]
fn busy_everywhere_goes_on_with_the_next_action() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2), leg(3)],
        unplaced: 0,
        fax: false,
    });
    assert!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(2),
            status: 486
        }))
        .is_empty(),
        "the other phone still rings"
    );
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(3),
            status: 480
        })),
        [sip(SipAction::Answer), play("not-reachable")]
    );
}

#[test]
fn the_caller_hanging_up_while_it_rings_ends_the_call() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    });
    // Call control hangs up the placed legs as the caller's leg ends.
    assert_eq!(h.input(Input::Hangup), [finished("caller hung up")]);
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn a_barred_number_is_announced_as_early_media_and_refused_with_403() {
    let (mut h, _) = Harness::start(dial_user());
    assert_eq!(
        h.reply(Reply::Barred),
        [sip(SipAction::EarlyMedia), play("number-barred")]
    );
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [
            sip(SipAction::Refuse {
                status: 403,
                reason: "refused: number barred"
            }),
            finished("refused: number barred"),
        ]
    );
}

#[test]
fn a_call_out_over_the_limits_is_refused_without_ringing_anyone() {
    for (reply, status, reason) in [
        (
            Reply::UserLimit,
            403,
            "refused: too many calls out for this user",
        ),
        (Reply::LinesBusy, 503, "refused: all outside lines busy"),
    ] {
        let (mut h, _) = Harness::start(dial_user());
        assert_eq!(
            h.reply(reply),
            [sip(SipAction::Refuse { status, reason }), finished(reason)],
            "{status}"
        );
    }
}

#[test]
fn a_call_out_over_the_cost_guards_limit_hears_try_again_later_and_is_refused() {
    for (budget, status, reason) in [
        (
            trunks::Budget::User,
            403,
            "refused: the user's cost limit for the hour is reached",
        ),
        (
            trunks::Budget::Total,
            503,
            "refused: the cost limit for the hour is reached",
        ),
    ] {
        let (mut h, _) = Harness::start(dial_user());
        assert_eq!(
            h.reply(Reply::OverBudget(budget)),
            [sip(SipAction::EarlyMedia), play("service-unavailable")],
            "{status}"
        );
        h.reply(Reply::Started(true));
        assert_eq!(
            h.input(Input::Media(MediaEvent::PlayFinished)),
            [sip(SipAction::Refuse { status, reason }), finished(reason)],
            "{status}"
        );
    }
}

#[test]
fn forward_places_the_call_as_forwarded_and_connects_whoever_answers() {
    let target = DialTarget::Trunk {
        trunk: "carrier".into(),
        number: "0711987654".into(),
        privacy: false,
    };
    let (mut h, out) = Harness::start(vec![Action::Forward {
        target: target.clone(),
    }]);
    assert_eq!(
        out,
        [ask(Question::Forward {
            target,
            caller_id: CallerId::default(),
        })]
    );
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    });
    // Forwarded calls ring longer than a dial's usual 20 s: the caller decides.
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(2)))),
        [sip(SipAction::Connect(leg(2)))]
    );
    assert_eq!(h.input(Input::Hangup), [finished("caller hung up")]);
}

#[test]
fn a_forward_nobody_answers_ends_the_call_with_480() {
    let (mut h, _) = Harness::start(vec![Action::Forward {
        target: DialTarget::User("101".into()),
    }]);
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    });
    assert_eq!(
        h.advance(Duration::from_secs(120)),
        [
            cancel(2, "no answer in time"),
            sip(SipAction::Reject(480)),
            finished("forwarded: no answer"),
        ]
    );
}

fn dial_fax() -> Vec<Action> {
    vec![
        Action::Dial {
            target: DialTarget::User("150".into()),
            timeout_s: 20,
            fax: true,
        },
        Action::Play {
            sound: "not-reachable".into(),
        },
    ]
}

#[test]
fn a_fax_dial_asks_call_control_to_place_a_fax_call() {
    let (_, out) = Harness::start(dial_fax());
    assert_eq!(
        out,
        [ask(Question::Place {
            target: DialTarget::User("150".into()),
            fax: true,
            caller_id: CallerId::default(),
        })]
    );
}

#[test]
fn a_fax_call_every_callee_refuses_with_488_is_refused_with_488_not_handed_on() {
    let (mut h, _) = Harness::start(dial_fax());
    h.reply(Reply::Placed {
        legs: vec![leg(2), leg(3)],
        unplaced: 0,
        fax: true,
    });
    assert!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(2),
            status: 488
        }))
        .is_empty()
    );
    let reason = "refused: fax callee cannot take the caller's G.711";
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(3),
            status: 488
        })),
        [
            sip(SipAction::Refuse {
                status: 488,
                reason
            }),
            finished(reason)
        ],
        "no `not-reachable` prompt: the next action could only transcode"
    );
}

#[test]
fn a_fax_call_nobody_answers_goes_on_with_the_next_action_as_any_dial() {
    let (mut h, _) = Harness::start(dial_fax());
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: true,
    });
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(2),
            status: 486
        })),
        [sip(SipAction::Answer), play("not-reachable")]
    );
}

#[test]
fn a_voice_call_a_callee_refuses_with_488_goes_on_with_the_next_action() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    });
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(2),
            status: 488
        })),
        [sip(SipAction::Answer), play("not-reachable")]
    );
}

#[test]
fn a_fax_call_from_a_caller_without_g711_is_refused_with_488_before_ringing() {
    let (mut h, _) = Harness::start(dial_fax());
    let reason = "refused: fax call without G.711";
    assert_eq!(
        h.reply(Reply::NoFaxCodec),
        [
            sip(SipAction::Refuse {
                status: 488,
                reason
            }),
            finished(reason)
        ]
    );
}

#[test]
fn set_gives_the_calls_placed_afterwards_the_rules_caller_id_and_refuses_what_is_no_number() {
    let target = DialTarget::User("101".into());
    let dial = Action::Dial {
        target: target.clone(),
        timeout_s: 20,
        fax: false,
    };
    let (_, out) = Harness::start(vec![
        Action::SetCallerId {
            number: Some("sip:evil@example.org".into()),
            name: Some("Sozial\r\namt".into()),
        },
        Action::SetCallerId {
            number: Some("+49 711 1234-50".into()),
            name: None,
        },
        dial,
    ]);
    assert_eq!(
        out,
        [ask(Question::Place {
            target,
            fax: false,
            caller_id: CallerId {
                number: Some("+49711123450".into()),
                name: Some("Sozialamt".into()),
            },
        })]
    );
}

fn dial_101_then_prompt() -> Vec<Action> {
    vec![
        Action::Dial {
            target: DialTarget::User("101".into()),
            timeout_s: 30,
            fax: false,
        },
        Action::Play {
            sound: "after-dial".into(),
        },
    ]
}

fn route_for(number: &str, user: &str) -> Output {
    ask(Question::RouteFor {
        number: number.into(),
        user: user.into(),
    })
}

fn route_reply(actions: Vec<Action>) -> Reply {
    Reply::Route(Some(Box::new(route(actions))))
}

fn place_for(extension: &str, user: &str, network: Option<&str>) -> Output {
    ask(Question::PlaceFor {
        target: DialTarget::User(extension.into()),
        caller_id: CallerId::default(),
        user: user.into(),
        network: network.map(|n| n.parse().unwrap()),
    })
}

fn placed(legs: &[u64]) -> Reply {
    Reply::Placed {
        legs: legs.iter().map(|n| leg(*n)).collect(),
        unplaced: 0,
        fax: false,
    }
}

fn note(what: &str) -> Output {
    Output::Note(what.into())
}

fn settings(change: impl FnOnce(&mut store::CallSettings)) -> Reply {
    let mut settings = store::CallSettings::default();
    change(&mut settings);
    Reply::Settings(Some(settings))
}

#[test]
fn forwarding_always_routes_the_target_as_the_users_call_and_rings_it_on_their_behalf() {
    let (mut h, out) = Harness::start_asking_settings(dial_101_then_prompt());
    assert_eq!(out, [ask(Question::UserSettings("101".into()))]);
    let out = h.reply(settings(|s| s.forward_always = Some("102".into())));
    assert_eq!(out, [route_for("102", "101")]);
    let out = h.reply(route_reply(vec![Action::Dial {
        target: DialTarget::User("102".into()),
        timeout_s: 20,
        fax: false,
    }]));
    assert_eq!(
        out,
        [
            note("forwarded by 101 (always) to 102"),
            ask(Question::UserSettings("102".into()))
        ]
    );
    // 102 has no settings: its phones ring, as a call diverted by 101.
    assert_eq!(
        h.reply(Reply::Settings(None)),
        [place_for("102", "101", None)]
    );
    h.reply(placed(&[7]));
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(7)))),
        [sip(SipAction::Connect(leg(7)))]
    );
}

#[test]
fn a_forwarding_loop_is_told_to_the_caller_once_and_ends_the_call_with_482() {
    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    h.reply(settings(|s| s.forward_always = Some("102".into())));
    h.reply(route_reply(vec![Action::Dial {
        target: DialTarget::User("102".into()),
        timeout_s: 20,
        fax: false,
    }]));
    let out = h.reply(settings(|s| s.forward_always = Some("101".into())));
    assert_eq!(out, [route_for("101", "102")]);
    // 101 again: nothing more is rung, asked or placed.
    let out = h.reply(route_reply(vec![Action::Dial {
        target: DialTarget::User("101".into()),
        timeout_s: 20,
        fax: false,
    }]));
    assert_eq!(
        out,
        [
            note("forwarded by 102 (always) to 101"),
            sip(SipAction::EarlyMedia),
            play("forwarding-loop")
        ]
    );
    h.reply(Reply::Started(true));
    let reason = "call forwarding loop";
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [
            sip(SipAction::Refuse {
                status: 482,
                reason
            }),
            finished(reason)
        ]
    );
}

#[test]
fn do_not_disturb_is_busy_without_ringing_and_the_busy_forwarding_takes_it() {
    let (mut h, _) = Harness::start_asking_settings(vec![Action::Dial {
        target: DialTarget::User("101".into()),
        timeout_s: 30,
        fax: false,
    }]);
    // Busy, nothing rung: a caller left unanswered hears busy.
    assert_eq!(
        h.reply(settings(|s| s.dnd = true)),
        [
            note("101 in do not disturb"),
            sip(SipAction::Reject(486)),
            finished("dialplan finished")
        ]
    );

    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    let out = h.reply(settings(|s| {
        s.dnd = true;
        s.forward_busy = Some("800".into());
    }));
    assert_eq!(
        out,
        [note("101 in do not disturb"), route_for("800", "101")]
    );
}

#[test]
fn a_busy_phone_takes_the_busy_forwarding_and_an_unanswered_one_the_no_answer_forwarding_in_its_time()
 {
    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    h.reply(settings(|s| s.forward_busy = Some("102".into())));
    h.reply(placed(&[2]));
    let out = h.input(Input::Callee(CalleeEvent::Ended {
        leg: leg(2),
        status: 486,
    }));
    assert_eq!(out, [route_for("102", "101")]);

    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    h.reply(settings(|s| {
        s.forward_no_answer = Some("0711123456".into());
        s.no_answer_seconds = 12;
    }));
    h.reply(placed(&[2]));
    // The user's 12 s, not the rule's 30 s.
    assert!(h.advance(Duration::from_secs(11)).is_empty());
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [
            cancel(2, "no answer in time"),
            route_for("0711123456", "101")
        ]
    );
    // No rule takes the number: not forwarded, the rule goes on.
    assert_eq!(
        h.reply(Reply::Route(None)),
        [sip(SipAction::Answer), play("after-dial")]
    );
}

#[test]
fn follow_me_rings_each_step_for_its_time_with_its_own_phones_by_network() {
    let steps: Vec<store::FollowMeStep> = ["101@192.168.10.0/24:15", "101@10.98.0.0/16+0171123:20"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    let out = h.reply(settings(|s| s.follow_me = steps.clone()));
    assert_eq!(
        out,
        [
            note("follow-me step 1 of 101"),
            place_for("101", "101", Some("192.168.10.0/24"))
        ]
    );
    assert!(h.reply(placed(&[2])).is_empty());
    assert!(h.advance(Duration::from_secs(14)).is_empty());
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(
        out,
        [
            cancel(2, "no answer in time"),
            note("follow-me step 2 of 101"),
            place_for("101", "101", Some("10.98.0.0/16"))
        ]
    );
    assert_eq!(h.reply(placed(&[3])), [route_for("0171123", "101")]);
    let trunk = DialTarget::Trunk {
        trunk: "carrier".into(),
        number: "0171123".into(),
        privacy: false,
    };
    let out = h.reply(route_reply(vec![Action::Dial {
        target: trunk.clone(),
        timeout_s: 30,
        fax: false,
    }]));
    assert_eq!(
        out,
        [ask(Question::PlaceFor {
            target: trunk,
            caller_id: CallerId::default(),
            user: "101".into(),
            network: None,
        })]
    );
    assert!(h.reply(placed(&[4])).is_empty());
    // The home phone answers: the mobile stops ringing.
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(3)))),
        [
            cancel(4, "answered elsewhere"),
            sip(SipAction::Connect(leg(3)))
        ]
    );
}

#[test]
fn a_transferred_call_goes_on_with_the_new_party_until_it_hangs_up() {
    let (mut h, out) = Harness::start(dial_user());
    assert_eq!(out, [place_101()]);
    let placed = Reply::Placed {
        legs: vec![leg(2)],
        unplaced: 0,
        fax: false,
    };
    assert!(h.reply(placed).is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(2)))),
        [sip(SipAction::Connect(leg(2)))]
    );
    // 101 transfers the caller to leg 5, which answered and is connected by call control.
    let transferred = CalleeEvent::Transferred {
        old: leg(2),
        new: leg(5),
    };
    assert!(h.input(Input::Callee(transferred)).is_empty());
    // The transferor hanging up no longer ends the call; the caller's keys reach leg 5.
    let gone = CalleeEvent::Ended {
        leg: leg(2),
        status: 200,
    };
    assert!(h.input(Input::Callee(gone)).is_empty());
    assert_eq!(
        h.digits("7"),
        [Output::Media(MediaAction::SendDtmf {
            to: leg(5),
            digit: '7'
        })]
    );
    let new_gone = CalleeEvent::Ended {
        leg: leg(5),
        status: 200,
    };
    assert_eq!(
        h.input(Input::Callee(new_gone)),
        [finished("callee hung up")]
    );
}

#[test]
fn a_ringing_call_picked_up_elsewhere_cancels_its_phones_and_talks_with_the_picker() {
    let (mut h, _) = Harness::start(dial_user());
    h.reply(Reply::Placed {
        legs: vec![leg(2), leg(3)],
        unplaced: 0,
        fax: false,
    });
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::PickedUp { by: leg(9) })),
        [
            cancel(2, "picked up elsewhere"),
            cancel(3, "picked up elsewhere"),
        ]
    );
    // The ring time no longer matters; the picker's keys and hangup do.
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    assert_eq!(
        h.digits("7"),
        [Output::Media(MediaAction::SendDtmf {
            to: leg(9),
            digit: '7'
        })]
    );
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(9),
            status: 200
        })),
        [finished("callee hung up")]
    );
}

fn pickup(target: dialplan::PickupTarget) -> Vec<Action> {
    vec![Action::Pickup { target }]
}

#[test]
fn a_pickup_that_takes_a_call_talks_until_the_other_caller_hangs_up() {
    let target = dialplan::PickupTarget::Extension("102".into());
    let (mut h, out) = Harness::start(pickup(target.clone()));
    assert_eq!(out, [ask(Question::Pickup(target))]);
    assert!(h.reply(Reply::PickedUp(Ok(leg(4)))).is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(4),
            status: 200
        })),
        [finished("callee hung up")]
    );
}

#[test]
fn a_pickup_with_nothing_ringing_is_announced_and_refused_with_480() {
    let (mut h, out) = Harness::start(pickup(dialplan::PickupTarget::Group));
    assert_eq!(out, [ask(Question::Pickup(dialplan::PickupTarget::Group))]);
    assert_eq!(
        h.reply(Reply::PickedUp(Err(PickupRefusal::NothingRinging))),
        [sip(SipAction::EarlyMedia), play("nothing-to-pick-up")]
    );
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [
            sip(SipAction::Refuse {
                status: 480,
                reason: "pickup: nothing ringing"
            }),
            finished("pickup: nothing ringing"),
        ]
    );
}

#[test]
fn a_pickup_by_a_caller_who_is_not_a_user_is_refused_with_403() {
    let (mut h, _) = Harness::start(pickup(dialplan::PickupTarget::Group));
    assert_eq!(
        h.reply(Reply::PickedUp(Err(PickupRefusal::NotIdentified))),
        [
            sip(SipAction::Refuse {
                status: 403,
                reason: "pickup refused: caller not identified"
            }),
            finished("pickup refused: caller not identified"),
        ]
    );
}

fn dial_group(timeout_s: u32) -> Vec<Action> {
    vec![
        Action::Dial {
            target: DialTarget::Group("service".into()),
            timeout_s,
            fax: false,
        },
        Action::Play {
            sound: "not-reachable".into(),
        },
    ]
}

fn member_facts(extension: &str) -> MemberFacts {
    MemberFacts::free(extension)
}

fn group_facts(strategy: dialplan::RingStrategy, members: Vec<MemberFacts>) -> Reply {
    Reply::RingGroup(Some(GroupFacts {
        group: dialplan::RingGroup {
            members: members.iter().map(|m| m.extension.clone()).collect(),
            strategy,
            ring_s: 15,
            timeout_s: 40,
            respect_dnd: true,
            respect_forwarding: true,
        },
        members,
        last_answered: None,
    }))
}

fn place_user(extension: &str) -> Output {
    ask(Question::Place {
        target: DialTarget::User(extension.into()),
        fax: false,
        caller_id: CallerId::default(),
    })
}

/// Starts a group `dial` and answers its questions up to the first member placed.
fn group_ringing(
    strategy: dialplan::RingStrategy,
    members: Vec<MemberFacts>,
) -> (Harness, Vec<Output>) {
    let (mut h, out) = Harness::start(dial_group(40));
    assert_eq!(out, [ask(Question::GroupLoggedOut("service".into()))]);
    assert_eq!(
        h.reply(Reply::Members(Ok(vec!["104".into()]))),
        [ask(Question::RingGroup {
            group: "service".into(),
            logged_out: vec!["104".into()],
        })]
    );
    let out = h.reply(group_facts(strategy, members));
    (h, out)
}

#[test]
fn hunt_group_skips_dnd_and_busy_then_a_busy_answer_hands_on_and_the_ring_time_runs_out() {
    let (mut h, out) = group_ringing(
        dialplan::RingStrategy::Hunt,
        vec![
            MemberFacts {
                dnd: true,
                ..member_facts("101")
            },
            MemberFacts {
                busy: true,
                ..member_facts("102")
            },
            member_facts("103"),
            member_facts("105"),
            member_facts("106"),
        ],
    );
    // 101 (do not disturb) and 102 (in a call) are skipped: 103 rings first.
    assert_eq!(out, [place_user("103")]);
    assert!(h.reply(placed(&[2])).is_empty());
    // 103's phone answers busy (486): 105 rings at once.
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(2),
            status: 486
        })),
        [place_user("105")]
    );
    assert!(h.reply(placed(&[3])).is_empty());
    // 105 rings its 15 s, then 106 gets the rest of the group's 40 s.
    assert!(h.advance(Duration::from_secs(14)).is_empty());
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [cancel(3, "no answer in time"), place_user("106")]
    );
    assert!(h.reply(placed(&[4])).is_empty());
    assert!(h.advance(Duration::from_secs(14)).is_empty());
    // Time is left after everyone's turn: from the first free member again.
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [cancel(4, "no answer in time"), place_user("103")]
    );
    assert!(h.reply(placed(&[5])).is_empty());
    assert!(h.advance(Duration::from_secs(9)).is_empty());
    // The group's 40 s are up: the fallback (the rule's next action) runs.
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [
            cancel(5, "no answer in time"),
            sip(SipAction::Answer),
            play("not-reachable"),
        ]
    );
}

/// A hunt group's call asking members' settings itself, up to the first member's turn.
fn hunt_group_asking_settings(respect_forwarding: bool) -> (Harness, Vec<Output>) {
    let (mut h, out) = Harness::start_asking_settings(dial_group(40));
    assert_eq!(out, [ask(Question::GroupLoggedOut("service".into()))]);
    h.reply(Reply::Members(Ok(Vec::new())));
    let Reply::RingGroup(Some(mut facts)) = group_facts(
        dialplan::RingStrategy::Hunt,
        vec![member_facts("101"), member_facts("102")],
    ) else {
        unreachable!("group_facts gives a ring group");
    };
    facts.group.respect_forwarding = respect_forwarding;
    let out = h.reply(Reply::RingGroup(Some(facts)));
    (h, out)
}

#[test]
fn a_hunt_group_respecting_forwarding_sends_a_members_turn_where_they_forwarded_it() {
    let (mut h, out) = hunt_group_asking_settings(true);
    assert_eq!(out, [ask(Question::UserSettings("101".into()))]);
    // 101 forwards every call to 107: the number is routed as 101's call. That route's own
    // ending (its hangup) is not run: the group goes on with its next member.
    let out = h.reply(settings(|s| s.forward_always = Some("107".into())));
    assert_eq!(out, [route_for("107", "101")]);
    let out = h.reply(route_reply(vec![
        Action::Dial {
            target: DialTarget::User("107".into()),
            timeout_s: 20,
            fax: false,
        },
        Action::Hangup { cause: 486 },
    ]));
    assert_eq!(
        out,
        [
            note("forwarded by 101 (always) to 107"),
            ask(Question::UserSettings("107".into()))
        ]
    );
    assert_eq!(
        h.reply(Reply::Settings(None)),
        [place_for("107", "101", None)]
    );
    assert!(h.reply(placed(&[2])).is_empty());
    // Nobody answers at 107 within the forwarded route's 20 s: 102's turn.
    assert!(h.advance(Duration::from_secs(19)).is_empty());
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [
            cancel(2, "no answer in time"),
            ask(Question::UserSettings("102".into()))
        ]
    );
    // 102 has follow-me off and no forwarding: their own phones ring for their turn.
    assert_eq!(h.reply(Reply::Settings(None)), [place_user("102")]);
    assert!(h.reply(placed(&[3])).is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(3)))),
        [
            sip(SipAction::Connect(leg(3))),
            ask(Question::GroupAnswered {
                group: "service".into(),
                leg: leg(3),
                member: Some("102".into()),
            }),
        ]
    );
}

#[test]
fn a_members_forwarding_is_followed_again_in_the_next_round_and_a_loop_only_skips_them() {
    let (mut h, out) = Harness::start_asking_settings(dial_group(40));
    assert_eq!(out, [ask(Question::GroupLoggedOut("service".into()))]);
    h.reply(Reply::Members(Ok(Vec::new())));
    let out = h.reply(group_facts(
        dialplan::RingStrategy::Hunt,
        vec![member_facts("101")],
    ));
    assert_eq!(out, [ask(Question::UserSettings("101".into()))]);
    h.reply(settings(|s| s.forward_always = Some("107".into())));
    h.reply(route_reply(vec![Action::Dial {
        target: DialTarget::User("107".into()),
        timeout_s: 10,
        fax: false,
    }]));
    assert_eq!(
        h.reply(Reply::Settings(None)),
        [place_for("107", "101", None)]
    );
    assert!(h.reply(placed(&[2])).is_empty());
    // Nobody at 107: the next round is 101's turn again, followed afresh (no loop).
    assert_eq!(
        h.advance(Duration::from_secs(10)),
        [
            cancel(2, "no answer in time"),
            ask(Question::UserSettings("101".into()))
        ]
    );
    assert_eq!(
        h.reply(settings(|s| s.forward_always = Some("107".into()))),
        [route_for("107", "101")]
    );
    // Now 107's number leads back to 101: a loop. Only 101 is unreachable, the call does not
    // end with 482; nobody else is left, so the group's fallback runs.
    assert_eq!(
        h.reply(route_reply(vec![Action::Dial {
            target: DialTarget::User("101".into()),
            timeout_s: 10,
            fax: false,
        }])),
        [
            note("forwarded by 101 (always) to 107"),
            sip(SipAction::Answer),
            play("not-reachable")
        ]
    );
}

#[test]
fn a_hunt_group_ignoring_forwarding_rings_the_members_phones_without_asking_their_settings() {
    let (mut h, out) = hunt_group_asking_settings(false);
    assert_eq!(out, [place_user("101")]);
    assert!(h.reply(placed(&[2])).is_empty());
    assert_eq!(
        h.advance(Duration::from_secs(15)),
        [cancel(2, "no answer in time"), place_user("102")]
    );
}

#[test]
fn ring_all_group_places_every_free_member_at_once_and_reports_who_answered() {
    let (mut h, out) = group_ringing(
        dialplan::RingStrategy::All,
        vec![member_facts("101"), member_facts("102")],
    );
    assert_eq!(
        out,
        [ask(Question::PlaceMembers {
            members: vec!["101".into(), "102".into()],
            fax: false,
            caller_id: CallerId::default(),
        })]
    );
    h.reply(Reply::Placed {
        legs: vec![leg(2), leg(3)],
        unplaced: 0,
        fax: false,
    });
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Answered(leg(3)))),
        [
            cancel(2, "answered elsewhere"),
            sip(SipAction::Connect(leg(3))),
            ask(Question::GroupAnswered {
                group: "service".into(),
                leg: leg(3),
                member: None,
            }),
        ]
    );
    assert!(h.reply(Reply::Done(Ok(()))).is_empty());
    assert_eq!(
        h.input(Input::Callee(CalleeEvent::Ended {
            leg: leg(3),
            status: 200
        })),
        [finished("callee hung up")]
    );
}

#[test]
fn a_group_with_every_member_skipped_goes_to_the_fallback_at_once() {
    let (_, out) = group_ringing(
        dialplan::RingStrategy::RoundRobin,
        vec![MemberFacts {
            busy: true,
            ..member_facts("101")
        }],
    );
    assert_eq!(out, [sip(SipAction::Answer), play("not-reachable")]);
}

#[test]
fn group_login_confirms_with_a_prompt_and_hangs_up() {
    let (mut h, out) = Harness::start(vec![Action::GroupLogin {
        group: None,
        mode: dialplan::GroupLoginMode::Toggle,
    }]);
    assert_eq!(
        out,
        [ask(Question::GroupLogin {
            group: None,
            mode: dialplan::GroupLoginMode::Toggle,
        })]
    );
    assert_eq!(
        h.reply(Reply::GroupLogin(Ok(false))),
        [sip(SipAction::Answer), play("group-logged-out")]
    );
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [
            sip(SipAction::Hangup),
            finished("ring group login: logged out")
        ]
    );
    // A caller who is no user is refused without hearing anything.
    let (mut h, _) = Harness::start(vec![Action::GroupLogin {
        group: None,
        mode: dialplan::GroupLoginMode::In,
    }]);
    assert_eq!(
        h.reply(Reply::GroupLogin(Err(GroupLoginRefusal::NotAUser))),
        [
            sip(SipAction::Refuse {
                status: 403,
                reason: "ring group login: caller is not a user"
            }),
            finished("ring group login: caller is not a user")
        ]
    );
}

#[test]
fn a_no_answer_or_busy_forwarding_to_star98_takes_a_message_for_the_forwarding_user() {
    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    h.reply(settings(|s| {
        s.forward_no_answer = Some("*98".into());
        s.no_answer_seconds = 5;
    }));
    h.reply(placed(&[2]));
    assert_eq!(
        h.advance(Duration::from_secs(5)),
        [cancel(2, "no answer in time"), route_for("*98", "101")]
    );
    // The shipped *98 rule: for 101 dialling it, listening; for a caller forwarded by 101,
    // a message for 101's mailbox (not the caller's: they may have none, or be someone else).
    assert_eq!(
        h.reply(route_reply(vec![Action::VoicemailMain])),
        [
            note("forwarded by 101 (no-answer) to *98"),
            sip(SipAction::Answer),
            play("voicemail-greeting")
        ]
    );
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [play("voicemail-beep")]
    );
    h.reply(Reply::Started(true));
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [ask(Question::VoicemailRecord {
            mailbox: "101".into()
        })]
    );
    assert_eq!(h.reply(Reply::Done(Ok(()))), []);
    // The message ends the call: the rule's own next action (the prompt) does not run.
    assert_eq!(
        h.input(Input::Hangup),
        [finished("voicemail: message left")]
    );

    // Do not disturb with the busy forwarding to *98: no phone rings, the message is 101's.
    let (mut h, _) = Harness::start_asking_settings(dial_101_then_prompt());
    assert_eq!(
        h.reply(settings(|s| {
            s.dnd = true;
            s.forward_busy = Some("*98".into());
        })),
        [note("101 in do not disturb"), route_for("*98", "101")]
    );
    assert_eq!(
        h.reply(route_reply(vec![Action::VoicemailMain])),
        [
            note("forwarded by 101 (busy) to *98"),
            sip(SipAction::Answer),
            play("voicemail-greeting")
        ]
    );
}

fn voicemail_for_101() -> Vec<Action> {
    vec![Action::Voicemail {
        mailbox: "101".into(),
    }]
}

/// Through greeting and tone to the running recording.
fn recording_message() -> Harness {
    let (mut h, out) = Harness::start(voicemail_for_101());
    assert_eq!(out, [sip(SipAction::Answer), play("voicemail-greeting")]);
    assert_eq!(h.reply(Reply::Started(true)), []);
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [play("voicemail-beep")]
    );
    assert_eq!(h.reply(Reply::Started(true)), []);
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [ask(Question::VoicemailRecord {
            mailbox: "101".into()
        })]
    );
    assert_eq!(h.reply(Reply::Done(Ok(()))), []);
    h
}

/// The recording stopped: the caller hears "saved", goodbye, and the call ends.
fn assert_saved_and_ended(h: &mut Harness, out: Vec<Output>) {
    assert_eq!(
        out,
        [
            Output::Media(MediaAction::StopCapture),
            play("voicemail-saved")
        ]
    );
    assert_eq!(h.reply(Reply::Started(false)), [play("goodbye")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [finished("voicemail: message left")]
    );
}

#[test]
fn voicemail_records_after_greeting_and_tone_until_hash() {
    let mut h = recording_message();
    assert_eq!(
        h.call.poll_timeout(),
        Some(h.now + Duration::from_secs(120)),
        "the length limit"
    );
    // Other keys are part of the message.
    assert_eq!(h.digits("12"), []);
    let out = h.digits("#");
    assert_saved_and_ended(&mut h, out);
}

#[test]
fn voicemail_stops_at_the_length_limit_and_after_silence() {
    let mut h = recording_message();
    assert_eq!(h.advance(Duration::from_secs(119)), []);
    let out = h.advance(Duration::from_secs(1));
    assert_saved_and_ended(&mut h, out);

    let mut h = recording_message();
    let out = h.input(Input::Media(MediaEvent::CallerSilent));
    assert_saved_and_ended(&mut h, out);
}

#[test]
fn voicemail_hang_up_ends_the_message_without_losing_it() {
    let mut h = recording_message();
    // No stop: the media session ends with the leg, and the writer keeps what was said.
    assert_eq!(
        h.input(Input::Hangup),
        [finished("voicemail: message left")]
    );
}

#[test]
fn a_key_during_the_greeting_skips_it_but_does_not_end_the_message() {
    let (mut h, _) = Harness::start(voicemail_for_101());
    assert_eq!(h.reply(Reply::Started(true)), []);
    assert_eq!(
        h.digits("#"),
        [Output::Media(MediaAction::Silence), play("voicemail-beep")]
    );
    assert_eq!(
        h.reply(Reply::Started(false)),
        [ask(Question::VoicemailRecord {
            mailbox: "101".into()
        })]
    );
    assert_eq!(h.reply(Reply::Done(Ok(()))), [], "the # was not kept");
}

/// `voicemail_main` up to the PIN keyed in.
fn opening_mailbox() -> Harness {
    let (mut h, out) = Harness::start(vec![Action::VoicemailMain]);
    assert_eq!(out, [sip(SipAction::Answer), play("enter-pin")]);
    assert_eq!(h.reply(Reply::Started(false)), []);
    assert_eq!(
        h.digits("4711#"),
        [ask(Question::VoicemailOpen {
            digits: "4711".into()
        })]
    );
    h
}

#[test]
fn listening_is_refused_while_the_mailbox_has_no_pin() {
    let mut h = opening_mailbox();
    assert_eq!(
        h.reply(Reply::Mailbox(Ok(MailboxOpen::NoPin))),
        [play("voicemail-no-pin")]
    );
    assert_eq!(h.reply(Reply::Started(false)), [play("goodbye")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [finished("refused: mailbox has no PIN")]
    );
}

#[test]
fn three_wrong_mailbox_pins_end_the_call() {
    let mut h = opening_mailbox();
    for _ in 0..2 {
        assert_eq!(
            h.reply(Reply::Mailbox(Ok(MailboxOpen::WrongPin))),
            [play("wrong-pin")]
        );
        assert_eq!(h.reply(Reply::Started(false)), [play("enter-pin")]);
        assert_eq!(h.reply(Reply::Started(false)), []);
        assert_eq!(
            h.digits("1234#"),
            [ask(Question::VoicemailOpen {
                digits: "1234".into()
            })]
        );
    }
    assert_eq!(
        h.reply(Reply::Mailbox(Ok(MailboxOpen::WrongPin))),
        [play("wrong-pin")]
    );
    assert_eq!(h.reply(Reply::Started(false)), [play("goodbye")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [finished("refused: wrong mailbox PIN")]
    );
}

#[test]
fn a_listener_hears_the_count_and_each_message_then_repeats_and_deletes() {
    let mut h = opening_mailbox();
    let message = store::Voicemail {
        id: store::VoicemailId(7),
        mailbox: "101".into(),
        caller: "0711".into(),
        received_at_ms: 0,
        duration_ms: 4000,
        path: "/data/voicemail/101/a.wav".into(),
        heard: false,
    };
    let path = message.path.clone();
    assert_eq!(
        h.reply(Reply::Mailbox(Ok(MailboxOpen::Open(vec![message])))),
        [play("voicemail-you-have")]
    );
    assert_eq!(h.reply(Reply::Started(false)), [play("digit-1")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [play("voicemail-new-messages")]
    );
    assert_eq!(
        h.reply(Reply::Started(false)),
        [ask(Question::PlayFile(path.clone()))]
    );
    assert_eq!(h.reply(Reply::Started(true)), []);
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [ask(Question::VoicemailHeard(store::VoicemailId(7)))]
    );
    assert_eq!(
        h.reply(Reply::Done(Ok(()))),
        [play("voicemail-message-menu")]
    );
    assert_eq!(h.reply(Reply::Started(false)), []);
    // 1: again (marked heard once only).
    assert_eq!(h.digits("1"), [ask(Question::PlayFile(path))]);
    assert_eq!(h.reply(Reply::Started(true)), []);
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [play("voicemail-message-menu")]
    );
    assert_eq!(h.reply(Reply::Started(false)), []);
    // 7: deleted.
    assert_eq!(
        h.digits("7"),
        [ask(Question::VoicemailDelete(store::VoicemailId(7)))]
    );
    assert_eq!(h.reply(Reply::Done(Ok(()))), [play("voicemail-deleted")]);
    assert_eq!(h.reply(Reply::Started(false)), [play("voicemail-no-more")]);
    assert_eq!(h.reply(Reply::Started(false)), [play("goodbye")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [finished("voicemail: mailbox listened to")]
    );
}

#[test]
fn a_listener_who_keys_nothing_after_a_message_goes_on_to_the_next() {
    let mut h = opening_mailbox();
    let message = |id: i64, heard: bool| store::Voicemail {
        id: store::VoicemailId(id),
        mailbox: "101".into(),
        caller: "0711".into(),
        received_at_ms: id,
        duration_ms: 4000,
        path: format!("/data/voicemail/101/{id}.wav").into(),
        heard,
    };
    assert_eq!(
        h.reply(Reply::Mailbox(Ok(MailboxOpen::Open(vec![
            message(1, true),
            message(2, true),
        ])))),
        [play("voicemail-you-have")]
    );
    // "You have 0 new messages."
    assert_eq!(h.reply(Reply::Started(false)), [play("digit-0")]);
    assert_eq!(
        h.reply(Reply::Started(false)),
        [play("voicemail-new-messages")]
    );
    assert_eq!(
        h.reply(Reply::Started(false)),
        [ask(Question::PlayFile("/data/voicemail/101/1.wav".into()))]
    );
    assert_eq!(h.reply(Reply::Started(true)), []);
    // An old message is not marked again.
    assert_eq!(
        h.input(Input::Media(MediaEvent::PlayFinished)),
        [play("voicemail-message-menu")]
    );
    assert_eq!(h.reply(Reply::Started(false)), []);
    assert_eq!(h.advance(Duration::from_secs(9)), []);
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        [ask(Question::PlayFile("/data/voicemail/101/2.wav".into()))]
    );
}
