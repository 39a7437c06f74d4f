//! JSON/HTTP clients on ctlhttp: the SMF's N2-lite calls to gNBs (async)
//! and the `smf` CLI's calls to the SMF API (blocking).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use wire::ctl::{ApiError, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};

/// A failed HTTP call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Connection, timeout or I/O error.
    #[error("{url}: {msg}")]
    Transport { url: String, msg: String },
    /// The server answered an error status.
    #[error("{url}: HTTP {status}: {}{}", body.error, body.field.as_ref().map(|f| format!(" (field `{f}`)")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        body: ApiError,
    },
    /// The answer did not decode.
    #[error("{url}: bad answer: {msg}")]
    Decode { url: String, msg: String },
}

impl HttpError {
    /// An error status; `text` is the body (an [`ApiError`] if it parses).
    fn status(url: &str, status: u16, text: String) -> HttpError {
        let body = serde_json::from_str::<ApiError>(&text).unwrap_or(ApiError {
            error: if text.is_empty() {
                "(no body)".into()
            } else {
                text
            },
            field: None,
        });
        HttpError::Status {
            url: url.to_owned(),
            status,
            body,
        }
    }
}

/// `r` as an answer with a success status, or the error naming `url`.
fn check(
    url: &str,
    r: Result<ctlhttp::Response, ctlhttp::Error>,
) -> Result<ctlhttp::Response, HttpError> {
    let r = r.map_err(|e| HttpError::Transport {
        url: url.to_owned(),
        msg: match e {
            ctlhttp::Error::Transport { msg, .. } | ctlhttp::Error::Url { msg, .. } => msg,
            ctlhttp::Error::Timeout { timeout, .. } => format!("no answer within {timeout:?}"),
        },
    })?;
    if r.status >= 400 {
        return Err(HttpError::status(url, r.status, r.text()));
    }
    Ok(r)
}

/// The JSON answer from `url`.
fn decode<T: DeserializeOwned>(url: &str, r: &ctlhttp::Response) -> Result<T, HttpError> {
    serde_json::from_slice(&r.body).map_err(|e| HttpError::Decode {
        url: url.to_owned(),
        msg: e.to_string(),
    })
}

/// A JSON request body for `url`.
fn encode<B: Serialize>(url: &str, body: &B) -> Result<Vec<u8>, HttpError> {
    serde_json::to_vec(body).map_err(|e| HttpError::Decode {
        url: url.to_owned(),
        msg: e.to_string(),
    })
}

/// A blocking keep-alive HTTP client (for the `smf` CLI and tests).
#[derive(Clone, Debug)]
pub struct Http {
    client: ctlhttp::blocking::Client,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http {
            client: ctlhttp::blocking::Client::new(timeout),
        }
    }

    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        let r = check(url, self.client.post_json(url, encode(url, body)?))?;
        decode(url, &r)
    }

    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        decode(url, &check(url, self.client.get(url))?)
    }

    pub fn get_text(&self, url: &str) -> Result<String, HttpError> {
        Ok(check(url, self.client.get(url))?.text())
    }

    pub fn delete(&self, url: &str) -> Result<(), HttpError> {
        check(url, self.client.delete(url)).map(|_| ())
    }
}

/// The SMF's N2-lite calls to gNBs: async, on the SMF's runtime, over
/// keep-alive connections.
#[derive(Clone, Debug)]
pub struct N2Client {
    http: ctlhttp::Client,
}

impl N2Client {
    /// Every call must be answered within `timeout`.
    pub fn new(timeout: Duration) -> N2Client {
        N2Client {
            http: ctlhttp::Client::new(timeout),
        }
    }

    /// `GET /tunnels` on the gNB at `n2_api` (`IP:PORT`).
    pub async fn tunnels(&self, n2_api: &str) -> Result<Vec<crate::core::GnbTunnel>, HttpError> {
        let url = format!("http://{n2_api}/tunnels");
        decode(&url, &check(&url, self.http.get(&url).await)?)
    }

    /// `POST /n2/tunnels` on the gNB at `n2_api` (`IP:PORT`).
    pub async fn setup(
        &self,
        n2_api: &str,
        t: &TunnelSetup,
    ) -> Result<TunnelSetupResponse, HttpError> {
        let url = format!("http://{n2_api}/n2/tunnels");
        let r = check(&url, self.http.post_json(&url, encode(&url, t)?).await)?;
        decode(&url, &r)
    }

    /// `DELETE /n2/tunnels/{dl_teid}` on the gNB.
    pub async fn delete(&self, n2_api: &str, dl_teid: u32) -> Result<(), HttpError> {
        let url = format!("http://{n2_api}/n2/tunnels/{dl_teid}");
        check(&url, self.http.delete(&url).await).map(|_| ())
    }
}

/// Client of the SMF's HTTP API.
#[derive(Clone, Debug)]
pub struct SmfClient {
    http: Http,
    base: String,
}

impl SmfClient {
    /// `api`: `IP:PORT` or a base URL.
    pub fn new(api: &str) -> SmfClient {
        let base = if api.starts_with("http://") {
            api.trim_end_matches('/').to_owned()
        } else {
            format!("http://{api}")
        };
        SmfClient {
            http: Http::new(Duration::from_secs(30)),
            base,
        }
    }

    pub fn create(&self, r: &SessionRequest) -> Result<SessionInfo, HttpError> {
        self.http.post_json(&format!("{}/sessions", self.base), r)
    }

    pub fn list(&self) -> Result<Vec<serde_json::Value>, HttpError> {
        self.http.get_json(&format!("{}/sessions", self.base))
    }

    pub fn get(&self, ue_id: &str, psi: u8) -> Result<serde_json::Value, HttpError> {
        self.http
            .get_json(&format!("{}/sessions/{ue_id}/{psi}", self.base))
    }

    pub fn release(&self, ue_id: &str, psi: u8) -> Result<(), HttpError> {
        self.http
            .delete(&format!("{}/sessions/{ue_id}/{psi}", self.base))
    }

    pub fn upfs(&self) -> Result<Vec<serde_json::Value>, HttpError> {
        self.http.get_json(&format!("{}/upfs", self.base))
    }

    pub fn metrics(&self) -> Result<String, HttpError> {
        self.http.get_text(&format!("{}/metrics", self.base))
    }
}
