//! The in-memory copy of the tables that allocation candidates are
//! computed on ([`MemoryPlacement`]).
//!
//! This process's own allocation writes update it at once; other writes
//! drop it. Once it is older than the refresh interval, a one-column probe
//! (providers and the sum of their generations, which every write bumps)
//! tells whether another process wrote, and only then is it reloaded. A
//! stale mirror can only propose a host whose claim then fails in the
//! database, which the scheduler treats as a lost race (the next host).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, MemoryPlacement, Placement,
    PlacementError,
};
use sea_orm::ConnectionTrait;

use crate::error::db;
use crate::sql::{self, Tables};

type Result<T> = std::result::Result<T, PlacementError>;

#[derive(Debug)]
struct Copy {
    model: Arc<MemoryPlacement>,
    /// When the database was last found to match it.
    checked: Instant,
    /// What the probe should read if nobody else wrote (see
    /// [`sql::Probe`]).
    expected: sql::Probe,
}

/// The mirror of one store (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    copy: Mutex<Option<Copy>>,
}

impl Mirror {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Copy>> {
        self.copy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the copy: the next candidates query reloads it.
    pub(crate) fn invalidate(&self) {
        *self.lock() = None;
    }

    /// Applies this process's committed allocation write to the copy
    /// (which then expects `bumped` more generations in the database, and
    /// the allocations' new rows and amounts).
    pub(crate) fn apply(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project: &str,
        user: &str,
        bumped: i64,
    ) {
        let mut guard = self.lock();
        let Some(copy) = guard.as_mut() else {
            return;
        };
        let m = &copy.model;
        let rows = |a: &Allocations| {
            (
                a.values().map(|r| r.len() as i64).sum::<i64>(),
                a.values().flat_map(|r| r.values()).sum::<i64>(),
            )
        };
        let (ok, before) = match m.allocations(consumer) {
            // A DELETE (nothing bumped) or a write.
            Ok(c) if allocations.is_empty() && bumped == 0 => {
                (m.delete_allocations(consumer).is_ok(), rows(&c.allocations))
            }
            Ok(c) => (
                m.put_allocations(consumer, allocations, project, user, c.consumer_generation)
                    .is_ok(),
                rows(&c.allocations),
            ),
            Err(_) => (false, (0, 0)),
        };
        if ok {
            let after = rows(allocations);
            copy.expected.1 += bumped;
            copy.expected.2 += after.0 - before.0;
            copy.expected.3 += after.1 - before.1;
        } else {
            *guard = None;
        }
    }

    /// `GET /allocation_candidates`, on the copy (probed once older than
    /// `refresh`, reloaded from `conn` when another process wrote).
    pub(crate) async fn candidates<C: ConnectionTrait>(
        &self,
        conn: &C,
        refresh: Duration,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates> {
        let (current, due) = match self.lock().as_ref() {
            Some(m) => (
                Some((m.model.clone(), m.expected)),
                m.checked.elapsed() >= refresh,
            ),
            None => (None, true),
        };
        let model = match current {
            // Fresh enough, or nobody else wrote since (the probe reads
            // what this process expects): keep the copy.
            Some((model, _)) if !due => model,
            Some((model, expected))
                if sql::generation_probe(conn).await.map_err(db)? == expected =>
            {
                if let Some(m) = self.lock().as_mut() {
                    m.checked = Instant::now();
                }
                model
            }
            _ => {
                let t0 = Instant::now();
                let expected = sql::generation_probe(conn).await.map_err(db)?;
                let model = Arc::new(snapshot(sql::tables(conn).await.map_err(db)?));
                tracing::debug!(elapsed = ?t0.elapsed(), "placement mirror reloaded");
                *self.lock() = Some(Copy {
                    model: model.clone(),
                    checked: Instant::now(),
                    expected,
                });
                model
            }
        };
        model.allocation_candidates(req)
    }
}

/// The tables as an in-memory model.
pub(crate) fn snapshot(t: Tables) -> MemoryPlacement {
    let m = MemoryPlacement::new();
    // Parents before children.
    let mut pending = t.providers;
    let mut created: BTreeSet<String> = BTreeSet::new();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|(u, n, p)| {
            if p.as_ref().is_none_or(|p| created.contains(p)) {
                if m.create_provider(u, n, p.as_deref()).is_ok() {
                    created.insert(u.clone());
                }
                false
            } else {
                true
            }
        });
        if pending.len() == before {
            break; // orphans (a parent missing): left out
        }
    }
    for (rp, inv) in &t.inventories {
        if let Ok(rpv) = m.get_provider(rp) {
            let _ = m.set_inventories(rp, rpv.generation, inv);
        }
    }
    for (rp, set) in &t.traits {
        if let Ok(rpv) = m.get_provider(rp) {
            let _ = m.set_traits(rp, rpv.generation, set);
        }
    }
    for (rp, set) in &t.aggregates {
        if let Ok(rpv) = m.get_provider(rp) {
            let _ = m.set_aggregates(rp, rpv.generation, set);
        }
    }
    for (c, a) in &t.allocations {
        let (p, u) = t.consumers.get(c).cloned().unwrap_or_default();
        // What the database holds is the truth, even past capacity.
        let _ = m.put_allocations(c, a, &p, &u, None);
    }
    m
}
