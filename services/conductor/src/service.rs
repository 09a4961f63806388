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
    let started = chrono::Utc::now();
    runner
        .register_service("nova-conductor", "conductor")
        .await?;
    runner.rpc_server(crate::serve(transport, &conductor, db, &host).await?);
    lost_builds(runner, &conductor, started)?;
    tracing::info!(%host, "nova-conductor started");
    Ok(conductor)
}

/// Builds whose request is lost end in ERROR: at start, on the memory
/// transport (every service is in this process, so what was waiting to be
/// scheduled died with the previous one; RabbitMQ keeps it), and every
/// minute those older than `[DEFAULT] instance_build_timeout`.
fn lost_builds(
    runner: &Runner,
    conductor: &Conductor,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let conf = runner.conf();
    let memory = conf
        .transport_url()
        .parse::<nova_rpc::TransportUrl>()
        .is_ok_and(|u| u.is_memory());
    if memory {
        let c = conductor.clone();
        runner.task(
            "recovery of unscheduled builds",
            tokio::spawn(async move {
                let reason = "Instance was waiting to be scheduled when the services restarted: its build request was lost.";
                match c.end_unscheduled_builds(started, reason).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(instances = n, "builds lost in a restart set to ERROR"),
                    Err(e) => tracing::warn!(error = %e, "cannot recover unscheduled builds"),
                }
            }),
        );
    }
    if let Some(timeout) = conf.instance_build_timeout()? {
        let every = timeout.min(std::time::Duration::from_secs(60));
        let c = conductor.clone();
        runner.periodic("check_instance_build_time", every, every, move || {
            let c = c.clone();
            async move {
                let before =
                    chrono::Utc::now() - chrono::Duration::from_std(timeout).unwrap_or_default();
                if let Err(e) = c
                    .end_unscheduled_builds(before, "Instance build timed out. Set to error state.")
                    .await
                {
                    tracing::warn!(error = %e, "cannot check build times");
                }
            }
        });
    }
    Ok(())
}

/// `nova-conductor`: starts it, then serves until SIGTERM and drains.
pub async fn run(runner: Runner) -> anyhow::Result<()> {
    start(&runner).await?;
    nova_service::metrics::serve(&runner, nova_service::metrics::CONDUCTOR_PORT).await?;
    runner.run().await
}
