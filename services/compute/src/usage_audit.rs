//! The periodic instance usage audit (nova's `_instance_usage_audit`, on
//! with `[DEFAULT] instance_usage_audit`): once per completed audit period
//! (`[DEFAULT] instance_usage_audit_period`), `instance.exists` and
//! `compute.instance.exists` for every instance that was active on this
//! host during it, the run recorded in the task log (`RUNNING`, then
//! `DONE` with the count of instances whose notification failed). A period
//! already logged for this host is not audited again.

use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use nova_objects::{Instance, ListQuery, TaskLog};
use nova_service::task_log::{
    INSTANCE_USAGE_AUDIT, task_log_begin_task, task_log_end_task, task_log_get,
};

use crate::manager::{ComputeManager, admin};

/// nova's `get_active_by_window_joined`: launched before the period's end
/// and not terminated before its beginning.
fn active_in(i: &Instance, begin: NaiveDateTime, end: NaiveDateTime) -> bool {
    i.launched_at().is_some_and(|l| l.naive_utc() < end)
        && i.terminated_at().is_none_or(|t| t.naive_utc() > begin)
}

impl ComputeManager {
    /// The periodic task: audits the last period completed before now.
    pub(crate) async fn instance_usage_audit_task(&self) {
        if !self.inner.cfg.instance_usage_audit {
            return;
        }
        if let Err(e) = self.instance_usage_audit(Utc::now()).await {
            tracing::warn!(host = %self.host(), error = %e, "instance usage audit failed");
        }
    }

    /// Audits the usage of the period last completed before `now` on this
    /// host; answers its task log, or `None` when the period was already
    /// audited here (or `[DEFAULT] instance_usage_audit_period` names a
    /// day the month lacks).
    pub async fn instance_usage_audit(
        &self,
        now: DateTime<Utc>,
    ) -> nova_objects::Result<Option<TaskLog>> {
        let me = &self.inner;
        let Some(period) = me.cfg.audit_period.last_completed(now.naive_utc()) else {
            tracing::warn!(period = %me.cfg.audit_period, "no completed audit period: the offset names a day this month lacks");
            return Ok(None);
        };
        let ctx = admin();
        let host = self.host();
        if task_log_get(&me.objects, &ctx, INSTANCE_USAGE_AUDIT, period, host, None)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let (begin, end) = period;
        let mut rctx = ctx.clone();
        rctx.set("read_deleted", "yes");
        let mut instances: Vec<Instance> = me
            .objects
            .list::<Instance>(&rctx, &ListQuery::new().filter("host", host))
            .await?
            .into_iter()
            .filter(|i| active_in(i, begin, end))
            .collect();
        me.objects.load_info_caches(&rctx, &mut instances).await?;
        let count = instances.len();
        tracing::info!(
            host,
            begin = %begin,
            end = %end,
            instances = count,
            "Running instance usage audit for host {host} from {begin} to {end}. {count} instances."
        );
        let started = Instant::now();
        task_log_begin_task(
            &me.objects,
            &ctx,
            INSTANCE_USAGE_AUDIT,
            period,
            host,
            count as i64,
            "Instance usage audit started...",
        )
        .await?;
        let bounds = (begin.and_utc(), end.and_utc());
        for inst in &instances {
            self.notifier()
                .instance_exists_in(&ctx, inst, host, bounds)
                .await;
        }
        // As with oslo.messaging's notifier, a notification that cannot be
        // published is logged, not raised, and the payloads are built from
        // what is already loaded: no instance counts as an error.
        let message = format!(
            "Instance usage audit ran for host {host}, {count} instances in {} seconds.",
            started.elapsed().as_secs_f64()
        );
        let log = task_log_end_task(
            &me.objects,
            &ctx,
            INSTANCE_USAGE_AUDIT,
            period,
            host,
            0,
            Some(&message),
        )
        .await?;
        Ok(Some(log))
    }
}
