//! Abuse at the HTTP edge, on the real server with small limits: a head too
//! large (431), a URI too long (414), a client that never finishes its head
//! (disconnected), and one connection more than the cap (503 with
//! Retry-After, counted).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

fn connect(server: &Server) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `request` and reads the answer's head (up to the blank line).
fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes()
}

#[test]
fn the_edge_refuses_oversized_heads_slow_clients_and_connections_over_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &[],
        &[
            ("TRACKLOG_HTTP__MAX_CONNECTIONS", "3"),
            ("TRACKLOG_HTTP__HEADER_READ_TIMEOUT_MS", "1000"),
            ("TRACKLOG_HTTP__MAX_HEADER_BYTES", "16384"),
            ("TRACKLOG_HTTP__MAX_URI_BYTES", "2048"),
        ],
        dir.path(),
    );

    let head = exchange(&mut connect(&server), &get("/healthz", ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");

    let big = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let head = exchange(&mut connect(&server), &get("/healthz", &big));
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let long = format!("/api/v1/audit/search?q={}", "a".repeat(3_000));
    let head = exchange(&mut connect(&server), &get(&long, ""));
    assert!(head.starts_with("HTTP/1.1 414"), "{head}");

    // Slowloris: half a head, then nothing.
    let mut slow = connect(&server);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(
        read.is_ok() && started.elapsed() < Duration::from_secs(5),
        "a client that never finished its head was kept {:?}: {read:?}",
        started.elapsed()
    );

    // The cap: three connections open, a fourth is refused.
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    for stream in &mut open {
        let head = exchange(stream, &get("/healthz", ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let head = exchange(&mut connect(&server), &get("/healthz", ""));
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    drop(open);
    // Once they close, connections are taken again, and the refusal was
    // counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let mut stream = connect(&server);
        let head = exchange(&mut stream, &get("/metrics", "Connection: close\r\n"));
        if head.starts_with("HTTP/1.1 200") {
            let mut body = String::new();
            let _ = stream.read_to_string(&mut body);
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "connections were not freed: {head}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("tracklog_connections_refused_total ")
            .is_some_and(|v| v.trim() != "0")),
        "{metrics}"
    );
}
