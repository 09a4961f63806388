//! Statements on a SQLite file database run on connections of this
//! crate's own, stepped on the calling task's thread.
//!
//! sqlx runs every SQLite connection on a thread of its own: each
//! statement crosses to that thread and back, two hand-offs (a futex wake
//! and a context switch each on a busy box) that cost more than reading
//! an instance row by its uuid or writing it back. The store's statements
//! (each one autocommit statement) run instead on connections this module
//! opens with SQLite's C API (the library sqlx links, `libsqlite3-sys`),
//! stepped where the caller runs, each keeping its prepared statements;
//! what they do not run goes to the pool as before.
//!
//! **Reads** (`get`, `list`, `count`, the joined instance read) run on
//! read-only connections (`PRAGMA query_only`). A read is one `SELECT` of
//! a local file (pages from SQLite's cache, or the OS's); decoding its
//! rows, which ran on the caller's thread before too, costs as much. A
//! statement using `REGEXP` (sqlx registers that function on its own
//! connections) or a value of a type no statement here binds goes to the
//! pool. In WAL mode readers see every write committed on any connection
//! and never wait for a writer; a reader waits (SQLite's busy timeout)
//! only while another connection rebuilds the WAL index after a crash.
//! There are as many read connections as the pool has (a read waits for
//! one as it would for the pool's). An in-memory database exists per
//! connection: it never gets these connections.
//!
//! **Writes** (`create`, `save`, `destroy`: one `INSERT`, `UPDATE` or
//! `DELETE` each, most with `RETURNING`) run on one write connection (SQLite
//! has one writer at a time), each in the process's writers' turn
//! (`Database::write_lock`, which Placement's transactions beside nova's
//! tables take too: a task waits for it, no thread), and never wait for
//! SQLite's lock: a write that finds the database locked all the same
//! (another process, a transaction that does not take the turn), or that
//! fails in any way, is run again on the pool, where it waits with the
//! busy timeout and fails, if it does, with sqlx's error as before. An autocommit
//! statement that failed changed nothing, so running it again is safe. The
//! write connection keeps SQLite's settings of the pool's (`foreign_keys`,
//! `synchronous = NORMAL`) and leaves the WAL's checkpoints to the pool's
//! thread: past 1,000 pages in the log (SQLite's own threshold) a passive
//! checkpoint is started there, so a write does not wait for its file
//! syncs (~10 ms here). Should writes outrun those checkpoints (the log
//! past 4,000 pages), the write connection checkpoints itself after its
//! commit, as SQLite's automatic checkpoint does, and the log stays short.
//!
//! The API's show of a server (the instance joined with its info cache)
//! is also kept decoded per read connection while the database does not
//! change: each such read first asks SQLite's `PRAGMA data_version`
//! (which moves with every commit of any other connection or process)
//! and drops what the connection kept when it moved; a clone is kept
//! only when it did not move since the connection's previous read, so a
//! busy database pays one pragma step per show and no clones.
#![allow(unsafe_code)]

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libsqlite3_sys as ffi;
use sea_orm::sea_query::Value as SqlValue;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement};

use super::rows::{Cell, ReadRow, Reader, Writer, Written};
use super::sql::db_err;

/// Prepared statements a connection keeps (reads build a handful of
/// distinct texts; lists with filters more).
const MAX_STATEMENTS: usize = 128;

/// Decoded objects a connection keeps while the database does not change
/// ([`Local::read_cached`]).
const MAX_CACHED: usize = 256;

/// Pages in the WAL past which the write connection has the pool
/// checkpoint it (SQLite's default `wal_autocheckpoint`).
const CHECKPOINT_PAGES: i32 = 1000;

