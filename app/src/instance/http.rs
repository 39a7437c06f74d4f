//! The metrics/control HTTP server of an instance: `GET /metrics`,
//! `GET /healthz`, `POST /switch`, `POST /idr`, one HTTP/1.x request per
//! connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tracing::{debug, warn};

use super::{InputSink, Shared};

pub(super) fn http_loop(l: &TcpListener, sh: &Shared) {
    while !sh.stopping() {
        match l.accept() {
            Ok((s, _)) => {
                if let Err(e) = serve_http(s, sh) {
                    debug!(error = %e, "http request");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                warn!(error = %e, "metrics listener");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One HTTP/1.x request: `GET /metrics`, `POST /switch`, `POST /idr`,
/// `GET /healthz`.
fn serve_http(s: TcpStream, sh: &Shared) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut clen = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                clen = v.trim().parse().unwrap_or(0).min(1 << 16);
            }
        }
    }
    let mut body = vec![0u8; clen];
    r.read_exact(&mut body)?;
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, text) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            sh.metrics.prometheus(&sh.name),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("POST", "/switch") => match sh.switch() {
            Ok(()) => {
                // The UE starts showing this stream now: give it a keyframe.
                sh.key_frame();
                (
                    "200 OK",
                    "application/json",
                    "{\"switched\":true}\n".to_string(),
                )
            }
            Err(e) => (
                "503 Service Unavailable",
                "application/json",
                format!(
                    "{{\"error\":{}}}\n",
                    serde_json::Value::String(e.to_string())
                ),
            ),
        },
        ("POST", "/idr") => {
            sh.key_frame();
            ("200 OK", "application/json", "{\"idr\":true}\n".to_string())
        }
        (_, "/metrics" | "/switch" | "/idr" | "/healthz") => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let mut w = s;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    w.flush()
}
