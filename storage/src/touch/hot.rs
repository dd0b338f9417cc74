//! Hot interest (touches.md §1.6): which fine keys and templates current
//! waits care about, so the processor derives only what someone waits
//! for. Keys and templates are ref-counted while waits hold them, then kept
//! in a grace set for a TTL; past a capacity, filtering turns itself off
//! (everything counts as hot) until the count drops back.

use std::collections::HashMap;

use super::metrics::counters::HotGauges;

/// Hot-interest settings (the profile's `touch.memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HotConfig {
    pub key_ttl_ms: u64,
    pub template_ttl_ms: u64,
    pub max_keys: u64,
    pub max_templates: u64,
}

/// What a wait registered, to release when it ends.
#[derive(Debug)]
pub(crate) struct HotToken {
    keys: Vec<u32>,
    templates: Vec<u64>,
    kind: WaitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    Fine,
    BroadFine,
    Coarse,
}

/// Ref counts of active entries and the expiry of grace entries.
#[derive(Debug, Default)]
struct Set<K: std::hash::Hash + Eq + Copy> {
    active: HashMap<K, u32>,
    grace: HashMap<K, u64>,
}

impl<K: std::hash::Hash + Eq + Copy> Set<K> {
    fn add(&mut self, k: K) {
        *self.active.entry(k).or_insert(0) += 1;
        self.grace.remove(&k);
    }

    fn release(&mut self, k: K, until_ms: u64) {
        if let Some(n) = self.active.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.active.remove(&k);
                self.grace.insert(k, until_ms);
            }
        }
    }

    fn sweep(&mut self, now_ms: u64) {
        self.grace.retain(|_, until| *until > now_ms);
    }

    fn contains(&self, k: &K) -> bool {
        self.active.contains_key(k) || self.grace.contains_key(k)
    }

    fn len(&self) -> usize {
        self.active.len() + self.grace.len()
    }
}

/// One stream's hot interest.
#[derive(Debug)]
pub(crate) struct Hot {
    cfg: HotConfig,
    keys: Set<u32>,
    templates: Set<u64>,
    fine_waiters: u64,
    broad_fine_waiters: u64,
    coarse_waiters: u64,
}

impl Hot {
    /// No interest yet.
    pub fn new(cfg: HotConfig) -> Hot {
        Hot {
            cfg,
            keys: Set::default(),
            templates: Set::default(),
            fine_waiters: 0,
            broad_fine_waiters: 0,
            coarse_waiters: 0,
        }
    }

    /// Registers a fine wait: its keys (empty for a broad wait) and templates.
    pub fn register_fine(&mut self, keys: &[u32], broad: bool, templates: &[u64]) -> HotToken {
        for &k in keys {
            self.keys.add(k);
        }
        for &t in templates {
            self.templates.add(t);
        }
        let kind = if broad {
            self.broad_fine_waiters += 1;
            WaitKind::BroadFine
        } else {
            self.fine_waiters += 1;
            WaitKind::Fine
        };
        HotToken {
            keys: keys.to_vec(),
            templates: templates.to_vec(),
            kind,
        }
    }

    /// Registers a coarse wait (it makes nothing hot).
    pub fn register_coarse(&mut self) -> HotToken {
        self.coarse_waiters += 1;
        HotToken {
            keys: Vec::new(),
            templates: Vec::new(),
            kind: WaitKind::Coarse,
        }
    }

    /// Releases a wait's interest; its keys and templates enter grace.
    pub fn release(&mut self, t: HotToken, now_ms: u64) {
        for k in t.keys {
            self.keys.release(k, now_ms + self.cfg.key_ttl_ms);
        }
        for id in t.templates {
            self.templates
                .release(id, now_ms + self.cfg.template_ttl_ms);
        }
        match t.kind {
            WaitKind::Fine => self.fine_waiters -= 1,
            WaitKind::BroadFine => self.broad_fine_waiters -= 1,
            WaitKind::Coarse => self.coarse_waiters -= 1,
        }
    }

