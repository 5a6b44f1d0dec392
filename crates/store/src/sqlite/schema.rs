//! The on-disk layout of the embedded store (tables, pragmas, metadata rows) and the
//! conversions between SQLite rows and store types.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::{KeyValue, LeaseId, Revision, StoreError, WatchEvent};

/// Bumped when the layout changes; a database with another version is refused.
pub(super) const SCHEMA_VERSION: i64 = 1;

pub(super) const META_SCHEMA_VERSION: &str = "schema_version";
pub(super) const META_REVISION: &str = "revision";
/// The oldest revision whose events the log still holds (history before it is compacted).
pub(super) const META_COMPACTED_BEFORE: &str = "compacted_before";
pub(super) const META_NEXT_LEASE_ID: &str = "next_lease_id";

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Current state: one row per live key. Keys are UTF-8 bytes stored as BLOB so that
-- ordering and prefix ranges are plain byte comparisons, as in etcd.
CREATE TABLE IF NOT EXISTS kv (
    key        BLOB PRIMARY KEY,
    value      BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    lease      INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv(lease) WHERE lease IS NOT NULL;
-- Revision log: every change, in order, for watch replay. value NULL = delete.
CREATE TABLE IF NOT EXISTS log (
    rev        INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    key        BLOB NOT NULL,
    value      BLOB,
    create_rev INTEGER NOT NULL,
    lease      INTEGER,
    PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
-- Leases survive restarts; their deadlines do not (every lease gets a full TTL on open).
CREATE TABLE IF NOT EXISTS leases (
    id     INTEGER PRIMARY KEY,
    ttl_ms INTEGER NOT NULL
);
";

pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn apply_common_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    Ok(())
}

/// Open the writer connection: WAL, `synchronous=FULL` (a commit is on disk when it
/// returns), schema created or checked.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    apply_common_pragmas(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot switch to WAL mode (got {mode}); is the file system local?",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    let setup = (|| -> Result<(), StoreError> {
        conn.execute_batch(CREATE_TABLES).map_err(db_err)?;
        let version = read_meta(&conn, META_SCHEMA_VERSION)?;
        match version {
            None => {
                for (name, value) in [
                    (META_SCHEMA_VERSION, SCHEMA_VERSION),
                    (META_REVISION, 0),
                    (META_COMPACTED_BEFORE, 1),
                    (META_NEXT_LEASE_ID, 1),
                ] {
                    conn.execute(
                        "INSERT INTO meta(name, value) VALUES (?1, ?2)",
                        params![name, value],
                    )
                    .map_err(db_err)?;
                }
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: schema version {other}, this build understands {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(())
    })();
    match setup {
        Ok(()) => conn.execute_batch("COMMIT").map_err(db_err)?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(conn)
}

/// Open a reader connection (never writes; WAL lets it read while the writer commits).
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    apply_common_pragmas(&conn)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(db_err)?;
    Ok(conn)
}

pub(super) fn read_meta(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |row| row.get(0)).optional())
        .map_err(db_err)
}

pub(super) fn require_meta(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    read_meta(conn, name)?
        .ok_or_else(|| StoreError::Corrupt(format!("metadata row {name:?} is missing")))
}

pub(super) fn write_meta(conn: &Connection, name: &str, value: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")
        .and_then(|mut stmt| stmt.execute(params![name, value]))
        .map_err(db_err)?;
    Ok(())
}

pub(super) fn key_from_bytes(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "key is not UTF-8: {:?}",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })
}

fn lease_from(raw: Option<i64>) -> Option<LeaseId> {
    raw.map(LeaseId)
}

/// Columns: key, value, create_rev, mod_rev, lease.
pub(super) fn kv_from_row(row: &Row<'_>) -> rusqlite::Result<(Vec<u8>, KeyValueParts)> {
    Ok((
        row.get(0)?,
        KeyValueParts {
            value: row.get(1)?,
            create_revision: row.get(2)?,
            mod_revision: row.get(3)?,
            lease: row.get(4)?,
        },
    ))
}

/// A `kv` row before its key is checked to be UTF-8.
pub(super) struct KeyValueParts {
    value: Vec<u8>,
    create_revision: Revision,
    mod_revision: Revision,
    lease: Option<i64>,
}

impl KeyValueParts {
    pub(super) fn into_kv(self, key: Vec<u8>) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: key_from_bytes(key)?,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            lease: lease_from(self.lease),
        })
    }
}

/// A `log` row before its key is checked. Columns: rev, key, value, create_rev, lease.
pub(super) struct LogRow {
    rev: Revision,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    create_rev: Revision,
    lease: Option<i64>,
}

impl LogRow {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<LogRow> {
        Ok(LogRow {
            rev: row.get(0)?,
            key: row.get(1)?,
            value: row.get(2)?,
            create_rev: row.get(3)?,
            lease: row.get(4)?,
        })
    }

    pub(super) fn into_event(self) -> Result<WatchEvent, StoreError> {
        let key = key_from_bytes(self.key)?;
        Ok(match self.value {
            Some(value) => WatchEvent::Put(KeyValue {
                key,
                value,
                create_revision: self.create_rev,
                mod_revision: self.rev,
                lease: lease_from(self.lease),
            }),
            None => WatchEvent::Delete {
                key,
                revision: self.rev,
            },
        })
    }
}
