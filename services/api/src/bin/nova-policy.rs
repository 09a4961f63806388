//! `nova-policy [--config nova.conf] policy check [--api-name RULE]...
//! [--os-roles R1,R2] [--os-user-id U] [--os-tenant-id P]
//! [--target-project-id P] [--target-user-id U]`: which policy rules (nova
//! 34's defaults under `[oslo_policy]`'s overrides) a caller with those
//! roles passes on that target (by default its own project), as nova's
//! `nova-policy policy check` prints them.

use clap::{Parser, Subcommand};
use nova_api::Ctx;
use nova_api::policy::{Enforcer, Policy, target};
use nova_service::ConfigArgs;

/// nova-policy: nova's policy rules as a caller sees them.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Policy commands.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Prints the rules the caller passes ("Available policies:").
    Check {
        /// Rules to check (all of nova's API rules when none is given).
        #[arg(long = "api-name")]
        api_name: Vec<String>,
        /// The caller's roles, comma-separated.
        #[arg(long = "os-roles", default_value = "")]
        roles: String,
        /// The caller's user id.
        #[arg(long = "os-user-id", default_value = "")]
        user_id: String,
        /// The caller's project id.
        #[arg(long = "os-tenant-id", alias = "os-project-id", default_value = "")]
        project_id: String,
        /// The target's project id (default: the caller's).
        #[arg(long = "target-project-id")]
        target_project_id: Option<String>,
        /// The target's user id (default: the caller's).
        #[arg(long = "target-user-id")]
        target_user_id: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = args.config.conf()?;
    let enforcer = Enforcer::from_conf(&conf)?;
    let Cmd::Policy {
        cmd:
            PolicyCmd::Check {
                api_name,
                roles,
                user_id,
                project_id,
                target_project_id,
                target_user_id,
            },
    } = args.cmd;
    for name in &api_name {
        if !enforcer.has_rule(name) {
            anyhow::bail!("policy rule {name} is not registered");
        }
    }
    let ctx = Ctx {
        user_id: user_id.clone(),
        project_id: project_id.clone(),
        roles: roles
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        policy: Policy(std::sync::Arc::new(enforcer.clone())),
        ..Ctx::default()
    };
    let t = target(
        target_project_id.as_deref().unwrap_or(&project_id),
        target_user_id.as_deref().unwrap_or(&user_id),
    );
    let names: Vec<String> = if api_name.is_empty() {
        enforcer
            .rule_names()
            .into_iter()
            .filter(|n| n.starts_with("os_compute_api:") || n.starts_with("compute:"))
            .map(str::to_owned)
            .collect()
    } else {
        api_name
    };
    println!("Available policies:");
    for n in names.iter().filter(|n| enforcer.allows(&ctx, n, &t)) {
        println!("{n}");
    }
    Ok(())
}
