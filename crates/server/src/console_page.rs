//! The web console's pages, rendered on the server in German or English: plain HTML forms that
//! work without a script, one stylesheet, landmarks and labels for screen readers, and no
//! inline script or style (the console's Content-Security-Policy forbids both).

use std::fmt::Write;

use crate::join_page::Language;

/// Every word the console shows, in one language.
pub struct Texts {
    pub title: &'static str,
    pub skip: &'static str,
    pub sign_in: &'static str,
    pub sign_in_heading: &'static str,
    pub user_name: &'static str,
    pub password: &'static str,
    pub wrong_credentials: &'static str,
    /// `{s}`: seconds.
    pub slow_down: &'static str,
    /// `{m}`: minutes.
    pub blocked: &'static str,
    pub unavailable: &'static str,
    pub sign_out: &'static str,
    /// `{name}`, `{role}`.
    pub signed_in_as: &'static str,
    pub admin: &'static str,
    pub staff: &'static str,
    pub my_rooms: &'static str,
    pub all_rooms: &'static str,
    pub no_rooms: &'static str,
    pub room: &'static str,
    pub dial_in: &'static str,
    pub pin: &'static str,
    pub pin_set: &'static str,
    pub no_pin: &'static str,
    pub moderator_pin: &'static str,
    pub max_participants: &'static str,
    pub wait_for_moderator: &'static str,
    pub owner: &'static str,
    pub in_call_now: &'static str,
    pub create_room: &'static str,
    pub create: &'static str,
    /// `{room}`.
    pub created: &'static str,
    pub error: &'static str,
    pub main_navigation: &'static str,
    pub users: &'static str,
    pub dialplan: &'static str,
    pub my_phone: &'static str,
    pub calls: &'static str,
    pub recordings: &'static str,
    pub audit: &'static str,
    pub system: &'static str,
}

const GERMAN: Texts = Texts {
    title: "amtsleitung – Konsole",
    skip: "Zum Inhalt springen",
    sign_in: "Anmelden",
    sign_in_heading: "Anmeldung",
    user_name: "Benutzername",
    password: "Passwort",
    wrong_credentials: "Benutzername oder Passwort ist falsch.",
    slow_down: "Zu viele Fehlversuche. Bitte warten Sie {s} Sekunden.",
    blocked: "Zu viele Fehlversuche: Anmeldungen von hier sind für {m} Minuten gesperrt.",
    unavailable: "Die Anmeldung ist gerade nicht möglich. Bitte versuchen Sie es später.",
    sign_out: "Abmelden",
    signed_in_as: "Angemeldet als {name} ({role})",
    admin: "Administration",
    staff: "Mitarbeitende",
    my_rooms: "Meine Konferenzräume",
    all_rooms: "Alle Konferenzräume",
    no_rooms: "Noch keine Räume.",
    room: "Raum",
    dial_in: "Einwahl",
    pin: "PIN",
    pin_set: "mit PIN",
    no_pin: "ohne PIN",
    moderator_pin: "Moderations-PIN",
    max_participants: "Höchstzahl Teilnehmende",
    wait_for_moderator: "Warten, bis die Moderation da ist",
    owner: "Verantwortlich",
    in_call_now: "Jetzt im Raum",
    create_room: "Raum anlegen",
    create: "Anlegen",
    created: "Raum {room} ist angelegt.",
    error: "Fehler",
    main_navigation: "Hauptnavigation",
    users: "Benutzer und Telefone",
    dialplan: "Wählplan",
    my_phone: "Mein Telefon",
    calls: "Anrufe",
    recordings: "Aufnahmen",
    audit: "Protokoll",
    system: "System",
};

const ENGLISH: Texts = Texts {
    title: "amtsleitung – console",
    skip: "Skip to content",
    sign_in: "Sign in",
    sign_in_heading: "Sign in",
    user_name: "User name",
    password: "Password",
    wrong_credentials: "Wrong user name or password.",
    slow_down: "Too many failed attempts. Please wait {s} seconds.",
    blocked: "Too many failed attempts: sign-ins from here are blocked for {m} minutes.",
    unavailable: "Signing in is not possible right now. Please try again later.",
    sign_out: "Sign out",
    signed_in_as: "Signed in as {name} ({role})",
    admin: "administrator",
    staff: "staff",
    my_rooms: "My conference rooms",
    all_rooms: "All conference rooms",
    no_rooms: "No rooms yet.",
    room: "Room",
    dial_in: "Dial in",
    pin: "PIN",
    pin_set: "PIN required",
    no_pin: "no PIN",
    moderator_pin: "Moderator PIN",
    max_participants: "Most participants",
    wait_for_moderator: "Wait for the moderator",
    owner: "Owner",
    in_call_now: "In the room now",
    create_room: "Create a room",
    create: "Create",
    created: "Room {room} was created.",
    error: "Error",
    main_navigation: "Main navigation",
    users: "Users and phones",
    dialplan: "Dialplan",
    my_phone: "My phone",
    calls: "Calls",
    recordings: "Recordings",
    audit: "Audit log",
    system: "System",
};

