//! The blocking face of [`crate::Client`], for callers that are plain
//! threads: CLIs, tests, the agent's pulls, a namespace thread of a test.
//!
//! A [`Client`] owns one thread running a current-thread tokio runtime; a
//! call is the async client's call spawned on that runtime, its caller
//! waiting on a channel. So it is the same code as the async client (the
//! same [`Response`], [`Error`] and keep-alive pool; clones share them),
//! and calls from several threads at once all go on.
//!
//! From inside a tokio runtime (an async task, a `spawn_blocking` closure,
//! a thread that entered a runtime) a call does not panic: it never starts
//! or drops a runtime on the caller's thread, it only waits on a channel.
//! But in an async task that wait blocks the worker thread, like any
//! blocking call, for up to the timeout: use [`crate::Client`] there (or
//! `spawn_blocking`). A server on the caller's own current-thread runtime
//! cannot answer while its thread waits: such a call ends in
//! [`Error::Timeout`]. The last clone may be dropped anywhere: its runtime
//! stops on its own thread.
//!
//! Network namespaces: the connections are opened by the client's thread,
//! which is in the namespace of the thread that made the client
//! ([`Client::new`]). Make the client on the thread that entered the
//! namespace, as a blocking client would have it.
//!
//! ```no_run
//! let c = ctlhttp::blocking::Client::new(std::time::Duration::from_secs(5));
//! let r = c.get("http://10.0.0.1:8080/tunnels")?;
//! assert_eq!(r.status, 200);
//! # Ok::<(), ctlhttp::Error>(())
//! ```

use std::future::Future;
use std::io::{self, Read};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::AUTHORIZATION;
use hyper::Request;
use serde::de::DeserializeOwned;
use tokio::runtime::{Handle, Runtime};

pub use hyper::Method;

use crate::{chain, http_uri, Error, Response};

/// A blocking keep-alive client; cheap to clone (clones share the thread,
/// the runtime and the connection pool).
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    rt: Arc<Driver>,
}

/// The client's runtime, run by its own thread until the last clone drops.
#[derive(Debug)]
struct Driver {
    /// Where calls are spawned; why not, if the thread could not start.
    handle: Result<Handle, String>,
    /// Dropping it ends the thread.
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A runtime that is never dropped in a way that blocks (nor panics in
/// an async context): on a failed thread start it is shut down in the
/// background.
struct Owned(Option<Runtime>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Driver {
    fn start() -> Driver {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                return Driver {
                    handle: Err(format!("cannot start its runtime: {e}")),
                    _stop: None,
                }
            }
        };
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut owned = Owned(Some(rt));
        let spawned = std::thread::Builder::new()
            .name("ctlhttp-blocking".into())
            .spawn(move || {
                if let Some(rt) = owned.0.take() {
                    // Ends when the sender drops (an error) or sends.
                    let _ = rt.block_on(stopped);
                    // Connections still open are closed, not waited for.
                    rt.shutdown_background();
                }
            });
        match spawned {
            Ok(_) => Driver {
                handle: Ok(handle),
                _stop: Some(stop),
            },
            Err(e) => Driver {
                handle: Err(format!("cannot start its thread: {e}")),
                _stop: None,
            },
        }
    }
}

impl Client {
    /// A client whose every call (connect, send, whole answer) must finish
    /// within `timeout`. Starts the client's thread (see the module
    /// documentation about namespaces); works inside a runtime or not.
    pub fn new(timeout: Duration) -> Client {
        Client {
            inner: crate::Client::new(timeout),
            rt: Arc::new(Driver::start()),
        }
    }

    /// The same client sending `Authorization: Bearer TOKEN` with every
    /// request; a token that is no valid header value is refused.
    pub fn with_bearer(&self, token: &str) -> Result<Client, String> {
        Ok(Client {
            inner: self.inner.with_bearer(token)?,
            rt: self.rt.clone(),
        })
    }

