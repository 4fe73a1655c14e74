//! The users-and-phones pages of the web console, rendered on the server in German or
//! English: the admin's user list (with the add, import and ban forms), one user's page, and
//! everyone's "my phone". Plain HTML forms with the CSRF field, no inline script or style,
//! labels for every input, tables with header cells (see `console_page` for the frame).

use std::fmt::Write;

use store::{Binding, CallSettings, User, Voicemail};

use crate::console_page::{Viewer, csrf_field, escape, page_behind_sign_in};
use crate::join_page::Language;
use crate::security_cli::BanSummary;

/// Every word these pages show, in one language.
pub struct Texts {
    pub users: &'static str,
    pub extension: &'static str,
    pub name: &'static str,
    pub password: &'static str,
    pub new_password: &'static str,
    pub registered: &'static str,
    pub not_registered: &'static str,
    pub call_settings: &'static str,
    pub no_users: &'static str,
    pub add_user: &'static str,
    pub add: &'static str,
    pub allow: &'static str,
    pub allow_help: &'static str,
    pub max_contacts: &'static str,
    pub language: &'static str,
    pub german: &'static str,
    pub english: &'static str,
    pub import: &'static str,
    pub import_button: &'static str,
    pub csv: &'static str,
    pub csv_help: &'static str,
    pub bans: &'static str,
    pub no_bans: &'static str,
    pub bans_unavailable: &'static str,
    pub address: &'static str,
    pub reason: &'static str,
    pub ends_in: &'static str,
    pub action: &'static str,
    pub lift: &'static str,
    /// `{ext}`.
    pub user_heading: &'static str,
    pub phones: &'static str,
    pub contact_address: &'static str,
    pub transport: &'static str,
    pub user_agent: &'static str,
    pub expires_in: &'static str,
    /// `{s}`.
    pub seconds: &'static str,
    pub dnd: &'static str,
    pub dnd_on: &'static str,
    pub forward_always: &'static str,
    pub forward_busy: &'static str,
    pub forward_no_answer: &'static str,
    pub no_answer_seconds: &'static str,
    pub target_help: &'static str,
    pub follow_me: &'static str,
    pub follow_me_help: &'static str,
    pub nothing_set: &'static str,
    pub save: &'static str,
    pub set_password: &'static str,
    pub password_help: &'static str,
    pub delete_user: &'static str,
    /// `{ext}`.
    pub delete_confirm: &'static str,
    pub delete: &'static str,
    pub back: &'static str,
    pub my_phone: &'static str,
    pub no_extension: &'static str,
    /// `{ext}`.
    pub no_such_phone: &'static str,
    pub voicemail: &'static str,
    pub no_messages: &'static str,
    pub received: &'static str,
    pub caller: &'static str,
    pub length: &'static str,
    pub heard: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub listen: &'static str,
    pub download: &'static str,
    pub forbidden: &'static str,
    pub error: &'static str,
    pub done_added: &'static str,
    pub done_imported: &'static str,
    pub done_deleted: &'static str,
    pub done_lifted: &'static str,
    pub done_password: &'static str,
    pub done_settings: &'static str,
    pub done_message_deleted: &'static str,
}