/// The connections of one database file.
pub(crate) struct Local {
    /// The pool (what these connections leave to it).
    pool: DatabaseConnection,
    path: CString,
    busy: Duration,
    /// Statements logged at INFO under `sqlx::query`, as the pool's are
    /// (`[database] connection_debug` ≥ 50).
    log: bool,
    idle: Mutex<Vec<Conn>>,
    /// One per read connection (open or not yet).
    permits: tokio::sync::Semaphore,
    /// The write connection, opened at the first write (and again after
    /// one left it inside a transaction).
    writer: Mutex<Option<Conn>>,
    /// A checkpoint started on the pool and not yet done.
    checkpointing: Arc<AtomicBool>,
    /// The process's writers' turn (`Database::write_lock`), taken for
    /// each write here: a write then finds the file locked only by
    /// another process or a writer that does not take it.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("path", &self.path)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// Why a statement did not run on a read connection.
#[derive(Debug)]
enum Failure {
    /// Not something these connections run: the pool runs it.
    Unsupported(&'static str),
    /// SQLite's error.
    Sqlite(c_int, String),
}

/// A SQLite connection opened in multi-thread mode, and its prepared
/// statements by SQL text.
struct Conn {
    db: NonNull<ffi::sqlite3>,
    stmts: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
    /// `PRAGMA data_version` at this connection's last look.
    version: Option<i64>,
    /// What [`Local::read_cached`] decoded since the database last
    /// changed, by key.
    cached: HashMap<String, Box<dyn Any + Send>>,
    /// The write connection: the pages in the WAL after its last commit
    /// (set by SQLite's WAL hook, which it points at; dropped after the
    /// connection closes).
    wal_pages: Option<Box<AtomicI32>>,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX on a
// thread-safe SQLite build (checked in `Conn::open`): multi-thread mode, in
// which a connection and its statements may move between threads as long
// as one thread uses them at a time. A `Conn` is only used through
// `&mut self` (one read at a time), never shared.
unsafe impl Send for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        for (_, s) in self.stmts.drain() {
            // SAFETY: each statement was prepared on this connection and is
            // finalized once, here.
            unsafe { ffi::sqlite3_finalize(s.as_ptr()) };
        }
        // SAFETY: the handle came from sqlite3_open_v2 and its statements
        // are finalized; it is closed once (before `wal_pages`, which its
        // hook points at, is dropped with the fields).
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// SQLite's WAL hook of the write connection: after each commit, the pages
/// now in the log.
///
/// # Safety
/// `pages` is the `AtomicI32` the connection's `wal_pages` holds, alive
/// while the connection is open.
unsafe extern "C" fn wal_committed(
    pages: *mut c_void,
    _db: *mut ffi::sqlite3,
    _name: *const c_char,
    n: c_int,
) -> c_int {
    // SAFETY: as the function's contract says.
    unsafe { &*pages.cast::<AtomicI32>() }.store(n, Ordering::Relaxed);
    ffi::SQLITE_OK
}

impl Conn {
    /// A read connection (`query_only`, waiting `busy` for a lock), or
    /// the write connection (never waiting: a locked database is the
    /// pool's to wait for).
    fn open(path: &CStr, busy: Duration, write: bool) -> Result<Conn, Failure> {
        // SAFETY: a plain query of the library's compile-time setting.
        if unsafe { ffi::sqlite3_threadsafe() } == 0 {
            return Err(Failure::Unsupported("SQLite built without threads"));
        }
        let mut db = ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; `db`
        // receives the handle (also on failure, then closed by `Drop`).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &raw mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let db =
            NonNull::new(db).ok_or(Failure::Sqlite(ffi::SQLITE_NOMEM, "out of memory".into()))?;
        let mut conn = Conn {
            db,
            stmts: HashMap::new(),
            version: None,
            cached: HashMap::new(),
            wal_pages: None,
        };
        if rc != ffi::SQLITE_OK {
            return Err(conn.error(rc));
        }
        if write {
            // The pool's settings (`sqlite_options`); the journal mode is
            // the file's (WAL, set when the pool connected).
            conn.exec(c"PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")?;
            let pages = Box::new(AtomicI32::new(0));
            // SAFETY: an open handle; the hook's argument is the boxed
            // atomic the connection owns until after it closes (`Drop`).
            // The hook replaces SQLite's automatic checkpoint
            // (`Local::write_here` asks the pool for one instead).
            unsafe {
                ffi::sqlite3_wal_hook(
                    db.as_ptr(),
                    Some(wal_committed),
                    ptr::from_ref::<AtomicI32>(&pages).cast_mut().cast(),
                );
            }
            conn.wal_pages = Some(pages);
        } else {
            let ms = c_int::try_from(busy.as_millis()).unwrap_or(c_int::MAX);
            // SAFETY: an open handle.
            unsafe { ffi::sqlite3_busy_timeout(db.as_ptr(), ms) };
            conn.exec(c"PRAGMA query_only = ON")?;
        }
        Ok(conn)
    }

