//! `nova-status [--config nova.conf] upgrade check`

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nova_service::Conf;

/// nova-status: deployment health checks.
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = Conf::for_service(&args.config)?;
    let Cmd::Upgrade { cmd: Up::Check } = args.cmd;
    let checks = nova_manage::upgrade_check(&conf).await;
    print!("{}", nova_manage::render_checks(&checks));
    std::process::exit(checks.iter().map(|c| c.code as i32).max().unwrap_or(0));
}
