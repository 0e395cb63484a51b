//! A long-running process under test: started with its output appended to a log file,
//! stopped with SIGTERM (bounded) or SIGKILL, killed when dropped. The broker, agent,
//! recorder, fleet, coturn and PostgreSQL handles are built on it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    user: Option<(u32, u32)>,
    log: PathBuf,
    /// Where the whole log is copied when the test that runs it fails (`R58_TEST_LOGS`).
    failure_logs: Option<PathBuf>,
    child: Option<Child>,
}

impl Daemon {
    /// `program` with its stdout and stderr appended to `log`. Nothing runs until `spawn`.
    pub fn new(name: &str, program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            program: program.into(),
            args: Vec::new(),
            env: vec![("RUST_LOG".into(), "info".into())],
            user: None,
            log: log.into(),
            failure_logs: std::env::var_os("R58_TEST_LOGS").map(PathBuf::from),
            child: None,
        }
    }

    /// Copies the whole log into `dir` if the test fails while this runs (instead of the
    /// directory in `R58_TEST_LOGS`).
    pub fn keep_log_on_failure(mut self, dir: impl Into<PathBuf>) -> Self {
        self.failure_logs = Some(dir.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a variable for the next `spawn` (replacing an earlier value).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs it as this user and group (a server that refuses to run as root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Starts the process (the log is appended to). Not under systemd: no notify socket, no
    /// journal stream.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: log {}: {e}", self.name, self.log.display()));
        let err = log.try_clone().unwrap();
        let mut cmd = Command::new(&self.program);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: starting {}: {e}", self.name, self.program.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How it ended, once it has (None while it runs or when it was never started).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn alive(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Sends `sig` (a name such as `STOP`, `CONT`, `HUP`) to the running process.
    pub fn signal(&self, sig: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {pid} ({})", self.name);
    }

    /// Sends `sig` and waits up to `timeout` for the exit: how it ended, or None when it was
    /// not running or had to be killed past the timeout.
    pub fn stop(&mut self, sig: &str, timeout: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit; its code (None after a signal).
    /// Past the timeout it is killed and the test fails with its log.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let running = self.child.is_some();
        match self.stop("TERM", timeout) {
            Some(s) => s.code(),
            None if !running => None,
            None => panic!(
                "{} did not stop within {timeout:?} of SIGTERM: {}",
                self.name,
                self.log_text()
            ),
        }
    }

    /// SIGKILL and reap (a power cut, as far as the process can tell).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Lines of a daemon's log printed when the test that ran it fails.
const FAILURE_TAIL_LINES: usize = 40;

impl Daemon {
    /// For a failing test: the tail of the log on stderr and, when a directory for failed
    /// tests' logs is set, the whole log copied there (name and pid in the file name).
    fn report_failure(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(FAILURE_TAIL_LINES)..];
        eprintln!(
            "--- {} ({}), last {} lines ---\n{}\n--- end of {} ---",
            self.name,
            self.log.display(),
            tail.len(),
            tail.join("\n"),
            self.name
        );
        if let Some(dir) = &self.failure_logs {
            let to = dir.join(format!(
                "{}-{}.log",
                self.name,
                self.pid()
                    .map_or_else(|| "exited".to_string(), |p| p.to_string())
            ));
            match std::fs::create_dir_all(dir).and_then(|_| std::fs::copy(&self.log, &to)) {
                Ok(_) => eprintln!("{}: log kept at {}", self.name, to.display()),
                Err(e) => eprintln!("{}: keeping the log at {}: {e}", self.name, to.display()),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            self.report_failure();
        }
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_logs_stops_on_sigterm_and_is_killed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        let mut d = Daemon::new("sleeper", "/bin/sh", &log).args([
            "-c",
            "echo started $GREETING; trap 'exit 7' TERM; while :; do sleep 0.05; done",
        ]);
        d.set_env("GREETING", "hello");
        d.spawn();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log_text().contains("started hello") {
            assert!(Instant::now() < deadline, "no output: {}", d.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(d.alive());
        assert_eq!(d.terminate(Duration::from_secs(5)), Some(7));
        assert!(!d.alive());
        assert!(
            d.stop("INT", Duration::from_secs(1)).is_none(),
            "not running"
        );
        // A signal it ignores: killed once the wait is over.
        let mut stubborn = Daemon::new("stubborn", "/bin/sh", &log).args([
            "-c",
            "trap '' INT; echo stubborn; while :; do sleep 0.05; done",
        ]);
        stubborn.spawn();
        while !stubborn.log_text().contains("stubborn") {
            assert!(Instant::now() < deadline + Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = stubborn.pid().unwrap();
        assert!(stubborn.stop("INT", Duration::from_millis(300)).is_none());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "still running after the wait"
        );
        d.spawn();
        let pid = d.pid().unwrap();
        drop(d);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_or(true, |s| s.contains(") Z")),
            "still running after drop"
        );
    }

    #[test]
    fn a_failing_test_keeps_the_log_of_its_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let (log, kept) = (dir.path().join("d.log"), dir.path().join("kept"));
        let mut d = Daemon::new("witness", "/bin/sh", &log)
            .args(["-c", "echo what happened; while :; do sleep 0.05; done"])
            .keep_log_on_failure(&kept);
        let failed = std::thread::spawn(move || {
            d.spawn();
            let pid = d.pid().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !d.log_text().contains("what happened") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("the test fails while pid {pid} runs");
        })
        .join()
        .unwrap_err();
        let msg = failed.downcast_ref::<String>().unwrap();
        let pid = msg
            .rsplit("pid ")
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let copy = std::fs::read_to_string(kept.join(format!("witness-{pid}.log"))).unwrap();
        assert_eq!(copy, "what happened\n");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_or(true, |s| s.contains(") Z"))
        );
        // A test that passes keeps nothing.
        let mut quiet = Daemon::new("quiet", "/bin/sh", dir.path().join("q.log"))
            .args(["-c", "sleep 5"])
            .keep_log_on_failure(&kept);
        quiet.spawn();
        drop(quiet);
        assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 1);
    }
}
