//! nova-conductor's wiring on the service runner: what `nova-conductor`
//! and `nova-all` start.

use nova_service::Runner;

use crate::Conductor;

/// Starts the conductor on `runner`: its manager (on the runner's
/// database, Placement and transport), its RPC server (compute_task, the
/// object indirection API, the base API) and its service record.
pub async fn start(runner: &Runner) -> anyhow::Result<Conductor> {
    let conf = runner.conf();
    let transport = runner.transport().await?;
    let db = runner.database().await?;
    let objects = runner.objects().await?;
    let placement = runner.placement().await?;
    let cell1 = runner.cell1().await?;
    let conductor = Conductor::new(
        objects,
        placement,
        transport.clone(),
        nova_service::compute_version_cap(conf)?,
        conf.parse_or("scheduler", "max_attempts", 3i64)?,
        cell1.uuid(),
    )
    .with_notifier(runner.notifier().await?, &runner.host())
    .with_default_az(&conf.str_or("DEFAULT", "default_availability_zone", "nova"));
    let host = runner.host();
    runner
        .register_service("nova-conductor", "conductor")
        .await?;
    runner.rpc_server(crate::serve(transport, &conductor, db, &host).await?);
    tracing::info!(%host, "nova-conductor started");
    Ok(conductor)
}

/// `nova-conductor`: starts it, then serves until SIGTERM and drains.
pub async fn run(runner: Runner) -> anyhow::Result<()> {
    start(&runner).await?;
    runner.run().await
}