/// The words of `language`.
pub fn texts(language: Language) -> &'static Texts {
    match language {
        Language::German => &GERMAN,
        Language::English => &ENGLISH,
    }
}

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
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

/// A whole page around `main` (already HTML).
fn page(language: Language, heading: &str, header: &str, main: &str) -> String {
    let t = texts(language);
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{heading} – {title}</title>\n\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">{skip}</a>\n<header>{header}</header>\n\
         <main id=\"main\" tabindex=\"-1\">\n<h1>{heading}</h1>\n{main}</main>\n</body>\n</html>\n",
        lang = language.tag(),
        heading = escape(heading),
        title = escape(t.title),
        skip = escape(t.skip),
    )
}

/// The sign-in page, with `message` (an error) above the form when there is one.
pub fn sign_in(language: Language, message: Option<&str>, name: &str) -> String {
    let t = texts(language);
    let mut main = String::new();
    if let Some(message) = message {
        let _ = writeln!(
            main,
            "<p class=\"error\" role=\"alert\" id=\"sign-in-error\">{}</p>",
            escape(message)
        );
    }
    let described = if message.is_some() {
        " aria-describedby=\"sign-in-error\""
    } else {
        ""
    };
    let _ = write!(
        main,
        "<form method=\"post\" action=\"/console/sign-in\"{described}>\n\
         <p><label for=\"name\">{user}</label>\n\
         <input id=\"name\" name=\"name\" autocomplete=\"username\" required maxlength=\"64\" value=\"{name}\"></p>\n\
         <p><label for=\"password\">{password}</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"256\"></p>\n\
         <p><button type=\"submit\">{sign_in}</button></p>\n</form>\n",
        user = escape(t.user_name),
        password = escape(t.password),
        sign_in = escape(t.sign_in),
        name = escape(name),
    );
    page(language, t.sign_in_heading, "", &main)
}

/// Who is signed in, for the header of every page behind the sign-in.
pub struct Viewer<'a> {
    pub name: &'a str,
    /// An admin of the whole system.
    pub admin: bool,
    /// An admin of their town's users (the system's admins too).
    pub town_admin: bool,
    pub csrf_token: &'a str,
}

/// A whole page behind the sign-in: the navigation, who is signed in and the sign-out button
/// above `main` (already HTML).
pub fn page_behind_sign_in(
    language: Language,
    viewer: &Viewer<'_>,
    heading: &str,
    main: &str,
) -> String {
    page(language, heading, &header(language, viewer), main)
}

fn header(language: Language, viewer: &Viewer<'_>) -> String {
    let t = texts(language);
    let role = if viewer.admin { t.admin } else { t.staff };
    let mut links = vec![(
        "/console/rooms",
        if viewer.admin {
            t.all_rooms
        } else {
            t.my_rooms
        },
    )];
    if viewer.town_admin {
        links.push(("/console/users", t.users));
    }
    if viewer.admin {
        links.push(("/console/dialplan", t.dialplan));
        links.push(("/console/calls", t.calls));
    }
    links.push(("/console/recordings", t.recordings));
    if viewer.admin {
        links.push(("/console/audit", t.audit));
        links.push(("/console/system", t.system));
    }
    links.push(("/console/phone", t.my_phone));
    let links: String = links
        .iter()
        .map(|(href, label)| format!("<a href=\"{href}\">{}</a>", escape(label)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "<nav aria-label=\"{nav}\">{links}</nav>\n\
         <p>{who}</p>\n\
         <form method=\"post\" action=\"/console/sign-out\">{csrf}<button type=\"submit\">{sign_out}</button></form>\n",
        nav = escape(t.main_navigation),
        who = escape(
            &t.signed_in_as
                .replace("{name}", viewer.name)
                .replace("{role}", role)
        ),
        csrf = csrf_field(viewer.csrf_token),
        sign_out = escape(t.sign_out),
    )
}

/// The hidden field every form behind the sign-in carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

/// A room as the rooms page lists it.
pub struct RoomLine<'a> {
    pub room: &'a store::Room,
    pub in_call: usize,
    /// The numbers a caller dials to reach it.
    pub dial_in: String,
}

