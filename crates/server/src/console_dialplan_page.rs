//! The dialplan pages of the console, in German or English: the files with their edit forms
//! and the explain form, the history with diffs and rollback buttons. Plain forms, no
//! script; findings are tied to their text field with `aria-describedby`.

use std::fmt::Write;

use dialplan::{Diagnostic, Severity};

use crate::console_page::{Viewer, csrf_field, escape, page_behind_sign_in};
use crate::dialplan_edit::{FileDiff, PlanFile};
use crate::join_page::Language;

/// Every word the dialplan pages show, in one language.
struct Texts {
    heading: &'static str,
    admins_only: &'static str,
    /// `{n}`.
    live: &'static str,
    directory: &'static str,
    /// `{n}`, `{error}`.
    refused_on_disk: &'static str,
    history_link: &'static str,
    /// `{path}`.
    file_heading: &'static str,
    /// `{path}`.
    text_of: &'static str,
    show_file: &'static str,
    check: &'static str,
    apply: &'static str,
    /// `{path}`.
    checked_clean: &'static str,
    /// `{n}`.
    checked_errors: &'static str,
    /// `{n}`.
    apply_refused: &'static str,
    /// `{path}`, `{n}`.
    applied: &'static str,
    error: &'static str,
    findings: &'static str,
    /// `{path}`.
    see_file: &'static str,
    no_files: &'static str,
    new_file: &'static str,
    new_path: &'static str,
    new_path_hint: &'static str,
    new_text: &'static str,
    explain_heading: &'static str,
    dialled: &'static str,
    caller: &'static str,
    at: &'static str,
    explain: &'static str,
    explanation: &'static str,
    history_heading: &'static str,
    version: &'static str,
    time: &'static str,
    comment: &'static str,
    files: &'static str,
    changes: &'static str,
    action: &'static str,
    live_marker: &'static str,
    /// `{n}`.
    diff_from: &'static str,
    /// `{n}`.
    rollback: &'static str,
    /// `{to}`, `{live}`.
    rolled_back: &'static str,
    no_versions: &'static str,
    /// `{from}`, `{to}`.
    diff_heading: &'static str,
    same: &'static str,
    back_to_history: &'static str,
    back_to_plan: &'static str,
    history_table: &'static str,
}

const GERMAN: Texts = Texts {
    heading: "Wählplan",
    admins_only: "Nur die Administration darf den Wählplan sehen und ändern.",
    live: "Live ist Version {n}.",
    directory: "Verzeichnis",
    refused_on_disk: "Die Dateien im Verzeichnis werden abgelehnt; es gilt weiter Version {n}: {error}",
    history_link: "Versionen, Änderungen und Rücknahme",
    file_heading: "Datei {path}",
    text_of: "Text von {path}",
    show_file: "Gespeicherten Text anzeigen",
    check: "Prüfen",
    apply: "Übernehmen",
    checked_clean: "Keine Fehler: der Wählplan mit diesem Entwurf von {path} ist gültig. Nichts wurde gespeichert.",
    checked_errors: "{n} Fehler. Nichts wurde gespeichert.",
    apply_refused: "Nicht übernommen: {n} Fehler. Die Datei ist unverändert.",
    applied: "{path} ist gespeichert; Version {n} ist live.",
    error: "Fehler",
    findings: "Befunde",
    see_file: "Zur Datei {path}",
    no_files: "Keine Wählplan-Dateien im Verzeichnis.",
    new_file: "Neue Datei",
    new_path: "Pfad im Wählplan-Verzeichnis",
    new_path_hint: "Relativ, endet auf .toml, zum Beispiel rathaus.toml.",
    new_text: "Text der neuen Datei",
    explain_heading: "Anruf erklären",
    dialled: "Gewählte Nummer",
    caller: "Nummer des Anrufers (freiwillig)",
    at: "Zeitpunkt (freiwillig, JJJJ-MM-TT HH:MM)",
    explain: "Erklären",
    explanation: "So würde der Anruf geleitet",
    history_heading: "Wählplan-Versionen",
    version: "Version",
    time: "Zeit (UTC)",
    comment: "Wer / Kommentar",
    files: "Dateien",
    changes: "Änderungen",
    action: "Aktion",
    live_marker: "live",
    diff_from: "Änderungen seit {n}",
    rollback: "Auf Version {n} zurücksetzen",
    rolled_back: "Version {to} ist zurückgeschrieben; Version {live} ist live.",
    no_versions: "Noch keine Versionen gespeichert.",
    diff_heading: "Änderungen von Version {from} zu {to}",
    same: "Die beiden Versionen sind gleich.",
    back_to_history: "Zu den Versionen",
    back_to_plan: "Zum Wählplan",
    history_table: "Versionen, neueste zuerst",
};

