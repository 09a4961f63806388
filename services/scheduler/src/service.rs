//! nova-scheduler's wiring on the service runner: what `nova-scheduler`
//! and `nova-all` start.

use nova_service::Runner;

use crate::SchedulerManager;

/// Starts the scheduler on `runner`: its manager (on the runner's
/// database and Placement) with its host-state refresher, its RPC server
/// and its service record.
pub async fn start(runner: &Runner) -> anyhow::Result<SchedulerManager> {
    let transport = runner.transport().await?;
    let objects = runner.objects().await?;
    let placement = runner.placement().await?;
    let cell1 = runner.cell1().await?;
    let manager = SchedulerManager::new(
        crate::scheduler_config(runner.conf())?,
        objects,
        placement,
        cell1.uuid(),
    )?
    .with_reachability(transport.clone())
    .with_notifier(runner.notifier().await?, &runner.host())
    .with_default_az(
        &runner
            .conf()
            .str_or("DEFAULT", "default_availability_zone", "nova"),
    );
    let host = runner.host();
    runner
        .register_service("nova-scheduler", "scheduler")
        .await?;
    runner.task(
        "scheduler host-state refresh",
        manager.start_refresher(runner.stop_token()),
    );
    runner.rpc_server(crate::serve(transport, &manager, &host).await?);
    tracing::info!(%host, "nova-scheduler started");
    Ok(manager)
}

/// `nova-scheduler`: starts it, then serves until SIGTERM and drains.
pub async fn run(runner: Runner) -> anyhow::Result<()> {
    start(&runner).await?;
    nova_service::metrics::serve(&runner, nova_service::metrics::SCHEDULER_PORT).await?;
    runner.run().await
}