    /// The same client with another timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            inner: self.inner.with_timeout(timeout),
            rt: self.rt.clone(),
        }
    }

    /// The same client reading answer bodies of at most `bytes`
    /// ([`crate::Client::with_body_limit`]; [`Client::get_reader`] streams
    /// and is not limited).
    pub fn with_body_limit(&self, bytes: usize) -> Client {
        Client {
            inner: self.inner.with_body_limit(bytes),
            rt: self.rt.clone(),
        }
    }

    /// Every call's timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<Response, Error> {
        self.request(Method::GET, url, None)
    }

    /// `DELETE url`.
    pub fn delete(&self, url: &str) -> Result<Response, Error> {
        self.request(Method::DELETE, url, None)
    }

    /// `POST url` with a JSON body.
    pub fn post_json(&self, url: &str, body: impl Into<Bytes>) -> Result<Response, Error> {
        self.request(Method::POST, url, Some(body.into()))
    }

    /// Any call; a body is sent as `application/json`.
    pub fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Response, Error> {
        let c = self.inner.clone();
        let u = url.to_owned();
        self.run(url, async move { c.request(method, &u, body).await })
    }

    /// `GET url` answered with a success status and JSON: the value, or
    /// why not in one line naming the URL (and the status and body).
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        json_of(url, self.get(url))
    }

    /// `GET url`, its answer's body read as it comes (e.g. a file to
    /// store), not gathered in memory first: the status and length are
    /// known when this returns. The whole answer must come within the
    /// timeout; reading past it fails with [`io::ErrorKind::TimedOut`].
    pub fn get_reader(&self, url: &str) -> Result<Reader, Error> {
        let deadline = Instant::now() + self.timeout();
        let uri = http_uri(url)?;
        let mut req = Request::get(uri);
        if let Some(a) = &self.inner.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::<Bytes>::default()).map_err(|e| Error::Url {
            url: url.to_owned(),
            msg: e.to_string(),
        })?;
        let http = self.inner.http.clone();
        let (u, timeout) = (url.to_owned(), self.timeout());
        let rsp = self.run(url, async move {
            match tokio::time::timeout_at(deadline.into(), http.request(req)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(Error::Transport {
                    url: u,
                    msg: chain(&e),
                }),
                Err(_) => Err(Error::Timeout { url: u, timeout }),
            }
        })?;
        let status = rsp.status().as_u16();
        let body = rsp.into_body();
        Ok(Reader {
            status,
            content_length: body.size_hint().exact(),
            body: Some(body),
            buf: Bytes::new(),
            client: self.clone(),
            url: url.to_owned(),
            deadline,
        })
    }

    /// Runs `call` on the client's runtime and waits for its end.
    fn run<T: Send + 'static>(
        &self,
        url: &str,
        call: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let stopped = |msg: &str| Error::Transport {
            url: url.to_owned(),
            msg: format!("the blocking client {msg}"),
        };
        let handle = self.rt.handle.as_ref().map_err(|m| stopped(m))?;
        let (tx, rx) = mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(call.await);
        });
        rx.recv()
            .map_err(|_| stopped("stopped before the answer"))?
    }
}

/// The JSON of a success (2xx) answer from `url`, or why not in one line
/// naming the URL (and the status and body).
pub fn json_of<T: DeserializeOwned>(url: &str, r: Result<Response, Error>) -> Result<T, String> {
    let r = r.map_err(|e| e.to_string())?;
    if !(200..300).contains(&r.status) {
        return Err(format!("{url}: HTTP {}: {}", r.status, r.text().trim()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("{url}: bad answer: {e}"))
}

/// The answer of [`Client::get_reader`]: status and length, and the body
/// as a [`Read`].
#[derive(Debug)]
pub struct Reader {
    /// HTTP status code.
    pub status: u16,
    /// The body's length, if the server said it.
    pub content_length: Option<u64>,
    body: Option<Incoming>,
    buf: Bytes,
    client: Client,
    url: String,
    deadline: Instant,
}

impl Reader {
    /// Gets the next piece of the body into `buf`; false at its end.
    fn fill(&mut self) -> io::Result<bool> {
        while self.buf.is_empty() {
            let Some(mut body) = self.body.take() else {
                return Ok(false);
            };
            let deadline = self.deadline;
            let (body, frame) = self
                .client
                .run(&self.url, async move {
                    let f = tokio::time::timeout_at(deadline.into(), body.frame()).await;
                    Ok((body, f))
                })
                .map_err(io::Error::other)?;
            match frame {
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        Error::Timeout {
                            url: self.url.clone(),
                            timeout: self.client.timeout(),
                        },
                    ))
                }
                Ok(None) => return Ok(false),
                Ok(Some(Err(e))) => {
                    return Err(io::Error::other(Error::Transport {
                        url: self.url.clone(),
                        msg: format!("reading the answer: {}", chain(&e)),
                    }))
                }
                Ok(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        self.buf = data;
                    }
                    self.body = Some(body);
                }
            }
        }
        Ok(true)
    }
}