const ENGLISH: Texts = Texts {
    heading: "Dialplan",
    admins_only: "Only administrators may see and change the dialplan.",
    live: "Version {n} is live.",
    directory: "Directory",
    refused_on_disk: "The files on disk are refused; version {n} stays live: {error}",
    history_link: "Versions, changes and rollback",
    file_heading: "File {path}",
    text_of: "Text of {path}",
    show_file: "Show the saved text",
    check: "Check",
    apply: "Apply",
    checked_clean: "No errors: the plan with this draft of {path} is valid. Nothing was written.",
    checked_errors: "{n} error(s). Nothing was written.",
    apply_refused: "Not applied: {n} error(s). The file is unchanged.",
    applied: "{path} is written; version {n} is live.",
    error: "Error",
    findings: "Findings",
    see_file: "To the file {path}",
    no_files: "No dialplan files in the directory.",
    new_file: "New file",
    new_path: "Path in the dialplan directory",
    new_path_hint: "Relative, ending in .toml, for example townhall.toml.",
    new_text: "Text of the new file",
    explain_heading: "Explain a call",
    dialled: "Dialled number",
    caller: "Caller number (optional)",
    at: "Time (optional, YYYY-MM-DD HH:MM)",
    explain: "Explain",
    explanation: "How the call would be routed",
    history_heading: "Dialplan versions",
    version: "Version",
    time: "Time (UTC)",
    comment: "Who / comment",
    files: "Files",
    changes: "Changes",
    action: "Action",
    live_marker: "live",
    diff_from: "Changes since {n}",
    rollback: "Roll back to version {n}",
    rolled_back: "Version {to} was written back; version {live} is live.",
    no_versions: "No versions stored yet.",
    diff_heading: "Changes from version {from} to {to}",
    same: "The two versions are the same.",
    back_to_history: "To the versions",
    back_to_plan: "To the dialplan",
    history_table: "Versions, newest first",
};

fn texts(language: Language) -> &'static Texts {
    match language {
        Language::German => &GERMAN,
        Language::English => &ENGLISH,
    }
}

