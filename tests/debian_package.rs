//! The Debian package as a town hall's IT installs it: `scripts/build-deb.sh` builds it,
//! `dpkg -i` installs it on this machine, the server runs as the package's user on the
//! installed config, the offline commands typed elsewhere act on the same store, and remove
//! and purge leave nothing behind but what Debian policy keeps (the system user).
//!
//! Installs into the real `/usr`, `/etc` and `/var/lib` (the suite runs as root on a
//! throw-away machine); the server runs inside the test's network namespace.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Netns, PacketCounter, TempDir, binary, repo, wait_until};

const USER: &str = "amtsleitung";

fn dpkg(args: &[&str]) -> std::process::Output {
    Command::new("dpkg").args(args).output().expect("dpkg")
}

/// Runs the installed binary as the package's user, from `/tmp` (not where any config is).
fn as_package_user(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--init-groups",
            "/usr/bin/amtsleitung",
        ])
        .args(args)
        .current_dir("/tmp")
        .env_remove("AMT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_package_installs_runs_as_its_user_and_purges_clean() {
    // A package left over by an aborted run would make this an upgrade.
    let _ = dpkg(&["--purge", "amtsleitung"]);
    let built = Command::new(repo().join("scripts/build-deb.sh"))
        .arg(binary())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-deb.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = repo().join(String::from_utf8_lossy(&built.stdout).trim());
    let installed = dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(
        installed.status.success(),
        "dpkg -i: {}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    for path in [
        "/usr/bin/amtsleitung",
        "/etc/amtsleitung/amtsleitung.toml",
        "/etc/amtsleitung/dialplans/default.toml",
        "/usr/share/amtsleitung/sounds/de/welcome.wav",
        "/lib/systemd/system/amtsleitung.service",
    ] {
        assert!(Path::new(path).exists(), "{path} not installed");
    }
    let owner = Command::new("stat")
        .args(["-c", "%U %a", "/var/lib/amtsleitung"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout).trim(),
        "amtsleitung 750",
        "the data directory belongs to the package's user"
    );
    if let Ok(verify) = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/amtsleitung.service"])
        .output()
    {
        assert!(
            verify.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    // The habit of typing admin commands as root, here before the service ever ran: the
    // command acts as the data directory's owner, so the store it creates belongs to the
    // service's user, which starts on it below (a root-owned store would stop it).
    let as_root = Command::new("/usr/bin/amtsleitung")
        .args(["room", "create", "4712"])
        .current_dir("/tmp")
        .env_remove("AMT_CONFIG")
        .output()
        .unwrap();
    assert!(as_root.status.success(), "{as_root:?}");
    let owners = Command::new("find")
        .args(["/var/lib/amtsleitung", "!", "-user", USER])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&owners.stdout).trim(),
        "",
        "files in the data directory not owned by {USER}"
    );

    // The server as the unit runs it: the package's user, port 5060 by the one capability,
    // the config found at /etc from `/`.
    let ns = Netns::new();
    let logs = TempDir::new("deb-log");
    let log_path = logs.path().join("server.log");
    let mut server = ns
        .command("setpriv")
        .args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--init-groups",
            "--inh-caps=+net_bind_service",
            "--ambient-caps=+net_bind_service",
            "/usr/bin/amtsleitung",
            "serve",
        ])
        .current_dir("/")
        .env_remove("AMT_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || log().contains("is ready")),
        "the installed server did not start:\n{}",
        log()
    );
    assert!(
        log().contains("config=/etc/amtsleitung/amtsleitung.toml"),
        "{}",
        log()
    );

    // An admin creates a room from another directory: the installed config's store.
    let (ok, _, err) = as_package_user(&["room", "create", "4711"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("store /var/lib/amtsleitung/amtsleitung.db"),
        "{err}"
    );

    // The echo test answers and echoes.
    let calls = TempDir::new("deb-calls");
    let scenario = support::pcmu_call_scenario(&calls);
    let call = |number: &str, port: u16, media: u16, millis: u32| {
        support::sipp_call_spawn(&ns, &scenario, number, port, media, millis)
    };
    let echo = PacketCounter::any_source(&ns, 6000);
    assert!(
        call("600", 5070, 6000, 2000).wait().unwrap().success(),
        "the echo call failed\n{}",
        log()
    );
    assert!(
        echo.packets() > 20,
        "no echo: {} packets\n{}",
        echo.packets(),
        log()
    );

    // A caller in the room: the offline command sees the server's live room through the same
    // store and refuses to delete it, then ends its calls when told to.
    let mut in_room = call("84711", 5072, 6100, 15000);
    assert!(
        wait_until(Duration::from_secs(5), || log()
            .contains("joining conference")),
        "{}",
        log()
    );
    // The server reports its open rooms to the store once a second.
    std::thread::sleep(Duration::from_secs(2));
    let (ok, _, err) = as_package_user(&["room", "delete", "4711"]);
    assert!(!ok && err.contains("in use by 1 caller(s)"), "{err}");
    let (ok, _, err) = as_package_user(&["room", "delete", "4711", "--end-calls"]);
    assert!(ok, "{err}");
    assert!(
        wait_until(Duration::from_secs(8), || log()
            .contains("room closed by an admin")),
        "the server did not end the room the CLI deleted\n{}",
        log()
    );
    let _ = in_room.kill();
    let _ = in_room.wait();
    let (ok, out, err) = as_package_user(&["calls", "list", "--since", "2000-01-01"]);
    assert!(ok && out.contains(" 600 "), "{out}{err}");
    let _ = server.kill();
    let _ = server.wait();

    // Remove keeps the configuration and the data; purge takes them too. The system user
    // stays, as Debian policy recommends.
    let removed = dpkg(&["--remove", "amtsleitung"]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(!Path::new("/usr/bin/amtsleitung").exists());
    assert!(!Path::new("/usr/share/amtsleitung").exists());
    assert!(Path::new("/etc/amtsleitung/amtsleitung.toml").exists());
    assert!(Path::new("/var/lib/amtsleitung/amtsleitung.db").exists());
    let purged = dpkg(&["--purge", "amtsleitung"]);
    assert!(purged.status.success(), "{purged:?}");
    for path in [
        "/etc/amtsleitung",
        "/var/lib/amtsleitung",
        "/lib/systemd/system/amtsleitung.service",
        "/usr/share/doc/amtsleitung",
    ] {
        assert!(!Path::new(path).exists(), "{path} left after purge");
    }
    let status = dpkg(&["-s", "amtsleitung"]);
    assert!(!status.status.success(), "dpkg still knows the package");
}