const GERMAN: Texts = Texts {
    users: "Benutzer und Telefone",
    extension: "Durchwahl",
    name: "Name",
    password: "SIP-Passwort",
    new_password: "Neues SIP-Passwort",
    registered: "Angemeldete Telefone",
    not_registered: "nicht angemeldet",
    call_settings: "Anrufeinstellungen",
    no_users: "Noch keine Benutzer.",
    add_user: "Benutzer anlegen",
    add: "Anlegen",
    allow: "Erlaubte Netze (optional)",
    allow_help: "Zum Beispiel 10.8.0.0/16; mehrere mit Komma. Leer: von überall.",
    max_contacts: "Höchstzahl gleichzeitig angemeldeter Telefone",
    language: "Sprache der Ansagen",
    german: "Deutsch",
    english: "Englisch",
    import: "Benutzer aus CSV importieren",
    import_button: "Importieren",
    csv: "CSV-Text",
    csv_help: "Erste Zeile: Spaltennamen, mindestens extension,name,password (dazu allow, max_contacts, language, calls, srtp, fax, location, location_networks). Komma oder Semikolon. Ist eine Zeile fehlerhaft, wird nichts importiert.",
    bans: "Gesperrte Adressen",
    no_bans: "Keine Adresse ist gesperrt.",
    bans_unavailable: "Die Sperrliste ist gerade nicht abrufbar.",
    address: "Adresse",
    reason: "Grund",
    ends_in: "Endet in",
    action: "Aktion",
    lift: "Sperre aufheben",
    user_heading: "Benutzer {ext}",
    phones: "Angemeldete Telefone",
    contact_address: "Adresse (IP:Port)",
    transport: "Transport",
    user_agent: "Telefon (User-Agent)",
    expires_in: "Läuft ab in",
    seconds: "{s} s",
    dnd: "Nicht stören",
    dnd_on: "Nicht stören ist an",
    forward_always: "Rufumleitung sofort",
    forward_busy: "Rufumleitung bei besetzt",
    forward_no_answer: "Rufumleitung bei Nichtmelden",
    no_answer_seconds: "Klingeldauer vor der Umleitung bei Nichtmelden (Sekunden, 5 bis 180)",
    target_help: "Eine Nummer, wie Sie sie wählen würden; leer: aus.",
    follow_me: "Follow-me (eine Stufe pro Zeile)",
    follow_me_help: "NUMMER[@NETZ][+NUMMER]:SEKUNDEN, z. B. 101@10.98.0.0/16:20; leer: aus.",
    nothing_set: "keine Umleitung",
    save: "Speichern",
    set_password: "Passwort neu setzen",
    password_help: "Mindestens 8 Zeichen. Danach meldet sich das Telefon nur noch mit dem neuen Passwort an.",
    delete_user: "Benutzer löschen",
    delete_confirm: "Ja, Benutzer {ext} und seine Anmeldungen löschen",
    delete: "Löschen",
    back: "Zurück zur Benutzerliste",
    my_phone: "Mein Telefon",
    no_extension: "Ihrem Konto ist keine eigene Durchwahl zugeordnet. Bitte wenden Sie sich an die Administration.",
    no_such_phone: "Die Durchwahl {ext} ist noch nicht als Telefon eingerichtet.",
    voicemail: "Mailbox",
    no_messages: "Keine Nachrichten.",
    received: "Eingegangen",
    caller: "Anrufer",
    length: "Länge",
    heard: "Abgehört",
    yes: "ja",
    no: "nein",
    listen: "Anhören",
    download: "Herunterladen",
    forbidden: "Diese Seite ist der Administration vorbehalten.",
    error: "Fehler",
    done_added: "Der Benutzer ist angelegt.",
    done_imported: "Die Benutzer sind importiert.",
    done_deleted: "Der Benutzer ist gelöscht.",
    done_lifted: "Die Sperre ist aufgehoben.",
    done_password: "Das Passwort ist geändert.",
    done_settings: "Die Anrufeinstellungen sind gespeichert.",
    done_message_deleted: "Die Nachricht ist gelöscht.",
};

const ENGLISH: Texts = Texts {
    users: "Users and phones",
    extension: "Extension",
    name: "Name",
    password: "SIP password",
    new_password: "New SIP password",
    registered: "Registered phones",
    not_registered: "not registered",
    call_settings: "Call settings",
    no_users: "No users yet.",
    add_user: "Add a user",
    add: "Add",
    allow: "Allowed networks (optional)",
    allow_help: "For example 10.8.0.0/16; separate several with commas. Empty: from anywhere.",
    max_contacts: "Most phones registered at once",
    language: "Prompt language",
    german: "German",
    english: "English",
    import: "Import users from CSV",
    import_button: "Import",
    csv: "CSV text",
    csv_help: "First line: the column names, at least extension,name,password (also allow, max_contacts, language, calls, srtp, fax, location, location_networks). Commas or semicolons. If one row is bad, nothing is imported.",
    bans: "Banned addresses",
    no_bans: "No address is banned.",
    bans_unavailable: "The ban list cannot be read right now.",
    address: "Address",
    reason: "Reason",
    ends_in: "Ends in",
    action: "Action",
    lift: "Lift ban",
    user_heading: "User {ext}",
    phones: "Registered phones",
    contact_address: "Address (IP:port)",
    transport: "Transport",
    user_agent: "Phone (user agent)",
    expires_in: "Expires in",
    seconds: "{s} s",
    dnd: "Do not disturb",
    dnd_on: "Do not disturb is on",
    forward_always: "Forward all calls",
    forward_busy: "Forward when busy",
    forward_no_answer: "Forward when unanswered",
    no_answer_seconds: "Ring time before forwarding when unanswered (seconds, 5 to 180)",
    target_help: "A number as you would dial it; empty: off.",
    follow_me: "Follow-me (one step per line)",
    follow_me_help: "NUMBER[@NETWORK][+NUMBER]:SECONDS, e.g. 101@10.98.0.0/16:20; empty: off.",
    nothing_set: "no forwarding",
    save: "Save",
    set_password: "Set a new password",
    password_help: "At least 8 characters. The phone then registers with the new password only.",
    delete_user: "Delete the user",
    delete_confirm: "Yes, delete user {ext} and its registrations",
    delete: "Delete",
    back: "Back to the user list",
    my_phone: "My phone",
    no_extension: "Your account has no extension of its own. Please ask an administrator.",
    no_such_phone: "Extension {ext} is not set up as a phone yet.",
    voicemail: "Voicemail",
    no_messages: "No messages.",
    received: "Received",
    caller: "Caller",
    length: "Length",
    heard: "Heard",
    yes: "yes",
    no: "no",
    listen: "Listen",
    download: "Download",
    forbidden: "This page is for administrators only.",
    error: "Error",
    done_added: "The user was added.",
    done_imported: "The users were imported.",
    done_deleted: "The user was deleted.",
    done_lifted: "The ban was lifted.",
    done_password: "The password was changed.",
    done_settings: "The call settings were saved.",
    done_message_deleted: "The message was deleted.",
};

