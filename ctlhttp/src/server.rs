//! The server side of the control APIs (axum): the error answer every
//! daemon gives, a 4xx/5xx with a JSON body `{"error": ..., "field": ...}`
//! (the shape of `wire::ctl::ApiError`), and the JSON body parser that
//! names the offending field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An error answer: status, message and, if known, the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErr {
    /// HTTP status.
    pub status: StatusCode,
    /// What was wrong, in words.
    pub error: String,
    /// The request field at fault.
    pub field: Option<String>,
}

/// The body of an error answer; the same JSON as `wire::ctl::ApiError`.
#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiErr {
    /// An error with a message and, if known, the offending field.
    pub fn new(status: StatusCode, error: impl Into<String>, field: Option<&str>) -> ApiErr {
        ApiErr {
            status,
            error: error.into(),
            field: field.map(str::to_string),
        }
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.error,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Parses a JSON body; a syntax error, a missing or unknown field or a
/// wrong type is a 400 naming the field where serde says which.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiErr> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let field = if msg.starts_with("missing field") || msg.starts_with("unknown field") {
            msg.split('`').nth(1)
        } else {
            None
        };
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            format!("bad JSON body: {msg}"),
            field,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        psi: u8,
    }

    async fn answer(e: ApiErr) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let b = to_bytes(r.into_body(), 1 << 16).await.expect("body");
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn missing_and_unknown_fields_are_named() {
        let e = parse_json::<Req>(b"{}").expect_err("missing psi");
        assert_eq!(e.field.as_deref(), Some("psi"));
        let e = parse_json::<Req>(br#"{"psi":1,"x":2}"#).expect_err("unknown x");
        assert_eq!(e.field.as_deref(), Some("x"));
        let (status, body) = answer(e).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["field"], "x");
        assert!(v["error"]
            .as_str()
            .is_some_and(|s| s.starts_with("bad JSON body")));
    }

    #[tokio::test]
    async fn syntax_error_has_no_field_key() {
        let e = parse_json::<Req>(b"{").expect_err("syntax");
        assert_eq!(e.field, None);
        let (_, body) = answer(e).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert!(v.get("field").is_none(), "{body}");
        assert!(parse_json::<Req>(br#"{"psi":3}"#).is_ok());
    }
}
