//! What a file offered for import becomes: a self-contained qcow2 or raw disk kept as it is, a VMDK, VHDX or VHD
//! converted to qcow2 by `qemu-img convert`, or an ISO 9660 medium kept as it is. The kind is read from the file's
//! magic by us (never from its name, never guessed by qemu-img), and every foreign image is vetted with
//! `qemu-img info` for references to other host files before qemu-img reads its data.

use std::path::{Path, PathBuf};

use crate::QemuError;
use crate::held::Held;
use crate::img::{
    DiskFormat, ImageInfo, SIGNATURE_SPAN, check_self_contained, info_json_external_reference,
    inspect_for_import, path_str, read_head, run_qemu_img_keeping,
};

/// Disk formats NovaCron converts to qcow2 on import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignFormat {
    Vmdk,
    Vhdx,
    /// VHD (Virtual PC), fixed or dynamic.
    Vpc,
}

impl ForeignFormat {
    /// qemu-img's name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignFormat::Vmdk => "vmdk",
            ForeignFormat::Vhdx => "vhdx",
            ForeignFormat::Vpc => "vpc",
        }
    }

    /// The name users know.
    pub fn label(self) -> &'static str {
        match self {
            ForeignFormat::Vmdk => "VMDK",
            ForeignFormat::Vhdx => "VHDX",
            ForeignFormat::Vpc => "VHD",
        }
    }
}

/// What the magic says a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// qcow2 or (maybe) raw: vetted by [`inspect_for_import`].
    NativeDisk,
    Foreign(ForeignFormat),
    Iso,
    /// A tar archive (an OVA appliance is one).
    Tar,
}

/// Byte offset of the first ISO 9660 volume descriptor's identifier (`CD001`): sector 16 of 2048 bytes, plus 1.
pub const ISO9660_MAGIC_OFFSET: usize = 0x8001;

/// What `head` (the file's first [`SIGNATURE_SPAN`] bytes) and `tail` (its last 512) say the file is, or why it
/// cannot be imported at all.
pub fn detect(head: &[u8], tail: &[u8]) -> Result<Detected, String> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        return Ok(Detected::NativeDisk);
    }
    if at(ISO9660_MAGIC_OFFSET, b"CD001") {
        return Ok(Detected::Iso);
    }
    if at(0, b"KDMV") {
        return Ok(Detected::Foreign(ForeignFormat::Vmdk));
    }
    if at(0, b"# Disk DescriptorFile") {
        return Err(
            "it is a VMDK descriptor that keeps the disk's data in separate extent files, which a server cannot \
             open safely: make a single-file copy with `qemu-img convert -O qcow2 IN.vmdk OUT.qcow2` (or \
             `-O vmdk -o subformat=streamOptimized`) and import that"
                .into(),
        );
    }
    if at(0, b"vhdxfile") {
        return Ok(Detected::Foreign(ForeignFormat::Vhdx));
    }
    // A dynamic VHD starts with a copy of its footer; a fixed one has the footer only at the end.
    if at(0, b"conectix") || tail.starts_with(b"conectix") {
        return Ok(Detected::Foreign(ForeignFormat::Vpc));
    }
    if at(257, b"ustar") {
        return Ok(Detected::Tar);
    }
    Ok(Detected::NativeDisk)
}

/// What an import made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Imported {
    /// A self-contained disk image at `path`: the upload itself (qcow2, raw) or a qcow2 converted from it.
    Disk {
        path: PathBuf,
        info: ImageInfo,
        converted_from: Option<ForeignFormat>,
    },
    /// An ISO 9660 medium at `path` (the upload itself).
    Iso { path: PathBuf, size_bytes: u64 },
}

