//! The command lines of `nova-manage` and `nova-status`: their subcommands,
//! on the runner's configuration (`--config`, `NOVA_*`) and database.

use clap::{Parser, Subcommand};
use nova_objects::{CellMapping, ListQuery};
use nova_service::{ConfigArgs, Runner};

/// nova-manage: database and cells administration.
#[derive(Parser, Debug)]
#[command(name = "nova-manage", version)]
pub struct ManageArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The nova database.
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// The API database (the same database here).
    #[command(name = "api_db")]
    ApiDb {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// Cells v2.
    #[command(name = "cell_v2")]
    CellV2 {
        #[command(subcommand)]
        cmd: CellCmd,
    },
    /// Placement: nova's records and Placement's in line.
    Placement {
        #[command(subcommand)]
        cmd: PlacementCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PlacementCmd {
    /// Creates missing allocations of instances on hosts (exit 0: some
    /// created, 4: nothing to do).
    #[command(name = "heal_allocations")]
    HealAllocations {
        /// Only print what would be done.
        #[arg(long)]
        dry_run: bool,
    },
    /// Finds allocations of consumers nova does not know (exit 0: none,
    /// 3: found, 4: found and deleted).
    Audit {
        /// Delete what is found.
        #[arg(long)]
        delete: bool,
    },
    /// Puts compute node providers in the Placement aggregates of their
    /// hosts' aggregates.
    #[command(name = "sync_aggregates")]
    SyncAggregates,
}

#[derive(Subcommand, Debug)]
enum DbCmd {
    /// Creates or upgrades the schema (idempotent).
    Sync,
    /// Prints the schema version.
    Version,
}

#[derive(Subcommand, Debug)]
enum CellCmd {
    /// Creates cell0 (and cell1) if missing.
    #[command(name = "map_cell0")]
    MapCell0,
    /// Maps compute hosts to cell1.
    #[command(name = "discover_hosts")]
    DiscoverHosts {
        /// Print each host mapped.
        #[arg(long)]
        verbose: bool,
    },
    /// Lists the cells.
    #[command(name = "list_cells")]
    ListCells,
}

/// Runs a `nova-manage` command, printing what it does; the exit code.
pub async fn manage(args: ManageArgs) -> anyhow::Result<i32> {
    let conf = args.config.conf()?;
    let mut say = |s: String| println!("{s}");
    match args.cmd {
        Cmd::Db { cmd: DbCmd::Sync } | Cmd::ApiDb { cmd: DbCmd::Sync } => {
            crate::db_sync(&conf, &mut say).await?
        }
        Cmd::Db {
            cmd: DbCmd::Version,
        }
        | Cmd::ApiDb {
            cmd: DbCmd::Version,
        } => {
            // Any schema, even none: no schema check here.
            let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(
                conf.database_connection(),
            ))
            .await?;
            println!(
                "{}",
                db.schema_version()
                    .await?
                    .map_or("none".into(), |v| v.to_string())
            );
        }
        Cmd::CellV2 { cmd } => {
            let runner = Runner::new(conf);
            match cmd {
                CellCmd::MapCell0 => {
                    runner.cell1().await?;
                    println!("cell0 is mapped");
                }
                CellCmd::DiscoverHosts { verbose } => {
                    let objects = runner.objects().await?;
                    let hosts = crate::discover_hosts(&objects, runner.conf()).await?;
                    if verbose {
                        for h in &hosts {
                            println!("Checking host mapping for compute host '{h}': created");
                        }
                    }
                    println!("Found {} unmapped computes in cell1", hosts.len());
                }
                CellCmd::ListCells => {
                    let objects = runner.objects().await?;
                    let ctx = nova_rpc::RequestContext::new().with_admin(true);
                    let cells: Vec<CellMapping> = objects.list(&ctx, &ListQuery::new()).await?;
                    println!(
                        "{:<8} {:<36} {:<24} Disabled",
                        "Name", "UUID", "Transport URL"
                    );
                    for c in cells {
                        println!(
                            "{:<8} {:<36} {:<24} {}",
                            c.name().clone().unwrap_or_default(),
                            c.uuid(),
                            c.transport_url(),
                            c.disabled()
                        );
                    }
                }
            }
            runner.shutdown().await;
        }
        Cmd::Placement { cmd } => {
            let runner = Runner::new(conf);
            let objects = runner.objects().await?;
            let placement = runner.placement().await?;
            let (outcome, code) = match cmd {
                PlacementCmd::HealAllocations { dry_run } => {
                    let o =
                        crate::placement::heal_allocations(&objects, &placement, dry_run).await?;
                    let code = if o.count == 0 { 4 } else { 0 };
                    (o, code)
                }
                PlacementCmd::Audit { delete } => {
                    let o = crate::placement::audit(&objects, &placement, delete).await?;
                    let code = match (o.count, delete) {
                        (0, _) => 0,
                        (_, false) => 3,
                        (_, true) => 4,
                    };
                    (o, code)
                }
                PlacementCmd::SyncAggregates => (
                    crate::placement::sync_aggregates(&objects, &placement).await?,
                    0,
                ),
            };
            for l in &outcome.lines {
                println!("{l}");
            }
            println!("Processed {} item(s).", outcome.count);
            runner.shutdown().await;
            return Ok(code);
        }
    }
    Ok(0)
}

/// nova-status: deployment health checks.
#[derive(Parser, Debug)]
#[command(name = "nova-status", version)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    cmd: StatusCmd,
}

#[derive(Subcommand, Debug)]
enum StatusCmd {
    /// Upgrade readiness.
    Upgrade {
        #[command(subcommand)]
        cmd: Up,
    },
}

#[derive(Subcommand, Debug)]
enum Up {
    /// Runs the checks; exit code 0 success, 1 warning, 2 failure.
    Check,
}

/// Runs a `nova-status` command, prints its report and returns the exit
/// code (0 success, 1 warning, 2 failure).
pub async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let conf = args.config.conf()?;
    let StatusCmd::Upgrade { cmd: Up::Check } = args.cmd;
    let checks = crate::upgrade_check(&conf).await;
    print!("{}", crate::render_checks(&checks));
    Ok(checks.iter().map(|c| c.code as i32).max().unwrap_or(0))
}
