//! Per-project quotas, as nova's `DbQuotaDriver` keeps them: a hard limit
//! per project (`quotas`), per user in a project (`project_user_quotas`)
//! and per class (`quota_classes`, the `default` class standing for
//! everyone), over the `[quota]` defaults. `[quota] driver =
//! nova.quota.NoopQuotaDriver` makes every limit unlimited (-1). The
//! handlers of `os-quota-sets` and `os-quota-class-sets` are in `api.rs`;
//! the checks on create, resize, key pairs, server groups and metadata
//! read [`limits`].

pub(crate) mod api;
pub(crate) mod count;
mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

use nova_objects::db::Database;
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement, UnionType};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::fault::{ApiResult, Fault};
use crate::{ApiState, Quotas};

/// The resources nova counts, in its order.
pub const RESOURCES: [&str; 10] = [
    "instances",
    "cores",
    "ram",
    "metadata_items",
    "key_pairs",
    "server_groups",
    "server_group_members",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];

/// Limits by resource name.
pub type Limits = BTreeMap<String, i64>;

/// What [`QuotaStore::levels`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels {
    /// The project's limits (defaults, then the project's own).
    pub project: Limits,
    /// The user's (the project's, then the user's own), when asked.
    pub user: Option<Limits>,
    /// The limits the user set itself (none unless asked).
    pub user_own: Limits,
}

/// The quota limits of nova's API database.
#[derive(Debug, Clone)]
pub struct QuotaStore {
    db: Option<Arc<Database>>,
    defaults: Quotas,
    noop: bool,
}

fn db_fault(e: sea_orm::DbErr) -> Fault {
    match nova_objects::Error::from(e) {
        e if e.is_db_unavailable() => e.into(),
        e => Fault::internal(format!("quota database: {e}")),
    }
}

impl QuotaStore {
    /// Only the `[quota]` defaults: nothing stored, updates refused.
    pub fn config_only(defaults: Quotas) -> Self {
        QuotaStore {
            db: None,
            defaults,
            noop: false,
        }
    }

    /// Over `db` (its quota tables created or upgraded first);
    /// `noop`: `[quota] driver = nova.quota.NoopQuotaDriver`.
    pub async fn open(db: Arc<Database>, defaults: Quotas, noop: bool) -> anyhow::Result<Self> {
        schema::MIGRATIONS.sync(db.connection()).await?;
        Ok(QuotaStore {
            db: Some(db),
            defaults,
            noop,
        })
    }

    fn conn(&self) -> ApiResult<&DatabaseConnection> {
        self.db
            .as_deref()
            .map(Database::connection)
            .ok_or_else(|| Fault::internal("quotas are not stored in a database here"))
    }

