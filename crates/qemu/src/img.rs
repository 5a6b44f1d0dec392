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
    #[serde(default)]
    filename: String,
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

pub(crate) fn qemu_img_binary() -> String {
    std::env::var(QEMU_IMG_ENV).unwrap_or_else(|_| "qemu-img".to_string())
}

/// Runs qemu-img; returns (exit code, stdout, stderr).
pub(crate) async fn run_qemu_img(
    operation: &str,
    args: &[&str],
) -> Result<(i32, String, String), QemuError> {
    run_qemu_img_keeping(operation, args, &[]).await
}

/// [`run_qemu_img`] with the descriptors `keep` left open in qemu-img (under the same numbers).
pub(crate) async fn run_qemu_img_keeping(
    operation: &str,
    args: &[&str],
    keep: &[std::os::fd::RawFd],
) -> Result<(i32, String, String), QemuError> {
    let binary = qemu_img_binary();
    let mut command = tokio::process::Command::new(&binary);
    command.args(args).stdin(std::process::Stdio::null());
    crate::process::inherit_only_stdio(command.as_std_mut(), keep);
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

pub(crate) fn path_str<'a>(path: &'a Path, what: &str) -> Result<&'a str, QemuError> {
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

/// Inspects an image of a known format.
pub async fn inspect_as(path: &Path, format: DiskFormat) -> Result<ImageInfo, QemuError> {
    parse_info_json(&info_json(path, format, &[]).await?)
}

/// The files under the image at `path` (of `format`), nearest first, as their headers name
/// them: `qemu-img info --backing-chain`. Empty for a standalone image.
pub async fn backing_chain(
    path: &Path,
    format: DiskFormat,
) -> Result<Vec<crate::spec::BackingFile>, QemuError> {
    // Absolute, so that qemu-img names every file under it absolutely.
    let path = std::path::absolute(path)
        .map_err(|e| QemuError::io(format!("resolving {}", path.display()), e))?;
    parse_backing_chain(&info_json(&path, format, &["--backing-chain"]).await?)
}

/// `qemu-img info --output=json` of an image of a known format (never probed), with `extra`
/// options; its JSON.
async fn info_json(path: &Path, format: DiskFormat, extra: &[&str]) -> Result<String, QemuError> {
    let p = path_str(path, "image")?;
    let mut args = vec!["info", "--force-share", "--output=json"];
    args.extend_from_slice(extra);
    args.extend(["-f", format.as_str(), p]);
    let (code, stdout, stderr) = run_qemu_img("info", &args).await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: "info".into(),
            stderr,
        });
    }
    Ok(stdout)
}

/// Parses `qemu-img info --backing-chain --output=json` (the image itself first, which is
/// left out).
pub fn parse_backing_chain(json: &str) -> Result<Vec<crate::spec::BackingFile>, QemuError> {
    let bad = |why: String| QemuError::QemuImg {
        operation: "info".into(),
        stderr: why,
    };
    let chain: Vec<InfoJson> =
        serde_json::from_str(json).map_err(|e| bad(format!("unexpected JSON ({e})")))?;
    chain
        .into_iter()
        .skip(1)
        .map(|i| {
            // qemu-img names each file as the chain reached it: absolute under an absolute
            // top. Anything else (a relative name, a `json:` pseudo-name) is not opened.
            if !Path::new(&i.filename).is_absolute() {
                return Err(bad(format!(
                    "backing file {:?} is not an absolute path",
                    i.filename
                )));
            }
            Ok(crate::spec::BackingFile {
                format: i.format.parse::<DiskFormat>().map_err(|_| {
                    bad(format!(
                        "backing file {} has format {}: only qcow2 and raw are opened",
                        i.filename, i.format
                    ))
                })?,
                path: PathBuf::from(i.filename),
            })
        })
        .collect()
}

pub(crate) async fn read_head(path: &Path, len: usize) -> Result<Vec<u8>, QemuError> {
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
pub(crate) const SIGNATURE_SPAN: usize = 0x10048;

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

/// Vets a file offered for import: a self-contained qcow2 (see [`check_self_contained`]) that passes
/// `qemu-img check`, or a raw file that looks like a disk (partition table or a known filesystem). Anything else is
/// refused with the reason and what to do. The format is read from the file's magic by us and always passed to
/// qemu-img explicitly: qemu never probes.
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
            let info = check_self_contained(path, DiskFormat::Qcow2).await?;
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
            check_self_contained(path, DiskFormat::Raw).await
        }
    }
}

/// How to turn an image that refers to other files into one that does not.
const MAKE_SELF_CONTAINED: &str = "make a self-contained copy with \
    `qemu-img convert -O qcow2 IN OUT` on the machine the image came from, and import the copy";

