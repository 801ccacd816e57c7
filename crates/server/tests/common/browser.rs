//! Real headless Chromium through chromedriver, for page tests.
//!
//! Debian's `chromium` and `chromium-driver` are installed by the test script.
//! Where they are missing, a test is skipped with a message, except under CI
//! (`CI` set), where a missing browser fails the test.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let path = std::path::Path::new(name);
        if path.is_absolute() {
            path.exists().then(|| name.to_string())
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.exists())
                    .map(|p| p.display().to_string())
            })
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns `None`
    /// (outside CI) when they are not installed.
    pub async fn start() -> Option<Self> {
        let driver_path = find(&["chromedriver", "/usr/bin/chromedriver"]);
        let chromium = find(&["chromium", "/usr/bin/chromium", "chromium-browser"]);
        let (Some(driver_path), Some(chromium)) = (driver_path, chromium) else {
            if std::env::var_os("CI").is_some() {
                panic!("chromium and chromedriver are required under CI: run ./scripts/test");
            }
            eprintln!(
                "skipping: chromium or chromedriver is not installed (./scripts/test installs them)"
            );
            return None;
        };
        let port = free_port();
        // Its own process group, which the Chromium it starts joins: the
        // whole tree is stopped at once when the test ends.
        let driver = Command::new(driver_path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            // chromedriver speaks plain HTTP on loopback; no TLS is involved.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    panic!("chromedriver did not answer: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Closes the session, then stops chromedriver and every browser
    /// process it started.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop stops the processes.
    }

    /// Kills chromedriver's process group and any process still naming the
    /// profile directory (Chromium's helpers may leave the group), then
    /// reaps chromedriver.
    fn stop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(self._profile.path())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Signs in through the form and waits for the shell.
pub async fn sign_in(
    page: &fantoccini::Client,
    server: &super::TestServer,
    name: &str,
    password: &str,
) {
    page.goto(&server.url("/login")).await.unwrap();
    page.find(fantoccini::Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    page.find(fantoccini::Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    page.find(fantoccini::Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css("[data-testid=signed-in-user]"))
        .await
        .unwrap();
}