/// The words of `language`.
pub fn texts(language: Language) -> &'static Texts {
    match language {
        Language::German => &GERMAN,
        Language::English => &ENGLISH,
    }
}

/// What a page says above its content after a form was sent.
pub enum Notice<'a> {
    None,
    /// A change went through (the text is the page's own, chosen by a fixed word).
    Done(&'static str),
    Error(&'a str),
}

impl Notice<'_> {
    /// The notice named by a redirect's `done` word (anything else: none).
    pub fn done(language: Language, word: Option<&str>) -> Notice<'static> {
        let t = texts(language);
        let text = match word {
            Some("added") => t.done_added,
            Some("imported") => t.done_imported,
            Some("deleted") => t.done_deleted,
            Some("lifted") => t.done_lifted,
            Some("password") => t.done_password,
            Some("settings") => t.done_settings,
            Some("message-deleted") => t.done_message_deleted,
            _ => return Notice::None,
        };
        Notice::Done(text)
    }

    fn render(&self, language: Language, out: &mut String) {
        match self {
            Notice::None => {}
            Notice::Done(text) => {
                let _ = writeln!(
                    out,
                    "<p class=\"notice\" role=\"status\">{}</p>",
                    escape(text)
                );
            }
            Notice::Error(message) => {
                let _ = writeln!(
                    out,
                    "<p class=\"error\" role=\"alert\" id=\"form-error\">{}: {}</p>",
                    escape(texts(language).error),
                    escape(message)
                );
            }
        }
    }
}

/// A user with the phones registered for it now.
pub struct UserLine<'a> {
    pub user: &'a User,
    pub bindings: &'a [Binding],
}

/// What the add and import forms showed when they were sent, to show again with an error.
#[derive(Default)]
pub struct Refill<'a> {
    pub extension: &'a str,
    pub name: &'a str,
    pub allow: &'a str,
    pub csv: &'a str,
}

