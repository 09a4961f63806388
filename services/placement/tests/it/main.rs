//! Placement's implementations against one contract ([`contract`]):
//! in memory, and SQL on SQLite always, PostgreSQL and MariaDB with the
//! `postgres` / `mysql` features (servers from `NOVA_RS_PG_URL` /
//! `NOVA_RS_MYSQL_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod contract;
mod http;
mod last_modified;
mod memory;
mod sql;
