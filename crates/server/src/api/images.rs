//! Image endpoints. Images live in the control plane's data dir, one directory per image
//! (`kernel` + `initrd` for direct kernel boot, `disk` for cloud images); agents download
//! and cache them by checksum. Nothing is visible until it is complete and checked.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json as AxumJson};
use futures_util::StreamExt;
use novacron_api_types::{
    ApiError, BuildTinyRequest, DEFAULT_PROJECT, DiskFormat, ErrorCode, Image, ImageFile,
    ImageKind, validate_name,
};
use novacron_store::{Compare, Op};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{ApiFailure, ApiResult, Json, json_bytes};
use crate::auth::Caller;
use crate::records::{self, now};
use crate::state::AppState;

pub fn image_dir(images_dir: &FsPath, project: &str, name: &str) -> PathBuf {
    images_dir.join(project).join(name)
}

fn io_err(what: &str, e: impl std::fmt::Display) -> ApiFailure {
    ApiFailure(ApiError::internal(format!("{what}: {e}")))
}

/// A scratch directory for an image being made; removed on drop unless kept.
struct Incoming {
    dir: PathBuf,
    keep: bool,
}

impl Incoming {
    async fn new(images_dir: &FsPath) -> ApiResult<Incoming> {
        let dir = images_dir
            .join(".incoming")
            .join(super::operations::new_id());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err("creating the image scratch directory", e))?;
        Ok(Incoming { dir, keep: false })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn file_entry(path: &FsPath, role: &str) -> ApiResult<ImageFile> {
    let path = path.to_path_buf();
    let role = role.to_string();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        let mut file = std::fs::File::open(&path)
            .map_err(|e| io_err(&format!("opening {}", path.display()), e))?;
        std::io::copy(&mut file, &mut hasher)
            .map_err(|e| io_err(&format!("hashing {}", path.display()), e))?;
        let size_bytes = std::fs::metadata(&path)
            .map_err(|e| io_err("image size", e))?
            .len();
        Ok(ImageFile {
            role,
            size_bytes,
            blake3: hasher.finalize().to_hex().to_string(),
        })
    })
    .await
    .map_err(|e| io_err("hashing task", e))?
}

/// Moves the finished scratch directory into place and records the image; on a name
/// clash nothing is left behind.
async fn publish(state: &AppState, mut incoming: Incoming, image: Image) -> ApiResult<Image> {
    let key = records::image_key(&image.project, &image.name);
    let dest = image_dir(&state.images_dir, &image.project, &image.name);
    // One publish at a time: two imports of one name must not both see the other's directory
    // as a stale leftover and remove it.
    static PUBLISHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = PUBLISHING.lock().await;
    if state.store.get(&key).await?.is_some() {
        return Err(exists(&image.name));
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_err("creating the image directory", e))?;
    }
    if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        // Left over from a crash between rename and record: not referenced by anything.
        tokio::fs::remove_dir_all(&dest)
            .await
            .map_err(|e| io_err("removing a stale image directory", e))?;
    }
    tokio::fs::rename(&incoming.dir, &dest)
        .await
        .map_err(|e| io_err("moving the image into place", e))?;
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: 0,
            }],
            vec![Op::Put {
                key,
                value: json_bytes(&image)?,
            }],
        )
        .await;
    match out {
        Ok(o) if o.succeeded => {
            incoming.keep = true;
            state.images.wait_for(o.revision, AppState::CATCH_UP).await;
            tracing::info!(image = %image.name, "image published");
            Ok(image)
        }
        other => {
            // Put the files back so the scratch guard removes them.
            let _ = tokio::fs::rename(&dest, &incoming.dir).await;
            match other {
                Ok(_) => Err(exists(&image.name)),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn exists(name: &str) -> ApiFailure {
    ApiFailure(ApiError::new(
        ErrorCode::AlreadyExists,
        format!("an image named {name:?} already exists; delete it first or pick another name"),
    ))
}

fn check_new_name(state: &AppState, name: &str) -> ApiResult<()> {
    validate_name("image", name)?;
    if state
        .images
        .get(&records::image_key(
            &crate::tenancy::current_project(),
            name,
        ))
        .is_some()
    {
        return Err(exists(name));
    }
    Ok(())
}

/// Every image.
#[utoipa::path(get, path = "/api/v1/images", responses((status = 200, body = Vec<Image>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<Image>>> {
    Ok(AxumJson(
        state
            .images
            .values_under(&records::image_key(&crate::tenancy::current_project(), ""))
            .iter()
            .map(|i| (**i).clone())
            .collect(),
    ))
}

/// One image.
#[utoipa::path(get, path = "/api/v1/images/{name}", params(("name" = String, Path)), responses((status = 200, body = Image), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<Image>> {
    let img = state
        .images
        .get(&records::image_key(
            &crate::tenancy::current_project(),
            &name,
        ))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no image named {name:?}: see `novacron image list`"
            ))
        })?;
    Ok(AxumJson((*img).clone()))
}