/// Refuses an image of `format` that makes QEMU open anything but the image file itself: a qcow2 backing file, an
/// external data file (a guest would read and write that host file as its disk), encryption (we hold no key), or
/// header features we do not know. Every place an image file enters a NovaCron host calls this (server import and
/// replica copies, the agent's image cache) before anything else opens the file.
///
/// The qcow2 header is read by us first, so qemu-img never opens a file the header names; then
/// `qemu-img info --output=json -f <format>` is read for the same references (its JSON differs between QEMU 7.2
/// and 10.x; both are handled), so a reference we fail to see in the header is still caught.
pub async fn check_self_contained(path: &Path, format: DiskFormat) -> Result<ImageInfo, QemuError> {
    let invalid = |reason: String| QemuError::InvalidImage {
        path: path.to_path_buf(),
        reason,
    };
    if format == DiskFormat::Qcow2 {
        // Header extensions live in the first cluster, which is at most 2 MiB.
        let head = read_head(path, QCOW2_MAX_CLUSTER_BYTES).await?;
        if let Some(reason) = qcow2_header_problem(&head) {
            return Err(invalid(reason));
        }
    }
    let p = path_str(path, "image")?;
    let (code, stdout, stderr) =
        run_qemu_img("info", &["info", "--output=json", "-f", format.as_str(), p]).await?;
    if code != 0 {
        return Err(invalid(format!(
            "{format} header is unreadable (truncated or corrupt?): {stderr}"
        )));
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| QemuError::QemuImg {
            operation: "info".into(),
            stderr: format!("unexpected JSON ({e})"),
        })?;
    if let Some(reason) = info_json_external_reference(&json) {
        return Err(invalid(reason));
    }
    let info = parse_info_json(&stdout)?;
    if info.format != format {
        return Err(invalid(format!(
            "qemu-img reads it as {} where {format} was expected",
            info.format
        )));
    }
    Ok(info)
}

/// Largest qcow2 cluster (cluster_bits 21): the header and all its extensions fit in the first cluster.
const QCOW2_MAX_CLUSTER_BYTES: usize = 2 << 20;

/// qcow2 header extension holding the external data file's name.
const QCOW2_EXT_DATA_FILE: u32 = 0x4441_5441;
/// Incompatible feature bits we know: dirty, corrupt, external data file, compression type, extended L2.
const QCOW2_INCOMPAT_KNOWN: u64 = 0b1_1111;
const QCOW2_INCOMPAT_DATA_FILE: u64 = 1 << 2;

/// Why a qcow2 header refers to something outside the file (or cannot be trusted), or `None`.
///
/// Fields (big-endian, docs/interop/qcow2.txt of QEMU): version at 4, backing_file_offset at 8 and
/// backing_file_size at 16, cluster_bits at 20, crypt_method at 32; version 3 adds incompatible_features at 72 and
/// header_length at 100. Header extensions (type u32, length u32, data padded to 8 bytes; type 0 ends them) follow
/// the header, inside the first cluster.
pub fn qcow2_header_problem(head: &[u8]) -> Option<String> {
    let be32 = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let be64 = |at: usize| {
        head.get(at..at + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        })
    };
    let truncated = || Some("qcow2 header is truncated".to_string());
    if !head.starts_with(b"QFI\xfb") {
        return Some("no qcow2 magic at the start of the file".into());
    }
    let Some(version) = be32(4) else {
        return truncated();
    };
    if version != 2 && version != 3 {
        return Some(format!(
            "qcow2 version {version} is not supported (2 or 3): convert it with `qemu-img convert -O qcow2`"
        ));
    }
    let (Some(backing_offset), Some(backing_len), Some(crypt)) = (be64(8), be32(16), be32(32))
    else {
        return truncated();
    };
    if backing_offset != 0 {
        let name = usize::try_from(backing_offset)
            .ok()
            .and_then(|at| head.get(at..at.saturating_add(backing_len.min(1023) as usize)))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "name unreadable".into());
        return Some(format!(
            "it has a backing file ({name}): flatten it first with `qemu-img convert -O qcow2 IN OUT`"
        ));
    }
    if crypt != 0 {
        return Some(format!(
            "it is encrypted (qcow2 crypt method {crypt}) and NovaCron holds no key for it: \
             import a decrypted copy (`qemu-img convert --object secret,... -O qcow2`)"
        ));
    }
    let mut ext_at = 72usize;
    let mut incompat = 0u64;
    if version == 3 {
        let (Some(bits), Some(header_len)) = (be64(72), be32(100)) else {
            return truncated();
        };
        incompat = bits;
        ext_at = header_len as usize;
    }
    // Header extensions: refuse a data-file name even when the feature bit is clear.
    while let (Some(kind), Some(len)) = (be32(ext_at), be32(ext_at + 4)) {
        if kind == 0 {
            break;
        }
        let len = len as usize;
        if kind == QCOW2_EXT_DATA_FILE {
            let name = head
                .get(ext_at + 8..(ext_at + 8).saturating_add(len))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_else(|| "name unreadable".into());
            return Some(format!(
                "its qcow2 header names an external data file ({name}), so a guest would read and write that \
                 host file as its disk; {MAKE_SELF_CONTAINED}"
            ));
        }
        ext_at = ext_at.saturating_add(8).saturating_add(len.div_ceil(8) * 8);
    }
    // After the extensions, so that the error names the data file when the header has its name.
    if incompat & QCOW2_INCOMPAT_DATA_FILE != 0 {
        return Some(format!(
            "its qcow2 header says the data lives in an external data file, so a guest would read and write \
             that host file as its disk; {MAKE_SELF_CONTAINED}"
        ));
    }
    if incompat & !QCOW2_INCOMPAT_KNOWN != 0 {
        return Some(format!(
            "its qcow2 header sets incompatible features {:#x} NovaCron does not know; {MAKE_SELF_CONTAINED}",
            incompat & !QCOW2_INCOMPAT_KNOWN
        ));
    }
    None
}