    /// Runs write `sql` (autocommit): its rows (`RETURNING`), the rows it
    /// changed and the last row id inserted.
    fn write(
        &mut self,
        sql: &str,
        values: &[SqlValue],
    ) -> Result<(Vec<Vec<Cell>>, Written), Failure> {
        let rows = self.query(sql, values, false)?;
        // SAFETY: an open handle; both count the statement just finished
        // on this connection (one thread at a time).
        let (changed, last_id) = unsafe {
            (
                ffi::sqlite3_changes(self.db.as_ptr()),
                ffi::sqlite3_last_insert_rowid(self.db.as_ptr()),
            )
        };
        Ok((
            rows,
            Written {
                changed: u64::try_from(changed).unwrap_or(0),
                last_id: u64::try_from(last_id).ok(),
            },
        ))
    }

    /// Whether no transaction is open on the connection (every statement
    /// here is autocommit: one left open means the connection is unusable).
    fn autocommit(&self) -> bool {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    fn error(&self, rc: c_int) -> Failure {
        // SAFETY: an open handle; the message is copied before any other
        // call on it.
        let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) };
        Failure::Sqlite(rc, msg.to_string_lossy().into_owned())
    }

    fn exec(&mut self, sql: &CStr) -> Result<(), Failure> {
        // SAFETY: an open handle and a NUL-terminated statement; no
        // callback, no error string.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// The prepared statement of `sql` (prepared on first use, kept).
    fn prepare(&mut self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>, Failure> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(*s);
        }
        if self.stmts.len() >= MAX_STATEMENTS {
            for (_, s) in self.stmts.drain() {
                // SAFETY: prepared here, reset after its last use, finalized once.
                unsafe { ffi::sqlite3_finalize(s.as_ptr()) };
            }
        }
        let len =
            c_int::try_from(sql.len()).map_err(|_| Failure::Unsupported("statement too long"))?;
        let (mut stmt, mut tail) = (ptr::null_mut(), ptr::null());
        // SAFETY: `sql` is valid for `len` bytes (no NUL needed with a
        // length); `stmt` and `tail` receive the statement and the end of
        // the text it used.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &raw mut stmt,
                &raw mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        let stmt = NonNull::new(stmt).ok_or(Failure::Unsupported("an empty statement"))?;
        // SAFETY: `tail` points into `sql` (at its end when all of it was
        // one statement).
        let used = unsafe { tail.cast::<u8>().offset_from(sql.as_ptr()) };
        if usize::try_from(used).map_or(true, |u| !sql[u.min(sql.len())..].trim().is_empty()) {
            // SAFETY: prepared just now, finalized once.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Err(Failure::Unsupported("several statements"));
        }
        self.stmts.insert(sql.to_owned(), stmt);
        Ok(stmt)
    }

