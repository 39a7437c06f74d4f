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
    let token = token.map(str::to_owned);
    let r = topo::netns::run_in_netns(ns, move || -> Result<(u16, String), String> {
        // Made on the namespace thread: its connections are in `ns`.
        let mut c = ctlhttp::blocking::Client::new(timeout);
        if let Some(t) = &token {
            c = c.with_bearer(t)?;
        }
        let rsp = match (method, body) {
            ("POST", Some(b)) => c.post_json(&url2, b),
            ("DELETE", _) => c.delete(&url2),
            _ => c.get(&url2),
        };
        // The error names the URL.
        let rsp = rsp.map_err(|e| e.to_string())?;
        Ok((rsp.status, rsp.text()))
    })
    .map_err(|e| format!("{url}: {e}"))?;
    r
}

pub(super) fn get_json(ns: &str, url: &str) -> Result<serde_json::Value, String> {
    let (st, body) = http_in(ns, "GET", url, None, Duration::from_secs(3))?;
    if st != 200 {
        return Err(format!("{url}: HTTP {st}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}
