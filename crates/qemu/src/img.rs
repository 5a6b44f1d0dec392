//! Disk images through qemu-img: inspect (JSON output), vet images offered for import, create overlays and blank disks.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::QemuError;

/// Environment variable naming the qemu-img binary to run instead of `qemu-img` from PATH.
pub const QEMU_IMG_ENV: &str = "NOVACRON_QEMU_IMG";

/// On-disk format of a VM disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl DiskFormat {
    /// qemu-img's name of the format.
    pub fn as_str(&self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

impl std::fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DiskFormat {
    type Err = QemuError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qcow2" => Ok(DiskFormat::Qcow2),
            "raw" => Ok(DiskFormat::Raw),
            other => Err(QemuError::InvalidSpec(format!(
                "unknown disk format {other:?}: use qcow2 or raw"
            ))),
        }
    }
}

/// What qemu-img reports about an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: DiskFormat,
    pub virtual_size_bytes: u64,
    pub actual_size_bytes: u64,
    pub backing_file: Option<PathBuf>,
}

/// The fields of `qemu-img info --output=json` we use.
#[derive(Debug, Deserialize)]
struct InfoJson {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    actual_size: u64,
    #[serde(rename = "full-backing-filename", default)]
    full_backing_filename: Option<String>,
    #[serde(rename = "backing-filename", default)]
    backing_filename: Option<String>,
}

/// The fields of `qemu-img check --output=json` we use.
#[derive(Debug, Deserialize, Default)]
struct CheckJson {
    #[serde(rename = "check-errors", default)]
    check_errors: u64,
    #[serde(default)]
    corruptions: u64,
    #[serde(default)]
    leaks: u64,
}

/// Parses `qemu-img info --output=json`.
pub fn parse_info_json(json: &str) -> Result<ImageInfo, QemuError> {
    let info: InfoJson = serde_json::from_str(json).map_err(|e| QemuError::QemuImg {
        operation: "info".into(),
        stderr: format!("unexpected JSON ({e})"),
    })?;
    let format = match info.format.as_str() {
        "qcow2" => DiskFormat::Qcow2,
        "raw" => DiskFormat::Raw,
        other => {
            return Err(QemuError::QemuImg {
                operation: "info".into(),
                stderr: format!(
                    "format {other} is not supported: convert it with `qemu-img convert -O qcow2`"
                ),
            });
        }
    };
    Ok(ImageInfo {
        format,
        virtual_size_bytes: info.virtual_size,
        actual_size_bytes: info.actual_size,
        backing_file: info
            .full_backing_filename
            .or(info.backing_filename)
            .map(PathBuf::from),
    })
}

fn qemu_img_binary() -> String {
    std::env::var(QEMU_IMG_ENV).unwrap_or_else(|_| "qemu-img".to_string())
}

/// Runs qemu-img; returns (exit code, stdout, stderr).
async fn run_qemu_img(operation: &str, args: &[&str]) -> Result<(i32, String, String), QemuError> {
    let binary = qemu_img_binary();
    let mut command = tokio::process::Command::new(&binary);
    command.args(args).stdin(std::process::Stdio::null());
    crate::process::inherit_only_stdio(command.as_std_mut(), &[]);
    let output = command.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            QemuError::QemuImgNotFound {
                binary: binary.clone(),
            }
        } else {
            QemuError::io(format!("running {binary} {operation}"), e)
        }
    })?;
    tracing::debug!(operation, args = ?args, status = ?output.status.code(), "qemu-img");
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    ))
}

fn path_str<'a>(path: &'a Path, what: &str) -> Result<&'a str, QemuError> {
    path.to_str().ok_or_else(|| {
        QemuError::InvalidSpec(format!("{what} path {} is not UTF-8", path.display()))
    })
}

/// Format by magic: qcow2 starts with "QFI\xfb"; anything else is treated as raw. Never lets qemu-img guess.
fn sniff_format(head: &[u8]) -> DiskFormat {
    if head.starts_with(b"QFI\xfb") {
        DiskFormat::Qcow2
    } else {
        DiskFormat::Raw
    }
}

/// Inspects an image whose format is read from its magic (qcow2 or raw). For trusted files (our own disks);
/// use [`inspect_for_import`] for anything from outside. Works on images in use by a running QEMU (`--force-share`).
pub async fn inspect(path: &Path) -> Result<ImageInfo, QemuError> {
    let head = read_head(path, 4).await?;
    inspect_as(path, sniff_format(&head)).await
}

/// Inspects an image of a known format.
pub async fn inspect_as(path: &Path, format: DiskFormat) -> Result<ImageInfo, QemuError> {
    let p = path_str(path, "image")?;
    let (code, stdout, stderr) = run_qemu_img(
        "info",
        &[
            "info",
            "--force-share",
            "--output=json",
            "-f",
            format.as_str(),
            p,
        ],
    )
    .await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: "info".into(),
            stderr,
        });
    }
    parse_info_json(&stdout)
}

