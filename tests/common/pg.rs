//! A throwaway PostgreSQL cluster (Debian's `postgresql`), one per test process: `initdb`,
//! then `postgres` listening only on a Unix socket in a temporary directory (no TCP port). Each
//! test makes a database of its own ([`database`]). The server dies with the test process: it
//! is started through `setpriv --pdeathsig` from a thread that lives as long as the process
//! (a parent-death signal follows the thread that spawned the child, not the process).
//!
//! As root (CI) the cluster runs as the `postgres` user, which PostgreSQL requires.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// The running cluster: its socket directory.
pub struct Cluster {
    dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// A database of its own for one test: its name and connection string.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

/// A new, empty database.
pub async fn database() -> TestDb {
    let cluster = cluster();
    let name = format!("t_{}", super::client_id());
    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    TestDb {
        url: cluster.url(&name),
        name,
    }
}

impl Cluster {
    /// A connection string for `catty api --database-url` and tokio-postgres.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} user=postgres dbname={database}",
            self.dir.display()
        )
    }

    /// A connection of the test's own, to look at or arrange what the API stores.
    /// Waits while the server is still starting up.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return client;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot connect to the test cluster: {e}"),
            }
        }
    }
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program` as the cluster's owner: `postgres` when we are root, else ourselves.
fn as_owner(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.args(["--pdeathsig=KILL", "--"]).arg(program);
    cmd
}

/// Removes the directories of earlier test processes' clusters whose server is gone (and that
/// are not new: another test process may be making its own right now).
fn remove_dead_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let age = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok()?.elapsed().ok());
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("catty-pg-") || age < Some(Duration::from_secs(600))
        {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid")).unwrap_or_default();
        let pid = pid.lines().next().unwrap_or("").trim().to_string();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if pid.is_empty() || comm.trim() != "postgres" {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn start() -> Cluster {
    let started = Instant::now();
    remove_dead_clusters();
    // Kept for the life of the process: the socket and the data live here.
    let dir = tempfile::Builder::new()
        .prefix("catty-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    if is_root() {
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success(), "chown the cluster's directory");
    }
    let bin = bin_dir();
    let init = as_owner(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .output()
        .expect("run initdb");
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
    let (server, dir2) = (bin.join("postgres"), dir.clone());
    // The thread that starts the server outlives every test: it waits for the server.
    std::thread::spawn(move || {
        let child = as_owner(&server)
            .arg("-D")
            .arg(dir2.join("data"))
            .arg("-k")
            .arg(&dir2)
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        // Waiting keeps this thread, and with it the parent-death signal, alive.
        let _ = child.expect("start postgres").wait();
    });
    let socket = dir.join(".s.PGSQL.5432");
    let deadline = Instant::now() + DEADLINE;
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "test PostgreSQL cluster in {} ready in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Cluster { dir }
}
