//! A throw-away OpenLDAP slapd for the sign-in tests (the recipe of
//! /work/shared/testing/SERVICES.md §2): its own slapd.conf and mdb database in a scratch
//! directory, the memberof overlay, one free port on 127.0.0.1, stopped and removed on drop.
//! The package's own database (/etc/ldap/slapd.d, dc=nodomain) is never touched.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::{TempDir, apt_install, free_tcp_port};

/// The directory's suffix.
pub const BASE: &str = "dc=rathaus,dc=example";
/// The directory's root account (slapd.conf `rootdn`), which needs no entry.
pub const ROOT_DN: &str = "cn=admin,dc=rathaus,dc=example";
/// Its password.
pub const ROOT_PASSWORD: &str = "adminpw";

/// Who may read what: passwords only for binding (and their owners), the rest for everyone.
pub const OPEN_ACCESS: &str = "access to attrs=userPassword by self write by anonymous auth by * none\n\
     access to * by * read\n";

/// A running slapd.
pub struct Slapd {
    child: Option<Child>,
    port: u16,
    /// The ldaps:// port, when slapd has a certificate.
    tls_port: Option<u16>,
    dir: TempDir,
}

/// Installs slapd and ldap-utils when missing (as root, non-interactively) and stops the
/// stock daemon their postinst may have started; once per test binary.
fn ensure_installed() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let present = |path: &str| Path::new(path).exists();
        if !present("/usr/sbin/slapd") || !present("/usr/bin/ldapadd") {
            apt_install(&["slapd", "ldap-utils"]);
            // Without a policy-rc.d that says no, postinst starts the stock daemon (sysv).
            if let Ok(pid) = std::fs::read_to_string("/run/slapd/slapd.pid") {
                let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
            }
        }
        assert!(present("/usr/sbin/slapd"), "no slapd after installing it");
    });
}

impl Slapd {
    /// slapd with [`BASE`], its organisation and `ou=people`, `ou=groups`, readable by all
    /// ([`OPEN_ACCESS`]).
    pub fn start() -> Self {
        Self::start_with_access(OPEN_ACCESS)
    }

    /// The same with other `access` lines (slapd.conf syntax).
    pub fn start_with_access(access: &str) -> Self {
        Self::start_with(access, None)
    }

    /// The same with a certificate and its key (PEM): StartTLS on [`url`](Self::url), and
    /// ldaps:// on [`tls_url`](Self::tls_url).
    pub fn start_with_tls(certificate: &Path, key: &Path) -> Self {
        Self::start_with(OPEN_ACCESS, Some((certificate, key)))
    }

    fn start_with(access: &str, tls: Option<(&Path, &Path)>) -> Self {
        ensure_installed();
        let mut dir = TempDir::new("slapd");
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let t = dir.path().display().to_string();
        let conf = dir.path().join("slapd.conf");
        let tls_lines = match tls {
            Some((certificate, key)) => format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                certificate.display(),
                key.display()
            ),
            None => String::new(),
        };
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 include /etc/ldap/schema/nis.schema\n\
                 {tls_lines}\
                 pidfile {t}/slapd.pid\n\
                 argsfile {t}/slapd.args\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 moduleload memberof\n\
                 database mdb\n\
                 suffix \"{BASE}\"\n\
                 rootdn \"{ROOT_DN}\"\n\
                 rootpw {ROOT_PASSWORD}\n\
                 directory {t}/db\n\
                 maxsize 104857600\n\
                 overlay memberof\n\
                 {access}"
            ),
        )
        .unwrap();
        // The port is free when picked but could be taken before slapd binds it: try again.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_tcp_port();
            let tls_port = tls.map(|_| free_tcp_port());
            let mut listen = format!("ldap://127.0.0.1:{port}/");
            if let Some(tls_port) = tls_port {
                listen.push_str(&format!(" ldaps://127.0.0.1:{tls_port}/"));
            }
            let log = std::fs::File::create(dir.path().join("slapd.log")).unwrap();
            // `-d stats`: stay in the foreground and log every connection and operation
            // (never a password) to stderr, which the tests read.
            let child = Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(&conf)
                .args(["-h", &listen, "-d", "stats"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("run slapd");
            let mut slapd = Self {
                child: Some(child),
                port,
                tls_port,
                dir,
            };
            if slapd.wait_ready(Duration::from_secs(10)) {
                slapd.add(&format!(
                    "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\n\
                     dc: rathaus\no: Rathaus\n\n\
                     dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
                     dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n"
                ));
                return slapd;
            }
            last_log = slapd.log();
            slapd.stop();
            dir = std::mem::replace(&mut slapd.dir, TempDir(std::path::PathBuf::new()));
        }
        panic!("slapd did not start:\n{last_log}");
    }

    /// Whether slapd accepts connections within `timeout` (false once it exited).
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && !matches!(child.try_wait(), Ok(None))
            {
                return false;
            }
            let listening = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if listening(self.port) && self.tls_port.is_none_or(listening) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`, when started with a certificate.
    pub fn tls_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("slapd started without a certificate")
        )
    }

    /// Adds entries (LDIF) as the root account, over LDAP, so that the memberof overlay
    /// sees them (an offline `slapadd` would leave `memberOf` unset).
    pub fn add(&self, ldif: &str) {
        let mut child = Command::new("ldapadd")
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldapadd (apt-get install ldap-utils)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapadd failed: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A salted SHA-1 `userPassword` value, as directories store them (`slappasswd`).
    pub fn hash(password: &str) -> String {
        let out = Command::new("/usr/sbin/slappasswd")
            .args(["-h", "{SSHA}", "-s", password])
            .output()
            .expect("run slappasswd");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// What slapd logged so far (connections and operations, `-d stats`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Bind requests slapd has seen for `dn` (each logs its request, `method=128` for a
    /// simple bind, and, when it succeeds, a second line with the mechanism).
    pub fn binds_as(&self, dn: &str) -> usize {
        self.log()
            .matches(&format!("BIND dn=\"{dn}\" method="))
            .count()
    }

    /// Stops slapd (SIGTERM, then SIGKILL after 5 s) and waits for it; the port is closed
    /// afterwards.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
