//! A throw-away PostgreSQL 15 cluster for tests: the store's own (every store test runs on
//! SQLite and on PostgreSQL, see testing.rs) and, through the `test-cluster` feature, the
//! server's end-to-end tests. Not part of the store's API for the server.
//!
//! The cluster is made once per test binary: `initdb` into a directory under /tmp (owned by
//! user `postgres` when the tests run as root, since initdb and postgres refuse root), then
//! `postgres` as a child process with `fsync=off`, listening on a Unix socket only (no port
//! to collide with other test runs; a socket in the file system is reachable from network
//! namespaces too). It runs under `setpriv --pdeathsig KILL`, so it dies with the test
//! binary; the thread that starts it never ends, because the death signal follows the parent
//! *thread*, and a test's thread ends with its test. Directories of clusters whose test
//! binary is gone are removed by the next run.
//!
//! Each caller gets a database of its own, copied from a template the migrations ran on once
//! (`CREATE DATABASE ... TEMPLATE`), so tests stay independent and run in parallel.
//!
//! Without PostgreSQL 15 installed every caller panics and says how to install it: the tests
//! never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Store;

/// Where Debian's postgresql-15 package puts the server programs.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Directory names of our clusters under /tmp: the prefix and the test binary's pid.
const CLUSTER_PREFIX: &str = "amts-pg-";
/// The database every test database is copied from.
const TEMPLATE: &str = "amts_template";

/// The running cluster: its socket directory (Unix socket only, no TCP port).
struct Cluster {
    socket_dir: PathBuf,
    admin: Mutex<postgres::Client>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// Connection string of a new database made for one test, with the current schema.
pub fn fresh_database() -> String {
    new_database("t", TEMPLATE)
}

/// A database that has never seen amtsleitung (for the migration tests).
pub fn empty_database() -> String {
    new_database("e", "template0")
}

fn new_database(prefix: &str, template: &str) -> String {
    let cluster = match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster,
        Err(why) => panic!("no PostgreSQL cluster for the store tests: {why}"),
    };
    let name = format!("{prefix}{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    cluster
        .admin
        .lock()
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .unwrap();
    connection_string(&cluster.socket_dir, &name)
}

fn connection_string(socket_dir: &Path, database: &str) -> String {
    format!(
        "host={} user=postgres dbname={database}",
        socket_dir.display()
    )
}

fn pg_bin() -> PathBuf {
    std::env::var_os("AMTSLEITUNG_PG_BIN")
        .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from)
}

/// Whether this process runs as root (then initdb and postgres run as user `postgres`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// User and group id of `postgres` from /etc/passwd.
fn postgres_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| "there is no user postgres (install postgresql-15)".into())
}

/// A command run as `postgres` when we are root, as ourselves otherwise.
fn as_cluster_owner(program: &Path, pdeathsig: bool) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
        if pdeathsig {
            command.arg("--pdeathsig=KILL");
        }
        command.arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Removes the directories of clusters whose test binary has ended.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(CLUSTER_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_cluster() -> Result<Cluster, String> {
    let bin = pg_bin();
    let initdb = bin.join("initdb");
    if !initdb.exists() {
        return Err(format!(
            "PostgreSQL 15 is not installed ({} is missing): apt-get install postgresql-15, \
             or point AMTSLEITUNG_PG_BIN at its bin directory",
            initdb.display()
        ));
    }
    remove_stale_clusters();
    // Short, since the socket's path must fit in 107 bytes.
    let dir = PathBuf::from(format!("/tmp/{CLUSTER_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    if running_as_root() {
        let (uid, gid) = postgres_ids()?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to postgres: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let output = as_cluster_owner(&initdb, false)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth=trust",
            "--no-sync",
        ])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", initdb.display()))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // The child must outlive every test: start it from a thread that never ends (see the
    // module docs on --pdeathsig).
    let (started, result) = std::sync::mpsc::channel();
    let postgres = bin.join("postgres");
    let (log_dir, data_dir) = (dir.clone(), data.clone());
    std::thread::Builder::new()
        .name("postgres-cluster".into())
        .spawn(move || {
            let log = std::fs::File::create(log_dir.join("postgres.log"));
            let spawned = log.map_err(|e| e.to_string()).and_then(|log| {
                as_cluster_owner(&postgres, true)
                    .arg("-D")
                    .arg(&data_dir)
                    .arg("-k")
                    .arg(&log_dir)
                    .args([
                        "-c",
                        "listen_addresses=",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                    ])
                    .current_dir(&log_dir)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().map_err(|e| e.to_string())?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| format!("cannot start postgres: {e}"))
            });
            let _ = started.send(spawned.map(|_child| ()));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    result.recv().map_err(|e| e.to_string())??;
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        match postgres::Client::connect(&connection_string(&dir, "postgres"), postgres::NoTls) {
            Ok(client) => break client,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => {
                let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                return Err(format!("postgres did not come up: {err}\n{log}"));
            }
        }
    };
    let mut admin = admin;
    admin
        .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
        .map_err(|e| e.to_string())?;
    // Migrate the template once; its connection closes before anyone copies it.
    Store::open_postgres(&connection_string(&dir, TEMPLATE)).map_err(|e| e.to_string())?;
    Ok(Cluster {
        socket_dir: dir,
        admin: Mutex::new(admin),
    })
}