impl Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len());
        self.buf.copy_to_slice(&mut out[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// A server on 127.0.0.1 answering every request with `answer`
    /// (`None`: never answering); each request's head goes to the receiver.
    fn serve(answer: Option<&'static str>) -> (SocketAddr, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("local addr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let tx = tx.clone();
                std::thread::spawn(move || answer_all(s, answer, tx));
            }
        });
        (addr, rx)
    }

    /// Answers the requests on one connection until it closes.
    fn answer_all(s: TcpStream, answer: Option<&str>, tx: mpsc::Sender<String>) {
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        loop {
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            head.push_str(&String::from_utf8_lossy(&body));
            let _ = tx.send(head);
            let Some(a) = answer else {
                // Never answers; waits for the client to close.
                let _ = r.read_line(&mut String::new());
                return;
            };
            if w.write_all(a.as_bytes()).is_err() {
                return;
            }
        }
    }

    const TEAPOT: &str =
        "HTTP/1.1 418 I'm a teapot\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nshort";

    #[test]
    fn status_and_body_whatever_the_status() {
        let (addr, heads) = serve(Some(TEAPOT));
        let c = Client::new(Duration::from_secs(5));
        let url = format!("http://{addr}/x");
        let r = c.get(&url).expect("get");
        assert_eq!((r.status, r.text().as_str()), (418, "short"));
        assert!(heads
            .recv()
            .expect("head")
            .starts_with("GET /x HTTP/1.1\r\n"));
        // Keep-alive: the second call reuses the connection.
        let r = c.post_json(&url, r#"{"a":1}"#).expect("post");
        assert_eq!(r.status, 418);
        let head = heads.recv().expect("head").to_ascii_lowercase();
        assert!(head.starts_with("post /x http/1.1\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.ends_with("\r\n\r\n{\"a\":1}"), "{head}");
        let r = c.delete(&url).expect("delete");
        assert_eq!(r.status, 418);
        assert!(heads.recv().expect("head").starts_with("DELETE /x "));
    }

    #[test]
    fn get_json_names_url_and_status() {
        let (addr, _heads) = serve(Some(TEAPOT));
        let c = Client::new(Duration::from_secs(5));
        let url = format!("http://{addr}/j");
        let e = c.get_json::<serde_json::Value>(&url).expect_err("418");
        assert_eq!(e, format!("{url}: HTTP 418: short"));
        let (addr, _heads) = serve(Some("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n[1,2,3]"));
        let v: Vec<u8> = c.get_json(&format!("http://{addr}/j")).expect("json");
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn bearer_is_sent_and_a_bad_token_refused() {
        let (addr, heads) = serve(Some(TEAPOT));
        let c = Client::new(Duration::from_secs(5));
        c.get(&format!("http://{addr}/a")).expect("get");
        assert!(!heads
            .recv()
            .expect("head")
            .to_ascii_lowercase()
            .contains("authorization"));
        let b = c.with_bearer("s3cret").expect("token");
        b.get(&format!("http://{addr}/b")).expect("get");
        let head = heads.recv().expect("head").to_ascii_lowercase();
        assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
        assert!(c.with_bearer("bad\ntoken").is_err());
    }

    #[test]
    fn timeout_names_the_url() {
        let (addr, _heads) = serve(None);
        let c = Client::new(Duration::from_millis(200));
        let url = format!("http://{addr}/slow");
        let t = Instant::now();
        let e = c.get(&url).expect_err("no answer");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(
            e,
            Error::Timeout {
                url: url.clone(),
                timeout: Duration::from_millis(200)
            }
        );
        assert!(e
            .to_string()
            .starts_with(&format!("{url}: no answer within")));
    }

    #[test]
    fn refused_connection_is_a_transport_error() {
        // A port just freed: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind");
        let url = format!("http://{addr}/");
        let e = Client::new(Duration::from_secs(5))
            .get(&url)
            .expect_err("refused");
        match &e {
            Error::Transport { url: u, msg } => {
                assert_eq!(u, &url);
                assert!(msg.to_ascii_lowercase().contains("refused"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let e = Client::new(Duration::from_secs(5))
            .get("ftp://x/")
            .expect_err("url");
        assert!(matches!(e, Error::Url { .. }), "{e:?}");
    }

    #[test]
    fn reader_streams_the_body() {
        let (addr, _heads) = serve(Some(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        ));
        let c = Client::new(Duration::from_secs(5));
        let mut r = c.get_reader(&format!("http://{addr}/f")).expect("get");
        assert_eq!((r.status, r.content_length), (200, None));
        let mut s = String::new();
        r.read_to_string(&mut s).expect("read");
        assert_eq!(s, "abcdefg");
        let mut r = c.get_reader(&format!("http://{addr}/f")).expect("again");
        let mut two = [0; 2];
        r.read_exact(&mut two).expect("read");
        assert_eq!(&two, b"ab");

        let (addr, _heads) = serve(Some(TEAPOT));
        let mut r = c.get_reader(&format!("http://{addr}/t")).expect("get");
        assert_eq!((r.status, r.content_length), (418, Some(5)));
        let mut s = String::new();
        r.read_to_string(&mut s).expect("read");
        assert_eq!(s, "short");
    }

    /// Inside a runtime: no panic on calls, on making or dropping clients.
    #[tokio::test]
    async fn usable_and_droppable_inside_a_runtime() {
        let (addr, _heads) = serve(Some(TEAPOT));
        let c = Client::new(Duration::from_secs(5));
        let url = format!("http://{addr}/in");
        assert_eq!(c.get(&url).expect("in a task").status, 418);
        let c2 = c.clone();
        let u = url.clone();
        let r = tokio::task::spawn_blocking(move || c2.get(&u))
            .await
            .expect("join");
        assert_eq!(r.expect("in spawn_blocking").status, 418);
        let _g = Handle::current().enter();
        assert_eq!(c.get(&url).expect("entered").status, 418);
        drop(c);
    }

    /// Calls from many threads at once on one client.
    #[test]
    fn concurrent_calls_from_threads() {
        let (addr, _heads) = serve(Some(TEAPOT));
        let c = Client::new(Duration::from_secs(5));
        let url = format!("http://{addr}/");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        assert_eq!(c.get(&url).expect("get").status, 418);
                    }
                });
            }
        });
    }
}
