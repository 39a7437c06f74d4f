//! The client against a real axum server on loopback.

#![allow(clippy::unwrap_used)] // a test fails loudly on what it cannot set up

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use ctlhttp::{Client, Error};

/// Serves: POST /echo (echoes body and content type), GET /peer (the
/// client's address), DELETE /echo -> 204, GET /slow never answers.
async fn server() -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let p = peers.clone();
    let app = Router::new()
        .route(
            "/echo",
            post(|h: HeaderMap, body: String| async move {
                let ct = h
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                (StatusCode::CREATED, format!("{ct}|{body}"))
            })
            .delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/peer",
            get(move |ConnectInfo(a): ConnectInfo<SocketAddr>| {
                let p = p.clone();
                async move {
                    p.lock().unwrap().push(a);
                    a.to_string()
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "nope") });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    (addr, peers)
}

#[tokio::test]
async fn post_get_delete_and_error_statuses_come_back_as_sent() {
    let (addr, _) = server().await;
    let c = Client::new(Duration::from_secs(5));
    let r = c
        .post_json(&format!("http://{addr}/echo"), r#"{"a":1}"#)
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), r#"application/json|{"a":1}"#);
    let r = c.delete(&format!("http://{addr}/echo")).await.unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = c.get(&format!("http://{addr}/missing")).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, "nope"));
}

#[tokio::test]
async fn calls_one_after_another_reuse_one_connection() {
    let (addr, peers) = server().await;
    let c = Client::new(Duration::from_secs(5));
    for _ in 0..20 {
        assert_eq!(
            c.get(&format!("http://{addr}/peer")).await.unwrap().status,
            200
        );
    }
    let peers = peers.lock().unwrap();
    assert_eq!(peers.len(), 20);
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "expected one keep-alive connection, saw {peers:?}"
    );
}

#[tokio::test]
async fn no_answer_is_a_timeout_naming_the_url() {
    let (addr, _) = server().await;
    let c = Client::new(Duration::from_millis(200));
    let url = format!("http://{addr}/slow");
    let t = std::time::Instant::now();
    let e = c.get(&url).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        e,
        Error::Timeout {
            url: url.clone(),
            timeout: Duration::from_millis(200)
        }
    );
    assert!(e.to_string().starts_with(&url), "{e}");
}

#[tokio::test]
async fn refused_connection_and_bad_urls_say_so() {
    // A port nobody listens on: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/x");
    match c.get(&url).await.unwrap_err() {
        Error::Transport { url: u, msg } => {
            assert_eq!(u, url);
            assert!(msg.to_lowercase().contains("refused"), "{msg}");
        }
        e => panic!("expected a transport error, got {e:?}"),
    }
    for bad in ["not a url", "https://127.0.0.1:1/x", "/relative"] {
        assert!(
            matches!(c.get(bad).await, Err(Error::Url { .. })),
            "{bad} accepted"
        );
    }
}

#[tokio::test]
async fn an_answer_longer_than_the_body_limit_is_an_error_not_buffered() {
    let (addr, _) = server().await;
    let url = format!("http://{addr}/echo");
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2000));
    // The echo is the body plus "application/json|": about 2 kB.
    let c = Client::new(Duration::from_secs(5));
    assert_eq!(c.post_json(&url, body.clone()).await.unwrap().status, 201);
    let small = c.with_body_limit(1024);
    match small.post_json(&url, body.clone()).await {
        Err(Error::Transport { url: u, msg }) => {
            assert_eq!(u, url);
            assert!(msg.contains("length limit"), "{msg}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    let enough = c.with_body_limit(4096);
    assert_eq!(enough.post_json(&url, body).await.unwrap().status, 201);
}
