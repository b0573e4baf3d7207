//! The credential cache: minted credentials by everything that changes the AssumeRole call,
//! reused until shortly before they expire; concurrent misses for one key wait on one mint.
//! Bounded: expired entries go first when it is full.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use tokio::sync::Mutex;

/// Reuse cached credentials only while they have at least this long left.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// At most this many scopes are cached by default; expired ones go first.
pub const CACHE_CAPACITY: usize = 1024;

type Slot = Arc<Mutex<Option<Credentials>>>;

/// Credentials by key.
pub struct Cache<K> {
    slots: std::sync::Mutex<HashMap<K, Slot>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> Default for Cache<K> {
    fn default() -> Self {
        Self::with_capacity(CACHE_CAPACITY)
    }
}

impl<K: Eq + Hash + Clone> Cache<K> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: std::sync::Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn slot(&self, key: K) -> Slot {
        let mut cache = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.capacity && !cache.contains_key(&key) {
            let now = SystemTime::now();
            cache.retain(|_, slot| match slot.try_lock() {
                Ok(g) => g.as_ref().is_some_and(|c| fresh(c, now)),
                Err(_) => true, // being filled right now
            });
            if cache.len() >= self.capacity
                && let Some(k) = cache.keys().next().cloned()
            {
                cache.remove(&k);
            }
        }
        cache.entry(key).or_default().clone()
    }

    /// The fresh credentials for `key`, or the ones `mint` makes (stored for next time).
    /// Holding the slot's lock across `mint` collapses concurrent misses for one key into one
    /// call; other keys have their own slots. A failed mint stores nothing.
    pub async fn get_or_mint<E, F>(&self, key: K, mint: F) -> Result<Credentials, E>
    where
        F: Future<Output = Result<Credentials, E>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && fresh(c, SystemTime::now())
        {
            return Ok(c.clone());
        }
        let c = mint.await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Credentials that have more than [`EXPIRY_MARGIN`] left at `now`.
pub fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry()
        .is_some_and(|e| e.duration_since(now).is_ok_and(|left| left > EXPIRY_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn creds(minutes: u64) -> Credentials {
        Credentials::new(
            "AKIDTEST",
            "secret",
            Some("token".into()),
            Some(SystemTime::now() + Duration::from_secs(minutes * 60)),
            "test",
        )
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_key_make_one_mint() {
        let cache: Cache<&str> = Cache::default();
        let mints = AtomicU32::new(0);
        let mint = || async {
            mints.fetch_add(1, Ordering::SeqCst);
            // Every other caller arrives while this one is minting.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            Ok::<_, ()>(creds(15))
        };
        let calls: Vec<_> = (0..50).map(|_| cache.get_or_mint("a", mint())).collect();
        let results = futures_join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(mints.load(Ordering::SeqCst), 1);
        // Another key mints on its own.
        cache.get_or_mint("b", mint()).await.unwrap();
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_minted_again_and_failures_are_not_cached() {
        let cache: Cache<u8> = Cache::default();
        cache
            .get_or_mint(1, async { Ok::<_, ()>(creds(4)) })
            .await
            .unwrap();
        let mints = AtomicU32::new(0);
        let again = || async {
            mints.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(creds(15))
        };
        cache.get_or_mint(1, again()).await.unwrap();
        cache.get_or_mint(1, again()).await.unwrap();
        assert_eq!(
            mints.load(Ordering::SeqCst),
            1,
            "4 minutes left is under the margin"
        );
        assert!(
            cache
                .get_or_mint(2, async { Err::<Credentials, _>("refused") })
                .await
                .is_err()
        );
        cache.get_or_mint(2, again()).await.unwrap();
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_full_cache_drops_stale_keys_first() {
        let cache: Cache<u32> = Cache::with_capacity(3);
        for k in 0..3 {
            cache
                .get_or_mint(k, async { Ok::<_, ()>(creds(1)) })
                .await
                .unwrap();
        }
        cache
            .get_or_mint(9, async { Ok::<_, ()>(creds(15)) })
            .await
            .unwrap();
        assert!(cache.len() <= 3, "{}", cache.len());
    }

    /// Polls all the futures on this task until every one is done.
    async fn futures_join_all<F: Future>(fs: Vec<F>) -> Vec<F::Output> {
        let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, f) in fs.iter_mut().enumerate() {
                if out[i].is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => out[i] = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().map(|v| v.expect("done")).collect()
    }
}