/// Turns `upload` into an image (see the module's first lines). A converted disk is written next to the upload
/// (`<upload>.qcow2`) and the upload is removed; on any error everything this made is removed and the error says
/// what the file is and what to do. `named_iso`: the user's file name ends in `.iso`, so anything but ISO 9660 is
/// refused as such.
pub async fn import_file(upload: &Path, named_iso: bool) -> Result<Imported, QemuError> {
    let invalid = |reason: String| QemuError::InvalidImage {
        path: upload.to_path_buf(),
        reason,
    };
    let meta = tokio::fs::metadata(upload)
        .await
        .map_err(|e| QemuError::io(format!("reading image {}", upload.display()), e))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(invalid("file is empty".into()));
    }
    let head = read_head(upload, SIGNATURE_SPAN).await?;
    let tail = read_tail(upload, 512).await?;
    let detected = detect(&head, &tail).map_err(invalid)?;
    if named_iso && detected != Detected::Iso {
        return Err(invalid(
            "it is named .iso but is not an ISO 9660 image (no CD001 volume descriptor at byte 32769)".into(),
        ));
    }
    match detected {
        Detected::Iso => {
            if let Some(reason) = iso9660_problem(&head, meta.len()) {
                return Err(invalid(reason));
            }
            Ok(Imported::Iso {
                path: upload.to_path_buf(),
                size_bytes: meta.len(),
            })
        }
        Detected::NativeDisk => {
            let info = inspect_for_import(upload).await?;
            Ok(Imported::Disk {
                path: upload.to_path_buf(),
                info,
                converted_from: None,
            })
        }
        Detected::Foreign(format) => {
            let dest = upload.with_extension("qcow2");
            let source = path_str(upload, "image")?;
            let imported =
                convert_foreign(&Reading::whole(upload, source, format, None), &dest).await?;
            let _ = tokio::fs::remove_file(upload).await;
            Ok(imported)
        }
        Detected::Tar => Err(invalid(
            "it is a tar archive: OVA appliances are imported from a local file \
             (`novacron image import NAME ./appliance.ova`), other archives must be unpacked first"
                .into(),
        )),
    }
}

/// Why an ISO 9660 file cannot be right, or `None`: the primary volume descriptor (type 1 at 0x8000) states the
/// volume's size (blocks, both-endian u32 at +80; block size, both-endian u16 at +128), which the file must hold.
pub fn iso9660_problem(head: &[u8], file_len: u64) -> Option<String> {
    let pvd = 0x8000;
    let le32 = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let le16 = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if head.get(pvd) != Some(&1) {
        // Not a primary volume descriptor first: nothing we can check cheaply.
        return None;
    }
    let (Some(blocks), Some(block_size)) = (le32(pvd + 80), le16(pvd + 128)) else {
        return Some("ISO 9660 volume descriptor is truncated".into());
    };
    let stated = u64::from(blocks) * u64::from(block_size);
    if stated > file_len {
        return Some(format!(
            "ISO 9660 image is truncated: its volume descriptor states {stated} bytes, the file has {file_len}"
        ));
    }
    None
}

async fn read_tail(path: &Path, len: u64) -> Result<Vec<u8>, QemuError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| QemuError::io(format!("opening image {}", path.display()), e))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| QemuError::io(format!("reading image {}", path.display()), e))?
        .len();
    file.seek(std::io::SeekFrom::Start(size.saturating_sub(len)))
        .await
        .map_err(|e| QemuError::io(format!("reading image {}", path.display()), e))?;
    let mut tail = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut tail)
        .await
        .map_err(|e| QemuError::io(format!("reading image {}", path.display()), e))?;
    Ok(tail)
}