/// The admin's users page: every user with their phones and settings, the add and import
/// forms, and the bans (`None`: the registrar did not answer).
pub fn users(
    language: Language,
    viewer: &Viewer<'_>,
    lines: &[UserLine<'_>],
    bans: Option<&[BanSummary]>,
    notice: Notice<'_>,
    refill: &Refill<'_>,
    now_ms: i64,
) -> String {
    let t = texts(language);
    let mut main = String::new();
    notice.render(language, &mut main);
    if lines.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(t.no_users));
    } else {
        let _ = write!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{ext}</th><th scope=\"col\">{name}</th>\
             <th scope=\"col\">{registered}</th><th scope=\"col\">{settings}</th></tr></thead>\n<tbody>\n",
            ext = escape(t.extension),
            name = escape(t.name),
            registered = escape(t.registered),
            settings = escape(t.call_settings),
        );
        for line in lines {
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\"><a href=\"/console/users/{ext}\">{ext}</a></th><td>{name}</td><td>{phones}</td><td>{settings}</td></tr>",
                ext = escape(&line.user.extension),
                name = escape(&line.user.display_name),
                phones = devices_summary(t, line.bindings, now_ms),
                settings = escape(&settings_summary(t, &line.user.call_settings)),
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }

    let csrf = csrf_field(viewer.csrf_token);
    let _ = write!(
        main,
        "<h2 id=\"add-heading\">{add_user}</h2>\n\
         <form method=\"post\" action=\"/console/users\" aria-labelledby=\"add-heading\">{csrf}\n\
         <p><label for=\"extension\">{ext}</label>\n\
         <input id=\"extension\" name=\"extension\" inputmode=\"numeric\" pattern=\"[0-9]{{2,15}}\" required maxlength=\"15\" value=\"{ext_value}\"></p>\n\
         <p><label for=\"name\">{name}</label>\n\
         <input id=\"name\" name=\"name\" required maxlength=\"64\" value=\"{name_value}\"></p>\n\
         <p><label for=\"password\">{password}</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"128\"></p>\n\
         <p><label for=\"allow\">{allow}</label>\n\
         <input id=\"allow\" name=\"allow\" aria-describedby=\"allow-help\" value=\"{allow_value}\">\n\
         <span id=\"allow-help\">{allow_help}</span></p>\n\
         <p><label for=\"max_contacts\">{max}</label>\n\
         <input id=\"max_contacts\" name=\"max_contacts\" type=\"number\" min=\"1\" max=\"{limit}\" value=\"{default_max}\"></p>\n\
         <p><label for=\"language\">{language_label}</label>\n\
         <select id=\"language\" name=\"language\"><option value=\"de\">{german}</option><option value=\"en\">{english}</option></select></p>\n\
         <p><button type=\"submit\">{add}</button></p>\n</form>\n",
        add_user = escape(t.add_user),
        ext = escape(t.extension),
        ext_value = escape(refill.extension),
        name = escape(t.name),
        name_value = escape(refill.name),
        password = escape(t.password),
        allow = escape(t.allow),
        allow_value = escape(refill.allow),
        allow_help = escape(t.allow_help),
        max = escape(t.max_contacts),
        limit = store::MAX_CONTACTS_LIMIT,
        default_max = store::DEFAULT_MAX_CONTACTS,
        language_label = escape(t.language),
        german = escape(t.german),
        english = escape(t.english),
        add = escape(t.add),
    );
    // The import (whose checks know the default domain) and the bans are the system's.
    if !viewer.admin {
        return page_behind_sign_in(language, viewer, t.users, &main);
    }
    let _ = write!(
        main,
        "<h2 id=\"import-heading\">{import}</h2>\n\
         <form method=\"post\" action=\"/console/users/import\" aria-labelledby=\"import-heading\">{csrf}\n\
         <p><label for=\"csv\">{csv}</label>\n\
         <textarea id=\"csv\" name=\"csv\" rows=\"8\" cols=\"60\" required aria-describedby=\"csv-help\">{csv_value}</textarea>\n\
         <span id=\"csv-help\">{csv_help}</span></p>\n\
         <p><button type=\"submit\">{button}</button></p>\n</form>\n",
        import = escape(t.import),
        csv = escape(t.csv),
        csv_value = escape(refill.csv),
        csv_help = escape(t.csv_help),
        button = escape(t.import_button),
    );

    let _ = writeln!(main, "<h2 id=\"bans-heading\">{}</h2>", escape(t.bans));
    match bans {
        None => {
            let _ = writeln!(
                main,
                "<p class=\"error\">{}</p>",
                escape(t.bans_unavailable)
            );
        }
        Some([]) => {
            let _ = writeln!(main, "<p>{}</p>", escape(t.no_bans));
        }
        Some(bans) => {
            let _ = write!(
                main,
                "<table aria-labelledby=\"bans-heading\">\n<thead><tr><th scope=\"col\">{address}</th><th scope=\"col\">{reason}</th>\
                 <th scope=\"col\">{ends}</th><th scope=\"col\">{action}</th></tr></thead>\n<tbody>\n",
                address = escape(t.address),
                reason = escape(t.reason),
                ends = escape(t.ends_in),
                action = escape(t.action),
            );
            for ban in bans {
                let _ = writeln!(
                    main,
                    "<tr><th scope=\"row\">{source}</th><td>{reason}</td><td>{ends}</td><td>\
                     <form method=\"post\" action=\"/console/bans/lift\">{csrf}\
                     <input type=\"hidden\" name=\"address\" value=\"{address}\">\
                     <button type=\"submit\" aria-label=\"{lift} {source}\">{lift}</button></form></td></tr>",
                    source = escape(&ban.source),
                    // An IPv6 ban covers a /64; its first address lifts it.
                    address = escape(ban.source.split('/').next().unwrap_or(&ban.source)),
                    reason = escape(&ban.reason),
                    ends = escape(&format!(
                        "{}:{:02}",
                        ban.remaining_s / 60,
                        ban.remaining_s % 60
                    )),
                    lift = escape(t.lift),
                );
            }
            main.push_str("</tbody>\n</table>\n");
        }
    }
    page_behind_sign_in(language, viewer, t.users, &main)
}