/// What to tell above the room list after a form was sent.
pub enum Notice<'a> {
    None,
    Created(&'a str),
    Error(&'a str),
}

/// The rooms page: the viewer's rooms (an admin's: everyone's) and the form to create one.
pub fn rooms(
    language: Language,
    viewer: &Viewer<'_>,
    rooms: &[RoomLine<'_>],
    notice: Notice<'_>,
) -> String {
    let t = texts(language);
    let mut main = String::new();
    match notice {
        Notice::None => {}
        Notice::Created(room) => {
            let _ = writeln!(
                main,
                "<p class=\"notice\" role=\"status\">{}</p>",
                escape(&t.created.replace("{room}", room))
            );
        }
        Notice::Error(message) => {
            let _ = writeln!(
                main,
                "<p class=\"error\" role=\"alert\">{}: {}</p>",
                escape(t.error),
                escape(message)
            );
        }
    }
    if rooms.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(t.no_rooms));
    } else {
        let owner_head = if viewer.admin {
            format!("<th scope=\"col\">{}</th>", escape(t.owner))
        } else {
            String::new()
        };
        let _ = write!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{room}</th><th scope=\"col\">{dial}</th>\
             <th scope=\"col\">{pin}</th><th scope=\"col\">{max}</th>{owner_head}\
             <th scope=\"col\">{now}</th></tr></thead>\n<tbody>\n",
            room = escape(t.room),
            dial = escape(t.dial_in),
            pin = escape(t.pin),
            max = escape(t.max_participants),
            now = escape(t.in_call_now),
        );
        for line in rooms {
            let owner = if viewer.admin {
                format!(
                    "<td>{}</td>",
                    escape(line.room.owner.as_deref().unwrap_or("–"))
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\"><a href=\"/console/rooms/{number}\">{number}</a></th><td>{dial}</td><td>{pin}</td><td>{max}</td>{owner}<td>{now}</td></tr>",
                number = escape(&line.room.number),
                dial = escape(&line.dial_in),
                pin = escape(if line.room.has_pin {
                    t.pin_set
                } else {
                    t.no_pin
                }),
                max = line.room.max_participants,
                now = line.in_call,
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }
    let _ = write!(
        main,
        "<h2 id=\"create-heading\">{create_room}</h2>\n\
         <form method=\"post\" action=\"/console/rooms\" aria-labelledby=\"create-heading\">{csrf}\n\
         <p><label for=\"number\">{room}</label>\n\
         <input id=\"number\" name=\"number\" inputmode=\"numeric\" pattern=\"[0-9]{{1,10}}\" required maxlength=\"10\"></p>\n\
         <p><label for=\"pin\">{pin}</label>\n\
         <input id=\"pin\" name=\"pin\" inputmode=\"numeric\" pattern=\"[0-9]*\" maxlength=\"12\" autocomplete=\"off\"></p>\n\
         <p><label for=\"moderator_pin\">{moderator_pin}</label>\n\
         <input id=\"moderator_pin\" name=\"moderator_pin\" inputmode=\"numeric\" pattern=\"[0-9]*\" maxlength=\"12\" autocomplete=\"off\"></p>\n\
         <p><label for=\"max_participants\">{max}</label>\n\
         <input id=\"max_participants\" name=\"max_participants\" type=\"number\" min=\"2\" max=\"{limit}\" value=\"{default_max}\"></p>\n\
         <p><input id=\"wait_for_moderator\" name=\"wait_for_moderator\" type=\"checkbox\" value=\"on\">\n\
         <label for=\"wait_for_moderator\">{wait}</label></p>\n\
         <p><button type=\"submit\">{create}</button></p>\n</form>\n",
        create_room = escape(t.create_room),
        csrf = csrf_field(viewer.csrf_token),
        room = escape(t.room),
        pin = escape(t.pin),
        moderator_pin = escape(t.moderator_pin),
        max = escape(t.max_participants),
        limit = store::MAX_PARTICIPANTS_LIMIT,
        default_max = store::DEFAULT_MAX_PARTICIPANTS,
        wait = escape(t.wait_for_moderator),
        create = escape(t.create),
    );
    page_behind_sign_in(
        language,
        viewer,
        if viewer.admin {
            t.all_rooms
        } else {
            t.my_rooms
        },
        &main,
    )
}

/// The console's stylesheet: readable on a phone, visible focus, enough contrast (WCAG 2.1 AA).
pub const STYLESHEET: &str = "\
:root { font-family: system-ui, sans-serif; color: #1a1a1a; background: #fff; line-height: 1.5; }
body { margin: 0 auto; max-width: 60rem; padding: 0 1rem 2rem; }
.skip { position: absolute; left: -999px; }
.skip:focus { position: static; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; justify-content: space-between; border-bottom: 1px solid #767676; padding: .5rem 0; }
header form, header p { margin: 0; }
a { color: #0b4f9c; }
:focus-visible { outline: 3px solid #0b4f9c; outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ccc; }
label { display: block; font-weight: 600; }
input[type=checkbox] + label { display: inline; font-weight: normal; }
input, button { font: inherit; padding: .4rem .6rem; }
input:not([type=checkbox]) { width: min(20rem, 100%); box-sizing: border-box; border: 1px solid #555; }
select, textarea { font: inherit; padding: .4rem .6rem; max-width: 100%; box-sizing: border-box; border: 1px solid #555; }
textarea { width: min(40rem, 100%); }
button { background: #0b4f9c; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
.error { color: #a4000f; font-weight: 600; }
.notice { color: #1d5e20; font-weight: 600; }
.recording { color: #a4000f; }
button:disabled { background: #6b6b6b; cursor: default; }
nav a { display: inline-block; padding: .25rem 0; margin-right: .9rem; }
@media (max-width: 40rem) {
  th, td { padding: .25rem; overflow-wrap: anywhere; hyphens: auto; }
  table { font-size: .85rem; }
}
";

/// The live view's words, handed to its script as JSON.
#[derive(serde::Serialize)]
pub struct LiveTexts {
    pub heading: &'static str,
    pub state: &'static str,
    pub participant: &'static str,
    pub talking: &'static str,
    pub muted: &'static str,
    pub hand_raised: &'static str,
    pub actions: &'static str,
    pub mute: &'static str,
    pub unmute: &'static str,
    pub remove: &'static str,
    pub lock: &'static str,
    pub unlock: &'static str,
    pub end: &'static str,
    pub open: &'static str,
    pub locked: &'static str,
    pub closed: &'static str,
    pub empty: &'static str,
    pub moderator: &'static str,
    pub kind_phone: &'static str,
    pub kind_browser: &'static str,
    pub kind_meeting: &'static str,
    /// `{who}`.
    pub muted_who: &'static str,
    /// `{who}`.
    pub unmuted_who: &'static str,
    /// `{who}`.
    pub removed_who: &'static str,
    pub ended: &'static str,
    pub error: &'static str,
    pub mute_all: &'static str,
    /// `{n}`.
    pub muted_all: &'static str,
    pub start_recording: &'static str,
    pub stop_recording: &'static str,
    pub recording: &'static str,
    pub recording_started: &'static str,
    pub recording_stopped: &'static str,
}

const GERMAN_LIVE: LiveTexts = LiveTexts {
    heading: "Raum {room} – live",
    state: "Zustand",
    participant: "Teilnehmende",
    talking: "spricht",
    muted: "stumm",
    hand_raised: "Hand gehoben",
    actions: "Aktionen",
    mute: "Stumm schalten",
    unmute: "Laut schalten",
    remove: "Entfernen",
    lock: "Raum abschließen",
    unlock: "Raum öffnen",
    end: "Konferenz beenden",
    open: "Im Gespräch, offen",
    locked: "Im Gespräch, abgeschlossen",
    closed: "Niemand im Raum",
    empty: "Niemand im Raum.",
    moderator: "Moderation",
    kind_phone: "Telefon",
    kind_browser: "Browser",
    kind_meeting: "Videokonferenz",
    muted_who: "{who} ist stumm geschaltet.",
    unmuted_who: "{who} ist laut geschaltet.",
    removed_who: "{who} wurde entfernt.",
    ended: "Die Konferenz ist beendet.",
    error: "Fehler",
    mute_all: "Alle stumm schalten",
    muted_all: "{n} Teilnehmende stumm geschaltet.",
    start_recording: "Aufnahme starten",
    stop_recording: "Aufnahme beenden",
    recording: "Aufnahme läuft",
    recording_started: "Die Aufnahme läuft.",
    recording_stopped: "Die Aufnahme ist beendet.",
};

const ENGLISH_LIVE: LiveTexts = LiveTexts {
    heading: "Room {room} – live",
    state: "State",
    participant: "Participant",
    talking: "talking",
    muted: "muted",
    hand_raised: "hand raised",
    actions: "Actions",
    mute: "Mute",
    unmute: "Unmute",
    remove: "Remove",
    lock: "Lock room",
    unlock: "Unlock room",
    end: "End conference",
    open: "In use, open",
    locked: "In use, locked",
    closed: "Nobody in the room",
    empty: "Nobody in the room.",
    moderator: "moderator",
    kind_phone: "Phone",
    kind_browser: "Browser",
    kind_meeting: "Video meeting",
    muted_who: "{who} is muted.",
    unmuted_who: "{who} is unmuted.",
    removed_who: "{who} was removed.",
    ended: "The conference has ended.",
    error: "Error",
    mute_all: "Mute everyone",
    muted_all: "{n} participants muted.",
    start_recording: "Start recording",
    stop_recording: "Stop recording",
    recording: "recording",
    recording_started: "Recording has started.",
    recording_stopped: "Recording has stopped.",
};

/// What an invitation to a room says: room `number`, dialled as `internal` from the
/// town hall's phones and through `public` (the lobby's number, when configured) from
/// outside; the PIN is never shown (the store keeps only its hash), only that one is needed.
pub struct Invitation<'a> {
    pub number: &'a str,
    pub internal: &'a str,
    pub public: Option<&'a str>,
    pub has_pin: bool,
}

impl Invitation<'_> {
    /// The text to paste into an invitation, in German or English.
    pub fn text(&self, language: Language) -> String {
        let (title, outside, inside, pin) = match language {
            Language::German => (
                "Telefonkonferenz – Raum {room}",
                "Einwahl von außen: {public}, dann die Raumnummer {room} und # eingeben.",
                "Aus dem Haus: {internal} wählen.",
                "PIN: wird Ihnen gesondert mitgeteilt; nach der Ansage eingeben und mit # bestätigen.",
            ),
            Language::English => (
                "Phone conference – room {room}",
                "From outside: call {public}, then key the room number {room} and #.",
                "From an office phone: dial {internal}.",
                "PIN: sent to you separately; key it after the announcement and press #.",
            ),
        };
        let fill = |text: &str| {
            text.replace("{room}", self.number)
                .replace("{internal}", self.internal)
                .replace("{public}", self.public.unwrap_or_default())
        };
        let mut lines = vec![fill(title)];
        if self.public.is_some() {
            lines.push(fill(outside));
        }
        lines.push(fill(inside));
        if self.has_pin {
            lines.push(pin.to_owned());
        }
        lines.join("\n")
    }
}

/// The invitation texts (German and English, read-only fields to copy from).
fn invitation_section(language: Language, invitation: &Invitation<'_>) -> String {
    let (heading, german, english) = match language {
        Language::German => ("Einladungstext", "Deutsch", "Englisch"),
        Language::English => ("Invitation text", "German", "English"),
    };
    format!(
        "<h2 id=\"invitation-heading\">{heading}</h2>\n\
         <p><label for=\"invitation-de\">{german}</label>\n\
         <textarea id=\"invitation-de\" readonly rows=\"5\">{de}</textarea></p>\n\
         <p><label for=\"invitation-en\">{english}</label>\n\
         <textarea id=\"invitation-en\" readonly rows=\"5\">{en}</textarea></p>\n",
        heading = escape(heading),
        german = escape(german),
        english = escape(english),
        de = escape(&invitation.text(Language::German)),
        en = escape(&invitation.text(Language::English)),
    )
}

/// The live view of room `number`: the script fills the table and runs the buttons.
pub fn room_live(language: Language, viewer: &Viewer<'_>, invitation: &Invitation<'_>) -> String {
    let number = invitation.number;
    let t = match language {
        Language::German => &GERMAN_LIVE,
        Language::English => &ENGLISH_LIVE,
    };
    // serde_json leaves `<` as it is; escaped, no text can close the data block.
    let texts = serde_json::to_string(t)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let heading = t.heading.replace("{room}", number);
    let main = format!(
        "<div id=\"live\" data-room=\"{room}\">\n\
         <p>{state_label}: <strong id=\"room-state\">…</strong> <strong id=\"recording-state\" class=\"recording\" hidden>{recording_now}</strong></p>\n\
         <p><button type=\"button\" id=\"lock\" disabled>{lock}</button> \
         <button type=\"button\" id=\"mute-all\" disabled>{mute_all}</button> \
         <button type=\"button\" id=\"record\" disabled>{start_recording}</button> \
         <button type=\"button\" id=\"end\" disabled>{end}</button></p>\n\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\n\
         <table>\n<thead><tr><th scope=\"col\">{participant}</th><th scope=\"col\">{talking}</th>\
         <th scope=\"col\">{muted}</th><th scope=\"col\">{hand}</th><th scope=\"col\">{actions}</th></tr></thead>\n\
         <tbody id=\"members\"></tbody>\n</table>\n</div>\n{invitation}\
         <script type=\"application/json\" id=\"texts\">{texts}</script>\n\
         <script src=\"/console/assets/console.js\"></script>\n",
        room = escape(number),
        state_label = escape(t.state),
        lock = escape(t.lock),
        end = escape(t.end),
        recording_now = escape(t.recording),
        invitation = invitation_section(language, invitation),
        mute_all = escape(t.mute_all),
        start_recording = escape(t.start_recording),
        participant = escape(t.participant),
        talking = escape(t.talking),
        muted = escape(t.muted),
        hand = escape(t.hand_raised),
        actions = escape(t.actions),
    );
    let page = page_behind_sign_in(language, viewer, &heading, &main);
    page.replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\">\n<meta name=\"csrf-token\" content=\"{}\">",
            escape(viewer.csrf_token)
        ),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitations_name_the_room_the_numbers_and_the_pin_but_never_the_pin_itself() {
        let invitation = Invitation {
            number: "4711",
            internal: "84711",
            public: Some("+49 7071 204-8000"),
            has_pin: true,
        };
        let german = invitation.text(Language::German);
        assert_eq!(
            german,
            "Telefonkonferenz – Raum 4711\n\
             Einwahl von außen: +49 7071 204-8000, dann die Raumnummer 4711 und # eingeben.\n\
             Aus dem Haus: 84711 wählen.\n\
             PIN: wird Ihnen gesondert mitgeteilt; nach der Ansage eingeben und mit # bestätigen."
        );
        let open = Invitation {
            public: None,
            has_pin: false,
            ..invitation
        };
        let english = open.text(Language::English);
        assert_eq!(
            english,
            "Phone conference – room 4711\nFrom an office phone: dial 84711."
        );
        let viewer = Viewer {
            name: "anna",
            admin: false,
            town_admin: false,
            csrf_token: "t",
        };
        let page = room_live(Language::English, &viewer, &invitation);
        assert!(
            page.contains("<label for=\"invitation-de\">German</label>"),
            "{page}"
        );
        assert!(page.contains("Raum 4711"), "{page}");
        assert!(
            page.contains("From outside: call +49 7071 204-8000"),
            "{page}"
        );
    }

    #[test]
    fn what_users_typed_is_escaped_everywhere() {
        let html = sign_in(Language::English, Some("<b>x</b>"), "\"><script>");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>x"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(html.contains("role=\"alert\""), "{html}");
    }

    #[test]
    fn pages_are_in_the_language_asked_for_with_their_labels() {
        let html = sign_in(Language::German, None, "");
        assert!(html.contains("<html lang=\"de\">"), "{html}");
        assert!(
            html.contains("<label for=\"password\">Passwort</label>"),
            "{html}"
        );
        let html = sign_in(Language::English, None, "");
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        assert!(html.contains(">Sign in</button>"), "{html}");
    }

    #[test]
    fn every_form_behind_the_sign_in_carries_the_csrf_token() {
        let viewer = Viewer {
            name: "anna",
            admin: false,
            town_admin: false,
            csrf_token: "tok\"en",
        };
        let html = rooms(Language::English, &viewer, &[], Notice::None);
        let forms = html.matches("<form").count();
        assert_eq!(forms, 2, "{html}");
        assert_eq!(
            html.matches("name=\"csrf\" value=\"tok&quot;en\"").count(),
            forms,
            "{html}"
        );
    }
}
