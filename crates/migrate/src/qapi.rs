//! Typed wrappers of the QMP commands migration uses (QEMU 7.2 names and fields).

use std::time::Duration;

use novacron_qemu::{QemuError, Qmp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::MigrateError;

/// Oldest QEMU supported.
pub const MIN_QEMU: (u64, u64, u64) = (7, 2, 0);

/// `query-migrate` answer (the fields migration uses).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", default)]
pub struct MigrateInfo {
    /// none, setup, active, pre-switchover, device, completed, failed, cancelling, cancelled, ...
    pub status: Option<String>,
    pub total_time: Option<u64>,
    /// Milliseconds the VM was stopped (after completion), QEMU's own figure.
    pub downtime: Option<u64>,
    pub expected_downtime: Option<u64>,
    pub setup_time: Option<u64>,
    pub ram: Option<RamInfo>,
    pub cpu_throttle_percentage: Option<u64>,
    pub error_desc: Option<String>,
}

/// `query-migrate` → `ram`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", default)]
pub struct RamInfo {
    pub transferred: u64,
    pub remaining: u64,
    pub total: u64,
    pub duplicate: u64,
    pub normal: u64,
    pub normal_bytes: u64,
    pub dirty_pages_rate: u64,
    pub mbps: f64,
    pub dirty_sync_count: u64,
    pub page_size: u64,
}

impl MigrateInfo {
    /// The status, "none" when absent.
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("none")
    }

    /// True while a migration is in progress (not ended, not started).
    pub fn is_active(&self) -> bool {
        !matches!(self.status(), "none" | "completed" | "failed" | "cancelled")
    }
}

fn q(side: &'static str, during: &str) -> impl FnOnce(QemuError) -> MigrateError {
    let during = during.to_string();
    move |e| MigrateError::qemu(side, during, e)
}

/// `query-migrate`.
pub async fn query_migrate(qmp: &Qmp, side: &'static str) -> Result<MigrateInfo, MigrateError> {
    let v = qmp
        .execute("query-migrate", None)
        .await
        .map_err(q(side, "query-migrate"))?;
    serde_json::from_value(v.clone()).map_err(|e| {
        MigrateError::qemu(
            side,
            "query-migrate",
            QemuError::QmpProtocol(format!("unexpected answer ({e}): {v}")),
        )
    })
}

/// `migrate-set-capabilities` with the given (name, state) pairs.
pub async fn set_capabilities(
    qmp: &Qmp,
    side: &'static str,
    caps: &[(&str, bool)],
) -> Result<(), MigrateError> {
    let list: Vec<Value> = caps
        .iter()
        .map(|(c, s)| json!({"capability": c, "state": s}))
        .collect();
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({ "capabilities": list })),
    )
    .await
    .map(drop)
    .map_err(q(side, "migrate-set-capabilities"))
}

/// `migrate-set-parameters` with a JSON object of parameters.
pub async fn set_parameters(
    qmp: &Qmp,
    side: &'static str,
    params: Value,
) -> Result<(), MigrateError> {
    qmp.execute("migrate-set-parameters", Some(params))
        .await
        .map(drop)
        .map_err(q(side, "migrate-set-parameters"))
}

/// Guest RAM size (`query-memory-size-summary` → base-memory).
pub async fn memory_bytes(qmp: &Qmp, side: &'static str) -> Result<u64, MigrateError> {
    let v = qmp
        .execute("query-memory-size-summary", None)
        .await
        .map_err(q(side, "query-memory-size-summary"))?;
    v.get("base-memory").and_then(Value::as_u64).ok_or_else(|| {
        MigrateError::qemu(
            side,
            "query-memory-size-summary",
            QemuError::QmpProtocol(format!("no base-memory in {v}")),
        )
    })
}

/// Refuses QEMU older than [`MIN_QEMU`].
pub fn check_version(qmp: &Qmp, side: &'static str) -> Result<(u64, u64, u64), MigrateError> {
    let v = qmp
        .qemu_version()
        .ok_or_else(|| MigrateError::Refused(format!("{side} QEMU did not report its version")))?;
    if v < MIN_QEMU {
        return Err(MigrateError::Refused(format!(
            "{side} QEMU is {}.{}.{}; live migration needs QEMU 7.2 or newer",
            v.0, v.1, v.2
        )));
    }
    Ok(v)
}

/// One entry of `query-block-jobs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlockJob {
    pub device: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub len: u64,
    pub offset: u64,
    pub ready: bool,
    pub status: String,
    pub error: Option<String>,
}

/// `query-block-jobs`.
pub async fn block_jobs(qmp: &Qmp, side: &'static str) -> Result<Vec<BlockJob>, MigrateError> {
    let v = qmp
        .execute("query-block-jobs", None)
        .await
        .map_err(q(side, "query-block-jobs"))?;
    serde_json::from_value(v.clone()).map_err(|e| {
        MigrateError::qemu(
            side,
            "query-block-jobs",
            QemuError::QmpProtocol(format!("unexpected answer ({e}): {v}")),
        )
    })
}

/// Node names of the block graph (`query-named-block-nodes`, flat).
pub async fn block_node_names(qmp: &Qmp, side: &'static str) -> Result<Vec<String>, MigrateError> {
    let v = qmp
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await
        .map_err(q(side, "query-named-block-nodes"))?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.get("node-name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until `query-migrate` reports a status satisfying `done`, polling every `every`.
pub async fn wait_status(
    qmp: &Qmp,
    side: &'static str,
    every: Duration,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<MigrateInfo, MigrateError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let info = query_migrate(qmp, side).await?;
        if done(info.status()) {
            return Ok(info);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MigrateError::qemu(
                side,
                "waiting for the migration status",
                QemuError::QmpTimeout {
                    command: format!("query-migrate (status stayed {})", info.status()),
                    timeout_ms: timeout.as_millis() as u64,
                },
            ));
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs a command, mapping errors with the command name.
pub async fn exec(
    qmp: &Qmp,
    side: &'static str,
    command: &str,
    args: Value,
) -> Result<Value, MigrateError> {
    qmp.execute(command, Some(args))
        .await
        .map_err(q(side, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_migrate_of_7_2() {
        let v: Value = serde_json::from_str(r#"{"status": "completed", "setup-time": 0, "downtime": 24, "total-time": 543, "ram": {"total": 268967936, "postcopy-requests": 0, "dirty-sync-count": 3, "multifd-bytes": 0, "pages-per-second": 32730, "downtime-bytes": 29404191, "page-size": 4096, "remaining": 0, "postcopy-bytes": 0, "mbps": 1423.18, "transferred": 96520703, "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 67116512, "duplicate": 42252, "dirty-pages-rate": 0, "skipped": 0, "normal-bytes": 95952896, "normal": 23426}}"#).unwrap();
        let i: MigrateInfo = serde_json::from_value(v).unwrap();
        assert_eq!(i.status(), "completed");
        assert_eq!(i.downtime, Some(24));
        let r = i.ram.unwrap();
        assert_eq!(r.dirty_sync_count, 3);
        assert_eq!(r.normal, 23426);
        assert!(!MigrateInfo::default().is_active());
    }
}
