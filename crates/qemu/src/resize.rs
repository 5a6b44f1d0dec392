//! Growing a VM's disk: QMP `block_resize` on its format node while QEMU runs (the guest's
//! virtio-blk device sees the new capacity at once), `qemu-img resize` while it is stopped.
//! Only growth: a smaller size is refused before anything touches the disk, because a
//! shrink cuts off whatever the guest keeps at the end of its disk.

use std::path::Path;

use serde_json::json;

use crate::img::{DiskFormat, inspect_as, path_str, run_qemu_img};
use crate::{QemuError, Qmp};

/// Why a resize is not done, before anything is touched.
fn not_growth(disk: &Path, current: u64, size_bytes: u64) -> Option<QemuError> {
    (size_bytes < current).then(|| {
        QemuError::InvalidSpec(format!(
            "disk {} is {current} bytes; shrinking it to {size_bytes} bytes is not supported",
            disk.display()
        ))
    })
}

/// Grows `disk` (no QEMU has it open) to `size_bytes`.
pub async fn grow_offline(
    disk: &Path,
    format: DiskFormat,
    size_bytes: u64,
) -> Result<(), QemuError> {
    let current = inspect_as(disk, format).await?.virtual_size_bytes;
    if let Some(e) = not_growth(disk, current, size_bytes) {
        return Err(e);
    }
    if current == size_bytes {
        return Ok(());
    }
    let d = path_str(disk, "disk")?;
    let size = size_bytes.to_string();
    let (code, _, stderr) =
        run_qemu_img("resize", &["resize", "-q", "-f", format.as_str(), d, &size]).await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: "resize".into(),
            stderr,
        });
    }
    Ok(())
}

/// Grows block node `node` of a running VM to `size_bytes`; `current` is its size now (a
/// smaller `size_bytes` is refused here, QEMU would shrink).
pub async fn grow_live(
    qmp: &Qmp,
    disk: &Path,
    node: &str,
    current: u64,
    size_bytes: u64,
) -> Result<(), QemuError> {
    if let Some(e) = not_growth(disk, current, size_bytes) {
        return Err(e);
    }
    if current == size_bytes {
        return Ok(());
    }
    qmp.execute(
        "block_resize",
        Some(json!({"node-name": node, "size": size_bytes})),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growth_passes() {
        let p = Path::new("/d.qcow2");
        assert!(not_growth(p, 1 << 30, 2 << 30).is_none());
        assert!(not_growth(p, 1 << 30, 1 << 30).is_none());
        let e = not_growth(p, 2 << 30, 1 << 30).unwrap().to_string();
        assert!(e.contains("shrinking"), "{e}");
    }
}
