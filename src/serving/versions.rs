//! Per-keyword data versions held in process, so a cache hit costs no database round trip. A
//! watcher polls the newest change in the store (every `--data-poll-ms`) and drops them all when it
//! moves, so new data is picked up within one poll interval. A version is part of every cache key:
//! new data can never be answered from a stale entry.

use std::sync::Arc;
use std::time::Duration;

use kwi_features::{Keyword, Platform};
use kwi_store::Store;
use tokio::task::JoinHandle;

use crate::cache::FastHash;

/// Per-keyword data versions held in process (a bounded map), dropped whenever the store reports
/// newer data. `None` entries remember keywords the store does not have (no repeated lookups for
/// unknown keywords either).
///
/// `known` keeps the last version read for each keyword through those drops (for ten minutes), and
/// answers only when the store cannot be reached: while it is down no newer data can be read
/// anyway, so a cached forecast of the last known version is still the right answer.
#[derive(Clone)]
pub(crate) struct DataVersions {
    map: moka::sync::Cache<(Platform, Keyword), Option<i64>, FastHash>,
    known: moka::sync::Cache<(Platform, Keyword), Option<i64>, FastHash>,
    epoch: Arc<std::sync::atomic::AtomicI64>,
}

impl Default for DataVersions {
    fn default() -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .build_with_hasher(FastHash::default()),
            known: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(600))
                .build_with_hasher(FastHash::default()),
            epoch: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        }
    }
}

impl DataVersions {
    /// The keyword's data version (microseconds since the epoch of its last change), or `None` when
    /// the store has no data for it.
    pub async fn get(
        &self,
        store: &dyn Store,
        platform: Platform,
        keyword: &Keyword,
    ) -> kwi_store::Result<Option<i64>> {
        let key = (platform, keyword.clone());
        if let Some(v) = self.map.get(&key) {
            return Ok(v);
        }
        let v = match store.data_version(platform, keyword).await {
            Ok(v) => v.map(|t| t.timestamp_micros()),
            Err(e) if e.is_transient() => return self.known.get(&key).ok_or(e),
            Err(e) => return Err(e),
        };
        self.known.insert(key.clone(), v);
        self.map.insert(key, v);
        Ok(v)
    }

    /// [`Self::get`] for many keywords, with one store query for those not held.
    pub async fn get_many(
        &self,
        store: &dyn Store,
        keys: &[(Platform, Keyword)],
    ) -> kwi_store::Result<Vec<Option<i64>>> {
        let mut out: Vec<Option<Option<i64>>> = keys.iter().map(|k| self.map.get(k)).collect();
        let missing: Vec<(Platform, Keyword)> = keys
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !missing.is_empty() {
            let found: std::collections::HashMap<_, _> =
                match store.data_versions_many(&missing).await {
                    Ok(found) => found
                        .into_iter()
                        .map(|(k, t)| (k, t.timestamp_micros()))
                        .collect(),
                    Err(e) if e.is_transient() => {
                        // Every missing version must be known, or the store is needed after all.
                        for (k, v) in keys.iter().zip(out.iter_mut()) {
                            if v.is_none() {
                                *v = Some(self.known.get(k).ok_or_else(|| {
                                    kwi_store::StoreError::Unreachable(e.to_string())
                                })?);
                            }
                        }
                        return Ok(out.into_iter().map(Option::flatten).collect());
                    }
                    Err(e) => return Err(e),
                };
            for (k, v) in keys.iter().zip(out.iter_mut()) {
                if v.is_none() {
                    let version = found.get(k).copied();
                    self.known.insert(k.clone(), version);
                    self.map.insert(k.clone(), version);
                    *v = Some(version);
                }
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// Checks the store's newest change; drops every held version when it moved. Returns whether
    /// it did.
    pub async fn refresh(&self, store: &dyn Store) -> kwi_store::Result<bool> {
        use std::sync::atomic::Ordering;
        let latest = store
            .latest_data_change()
            .await?
            .map_or(i64::MIN + 1, |t| t.timestamp_micros());
        if self.epoch.swap(latest, Ordering::AcqRel) != latest {
            self.map.invalidate_all();
            return Ok(true);
        }
        Ok(false)
    }

    /// Polls [`Self::refresh`] every `every`.
    pub fn spawn_watcher(&self, store: Arc<dyn Store>, every: Duration) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = this.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "cannot poll the store for new data");
                }
            }
        })
    }
}
