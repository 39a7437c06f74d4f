//! An async HTTP/1.1 client with keep-alive connections, for the control
//! APIs between the daemons: the UE's N1 calls to the gNB, the gNB's relay
//! to the SMF, the SMF's N2-lite calls to gNBs, and the testbed's load
//! generator.
//!
//! It runs on the caller's tokio runtime (hyper, no thread per call): a
//! session setup crosses three of these hops, and a blocking client on a
//! thread pool costs two thread wake-ups per hop.
//!
//! ```no_run
//! # async fn f() -> Result<(), ctlhttp::Error> {
//! let c = ctlhttp::Client::new(std::time::Duration::from_secs(5));
//! let r = c.post_json("http://10.0.0.1:8080/sessions", r#"{"psi":1}"#).await?;
//! assert_eq!(r.status, 201);
//! # Ok(()) }
//! ```
//!
//! [`blocking`] is the same client for callers that are plain threads
//! (CLIs, tests, namespace threads): the workspace's one HTTP client.
//!
//! Also the small server-side support the daemons share: [`server`] (the
//! error answer and the JSON body parser), [`metrics`] (a timing summary)
//! and [`daemon`] (runtime, shutdown signal, configuration error), and
//! [`rt`] (real-time priority for the threads on a frame's way).

pub mod blocking;
pub mod daemon;
pub mod metrics;
pub mod rt;
pub mod server;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A call that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The URL does not parse, or is not `http://HOST:PORT/...`.
    #[error("{url}: bad URL: {msg}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        msg: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("{url}: {msg}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause, with its sources.
        msg: String,
    },
    /// No complete answer within the client's timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive client; cheap to clone (clones share the connection pool).
#[derive(Clone, Debug)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    /// `Authorization` of every request, if set ([`Client::with_bearer`]).
    auth: Option<HeaderValue>,
    /// Longest answer body read; a longer one is an error
    /// ([`Client::with_body_limit`]).
    body_limit: usize,
}

/// The longest answer body a [`Client`] reads unless told otherwise: the
/// control APIs answer in kilobytes (the SMF's list of 10,000 sessions is
/// about 4 MB), and a peer must not make a daemon buffer without bound.
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;

/// `url` as a URI if it is `http://HOST[:PORT]/...`.
pub(crate) fn http_uri(url: &str) -> Result<Uri, Error> {
    let bad = |msg: String| Error::Url {
        url: url.to_owned(),
        msg,
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(uri),
        _ => Err(bad("must be http://HOST:PORT/PATH".into())),
    }
}

/// The error and its sources, joined by ": ".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

impl Client {
    /// A client whose every call (connect, send, whole answer) must finish
    /// within `timeout`. Must be used inside a tokio runtime.
    pub fn new(timeout: Duration) -> Client {
        let mut conn = HttpConnector::new();
        // A request is headers and a small body: send them at once.
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(timeout));
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(conn);
        Client {
            http,
            timeout,
            auth: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// The same client (sharing its connection pool) reading answer bodies
    /// of at most `bytes`; a longer one is an [`Error::Transport`].
    pub fn with_body_limit(&self, bytes: usize) -> Client {
        Client {
            body_limit: bytes,
            ..self.clone()
        }
    }

    /// The same client (sharing its connection pool) sending
    /// `Authorization: Bearer TOKEN` with every request; a token that is
    /// no valid header value is refused.
    pub fn with_bearer(&self, token: &str) -> Result<Client, String> {
        let v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token has characters a header cannot carry".to_string())?;
        Ok(Client {
            auth: Some(v),
            ..self.clone()
        })
    }

    /// The same client (sharing its connection pool) with another
    /// timeout, e.g. for a long poll.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response, Error> {
        self.request(Method::GET, url, None).await
    }

    /// `DELETE url`.
    pub async fn delete(&self, url: &str) -> Result<Response, Error> {
        self.request(Method::DELETE, url, None).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(&self, url: &str, body: impl Into<Bytes>) -> Result<Response, Error> {
        self.request(Method::POST, url, Some(body.into())).await
    }

    /// Any call; a body is sent as `application/json`.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Response, Error> {
        let uri = http_uri(url)?;
        let json = body.is_some();
        let mut req = Request::new(Full::new(body.unwrap_or_default()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        if json {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(a) = &self.auth {
            req.headers_mut()
                .insert(hyper::header::AUTHORIZATION, a.clone());
        }
        let call = async {
            let rsp = self.http.request(req).await.map_err(|e| chain(&e))?;
            let status = rsp.status().as_u16();
            let limit = self.body_limit;
            let body = http_body_util::Limited::new(rsp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {}", chain(&*e)))?
                .to_bytes();
            Ok::<_, String>(Response { status, body })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(Error::Transport {
                url: url.to_owned(),
                msg,
            }),
            Err(_) => Err(Error::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            }),
        }
    }
}