    /// Drops expired grace entries.
    pub fn sweep(&mut self, now_ms: u64) {
        self.keys.sweep(now_ms);
        self.templates.sweep(now_ms);
    }

    /// Any waiter at all.
    pub fn has_any_waiters(&self) -> bool {
        self.fine_waiters + self.broad_fine_waiters + self.coarse_waiters > 0
    }

    /// Someone wants fine touches.
    pub fn has_fine_demand(&self) -> bool {
        self.fine_waiters > 0
            || self.broad_fine_waiters > 0
            || self.keys.len() > 0
            || self.templates.len() > 0
    }

    /// Hot keys (active and grace).
    pub fn hot_key_count(&self) -> usize {
        self.keys.len()
    }

    /// Hot templates (active and grace).
    pub fn hot_template_count(&self) -> usize {
        self.templates.len()
    }

    /// Broad fine waiters (more keys than a wait may make hot).
    pub fn broad_fine_waiters(&self) -> u64 {
        self.broad_fine_waiters
    }

    /// Fine touches of cold keys are dropped: hot keys are under capacity
    /// and no broad wait needs every key.
    pub fn key_filtering_on(&self) -> bool {
        (self.keys.len() as u64) < self.cfg.max_keys && self.broad_fine_waiters == 0
    }

    /// Only hot templates are evaluated: some exist, under capacity.
    pub fn template_filtering_on(&self) -> bool {
        let n = self.templates.len() as u64;
        n > 0 && n < self.cfg.max_templates
    }

    /// Whether a key id is hot.
    pub fn is_hot_key(&self, k: u32) -> bool {
        self.keys.contains(&k)
    }

    /// Whether a template is hot.
    pub fn is_hot_template(&self, id: u64) -> bool {
        self.templates.contains(&id)
    }

    /// The gauges of meta and `live.tick`.
    pub fn gauges(&self) -> HotGauges {
        HotGauges {
            hot_fine_keys: self.keys.len() as u64,
            hot_templates: self.templates.len() as u64,
            hot_fine_keys_active: self.keys.active.len() as u64,
            hot_fine_keys_grace: self.keys.grace.len() as u64,
            hot_templates_active: self.templates.active.len() as u64,
            hot_templates_grace: self.templates.grace.len() as u64,
            fine_waiters_active: self.fine_waiters,
            coarse_waiters_active: self.coarse_waiters,
            broad_fine_waiters_active: self.broad_fine_waiters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot() -> Hot {
        Hot::new(HotConfig {
            key_ttl_ms: 100,
            template_ttl_ms: 100,
            max_keys: 10,
            max_templates: 10,
        })
    }

    #[test]
    fn active_then_grace_then_gone() {
        let mut h = hot();
        let t = h.register_fine(&[1, 2], false, &[9]);
        assert!(h.is_hot_key(1) && h.is_hot_template(9) && h.has_fine_demand());
        assert_eq!(h.gauges().hot_fine_keys_active, 2);
        h.release(t, 1000);
        let g = h.gauges();
        assert_eq!((g.hot_fine_keys_active, g.hot_fine_keys_grace), (0, 2));
        assert!(h.is_hot_key(1), "grace still counts");
        h.sweep(1100);
        assert!(!h.is_hot_key(1) && !h.has_fine_demand());
    }

    #[test]
    fn coarse_waits_make_nothing_hot_and_broad_waits_stop_key_filtering() {
        let mut h = hot();
        let c = h.register_coarse();
        assert!(h.has_any_waiters() && !h.has_fine_demand());
        assert_eq!(h.hot_key_count(), 0);
        h.release(c, 0);
        assert!(h.key_filtering_on());
        let b = h.register_fine(&[], true, &[]);
        assert!(!h.key_filtering_on());
        h.release(b, 0);
        let keys: Vec<u32> = (0..10).collect();
        let _t = h.register_fine(&keys, false, &[]);
        assert!(!h.key_filtering_on(), "over capacity");
    }
}
