//! Console sign-in against a real OpenLDAP slapd, through `amtsleitung ldap test USER` as an
//! admin checks the `[ldap]` setting: direct bind and search-then-bind, admin and staff
//! groups, extensions, wrong and empty passwords, injection attempts, and a directory that
//! is gone or does not answer.

mod support;

use std::time::{Duration, Instant};

use support::slapd::{BASE, Slapd};
use support::{Pki, TempDir};

const ANNA: &str = "uid=anna,ou=people,dc=rathaus,dc=example";
const BERND: &str = "uid=bernd,ou=people,dc=rathaus,dc=example";
const ADMINS: &str = "cn=pbx-admins,ou=groups,dc=rathaus,dc=example";
const STAFF: &str = "cn=pbx-staff,ou=groups,dc=rathaus,dc=example";
const READER: &str = "cn=reader,dc=rathaus,dc=example";

/// anna (admin, 101, a hashed password), bernd (staff, 102), carla (in neither group, a
/// full number instead of an extension), the service account `cn=reader`, and the groups.
fn town_hall(slapd: &Slapd) {
    let anna_hash = Slapd::hash("annapw");
    slapd.add(&format!(
        "dn: {ANNA}\nobjectClass: inetOrgPerson\nuid: anna\ncn: Anna Amt\nsn: Amt\n\
         displayName: Anna Amt\ntelephoneNumber: 101\nuserPassword: {anna_hash}\n\n\
         dn: {BERND}\nobjectClass: inetOrgPerson\nuid: bernd\ncn: Bernd Benutzer\n\
         sn: Benutzer\ntelephoneNumber: 102\nuserPassword: berndpw\n\n\
         dn: uid=carla,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: carla\n\
         cn: Carla Chef\nsn: Chef\ntelephoneNumber: +49 711 12345-103\nuserPassword: carlapw\n\n\
         dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: reader\nuserPassword: readerpw\n\n\
         dn: {ADMINS}\nobjectClass: groupOfNames\ncn: pbx-admins\nmember: {ANNA}\n\n\
         dn: {STAFF}\nobjectClass: groupOfNames\ncn: pbx-staff\nmember: {BERND}\n"
    ));
}

fn directory() -> Slapd {
    let slapd = Slapd::start();
    town_hall(&slapd);
    slapd
}

/// `[ldap]` for a direct bind against `url`, with `extra` lines.
fn direct_bind(url: &str, extra: &str) -> String {
    format!(
        "[ldap]\nurl = \"{url}\"\nuser-dn = \"uid={{user}},ou=people,{BASE}\"\n\
         admin-group = \"{ADMINS}\"\n{extra}"
    )
}