/// Why `qemu-img info --output=json` shows a reference outside the image, or `None`.
///
/// QEMU 7.2 prints `backing-filename`, `full-backing-filename`, `encrypted` and, for qcow2,
/// `format-specific.data.{data-file, data-file-raw, encrypt}`; QEMU 8.0 and later add `children`, where anything
/// but the image's own `file` child is another file QEMU opened for it.
pub fn info_json_external_reference(info: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    if let Some(b) =
        text(&info["full-backing-filename"]).or_else(|| text(&info["backing-filename"]))
    {
        return Some(format!(
            "it has a backing file ({b}): flatten it first with `qemu-img convert -O qcow2 IN OUT`"
        ));
    }
    let data = &info["format-specific"]["data"];
    if let Some(f) = text(&data["data-file"]) {
        return Some(format!(
            "its qcow2 header names an external data file ({f}), so a guest would read and write that host \
             file as its disk; {MAKE_SELF_CONTAINED}"
        ));
    }
    if data["data-file-raw"].as_bool() == Some(true) {
        return Some(format!(
            "its qcow2 header says the data lives in an external raw data file; {MAKE_SELF_CONTAINED}"
        ));
    }
    if info["encrypted"].as_bool() == Some(true) || !data["encrypt"].is_null() {
        return Some(
            "it is encrypted and NovaCron holds no key for it: import a decrypted copy \
             (`qemu-img convert --object secret,... -O qcow2`)"
                .into(),
        );
    }
    if let Some(children) = info["children"].as_array() {
        for child in children {
            let name = child["name"].as_str().unwrap_or("?");
            if name != "file" {
                let file = child["info"]["filename"].as_str().unwrap_or("?");
                return Some(format!(
                    "QEMU opens another file for it ({name}: {file}); {MAKE_SELF_CONTAINED}"
                ));
            }
        }
    }
    None
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

/// Copies `src` (of `src_format`, with whatever backing chain it has) into a new qcow2 file
/// `dst` that stands alone: no backing file, only the data the guest sees (internal
/// snapshots and dirty bitmaps are not copied). `dst` must not exist; it is removed again on
/// failure.
pub async fn copy_standalone(
    src: &Path,
    src_format: DiskFormat,
    dst: &Path,
) -> Result<(), QemuError> {
    if tokio::fs::try_exists(dst).await.unwrap_or(false) {
        return Err(QemuError::InvalidSpec(format!(
            "disk {} already exists",
            dst.display()
        )));
    }
    let s = path_str(src, "disk")?;
    let d = path_str(dst, "copy")?;
    let (code, _, stderr) = run_qemu_img(
        "convert",
        &[
            "convert",
            "-q",
            "-f",
            src_format.as_str(),
            "-O",
            "qcow2",
            s,
            d,
        ],
    )
    .await?;
    if code != 0 {
        let _ = tokio::fs::remove_file(dst).await;
        return Err(QemuError::QemuImg {
            operation: "convert".into(),
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

    #[test]
    fn info_json_references_from_qemu_7_2_and_10() {
        // QEMU 7.2 (Debian 12): no `children`; the data file is in format-specific data.
        let v72: serde_json::Value = serde_json::from_str(
            r#"{"virtual-size": 1048576, "filename": "x.qcow2", "cluster-size": 65536, "format": "qcow2",
                "actual-size": 200704, "format-specific": {"type": "qcow2", "data": {"compat": "1.1",
                "compression-type": "zlib", "lazy-refcounts": false, "refcount-bits": 16,
                "data-file": "/etc/shadow", "data-file-raw": true, "corrupt": false, "extended-l2": false}},
                "dirty-flag": false}"#,
        )
        .unwrap();
        let why = info_json_external_reference(&v72).unwrap();
        assert!(why.contains("external data file (/etc/shadow)"), "{why}");
        // QEMU 10.x: the same plus `children`; a child other than `file` is another opened file.
        let v10: serde_json::Value = serde_json::from_str(
            r#"{"children": [{"name": "file", "info": {"filename": "x.qcow2", "format": "file"}},
                {"name": "data-file", "info": {"filename": "/dev/sda", "format": "file"}}],
                "virtual-size": 1048576, "filename": "x.qcow2", "format": "qcow2", "actual-size": 1,
                "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}, "dirty-flag": false}"#,
        )
        .unwrap();
        let why = info_json_external_reference(&v10).unwrap();
        assert!(why.contains("data-file: /dev/sda"), "{why}");
        let backed: serde_json::Value =
            serde_json::from_str(r#"{"format": "qcow2", "backing-filename": "json:{}"}"#).unwrap();
        assert!(
            info_json_external_reference(&backed)
                .unwrap()
                .contains("backing file")
        );
        let encrypted: serde_json::Value = serde_json::from_str(
            r#"{"format": "qcow2", "encrypted": true, "format-specific": {"type": "qcow2", "data": {"encrypt": {"format": "luks"}}}}"#,
        )
        .unwrap();
        assert!(
            info_json_external_reference(&encrypted)
                .unwrap()
                .contains("encrypted")
        );
        let clean: serde_json::Value = serde_json::from_str(
            r#"{"children": [{"name": "file", "info": {"filename": "x.qcow2"}}], "format": "qcow2",
                "virtual-size": 1, "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}}"#,
        )
        .unwrap();
        assert_eq!(info_json_external_reference(&clean), None);
    }

    /// A minimal version-3 qcow2 header (104 bytes) followed by `extensions`.
    fn qcow2_v3(incompat: u64, extensions: &[(u32, &[u8])]) -> Vec<u8> {
        let mut h = vec![0u8; 104];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[72..80].copy_from_slice(&incompat.to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        for (kind, data) in extensions {
            h.extend_from_slice(&kind.to_be_bytes());
            h.extend_from_slice(&(data.len() as u32).to_be_bytes());
            h.extend_from_slice(data);
            h.resize(h.len().div_ceil(8) * 8, 0);
        }
        h.extend_from_slice(&[0u8; 8]);
        h
    }

    #[test]
    fn qcow2_header_references() {
        assert_eq!(qcow2_header_problem(&qcow2_v3(0, &[])), None);
        // A known extension (feature name table) before the data-file name is skipped correctly.
        let named = qcow2_v3(
            0,
            &[
                (0x6803_f857, b"0123456789"),
                (QCOW2_EXT_DATA_FILE, b"/etc/shadow"),
            ],
        );
        let why = qcow2_header_problem(&named).unwrap();
        assert!(why.contains("external data file (/etc/shadow)"), "{why}");
        let bit = qcow2_header_problem(&qcow2_v3(QCOW2_INCOMPAT_DATA_FILE, &[])).unwrap();
        assert!(bit.contains("external data file"), "{bit}");
        let unknown = qcow2_header_problem(&qcow2_v3(1 << 9, &[])).unwrap();
        assert!(unknown.contains("0x200"), "{unknown}");
        let mut backed = qcow2_v3(0, &[]);
        let name_at = backed.len() as u64;
        backed[8..16].copy_from_slice(&name_at.to_be_bytes());
        backed[16..20].copy_from_slice(&8u32.to_be_bytes());
        backed.extend_from_slice(b"base.img");
        assert!(
            qcow2_header_problem(&backed)
                .unwrap()
                .contains("backing file (base.img)")
        );
        let mut enc = qcow2_v3(0, &[]);
        enc[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert!(qcow2_header_problem(&enc).unwrap().contains("encrypted"));
        assert!(
            qcow2_header_problem(&qcow2_v3(0, &[])[..90])
                .unwrap()
                .contains("truncated")
        );
        assert!(
            qcow2_header_problem(b"QFI\xfb\0\0\0\x07")
                .unwrap()
                .contains("version 7")
        );
    }
}