async fn read_head(path: &Path, len: usize) -> Result<Vec<u8>, QemuError> {
    let path_owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, QemuError> {
        let file = std::fs::File::open(&path_owned)
            .map_err(|e| QemuError::io(format!("opening image {}", path_owned.display()), e))?;
        let mut head = Vec::with_capacity(len);
        file.take(len as u64)
            .read_to_end(&mut head)
            .map_err(|e| QemuError::io(format!("reading image {}", path_owned.display()), e))?;
        Ok(head)
    })
    .await
    .map_err(|e| QemuError::io("image reader task", std::io::Error::other(e.to_string())))?
}

/// Bytes read from the start of a raw candidate: enough for every signature below (btrfs is at 64 KiB + 64).
const SIGNATURE_SPAN: usize = 0x10048;

/// Why a raw file looks like a disk, or `None`. `head` is the file's first [`SIGNATURE_SPAN`] bytes (or all of it).
pub fn raw_disk_signature(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(512, b"EFI PART") {
        return Some("GPT partition table");
    }
    if at(0x8001, b"CD001") {
        return Some("ISO 9660 filesystem");
    }
    if at(0, b"XFSB") {
        return Some("XFS filesystem");
    }
    if at(1024 + 56, &[0x53, 0xEF]) {
        return Some("ext2/3/4 filesystem");
    }
    if at(0x10040, b"_BHRfS_M") {
        return Some("btrfs filesystem");
    }
    if at(0, b"hsqs") {
        return Some("squashfs filesystem");
    }
    if at(512, b"LABELONE") {
        return Some("LVM physical volume");
    }
    if at(510, &[0x55, 0xAA]) {
        return Some("MBR boot sector");
    }
    None
}

/// Other image formats, so the error can say what the file is.
fn foreign_format(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        Some("VMDK")
    } else if at(0, b"vhdxfile") {
        Some("VHDX")
    } else if at(0, b"conectix") {
        Some("VHD")
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        Some("VDI")
    } else if at(0, b"QED\0") {
        Some("QED")
    } else if at(0, b"QFI") {
        Some("qcow version 1")
    } else {
        None
    }
}