/// `[ldap]` that searches for `(uid={user})` as `cn=reader` first.
fn search_bind(url: &str, extra: &str) -> String {
    format!(
        "[ldap]\nurl = \"{url}\"\nsearch-base = \"ou=people,{BASE}\"\n\
         search-filter = \"(&(objectClass=inetOrgPerson)(uid={{user}}))\"\n\
         bind-dn = \"{READER}\"\nbind-password = \"readerpw\"\nadmin-group = \"{ADMINS}\"\n{extra}"
    )
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `amtsleitung ldap test USER` with `config` as its config file and `stdin` typed in.
fn ldap_test(config: &str, user: &str, stdin: &str) -> Outcome {
    let dir = TempDir::new("ldap-cfg");
    let path = dir.path().join("amtsleitung.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = support::output_with_stdin(
        support::amtsleitung()
            .current_dir(dir.path())
            .env("AMT_CONFIG", &path)
            .args(["ldap", "test", user]),
        stdin,
    );
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn assert_refused(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.code, 1, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        !outcome.stdout.contains("signed in"),
        "signed in: {}",
        outcome.stdout
    );
    assert!(outcome.stderr.contains(why), "{}", outcome.stderr);
}

#[test]
fn direct_bind_signs_in_the_admin_and_the_staff_member_with_their_extensions() {
    let slapd = directory();
    let config = direct_bind(&slapd.url(), "");
    let anna = ldap_test(&config, "anna", "annapw\n");
    assert_eq!(anna.code, 0, "{}{}", anna.stdout, anna.stderr);
    assert_eq!(
        anna.stdout.trim(),
        format!("signed in as {ANNA}: admin, extension 101, \"Anna Amt\"")
    );
    // No line end on stdin, and the name typed in capitals: the same account.
    let bernd = ldap_test(&config, "Bernd", "berndpw");
    assert_eq!(bernd.code, 0, "{}{}", bernd.stdout, bernd.stderr);
    assert_eq!(
        bernd.stdout.trim(),
        format!("signed in as {BERND}: staff, extension 102, \"Bernd Benutzer\"")
    );
    // A full number is not an extension.
    let carla = ldap_test(&config, "carla", "carlapw\r\n");
    assert_eq!(carla.code, 0, "{}{}", carla.stdout, carla.stderr);
    assert!(
        carla.stdout.contains("staff, no extension, \"Carla Chef\""),
        "{}",
        carla.stdout
    );
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused_alike() {
    let slapd = directory();
    for config in [direct_bind(&slapd.url(), ""), search_bind(&slapd.url(), "")] {
        assert_refused(
            &ldap_test(&config, "anna", "berndpw\n"),
            "wrong user name or password",
        );
        assert_refused(
            &ldap_test(&config, "nobody", "annapw\n"),
            "wrong user name or password",
        );
    }
}

/// RFC 4513 §5.1.2: a bind with a name and no password is an unauthenticated bind, which
/// servers may answer with success. It must be refused here, and never reach the server.
#[test]
fn an_empty_password_is_refused_without_a_bind() {
    let slapd = directory();
    for config in [direct_bind(&slapd.url(), ""), search_bind(&slapd.url(), "")] {
        for typed in ["\n", ""] {
            assert_refused(
                &ldap_test(&config, "anna", typed),
                "wrong user name or password",
            );
        }
    }
    assert_eq!(slapd.binds_as(ANNA), 0, "{}", slapd.log());
    assert_eq!(slapd.binds_as(READER), 0, "{}", slapd.log());
}

#[test]
fn injection_attempts_in_the_user_name_never_sign_in() {
    let slapd = directory();
    for config in [direct_bind(&slapd.url(), ""), search_bind(&slapd.url(), "")] {
        for name in ["*", "anna)(uid=*", "*)(uid=*", "anna,ou=people", "anna*"] {
            for password in ["annapw\n", "x\n"] {
                let outcome = ldap_test(&config, name, password);
                assert_eq!(
                    outcome.code, 1,
                    "{name:?}: {}{}",
                    outcome.stdout, outcome.stderr
                );
                assert!(
                    !outcome.stdout.contains("signed in"),
                    "{name:?}: {}",
                    outcome.stdout
                );
                assert!(
                    outcome.stderr.contains("not a user name")
                        || outcome.stderr.contains("wrong user name or password"),
                    "{name:?}: {}",
                    outcome.stderr
                );
            }
        }
    }
    // Refused before the directory was asked: no search ran for them.
    assert!(!slapd.log().contains("uid=*"), "{}", slapd.log());
}

#[test]
fn search_bind_finds_the_user_as_the_service_account_then_binds_as_them() {
    let slapd = directory();
    let config = search_bind(&slapd.url(), "");
    let bernd = ldap_test(&config, "bernd", "berndpw\n");
    assert_eq!(bernd.code, 0, "{}{}", bernd.stdout, bernd.stderr);
    assert_eq!(
        bernd.stdout.trim(),
        format!("signed in as {BERND}: staff, extension 102, \"Bernd Benutzer\"")
    );
    assert_eq!(slapd.binds_as(READER), 1, "{}", slapd.log());
    assert_eq!(slapd.binds_as(BERND), 1, "{}", slapd.log());
    let anna = ldap_test(&config, "anna", "annapw\n");
    assert!(
        anna.stdout
            .contains(&format!("{ANNA}: admin, extension 101")),
        "{}{}",
        anna.stdout,
        anna.stderr
    );
    // A wrong service password is the admin's to fix, and says so.
    let broken = config.replace("\"readerpw\"", "\"wrong\"");
    assert_refused(&ldap_test(&broken, "bernd", "berndpw\n"), "bind-dn");
}

#[test]
fn with_a_staff_group_only_its_members_and_the_admins_may_sign_in() {
    let slapd = directory();
    for config in [
        direct_bind(&slapd.url(), &format!("staff-group = \"{STAFF}\"\n")),
        search_bind(&slapd.url(), &format!("staff-group = \"{STAFF}\"\n")),
    ] {
        assert_refused(&ldap_test(&config, "carla", "carlapw\n"), "may not sign in");
        // The password is still checked first: a wrong one says nothing about groups.
        assert_refused(
            &ldap_test(&config, "carla", "wrong\n"),
            "wrong user name or password",
        );
        let bernd = ldap_test(&config, "bernd", "berndpw\n");
        assert!(
            bernd.stdout.contains(": staff,"),
            "{}{}",
            bernd.stdout,
            bernd.stderr
        );
        let anna = ldap_test(&config, "anna", "annapw\n");
        assert!(
            anna.stdout.contains(": admin,"),
            "{}{}",
            anna.stdout,
            anna.stderr
        );
    }
}

/// Where people may not read the groups, the service account reads them; without one the
/// admin is told to configure it.
#[test]
fn groups_the_user_may_not_read_are_read_as_the_service_account() {
    let slapd = Slapd::start_with_access(&format!(
        "access to attrs=userPassword by self write by anonymous auth by * none\n\
         access to dn.subtree=\"ou=groups,{BASE}\" by dn.exact=\"{READER}\" read by * none\n\
         access to * by * read\n"
    ));
    town_hall(&slapd);
    let alone = direct_bind(&slapd.url(), "");
    assert_refused(&ldap_test(&alone, "bernd", "berndpw\n"), "bind-dn");
    // anna's own entry says she is an admin (memberOf): no group to read.
    let anna = ldap_test(&alone, "anna", "annapw\n");
    assert!(
        anna.stdout.contains(": admin,"),
        "{}{}",
        anna.stdout,
        anna.stderr
    );
    let with_reader = direct_bind(
        &slapd.url(),
        &format!("bind-dn = \"{READER}\"\nbind-password = \"readerpw\"\n"),
    );
    let bernd = ldap_test(&with_reader, "bernd", "berndpw\n");
    assert_eq!(bernd.code, 0, "{}{}", bernd.stdout, bernd.stderr);
    assert!(
        bernd.stdout.contains(": staff, extension 102"),
        "{}",
        bernd.stdout
    );
}

/// The password crosses the wire only inside TLS: StartTLS on ldap://, or ldaps://, with
/// the server's certificate checked against `ca-file` (and refused without it).
#[test]
fn starttls_and_ldaps_sign_in_with_the_certificate_checked() {
    let pki = Pki::new();
    let (certificate, key) = pki.cert_for("127.0.0.1", "slapd", 1);
    let slapd = Slapd::start_with_tls(&certificate, &key);
    town_hall(&slapd);
    let ca = format!("ca-file = \"{}\"\n", pki.ca().display());
    let starttls = ldap_test(
        &direct_bind(&slapd.url(), &format!("starttls = true\n{ca}")),
        "anna",
        "annapw\n",
    );
    assert_eq!(starttls.code, 0, "{}{}", starttls.stdout, starttls.stderr);
    assert!(
        starttls.stdout.contains(": admin, extension 101"),
        "{}",
        starttls.stdout
    );
    // StartTLS (RFC 4511 §4.14) came before the bind on that connection.
    let log = slapd.log();
    let extended = log.find("EXT oid=1.3.6.1.4.1.1466.20037").expect(&log);
    let bind = log.find(&format!("BIND dn=\"{ANNA}\"")).expect(&log);
    assert!(extended < bind, "{log}");

    let ldaps = ldap_test(&search_bind(&slapd.tls_url(), &ca), "bernd", "berndpw\n");
    assert_eq!(ldaps.code, 0, "{}{}", ldaps.stdout, ldaps.stderr);
    assert!(
        ldaps.stdout.contains(": staff, extension 102"),
        "{}",
        ldaps.stdout
    );

    // Without the CA, the system's trust store does not know the certificate: no bind.
    let binds = slapd.binds_as(ANNA);
    let untrusted = ldap_test(&direct_bind(&slapd.tls_url(), ""), "anna", "annapw\n");
    assert_refused(&untrusted, "cannot reach the directory server");
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert_eq!(slapd.binds_as(ANNA), binds, "{}", slapd.log());
}

#[test]
fn a_stopped_directory_is_a_clear_cannot_reach_error() {
    let mut slapd = directory();
    let config = direct_bind(&slapd.url(), "timeout-seconds = 2\n");
    slapd.stop();
    let outcome = ldap_test(&config, "anna", "annapw\n");
    assert_refused(
        &outcome,
        &format!("cannot reach the directory server {}", slapd.url()),
    );
    assert!(outcome.stderr.contains("refused"), "{}", outcome.stderr);
    assert!(
        outcome.took < Duration::from_secs(2),
        "took {:?}",
        outcome.took
    );
}

/// A server that takes the connection but never answers: the sign-in gives up after
/// `timeout-seconds`.
#[test]
fn a_directory_that_does_not_answer_times_out() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", silent.local_addr().unwrap());
    let outcome = ldap_test(
        &direct_bind(&url, "timeout-seconds = 1\n"),
        "anna",
        "annapw\n",
    );
    assert_refused(
        &outcome,
        &format!("cannot reach the directory server {url}"),
    );
    assert!(
        outcome.stderr.contains("no answer within 1 s"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.took < Duration::from_secs(4),
        "took {:?}",
        outcome.took
    );
}

#[test]
fn without_an_ldap_section_the_command_says_so_with_exit_2() {
    let outcome = ldap_test("log-format = \"text\"\n", "anna", "annapw\n");
    assert_eq!(outcome.code, 2, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stderr.contains("no [ldap] section"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn plain_ldap_to_another_machine_is_refused_when_the_config_is_read() {
    let outcome = ldap_test(
        &direct_bind("ldap://dc1.rathaus.example", ""),
        "anna",
        "annapw\n",
    );
    assert_eq!(outcome.code, 2, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stderr.contains("amtsleitung.toml:") && outcome.stderr.contains("in the clear"),
        "{}",
        outcome.stderr
    );
}
