//! The node's image cache: files downloaded from the control plane, verified by BLAKE3,
//! and kept by checksum so a re-imported image of the same name is fetched again. Disk images
//! are also checked to be self-contained (no backing or external data file) before QEMU may open
//! them: the control plane vets imports, and this node does not take its word for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use novacron_api_types::{DiskFormat, Image};
use novacron_client::Client;

/// Local copies of images.
pub struct ImageCache {
    dir: PathBuf,
    client: Client,
    /// One download at a time per file.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ImageCache {
    pub fn new(dir: PathBuf, client: Client) -> ImageCache {
        ImageCache {
            dir,
            client,
            locks: Default::default(),
        }
    }

    /// The local path of `role` of `image`, downloading and verifying it when missing.
    pub async fn ensure(&self, image: &Image, role: &str) -> Result<PathBuf, String> {
        let entry = image
            .files
            .iter()
            .find(|f| f.role == role)
            .ok_or_else(|| format!("image {} has no {role} file", image.name))?;
        let path = self.dir.join(&entry.blake3);
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(entry.blake3.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // Also cached files: an older agent cached without this check.
            check_disk(image, role, &path).await?;
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let tmp = self.dir.join(format!("{}.part", entry.blake3));
        let result = async {
            self.client
                .image_download(&image.name, &image.project, role, &tmp)
                .await
                .map_err(|e| format!("downloading image {} ({role}): {e}", image.name))?;
            let tmp2 = tmp.clone();
            // Hashed and written back before it takes its name: a host crash cannot leave a
            // cached file that is present but short, and its pages are clean when a QEMU
            // using it as a backing file drops them at the end of an incoming migration
            // (file-posix `drop-cache` on `cont`), which would otherwise write the whole
            // image back inside the guest's pause.
            let hash = tokio::task::spawn_blocking(move || {
                let f = std::fs::File::open(&tmp2)?;
                let hash = novacron_api_types::file_hash::blake3_file(&f)?;
                f.sync_data()?;
                Ok::<_, std::io::Error>(hash)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("hashing the downloaded image: {e}"))?;
            if hash != entry.blake3 {
                return Err(format!(
                    "image {} ({role}) arrived damaged: checksum {hash}, expected {}",
                    image.name, entry.blake3
                ));
            }
            check_disk(image, role, &tmp).await?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| format!("placing the image: {e}"))?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("syncing the image cache directory: {e}"))?;
            Ok(path.clone())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Refuses a disk image that would make QEMU open another host file (a qcow2 backing or external
/// data file), read with the format the image record declares (QEMU never probes).
async fn check_disk(image: &Image, role: &str, path: &std::path::Path) -> Result<(), String> {
    // A disk image's disk, or the disk a kernel image made by `vm template` carries.
    let Some(format) = novacron_api_types::disks::image_disk_format(image) else {
        return Ok(());
    };
    if role != "disk" {
        return Ok(());
    }
    let format = match format {
        DiskFormat::Qcow2 => novacron_qemu::DiskFormat::Qcow2,
        DiskFormat::Raw => novacron_qemu::DiskFormat::Raw,
    };
    match novacron_qemu::check_self_contained(path, format).await {
        Ok(_) => Ok(()),
        Err(novacron_qemu::QemuError::InvalidImage { reason, .. }) => {
            tracing::warn!(image = %image.name, path = %path.display(), %reason, "disk image refused");
            Err(format!(
                "image {} refused on this node: {reason}; delete it and import a fixed copy",
                image.name
            ))
        }
        Err(e) => Err(format!("checking image {}: {e}", image.name)),
    }
}