/// The dialplan pages' own stylesheet (the console's stays shared by every page).
pub const STYLESHEET: &str = "\
textarea { font: .95rem/1.4 ui-monospace, monospace; width: 100%; box-sizing: border-box; border: 1px solid #555; padding: .4rem; }
pre { font: .9rem/1.4 ui-monospace, monospace; background: #f4f4f4; padding: .6rem; overflow-x: auto; white-space: pre; }
section { border-top: 1px solid #ccc; margin-top: 1.5rem; }
.diagnostics { padding-left: 1.2rem; }
.diagnostics code { font-weight: 600; }
.buttons button { margin: 0 .5rem .5rem 0; }
.hint { margin: 0; color: #444; }
.scroll { overflow-x: auto; }
pre.diff ins { text-decoration: none; background: #d7f5dd; color: #0a3d12; }
pre.diff del { text-decoration: none; background: #fbe0e0; color: #6e0009; }
pre.diff .hunk { color: #0b4f9c; }
pre.diff .meta { font-weight: 600; }
td form { margin: 0; }
";

/// `page_behind_sign_in` with the dialplan stylesheet linked after the console's.
fn dialplan_page(language: Language, viewer: &Viewer<'_>, heading: &str, main: &str) -> String {
    page_behind_sign_in(language, viewer, heading, main).replacen(
        "</head>",
        "<link rel=\"stylesheet\" href=\"/console/assets/dialplan.css\">\n</head>",
        1,
    )
}

/// The 403 page for staff.
pub fn admins_only(language: Language, viewer: &Viewer<'_>) -> String {
    let t = texts(language);
    let main = format!(
        "<p class=\"error\" role=\"alert\">{}</p>\n",
        escape(t.admins_only)
    );
    dialplan_page(language, viewer, t.heading, &main)
}

/// The plan on disk and in force.
pub struct PlanView<'a> {
    pub live_version: u32,
    /// The first error of the files on disk while the server refuses them.
    pub refused: Option<&'a str>,
    pub directory: &'a str,
    /// The files, or why they cannot be read.
    pub files: Result<&'a [PlanFile], &'a str>,
}

/// What the last form did, shown with the file it concerns.
pub enum Outcome<'a> {
    None,
    /// A draft checked (`applying: false`) or refused on apply; nothing was written.
    Draft {
        path: &'a str,
        draft: &'a str,
        diagnostics: &'a [Diagnostic],
        applying: bool,
    },
    /// Written and live.
    Applied {
        version: u32,
        path: &'a str,
        warnings: &'a [Diagnostic],
    },
    /// Refused for another reason (a bad path, a failed write).
    Failed {
        path: &'a str,
        draft: &'a str,
        message: &'a str,
    },
}

impl Outcome<'_> {
    fn path(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Draft { path, .. } | Self::Applied { path, .. } | Self::Failed { path, .. } => {
                Some(path)
            }
        }
    }

    fn draft(&self) -> Option<&str> {
        match self {
            Self::Draft { draft, .. } | Self::Failed { draft, .. } => Some(draft),
            _ => None,
        }
    }

    /// Whether the field's text is in error.
    fn invalid(&self) -> bool {
        match self {
            Self::Draft { diagnostics, .. } => {
                diagnostics.iter().any(|d| d.severity == Severity::Error)
            }
            Self::Failed { .. } => true,
            _ => false,
        }
    }
}

/// The explain form's values and its answer.
pub struct ExplainView<'a> {
    pub to: &'a str,
    pub from: &'a str,
    pub at: &'a str,
    pub result: Result<&'a str, &'a str>,
}

/// One finding as `file:line:column: severity: message`, with its help below.
fn diagnostic_item(d: &Diagnostic) -> String {
    let help = d
        .help
        .as_deref()
        .map(|h| format!("<br>{}", escape(h)))
        .unwrap_or_default();
    format!(
        "<li><code>{file}:{line}:{column}</code>: {severity}: {message}{help}</li>\n",
        file = escape(&d.file),
        line = d.line,
        column = d.column,
        severity = d.severity,
        message = escape(&d.message),
    )
}

/// The outcome's message and findings for the field `field_id` (the block's id is
/// `{field_id}-result`).
fn outcome_block(t: &Texts, outcome: &Outcome<'_>, field_id: &str) -> String {
    let count_errors = |diagnostics: &[Diagnostic]| {
        diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    };
    let (class, role, message, diagnostics): (_, _, String, &[Diagnostic]) = match outcome {
        Outcome::None => return String::new(),
        Outcome::Draft {
            path,
            diagnostics,
            applying,
            ..
        } => {
            let errors = count_errors(diagnostics);
            if errors == 0 {
                (
                    "notice",
                    "status",
                    t.checked_clean.replace("{path}", path),
                    diagnostics,
                )
            } else {
                let text = if *applying {
                    t.apply_refused
                } else {
                    t.checked_errors
                };
                (
                    "error",
                    "alert",
                    text.replace("{n}", &errors.to_string()),
                    diagnostics,
                )
            }
        }
        Outcome::Applied {
            version,
            path,
            warnings,
        } => (
            "notice",
            "status",
            t.applied
                .replace("{path}", path)
                .replace("{n}", &version.to_string()),
            warnings,
        ),
        Outcome::Failed { message, .. } => {
            ("error", "alert", format!("{}: {message}", t.error), &[])
        }
    };
    let mut block = format!(
        "<div id=\"{field_id}-result\">\n<p class=\"{class}\" role=\"{role}\">{}</p>\n",
        escape(&message)
    );
    if !diagnostics.is_empty() {
        let _ = writeln!(
            block,
            "<ul class=\"diagnostics\" aria-label=\"{}\">",
            escape(t.findings)
        );
        for d in diagnostics {
            block.push_str(&diagnostic_item(d));
        }
        block.push_str("</ul>\n");
    }
    block.push_str("</div>\n");
    block
}

/// The textarea of `field_id` with its label, tied to the outcome block when there is one.
fn text_field(field_id: &str, label: &str, text: &str, described: bool, invalid: bool) -> String {
    let described = if described {
        format!(" aria-describedby=\"{field_id}-result\"")
    } else {
        String::new()
    };
    let invalid = if invalid {
        " aria-invalid=\"true\""
    } else {
        ""
    };
    format!(
        "<p><label for=\"{field_id}\">{label}</label>\n\
         <textarea id=\"{field_id}\" name=\"text\" rows=\"18\" spellcheck=\"false\" \
         autocapitalize=\"off\"{described}{invalid}>\n{text}</textarea></p>\n",
        label = escape(label),
        // The newline after the start tag is dropped by the HTML parser, so a text that
        // starts with a blank line keeps it.
        text = escape(text),
    )
}

fn buttons(t: &Texts) -> String {
    format!(
        "<p class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"check\">{}</button>\
         <button type=\"submit\" name=\"action\" value=\"apply\">{}</button></p>\n",
        escape(t.check),
        escape(t.apply)
    )
}

/// `/console/dialplan`: the live version, the explain form, each file with its edit form,
/// and a form for a new file.
pub fn plan(
    language: Language,
    viewer: &Viewer<'_>,
    view: &PlanView<'_>,
    outcome: &Outcome<'_>,
    explained: Option<&ExplainView<'_>>,
) -> String {
    let t = texts(language);
    let mut main = String::new();
    let _ = writeln!(
        main,
        "<p>{live} {directory}: <code>{dir}</code></p>",
        live = escape(&t.live.replace("{n}", &view.live_version.to_string())),
        directory = escape(t.directory),
        dir = escape(view.directory),
    );
    if let Some(error) = view.refused {
        let _ = writeln!(
            main,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(
                &t.refused_on_disk
                    .replace("{n}", &view.live_version.to_string())
                    .replace("{error}", error)
            )
        );
    }
    let _ = writeln!(
        main,
        "<p><a href=\"/console/dialplan/history\">{}</a></p>",
        escape(t.history_link)
    );
    let files: &[PlanFile] = match view.files {
        Ok(files) => files,
        Err(error) => {
            let _ = writeln!(
                main,
                "<p class=\"error\" role=\"alert\">{}: {}</p>",
                escape(t.error),
                escape(error)
            );
            &[]
        }
    };
    let outcome_file = outcome
        .path()
        .and_then(|path| files.iter().position(|(p, _)| p == path));
    // A short pointer at the top: the findings themselves sit with their field.
    if let Some(path) = outcome.path() {
        let target = outcome_file.map_or("new".to_owned(), |i| format!("file-{i}"));
        let _ = writeln!(
            main,
            "<p><a href=\"#{target}\">{}</a></p>",
            escape(&t.see_file.replace("{path}", path))
        );
    }

    explain_section(&mut main, t, explained);

    if files.is_empty() && view.files.is_ok() {
        let _ = writeln!(main, "<p>{}</p>", escape(t.no_files));
    }
    for (i, (path, text)) in files.iter().enumerate() {
        let field_id = format!("file-{i}");
        let ours = outcome_file == Some(i);
        let draft = if ours {
            outcome.draft().unwrap_or(text)
        } else {
            text
        };
        let _ = write!(
            main,
            "<section aria-labelledby=\"{field_id}-heading\">\n\
             <h2 id=\"{field_id}-heading\">{heading}</h2>\n\
             <details><summary>{show}</summary>\n<pre tabindex=\"0\">{text}</pre></details>\n\
             <form method=\"post\" action=\"/console/dialplan\">{csrf}\n\
             <input type=\"hidden\" name=\"path\" value=\"{path}\">\n",
            heading = escape(&t.file_heading.replace("{path}", path)),
            show = escape(t.show_file),
            text = escape(text),
            csrf = csrf_field(viewer.csrf_token),
            path = escape(path),
        );
        if ours {
            main.push_str(&outcome_block(t, outcome, &field_id));
        }
        main.push_str(&text_field(
            &field_id,
            &t.text_of.replace("{path}", path),
            draft,
            ours,
            ours && outcome.invalid(),
        ));
        main.push_str(&buttons(t));
        main.push_str("</form>\n</section>\n");
    }

    // A new file: its path is typed, so an outcome for a path not on disk lands here.
    let new_outcome = outcome.path().is_some() && outcome_file.is_none();
    let (new_path, new_text) = if new_outcome {
        (outcome.path().unwrap_or(""), outcome.draft().unwrap_or(""))
    } else {
        ("", "")
    };
    let path_invalid = new_outcome && matches!(outcome, Outcome::Failed { .. });
    let _ = write!(
        main,
        "<section aria-labelledby=\"new-heading\">\n<h2 id=\"new-heading\">{heading}</h2>\n\
         <form method=\"post\" action=\"/console/dialplan\">{csrf}\n",
        heading = escape(t.new_file),
        csrf = csrf_field(viewer.csrf_token),
    );
    if new_outcome {
        main.push_str(&outcome_block(t, outcome, "new"));
    }
    let path_described = if new_outcome {
        "new-path-hint new-result"
    } else {
        "new-path-hint"
    };
    let _ = write!(
        main,
        "<p><label for=\"new-path\">{label}</label>\n\
         <input id=\"new-path\" name=\"path\" required maxlength=\"255\" autocapitalize=\"off\" \
         spellcheck=\"false\" value=\"{value}\" aria-describedby=\"{path_described}\"{invalid}>\n\
         <span class=\"hint\" id=\"new-path-hint\">{hint}</span></p>\n",
        label = escape(t.new_path),
        value = escape(new_path),
        hint = escape(t.new_path_hint),
        invalid = if path_invalid {
            " aria-invalid=\"true\""
        } else {
            ""
        },
    );
    main.push_str(&text_field(
        "new",
        t.new_text,
        new_text,
        new_outcome,
        new_outcome && outcome.invalid(),
    ));
    main.push_str(&buttons(t));
    main.push_str("</form>\n</section>\n");
    dialplan_page(language, viewer, t.heading, &main)
}

fn explain_section(main: &mut String, t: &Texts, explained: Option<&ExplainView<'_>>) {
    let (to, from, at) = explained.map_or(("", "", ""), |e| (e.to, e.from, e.at));
    let failed = explained.is_some_and(|e| e.result.is_err());
    let error_attrs = if failed {
        " aria-describedby=\"explain-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let _ = write!(
        main,
        "<section aria-labelledby=\"explain-heading\">\n\
         <h2 id=\"explain-heading\">{heading}</h2>\n\
         <form method=\"get\" action=\"/console/dialplan/explain\">\n\
         <p><label for=\"explain-to\">{dialled}</label>\n\
         <input id=\"explain-to\" name=\"to\" required maxlength=\"64\" inputmode=\"tel\" \
         autocomplete=\"off\" value=\"{to}\"{error_attrs}></p>\n\
         <p><label for=\"explain-from\">{caller}</label>\n\
         <input id=\"explain-from\" name=\"from\" maxlength=\"64\" inputmode=\"tel\" \
         autocomplete=\"off\" value=\"{from}\"></p>\n\
         <p><label for=\"explain-at\">{at_label}</label>\n\
         <input id=\"explain-at\" name=\"at\" maxlength=\"32\" autocomplete=\"off\" value=\"{at}\"></p>\n\
         <p><button type=\"submit\">{explain}</button></p>\n</form>\n",
        heading = escape(t.explain_heading),
        dialled = escape(t.dialled),
        caller = escape(t.caller),
        at_label = escape(t.at),
        explain = escape(t.explain),
        to = escape(to),
        from = escape(from),
        at = escape(at),
    );
    match explained.map(|e| e.result) {
        None => {}
        Some(Ok(text)) => {
            let _ = write!(
                main,
                "<h3 id=\"explanation-heading\">{}</h3>\n\
                 <pre id=\"explanation\" role=\"region\" tabindex=\"0\" aria-labelledby=\"explanation-heading\">{}</pre>\n",
                escape(t.explanation),
                escape(text)
            );
        }
        Some(Err(error)) => {
            let _ = writeln!(
                main,
                "<p class=\"error\" role=\"alert\" id=\"explain-error\">{}: {}</p>",
                escape(t.error),
                escape(error)
            );
        }
    }
    main.push_str("</section>\n");
}

/// A version as the history lists it.
pub struct HistoryLine<'a> {
    pub version: u32,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub at: String,
    pub comment: &'a str,
    pub files: &'a [String],
}