/// Build the tiny direct-boot image from the host kernel and busybox (no download).
#[utoipa::path(post, path = "/api/v1/images/build-tiny", request_body = BuildTinyRequest,
    responses((status = 200, body = Image), (status = 409, body = ApiError), (status = 500, body = ApiError)))]
pub async fn build_tiny(
    State(state): State<Arc<AppState>>,
    Json(req): Json<BuildTinyRequest>,
) -> ApiResult<AxumJson<Image>> {
    check_new_name(&state, &req.name)?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let built_dir = incoming.dir.join("build");
    let tiny = novacron_qemu::build_tiny(&built_dir, &novacron_qemu::TinyOptions::default())
        .await
        .map_err(|e| {
            ApiFailure(ApiError::internal(format!(
                "building the tiny image failed: {e}"
            )))
        })?;
    let kernel = incoming.dir.join("kernel");
    let initrd = incoming.dir.join("initrd");
    tokio::fs::rename(&tiny.kernel, &kernel)
        .await
        .map_err(|e| io_err("placing the kernel", e))?;
    tokio::fs::rename(&tiny.initrd, &initrd)
        .await
        .map_err(|e| io_err("placing the initrd", e))?;
    let _ = tokio::fs::remove_dir_all(&built_dir).await;
    let files = vec![
        file_entry(&kernel, "kernel").await?,
        file_entry(&initrd, "initrd").await?,
    ];
    let image = Image {
        name: req.name.clone(),
        project: crate::tenancy::current_project(),
        kind: ImageKind::Kernel {
            cmdline: tiny.cmdline,
        },
        size_bytes: files.iter().map(|f| f.size_bytes).sum(),
        virtual_size_bytes: None,
        files,
        created_at: now(),
        origin: Some(state.member_id.clone()),
    };
    Ok(AxumJson(publish(&state, incoming, image).await?))
}

/// Import a qcow2 or raw disk image (the request body is the file). The format is detected
/// and checked; anything that is not a usable disk image is refused.
#[utoipa::path(put, path = "/api/v1/images/{name}/import", params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Image), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<AxumJson<Image>> {
    check_new_name(&state, &name)?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let disk = incoming.dir.join("disk");
    let mut file = tokio::fs::File::create(&disk)
        .await
        .map_err(|e| io_err("creating the image file", e))?;
    let mut body = req.into_body().into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiFailure(ApiError::invalid(format!("upload interrupted: {e}"))))?;
        received += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_err("writing the image file", e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| io_err("syncing the image file", e))?;
    drop(file);
    if received == 0 {
        return Err(ApiError::invalid("the uploaded image is empty").into());
    }
    let info = novacron_qemu::inspect_for_import(&disk)
        .await
        .map_err(|e| refused_image(&name, e))?;
    let format = match info.format {
        novacron_qemu::DiskFormat::Qcow2 => DiskFormat::Qcow2,
        novacron_qemu::DiskFormat::Raw => DiskFormat::Raw,
    };
    let files = vec![file_entry(&disk, "disk").await?];
    let image = Image {
        name: name.clone(),
        project: crate::tenancy::current_project(),
        kind: ImageKind::Disk { format },
        size_bytes: received,
        virtual_size_bytes: Some(info.virtual_size_bytes),
        files,
        created_at: now(),
        origin: Some(state.member_id.clone()),
    };
    Ok(AxumJson(publish(&state, incoming, image).await?))
}

