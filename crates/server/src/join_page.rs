//! The join page's words in German and English, the language a browser asks for, and the
//! page itself, rendered on the server: the room's number and whether it asks for a PIN are
//! known before the script runs, so the form works and reads right at once. The script
//! (`assets/join.js`) takes its words from the page, so each text lives here once.

use serde::Serialize;

/// The page's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// German (the default: the product is made for German public administrations).
    German,
    /// English.
    English,
}

impl Language {
    /// The language of an `Accept-Language` header (RFC 9110 §12.5.4): the German or English
    /// range with the highest weight; German when it names neither.
    pub fn from_accept_language(header: Option<&str>) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for range in header.unwrap_or("").split(',') {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let language = match primary {
                "de" => Self::German,
                "en" => Self::English,
                _ => continue,
            };
            // The first of equal weights wins, as the header lists preferences in order.
            if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, language));
            }
        }
        best.map_or(Self::German, |(_, language)| language)
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::German => "de",
            Self::English => "en",
        }
    }

    /// The page's words in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Self::German => &GERMAN,
            Self::English => &ENGLISH,
        }
    }
}

/// Every word the page shows. `{room}`, `{name}` and `{n}` are filled in by the script, and
/// `{s}` with `one_second` or `seconds`.
#[derive(Debug, Serialize)]
pub struct Texts {
    pub title: &'static str,
    pub heading: &'static str,
    pub intro: &'static str,
    pub name_label: &'static str,
    pub pin_label: &'static str,
    pub pin_hint: &'static str,
    pub join: &'static str,
    pub joining: &'static str,
    pub joined: &'static str,
    pub mute: &'static str,
    pub unmute: &'static str,
    pub muted_status: &'static str,
    pub unmuted_status: &'static str,
    pub muted_by_room: &'static str,
    pub leave: &'static str,
    pub left: &'static str,
    pub rejoin: &'static str,
    pub participants: &'static str,
    pub nobody: &'static str,
    pub you: &'static str,
    pub phone: &'static str,
    pub meeting: &'static str,
    pub talking: &'static str,
    pub muted: &'static str,
    pub now_talking: &'static str,
    pub nobody_talking: &'static str,
    pub reconnecting: &'static str,
    pub one_second: &'static str,
    pub seconds: &'static str,
    pub reconnected: &'static str,
    pub reconnect_failed: &'static str,
    pub error_name: &'static str,
    pub error_pin_missing: &'static str,
    pub error_wrong_pin: &'static str,
    pub error_wrong_pin_last: &'static str,
    pub error_wrong_pin_wait: &'static str,
    pub error_too_many_pins: &'static str,
    pub error_full: &'static str,
    pub error_locked: &'static str,
    pub error_unknown_room: &'static str,
    pub error_closing: &'static str,
    pub error_no_mic: &'static str,
    pub error_no_mic_device: &'static str,
    pub error_unsupported: &'static str,
    pub error_busy: &'static str,
    pub error_ended: &'static str,
    pub error_room_closed: &'static str,
    pub error_removed: &'static str,
    pub error_generic: &'static str,
}