/// One user's page: phones, call settings, new password, delete.
pub fn user(
    language: Language,
    viewer: &Viewer<'_>,
    line: &UserLine<'_>,
    notice: Notice<'_>,
    now_ms: i64,
) -> String {
    let t = texts(language);
    let ext = &line.user.extension;
    let mut main = String::new();
    notice.render(language, &mut main);
    let _ = writeln!(
        main,
        "<p><a href=\"/console/users\">{}</a></p>\n<p>{}: {}</p>",
        escape(t.back),
        escape(t.name),
        escape(&line.user.display_name)
    );
    devices_table(t, line.bindings, now_ms, &mut main);
    settings_form(
        t,
        viewer,
        &format!("/console/users/{ext}/settings"),
        &line.user.call_settings,
        &mut main,
    );
    let csrf = csrf_field(viewer.csrf_token);
    let _ = write!(
        main,
        "<h2 id=\"password-heading\">{set_password}</h2>\n\
         <form method=\"post\" action=\"/console/users/{ext}/password\" aria-labelledby=\"password-heading\">{csrf}\n\
         <p><label for=\"password\">{new_password}</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"128\" aria-describedby=\"password-help\">\n\
         <span id=\"password-help\">{help}</span></p>\n\
         <p><button type=\"submit\">{save}</button></p>\n</form>\n\
         <h2 id=\"delete-heading\">{delete_user}</h2>\n\
         <form method=\"post\" action=\"/console/users/{ext}/delete\" aria-labelledby=\"delete-heading\">{csrf}\n\
         <p><input id=\"confirm\" name=\"confirm\" type=\"checkbox\" value=\"on\" required>\n\
         <label for=\"confirm\">{confirm}</label></p>\n\
         <p><button type=\"submit\">{delete}</button></p>\n</form>\n",
        ext = escape(ext),
        set_password = escape(t.set_password),
        new_password = escape(t.new_password),
        help = escape(t.password_help),
        save = escape(t.save),
        delete_user = escape(t.delete_user),
        confirm = escape(&t.delete_confirm.replace("{ext}", ext)),
        delete = escape(t.delete),
    );
    page_behind_sign_in(
        language,
        viewer,
        &t.user_heading.replace("{ext}", ext),
        &main,
    )
}

/// What "my phone" shows for the signed-in account.
pub enum Phone<'a> {
    /// The account has no extension of its own.
    NoExtension,
    /// Its extension is no user (yet).
    NoUser(&'a str),
    /// The user, its phones and its mailbox.
    User {
        line: UserLine<'a>,
        messages: &'a [Voicemail],
    },
}

/// "My phone": the account's own phones, call settings and voicemail.
pub fn phone(
    language: Language,
    viewer: &Viewer<'_>,
    phone: &Phone<'_>,
    notice: Notice<'_>,
    now_ms: i64,
) -> String {
    let t = texts(language);
    let mut main = String::new();
    notice.render(language, &mut main);
    match phone {
        Phone::NoExtension => {
            let _ = writeln!(main, "<p>{}</p>", escape(t.no_extension));
        }
        Phone::NoUser(ext) => {
            let _ = writeln!(
                main,
                "<p>{}</p>",
                escape(&t.no_such_phone.replace("{ext}", ext))
            );
        }
        Phone::User { line, messages } => {
            let _ = writeln!(
                main,
                "<p>{}: {} ({})</p>",
                escape(t.extension),
                escape(&line.user.extension),
                escape(&line.user.display_name)
            );
            devices_table(t, line.bindings, now_ms, &mut main);
            settings_form(
                t,
                viewer,
                "/console/phone/settings",
                &line.user.call_settings,
                &mut main,
            );
            voicemail_table(t, viewer, messages, &mut main);
        }
    }
    page_behind_sign_in(language, viewer, t.my_phone, &main)
}

/// The 403 page for staff who open an admin page.
pub fn forbidden(language: Language, viewer: &Viewer<'_>) -> String {
    let t = texts(language);
    let main = format!(
        "<p class=\"error\" role=\"alert\">{}</p>\n",
        escape(t.forbidden)
    );
    page_behind_sign_in(language, viewer, t.users, &main)
}

/// A page that only tells what went wrong (a user that does not exist, a store that fails).
pub fn failed(language: Language, viewer: &Viewer<'_>, heading: &str, message: &str) -> String {
    let mut main = String::new();
    Notice::Error(message).render(language, &mut main);
    page_behind_sign_in(language, viewer, heading, &main)
}

