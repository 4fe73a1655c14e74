//! A throw-away PostgreSQL 15 cluster (Debian's postgresql-15) for end-to-end tests: `initdb`
//! into a directory under /tmp owned by user `postgres` (initdb and postgres refuse root),
//! `postgres` as a child of the test with `fsync=off`, on a Unix socket only, so nodes inside
//! a test namespace reach it through the file system and no port can collide. Stopped
//! (fast shutdown) and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::apt_install;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    child: Child,
    dir: PathBuf,
}

impl Postgres {
    /// Starts a cluster with one database, `amtsleitung`, and waits until it takes connections.
    pub fn start() -> Self {
        if !std::path::Path::new(PG_BIN).join("initdb").exists() {
            apt_install(&["postgresql-15"]);
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/amt-e2e-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        let as_postgres = |program: &str| {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(format!("{PG_BIN}/{program}"))
                .current_dir(&dir);
            command
        };
        run(as_postgres("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["--auth-local=trust", "--no-sync"])
            .stdout(Stdio::null()));
        let log = std::fs::File::create(dir.join("pg.log")).unwrap();
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=50"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let cluster = Self { child, dir };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Command::new(format!("{PG_BIN}/pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&cluster.dir)
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < until,
                "postgres did not start:\n{}",
                std::fs::read_to_string(cluster.dir.join("pg.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        run(Command::new(format!("{PG_BIN}/psql"))
            .arg("-h")
            .arg(&cluster.dir)
            .args(["-U", "postgres", "-q", "-c", "CREATE DATABASE amtsleitung"]));
        cluster
    }

    /// The connection string of the `amtsleitung` database (over the Unix socket).
    pub fn url(&self) -> String {
        format!(
            "host={} user=postgres dbname=amtsleitung",
            self.dir.display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (open connections are ended).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed");
}