/// German.
static GERMAN: Texts = Texts {
    title: "Raum {room} – Telefonkonferenz",
    heading: "Telefonkonferenz, Raum {room}",
    intro: "Nehmen Sie mit Ihrem Browser an der Konferenz teil. Sie brauchen ein Mikrofon.",
    name_label: "Ihr Name",
    pin_label: "PIN des Raums",
    pin_hint: "Die PIN haben Sie mit der Einladung erhalten.",
    join: "Teilnehmen",
    joining: "Verbindung wird aufgebaut …",
    joined: "Sie nehmen an der Konferenz teil.",
    mute: "Mikrofon stummschalten",
    unmute: "Stummschaltung aufheben",
    muted_status: "Ihr Mikrofon ist stummgeschaltet.",
    unmuted_status: "Ihr Mikrofon ist eingeschaltet.",
    muted_by_room: "Sie wurden stummgeschaltet.",
    leave: "Konferenz verlassen",
    left: "Sie haben die Konferenz verlassen.",
    rejoin: "Wieder teilnehmen",
    participants: "Teilnehmende",
    nobody: "Niemand außer Ihnen.",
    you: "Sie",
    phone: "Telefon",
    meeting: "Videokonferenz",
    talking: "spricht",
    muted: "stumm",
    now_talking: "Es spricht: {name}",
    nobody_talking: "Niemand spricht.",
    reconnecting: "Die Verbindung ist unterbrochen. Neuer Versuch in {s} …",
    one_second: "einer Sekunde",
    seconds: "{n} Sekunden",
    reconnected: "Die Verbindung steht wieder.",
    reconnect_failed: "Die Verbindung konnte nicht wiederhergestellt werden. Bitte versuchen Sie es später erneut.",
    error_name: "Bitte geben Sie Ihren Namen ein (höchstens 40 Zeichen).",
    error_pin_missing: "Bitte geben Sie die PIN des Raums ein.",
    error_wrong_pin: "Die PIN ist falsch. Sie haben noch {n} Versuche.",
    error_wrong_pin_last: "Die PIN ist falsch. Nach einem weiteren Fehlversuch müssen Sie eine Minute warten.",
    error_wrong_pin_wait: "Die PIN ist falsch. Bitte warten Sie eine Minute, bevor Sie es erneut versuchen.",
    error_too_many_pins: "Zu viele falsche PINs. Bitte versuchen Sie es in {s} erneut.",
    error_full: "Der Raum ist voll. Bitte versuchen Sie es später erneut.",
    error_locked: "Der Raum ist gesperrt. Die Moderation hat keine weiteren Teilnehmenden zugelassen.",
    error_unknown_room: "Den Raum {room} gibt es nicht. Bitte prüfen Sie den Link.",
    error_closing: "Die Konferenz in diesem Raum wird gerade beendet.",
    error_no_mic: "Der Browser hat den Zugriff auf das Mikrofon nicht erlaubt. Bitte erlauben Sie ihn in den Einstellungen der Seite und versuchen Sie es erneut.",
    error_no_mic_device: "Es wurde kein Mikrofon gefunden. Bitte schließen Sie eines an und versuchen Sie es erneut.",
    error_unsupported: "Dieser Browser kann nicht an Audio-Konferenzen teilnehmen (WebRTC fehlt, oder die Seite ist nicht über HTTPS geladen).",
    error_busy: "Der Server ist ausgelastet. Bitte versuchen Sie es später erneut.",
    error_ended: "Die Konferenz wurde beendet.",
    error_room_closed: "Der Raum wurde von der Verwaltung geschlossen.",
    error_removed: "Die Moderation hat Sie aus dem Raum entfernt.",
    error_generic: "Die Teilnahme ist fehlgeschlagen. Bitte versuchen Sie es erneut.",
};

