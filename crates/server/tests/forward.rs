//! SIEM forwarding against real receivers: Debian's rsyslog on a loopback
//! port with its own configuration and directory (restarted mid-stream), and
//! an HTTP endpoint that checks the webhook's signature and fails at first.
//! What each receiver kept of the checkpoints must verify an export of the
//! log on its own.
//!
//! `rsyslogd` is installed by the test script; where it is missing the syslog
//! test is skipped with a message, except under CI (`CI` set), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, basic};
use serde_json::{Value, json};
use tracklog_domain::audit::format::webhook_signature;
use tracklog_domain::audit::standalone::{StandaloneReport, parse_public_key, verify_export_as_of};
use tracklog_server::config::{ForwarderConfig, ForwarderKind};

fn record(id: &str) -> Value {
    json!({
        "Id": id,
        "CreationTime": "2026-03-01T10:00:00Z",
        "Operation": "Update",
        "User": "Jörg \"J\" ]",
        "EntityName": "account",
        "Fields": {"note": "line1\nline2"},
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Rsyslog {
    child: Child,
}

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Rsyslog {
    fn start(binary: &Path, dir: &Path, port: u16) -> Self {
        let config = dir.join("rsyslog.conf");
        std::fs::write(
            &config,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imtcp")
template(name="raw" type="string" string="%msg%\n")
ruleset(name="audit") {{
  action(type="omfile" file="{dir}/out.log" template="raw" flushOnTXEnd="on")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="audit")
"#,
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    /// SIGTERM: rsyslog writes out what it received, then exits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn delivered(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out.log")).unwrap_or_default()
}

async fn wait_for_all(dir: &Path, ids: &[String]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = delivered(dir);
        if ids
            .iter()
            .all(|id| text.contains(&format!("\"Id\":\"{id}\"")))
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_all(server: &TestServer, auth: &(String, Option<String>), ids: &[String]) {
    for chunk in ids.chunks(50) {
        let batch: Vec<Value> = chunk.iter().map(|id| record(id)).collect();
        let response = server
            .http
            .post(server.url("/api/v1/audit/records"))
            .basic_auth(&auth.0, auth.1.as_ref())
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Verifies an export taken now against the checkpoint lines a receiver
/// kept, under the server's public key, once those lines vouch for every
/// record up to `head`.
async fn verify_kept(
    server: &TestServer,
    auth: &(String, Option<String>),
    kept: impl Fn() -> String,
    head: i64,
) -> StandaloneReport {
    let deadline = Instant::now() + Duration::from_secs(30);
    let public: Value = server
        .http
        .get(server.url("/api/v1/audit/public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = parse_public_key(public.to_string().as_bytes()).unwrap();
    loop {
        let as_of = tracklog_domain::time::UtcMillis::now().as_millis();
        let export = server
            .http
            .get(server.url("/api/v1/audit/export?format=jsonl"))
            .basic_auth(&auth.0, auth.1.as_ref())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let report = verify_export_as_of(
            &key,
            "default",
            kept().as_bytes(),
            export.as_bytes(),
            Some(as_of),
        );
        match report {
            Ok(report) if report.covered_to >= head => return report,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("the kept checkpoints do not verify the export: {other:?}"),
        }
    }
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_forwarding_survives_an_rsyslog_restart() {
    let Some(binary) = rsyslogd() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "rsyslogd is missing; scripts/test installs it"
        );
        eprintln!("skipped: rsyslogd is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rsyslog = Rsyslog::start(&binary, dir.path(), port);
    let server = TestServer::start_with(|config| {
        config.audit.checkpoint_every_seconds = 1;
        config.audit.forwarders = vec![ForwarderConfig {
            name: "rsyslog".into(),
            kind: ForwarderKind::Syslog,
            address: Some(format!("127.0.0.1:{port}")),
            url: None,
            secret: None,
            org: None,
            batch: 40,
            hostname: "tracklog-test".into(),
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
        }];
    })
    .await;
    let auth = basic(&server.policy("crm", "write,read").await);

    let first: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    post_all(&server, &auth, &first).await;
    assert!(
        wait_for_all(dir.path(), &first).await,
        "before the restart: {}",
        delivered(dir.path()).lines().count()
    );

    rsyslog.stop();
    let second: Vec<String> = (0..200).map(|i| format!("g{i}")).collect();
    post_all(&server, &auth, &second).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let rsyslog = Rsyslog::start(&binary, dir.path(), port);
    assert!(
        wait_for_all(dir.path(), &second).await,
        "after the restart: {}",
        delivered(dir.path()).lines().count()
    );
    let text = delivered(dir.path());
    for id in first.iter().chain(&second) {
        assert!(text.contains(&format!("\"Id\":\"{id}\"")), "{id} was lost");
    }
    assert!(
        metric(&server, "tracklog_audit_forward_failures_total").await >= 1.0,
        "failures are counted"
    );
    // The checkpoints rsyslog wrote among the records verify the log.
    let report = verify_kept(&server, &auth, || delivered(dir.path()), 400).await;
    assert!(report.checkpoints_matched >= 1, "{report:?}");
    assert!(metric(&server, "tracklog_audit_checkpoints_forwarded_total").await >= 1.0);
    rsyslog.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_forwarding_is_signed_and_retried_until_acknowledged() {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let checkpoints: Arc<Mutex<String>> = Arc::default();
    let calls = Arc::new(Mutex::new(0u32));
    let secret = "s3cret";
    let app = {
        let received = received.clone();
        let checkpoints = checkpoints.clone();
        let calls = calls.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let received = received.clone();
                    let checkpoints = checkpoints.clone();
                    let calls = calls.clone();
                    async move {
                        let signature = headers
                            .get("X-Tracklog-Signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if signature != webhook_signature(secret.as_bytes(), &body) {
                            return axum::http::StatusCode::UNAUTHORIZED;
                        }
                        let mut count = calls.lock().unwrap();
                        *count += 1;
                        if *count <= 2 {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        match headers
                            .get("X-Tracklog-Event")
                            .and_then(|v| v.to_str().ok())
                        {
                            Some("checkpoint") => {
                                let line = String::from_utf8(body.to_vec()).unwrap();
                                assert!(!line.contains('\n'), "one line per checkpoint");
                                checkpoints.lock().unwrap().push_str(&format!("{line}\n"));
                                return axum::http::StatusCode::OK;
                            }
                            Some("records") => {}
                            other => panic!("X-Tracklog-Event: {other:?}"),
                        }
                        let records: Vec<Value> = serde_json::from_slice(&body).unwrap();
                        let mut received = received.lock().unwrap();
                        for record in records {
                            received.push(record["Id"].as_str().unwrap().to_owned());
                        }
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = TestServer::start_with(|config| {
        config.audit.checkpoint_every_seconds = 1;
        config.audit.forwarders = vec![ForwarderConfig {
            name: "hook".into(),
            kind: ForwarderKind::Webhook,
            address: None,
            url: Some(format!("http://{address}/hook")),
            secret: Some(secret.into()),
            org: Some("default".into()),
            batch: 25,
            hostname: "tracklog".into(),
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
        }];
    })
    .await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let ids: Vec<String> = (0..100).map(|i| format!("h{i}")).collect();
    post_all(&server, &auth, &ids).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received.lock().unwrap().clone();
        if ids.iter().all(|id| got.contains(id)) {
            break;
        }
        assert!(Instant::now() < deadline, "only {} arrived", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(&server, "tracklog_audit_forward_failures_total").await >= 2.0);
    let cursor = server
        .stores
        .audit
        .forward_cursor("hook".into(), server.org("default").await)
        .await
        .unwrap();
    assert!(cursor >= 101, "the cursor is saved: {cursor}");
    // The checkpoints the webhook kept verify the log on their own.
    let kept = || checkpoints.lock().unwrap().clone();
    let report = verify_kept(&server, &auth, kept, 100).await;
    assert!(report.checkpoints_matched >= 1, "{report:?}");
    let saved = server
        .stores
        .audit
        .forward_cursor("hook/checkpoints".into(), server.org("default").await)
        .await
        .unwrap();
    assert!(saved >= 1, "the checkpoint cursor is saved: {saved}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_forwarding_over_tls_frames_every_record() {
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;

    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    {
        let received = received.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let received = received.clone();
                tokio::spawn(async move {
                    let mut stream = acceptor.accept(socket).await.unwrap();
                    let mut buffer = [0u8; 8192];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => received.lock().unwrap().extend_from_slice(&buffer[..n]),
                        }
                    }
                });
            }
        });
    }

    let server = TestServer::start_with(|config| {
        config.audit.forwarders = vec![ForwarderConfig {
            name: "tls".into(),
            kind: ForwarderKind::Syslog,
            address: Some(format!("localhost:{port}")),
            url: None,
            secret: None,
            org: None,
            batch: 30,
            hostname: "tracklog".into(),
            tls: true,
            tls_ca_file: Some(ca.clone()),
            tls_server_name: None,
        }];
    })
    .await;
    let auth = basic(&server.policy("crm", "write").await);
    let ids: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    post_all(&server, &auth, &ids).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bytes = received.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if ids
            .iter()
            .all(|id| text.contains(&format!("\"Id\":\"{id}\"")))
        {
            // Octet counting: LEN SP MSG, back to back.
            let mut rest = bytes.as_slice();
            let mut frames = 0;
            while !rest.is_empty() {
                let space = rest.iter().position(|b| *b == b' ').unwrap();
                let length: usize = std::str::from_utf8(&rest[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                let message = &rest[space + 1..space + 1 + length];
                assert!(
                    message.starts_with(b"<109>1 "),
                    "{:?}",
                    String::from_utf8_lossy(message)
                );
                rest = &rest[space + 1 + length..];
                frames += 1;
            }
            assert!(frames >= 101, "{frames} frames");
            break;
        }
        assert!(Instant::now() < deadline, "TLS delivery incomplete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