/// qemu-img's message with our scratch path replaced by what the user knows.
fn scrub(stderr: &str, source: &str, label: &str) -> String {
    let s = stderr.replace(source, &format!("the {label}"));
    let lines: Vec<&str> = s
        .lines()
        .map(|l| l.trim().trim_start_matches("qemu-img: ").trim())
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// Why `qemu-img info --output=json` of a VMDK names an extent outside the file itself, or `None`.
pub fn vmdk_foreign_extent(info: &serde_json::Value) -> Option<String> {
    vmdk_extent_not(info, &info["filename"])
}

/// Why a VMDK's `info` names an extent other than `own`, or `None`. `own` is a file name, or (for a disk read
/// from a byte range) the options of the node it is read through, which qemu-img names `json:{...}`: compared
/// as JSON, not as text.
fn vmdk_extent_not(info: &serde_json::Value, own: &serde_json::Value) -> Option<String> {
    let extents = info["format-specific"]["data"]["extents"].as_array()?;
    for extent in extents {
        let file = extent["filename"].as_str().unwrap_or("?");
        let same = match own {
            serde_json::Value::String(name) => file == name,
            node => file
                .strip_prefix("json:")
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                .is_some_and(|j| &j == node),
        };
        if !same {
            return Some(format!(
                "the VMDK names another file as an extent ({file}); only single-file VMDKs are imported"
            ));
        }
    }
    None
}

/// Vets what `reading` names and converts it to a self-contained qcow2 at `dest`, the disk imported; nothing
/// is left at `dest` after a failure. A held file (read through [`Held::path`]) fails the import if its lease
/// broke before the conversion ended.
async fn convert_foreign(reading: &Reading<'_>, dest: &Path) -> Result<Imported, QemuError> {
    let converted = async {
        let started = std::time::Instant::now();
        vet_foreign(reading).await?;
        let vetted = started.elapsed();
        check_foreign(reading).await?;
        let checked = started.elapsed();
        let info = convert_to(reading, dest).await?;
        tracing::debug!(
            src = %reading.src.display(),
            range = ?reading.range,
            vet_ms = vetted.as_millis() as u64,
            check_ms = (checked - vetted).as_millis() as u64,
            convert_ms = (started.elapsed() - checked).as_millis() as u64,
            "foreign disk converted"
        );
        match reading.held {
            Some(held) if !held.still_held() => Err(changed_under_way(held)),
            _ => Ok(Imported::Disk {
                path: dest.to_path_buf(),
                info,
                converted_from: Some(reading.format),
            }),
        }
    }
    .await;
    if converted.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    converted
}

/// What qemu-img reads a foreign disk from: `source` (the file `src`, an export of it, or a held file's path)
/// read as `format`, whole or only the byte `range` (offset, length) of it, as a disk inside an OVA archive. A
/// `held` file (see [`import_held`]) stays open in qemu-img under its number.
struct Reading<'a> {
    src: &'a Path,
    source: &'a str,
    format: ForeignFormat,
    range: Option<(u64, u64)>,
    held: Option<&'a Held>,
}

impl<'a> Reading<'a> {
    fn whole(
        src: &'a Path,
        source: &'a str,
        format: ForeignFormat,
        held: Option<&'a Held>,
    ) -> Self {
        Reading {
            src,
            source,
            format,
            range: None,
            held,
        }
    }

    /// qemu-img's arguments: `before`, then the image, named as `-f FORMAT SOURCE` or, for a range, as the
    /// format's driver over a `raw` node confined to it (`--image-opts`; the source path holds no comma to
    /// escape), then `after`.
    fn args(&self, before: &[&str], after: &[&str]) -> Vec<String> {
        let fmt = self.format.as_str();
        let image = match self.range {
            None => vec!["-f".into(), fmt.into(), self.source.into()],
            Some((offset, size)) => vec![
                "--image-opts".into(),
                format!(
                    "driver={fmt},file.driver=raw,file.offset={offset},file.size={size},\
                     file.file.driver=file,file.file.filename={}",
                    self.source
                ),
            ],
        };
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        [words(before), image, words(after)].concat()
    }

    /// The name `qemu-img info` gives the file node the disk is read from: a VMDK extent with this name is
    /// the disk's own bytes.
    fn own_file(&self, info: &serde_json::Value) -> Option<serde_json::Value> {
        match self.range {
            None => info.get("filename").cloned(),
            Some((offset, size)) => Some(serde_json::json!({
                "driver": "raw",
                "offset": offset.to_string(),
                "size": size.to_string(),
                "file": {"driver": "file", "filename": self.source},
            })),
        }
    }