/// What to tell above the history.
pub enum HistoryNotice<'a> {
    None,
    RolledBack { to: u32, live: u32 },
    Error(&'a str),
}

/// `/console/dialplan/history`: every version, a link to its changes, a rollback button for
/// each one not live.
pub fn history(
    language: Language,
    viewer: &Viewer<'_>,
    live: u32,
    lines: &[HistoryLine<'_>],
    notice: HistoryNotice<'_>,
) -> String {
    let t = texts(language);
    let mut main = String::new();
    match notice {
        HistoryNotice::None => {}
        HistoryNotice::RolledBack { to, live } => {
            let _ = writeln!(
                main,
                "<p class=\"notice\" role=\"status\">{}</p>",
                escape(
                    &t.rolled_back
                        .replace("{to}", &to.to_string())
                        .replace("{live}", &live.to_string())
                )
            );
        }
        HistoryNotice::Error(message) => {
            let _ = writeln!(
                main,
                "<p class=\"error\" role=\"alert\">{}: {}</p>",
                escape(t.error),
                escape(message)
            );
        }
    }
    let _ = writeln!(
        main,
        "<p>{} <a href=\"/console/dialplan\">{}</a></p>",
        escape(&t.live.replace("{n}", &live.to_string())),
        escape(t.back_to_plan)
    );
    if lines.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(t.no_versions));
        return dialplan_page(language, viewer, t.history_heading, &main);
    }
    let _ = write!(
        main,
        "<div class=\"scroll\" role=\"region\" aria-labelledby=\"history-caption\" tabindex=\"0\">\n\
         <table>\n<caption id=\"history-caption\">{caption}</caption>\n\
         <thead><tr><th scope=\"col\">{version}</th><th scope=\"col\">{time}</th>\
         <th scope=\"col\">{comment}</th><th scope=\"col\">{files}</th>\
         <th scope=\"col\">{changes}</th><th scope=\"col\">{action}</th></tr></thead>\n<tbody>\n",
        caption = escape(t.history_table),
        version = escape(t.version),
        time = escape(t.time),
        comment = escape(t.comment),
        files = escape(t.files),
        changes = escape(t.changes),
        action = escape(t.action),
    );
    for line in lines {
        let marker = if line.version == live {
            format!(" <strong>({})</strong>", escape(t.live_marker))
        } else {
            String::new()
        };
        let changes = if line.version > 1 {
            let previous = line.version - 1;
            format!(
                "<a href=\"/console/dialplan/diff?from={previous}&amp;to={version}\">{}</a>",
                escape(&t.diff_from.replace("{n}", &previous.to_string())),
                version = line.version,
            )
        } else {
            "–".to_owned()
        };
        let action = if line.version == live {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/console/dialplan/rollback\">{csrf}\
                 <input type=\"hidden\" name=\"version\" value=\"{version}\">\
                 <button type=\"submit\">{label}</button></form>",
                csrf = csrf_field(viewer.csrf_token),
                version = line.version,
                label = escape(&t.rollback.replace("{n}", &line.version.to_string())),
            )
        };
        let files: Vec<String> = line.files.iter().map(|f| escape(f)).collect();
        let _ = writeln!(
            main,
            "<tr><th scope=\"row\">{version}{marker}</th><td>{at}</td><td>{comment}</td>\
             <td>{files}</td><td>{changes}</td><td>{action}</td></tr>",
            version = line.version,
            at = escape(&line.at),
            comment = escape(line.comment),
            files = files.join("<br>"),
        );
    }
    main.push_str("</tbody>\n</table>\n</div>\n");
    dialplan_page(language, viewer, t.history_heading, &main)
}

