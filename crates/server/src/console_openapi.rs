//! The console API's OpenAPI 3.1 description, served at `/api/openapi.json`: one line per
//! operation below, from which the document is built. `tests/console.rs` calls every
//! operation listed here and fails on a 404 or 405, so the list cannot name a route that
//! does not exist.

use serde_json::{Value, json};

/// One operation: method, path, what it does, the JSON body it takes (if any) as
/// `(name, JSON type, required)` fields, and its success status.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<&'static [(&'static str, &'static str, bool)]>,
    pub success: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static [(&'static str, &'static str, bool)]>,
    success: u16,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        body,
        success,
    }
}

/// The call settings a user's and one's own phone settings take alike.
const CALL_SETTINGS: &[(&str, &str, bool)] = &[
    ("dnd", "boolean", false),
    ("forward_always", "string", false),
    ("forward_busy", "string", false),
    ("forward_no_answer", "string", false),
    ("no_answer_seconds", "integer", false),
    ("follow_me", "string", false),
];

/// Every operation of the console's JSON API.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/api/me",
        "Who is signed in: name, role, town (SIP domain), extension and the CSRF token",
        None,
        200,
    ),
    op(
        "get",
        "/api/rooms",
        "The rooms this account may manage (staff: their own; a town's admins: the town's; the system's admins: all)",
        None,
        200,
    ),
    op(
        "post",
        "/api/rooms",
        "Create a room (owner: admins only)",
        Some(&[
            ("number", "string", true),
            ("pin", "string", false),
            ("moderator_pin", "string", false),
            ("max_participants", "integer", false),
            ("wait_for_moderator", "boolean", false),
            ("owner", "string", false),
        ]),
        201,
    ),
    op("get", "/api/rooms/{number}", "One room", None, 200),
    op(
        "delete",
        "/api/rooms/{number}",
        "Delete a room (409 while it is in use)",
        None,
        204,
    ),
    op(
        "get",
        "/api/rooms/{number}/live",
        "Who is in the room now (talking, muted, hands raised); locked, recording",
        None,
        200,
    ),
    op(
        "get",
        "/api/rooms/{number}/events",
        "The live state as server-sent events: at once, then at every change",
        None,
        200,
    ),
    op(
        "put",
        "/api/rooms/{number}/members/{member}/muted",
        "Mute or unmute a member (it hears which)",
        Some(&[("muted", "boolean", true)]),
        204,
    ),
    op(
        "delete",
        "/api/rooms/{number}/members/{member}",
        "Remove a member: its call ends",
        None,
        204,
    ),
    op(
        "put",
        "/api/rooms/{number}/locked",
        "Lock or unlock the room while it is in use",
        Some(&[("locked", "boolean", true)]),
        204,
    ),
    op(
        "post",
        "/api/rooms/{number}/end",
        "End the conference for everyone in it",
        None,
        204,
    ),
    op(
        "post",
        "/api/rooms/{number}/mute-all",
        "Mute everyone but the moderators",
        None,
        200,
    ),
    op(
        "put",
        "/api/rooms/{number}/recording",
        "Start or stop the room's recording (everyone hears which)",
        Some(&[("recording", "boolean", true)]),
        204,
    ),
    op(
        "get",
        "/api/calls",
        "Call records, newest first (admins; ?since=YYYY-MM-DD&q=number or reason)",
        None,
        200,
    ),
    op(
        "get",
        "/api/calls.csv",
        "The same call records as CSV (admins)",
        None,
        200,
    ),
    op(
        "get",
        "/api/system",
        "Health, calls and rooms now, registered phones, trunks (admins)",
        None,
        200,
    ),
    op(
        "get",
        "/api/audit",
        "The audit log, newest first (admins; ?actor=name)",
        None,
        200,
    ),
    op(
        "get",
        "/api/recordings",
        "Recordings of the rooms this account owns (admins: all)",
        None,
        200,
    ),
    op(
        "get",
        "/api/recordings/{id}/audio",
        "A recording's WAV file (?download=1 as an attachment)",
        None,
        200,
    ),
    op(
        "delete",
        "/api/recordings/{id}",
        "Delete a recording and its file",
        None,
        204,
    ),
    op(
        "get",
        "/api/users",
        "Every user with its registered phones and call settings (admins)",
        None,
        200,
    ),
    op(
        "post",
        "/api/users",
        "Add a user: the columns of a `user import` row as fields (admins)",
        Some(&[
            ("extension", "string", true),
            ("name", "string", true),
            ("password", "string", true),
            ("allow", "string", false),
            ("max_contacts", "integer", false),
            ("language", "string", false),
        ]),
        201,
    ),
    op(
        "post",
        "/api/users/import",
        "Import users from CSV (the body, text/csv): all or none (admins)",
        None,
        201,
    ),
    op(
        "get",
        "/api/users/{extension}",
        "One user (admins)",
        None,
        200,
    ),
    op(
        "delete",
        "/api/users/{extension}",
        "Delete a user (admins)",
        None,
        204,
    ),
    op(
        "put",
        "/api/users/{extension}/password",
        "Set a user's SIP password (admins)",
        Some(&[("password", "string", true)]),
        204,
    ),
    op(
        "put",
        "/api/users/{extension}/settings",
        "Change do not disturb, forwarding, follow-me; fields left out stay (admins)",
        Some(CALL_SETTINGS),
        200,
    ),
    op(
        "get",
        "/api/bans",
        "Addresses banned for wrong passwords (admins)",
        None,
        200,
    ),
    op(
        "delete",
        "/api/bans/{address}",
        "Lift a ban (admins)",
        None,
        204,
    ),
    op(
        "get",
        "/api/phone",
        "This account's own extension: phones, settings, voicemail counts",
        None,
        200,
    ),
    op(
        "put",
        "/api/phone/settings",
        "Change this account's own call settings (as for a user)",
        Some(CALL_SETTINGS),
        200,
    ),
    op(
        "get",
        "/api/phone/voicemail",
        "This account's voicemail messages",
        None,
        200,
    ),
    op(
        "get",
        "/api/phone/voicemail/{id}/audio",
        "A voicemail message's WAV (?download=1 as an attachment)",
        None,
        200,
    ),
    op(
        "delete",
        "/api/phone/voicemail/{id}",
        "Delete a voicemail message",
        None,
        204,
    ),
    op(
        "get",
        "/api/dialplan",
        "The dialplan files and the version live now (admins)",
        None,
        200,
    ),
    op(
        "post",
        "/api/dialplan/check",
        "Check drafts as the whole plan would be with them: diagnostics with file:line:column (admins)",
        Some(&[("files", "object", true)]),
        200,
    ),
    op(
        "post",
        "/api/dialplan/apply",
        "Check, write and load drafts; 422 with the diagnostics when refused (admins)",
        Some(&[("files", "object", true)]),
        200,
    ),
    op(
        "get",
        "/api/dialplan/history",
        "Every dialplan version: when, who, files (admins)",
        None,
        200,
    ),
    op(
        "get",
        "/api/dialplan/versions/{version}",
        "The files of one version (admins)",
        None,
        200,
    ),
    op(
        "get",
        "/api/dialplan/diff",
        "Unified diff between versions ?from=N&to=M (admins)",
        None,
        200,
    ),
    op(
        "post",
        "/api/dialplan/rollback",
        "Write an earlier version back and load it (admins)",
        Some(&[("version", "integer", true)]),
        200,
    ),
    op(
        "get",
        "/api/dialplan/explain",
        "How the live plan routes a call ?to=&from=&at= (admins)",
        None,
        200,
    ),
    op(
        "get",
        "/api/tokens",
        "This account's API tokens (admins: all), without secrets",
        None,
        200,
    ),
    op(
        "post",
        "/api/tokens",
        "Make an API token for this account; its secret is in this answer only",
        Some(&[("label", "string", true)]),
        201,
    ),
    op(
        "delete",
        "/api/tokens/{id}",
        "Revoke an API token",
        None,
        204,
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The OpenAPI document of [`OPERATIONS`].
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for operation in OPERATIONS {
        let mut responses = serde_json::Map::new();
        let success = if operation.success == 204 {
            json!({"description": "done"})
        } else {
            json!({"description": "done", "content": {"application/json": {"schema": {}}}})
        };
        responses.insert(operation.success.to_string(), success);
        responses.insert(
            "401".into(),
            json!({"$ref": "#/components/responses/SignedOut"}),
        );
        responses.insert(
            "403".into(),
            json!({"$ref": "#/components/responses/Forbidden"}),
        );
        let mut entry = json!({ "summary": operation.summary });
        if let Some(fields) = operation.body {
            let properties: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(name, kind, _)| ((*name).to_owned(), json!({ "type": kind })))
                .collect();
            let required: Vec<&str> = fields
                .iter()
                .filter(|(_, _, required)| *required)
                .map(|(name, _, _)| *name)
                .collect();
            entry["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {
                    "type": "object", "properties": properties, "required": required
                }}}
            });
            responses.insert(
                "400".into(),
                json!({"$ref": "#/components/responses/BadRequest"}),
            );
        }
        entry["responses"] = Value::Object(responses);
        let parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            entry["parameters"] = Value::Array(parameters);
        }
        let item = paths.entry(operation.path).or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "amtsleitung console API",
            "version": "1",
            "description": "The JSON API behind the web console. Sign in with POST /console/sign-in \
                (form fields name and password) for the session cookie amt_console, and send \
                GET /api/me's csrf_token as X-CSRF-Token with every change; or send an API token \
                (amtsleitung account token add) as Authorization: Bearer, which needs no CSRF \
                token. Errors are {\"error\": code, \"reason\": text}."
        },
        "security": [{"session": [], "csrf": []}, {"token": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "amt_console"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {"Error": {"type": "object", "properties": {
                "error": {"type": "string"}, "reason": {"type": "string"}
            }}},
            "responses": {
                "SignedOut": error_response("no live session or API token"),
                "Forbidden": error_response("this account may not see or change that, or the CSRF token is missing"),
                "BadRequest": error_response("the request is malformed or refused")
            }
        },
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_described_once_with_its_path_parameters() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for operation in OPERATIONS {
            assert!(
                seen.insert((operation.method, operation.path)),
                "{} {} twice",
                operation.method,
                operation.path
            );
            let entry = &doc["paths"][operation.path][operation.method];
            assert!(entry["summary"].is_string(), "{entry}");
            assert!(entry["responses"]["401"].is_object(), "{entry}");
        }
        let live = &doc["paths"]["/api/rooms/{number}/members/{member}/muted"]["put"];
        assert_eq!(live["parameters"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            live["requestBody"]["content"]["application/json"]["schema"]["required"],
            json!(["muted"])
        );
    }
}