    fn keep(&self) -> Option<std::os::fd::RawFd> {
        self.held.map(Held::fd)
    }

    fn scrub(&self, stderr: &str) -> String {
        scrub(stderr, self.source, self.format.label())
    }
}

/// `qemu-img info` of what `reading` names: readable, the format it claims, and no reference to any other file.
/// Nothing reads the image's data before this passed.
async fn vet_foreign(reading: &Reading<'_>) -> Result<(), QemuError> {
    let label = reading.format.label();
    let fmt = reading.format.as_str();
    let invalid = |reason: String| QemuError::InvalidImage {
        path: reading.src.to_path_buf(),
        reason,
    };
    let args = reading.args(&["info", "--output=json"], &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) =
        run_qemu_img_keeping("info", &args, reading.keep().as_slice()).await?;
    if code != 0 {
        return Err(invalid(format!(
            "{label} header is unreadable (truncated or corrupt?): {}",
            reading.scrub(&stderr)
        )));
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| QemuError::QemuImg {
            operation: "info".into(),
            stderr: format!("unexpected JSON ({e})"),
        })?;
    let foreign_extent = || {
        reading
            .own_file(&json)
            .and_then(|own| vmdk_extent_not(&json, &own))
    };
    if let Some(reason) = info_json_external_reference(&json).or_else(foreign_extent) {
        return Err(invalid(reason));
    }
    if json["format"].as_str() != Some(fmt) {
        return Err(invalid(format!(
            "qemu-img reads it as {} where {label} was expected",
            json["format"]
        )));
    }
    Ok(())
}

/// `qemu-img check` of the complete image `reading` names (VHD has none): for VMDK this finds grains past the
/// end of a truncated file, which a read would silently turn into zeros.
async fn check_foreign(reading: &Reading<'_>) -> Result<(), QemuError> {
    if reading.format == ForeignFormat::Vpc {
        return Ok(());
    }
    let label = reading.format.label();
    let args = reading.args(&["check"], &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) =
        run_qemu_img_keeping("check", &args, reading.keep().as_slice()).await?;
    // 0 clean, 3 leaks only (harmless), 63 check not supported for this format.
    if code != 0 && code != 3 && code != 63 {
        let first_error = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ERROR"))
            .map(|l| l.trim_start_matches(':').trim());
        let detail: Vec<String> = first_error
            .map(str::to_string)
            .into_iter()
            .chain(Some(reading.scrub(&stderr)))
            .filter(|d| !d.is_empty())
            .collect();
        return Err(QemuError::InvalidImage {
            path: reading.src.to_path_buf(),
            reason: format!(
                "{label} fails `qemu-img check` (corrupt or truncated): {}",
                detail.join("; ")
            ),
        });
    }
    Ok(())
}