/// The changes between two versions.
pub struct DiffView<'a> {
    pub from: u32,
    pub to: u32,
    pub files: &'a [FileDiff],
}

/// `/console/dialplan/diff`: each changed file's unified diff; added lines as `<ins>`,
/// removed ones as `<del>`, their `+`/`-` kept so the page reads without colour too.
pub fn diff(language: Language, viewer: &Viewer<'_>, view: &DiffView<'_>) -> String {
    let t = texts(language);
    let heading = t
        .diff_heading
        .replace("{from}", &view.from.to_string())
        .replace("{to}", &view.to.to_string());
    let mut main = format!(
        "<p><a href=\"/console/dialplan/history\">{}</a></p>\n",
        escape(t.back_to_history)
    );
    if view.files.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(t.same));
    }
    for (i, file) in view.files.iter().enumerate() {
        let _ = write!(
            main,
            "<h2 id=\"diff-{i}\">{path}</h2>\n<pre class=\"diff\" role=\"region\" tabindex=\"0\" aria-labelledby=\"diff-{i}\">",
            path = escape(&file.path)
        );
        for line in file.diff.lines() {
            let text = escape(line);
            if line.starts_with("+++") || line.starts_with("---") {
                let _ = writeln!(main, "<span class=\"meta\">{text}</span>");
            } else if line.starts_with("@@") {
                let _ = writeln!(main, "<span class=\"hunk\">{text}</span>");
            } else if line.starts_with('+') {
                let _ = writeln!(main, "<ins>{text}</ins>");
            } else if line.starts_with('-') {
                let _ = writeln!(main, "<del>{text}</del>");
            } else {
                let _ = writeln!(main, "{text}");
            }
        }
        main.push_str("</pre>\n");
    }
    dialplan_page(language, viewer, &heading, &main)
}

