//! The model being served, hot-swappable: it lives in an `ArcSwap`, so a request takes an `Arc` to
//! the model at its start and a swap never disturbs in-flight requests (the old model is freed when
//! the last one finishes). A watcher polls the registry and swaps in a newly activated model.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kwi_predict::{Predictor, registry};
use kwi_store::Store;
use tokio::task::JoinHandle;

/// Holds the active model.
#[derive(Clone)]
pub(crate) struct ModelSlot(Arc<ArcSwap<Predictor>>);

impl ModelSlot {
    /// A slot holding `p`.
    pub(crate) fn new(p: Predictor) -> Self {
        served_gauge(&p, 1.0);
        Self(Arc::new(ArcSwap::from_pointee(p)))
    }

    /// The current model (kept alive by the caller for as long as it needs it).
    pub(crate) fn current(&self) -> Arc<Predictor> {
        self.0.load_full()
    }

    /// Replaces the model; requests already holding the old one finish on it.
    pub(crate) fn swap(&self, p: Predictor) {
        tracing::info!(version = %p.manifest.version, "model swapped in");
        metrics::counter!("kwi_model_swaps_total").increment(1);
        served_gauge(&p, 1.0);
        let version = p.manifest.version.clone();
        let old = self.0.swap(Arc::new(p));
        if old.manifest.version != version {
            served_gauge(&old, 0.0);
        }
    }

    /// Polls the registry every `every` and swaps in a newly activated forecaster (one that cannot
    /// be loaded is logged and the current one kept).
    pub(crate) fn spawn_watcher(&self, store: Arc<dyn Store>, every: Duration) -> JoinHandle<()> {
        let slot = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Ok(Some(active)) = registry::active_forecaster(store.as_ref()).await else {
                    continue;
                };
                if active.version == slot.current().manifest.version {
                    continue;
                }
                match registry::load(&active).await {
                    Ok(p) => slot.swap(p),
                    Err(e) => {
                        tracing::error!(version = %active.version, error = %e, "newly active model cannot be loaded; keeping the current one")
                    }
                }
            }
        })
    }
}

/// `kwi_model_info{version}`: 1 for the model being served, 0 for one swapped out (the
/// Prometheus info-metric pattern, so dashboards can show and alert on the served version).
fn served_gauge(p: &Predictor, value: f64) {
    metrics::gauge!("kwi_model_info", "version" => p.manifest.version.clone()).set(value);
}
