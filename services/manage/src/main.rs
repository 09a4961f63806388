//! `nova-manage [--config nova.conf] db sync | cell_v2 map_cell0 | cell_v2 discover_hosts | cell_v2 list_cells`

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nova_objects::{CellMapping, ListQuery, Objects};
use nova_service::Conf;

/// nova-manage: database and cells administration.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// nova.conf files.
    #[arg(
        long = "config",
        alias = "config-file",
        default_value = "/etc/nova/nova.conf",
        global = true
    )]
    config: Vec<PathBuf>,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = Conf::for_service(&args.config)?;
    let mut say = |s: String| println!("{s}");
    match args.cmd {
        Cmd::Db { cmd: DbCmd::Sync } | Cmd::ApiDb { cmd: DbCmd::Sync } => {
            nova_manage::db_sync(&conf, &mut say).await?
        }
        Cmd::Db {
            cmd: DbCmd::Version,
        }
        | Cmd::ApiDb {
            cmd: DbCmd::Version,
        } => {
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
            let db = nova_service::open_database(&conf, false).await?;
            let objects = Objects::new(db);
            match cmd {
                CellCmd::MapCell0 => {
                    nova_service::cells::ensure_cells(
                        &objects,
                        &conf.transport_url(),
                        &conf.database_connection(),
                    )
                    .await?;
                    println!("cell0 is mapped");
                }
                CellCmd::DiscoverHosts { verbose } => {
                    let hosts = nova_manage::discover_hosts(&objects, &conf).await?;
                    if verbose {
                        for h in &hosts {
                            println!("Checking host mapping for compute host '{h}': created");
                        }
                    }
                    println!("Found {} unmapped computes in cell1", hosts.len());
                }
                CellCmd::ListCells => {
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
        }
    }
    Ok(())
}