/// `qemu-img convert` of what `reading` names (vetted by [`vet_foreign`]) to qcow2 at `dest`, checked
/// self-contained.
async fn convert_to(reading: &Reading<'_>, dest: &Path) -> Result<ImageInfo, QemuError> {
    let label = reading.format.label();
    let d = path_str(dest, "image")?;
    let args = reading.args(&["convert"], &["-O", "qcow2", d]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = convert_with_early_writeback(&args, dest, reading.held).await?;
    if code != 0 {
        return Err(QemuError::InvalidImage {
            path: reading.src.to_path_buf(),
            reason: format!(
                "converting the {label} to qcow2 failed (truncated or corrupt?): {}",
                reading.scrub(&stderr)
            ),
        });
    }
    tracing::info!(src = %reading.src.display(), format = reading.format.as_str(), "converted to qcow2");
    check_self_contained(dest, DiskFormat::Qcow2).await
}

/// [`import_file`] of a handed-in `file` without copying it first, when that is safe and pays: a VMDK, VHDX
/// or VHD that can be [`Held`] still (a read lease: on a local filesystem, open for writing nowhere) is
/// vetted and converted to qcow2 at `dest` straight from the file. `Ok(None)` means it was not read in place
/// (why is logged): a native disk or ISO becomes the image file itself and must be copied anyway, and a file
/// that cannot be held must be copied before it is vetted. A file opened for writing while it is read fails
/// the import, and nothing is left at `dest`.
pub async fn import_held(
    file: &std::fs::File,
    dest: &Path,
    named_iso: bool,
) -> Result<Option<Imported>, QemuError> {
    let held = match Held::take(file) {
        Ok(held) => held,
        Err(why) => {
            tracing::debug!(why, "the handed-in file is copied before it is read");
            return Ok(None);
        }
    };
    let src = held.path();
    let head = read_head(&src, SIGNATURE_SPAN).await?;
    let tail = read_tail(&src, 512).await?;
    let format = match detect(&head, &tail) {
        Ok(Detected::Foreign(format)) if !named_iso => format,
        _ => return Ok(None),
    };
    let s = path_str(&src, "image")?;
    convert_foreign(&Reading::whole(&src, s, format, Some(&held)), dest)
        .await
        .map(Some)
}

/// The disk of `size` bytes at `offset` inside the archive at `archive` (an OVA member), vetted and converted
/// to qcow2 at `dest` straight from the archive when it is a VMDK, VHDX or VHD: qemu-img reads it through a
/// `raw` node confined to that range, so nothing is copied out first. The archive is a private file of ours
/// (an upload's scratch), or a handed-in one read through `held` ([`Held::path`]), whose breaking lease fails
/// the import. `Ok(None)`: another kind of file, to be copied out and imported whole. Nothing is left at
/// `dest` after a failure.
pub async fn import_range(
    archive: &Path,
    held: Option<&Held>,
    (offset, size): (u64, u64),
    dest: &Path,
) -> Result<Option<Imported>, QemuError> {
    let src = archive.to_path_buf();
    let (head, tail) = {
        let src = src.clone();
        tokio::task::spawn_blocking(move || read_range_ends(&src, offset, size))
            .await
            .map_err(|e| QemuError::io("image reader task", std::io::Error::other(e.to_string())))?
            .map_err(|e| QemuError::io("reading a disk in the archive", e))?
    };
    let Ok(Detected::Foreign(format)) = detect(&head, &tail) else {
        return Ok(None);
    };
    let reading = Reading {
        src: &src,
        source: path_str(&src, "image")?,
        format,
        range: Some((offset, size)),
        held,
    };
    convert_foreign(&reading, dest).await.map(Some)
}

/// The first [`SIGNATURE_SPAN`] and last 512 bytes of the `size` bytes at `offset` in the file at `path`.
fn read_range_ends(path: &Path, offset: u64, size: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let read = |at: u64, len: u64| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let mut got = 0;
        while got < buf.len() {
            let n = file.read_at(&mut buf[got..], at + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    };
    let head = read(offset, size.min(SIGNATURE_SPAN as u64))?;
    let tail_len = size.min(512);
    let tail = read(offset + size - tail_len, tail_len)?;
    Ok((head, tail))
}

/// The refusal of a held file whose lease broke while it was read.
fn changed_under_way(held: &Held) -> QemuError {
    QemuError::InvalidImage {
        path: held.path(),
        reason: "it was opened for writing while it was being imported, so what was vetted may not be \
                 what would be read; nothing was imported: import it again once nothing writes to it"
            .into(),
    }
}

/// [`import_file`] of an upload that is still arriving at `upload` (`size` bytes in all; `arrived` says how many
/// are there). A VMDK, VHDX or dynamic VHD is vetted and converted while it streams in, read through a
/// [`GrowingExport`](crate::nbd::GrowingExport) whose reads wait for the bytes they need; the `qemu-img check`
/// runs once the file is complete, before anything is returned. Anything else waits for the whole file and takes
/// [`import_file`]'s path. An upload that ends short or fails fails the import.
pub async fn import_streaming(
    upload: &Path,
    size: u64,
    mut arrived: tokio::sync::watch::Receiver<crate::nbd::Arrived>,
    named_iso: bool,
) -> Result<Imported, QemuError> {
    let interrupted = || QemuError::InvalidImage {
        path: upload.to_path_buf(),
        reason: "the upload ended before the whole file arrived".into(),
    };
    let head_len = size.min(SIGNATURE_SPAN as u64);
    if !crate::nbd::wait_for(&mut arrived, head_len).await {
        return Err(interrupted());
    }
    let head = read_head(upload, head_len as usize).await?;
    // Only a size in whole 512-byte sectors streams. The export has no structured replies, and a
    // QEMU 7.2 client then reads an unaligned export's last sector as a whole sector's payload
    // while asking for (and getting) only the bytes up to the end: it waits for the rest forever.
    // Valid VMDK, VHDX and VHD files are sector multiples; a cut one converts from the file.
    let streamable = match detect(&head, &[]) {
        Ok(Detected::Foreign(format)) if !named_iso && size.is_multiple_of(512) => Some(format),
        _ => None,
    };
    let socket = upload.with_extension("nbd");
    let socket_ok = socket.as_os_str().len() < 100
        && socket.to_str().is_some_and(|p| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        });
    let export = match streamable {
        Some(_) if socket_ok => {
            match crate::nbd::GrowingExport::start(upload, size, &socket, arrived.clone()).await {
                Ok(export) => Some(export),
                Err(e) => {
                    tracing::warn!(error = %e, "no NBD export for the upload: converting after it arrived");
                    None
                }
            }
        }
        _ => None,
    };
    let (Some(format), Some(export)) = (streamable, export) else {
        if !crate::nbd::wait_for(&mut arrived, size).await {
            return Err(interrupted());
        }
        return import_file(upload, named_iso).await;
    };
    let dest = upload.with_extension("qcow2");
    let result = async {
        let started = std::time::Instant::now();
        let source = export.uri();
        vet_foreign(&Reading::whole(upload, &source, format, None)).await?;
        let vetted = started.elapsed();
        let info = convert_to(&Reading::whole(upload, &source, format, None), &dest).await?;
        let converted = started.elapsed();
        drop(export);
        if !crate::nbd::wait_for(&mut arrived, size).await {
            return Err(interrupted());
        }
        let whole = path_str(upload, "image")?;
        check_foreign(&Reading::whole(upload, whole, format, None)).await?;
        tracing::debug!(
            vet_ms = vetted.as_millis() as u64,
            convert_ms = (converted - vetted).as_millis() as u64,
            check_ms = (started.elapsed() - converted).as_millis() as u64,
            "streamed import"
        );
        Ok(info)
    }
    .await;
    match result {
        Ok(info) => {
            let _ = tokio::fs::remove_file(upload).await;
            Ok(Imported::Disk {
                path: dest,
                info,
                converted_from: Some(format),
            })
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&dest).await;
            Err(e)
        }
    }
}