/// English.
static ENGLISH: Texts = Texts {
    title: "Room {room} – conference call",
    heading: "Conference call, room {room}",
    intro: "Join the conference from your browser. You need a microphone.",
    name_label: "Your name",
    pin_label: "Room PIN",
    pin_hint: "You received the PIN with the invitation.",
    join: "Join",
    joining: "Connecting …",
    joined: "You are in the conference.",
    mute: "Mute microphone",
    unmute: "Unmute microphone",
    muted_status: "Your microphone is muted.",
    unmuted_status: "Your microphone is on.",
    muted_by_room: "You were muted.",
    leave: "Leave the conference",
    left: "You left the conference.",
    rejoin: "Join again",
    participants: "Participants",
    nobody: "Nobody but you.",
    you: "you",
    phone: "Phone",
    meeting: "Video meeting",
    talking: "talking",
    muted: "muted",
    now_talking: "Talking: {name}",
    nobody_talking: "Nobody is talking.",
    reconnecting: "The connection was lost. Trying again in {s} …",
    one_second: "one second",
    seconds: "{n} seconds",
    reconnected: "The connection is back.",
    reconnect_failed: "The connection could not be restored. Please try again later.",
    error_name: "Please enter your name (at most 40 characters).",
    error_pin_missing: "Please enter the room PIN.",
    error_wrong_pin: "The PIN is wrong. You have {n} more tries.",
    error_wrong_pin_last: "The PIN is wrong. After one more wrong try you must wait a minute.",
    error_wrong_pin_wait: "The PIN is wrong. Please wait a minute before you try again.",
    error_too_many_pins: "Too many wrong PINs. Please try again in {s}.",
    error_full: "The room is full. Please try again later.",
    error_locked: "The room is locked. The moderator lets nobody else in.",
    error_unknown_room: "Room {room} does not exist. Please check the link.",
    error_closing: "The conference in this room is ending.",
    error_no_mic: "The browser did not allow access to the microphone. Please allow it in the page's settings and try again.",
    error_no_mic_device: "No microphone was found. Please connect one and try again.",
    error_unsupported: "This browser cannot join audio conferences (WebRTC is missing, or the page was not loaded over HTTPS).",
    error_busy: "The server is busy. Please try again later.",
    error_ended: "The conference has ended.",
    error_room_closed: "The room was closed by the administration.",
    error_removed: "A moderator removed you from the room.",
    error_generic: "Joining failed. Please try again.",
};

/// What the page shows for a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    /// The room can be joined; with a PIN field or without.
    Open {
        /// The room has a participant PIN.
        pin: bool,
    },
    /// The room does not exist: the page says so and has no form.
    Unknown,
}

