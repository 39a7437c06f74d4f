//! N2-lite calls to gNBs, each a task on the SMF's runtime; a setup's
//! result goes back to the control thread as [`Cmd::N2Done`].

use super::Cmd;
use crate::client::N2Client;
use crate::core::SessionKey;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use wire::ctl::{GnbRef, TunnelSetup};

pub(super) enum N2Job {
    Setup {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        setup: TunnelSetup,
        replace_dl_teid: Option<u32>,
    },
    Delete {
        gnb: GnbRef,
        dl_teid: u32,
    },
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
        N2Job::Setup {
            key,
            gen,
            gnb,
            setup,
            replace_dl_teid,
        } => {
            if let Some(old) = replace_dl_teid {
                if let Err(e) = http.delete(&gnb.n2_api, old).await {
                    debug!("N2 delete of the old tunnel: {e}");
                }
            }
            let result = http
                .setup(&gnb.n2_api, &setup)
                .await
                .map_err(|e| e.to_string());
            let _ = done
                .send(Cmd::N2Done {
                    key,
                    gen,
                    gnb,
                    result,
                })
                .await;
        }
        N2Job::Delete { gnb, dl_teid } => {
            if let Err(e) = http.delete(&gnb.n2_api, dl_teid).await {
                warn!(gnb = %gnb.name, dl_teid, "N2 tunnel delete failed: {e}");
            }
        }
    }
}