    /// Whether a write was committed on any connection since this one
    /// last looked (`PRAGMA data_version`, which SQLite keeps for exactly
    /// this; a first look counts as a change).
    fn changed(&mut self) -> Result<bool, Failure> {
        let version = match self.query("PRAGMA data_version", &[], true)?.first() {
            Some(row) => match row.first() {
                Some(Cell::Int(v)) => *v,
                _ => return Err(Failure::Unsupported("no data_version")),
            },
            None => return Err(Failure::Unsupported("no data_version")),
        };
        let changed = self.version != Some(version);
        self.version = Some(version);
        Ok(changed)
    }

    /// `sql`'s first row decoded by `decode`, or what this connection
    /// decoded for `key` when no write was committed since (a clone).
    /// Kept only when the database did not change since the previous
    /// look: while writes come, nothing is kept (or cloned).
    fn cached<T: Clone + Send + 'static>(
        &mut self,
        key: &str,
        sql: &str,
        values: &[SqlValue],
        decode: impl FnOnce(ReadRow) -> crate::error::Result<T>,
    ) -> Result<crate::error::Result<Option<T>>, Failure> {
        let changed = self.changed()?;
        if changed {
            self.cached.clear();
        } else if let Some(hit) = self.cached.get(key).and_then(|v| v.downcast_ref::<T>()) {
            return Ok(Ok(Some(hit.clone())));
        }
        let Some(row) = self.query(sql, values, true)?.pop() else {
            return Ok(Ok(None));
        };
        let value = match decode(ReadRow::Cells(row)) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if !changed {
            if self.cached.len() >= MAX_CACHED {
                self.cached.clear();
            }
            self.cached.insert(key.to_owned(), Box::new(value.clone()));
        }
        Ok(Ok(Some(value)))
    }

    /// The rows of `sql` with `values` bound (the first only with `one`).
    fn query(
        &mut self,
        sql: &str,
        values: &[SqlValue],
        one: bool,
    ) -> Result<Vec<Vec<Cell>>, Failure> {
        let stmt = self.prepare(sql)?;
        let out = self.bind(stmt, values).and_then(|()| self.step(stmt, one));
        // SAFETY: a statement of this connection; reset and unbound for
        // its next use whatever happened.
        unsafe {
            ffi::sqlite3_reset(stmt.as_ptr());
            ffi::sqlite3_clear_bindings(stmt.as_ptr());
        }
        out
    }

    fn bind(
        &mut self,
        stmt: NonNull<ffi::sqlite3_stmt>,
        values: &[SqlValue],
    ) -> Result<(), Failure> {
        let s = stmt.as_ptr();
        // SAFETY: a prepared statement of this connection.
        let wanted = unsafe { ffi::sqlite3_bind_parameter_count(s) };
        if usize::try_from(wanted).ok() != Some(values.len()) {
            return Err(Failure::Unsupported(
                "parameters and values differ in number",
            ));
        }
        for (i, v) in values.iter().enumerate() {
            let at = c_int::try_from(i + 1).map_err(|_| Failure::Unsupported("too many values"))?;
            let rc = match Bound::of(v)? {
                // SAFETY (every arm): `at` is a parameter of `s`
                // (1 ..= its count); texts and blobs are copied by SQLite
                // (SQLITE_TRANSIENT) before the call returns.
                Bound::Null => unsafe { ffi::sqlite3_bind_null(s, at) },
                Bound::Int(n) => unsafe { ffi::sqlite3_bind_int64(s, at, n) },
                Bound::Real(f) => unsafe { ffi::sqlite3_bind_double(s, at, f) },
                Bound::Text(t) => unsafe {
                    ffi::sqlite3_bind_text64(
                        s,
                        at,
                        t.as_ptr().cast(),
                        t.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    )
                },
                Bound::Blob(b) => unsafe {
                    ffi::sqlite3_bind_blob64(
                        s,
                        at,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    )
                },
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.error(rc));
            }
        }
        Ok(())
    }

