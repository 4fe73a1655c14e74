//! The web console over HTTP for the tests: one request and its answer (from here or from
//! inside a test namespace), accounts made with `amtsleitung account`, sign-in, CSRF tokens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{Netns, Server};

/// One HTTP/1.1 exchange: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
}

pub fn request(
    http: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(http).unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept-Language: en\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    // Read as bytes: a recording's body is no UTF-8 (the tests look only at its start).
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {raw}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET path` with a session cookie, answered with JSON.
pub fn get_json(server: &Server, path: &str, cookie: &str) -> serde_json::Value {
    request(server.http, "GET", path, &[("Cookie", cookie)], "").json()
}

pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// `amtsleitung account add` on the server's store, the password on stdin.
pub fn add_account(server: &Server, name: &str, role: &str, password: &str) {
    add_account_with_extension(server, name, role, password, None);
}

/// The same for an account holder with an extension of their own (their desk phone).
pub fn add_account_with_extension(
    server: &Server,
    name: &str,
    role: &str,
    password: &str,
    extension: Option<&str>,
) {
    super::add_console_account_with(server.data_dir(), name, role, password, extension);
}

/// Signs in; the cookie to send back (`amt_console=...`).
pub fn sign_in(server: &Server, name: &str, password: &str) -> String {
    let answer = request(
        server.http,
        "POST",
        "/console/sign-in",
        &[FORM],
        &format!("name={name}&password={password}"),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.header("location"), Some("/console/rooms"));
    let cookie = answer.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token the page's forms carry.
pub fn csrf_of(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// One HTTP exchange from inside `ns` (where the server listens), by curl.
pub fn ns_request(
    ns: &super::Netns,
    http: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut command = ns.command("curl");
    command
        .args(["-s", "-i", "--max-time", "5", "-X", method])
        .arg(format!("http://{http}{path}"));
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    if !body.is_empty() {
        command.arg("--data-binary").arg(body);
    }
    let out = command.output().expect("curl");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer from {http}{path}: {raw}"));
    Answer {
        status,
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: body.to_owned(),
    }
}

/// A signed-in console session, from loopback or from inside the server's namespace.
pub struct Console<'a> {
    pub ns: Option<&'a Netns>,
    pub http: SocketAddr,
    pub cookie: String,
    pub csrf: String,
}

impl<'a> Console<'a> {
    pub fn sign_in(ns: Option<&'a Netns>, server: &Server, name: &str, password: &str) -> Self {
        let mut console = Console {
            ns,
            http: server.http,
            cookie: String::new(),
            csrf: String::new(),
        };
        let answer = console.raw(
            "POST",
            "/console/sign-in",
            &[FORM],
            &format!("name={name}&password={password}"),
        );
        assert_eq!(answer.status, 303, "{}", answer.body);
        console.cookie = answer
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let me = console.get("/api/me").json();
        console.csrf = me["csrf_token"].as_str().unwrap().to_owned();
        console
    }

    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        match self.ns {
            Some(ns) => ns_request(ns, self.http, method, path, headers, body),
            None => request(self.http, method, path, headers, body),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.raw("GET", path, &[("Cookie", &self.cookie)], "")
    }

    /// A JSON request with the session's CSRF header.
    pub fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        self.raw(
            method,
            path,
            &[JSON, ("Cookie", &self.cookie), ("X-CSRF-Token", &self.csrf)],
            body,
        )
    }

    /// The same without the CSRF header.
    pub fn send_without_csrf(&self, method: &str, path: &str, body: &str) -> Answer {
        self.raw(method, path, &[JSON, ("Cookie", &self.cookie)], body)
    }

    /// A form as a browser posts it, with the CSRF field first; `fields` are encoded here.
    pub fn form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut body = format!("csrf={}", encode(&self.csrf));
        for (name, value) in fields {
            body.push_str(&format!("&{name}={}", encode(value)));
        }
        self.raw("POST", path, &[FORM, ("Cookie", &self.cookie)], &body)
    }

    /// `GET /api/users`'s user `extension`.
    pub fn user(&self, extension: &str) -> Option<serde_json::Value> {
        let users = self.get("/api/users").json();
        users
            .as_array()?
            .iter()
            .find(|u| u["extension"] == extension)
            .cloned()
    }
}

/// `application/x-www-form-urlencoded` for one value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
