//! What the binary's end-to-end tests share: running `tracklog`, a server
//! on a port of its own, and reading back what it stored.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_tracklog");

pub fn tracklog(data_dir: &Path, args: &[&str]) -> std::process::Output {
    tracklog_with(data_dir, &[], args)
}

/// [`tracklog`] with extra environment variables (configuration overrides).
pub fn tracklog_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TRACKLOG_LISTEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tracklog")
}

pub fn create_policy(data_dir: &Path, name: &str, rights: &str) -> (String, String) {
    let output = tracklog(
        data_dir,
        &["policy", "create", name, "--rights", rights, "--json"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        keys["primary_key"].as_str().unwrap().to_owned(),
        keys["secondary_key"].as_str().unwrap().to_owned(),
    )
}

/// Where a server's log goes: a file of its own in `$TEST_SERVER_LOGS`
/// when that is set (to read what a failed test's server said), else
/// nowhere.
fn server_log() -> Stdio {
    let Some(dir) = std::env::var_os("TEST_SERVER_LOGS").filter(|d| !d.is_empty()) else {
        return Stdio::null();
    };
    let name = format!(
        "server-{}-{}.log",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    std::fs::File::create(Path::new(&dir).join(name)).map_or_else(|_| Stdio::null(), Stdio::from)
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_under(&[], data_dir)
    }

    /// Starts the server as the last argument of `wrapper` (a program and
    /// its arguments, such as `fiu-run -x`), or directly when it is empty.
    pub fn start_under(wrapper: &[&str], data_dir: &Path) -> Self {
        Self::start_with(wrapper, &[], data_dir)
    }

    /// [`Server::start_under`], with `env` (name, value) set for the server.
    pub fn start_with(wrapper: &[&str], env: &[(&str, &str)], data_dir: &Path) -> Self {
        Self::try_start(wrapper, env, data_dir).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Server::start_with`], or why the server did not start.
    pub fn try_start(
        wrapper: &[&str],
        env: &[(&str, &str)],
        data_dir: &Path,
    ) -> Result<Self, String> {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(server_log())
            .spawn()
            .expect("start tracklog serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(address) = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            return Err(format!(
                "the server did not start ({status}); it printed {line:?}"
            ));
        };
        Ok(Self {
            base: format!("http://{address}"),
            child,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn kill_hard(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn item(id: &str, contact: &str) -> Value {
    json!({
        "portal_interactionid": id, "type": "portal_search",
        "portal_timestamp": "2026-03-01T10:00:00Z", "portal_portalid": "support",
        "portal_contactid": contact, "session_id": "s", "portal_searchstring": "printer",
    })
}

pub async fn all_ids(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    contact: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = server.url(&format!(
            "/api/v1/contacts/{contact}/interactions?limit=1000"
        ));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .basic_auth("app", Some(key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            ids.push(item["portal_interactionid"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}
