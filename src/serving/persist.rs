//! The prediction writer: computed forecasts go through a bounded queue to a task that inserts them
//! in batches (retrying a failed batch); on shutdown the queue is drained before the process exits.

use std::sync::Arc;
use std::time::Duration;

use kwi_store::{PredictionRecord, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Queue length of the prediction writer (back-pressure beyond it, never loss).
pub const PERSIST_QUEUE: usize = 10_000;
/// Largest batch the writer inserts at once.
pub const PERSIST_BATCH: usize = 500;

/// Starts the prediction writer; it ends (after draining) once every sender is dropped.
pub(crate) fn spawn_persister(
    store: Arc<dyn Store>,
) -> (mpsc::Sender<PredictionRecord>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<PredictionRecord>(PERSIST_QUEUE);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(PERSIST_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            // Gather what is already queued (up to a batch) without waiting long.
            let deadline = tokio::time::sleep(Duration::from_millis(50));
            tokio::pin!(deadline);
            while batch.len() < PERSIST_BATCH {
                tokio::select! {
                    more = rx.recv() => match more { Some(r) => batch.push(r), None => break },
                    () = &mut deadline => break,
                }
            }
            let n = batch.len();
            let mut attempt = 0;
            loop {
                let t = std::time::Instant::now();
                match store.insert_predictions(&batch).await {
                    Ok(()) => {
                        metrics::histogram!("kwi_predictions_persist_seconds")
                            .record(t.elapsed().as_secs_f64());
                        metrics::histogram!("kwi_predictions_persist_batch_size").record(n as f64);
                        metrics::counter!("kwi_predictions_persisted_total").increment(n as u64);
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "persisting predictions failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, rows = n, "persisting predictions failed; batch dropped");
                        metrics::counter!("kwi_predictions_persist_failed_total")
                            .increment(n as u64);
                        break;
                    }
                }
            }
            batch.clear();
        }
        tracing::info!("prediction writer drained and stopped");
    });
    (tx, handle)
}
