//! Shared load loop of the RPC benches: `n` operations from `c` concurrent
//! callers, latency per operation, one JSON line of figures.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

/// Figures of one run.
pub(crate) struct Figures {
    pub(crate) per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: usize,
}

impl Figures {
    pub(crate) fn json(&self, name: &str, mode: &str, c: usize) -> Value {
        json!({"impl": name, "mode": mode, "concurrency": c, "per_s": self.per_s.round(),
               "p50_ms": (self.p50_ms * 1000.0).round() / 1000.0, "p99_ms": (self.p99_ms * 1000.0).round() / 1000.0,
               "errors": self.errors})
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = (sorted.len() - 1) as f64 * p / 100.0;
    let f = k.floor() as usize;
    let c = (f + 1).min(sorted.len() - 1);
    sorted[f] + (sorted[c] - sorted[f]) * (k - f as f64)
}

/// Runs `op` `n` times from `c` tasks.
pub(crate) async fn load<F, Fut>(n: usize, c: usize, op: F) -> Figures
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n / c + 1);
            let mut errors = 0;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                if op().await {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("bench task");
        lat.extend(l);
        errors += e;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Figures {
        per_s: lat.len() as f64 / elapsed,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        errors,
    }
}
