//! Blocking JSON/HTTP client (ureq): the SMF's N2-lite calls to gNBs and the
//! `smf` CLI's calls to the SMF API.

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

/// A keep-alive HTTP agent.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections(256)
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Http { agent }
    }

    fn finish(
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let mut rsp = r.map_err(|e| HttpError::Transport {
            url: url.to_owned(),
            msg: e.to_string(),
        })?;
        let status = rsp.status().as_u16();
        if status >= 400 {
            let text = rsp.body_mut().read_to_string().unwrap_or_default();
            return Err(HttpError::status(url, status, text));
        }
        Ok(rsp)
    }

    fn json<T: DeserializeOwned>(
        url: &str,
        mut rsp: ureq::http::Response<ureq::Body>,
    ) -> Result<T, HttpError> {
        rsp.body_mut()
            .read_json::<T>()
            .map_err(|e| HttpError::Decode {
                url: url.to_owned(),
                msg: e.to_string(),
            })
    }

    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        let r = Self::finish(url, self.agent.post(url).send_json(body))?;
        Self::json(url, r)
    }

    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        let r = Self::finish(url, self.agent.get(url).call())?;
        Self::json(url, r)
    }

    pub fn get_text(&self, url: &str) -> Result<String, HttpError> {
        let mut r = Self::finish(url, self.agent.get(url).call())?;
        r.body_mut()
            .read_to_string()
            .map_err(|e| HttpError::Decode {
                url: url.to_owned(),
                msg: e.to_string(),
            })
    }

    pub fn delete(&self, url: &str) -> Result<(), HttpError> {
        Self::finish(url, self.agent.delete(url).call()).map(|_| ())
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

    /// `GET /tunnels` on the gNB at `n2_api` (`IP:PORT`).
    pub async fn tunnels(&self, n2_api: &str) -> Result<Vec<crate::core::GnbTunnel>, HttpError> {
        let url = format!("http://{n2_api}/tunnels");
        let r = Self::check(&url, self.http.get(&url).await)?;
        serde_json::from_slice(&r.body).map_err(|e| HttpError::Decode {
            url,
            msg: e.to_string(),
        })
    }

    /// `POST /n2/tunnels` on the gNB at `n2_api` (`IP:PORT`).
    pub async fn setup(
        &self,
        n2_api: &str,
        t: &TunnelSetup,
    ) -> Result<TunnelSetupResponse, HttpError> {
        let url = format!("http://{n2_api}/n2/tunnels");
        let body = serde_json::to_vec(t).map_err(|e| HttpError::Decode {
            url: url.clone(),
            msg: e.to_string(),
        })?;
        let r = Self::check(&url, self.http.post_json(&url, body).await)?;
        serde_json::from_slice(&r.body).map_err(|e| HttpError::Decode {
            url,
            msg: e.to_string(),
        })
    }

    /// `DELETE /n2/tunnels/{dl_teid}` on the gNB.
    pub async fn delete(&self, n2_api: &str, dl_teid: u32) -> Result<(), HttpError> {
        let url = format!("http://{n2_api}/n2/tunnels/{dl_teid}");
        Self::check(&url, self.http.delete(&url).await).map(|_| ())
    }
}

/// Client of the SMF's HTTP API.
#[derive(Clone)]
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
