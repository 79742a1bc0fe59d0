//! Search history and the audit trail, written off the request path: handlers queue rows on a
//! bounded channel (never waiting: a full queue drops the row and counts it in
//! `kwi_events_dropped_total`), a task writes them in batches, one transaction each, and drains the
//! queue when the server stops. Repeats of the same lookup by the same caller within a minute are
//! one history row, so an API client polling a keyword does not flood its own history.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kwi_store::{AuditRecord, SearchRecord, Store};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows the queue holds before dropping.
pub const QUEUE: usize = 10_000;
/// Rows per write.
const BATCH: usize = 500;
/// A repeated lookup within this window is not recorded again.
const REPEAT_WINDOW: Duration = Duration::from_secs(60);

enum Event {
    Search(SearchRecord),
    Audit(AuditRecord),
}

/// The recorder's handle.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    /// Recent (user, hash of platform and keyword): a lookup repeated within the window is not
    /// recorded again. Hashed so the check allocates nothing (a collision, about 1 in 2^64,
    /// would skip one history row).
    recent: moka::sync::Cache<(Uuid, u64), ()>,
    hasher: foldhash::quality::RandomState,
}

impl Recorder {
    /// The recorder and its writer (await the handle after every clone is dropped: the queue is
    /// drained first).
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let task = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut buf, BATCH).await > 0 {
                let (mut searches, mut audit) = (Vec::new(), Vec::new());
                for e in buf.drain(..) {
                    match e {
                        Event::Search(s) => searches.push(s),
                        Event::Audit(a) => audit.push(a),
                    }
                }
                write(store.as_ref(), &searches, &audit).await;
            }
        });
        let recent = moka::sync::Cache::builder()
            .max_capacity(200_000)
            .time_to_live(REPEAT_WINDOW)
            .support_invalidation_closures()
            .build();
        (
            Self {
                tx,
                recent,
                hasher: Default::default(),
            },
            task,
        )
    }

    /// Queues a history row for `user` (none for a repeat within a minute).
    /// `results` is built only when the row is recorded.
    pub fn search(
        &self,
        user: Uuid,
        platform: &str,
        keyword: &str,
        results: impl FnOnce() -> Value,
    ) {
        use std::hash::BuildHasher;
        let key = (user, self.hasher.hash_one((platform, keyword)));
        if self.recent.contains_key(&key) {
            return;
        }
        self.recent.insert(key, ());
        let results = results();
        self.send(Event::Search(SearchRecord {
            id: Uuid::now_v7(),
            user_id: Some(user),
            platform: platform.to_string(),
            keyword: keyword.to_string(),
            results,
            created_at: Utc::now(),
        }));
    }

    /// Queues an audit row.
    pub fn audit(
        &self,
        actor: Option<Uuid>,
        action: &str,
        target: Option<String>,
        detail: Value,
        ip: Option<String>,
    ) {
        self.send(Event::Audit(AuditRecord {
            id: Uuid::now_v7(),
            at: Utc::now(),
            actor,
            action: action.to_string(),
            target,
            detail,
            ip,
        }));
    }

    /// Forgets recent lookups (a user who deleted their history sees new lookups again).
    pub fn forget(&self, user: Uuid) {
        let _ = self.recent.invalidate_entries_if(move |k, _| k.0 == user);
    }

    fn send(&self, e: Event) {
        if self.tx.try_send(e).is_err() {
            metrics::counter!("kwi_events_dropped_total").increment(1);
        }
    }
}

/// Writes one batch, retrying once a second later; a batch that still fails is logged and dropped
/// (it is history, not data: the service goes on).
async fn write(store: &dyn Store, searches: &[SearchRecord], audit: &[AuditRecord]) {
    for attempt in 0..2 {
        match store.insert_events(searches, audit).await {
            Ok(()) => return,
            Err(e) if attempt == 0 => {
                tracing::warn!(error = %e, "cannot write history/audit rows; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                metrics::counter!("kwi_events_dropped_total")
                    .increment((searches.len() + audit.len()) as u64);
                tracing::error!(error = %e, searches = searches.len(), audit = audit.len(),
                    "history/audit rows dropped");
            }
        }
    }
}
