//! HTTP requests to the daemons' APIs, from a thread inside their namespace.

use std::time::Duration;

/// `GET url` from a thread inside namespace `ns`: (status, body).
pub fn http_in(
    ns: &str,
    method: &'static str,
    url: &str,
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    http_in_auth(ns, method, url, body, timeout, None)
}

/// [`http_in`] with `Authorization: Bearer TOKEN` when `token` is given
/// (the edge agents' API).
pub fn http_in_auth(
    ns: &str,
    method: &'static str,
    url: &str,
    body: Option<String>,
    timeout: Duration,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let url2 = url.to_string();
    let auth = token.map(|t| format!("Bearer {t}"));
    let r = topo::netns::run_in_netns(ns, move || -> Result<(u16, String), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let rsp = match (method, body) {
            ("POST", Some(b)) => {
                let mut rq = agent.post(&url2).header("content-type", "application/json");
                if let Some(a) = &auth {
                    rq = rq.header("authorization", a);
                }
                rq.send(b.as_bytes())
            }
            (m, _) => {
                let mut rq = if m == "DELETE" {
                    agent.delete(&url2)
                } else {
                    agent.get(&url2)
                };
                if let Some(a) = &auth {
                    rq = rq.header("authorization", a);
                }
                rq.call()
            }
        };
        let mut rsp = rsp.map_err(|e| e.to_string())?;
        let status = rsp.status().as_u16();
        let text = rsp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, text))
    })
    .map_err(|e| e.to_string())?;
    r.map_err(|e| format!("{url}: {e}"))
}

pub(super) fn get_json(ns: &str, url: &str) -> Result<serde_json::Value, String> {
    let (st, body) = http_in(ns, "GET", url, None, Duration::from_secs(3))?;
    if st != 200 {
        return Err(format!("{url}: HTTP {st}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}