    fn step(
        &mut self,
        stmt: NonNull<ffi::sqlite3_stmt>,
        one: bool,
    ) -> Result<Vec<Vec<Cell>>, Failure> {
        let s = stmt.as_ptr();
        let mut rows = Vec::new();
        loop {
            // SAFETY: a prepared, bound statement of this connection.
            match unsafe { ffi::sqlite3_step(s) } {
                ffi::SQLITE_ROW => {
                    rows.push(row(s));
                    if one {
                        return Ok(rows);
                    }
                }
                ffi::SQLITE_DONE => return Ok(rows),
                rc => return Err(self.error(rc)),
            }
        }
    }
}

/// The current row of `s` (after SQLITE_ROW).
fn row(s: *mut ffi::sqlite3_stmt) -> Vec<Cell> {
    // SAFETY (the whole function): `s` is a statement positioned on a
    // row; every index is below its column count; a text or blob pointer
    // is read (for the length `sqlite3_column_bytes` gives, called after
    // it, as SQLite asks) and copied before the next call on `s`.
    let n = unsafe { ffi::sqlite3_column_count(s) };
    let mut cells = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let cell = match unsafe { ffi::sqlite3_column_type(s, i) } {
            ffi::SQLITE_INTEGER => Cell::Int(unsafe { ffi::sqlite3_column_int64(s, i) }),
            ffi::SQLITE_FLOAT => Cell::Real(unsafe { ffi::sqlite3_column_double(s, i) }),
            ffi::SQLITE_TEXT => {
                let p = unsafe { ffi::sqlite3_column_text(s, i) };
                match String::from_utf8(unsafe { copied(s, i, p) }) {
                    Ok(t) => Cell::Text(t),
                    Err(e) => Cell::Blob(e.into_bytes()),
                }
            }
            ffi::SQLITE_BLOB => {
                let p = unsafe { ffi::sqlite3_column_blob(s, i) };
                Cell::Blob(unsafe { copied(s, i, p.cast()) })
            }
            _ => Cell::Null,
        };
        cells.push(cell);
    }
    cells
}

/// A copy of the text or blob `p` of column `i` of `s`.
///
/// # Safety
/// `p` is what `sqlite3_column_text` / `_blob` just returned for that
/// column of the row `s` is on (null for an empty value).
unsafe fn copied(s: *mut ffi::sqlite3_stmt, i: c_int, p: *const u8) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: the length SQLite gives for the value `p` points at, asked
    // after the pointer as SQLite's documentation requires.
    let len = usize::try_from(unsafe { ffi::sqlite3_column_bytes(s, i) }).unwrap_or(0);
    // SAFETY: `p` is valid for `len` bytes until the next call on `s`.
    unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
}

/// A value as bound: what sqlx binds for each sea-query value type
/// (booleans as 0/1, datetimes and JSON as text).
/// Texts and blobs the statement holds are borrowed (SQLite copies them).
enum Bound<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(&'a [u8]),
}