/// An image the qemu-img vetting refused, as the user's answer: the reason without our scratch path.
fn refused_image(name: &str, e: novacron_qemu::QemuError) -> ApiFailure {
    match e {
        novacron_qemu::QemuError::InvalidImage { reason, .. } => {
            tracing::warn!(image = %name, %reason, "image refused");
            ApiFailure(ApiError::invalid(format!(
                "image {name} is not a usable disk image: {reason}"
            )))
        }
        other => ApiFailure(ApiError::invalid(format!(
            "image {name} could not be checked: {other}"
        ))),
    }
}

/// The format of a disk image record as qemu-img names it.
fn qemu_format(format: DiskFormat) -> novacron_qemu::DiskFormat {
    match format {
        DiskFormat::Qcow2 => novacron_qemu::DiskFormat::Qcow2,
        DiskFormat::Raw => novacron_qemu::DiskFormat::Raw,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProjectQuery {
    pub project: Option<String>,
}

/// Download one file of an image (agents cache images by checksum).
#[utoipa::path(get, path = "/api/v1/images/{name}/files/{role}", params(("name" = String, Path), ("role" = String, Path), ProjectQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ApiError)))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((name, role)): Path<(String, String)>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<impl IntoResponse> {
    if let Caller::Node(node) = &caller {
        let project = q.project.as_deref().unwrap_or(DEFAULT_PROJECT);
        super::roles::require_image_party(&state, node, project, &name).await?;
    }
    let project = q.project.unwrap_or_else(|| DEFAULT_PROJECT.into());
    validate_name("project", &project)?;
    validate_name("image", &name)?;
    let image = state
        .images
        .get(&records::image_key(&project, &name))
        .ok_or_else(|| ApiError::not_found(format!("no image named {name:?}")))?;
    let entry = image
        .files
        .iter()
        .find(|f| f.role == role)
        .ok_or_else(|| ApiError::not_found(format!("image {name} has no {role:?} file")))?;
    let path = image_dir(&state.images_dir, &project, &name).join(&entry.role);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        fetch_from_origin(&state, &image, entry, &path).await?;
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| io_err(&format!("opening {}", path.display()), e))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, entry.size_bytes.to_string()),
        ],
        Body::from_stream(stream),
    ))
}

/// Delete an image no VM uses.
#[utoipa::path(delete, path = "/api/v1/images/{name}", params(("name" = String, Path)), responses((status = 200), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    validate_name("image", &name)?;
    let users: Vec<String> = state.vms.with(|vms| {
        vms.values()
            .filter(|v| v.image == name && v.project == crate::tenancy::current_project())
            .map(|v| v.name.clone())
            .collect()
    });
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "image {name} is used by VMs {}; delete them first",
            users.join(", ")
        ))
        .into());
    }
    let key = records::image_key(&crate::tenancy::current_project(), &name);
    let kv = state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no image named {name:?}")))?;
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: kv.mod_revision,
            }],
            vec![Op::Delete { key }],
        )
        .await?;
    if !out.succeeded {
        return Err(ApiError::conflict("image changed meanwhile; try again").into());
    }
    state
        .images
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    let _ = tokio::fs::remove_dir_all(image_dir(
        &state.images_dir,
        &crate::tenancy::current_project(),
        &name,
    ))
    .await;
    Ok(AxumJson(serde_json::json!({"deleted": name})))
}