/// How often [`convert_with_early_writeback`] starts the output's write-back. Measured on a 1 GiB
/// conversion (2 vCPU, virtio disk, 3 runs each): every 500 ms 1.3-1.8 s to durable, every 50 ms
/// 1.0-1.4 s, none and one fsync at the end 1.3-1.6 s. Small batches keep the disk busy without
/// stalling qemu-img on pages under write-back.
const WRITEBACK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `qemu-img <args>` (a conversion writing `dest`) while asking the kernel, every [`WRITEBACK_EVERY`], to start writing
/// `dest`'s dirty pages to disk (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait). qemu-img itself
/// never syncs its output; the image must be durable before it is published, and a single `fsync` after the
/// conversion would wait for the whole file's write-back. This way the disk writes while qemu-img computes, and the
/// final `fsync` finds little left. A `held` source stays open in qemu-img, and the conversion stops as soon as its
/// lease breaks ([`Held::still_held`]): the file is being written, so what was vetted may no longer be what is
/// read. Returns (exit code, stderr).
async fn convert_with_early_writeback(
    args: &[&str],
    dest: &Path,
    held: Option<&Held>,
) -> Result<(i32, String), QemuError> {
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;
    let binary = crate::img::qemu_img_binary();
    let mut command = tokio::process::Command::new(&binary);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    crate::process::inherit_only_stdio(command.as_std_mut(), held.map(Held::fd).as_slice());
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            QemuError::QemuImgNotFound {
                binary: binary.clone(),
            }
        } else {
            QemuError::io(format!("running {binary} convert"), e)
        }
    })?;
    let mut stderr_pipe = child.stderr.take();
    let stderr_reader = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(pipe) = stderr_pipe.as_mut() {
            let _ = pipe.read_to_string(&mut text).await;
        }
        text
    });
    let mut tick = tokio::time::interval(WRITEBACK_EVERY);
    let mut output: Option<std::fs::File> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| QemuError::io(format!("waiting for {binary} convert"), e))?,
            _ = tick.tick() => {
                if let Some(held) = held.filter(|h| !h.still_held()) {
                    let _ = child.kill().await;
                    return Err(changed_under_way(held));
                }
                if output.is_none() {
                    output = std::fs::File::open(dest).ok();
                }
                if let Some(file) = &output {
                    // SAFETY: sync_file_range only reads the descriptor, which `file` keeps open; offset 0 and
                    // length 0 mean the whole file, and SYNC_FILE_RANGE_WRITE starts write-back without waiting.
                    unsafe {
                        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
                    }
                }
            }
        }
    };
    let stderr = stderr_reader.await.unwrap_or_default().trim().to_string();
    tracing::debug!(args = ?args, status = ?status.code(), "qemu-img");
    Ok((status.code().unwrap_or(-1), stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16 MiB VMDK at `dir/src.vmdk` whose first MiB holds a pattern.
    fn small_vmdk(dir: &Path) -> PathBuf {
        let raw = dir.join("src.raw");
        let mut bytes = vec![0u8; 16 << 20];
        for (i, b) in bytes.iter_mut().take(1 << 20).enumerate() {
            *b = (i % 251) as u8;
        }
        std::fs::write(&raw, &bytes).unwrap();
        let vmdk = dir.join("src.vmdk");
        let out = std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "vmdk"])
            .args([&raw, &vmdk])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        vmdk
    }

    #[tokio::test]
    async fn a_held_file_opened_for_writing_stops_its_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let vmdk = small_vmdk(dir.path());
        let handed = std::fs::File::open(&vmdk).unwrap();
        let held = Held::take(&handed).unwrap();
        let writer = {
            let vmdk = vmdk.clone();
            std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(vmdk))
        };
        while held.still_held() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let src = held.path();
        let dest = dir.path().join("out.qcow2");
        let reading = Reading::whole(
            &src,
            path_str(&src, "image").unwrap(),
            ForeignFormat::Vmdk,
            Some(&held),
        );
        let err = convert_to(&reading, &dest).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("opened for writing while it was being imported"),
            "{err}"
        );
        // The writer waited for the lease the whole time.
        assert!(!writer.is_finished());
        drop(held);
        writer.join().unwrap().unwrap();
    }

    fn iso_head(blocks: u32) -> Vec<u8> {
        let mut h = vec![0u8; 0x8800];
        h[0x8000] = 1;
        h[0x8001..0x8006].copy_from_slice(b"CD001");
        h[0x8000 + 80..0x8000 + 84].copy_from_slice(&blocks.to_le_bytes());
        h[0x8000 + 128..0x8000 + 130].copy_from_slice(&2048u16.to_le_bytes());
        h
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03", &[]), Ok(Detected::NativeDisk));
        assert_eq!(
            detect(b"KDMV\x01\0\0\0", &[]),
            Ok(Detected::Foreign(ForeignFormat::Vmdk))
        );
        assert_eq!(
            detect(b"vhdxfile", &[]),
            Ok(Detected::Foreign(ForeignFormat::Vhdx))
        );
        assert_eq!(
            detect(b"conectix", &[]),
            Ok(Detected::Foreign(ForeignFormat::Vpc))
        );
        assert_eq!(
            detect(&[0u8; 1024], b"conectix\0\0"),
            Ok(Detected::Foreign(ForeignFormat::Vpc))
        );
        assert_eq!(detect(&iso_head(20), &[]), Ok(Detected::Iso));
        let mut tar = vec![0u8; 1024];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(detect(&tar, &[]), Ok(Detected::Tar));
        assert!(
            detect(b"# Disk DescriptorFile\nversion=1\n", &[])
                .unwrap_err()
                .contains("separate extent files")
        );
        assert_eq!(detect(b"hello", &[]), Ok(Detected::NativeDisk));
    }

    #[test]
    fn iso_size_is_checked() {
        assert_eq!(iso9660_problem(&iso_head(20), 20 * 2048), None);
        let why = iso9660_problem(&iso_head(20), 19 * 2048).unwrap();
        assert!(why.contains("truncated"), "{why}");
    }

    #[test]
    fn vmdk_extents_must_be_the_file_itself() {
        let own: serde_json::Value = serde_json::from_str(
            r#"{"filename": "/s/upload", "format": "vmdk", "format-specific": {"type": "vmdk", "data":
                {"extents": [{"filename": "/s/upload", "format": "monolithicSparse"}]}}}"#,
        )
        .unwrap();
        assert_eq!(vmdk_foreign_extent(&own), None);
        let other: serde_json::Value = serde_json::from_str(
            r#"{"filename": "/s/upload", "format": "vmdk", "format-specific": {"type": "vmdk", "data":
                {"extents": [{"filename": "/etc/shadow", "format": "FLAT"}]}}}"#,
        )
        .unwrap();
        assert!(vmdk_foreign_extent(&other).unwrap().contains("/etc/shadow"));
    }

    /// A disk read from a byte range: its one extent must be that very range of that very file.
    #[test]
    fn a_ranged_vmdk_extent_must_be_its_own_range() {
        let reading = Reading {
            src: Path::new("/proc/self/fd/9"),
            source: "/proc/self/fd/9",
            format: ForeignFormat::Vmdk,
            range: Some((1536, 4096)),
            held: None,
        };
        let info = |extent: &str| -> serde_json::Value {
            serde_json::json!({"filename": "json:{...}", "format-specific": {"data": {"extents": [{"filename": extent}]}}})
        };
        let own = reading.own_file(&info("")).unwrap();
        let same = r#"json:{"offset": "1536", "driver": "raw", "size": "4096", "file": {"driver": "file", "filename": "/proc/self/fd/9"}}"#;
        assert_eq!(vmdk_extent_not(&info(same), &own), None);
        for other in [
            r#"json:{"offset": "0", "driver": "raw", "size": "4096", "file": {"driver": "file", "filename": "/proc/self/fd/9"}}"#,
            r#"json:{"offset": "1536", "driver": "raw", "size": "4096", "file": {"driver": "file", "filename": "/etc/shadow"}}"#,
            r#"json:{"driver": "file", "filename": "/proc/self/fd/9"}"#,
            "/proc/self/fd/9",
            "json:not json",
        ] {
            assert!(vmdk_extent_not(&info(other), &own).is_some(), "{other}");
        }
    }

    #[test]
    fn scrubs_scratch_path() {
        let p = "/data/.incoming/op-1/upload";
        assert_eq!(
            scrub(
                "qemu-img: Could not open '/data/.incoming/op-1/upload': bad",
                p,
                "VMDK"
            ),
            "Could not open 'the VMDK': bad"
        );
        // One line, whatever qemu-img printed.
        assert_eq!(
            scrub("qemu-img: Check failed: Invalid argument \n\n", p, "VMDK"),
            "Check failed: Invalid argument"
        );
        assert_eq!(
            scrub(
                "qemu-img: first\nqemu-img: could not read /data/.incoming/op-1/upload\n",
                p,
                "VMDK"
            ),
            "first; could not read the VMDK"
        );
    }
}