/// Vets a file offered for import: qcow2 that passes `qemu-img check` without a backing file, or a raw file that
/// looks like a disk (partition table or a known filesystem). Anything else is refused with the reason.
pub async fn inspect_for_import(path: &Path) -> Result<ImageInfo, QemuError> {
    let invalid = |reason: String| QemuError::InvalidImage {
        path: path.to_path_buf(),
        reason,
    };
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| QemuError::io(format!("reading image {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(invalid("file is empty".into()));
    }
    let head = read_head(path, SIGNATURE_SPAN).await?;
    let p = path_str(path, "image")?;
    match sniff_format(&head) {
        DiskFormat::Qcow2 => {
            let (code, stdout, stderr) =
                run_qemu_img("info", &["info", "--output=json", "-f", "qcow2", p]).await?;
            if code != 0 {
                return Err(invalid(format!(
                    "qcow2 header is unreadable (truncated or corrupt?): {stderr}"
                )));
            }
            let info = parse_info_json(&stdout)?;
            if let Some(backing) = &info.backing_file {
                return Err(invalid(format!(
                    "it has a backing file ({}): flatten it first with `qemu-img convert -O qcow2`",
                    backing.display()
                )));
            }
            let (code, stdout, stderr) =
                run_qemu_img("check", &["check", "--output=json", "-f", "qcow2", p]).await?;
            let check: CheckJson = serde_json::from_str(&stdout).unwrap_or_default();
            // Exit codes: 0 clean, 3 leaked clusters only (harmless), 2 corrupt, 1 check could not complete.
            if code != 0 && code != 3 || check.corruptions > 0 || check.check_errors > 0 {
                let detail = if stderr.is_empty() {
                    format!(
                        "{} corruptions, {} check errors",
                        check.corruptions, check.check_errors
                    )
                } else {
                    stderr
                };
                return Err(invalid(format!(
                    "qcow2 fails `qemu-img check` (corrupt or truncated): {detail}"
                )));
            }
            if check.leaks > 0 {
                tracing::info!(path = %path.display(), leaks = check.leaks, "qcow2 has leaked clusters (harmless)");
            }
            Ok(info)
        }
        DiskFormat::Raw => {
            if let Some(other) = foreign_format(&head) {
                return Err(invalid(format!(
                    "it is a {other} image: convert it with `qemu-img convert -O qcow2` first"
                )));
            }
            let Some(kind) = raw_disk_signature(&head) else {
                return Err(invalid(
                    "neither qcow2 nor a raw disk: no partition table (MBR/GPT) or known filesystem signature \
                     (ext*, xfs, btrfs, iso9660, squashfs, LVM)"
                        .into(),
                ));
            };
            if !meta.len().is_multiple_of(512) {
                return Err(invalid(format!(
                    "looks like a {kind} but its size {} bytes is not a multiple of 512 (truncated?)",
                    meta.len()
                )));
            }
            tracing::debug!(path = %path.display(), kind, "raw image accepted");
            inspect_as(path, DiskFormat::Raw).await
        }
    }
}

/// Creates a qcow2 copy-on-write overlay over `base` (stored by absolute path), optionally larger than the base.
pub async fn create_overlay(
    base: &Path,
    base_format: DiskFormat,
    overlay: &Path,
    size_bytes: Option<u64>,
) -> Result<(), QemuError> {
    let base_abs = tokio::fs::canonicalize(base)
        .await
        .map_err(|e| QemuError::io(format!("base image {}", base.display()), e))?;
    if tokio::fs::try_exists(overlay).await.unwrap_or(false) {
        return Err(QemuError::InvalidSpec(format!(
            "overlay {} already exists",
            overlay.display()
        )));
    }
    let base_s = path_str(&base_abs, "base image")?;
    let overlay_s = path_str(overlay, "overlay")?;
    let size = size_bytes.map(|s| s.to_string());
    let mut args = vec![
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        base_format.as_str(),
        "-b",
        base_s,
        overlay_s,
    ];
    if let Some(size) = &size {
        args.push(size);
    }
    let (code, _, stderr) = run_qemu_img("create", &args).await?;
    if code != 0 {
        let _ = tokio::fs::remove_file(overlay).await;
        return Err(QemuError::QemuImg {
            operation: "create (overlay)".into(),
            stderr,
        });
    }
    Ok(())
}

/// Creates an empty disk of `size_bytes`.
pub async fn create_blank(
    path: &Path,
    format: DiskFormat,
    size_bytes: u64,
) -> Result<(), QemuError> {
    if size_bytes == 0 {
        return Err(QemuError::InvalidSpec(
            "a blank disk needs a size above 0 bytes".into(),
        ));
    }
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Err(QemuError::InvalidSpec(format!(
            "disk {} already exists",
            path.display()
        )));
    }
    let p = path_str(path, "disk")?;
    let size = size_bytes.to_string();
    let (code, _, stderr) =
        run_qemu_img("create", &["create", "-q", "-f", format.as_str(), p, &size]).await?;
    if code != 0 {
        let _ = tokio::fs::remove_file(path).await;
        return Err(QemuError::QemuImg {
            operation: "create".into(),
            stderr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qcow2_info_with_backing() {
        let json = r#"{
            "children": [], "backing-filename-format": "raw", "virtual-size": 1073741824,
            "filename": "/tmp/o.qcow2", "cluster-size": 65536, "format": "qcow2", "actual-size": 200704,
            "full-backing-filename": "/tmp/base.raw", "backing-filename": "base.raw",
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}, "dirty-flag": false
        }"#;
        let info = parse_info_json(json).unwrap();
        assert_eq!(info.format, DiskFormat::Qcow2);
        assert_eq!(info.virtual_size_bytes, 1 << 30);
        assert_eq!(info.actual_size_bytes, 200704);
        assert_eq!(info.backing_file, Some(PathBuf::from("/tmp/base.raw")));
    }

    #[test]
    fn parses_raw_info_and_rejects_others() {
        let raw = r#"{"virtual-size": 1048576, "filename": "d.raw", "format": "raw", "actual-size": 4096, "dirty-flag": false}"#;
        let info = parse_info_json(raw).unwrap();
        assert_eq!(info.format, DiskFormat::Raw);
        assert_eq!(info.backing_file, None);
        let vmdk = r#"{"virtual-size": 1, "format": "vmdk", "actual-size": 1}"#;
        assert!(
            parse_info_json(vmdk)
                .unwrap_err()
                .to_string()
                .contains("vmdk")
        );
        assert!(parse_info_json("not json").is_err());
        assert!(parse_info_json(r#"{"format": "raw"}"#).is_err());
    }

    #[test]
    fn signatures() {
        let mut mbr = vec![0u8; 1024];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert_eq!(raw_disk_signature(&mbr), Some("MBR boot sector"));
        let mut ext = vec![0u8; 2048];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert_eq!(raw_disk_signature(&ext), Some("ext2/3/4 filesystem"));
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(raw_disk_signature(&iso), Some("ISO 9660 filesystem"));
        assert_eq!(raw_disk_signature(b"hello world\n"), None);
        assert_eq!(raw_disk_signature(&[]), None);
        assert_eq!(foreign_format(b"KDMV...."), Some("VMDK"));
        assert_eq!(sniff_format(b"QFI\xfb\0\0\0\x03"), DiskFormat::Qcow2);
        assert_eq!(sniff_format(b"QF"), DiskFormat::Raw);
    }
}