/// Copies an image file this replica does not hold from the replica that stored it (an HA
/// control plane keeps image files on the replica that imported them), verifying its
/// checksum before it is served.
async fn fetch_from_origin(
    state: &AppState,
    image: &Image,
    entry: &ImageFile,
    dest: &FsPath,
) -> ApiResult<()> {
    let origin = image
        .origin
        .as_ref()
        .filter(|o| **o != state.member_id)
        .and_then(|o| state.members.get(&records::member_key(o)))
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "image {} is stored on control-plane replica {}, which is not reachable now",
                image.name,
                image.origin.as_deref().unwrap_or("?")
            ))
        })?;
    let url = format!(
        "{}/api/v1/images/{}/files/{}?project={}",
        origin.url.trim_end_matches('/'),
        image.name,
        entry.role,
        image.project
    );
    let resp = state
        .replica_http
        .get(&url)
        .bearer_auth(state.replica_credential(&origin))
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "fetching image {} from {}: {e}",
                image.name, origin.id
            ))
        })?;
    if !resp.status().is_success() {
        return Err(ApiError::unavailable(format!(
            "replica {} answered {} for image {}",
            origin.id,
            resp.status(),
            image.name
        ))
        .into());
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_err("creating the image directory", e))?;
    }
    let tmp = dest.with_extension("part");
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io_err("creating the image copy", e))?;
    let mut hasher = blake3::Hasher::new();
    let mut stream = resp.bytes_stream();
    let copied = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::unavailable(format!("fetching image {}: {e}", image.name))
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io_err("writing the image copy", e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| io_err("syncing the image copy", e))?;
        if hasher.finalize().to_hex().as_str() != entry.blake3 {
            return Err(ApiFailure(ApiError::unavailable(format!(
                "image {} arrived damaged from {}",
                image.name, origin.id
            ))));
        }
        // Vetted at import on the origin; checked again here because this file now enters this host.
        if entry.role == "disk"
            && let Some(format) = novacron_api_types::disks::image_disk_format(image)
        {
            novacron_qemu::check_self_contained(&tmp, qemu_format(format))
                .await
                .map_err(|e| refused_image(&image.name, e))?;
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| io_err("placing the image copy", e))?;
        Ok(())
    }
    .await;
    if copied.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    copied
}

/// Makes image `name` of `project` from a VM's disk (`vm template`): `write_disk` fills the
/// file it is given with a standalone qcow2 copy of the disk, which is vetted like an import.
/// With a `source` image that boots a kernel, its kernel and initrd come along, so VMs
/// created from the new image boot the same way over a copy-on-write overlay of the disk.
/// Nothing is left behind on failure (the scratch directory goes, no record is written).
pub(crate) async fn publish_from_disk<F, Fut>(
    state: &AppState,
    project: &str,
    name: &str,
    source: Option<&Image>,
    write_disk: F,
) -> ApiResult<Image>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = ApiResult<()>>,
{
    validate_name("image", name)?;
    if state
        .images
        .get(&records::image_key(project, name))
        .is_some()
    {
        return Err(exists(name));
    }
    let incoming = Incoming::new(&state.images_dir).await?;
    let disk = incoming.dir.join("disk");
    write_disk(disk.clone()).await?;
    let info = novacron_qemu::inspect_for_import(&disk)
        .await
        .map_err(|e| refused_image(name, e))?;
    if info.format != novacron_qemu::DiskFormat::Qcow2 {
        return Err(ApiError::internal(format!(
            "the copy of the disk for image {name} is {}, not qcow2",
            info.format
        ))
        .into());
    }
    let mut files = vec![file_entry(&disk, "disk").await?];
    let kind = match source.map(|s| (s, &s.kind)) {
        Some((s, ImageKind::Kernel { cmdline })) => {
            for role in ["kernel", "initrd"] {
                let entry = s.files.iter().find(|f| f.role == role).ok_or_else(|| {
                    ApiError::internal(format!("image {} has no {role} file", s.name))
                })?;
                let from = image_dir(&state.images_dir, &s.project, &s.name).join(role);
                if !tokio::fs::try_exists(&from).await.unwrap_or(false) {
                    fetch_from_origin(state, s, entry, &from).await?;
                }
                tokio::fs::copy(&from, incoming.dir.join(role))
                    .await
                    .map_err(|e| io_err(&format!("copying the {role} of image {}", s.name), e))?;
                files.push(entry.clone());
            }
            ImageKind::Kernel {
                cmdline: cmdline.clone(),
            }
        }
        _ => ImageKind::Disk {
            format: DiskFormat::Qcow2,
        },
    };
    let image = Image {
        name: name.to_string(),
        project: project.to_string(),
        kind,
        size_bytes: files.iter().map(|f| f.size_bytes).sum(),
        virtual_size_bytes: Some(info.virtual_size_bytes),
        files,
        created_at: now(),
        origin: Some(state.member_id.clone()),
    };
    publish(state, incoming, image).await
}
