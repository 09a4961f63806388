//! What `nova-manage` and `nova-status` do, as functions the all-in-one
//! and the tests reuse; [`cli`] is their command lines.

pub mod cli;
pub mod placement;

use nova_objects::db::Database;
use nova_objects::{CellMapping, ComputeNode, HostMapping, ListQuery, Objects, Service};
use nova_placement::SqlPlacement;
use nova_service::Conf;

use nova_service::context::admin;

/// `nova-manage db sync`: the nova schema, the Placement tables and the
/// cell mappings; idempotent. Reports each step through `say`.
pub async fn db_sync(conf: &Conf, say: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let url = conf.database_connection();
    nova_service::ensure_sqlite_dir(&url)?;
    let db = Database::connect(&nova_objects::db::DbConfig::new(&url)).await?;
    let before = db.schema_version().await?;
    say(format!(
        "nova database ({}): schema {} -> {}",
        db.backend_name(),
        before.map_or("none".to_owned(), |v| v.to_string()),
        Database::latest_schema_version()
    ));
    let applied = db.sync().await?;
    say(format!(
        "applied {applied} migration(s); schema is at version {}",
        Database::latest_schema_version()
    ));
    let placement = SqlPlacement::open(&conf.placement_connection()).await?;
    placement.sync().await?;
    say("placement tables are in place".to_owned());
    let objects = Objects::new(db);
    let cell1 = nova_service::cells::ensure_cells(&objects, &conf.transport_url(), &url).await?;
    say(format!(
        "cells: cell0 {} and cell1 {}",
        nova_service::cells::CELL0_UUID,
        cell1.uuid()
    ));
    Ok(())
}

/// `nova-manage cell_v2 discover_hosts`: maps every compute host not yet
/// mapped to cell1. Returns the hosts mapped now.
pub async fn discover_hosts(objects: &Objects, conf: &Conf) -> anyhow::Result<Vec<String>> {
    let ctx = admin();
    let cell1 = nova_service::cells::ensure_cells(
        objects,
        &conf.transport_url(),
        &conf.database_connection(),
    )
    .await?;
    let mapped: Vec<HostMapping> = objects.list(&ctx, &ListQuery::new()).await?;
    let services: Vec<Service> = objects
        .list(&ctx, &ListQuery::new().filter("binary", "nova-compute"))
        .await?;
    let mut out = Vec::new();
    for s in services {
        let Some(host) = s.host().clone() else {
            continue;
        };
        if mapped.iter().any(|m| *m.host() == host) || out.contains(&host) {
            continue;
        }
        let mut m = HostMapping::new()
            .with_host(host.clone())
            .with_cell_mapping(cell1.clone());
        objects.create(&ctx, &mut m).await?;
        let nodes: Vec<ComputeNode> = objects
            .list(&ctx, &ListQuery::new().filter("host", host.as_str()))
            .await?;
        for mut n in nodes {
            n.set_mapped(1);
            objects.save(&ctx, &mut n).await?;
        }
        out.push(host);
    }
    Ok(out)
}

/// One `nova-status upgrade check` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Check name.
    pub name: String,
    /// 0 success, 1 warning, 2 failure.
    pub code: u8,
    /// What to do about it.
    pub details: Option<String>,
}

/// `nova-status upgrade check`.
pub async fn upgrade_check(conf: &Conf) -> Vec<Check> {
    let mut out = Vec::new();
    let url = conf.database_connection();
    let db = match Database::connect(&nova_objects::db::DbConfig::new(&url)).await {
        Ok(db) => db,
        Err(e) => {
            out.push(Check {
                name: "Database".into(),
                code: 2,
                details: Some(format!("cannot open [database] connection: {e}")),
            });
            return out;
        }
    };
    match db.schema_version().await {
        Ok(Some(v)) if v == Database::latest_schema_version() => out.push(Check {
            name: "Database schema".into(),
            code: 0,
            details: None,
        }),
        Ok(v) => out.push(Check {
            name: "Database schema".into(),
            code: 2,
            details: Some(format!(
                "schema {v:?}, expected {}: run `nova-manage db sync`",
                Database::latest_schema_version()
            )),
        }),
        Err(e) => out.push(Check {
            name: "Database schema".into(),
            code: 2,
            details: Some(e.to_string()),
        }),
    }
    let objects = Objects::new(db);
    let ctx = admin();
    let cells: Vec<CellMapping> = objects
        .list(&ctx, &ListQuery::new())
        .await
        .unwrap_or_default();
    let has0 = cells
        .iter()
        .any(|c| c.uuid() == nova_service::cells::CELL0_UUID);
    let has1 = cells
        .iter()
        .any(|c| c.uuid() != nova_service::cells::CELL0_UUID);
    out.push(match (has0, has1) {
        (true, true) => Check { name: "Cells v2".into(), code: 0, details: None },
        _ => Check { name: "Cells v2".into(), code: 2, details: Some("cell0 or cell1 is missing: run `nova-manage db sync` (or `nova-manage cell_v2 map_cell0`)".into()) },
    });
    let services: Vec<Service> = objects
        .list(&ctx, &ListQuery::new().filter("binary", "nova-compute"))
        .await
        .unwrap_or_default();
    let mapped: Vec<HostMapping> = objects
        .list(&ctx, &ListQuery::new())
        .await
        .unwrap_or_default();
    let unmapped: Vec<String> = services
        .iter()
        .filter_map(|s| s.host().clone())
        .filter(|h| !mapped.iter().any(|m| m.host() == h))
        .collect();
    out.push(if services.is_empty() {
        Check { name: "Compute hosts".into(), code: 1, details: Some("no nova-compute service has registered yet".into()) }
    } else if !unmapped.is_empty() {
        Check { name: "Compute hosts".into(), code: 1, details: Some(format!("{} compute host(s) are not mapped to a cell: run `nova-manage cell_v2 discover_hosts`", unmapped.len())) }
    } else {
        Check { name: "Compute hosts".into(), code: 0, details: None }
    });
    match SqlPlacement::open(&conf.placement_connection()).await {
        Ok(p) => match p.snapshot().await {
            Ok(_) => out.push(Check {
                name: "Placement".into(),
                code: 0,
                details: None,
            }),
            Err(e) => out.push(Check {
                name: "Placement".into(),
                code: 2,
                details: Some(format!(
                    "placement tables unreadable ({e}): run `nova-manage db sync`"
                )),
            }),
        },
        Err(e) => out.push(Check {
            name: "Placement".into(),
            code: 2,
            details: Some(format!("cannot open [placement_database] connection: {e}")),
        }),
    }
    out
}

/// The checks as nova-status prints them.
pub fn render_checks(checks: &[Check]) -> String {
    let mut lines = vec!["Upgrade Check Results".to_owned()];
    for c in checks {
        lines.push(format!("Check: {}", c.name));
        lines.push(format!(
            "Result: {}",
            ["Success", "Warning", "Failure"][c.code.min(2) as usize]
        ));
        lines.push(format!(
            "Details: {}",
            c.details.as_deref().unwrap_or("None")
        ));
    }
    let w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let bar = format!("+{}+", "-".repeat(w + 2));
    let mut s = format!("{bar}\n| {:<w$} |\n{bar}\n", lines[0]);
    for chunk in lines[1..].chunks(3) {
        for l in chunk {
            s.push_str(&format!("| {l:<w$} |\n"));
        }
        s.push_str(&bar);
        s.push('\n');
    }
    s
}