    /// The `[quota]` defaults.
    fn config_defaults(&self) -> Limits {
        let d = &self.defaults;
        [
            ("instances", d.instances),
            ("cores", d.cores),
            ("ram", d.ram),
            ("metadata_items", d.metadata_items),
            ("key_pairs", d.key_pairs),
            ("server_groups", d.server_groups),
            ("server_group_members", d.server_group_members),
            ("injected_files", d.injected_files),
            ("injected_file_content_bytes", d.injected_file_content_bytes),
            ("injected_file_path_bytes", d.injected_file_path_bytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn rows(&self, table: &str, filters: &[(&str, &str)]) -> ApiResult<Limits> {
        let Some(db) = self.db.as_deref() else {
            return Ok(Limits::new());
        };
        let mut q = Query::select();
        q.columns(["resource", "hard_limit"]).from(table.to_owned());
        for (k, v) in filters {
            q.and_where(Expr::col(k.to_string()).eq(v.to_string()));
        }
        let rows = db.connection().query_all(&q).await.map_err(db_fault)?;
        rows.iter()
            .map(|r| {
                let res: String = r.try_get("", "resource").map_err(db_fault)?;
                let lim: i64 = r.try_get("", "hard_limit").map_err(db_fault)?;
                Ok((res, lim))
            })
            .collect()
    }

    fn unlimited() -> Limits {
        RESOURCES.iter().map(|r| ((*r).to_owned(), -1)).collect()
    }

    /// The defaults: `[quota]` under the `default` class's stored limits.
    pub async fn defaults(&self) -> ApiResult<Limits> {
        if self.noop {
            return Ok(Self::unlimited());
        }
        let mut out = self.config_defaults();
        out.extend(
            self.rows("quota_classes", &[("class_name", "default")])
                .await?,
        );
        Ok(out)
    }

    /// A class's limits (the defaults where it sets none).
    pub async fn class(&self, name: &str) -> ApiResult<Limits> {
        let mut out = self.defaults().await?;
        if !self.noop {
            out.extend(self.rows("quota_classes", &[("class_name", name)]).await?);
        }
        Ok(out)
    }

    /// A project's limits, or a user's in it: defaults, then the
    /// project's, then the user's.
    pub async fn project(&self, project: &str, user: Option<&str>) -> ApiResult<Limits> {
        let (p, u) = self.project_and_user(project, user).await?;
        Ok(u.unwrap_or(p))
    }

    /// A project's limits and, with `user`, that user's in it (what a
    /// quota check compares with).
    pub async fn project_and_user(
        &self,
        project: &str,
        user: Option<&str>,
    ) -> ApiResult<(Limits, Option<Limits>)> {
        let l = self.levels(project, user).await?;
        Ok((l.project, l.user))
    }

    /// [`QuotaStore::project_and_user`] and the limits the user set
    /// itself, from one read of the three tables.
    pub async fn levels(&self, project: &str, user: Option<&str>) -> ApiResult<Levels> {
        if self.noop {
            return Ok(Levels {
                project: Self::unlimited(),
                user: user.map(|_| Self::unlimited()),
                user_own: Limits::new(),
            });
        }
        let mut read: [Limits; 3] = Default::default();
        if let Some(db) = self.db.as_deref() {
            // Each row tagged with its level: d(efault class), p(roject), u(ser).
            let part = |level: &str, table: &str, filters: &[(&str, &str)]| -> SelectStatement {
                let mut q = Query::select();
                q.expr_as(Expr::cust(format!("'{level}'")), "level")
                    .columns(["resource", "hard_limit"])
                    .from(table.to_owned());
                for (k, v) in filters {
                    q.and_where(Expr::col(k.to_string()).eq(v.to_string()));
                }
                q
            };
            let mut q = part("d", "quota_classes", &[("class_name", "default")]);
            q.union(
                UnionType::All,
                part("p", "quotas", &[("project_id", project)]),
            );
            if let Some(u) = user {
                q.union(
                    UnionType::All,
                    part(
                        "u",
                        "project_user_quotas",
                        &[("project_id", project), ("user_id", u)],
                    ),
                );
            }
            for r in db.connection().query_all(&q).await.map_err(db_fault)? {
                let level: String = r.try_get("", "level").map_err(db_fault)?;
                let res: String = r.try_get("", "resource").map_err(db_fault)?;
                let lim: i64 = r.try_get("", "hard_limit").map_err(db_fault)?;
                let i = match level.as_str() {
                    "d" => 0,
                    "p" => 1,
                    _ => 2,
                };
                read[i].insert(res, lim);
            }
        }
        let [class, own, user_own] = read;
        let mut project = self.config_defaults();
        project.extend(class);
        project.extend(own);
        let user = user.map(|_| {
            let mut u = project.clone();
            u.extend(user_own.clone());
            u
        });
        Ok(Levels {
            project,
            user,
            user_own,
        })
    }

    /// The sum of the limits set for the users of `project`, by resource
    /// (what nova subtracts from the project's limit as `remains`).
    pub async fn users_total(&self, project: &str) -> ApiResult<Limits> {
        let mut out = Limits::new();
        let Some(db) = self.db.as_deref() else {
            return Ok(out);
        };
        if self.noop {
            return Ok(out);
        }
        let mut q = Query::select();
        q.columns(["resource", "hard_limit"])
            .from("project_user_quotas".to_owned())
            .and_where(Expr::col("project_id").eq(project));
        for r in db.connection().query_all(&q).await.map_err(db_fault)? {
            let res: String = r.try_get("", "resource").map_err(db_fault)?;
            let lim: i64 = r.try_get("", "hard_limit").map_err(db_fault)?;
            *out.entry(res).or_insert(0) += lim;
        }
        Ok(out)
    }

    /// The limits a project (or user) set itself, without defaults.
    pub async fn own(&self, project: &str, user: Option<&str>) -> ApiResult<Limits> {
        match user {
            Some(u) => {
                self.rows(
                    "project_user_quotas",
                    &[("project_id", project), ("user_id", u)],
                )
                .await
            }
            None => self.rows("quotas", &[("project_id", project)]).await,
        }
    }

    async fn put(
        &self,
        table: &str,
        keys: &[(&str, &str)],
        resource: &str,
        limit: i64,
    ) -> ApiResult<()> {
        let db = self.conn()?;
        let mut del = Query::delete();
        del.from_table(table.to_owned())
            .and_where(Expr::col("resource").eq(resource));
        for (k, v) in keys {
            del.and_where(Expr::col(k.to_string()).eq(v.to_string()));
        }
        db.execute(&del).await.map_err(db_fault)?;
        let mut ins = Query::insert();
        let mut cols: Vec<String> = keys.iter().map(|(k, _)| (*k).to_owned()).collect();
        cols.extend(["resource".to_owned(), "hard_limit".to_owned()]);
        let mut vals: Vec<sea_orm::sea_query::SimpleExpr> =
            keys.iter().map(|(_, v)| (*v).into()).collect();
        vals.extend([resource.into(), limit.into()]);
        ins.into_table(table.to_owned())
            .columns(cols)
            .values(vals)
            .map_err(Fault::internal)?;
        db.execute(&ins).await.map_err(db_fault)?;
        Ok(())
    }

    /// Sets a project's (or a user's) limit of `resource`.
    pub async fn set(
        &self,
        project: &str,
        user: Option<&str>,
        resource: &str,
        limit: i64,
    ) -> ApiResult<()> {
        match user {
            Some(u) => {
                self.put(
                    "project_user_quotas",
                    &[("project_id", project), ("user_id", u)],
                    resource,
                    limit,
                )
                .await
            }
            None => {
                self.put("quotas", &[("project_id", project)], resource, limit)
                    .await
            }
        }
    }

    /// Sets a class's limit of `resource`.
    pub async fn set_class(&self, class: &str, resource: &str, limit: i64) -> ApiResult<()> {
        self.put("quota_classes", &[("class_name", class)], resource, limit)
            .await
    }

    /// Drops a project's limits (and its users'), or one user's.
    pub async fn delete(&self, project: &str, user: Option<&str>) -> ApiResult<()> {
        let db = self.conn()?;
        let mut tables = vec!["project_user_quotas"];
        if user.is_none() {
            tables.push("quotas");
        }
        for t in tables {
            let mut del = Query::delete();
            del.from_table(t.to_owned())
                .and_where(Expr::col("project_id").eq(project));
            if let Some(u) = user {
                del.and_where(Expr::col("user_id").eq(u));
            }
            db.execute(&del).await.map_err(db_fault)?;
        }
        Ok(())
    }
}

/// The limits that apply to `user` in `project`, as the checks read them.
pub(crate) async fn limits(st: &ApiState, project: &str, user: &str) -> ApiResult<Quotas> {
    Ok(quotas_of(&st.quotas.project(project, Some(user)).await?))
}

/// [`Limits`] as the typed [`Quotas`] (-1 where a resource is missing).
pub(crate) fn quotas_of(l: &Limits) -> Quotas {
    let g = |k: &str| l.get(k).copied().unwrap_or(-1);
    Quotas {
        instances: g("instances"),
        cores: g("cores"),
        ram: g("ram"),
        metadata_items: g("metadata_items"),
        key_pairs: g("key_pairs"),
        server_groups: g("server_groups"),
        server_group_members: g("server_group_members"),
        injected_files: g("injected_files"),
        injected_file_content_bytes: g("injected_file_content_bytes"),
        injected_file_path_bytes: g("injected_file_path_bytes"),
    }
}
