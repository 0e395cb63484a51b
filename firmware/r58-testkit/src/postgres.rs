//! PostgreSQL from Debian in a temp folder, on a free loopback port, trust authentication
//! for user `r58`; stopped (fast shutdown) when dropped. As root it runs as the Debian
//! package's `postgres` user, since PostgreSQL refuses to run as root.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until, Daemon};

pub struct Postgres {
    daemon: Daemon,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// A server binary of the newest PostgreSQL installed (Debian keeps them out of PATH).
fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian postgresql) installed")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().expect("PostgreSQL binaries")
}

fn id_of(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {user}: the user (Debian postgresql)"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

impl Postgres {
    pub fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new().prefix("r58-pg").tempdir().unwrap();
        let user = is_root().then(|| (id_of("-u", "postgres"), id_of("-g", "postgres")));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if user.is_some() {
            for (cmd, args) in [
                ("chmod", vec!["755", dir.path().to_str().unwrap()]),
                ("chown", vec!["-R", "postgres", data.to_str().unwrap()]),
            ] {
                assert!(Command::new(cmd).args(&args).status().unwrap().success());
            }
        }
        let mut initdb = Command::new(pg_bin("initdb"));
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        let out = initdb
            .current_dir(dir.path())
            .args(["-D", data.to_str().unwrap()])
            .args(["-U", "r58", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut daemon = Daemon::new(
            "postgres",
            pg_bin("postgres"),
            dir.path().join("postgres.log"),
        )
        .args(["-D", data.to_str().unwrap(), "-p", &port.to_string()])
        .args(["-h", "127.0.0.1", "-k", data.to_str().unwrap()])
        .args(["-c", "fsync=off", "-c", "max_connections=60"]);
        if let Some((uid, gid)) = user {
            daemon = daemon.run_as(uid, gid);
            daemon.set_env("HOME", "/tmp");
        }
        daemon.spawn();
        let url = format!("postgres://r58@127.0.0.1:{port}/postgres");
        // Listening before it serves: wait for a real query.
        wait_until(Duration::from_secs(30), "postgres ready", || {
            Command::new("psql")
                .args([url.as_str(), "-c", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        });
        Self {
            daemon,
            url,
            _dir: dir,
        }
    }

    /// One statement through `psql`; its result, unaligned, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([self.url.as_str(), "-tAc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: a fast shutdown (clients disconnected), unlike SIGTERM's wait for them.
        self.daemon.stop("INT", Duration::from_secs(10));
    }
}