/// The diff page when the versions cannot be compared.
pub fn diff_failed(language: Language, viewer: &Viewer<'_>, message: &str) -> String {
    let t = texts(language);
    let main = format!(
        "<p class=\"error\" role=\"alert\">{}: {}</p>\n<p><a href=\"/console/dialplan/history\">{}</a></p>\n",
        escape(t.error),
        escape(message),
        escape(t.back_to_history)
    );
    dialplan_page(language, viewer, t.history_heading, &main)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEWER: Viewer<'static> = Viewer {
        name: "alice",
        admin: true,
        town_admin: true,
        csrf_token: "tok",
    };

    fn files() -> Vec<PlanFile> {
        vec![("main.toml".into(), "[[rule]]\n".into())]
    }

    fn error_at(file: &str, line: usize, column: usize) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line,
            column,
            message: "unknown action \"<dance>\"".into(),
            help: None,
        }
    }

    #[test]
    fn a_refused_draft_shows_file_line_column_tied_to_its_textarea() {
        let files = files();
        let diagnostics = [error_at("main.toml", 3, 13)];
        let view = PlanView {
            live_version: 4,
            refused: None,
            directory: "/etc/amtsleitung/dialplans",
            files: Ok(&files),
        };
        let outcome = Outcome::Draft {
            path: "main.toml",
            draft: "broken <draft>",
            diagnostics: &diagnostics,
            applying: true,
        };
        let html = plan(Language::English, &VIEWER, &view, &outcome, None);
        assert!(
            html.contains(
                "<code>main.toml:3:13</code>: error: unknown action &quot;&lt;dance&gt;&quot;"
            ),
            "{html}"
        );
        assert!(
            html.contains("id=\"file-0\" name=\"text\" rows=\"18\" spellcheck=\"false\" autocapitalize=\"off\" aria-describedby=\"file-0-result\" aria-invalid=\"true\">\nbroken &lt;draft&gt;</textarea>"),
            "{html}"
        );
        assert!(html.contains("<div id=\"file-0-result\">"), "{html}");
        assert!(html.contains("Not applied: 1 error(s)."), "{html}");
        assert!(html.contains("Version 4 is live."), "{html}");
    }

    #[test]
    fn every_form_has_the_csrf_token_every_field_a_label_and_no_inline_script_or_style() {
        let files = files();
        let view = PlanView {
            live_version: 1,
            refused: None,
            directory: "d",
            files: Ok(&files),
        };
        for language in [Language::German, Language::English] {
            let html = plan(language, &VIEWER, &view, &Outcome::None, None);
            let post_forms = html.matches("<form method=\"post\"").count();
            // sign-out, the file, the new file
            assert_eq!(post_forms, 3, "{html}");
            assert_eq!(
                html.matches("name=\"csrf\" value=\"tok\"").count(),
                post_forms
            );
            for id in [
                "file-0",
                "new-path",
                "new",
                "explain-to",
                "explain-from",
                "explain-at",
            ] {
                assert!(
                    html.contains(&format!("<label for=\"{id}\">")),
                    "{id}: {html}"
                );
            }
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("style="), "{html}");
            assert!(!html.contains("<style"), "{html}");
        }
        let html = plan(Language::German, &VIEWER, &view, &Outcome::None, None);
        assert!(html.contains("Live ist Version 1."), "{html}");
        assert!(html.contains(">Übernehmen</button>"), "{html}");
    }

    #[test]
    fn history_offers_diffs_and_rollback_for_versions_not_live() {
        let paths = vec!["main.toml".to_owned()];
        let lines = [
            HistoryLine {
                version: 2,
                at: "2026-01-02 10:00:00".into(),
                comment: "console: alice",
                files: &paths,
            },
            HistoryLine {
                version: 1,
                at: "2026-01-01 10:00:00".into(),
                comment: "loaded at start",
                files: &paths,
            },
        ];
        let html = history(Language::English, &VIEWER, 2, &lines, HistoryNotice::None);
        assert!(
            html.contains("/console/dialplan/diff?from=1&amp;to=2"),
            "{html}"
        );
        assert!(html.contains(">Roll back to version 1</button>"), "{html}");
        assert!(!html.contains("Roll back to version 2"), "{html}");
        assert!(html.contains("console: alice"), "{html}");
    }

    #[test]
    fn diff_lines_are_marked_and_escaped() {
        let files = [FileDiff {
            path: "main.toml".into(),
            diff: "--- version 1/main.toml\n+++ version 2/main.toml\n@@ -1 +1 @@\n-match = \"600\"\n+match = \"<700>\"\n".into(),
        }];
        let html = diff(
            Language::English,
            &VIEWER,
            &DiffView {
                from: 1,
                to: 2,
                files: &files,
            },
        );
        assert!(
            html.contains("<del>-match = &quot;600&quot;</del>"),
            "{html}"
        );
        assert!(
            html.contains("<ins>+match = &quot;&lt;700&gt;&quot;</ins>"),
            "{html}"
        );
        assert!(html.contains("Changes from version 1 to 2"), "{html}");
    }
}
