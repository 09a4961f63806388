//! Stored times: Placement keeps `created_at` / `updated_at` on its rows
//! and answers reads from microversion 1.15 with a `Last-Modified` taken
//! from the rows it returns (`util.pick_last_modified`: a row's
//! `updated_at`, else its `created_at`; the newest of a list).

use chrono::{DateTime, Utc};

/// The rows a `Last-Modified` is taken from.
#[derive(Debug, Clone, Copy)]
pub enum Stamped<'a> {
    /// Resource providers, by uuid (`GET /resource_providers[/{uuid}]`).
    Providers(&'a [&'a str]),
    /// A provider's inventories: all, or one resource class's.
    Inventories {
        /// Provider uuid.
        provider: &'a str,
        /// Only this class's row.
        class: Option<&'a str>,
    },
    /// A consumer's allocation rows (`GET /allocations/{consumer}`).
    ConsumerAllocations(&'a str),
    /// The allocation rows against a provider
    /// (`GET /resource_providers/{uuid}/allocations`).
    ProviderAllocations(&'a str),
    /// Traits or resource classes by name, the standard ones included
    /// (`GET /traits`, `GET /resource_classes`, a provider's traits).
    Names(crate::Custom, &'a [&'a str]),
}

/// One row's times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// When the row was written first.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was last changed (`None`: never since created).
    pub updated_at: Option<DateTime<Utc>>,
}

impl Times {
    /// Placement's `obj.updated_at or obj.created_at`.
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        self.updated_at.or(self.created_at)
    }

    /// `util.pick_last_modified` over `rows`: the newest `updated_at or
    /// created_at`, a row without either counting as now (an object "not
    /// loaded from the DB"). `None` for no rows.
    pub fn last_modified(rows: &[Times]) -> Option<DateTime<Utc>> {
        rows.iter()
            .map(|t| t.modified().unwrap_or_else(Utc::now))
            .max()
    }
}

/// Reads the times of the rows `of` names; standard traits and resource
/// classes (constants here, rows Placement writes when its database is
/// first synced) carry the time Placement's schema was created.
pub(crate) async fn read<C: sea_orm::ConnectionTrait>(
    c: &C,
    of: Stamped<'_>,
) -> Result<Vec<Times>, sea_orm::DbErr> {
    use crate::sql::{all, get_s};
    use sea_orm::Value;

    const COLS: &str = "created_at, updated_at";
    let (sql, values): (String, Vec<Value>) = match of {
        Stamped::Providers(uuids) if uuids.len() <= 64 => {
            let marks = vec!["?"; uuids.len().max(1)].join(", ");
            let mut values: Vec<Value> = uuids.iter().map(|u| (*u).into()).collect();
            if values.is_empty() {
                values.push("".into());
            }
            (
                format!("SELECT uuid, {COLS} FROM resource_providers WHERE uuid IN ({marks})"),
                values,
            )
        }
        Stamped::Providers(_) => (
            format!("SELECT uuid, {COLS} FROM resource_providers"),
            Vec::new(),
        ),
        Stamped::Inventories { provider, class } => match class {
            Some(rc) => (
                format!("SELECT {COLS} FROM inventories WHERE rp_uuid = ? AND resource_class = ?"),
                vec![provider.into(), rc.into()],
            ),
            None => (
                format!("SELECT {COLS} FROM inventories WHERE rp_uuid = ?"),
                vec![provider.into()],
            ),
        },
        Stamped::ConsumerAllocations(consumer) => (
            format!("SELECT {COLS} FROM allocations WHERE consumer_uuid = ?"),
            vec![consumer.into()],
        ),
        Stamped::ProviderAllocations(rp) => (
            format!("SELECT {COLS} FROM allocations WHERE rp_uuid = ?"),
            vec![rp.into()],
        ),
        Stamped::Names(kind, names) => {
            let mut custom = std::collections::BTreeMap::new();
            for r in &all(
                c,
                &format!("SELECT name, {COLS} FROM placement_custom_names WHERE kind = ?"),
                vec![kind.key().into()],
            )
            .await?
            {
                custom.insert(get_s(r, "name")?, times_of(r)?);
            }
            let mut out = Vec::with_capacity(names.len());
            let mut catalog = None;
            for n in names {
                if n.starts_with("CUSTOM_") {
                    out.push(custom.get(*n).copied().unwrap_or_default());
                } else {
                    if catalog.is_none() {
                        catalog = Some(schema_created(c).await?);
                    }
                    out.push(Times {
                        created_at: catalog.flatten(),
                        updated_at: None,
                    });
                }
            }
            return Ok(out);
        }
    };
    let rows = all(c, &sql, values).await?;
    if let Stamped::Providers(uuids) = of
        && uuids.len() > 64
    {
        let want: std::collections::HashSet<&str> = uuids.iter().copied().collect();
        let mut out = Vec::with_capacity(uuids.len());
        for r in &rows {
            if want.contains(get_s(r, "uuid")?.as_str()) {
                out.push(times_of(r)?);
            }
        }
        return Ok(out);
    }
    rows.iter().map(times_of).collect()
}

fn times_of(r: &sea_orm::QueryResult) -> Result<Times, sea_orm::DbErr> {
    let t = |col| {
        r.try_get::<Option<chrono::NaiveDateTime>>("", col)
            .map(|t| t.map(|t| t.and_utc()))
    };
    Ok(Times {
        created_at: t("created_at")?,
        updated_at: t("updated_at")?,
    })
}

/// When Placement's first migration ran here.
async fn schema_created<C: sea_orm::ConnectionTrait>(
    c: &C,
) -> Result<Option<DateTime<Utc>>, sea_orm::DbErr> {
    let rows = crate::sql::all(
        c,
        &format!(
            "SELECT applied_at FROM {} ORDER BY version LIMIT 1",
            crate::schema::MIGRATIONS.record_table
        ),
        Vec::new(),
    )
    .await?;
    Ok(match rows.first() {
        Some(r) => r
            .try_get::<chrono::NaiveDateTime>("", "applied_at")
            .ok()
            .map(|t| t.and_utc()),
        None => None,
    })
}
