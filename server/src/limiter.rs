//! Counting events per key (a client address) in one-minute windows: the
//! sign-in rate limit and the cap on security events anyone can cause
//! without signing in. Hand-written rather than `governor`: it takes the time
//! from the portal's `Clock` port (tests move a manual clock instead of
//! sleeping), and it reports how many events it dropped, which the audit
//! trail says in the next event it records.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

const WINDOW_MS: i64 = 60_000;

/// What one event counted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Within the limit; `dropped` events of this key were refused since the last one allowed.
    Allowed { dropped: u64 },
    /// Over the limit; the window ends in this many milliseconds.
    Over { retry_after_ms: i64 },
}

/// `limit` events per key per minute, for at most `max_keys` keys at once
/// (past that, windows that ended are forgotten; if all are current, a new
/// key is refused: a flood from very many addresses fails closed).
pub struct PerMinute<K> {
    limit: u32,
    max_keys: usize,
    /// key → (window start, events allowed in it, events refused since the last allowed)
    windows: Mutex<HashMap<K, (i64, u32, u64)>>,
}

impl<K: Hash + Eq + Clone> PerMinute<K> {
    pub fn new(limit: u32, max_keys: usize) -> Self {
        Self { limit, max_keys: max_keys.max(1), windows: Mutex::new(HashMap::new()) }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one event of `key` at `now_ms`.
    pub fn hit(&self, key: &K, now_ms: i64) -> Hit {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if !windows.contains_key(key) && windows.len() >= self.max_keys {
            windows.retain(|_, w| now_ms - w.0 < WINDOW_MS && now_ms >= w.0);
            if windows.len() >= self.max_keys {
                return Hit::Over { retry_after_ms: WINDOW_MS };
            }
        }
        let w = windows.entry(key.clone()).or_insert((now_ms, 0, 0));
        if now_ms - w.0 >= WINDOW_MS || now_ms < w.0 {
            *w = (now_ms, 0, w.2);
        }
        if w.1 >= self.limit {
            w.2 += 1;
            return Hit::Over { retry_after_ms: (w.0 + WINDOW_MS - now_ms).max(1) };
        }
        w.1 += 1;
        Hit::Allowed { dropped: std::mem::take(&mut w.2) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_minute() {
        let l = PerMinute::new(2, 100);
        assert_eq!(l.hit(&"a", 0), Hit::Allowed { dropped: 0 });
        assert_eq!(l.hit(&"a", 10), Hit::Allowed { dropped: 0 });
        assert_eq!(l.hit(&"a", 20_000), Hit::Over { retry_after_ms: 40_000 });
        assert_eq!(l.hit(&"a", 30_000), Hit::Over { retry_after_ms: 30_000 });
        assert_eq!(l.hit(&"b", 30_000), Hit::Allowed { dropped: 0 }, "another key is not held back");
        // A new minute: allowed again, saying how many were refused.
        assert_eq!(l.hit(&"a", 60_000), Hit::Allowed { dropped: 2 });
        assert_eq!(l.hit(&"a", 60_001), Hit::Allowed { dropped: 0 });
    }

    #[test]
    fn a_flood_of_keys_is_bounded() {
        let l = PerMinute::new(5, 3);
        for k in 0..3 {
            assert!(matches!(l.hit(&k, 0), Hit::Allowed { .. }));
        }
        assert!(matches!(l.hit(&99, 1_000), Hit::Over { .. }), "full of current windows: fail closed");
        assert!(matches!(l.hit(&99, 61_000), Hit::Allowed { .. }), "old windows are forgotten");
    }
}