/// The phones of a user in one table cell: where each is, or "not registered".
fn devices_summary(t: &Texts, bindings: &[Binding], now_ms: i64) -> String {
    if bindings.is_empty() {
        return escape(t.not_registered);
    }
    bindings
        .iter()
        .map(|b| {
            let agent = b
                .user_agent
                .as_deref()
                .map(|a| format!(", {}", escape(a)))
                .unwrap_or_default();
            format!(
                "{} ({}{agent}, {})",
                escape(&b.source.to_string()),
                escape(&b.transport),
                escape(
                    &t.seconds
                        .replace("{s}", &expires_in_s(b, now_ms).to_string())
                ),
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Seconds until `binding` expires (0 once it has).
pub fn expires_in_s(binding: &Binding, now_ms: i64) -> i64 {
    (binding.expires_at_ms - now_ms).max(0) / 1000
}

fn devices_table(t: &Texts, bindings: &[Binding], now_ms: i64, out: &mut String) {
    let _ = writeln!(out, "<h2 id=\"phones-heading\">{}</h2>", escape(t.phones));
    if bindings.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(t.not_registered));
        return;
    }
    let _ = write!(
        out,
        "<table aria-labelledby=\"phones-heading\">\n<thead><tr><th scope=\"col\">{address}</th><th scope=\"col\">{transport}</th>\
         <th scope=\"col\">{agent}</th><th scope=\"col\">{expires}</th></tr></thead>\n<tbody>\n",
        address = escape(t.contact_address),
        transport = escape(t.transport),
        agent = escape(t.user_agent),
        expires = escape(t.expires_in),
    );
    for b in bindings {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{source}</th><td>{transport}</td><td>{agent}</td><td>{expires}</td></tr>",
            source = escape(&b.source.to_string()),
            transport = escape(&b.transport),
            agent = escape(b.user_agent.as_deref().unwrap_or("–")),
            expires = escape(
                &t.seconds
                    .replace("{s}", &expires_in_s(b, now_ms).to_string())
            ),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Do not disturb, forwarding and follow-me in one line of the page's language.
pub fn settings_summary(t: &Texts, settings: &CallSettings) -> String {
    let mut parts = Vec::new();
    if settings.dnd {
        parts.push(t.dnd_on.to_owned());
    }
    if let Some(target) = &settings.forward_always {
        parts.push(format!("{}: {target}", t.forward_always));
    }
    if let Some(target) = &settings.forward_busy {
        parts.push(format!("{}: {target}", t.forward_busy));
    }
    if let Some(target) = &settings.forward_no_answer {
        parts.push(format!(
            "{}: {target} ({})",
            t.forward_no_answer,
            t.seconds
                .replace("{s}", &settings.no_answer_seconds.to_string())
        ));
    }
    if !settings.follow_me.is_empty() {
        let steps: Vec<String> = settings.follow_me.iter().map(ToString::to_string).collect();
        parts.push(format!(
            "{}: {}",
            t.follow_me.split(" (").next().unwrap_or(t.follow_me),
            steps.join(", ")
        ));
    }
    if parts.is_empty() {
        t.nothing_set.to_owned()
    } else {
        parts.join("; ")
    }
}

fn settings_form(
    t: &Texts,
    viewer: &Viewer<'_>,
    action: &str,
    settings: &CallSettings,
    out: &mut String,
) {
    let follow_me: Vec<String> = settings.follow_me.iter().map(ToString::to_string).collect();
    let _ = write!(
        out,
        "<h2 id=\"settings-heading\">{heading}</h2>\n\
         <form method=\"post\" action=\"{action}\" aria-labelledby=\"settings-heading\">{csrf}\n\
         <p><input id=\"dnd\" name=\"dnd\" type=\"checkbox\" value=\"on\"{dnd_checked}>\n\
         <label for=\"dnd\">{dnd}</label></p>\n\
         <p id=\"target-help\">{target_help}</p>\n\
         <p><label for=\"forward_always\">{always}</label>\n\
         <input id=\"forward_always\" name=\"forward_always\" inputmode=\"tel\" maxlength=\"40\" aria-describedby=\"target-help\" value=\"{always_value}\"></p>\n\
         <p><label for=\"forward_busy\">{busy}</label>\n\
         <input id=\"forward_busy\" name=\"forward_busy\" inputmode=\"tel\" maxlength=\"40\" aria-describedby=\"target-help\" value=\"{busy_value}\"></p>\n\
         <p><label for=\"forward_no_answer\">{no_answer}</label>\n\
         <input id=\"forward_no_answer\" name=\"forward_no_answer\" inputmode=\"tel\" maxlength=\"40\" aria-describedby=\"target-help\" value=\"{no_answer_value}\"></p>\n\
         <p><label for=\"no_answer_seconds\">{seconds}</label>\n\
         <input id=\"no_answer_seconds\" name=\"no_answer_seconds\" type=\"number\" min=\"5\" max=\"180\" value=\"{seconds_value}\"></p>\n\
         <p><label for=\"follow_me\">{follow_me}</label>\n\
         <textarea id=\"follow_me\" name=\"follow_me\" rows=\"3\" cols=\"40\" aria-describedby=\"follow-me-help\">{follow_me_value}</textarea>\n\
         <span id=\"follow-me-help\">{follow_me_help}</span></p>\n\
         <p><button type=\"submit\">{save}</button></p>\n</form>\n",
        heading = escape(t.call_settings),
        action = escape(action),
        csrf = csrf_field(viewer.csrf_token),
        dnd_checked = if settings.dnd { " checked" } else { "" },
        dnd = escape(t.dnd),
        target_help = escape(t.target_help),
        always = escape(t.forward_always),
        always_value = escape(settings.forward_always.as_deref().unwrap_or("")),
        busy = escape(t.forward_busy),
        busy_value = escape(settings.forward_busy.as_deref().unwrap_or("")),
        no_answer = escape(t.forward_no_answer),
        no_answer_value = escape(settings.forward_no_answer.as_deref().unwrap_or("")),
        seconds = escape(t.no_answer_seconds),
        seconds_value = settings.no_answer_seconds,
        follow_me = escape(t.follow_me),
        follow_me_value = escape(&follow_me.join("\n")),
        follow_me_help = escape(t.follow_me_help),
        save = escape(t.save),
    );
}

fn voicemail_table(t: &Texts, viewer: &Viewer<'_>, messages: &[Voicemail], out: &mut String) {
    let _ = writeln!(
        out,
        "<h2 id=\"voicemail-heading\">{}</h2>",
        escape(t.voicemail)
    );
    if messages.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(t.no_messages));
        return;
    }
    let _ = write!(
        out,
        "<table aria-labelledby=\"voicemail-heading\">\n<thead><tr><th scope=\"col\">{received}</th><th scope=\"col\">{caller}</th>\
         <th scope=\"col\">{length}</th><th scope=\"col\">{heard}</th><th scope=\"col\">{listen}</th><th scope=\"col\">{action}</th></tr></thead>\n<tbody>\n",
        received = escape(t.received),
        caller = escape(t.caller),
        length = escape(t.length),
        heard = escape(t.heard),
        listen = escape(t.listen),
        action = escape(t.action),
    );
    for m in messages {
        let id = m.id.0;
        let received = local_time(m.received_at_ms);
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{received}</th><td>{caller}</td><td>{length}</td><td>{heard}</td>\
             <td><audio controls preload=\"none\" src=\"/api/phone/voicemail/{id}/audio\" aria-label=\"{listen} {received}\"></audio><br>\
             <a href=\"/api/phone/voicemail/{id}/audio?download=1\" download>{download}</a></td>\
             <td><form method=\"post\" action=\"/console/phone/voicemail/{id}/delete\">{csrf}\
             <button type=\"submit\" aria-label=\"{delete} {received}\">{delete}</button></form></td></tr>",
            received = escape(&received),
            caller = escape(&m.caller),
            length = escape(
                &t.seconds
                    .replace("{s}", &format!("{:.0}", m.duration_ms as f64 / 1000.0))
            ),
            heard = escape(if m.heard { t.yes } else { t.no }),
            listen = escape(t.listen),
            download = escape(t.download),
            csrf = csrf_field(viewer.csrf_token),
            delete = escape(t.delete),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A time in the server's time zone, to the minute.
pub fn local_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn viewer() -> Viewer<'static> {
        Viewer {
            name: "root",
            admin: true,
            town_admin: true,
            csrf_token: "tok\"en",
        }
    }

    fn stored_user(extension: &str, name: &str) -> User {
        let store = store::Store::open_in_memory().unwrap();
        store
            .user_create(&store::NewUser::new(extension, name, "geheim123", 0))
            .unwrap()
    }

    fn binding() -> Binding {
        Binding {
            contact: "sip:101@10.99.0.2:15060".into(),
            source: "10.99.0.2:15060".parse().unwrap(),
            transport: "udp".into(),
            path: vec![],
            q_milli: None,
            call_id: "c".into(),
            cseq: 1,
            expires_at_ms: NOW + 600_000,
            user_agent: Some("baresip <v1>".into()),
            instance_id: None,
        }
    }

    /// Every `<input>`, `<select>` and `<textarea>` that is not hidden has a `<label for>`.
    fn assert_labelled(html: &str) {
        for tag in ["<input ", "<select ", "<textarea "] {
            for piece in html.split(tag).skip(1) {
                let attrs = piece.split('>').next().unwrap_or("");
                if attrs.contains("type=\"hidden\"") {
                    continue;
                }
                let id = attrs
                    .split("id=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_else(|| panic!("no id: {attrs}"));
                assert!(
                    html.contains(&format!("<label for=\"{id}\">")),
                    "no label for {id}"
                );
            }
        }
    }

    #[test]
    fn the_users_page_shows_phones_and_settings_escaped_labelled_and_with_csrf_everywhere() {
        let mut user = stored_user("101", "<Bürgerbüro>");
        user.call_settings.forward_always = Some("102".into());
        let bindings = [binding()];
        let lines = [UserLine {
            user: &user,
            bindings: &bindings,
        }];
        let bans = [BanSummary {
            source: "10.99.0.9".into(),
            reason: "5 failed authentications".into(),
            since_s: 1,
            remaining_s: 61,
        }];
        let html = users(
            Language::English,
            &viewer(),
            &lines,
            Some(&bans),
            Notice::None,
            &Refill::default(),
            NOW,
        );
        assert!(html.contains("&lt;Bürgerbüro&gt;"), "{html}");
        assert!(!html.contains("<Bürgerbüro>"));
        assert!(
            html.contains("10.99.0.2:15060 (udp, baresip &lt;v1&gt;, 600 s)"),
            "{html}"
        );
        assert!(html.contains("Forward all calls: 102"), "{html}");
        assert!(html.contains("<th scope=\"row\">10.99.0.9</th>"), "{html}");
        assert!(
            html.contains("name=\"address\" value=\"10.99.0.9\""),
            "{html}"
        );
        let forms = html.matches("<form").count();
        assert_eq!(forms, 4, "sign-out, add, import, one ban: {html}");
        assert_eq!(
            html.matches("name=\"csrf\" value=\"tok&quot;en\"").count(),
            forms
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("style="), "{html}");
        assert_labelled(&html);
    }

    #[test]
    fn my_phone_lists_messages_with_a_player_and_says_when_there_is_no_extension() {
        let user = stored_user("101", "Anna");
        let messages = [Voicemail {
            id: store::VoicemailId(7),
            mailbox: "101".into(),
            caller: "0711555".into(),
            received_at_ms: NOW,
            duration_ms: 4_400,
            path: "/tmp/x.wav".into(),
            heard: false,
        }];
        let phone_page = Phone::User {
            line: UserLine {
                user: &user,
                bindings: &[],
            },
            messages: &messages,
        };
        let html = phone(Language::German, &viewer(), &phone_page, Notice::None, NOW);
        assert!(html.contains("<html lang=\"de\">"), "{html}");
        assert!(
            html.contains("src=\"/api/phone/voicemail/7/audio\""),
            "{html}"
        );
        assert!(html.contains("action=\"/console/phone/voicemail/7/delete\""));
        assert!(html.contains("nicht angemeldet"), "{html}");
        assert!(!html.contains("/tmp/x.wav"), "no server path: {html}");
        assert_labelled(&html);
        let html = phone(
            Language::English,
            &viewer(),
            &Phone::NoExtension,
            Notice::None,
            NOW,
        );
        assert!(html.contains("no extension of its own"), "{html}");
    }

    #[test]
    fn a_users_page_has_its_settings_password_and_delete_forms_labelled() {
        let user = stored_user("101", "Anna");
        let html = user_page_html(&user);
        assert!(html.contains("action=\"/console/users/101/settings\""));
        assert!(html.contains("action=\"/console/users/101/password\""));
        assert!(html.contains("action=\"/console/users/101/delete\""));
        assert_labelled(&html);
    }

    fn user_page_html(user: &User) -> String {
        user_page_for(user, Notice::Done(ENGLISH.done_settings))
    }

    fn user_page_for(user: &User, notice: Notice<'_>) -> String {
        super::user(
            Language::English,
            &viewer(),
            &UserLine {
                user,
                bindings: &[],
            },
            notice,
            NOW,
        )
    }

    #[test]
    fn only_known_done_words_become_notices() {
        assert!(matches!(
            Notice::done(Language::English, Some("added")),
            Notice::Done("The user was added.")
        ));
        assert!(matches!(
            Notice::done(Language::English, Some("<script>")),
            Notice::None
        ));
        let user = stored_user("101", "Anna");
        let html = user_page_for(&user, Notice::Error("<b>"));
        assert!(html.contains("Error: &lt;b&gt;"), "{html}");
    }
}
