//! N2-lite calls to gNBs, each a task on the SMF's runtime; a setup's
//! result goes back to the control thread as [`Cmd::N2Done`].

use super::Cmd;
use crate::client::N2Client;
use crate::core::N2Request;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use wire::ctl::GnbRef;

pub(super) enum N2Job {
    Setup(N2Request),
    Delete {
        gnb: GnbRef,
        dl_teid: u32,
    },
    /// List the gNB's tunnels for the SMF's audit.
    Audit(GnbRef),
}

pub(super) struct N2 {
    http: N2Client,
    done: mpsc::Sender<Cmd>,
}

impl N2 {
    pub fn new(timeout: Duration, done: mpsc::Sender<Cmd>) -> N2 {
        N2 {
            http: N2Client::new(timeout),
            done,
        }
    }

    pub fn submit(&self, job: N2Job) {
        let (http, done) = (self.http.clone(), self.done.clone());
        tokio::spawn(async move { run_n2(&http, &done, job).await });
    }
}

async fn run_n2(http: &N2Client, done: &mpsc::Sender<Cmd>, job: N2Job) {
    match job {
        N2Job::Setup(r) => {
            if let Some(old) = r.replace_dl_teid {
                if let Err(e) = http.delete(&r.gnb.n2_api, old).await {
                    debug!("N2 delete of the old tunnel: {e}");
                }
            }
            let result = http
                .setup(&r.gnb.n2_api, &r.setup)
                .await
                .map_err(|e| e.to_string());
            let _ = done
                .send(Cmd::N2Done {
                    key: r.key,
                    gen: r.gen,
                    gnb: r.gnb,
                    result,
                })
                .await;
        }
        N2Job::Audit(gnb) => {
            let result = http.tunnels(&gnb.n2_api).await.map_err(|e| e.to_string());
            let _ = done.send(Cmd::N2Audit { gnb, result }).await;
        }
        N2Job::Delete { gnb, dl_teid } => {
            if let Err(e) = http.delete(&gnb.n2_api, dl_teid).await {
                warn!(gnb = %gnb.name, dl_teid, "N2 tunnel delete failed: {e}");
            }
        }
    }
}