impl<'a> Bound<'a> {
    fn of(v: &'a SqlValue) -> Result<Bound<'a>, Failure> {
        fn opt<'a, T>(v: Option<T>, f: impl FnOnce(T) -> Bound<'a>) -> Bound<'a> {
            v.map_or(Bound::Null, f)
        }
        Ok(match v {
            SqlValue::Bool(b) => opt(*b, |b| Bound::Int(i64::from(b))),
            SqlValue::TinyInt(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::SmallInt(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::Int(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::BigInt(n) => opt(*n, Bound::Int),
            SqlValue::TinyUnsigned(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::SmallUnsigned(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::Unsigned(n) => opt(*n, |n| Bound::Int(n.into())),
            SqlValue::BigUnsigned(Some(n)) => Bound::Int(
                i64::try_from(*n)
                    .map_err(|_| Failure::Unsupported("an unsigned value above i64"))?,
            ),
            SqlValue::BigUnsigned(None) => Bound::Null,
            SqlValue::Float(f) => opt(*f, |f| Bound::Real(f.into())),
            SqlValue::Double(f) => opt(*f, Bound::Real),
            SqlValue::String(s) => opt(s.as_deref(), |s| Bound::Text(Cow::Borrowed(s))),
            SqlValue::Char(c) => opt(*c, |c| Bound::Text(c.to_string().into())),
            SqlValue::Bytes(b) => opt(b.as_deref(), Bound::Blob),
            SqlValue::ChronoDateTime(d) => {
                opt(*d, |d| Bound::Text(d.format("%F %T%.f").to_string().into()))
            }
            SqlValue::ChronoDateTimeUtc(d) => opt(*d, |d| {
                Bound::Text(
                    d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
                        .into(),
                )
            }),
            SqlValue::Json(j) => match j {
                Some(j) => Bound::Text(
                    serde_json::to_string(j)
                        .map_err(|_| Failure::Unsupported("unencodable JSON"))?
                        .into(),
                ),
                None => Bound::Null,
            },
            _ => return Err(Failure::Unsupported("a value type reads do not bind")),
        })
    }
}

impl Local {
    /// Up to `max` read connections on the SQLite file `path` (opened
    /// when first needed), beside `pool`.
    pub(crate) fn new(
        pool: DatabaseConnection,
        path: &std::path::Path,
        busy: Duration,
        log: bool,
        max: usize,
        turn: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Self, String> {
        use std::os::unix::ffi::OsStrExt as _;
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: a NUL in the path", path.display()))?;
        Ok(Local {
            pool,
            path,
            busy,
            log,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(max.max(1)),
            writer: Mutex::new(None),
            checkpointing: Arc::new(AtomicBool::new(false)),
            turn,
        })
    }

    /// `f` on an idle read connection (one opened when none is idle), with
    /// no await while it runs: a read is never left half done on its
    /// connection.
    async fn with_conn<R>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, Failure>,
    ) -> Result<Result<R, Failure>, DbErr> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let idle = self.idle.lock().ok().and_then(|mut i| i.pop());
        let conn = match idle {
            Some(c) => Ok(c),
            None => Conn::open(&self.path, self.busy, false),
        };
        let out = conn.and_then(|mut c| {
            let out = f(&mut c);
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(c);
            }
            out
        });
        drop(permit);
        Ok(out)
    }

    /// `stmt`'s rows (the first only with `one`) on a read connection, or
    /// on the pool when those do not run it.
    async fn read(&self, stmt: Statement, one: bool) -> Result<Vec<ReadRow>, DbErr> {
        let why = if stmt.sql.contains("REGEXP") {
            "REGEXP"
        } else {
            let values = stmt.values.as_ref().map_or(&[][..], |v| v.0.as_slice());
            let (sql, values) = match limit_inlined(&stmt.sql, values) {
                Some((sql, n)) => (Cow::Owned(sql), &values[..n]),
                None => (Cow::Borrowed(stmt.sql.as_str()), values),
            };
            match self.with_conn(|c| c.query(&sql, values, one)).await? {
                Ok(rows) => {
                    self.logged(&stmt.sql, rows.len());
                    return Ok(rows.into_iter().map(ReadRow::Cells).collect());
                }
                Err(Failure::Sqlite(rc, msg)) => return Err(sqlite_err(rc, &msg)),
                Err(Failure::Unsupported(why)) => why,
            }
        };
        tracing::debug!(why, sql = %stmt.sql, "a read on the pool");
        Ok(if one {
            self.pool
                .query_one_raw(stmt)
                .await?
                .into_iter()
                .map(ReadRow::Pool)
                .collect()
        } else {
            self.pool
                .query_all_raw(stmt)
                .await?
                .into_iter()
                .map(ReadRow::Pool)
                .collect()
        })
    }

    /// `stmt`'s first row decoded by `decode`, or a clone of what a read
    /// connection decoded for `key` when no write was committed to the
    /// database since (SQLite's `PRAGMA data_version`, which sees every
    /// connection's and every process's commits); a statement these
    /// connections do not run is read on the pool.
    pub(crate) async fn read_cached<T: Clone + Send + 'static>(
        &self,
        key: &str,
        stmt: Statement,
        decode: impl Fn(ReadRow) -> crate::error::Result<T>,
    ) -> crate::error::Result<Option<T>> {
        if !stmt.sql.contains("REGEXP") {
            let values = stmt.values.as_ref().map_or(&[][..], |v| v.0.as_slice());
            let out = self
                .with_conn(|c| c.cached(key, &stmt.sql, values, &decode))
                .await
                .map_err(db_err)?;
            match out {
                Ok(found) => {
                    self.logged(&stmt.sql, usize::from(matches!(found, Ok(Some(_)))));
                    return found;
                }
                Err(Failure::Sqlite(rc, msg)) => return Err(db_err(sqlite_err(rc, &msg))),
                Err(Failure::Unsupported(_)) => {}
            }
        }
        match self.read(stmt, true).await.map_err(db_err)?.pop() {
            Some(row) => decode(row).map(Some),
            None => Ok(None),
        }
    }

    fn logged(&self, sql: &str, rows: usize) {
        if self.log {
            tracing::info!(target: "sqlx::query", statement = %sql, rows_returned = rows, "read connection");
        }
    }

    /// Write `stmt` on the write connection (opened when there is none),
    /// never waiting for SQLite's lock.
    fn write_here(&self, stmt: &Statement) -> Result<(Vec<Vec<Cell>>, Written), Failure> {
        let verb = stmt.sql.trim_start().get(..6).unwrap_or("");
        if !["INSERT", "UPDATE", "DELETE"]
            .iter()
            .any(|v| verb.eq_ignore_ascii_case(v))
        {
            return Err(Failure::Unsupported("not an INSERT, UPDATE or DELETE"));
        }
        let values = stmt.values.as_ref().map_or(&[][..], |v| v.0.as_slice());
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| Failure::Unsupported("a write panicked"))?;
        let conn = match &mut *writer {
            Some(c) => c,
            None => writer.insert(Conn::open(&self.path, Duration::ZERO, true)?),
        };
        let out = conn.write(&stmt.sql, values);
        if out.is_err() && !conn.autocommit() {
            // Closing rolls the transaction back.
            *writer = None;
            return out;
        }
        let pages = conn
            .wal_pages
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed));
        // A checkpoint off the caller's thread while the pool's keep up;
        // here (as SQLite's automatic one) when they do not, or when
        // there is no runtime to run one on.
        if out.is_ok()
            && pages >= CHECKPOINT_PAGES
            && (pages >= CHECKPOINT_PAGES * 4 || !self.checkpoint_on_pool())
            && let Err(e) = conn.exec(c"PRAGMA wal_checkpoint(PASSIVE)")
        {
            tracing::warn!(error = ?e, "WAL checkpoint");
        }
        out
    }

    /// Starts a passive checkpoint of the WAL on the pool's thread unless
    /// one is under way; false when there is no runtime to run it on.
    fn checkpoint_on_pool(&self) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return true;
        }
        let (pool, flag) = (self.pool.clone(), self.checkpointing.clone());
        rt.spawn(async move {
            if let Err(e) = pool
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint");
            }
            flag.store(false, Ordering::Release);
        });
        true
    }

    /// `stmt` written here (its rows and counts), or `None` when the
    /// pool is to write it.
    fn written_here(&self, stmt: &Statement) -> Option<(Vec<Vec<Cell>>, Written)> {
        match self.write_here(stmt) {
            Ok((rows, written)) => {
                if self.log {
                    tracing::info!(target: "sqlx::query", statement = %stmt.sql, rows_returned = rows.len(), rows_affected = written.changed, "write connection");
                }
                Some((rows, written))
            }
            Err(why) => {
                tracing::debug!(?why, sql = %stmt.sql, "a write on the pool");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Writer for Local {
    async fn write_returning(&self, stmt: Statement) -> Result<Option<ReadRow>, DbErr> {
        let here = {
            let _turn = self.turn.lock().await;
            self.written_here(&stmt)
        };
        match here {
            Some((rows, _)) => Ok(rows.into_iter().next().map(ReadRow::Cells)),
            None => Ok(Writer::write_returning(&self.pool, stmt)
                .await?
                .map(ReadRow::Pool)),
        }
    }

    async fn write(&self, stmt: Statement) -> Result<Written, DbErr> {
        let here = {
            let _turn = self.turn.lock().await;
            self.written_here(&stmt)
        };
        match here {
            Some((_, written)) => Ok(written),
            None => Writer::write(&self.pool, stmt).await,
        }
    }
}

/// `sql` with a trailing `LIMIT ?` (and `OFFSET ?`) written out from the
/// last of `values`, and how many values remain to bind; `None` when it
/// has none (or they are not integers). SQLite plans a statement anew each
/// time a value is bound to its `LIMIT` (the planner uses it), so a list
/// with a bound limit was re-prepared at every run (3 % of a
/// boot+delete's CPU); a statement per distinct limit is kept instead.
fn limit_inlined(sql: &str, values: &[SqlValue]) -> Option<(String, usize)> {
    fn int(v: &SqlValue) -> Option<u64> {
        match v {
            SqlValue::BigUnsigned(Some(n)) => Some(*n),
            SqlValue::Unsigned(Some(n)) => Some((*n).into()),
            SqlValue::BigInt(Some(n)) => u64::try_from(*n).ok(),
            SqlValue::Int(Some(n)) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    let (head, n) = if let Some(h) = sql.strip_suffix(" LIMIT ? OFFSET ?") {
        (h, 2)
    } else {
        (sql.strip_suffix(" LIMIT ?")?, 1)
    };
    let keep = values.len().checked_sub(n)?;
    let limit = int(&values[keep])?;
    let out = match values.get(keep + 1) {
        Some(offset) => format!("{head} LIMIT {limit} OFFSET {}", int(offset)?),
        None => format!("{head} LIMIT {limit}"),
    };
    Some((out, keep))
}

fn sqlite_err(rc: c_int, msg: &str) -> DbErr {
    DbErr::Query(RuntimeErr::Internal(format!("SQLite error {rc}: {msg}")))
}

#[async_trait::async_trait]
impl Reader for Local {
    type Row = ReadRow;

    fn backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn read_one(&self, stmt: Statement) -> Result<Option<ReadRow>, DbErr> {
        Ok(self.read(stmt, true).await?.into_iter().next())
    }

    async fn read_all(&self, stmt: Statement) -> Result<Vec<ReadRow>, DbErr> {
        self.read(stmt, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_limit_is_written_out() {
        let v = |n: u64| SqlValue::BigUnsigned(Some(n));
        let s = SqlValue::String(Some("p".into()));
        let sql = "SELECT a FROM t WHERE p = ? LIMIT ?";
        assert_eq!(
            limit_inlined(sql, &[s.clone(), v(5)]),
            Some(("SELECT a FROM t WHERE p = ? LIMIT 5".into(), 1))
        );
        assert_eq!(
            limit_inlined(&format!("{sql} OFFSET ?"), &[s.clone(), v(5), v(10)]),
            Some(("SELECT a FROM t WHERE p = ? LIMIT 5 OFFSET 10".into(), 1))
        );
        // Nothing to write out, or not an integer: left to bind.
        assert_eq!(
            limit_inlined("SELECT a FROM t WHERE p = ?", std::slice::from_ref(&s)),
            None
        );
        assert_eq!(limit_inlined(sql, &[v(5), s.clone()]), None);
        assert_eq!(limit_inlined(sql, &[]), None);
    }
}
