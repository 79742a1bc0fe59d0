//! Single flight: concurrent requests for one key share one lookup-or-compute.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::ServeError;

use crate::cache::FastHash;

/// A single-keyword answer: the JSON body and whether it was found in the cache.
pub(crate) type Found = Result<(Bytes, bool), ServeError>;

/// Single flight: concurrent requests for one key share one lookup-or-compute and all get its
/// answer. Only requests that overlap share: once the answer is out the key is forgotten, and the
/// next request finds the forecast in the cache. A plain map of waiters under a mutex held for a
/// few instructions (no await inside); a moka cache with a TTL did the same at several times the
/// CPU on the uncached path.
#[derive(Clone, Default)]
pub(crate) struct SingleFlight(Arc<std::sync::Mutex<Waiters>>);

/// Keys being computed, each with the requests waiting for it.
type Waiters = std::collections::HashMap<String, Vec<oneshot::Sender<Found>>, FastHash>;

/// The request that computes a key; dropping it unanswered (the client hung up) releases the key,
/// and every waiter then tries again itself.
struct Leader<'a> {
    flight: &'a SingleFlight,
    key: Option<String>,
}

impl Leader<'_> {
    fn finish(mut self, answer: &Found) {
        let key = self.key.take().expect("finished once");
        let waiters = self.flight.lock().remove(&key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flight.lock().remove(&key);
        }
    }
}

impl SingleFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        // A panic while holding it cannot leave the map inconsistent (inserts and removes only).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `work`'s answer for `key`, computed once however many ask for it at the same time.
    pub async fn run<F>(&self, key: String, work: impl Fn() -> F) -> Found
    where
        F: std::future::Future<Output = Found>,
    {
        loop {
            let waiting = {
                let mut map = self.lock();
                match map.get_mut(&key) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        map.insert(key.clone(), Vec::new());
                        None
                    }
                }
            };
            match waiting {
                // The leader answered; or it was dropped unanswered: try again.
                Some(rx) => match rx.await {
                    Ok(answer) => return answer,
                    Err(_) => continue,
                },
                None => {
                    let leader = Leader {
                        flight: self,
                        key: Some(key),
                    };
                    let answer = work().await;
                    leader.finish(&answer);
                    return answer;
                }
            }
        }
    }

    /// Keys being computed now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is being computed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use std::time::Duration;

    use super::*;

    /// Overlapping requests compute once and share the answer; a later request computes again
    /// (the key is forgotten once answered); a leader dropped unanswered hands over to a waiter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_shares_only_overlapping_work() {
        let flight = SingleFlight::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (go, gate) = tokio::sync::watch::channel(false);
        let work = |runs: Arc<AtomicUsize>, gate: tokio::sync::watch::Receiver<bool>| {
            move || {
                let (runs, mut gate) = (runs.clone(), gate.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.wait_for(|open| *open)
                        .await
                        .map_err(|_| ServeError::Internal("gate closed".into()))?;
                    Ok((Bytes::from_static(b"body"), false))
                }
            }
        };
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (f, w) = (flight.clone(), work(runs.clone(), gate.clone()));
                tokio::spawn(async move { f.run("k".into(), w).await })
            })
            .collect();
        while flight.is_empty() {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        go.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().0, Bytes::from_static(b"body"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flight.is_empty());
        flight
            .run("k".into(), work(runs.clone(), gate.clone()))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A leader that never finishes is dropped (its client hung up): the waiter takes over.
        let (_hold, closed) = tokio::sync::watch::channel(false);
        let stuck = {
            let f = flight.clone();
            let w = work(runs.clone(), closed.clone());
            tokio::spawn(async move { f.run("j".into(), w).await })
        };
        while flight.is_empty() {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let f = flight.clone();
            let w = work(runs.clone(), gate.clone());
            tokio::spawn(async move { f.run("j".into(), w).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        stuck.abort();
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert!(flight.is_empty());
    }
}