/// The page for room `room` in `language`; its connection may use `ice_servers` (STUN/TURN
/// relays for browsers the server's address does not reach).
pub fn render(
    room: &str,
    state: RoomState,
    language: Language,
    ice_servers: &[crate::ice_servers::IceServerGrant],
) -> String {
    let t = language.texts();
    let fill = |text: &str| escape(&text.replace("{room}", room));
    // `</` cannot occur in serde's JSON of these texts except in a text itself; escaping
    // every `<` keeps the script element's content inert whatever a text says.
    let texts = serde_json::to_string(t)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let ice_servers = serde_json::to_string(ice_servers)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c");
    let body = match state {
        RoomState::Unknown => format!(
            r#"<p id="error" class="error" role="alert">{unknown}</p>"#,
            unknown = fill(t.error_unknown_room)
        ),
        RoomState::Open { pin } => {
            let pin_field = if pin {
                format!(
                    r#"
      <div class="field">
        <label for="pin">{pin_label}</label>
        <input id="pin" name="pin" type="password" inputmode="numeric" autocomplete="off" required maxlength="10" aria-describedby="pin-hint">
        <p id="pin-hint" class="hint">{pin_hint}</p>
      </div>"#,
                    pin_label = escape(t.pin_label),
                    pin_hint = escape(t.pin_hint),
                )
            } else {
                String::new()
            };
            format!(
                r#"<p id="intro">{intro}</p>
    <p id="status" class="status" role="status" aria-live="polite"></p>
    <p id="error" class="error" role="alert" aria-live="assertive"></p>
    <form id="join-form" novalidate>
      <div class="field">
        <label for="name">{name_label}</label>
        <input id="name" name="name" type="text" autocomplete="name" required maxlength="40">
      </div>{pin_field}
      <button id="join" type="submit">{join}</button>
    </form>
    <section id="in-room" aria-labelledby="participants-heading" hidden>
      <div class="controls">
        <button id="mute" type="button">{mute}</button>
        <button id="leave" type="button" class="leave">{leave}</button>
      </div>
      <h2 id="participants-heading">{participants}</h2>
      <ul id="participants"></ul>
      <p id="talking" class="talking-now" aria-live="polite"></p>
    </section>
    <section id="left" hidden>
      <button id="rejoin" type="button">{rejoin}</button>
    </section>
    <audio id="remote" autoplay></audio>"#,
                intro = escape(t.intro),
                name_label = escape(t.name_label),
                join = escape(t.join),
                mute = escape(t.mute),
                leave = escape(t.leave),
                participants = escape(t.participants),
                rejoin = escape(t.rejoin),
            )
        }
    };
    let pin = matches!(state, RoomState::Open { pin: true });
    format!(
        r#"<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="/assets/join.css">
  <script src="/assets/join.js" defer></script>
</head>
<body>
  <main id="main" data-room="{room_attr}" data-pin="{pin}">
    <h1>{heading}</h1>
    {body}
  </main>
  <script id="texts" type="application/json">{texts}</script>
  <script id="ice-servers" type="application/json">{ice_servers}</script>
</body>
</html>
"#,
        lang = language.tag(),
        title = fill(t.title),
        heading = fill(t.heading),
        room_attr = escape(room),
    )
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_preferred_of_german_and_english() {
        let pick = |h| Language::from_accept_language(Some(h));
        assert_eq!(pick("en-US,en;q=0.9"), Language::English);
        assert_eq!(pick("de-DE,de;q=0.9,en;q=0.8"), Language::German);
        assert_eq!(pick("fr-FR,en;q=0.5,de;q=0.7"), Language::German);
        assert_eq!(pick("fr, EN-gb;q=0.3"), Language::English);
        assert_eq!(pick("en;q=0, de;q=0.1"), Language::German);
        assert_eq!(pick("fr"), Language::German);
        assert_eq!(Language::from_accept_language(None), Language::German);
    }

    #[test]
    fn both_languages_fill_every_text() {
        for language in [Language::German, Language::English] {
            let json = serde_json::to_value(language.texts()).unwrap();
            for (key, value) in json.as_object().unwrap() {
                assert!(!value.as_str().unwrap().trim().is_empty(), "{key}");
            }
        }
        let (de, en) = (
            serde_json::to_value(&GERMAN).unwrap(),
            serde_json::to_value(&ENGLISH).unwrap(),
        );
        let differ = de
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| en[k.as_str()] != **v)
            .count();
        assert!(
            differ > 40,
            "the English texts are translations, not copies"
        );
    }

    #[test]
    fn the_page_asks_for_a_pin_only_when_the_room_has_one() {
        let with = render("1234", RoomState::Open { pin: true }, Language::German, &[]);
        assert!(with.contains(r#"<html lang="de">"#));
        assert!(with.contains(r#"<label for="pin">PIN des Raums</label>"#));
        assert!(with.contains("Telefonkonferenz, Raum 1234"));
        let without = render(
            "1234",
            RoomState::Open { pin: false },
            Language::English,
            &[],
        );
        assert!(without.contains(r#"<html lang="en">"#));
        assert!(!without.contains(r#"id="pin""#));
        assert!(without.contains(r#"<label for="name">Your name</label>"#));
    }

    #[test]
    fn an_unknown_room_gets_no_form_and_the_room_number_is_escaped() {
        let page = render("<b>", RoomState::Unknown, Language::English, &[]);
        assert!(!page.contains("<form"));
        assert!(page.contains("Room &lt;b&gt; does not exist"));
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn the_page_hands_its_connection_the_configured_relays() {
        let relay = crate::ice_servers::IceServerGrant {
            urls: vec!["turns:turn.example.org:443?transport=tcp".into()],
            username: Some("1700003600:amtsleitung".into()),
            credential: Some("</script><b>".into()),
        };
        let page = render(
            "1234",
            RoomState::Open { pin: false },
            Language::German,
            &[relay],
        );
        let block = page
            .split(r#"<script id="ice-servers" type="application/json">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the relays' block");
        let relays: serde_json::Value = serde_json::from_str(block).unwrap();
        assert_eq!(
            relays,
            serde_json::json!([{
                "urls": ["turns:turn.example.org:443?transport=tcp"],
                "username": "1700003600:amtsleitung",
                "credential": "</script><b>",
            }])
        );
        let none = render(
            "1234",
            RoomState::Open { pin: false },
            Language::German,
            &[],
        );
        assert!(none.contains(r#"<script id="ice-servers" type="application/json">[]</script>"#));
    }
}
