//! Image endpoints. Images live in the control plane's data dir, one directory per image
//! (`kernel` + `initrd` for direct kernel boot, `disk` for cloud images); agents download
//! and cache them by checksum. Nothing is visible until it is complete and checked.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json as AxumJson};
use futures_util::StreamExt;
use novacron_api_types::{
    ApiError, BuildTinyRequest, DEFAULT_PROJECT, DiskFormat, ErrorCode, Firmware, Image, ImageFile,
    ImageKind, ImageLocalImportRequest, ImageUrlImportRequest, Operation, OperationRef,
    OperationState, OvaImport, OvaLocalImportRequest, OvaNic, PUBLIC_IMAGES, format_size,
    validate_name,
};
use novacron_store::{Compare, Op};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::operations::{finish, new_operation, put_op, put_runner};
use super::roles::Scope;
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
        let file = std::fs::File::open(&path)
            .map_err(|e| io_err(&format!("opening {}", path.display()), e))?;
        let blake3 = novacron_api_types::file_hash::blake3_file(&file)
            .map_err(|e| io_err(&format!("hashing {}", path.display()), e))?;
        let size_bytes = file.metadata().map_err(|e| io_err("image size", e))?.len();
        Ok(ImageFile {
            role,
            size_bytes,
            blake3,
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
    // A name means one image in every project: a new project image needs the public name
    // free, a new public image every project's (another replica may be publishing either).
    let others: Vec<String> = if image.project == PUBLIC_IMAGES {
        let mut projects: Vec<String> = state
            .projects
            .values()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        projects.push(DEFAULT_PROJECT.to_string());
        projects.sort();
        projects.dedup();
        projects
    } else {
        vec![PUBLIC_IMAGES.to_string()]
    };
    let mut compares = vec![Compare::ModRevision {
        key: key.clone(),
        equals: 0,
    }];
    compares.extend(others.iter().map(|p| Compare::ModRevision {
        key: records::image_key(p, &image.name),
        equals: 0,
    }));
    let out = state
        .store
        .txn(
            compares,
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

/// Refuses a name `project` cannot give a new image: one it has, or one that would then mean
/// two images (a public image and a project's, see [`PUBLIC_IMAGES`]).
fn check_new_name(state: &AppState, project: &str, name: &str) -> ApiResult<()> {
    validate_name("image", name)?;
    if state
        .images
        .get(&records::image_key(project, name))
        .is_some()
    {
        return Err(exists(name));
    }
    if project == PUBLIC_IMAGES {
        let holders: Vec<String> = state.images.with(|all| {
            all.values()
                .filter(|i| i.name == name)
                .map(|i| i.project.clone())
                .collect()
        });
        if !holders.is_empty() {
            return Err(ApiFailure(ApiError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "project {} has an image named {name:?}; a public image needs a name no project uses (every project sees it by that name)",
                    holders.join(", ")
                ),
            )));
        }
    } else if state
        .images
        .get(&records::image_key(PUBLIC_IMAGES, name))
        .is_some()
    {
        return Err(ApiFailure(ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "{name:?} is the name of a public image, which every project sees by that name; pick another name"
            ),
        )));
    }
    Ok(())
}

/// The project a new image goes to: the request's, or with `public` the public images,
/// which only a cluster admin makes.
fn target_project(scope: &Scope, public: bool) -> ApiResult<String> {
    if !public {
        return Ok(scope.project.clone());
    }
    if !scope.principal.is_cluster_admin() {
        return Err(ApiFailure(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "public images are made and deleted by cluster admins ({} is not one); leave out --public to make an image of project {}",
                scope.principal.who, scope.project
            ),
        )));
    }
    Ok(PUBLIC_IMAGES.to_string())
}

/// The project's images, then the public images (project `public`) every project can use.
#[utoipa::path(get, path = "/api/v1/images", responses((status = 200, body = Vec<Image>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<Image>>> {
    let own = state
        .images
        .values_under(&records::image_key(&crate::tenancy::current_project(), ""));
    let public = state
        .images
        .values_under(&records::image_key(PUBLIC_IMAGES, ""));
    Ok(AxumJson(
        own.iter().chain(&public).map(|i| (**i).clone()).collect(),
    ))
}

/// One image.
#[utoipa::path(get, path = "/api/v1/images/{name}", params(("name" = String, Path)), responses((status = 200, body = Image), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<Image>> {
    let img = state
        .image(&crate::tenancy::current_project(), &name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no image named {name:?}: see `novacron image list`"
            ))
        })?;
    Ok(AxumJson((*img).clone()))
}

/// Build the tiny direct-boot image from the host kernel and busybox (no download), with the
/// host's qemu-guest-agent when it has one (`vm exec`).
#[utoipa::path(post, path = "/api/v1/images/build-tiny", request_body = BuildTinyRequest,
    responses((status = 200, body = Image), (status = 409, body = ApiError), (status = 500, body = ApiError)))]
pub async fn build_tiny(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Json(req): Json<BuildTinyRequest>,
) -> ApiResult<AxumJson<Image>> {
    let project = target_project(&scope, req.public)?;
    check_new_name(&state, &project, &req.name)?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let built_dir = incoming.dir.join("build");
    let guest_agent = novacron_qemu::host_guest_agent();
    if guest_agent.is_none() {
        tracing::warn!(
            "no qemu-guest-agent on this host (scripts/deps.sh installs it): `vm exec` will not work in the tiny image"
        );
    }
    let opts = novacron_qemu::TinyOptions {
        guest_agent,
        ..Default::default()
    };
    let tiny = novacron_qemu::build_tiny(&built_dir, &opts)
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
        project,
        kind: ImageKind::Kernel {
            cmdline: tiny.cmdline,
        },
        size_bytes: files.iter().map(|f| f.size_bytes).sum(),
        virtual_size_bytes: None,
        files,
        created_at: now(),
        origin: Some(state.member_id.clone()),
        firmware: None,
    };
    Ok(AxumJson(publish(&state, incoming, image).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// The uploaded file's name: one ending in `.iso` must be an ISO 9660 image.
    pub filename: Option<String>,
    /// The file's expected SHA-256 (64 hex digits), checked before anything is published.
    pub sha256: Option<String>,
    /// Make it a public image, which every project can use (cluster admins only).
    pub public: Option<bool>,
}

/// Import a disk image or installation medium (the request body is the file): qcow2 and raw
/// are kept as they are, VMDK, VHDX and VHD are converted to qcow2, an ISO 9660 file becomes
/// an image of kind `iso`. The kind is read from the content and vetted; anything that is not
/// a usable image is refused and leaves nothing behind.
#[utoipa::path(put, path = "/api/v1/images/{name}/import", params(("name" = String, Path), ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Image), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Query(q): Query<ImportQuery>,
    req: Request,
) -> ApiResult<AxumJson<Image>> {
    let project = target_project(&scope, q.public.unwrap_or(false))?;
    check_new_name(&state, &project, &name)?;
    let expected = expected_sha256(q.sha256.as_deref())?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let size = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = req.into_body().into_data_stream().map(|chunk| {
        chunk.map_err(|e| ApiFailure(ApiError::invalid(format!("upload interrupted: {e}"))))
    });
    let named_iso = q
        .filename
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().ends_with(".iso"));
    let image = import_from(
        &state,
        incoming,
        (&name, &project),
        (Source::Body(body), size, named_iso),
        expected.as_deref(),
        None,
    )
    .await?;
    Ok(AxumJson(image))
}

/// Receives `source` into `upload` and imports it. For a body of known size both run side by
/// side (a foreign disk is vetted and converted while it streams in, see
/// [`novacron_qemu::import::import_streaming`]); otherwise (a handed-in file included) the
/// import starts once the file is complete. The import's result counts only when the receive
/// succeeded.
async fn receive_and_import<S, F, Fut>(
    source: Source<S>,
    upload: &FsPath,
    size: Option<u64>,
    hash: bool,
    named_iso: bool,
    mut on_bytes: F,
) -> (
    ApiResult<Received>,
    Result<novacron_qemu::Imported, novacron_qemu::QemuError>,
)
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>>,
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use novacron_qemu::nbd::Arrived;
    // A handed-in foreign disk is converted straight from the file when it can be held still
    // (novacron_qemu::held); otherwise it is copied first (faster than a conversion reads it) and
    // converted from the copy.
    if let (Source::File { file, size }, false) = (&source, hash) {
        let started = std::time::Instant::now();
        let dest = upload.with_extension("qcow2");
        if let Some(imported) = novacron_qemu::import_held(file, &dest, named_iso)
            .await
            .transpose()
        {
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "imported in place from the handed-in file"
            );
            let received = Received {
                bytes: *size,
                chunks: 0,
                sha256: None,
                read: "in place",
            };
            return (Ok(received), imported);
        }
    }
    let streams = matches!(source, Source::Body(_));
    let Some(size) = size.filter(|s| *s > 0 && streams) else {
        let received = source.receive(upload, hash, on_bytes).await;
        if received.is_err() {
            return (
                received,
                Err(novacron_qemu::QemuError::InvalidImage {
                    path: upload.to_path_buf(),
                    reason: "the upload failed".into(),
                }),
            );
        }
        let started = std::time::Instant::now();
        let imported = novacron_qemu::import_file(upload, named_iso).await;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "imported from the complete file"
        );
        return (received, imported);
    };
    let (tx, rx) = tokio::sync::watch::channel(Arrived::Partial(0));
    let receiving = async {
        let received = source
            .receive(upload, hash, |n| {
                tx.send_replace(Arrived::Partial(n));
                on_bytes(n)
            })
            .await;
        tx.send_replace(Arrived::Done(
            received.as_ref().map(|r| r.bytes).map_err(|_| ()),
        ));
        received
    };
    let importing = novacron_qemu::import::import_streaming(upload, size, rx, named_iso);
    tokio::join!(receiving, importing)
}

/// Where an import's bytes come from: a request or download body, or a file handed in by a
/// client on this host.
enum Source<S> {
    Body(S),
    File { file: std::fs::File, size: u64 },
}

/// A [`Source`] that is never a body.
type FileOnly = futures_util::stream::Empty<ApiResult<axum::body::Bytes>>;

impl<S> Source<S>
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>>,
{
    /// Writes the source into `dest` (see [`receive`]). A handed-in file is copied by the
    /// kernel (`copy_file_range`) unless it must be hashed, which reads it.
    async fn receive<F, Fut>(self, dest: &FsPath, hash: bool, on_bytes: F) -> ApiResult<Received>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let started = std::time::Instant::now();
        let received = match self {
            Source::Body(body) => receive(body, dest, hash, on_bytes).await,
            // Read and hashed on the way, like a body: copied, all the same.
            Source::File { file, size } if hash => {
                receive(file_chunks(file, size), dest, hash, on_bytes)
                    .await
                    .map(|r| Received {
                        read: "copied",
                        ..r
                    })
            }
            Source::File { file, size } => copy_file(file, size, dest, on_bytes).await,
        };
        tracing::debug!(
            bytes = received.as_ref().map_or(0, |r| r.bytes),
            chunks = received.as_ref().map_or(0, |r| r.chunks),
            ms = started.elapsed().as_millis() as u64,
            "upload received"
        );
        received
    }
}

/// Copies the first `size` bytes of `file` into a new file `dest` in the kernel, 8 MiB at a
/// time on the blocking pool; `on_bytes` sees the running total after each step. Ends short if
/// the file does.
async fn copy_file<F, Fut>(
    file: std::fs::File,
    size: u64,
    dest: &FsPath,
    mut on_bytes: F,
) -> ApiResult<Received>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    const STEP: u64 = 8 << 20;
    let failed = |e: String| io_err("copying the handed file", e);
    let out = std::fs::File::create(dest).map_err(|e| io_err("creating the image file", e))?;
    let mut pair = Some((file, out));
    let mut copied = 0u64;
    let mut steps = 0u64;
    while copied < size {
        let (mut file, mut out) = pair.take().ok_or_else(|| failed("lost the files".into()))?;
        let want = (size - copied).min(STEP);
        let (file, out, n) = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek};
            file.seek(std::io::SeekFrom::Start(copied))?;
            // std copies File to File with copy_file_range (no bytes through user space).
            let n = std::io::copy(&mut (&mut file).take(want), &mut out)?;
            Ok::<_, std::io::Error>((file, out, n))
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        copied += n;
        steps += 1;
        on_bytes(copied).await;
        pair = Some((file, out));
    }
    if copied == 0 {
        return Err(ApiError::invalid("the image is empty (0 bytes)").into());
    }
    Ok(Received {
        bytes: copied,
        chunks: steps,
        sha256: None,
        read: "copied",
    })
}

/// What [`receive`] wrote.
struct Received {
    bytes: u64,
    /// How many chunks the body came in (the upload's debug line shows it).
    chunks: u64,
    sha256: Option<String>,
    /// How the bytes came ("uploaded", "copied" from a handed-in file, or read "in place"),
    /// for the "image imported" line.
    read: &'static str,
}

/// Writes a stream of chunks to `dest` (scratch: not synced, the image made from it is),
/// hashing it with SHA-256 when asked. Chunks are gathered into batches of 4 MiB, each written
/// on the blocking pool while the next one is received; `on_bytes` sees the running total after
/// each batch is in the file (readable by others).
async fn receive<S, F, Fut>(
    body: S,
    dest: &FsPath,
    hash: bool,
    mut on_bytes: F,
) -> ApiResult<Received>
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>>,
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    const BATCH: usize = 4 << 20;
    type Writing = tokio::task::JoinHandle<std::io::Result<(std::fs::File, Vec<u8>)>>;
    /// Waits for the batch being written; answers the file and the emptied buffer.
    async fn written(writing: Writing) -> ApiResult<(std::fs::File, Vec<u8>)> {
        writing
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| io_err("writing the image file", e))
    }
    let mut body = std::pin::pin!(body);
    let file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| io_err("creating the image file", e))?
        .into_std()
        .await;
    let mut sha = hash.then(|| aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
    let mut received = 0u64;
    let mut chunks = 0u64;
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    // Either the file and a spare buffer, or the write of a batch and the total it brings.
    let mut slot: Result<(std::fs::File, Vec<u8>), (Writing, u64)> =
        Ok((file, Vec::with_capacity(BATCH)));
    loop {
        let chunk = body.next().await.transpose()?;
        if let Some(chunk) = &chunk {
            received += chunk.len() as u64;
            chunks += 1;
            if let Some(sha) = &mut sha {
                sha.update(chunk);
            }
            batch.extend_from_slice(chunk);
        }
        if batch.len() >= BATCH || (chunk.is_none() && !batch.is_empty()) {
            let (mut file, spare) = match slot {
                Ok(idle) => idle,
                Err((w, total)) => {
                    let idle = written(w).await?;
                    on_bytes(total).await;
                    idle
                }
            };
            let full = std::mem::replace(&mut batch, spare);
            slot = Err((
                tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    file.write_all(&full)?;
                    let mut empty = full;
                    empty.clear();
                    Ok((file, empty))
                }),
                received,
            ));
        }
        if chunk.is_none() {
            break;
        }
    }
    if let Err((w, total)) = slot {
        written(w).await?;
        on_bytes(total).await;
    }
    if received == 0 {
        return Err(ApiError::invalid("the image is empty (0 bytes)").into());
    }
    Ok(Received {
        bytes: received,
        chunks,
        sha256: sha.map(|s| hex(s.finish().as_ref())),
        read: "uploaded",
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `--sha256` value, lower-cased, or a refusal.
fn expected_sha256(sum: Option<&str>) -> ApiResult<Option<String>> {
    match sum {
        None => Ok(None),
        Some(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(s) => Err(ApiError::invalid(format!(
            "--sha256 {s:?} is not a SHA-256 digest (64 hex digits)"
        ))
        .into()),
    }
}

fn check_sha256(expected: Option<&str>, received: &Received) -> ApiResult<()> {
    match (expected, &received.sha256) {
        (Some(want), Some(got)) if want != got => Err(ApiError::invalid(format!(
            "checksum mismatch: expected sha256 {want}, the file's is sha256 {got} ({} bytes); nothing was imported",
            received.bytes
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Vets (and converts) a complete file into image `name` (not yet published): a disk (role
/// `disk`) or an ISO 9660 medium (role `iso`).
async fn prepare_image(
    state: &AppState,
    incoming: Incoming,
    name: &str,
    project: &str,
    upload: &FsPath,
    named_iso: bool,
) -> ApiResult<(Incoming, Image)> {
    let imported = novacron_qemu::import_file(upload, named_iso)
        .await
        .map_err(|e| refused_image(name, e))?;
    finish_image(state, incoming, name, project, imported).await
}

/// Places what an import made as the image's file, synced and hashed, and makes its record.
async fn finish_image(
    state: &AppState,
    incoming: Incoming,
    name: &str,
    project: &str,
    imported: novacron_qemu::Imported,
) -> ApiResult<(Incoming, Image)> {
    let (made, role, kind, virtual_size_bytes) = match imported {
        novacron_qemu::Imported::Disk {
            path,
            info,
            converted_from,
        } => {
            if let Some(from) = converted_from {
                tracing::info!(image = %name, from = from.as_str(), "converted to qcow2");
            }
            let format = match info.format {
                novacron_qemu::DiskFormat::Qcow2 => DiskFormat::Qcow2,
                novacron_qemu::DiskFormat::Raw => DiskFormat::Raw,
            };
            (
                path,
                "disk",
                ImageKind::Disk { format },
                Some(info.virtual_size_bytes),
            )
        }
        novacron_qemu::Imported::Iso { path, .. } => (path, "iso", ImageKind::Iso, None),
    };
    let dest = incoming.dir.join(role);
    tokio::fs::rename(&made, &dest)
        .await
        .map_err(|e| io_err("placing the image file", e))?;
    // Both read the whole file (write-back and hashing): side by side, not one after the other.
    let started = std::time::Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let ((synced, sync_ms), (entry, hash_ms)) =
        tokio::join!(async { (sync_file(&dest).await, ms()) }, async {
            (file_entry(&dest, role).await, ms())
        },);
    tracing::debug!(sync_ms, hash_ms, "image file synced and hashed");
    synced?;
    let entry = entry?;
    let files = vec![entry];
    let image = Image {
        name: name.to_string(),
        project: project.to_string(),
        kind,
        size_bytes: files[0].size_bytes,
        virtual_size_bytes,
        files,
        created_at: now(),
        origin: Some(state.member_id.clone()),
        firmware: None,
    };
    Ok((incoming, image))
}

async fn sync_file(path: &FsPath) -> ApiResult<()> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_err("opening the image file", e))?;
    file.sync_all()
        .await
        .map_err(|e| io_err("syncing the image file", e))
}

/// Import an OVA appliance (the request body is the .ova tar): every disk its OVF descriptor
/// names becomes a qcow2 image (`NAME`, `NAME-disk2`, ...), all of them or none, and the answer
/// carries the OVF's CPUs, memory and NICs with the matching `vm create` command.
#[utoipa::path(put, path = "/api/v1/images/{name}/import-ova", params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = OvaImport), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import_ova(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<AxumJson<OvaImport>> {
    check_new_name(&state, &crate::tenancy::current_project(), &name)?;
    let body = req.into_body().into_data_stream().map(|chunk| {
        chunk.map_err(|e| ApiFailure(ApiError::invalid(format!("upload interrupted: {e}"))))
    });
    import_ova_op(state, &name, Source::Body(body))
        .await
        .map(AxumJson)
}

/// Import an OVA appliance handed to this replica's local-files socket (`GET
/// /api/v1/local-files`) as `PUT .../import-ova` does an upload. The archive is read through
/// the descriptor; each disk is read from its range of it while a read lease holds it still, or
/// else copied out of it before it is vetted. It runs as an `image.import` operation; the answer
/// comes when every disk is imported.
#[utoipa::path(post, path = "/api/v1/images/{name}/import-ova-local", params(("name" = String, Path)),
    request_body = OvaLocalImportRequest,
    responses((status = 200, body = OvaImport), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import_ova_local(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<OvaLocalImportRequest>,
) -> ApiResult<AxumJson<OvaImport>> {
    req.validate()?;
    // Before the ticket is spent.
    check_new_name(&state, &crate::tenancy::current_project(), &name)?;
    let handed = take_handed(&state, &req.ticket)?;
    let (uid, size) = (handed.uid, handed.size);
    let source = Source::<FileOnly>::File {
        file: handed.file,
        size,
    };
    let result = import_ova_op(state, &name, source).await;
    if let Err(e) = &result {
        tracing::warn!(image = %name, uid, error = %e.0.message, "local OVA import failed");
    }
    result.map(AxumJson)
}

/// [`import_ova_from`] as an `image.import` operation of image `name`, whose message says which
/// disk is being read; the answer names it. The import runs in a task of its own: a caller that
/// goes away does not stop it half-way, and the operation says how it ended.
async fn import_ova_op<S>(
    state: Arc<AppState>,
    name: &str,
    source: Source<S>,
) -> ApiResult<OvaImport>
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>> + Send + 'static,
{
    let reading = match &source {
        Source::File { .. } => "reading the OVA",
        Source::Body(_) => "receiving the OVA",
    };
    let op = start_import_op(&state, name, reading).await?;
    let (project, name) = (crate::tenancy::current_project(), name.to_string());
    let task = tokio::spawn(async move {
        let result = import_ova_from(&state, (&name, &project), source, &op.id).await;
        let outcome = match &result {
            Ok(ova) => {
                let names: Vec<&str> = ova.images.iter().map(|i| i.name.as_str()).collect();
                Ok(format!("OVA imported as image(s) {}", names.join(", ")))
            }
            Err(e) => Err(ApiFailure(e.0.clone())),
        };
        finish_import_op(&state, &op.id, outcome).await;
        result.map(|ova| OvaImport {
            operation: Some(op.id),
            ..ova
        })
    });
    task.await
        .map_err(|e| io_err("OVA import task", std::io::Error::other(e.to_string())))?
}

/// The OVA appliance `source` holds, imported as `name` (and `name-disk2`, ...) into `project`,
/// saying in operation `op` which disk it reads. The callers check `name` is free before they
/// take the source in; every name the OVF asks for is checked again once it is read.
async fn import_ova_from<S>(
    state: &AppState,
    (name, project): (&str, &str),
    source: Source<S>,
    op: &str,
) -> ApiResult<OvaImport>
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>>,
{
    use std::os::fd::AsRawFd;
    let name = name.to_string();
    let project = project.to_string();
    let incoming = Incoming::new(&state.images_dir).await?;
    // An upload is received into the scratch. A handed-in archive is read where it is
    // (through this process's descriptor). Each foreign disk is then vetted and converted
    // straight from its range of the archive: an upload's scratch is ours alone, and a
    // handed-in archive is read so only while it is held still (novacron_qemu::held). Any
    // other disk is copied out of the archive into a scratch of its own before it is vetted,
    // so a change to the file under way cannot slip past the vetting.
    let (archive, via, _handed, lease, in_place) = match source {
        Source::File { file, .. } => {
            let lease = novacron_qemu::held::Held::take(&file)
                .inspect_err(|why| tracing::debug!(why, "the OVA's disks are copied out"))
                .ok();
            let archive = lease.as_ref().map_or_else(
                || PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())),
                novacron_qemu::held::Held::path,
            );
            let in_place = lease.is_some();
            (archive, "handed-in file", Some(file), lease, in_place)
        }
        upload => {
            let path = incoming.dir.join("upload");
            upload.receive(&path, false, |_| async {}).await?;
            (path, "upload", None, None, true)
        }
    };
    let not_ova = |e: String| {
        tracing::warn!(image = %name, reason = %e, "OVA refused");
        ApiFailure(ApiError::invalid(format!(
            "image {name}: not a usable OVA: {e}"
        )))
    };
    let path = archive.clone();
    let (appliance, members) = tokio::task::spawn_blocking(move || read_ova(&path))
        .await
        .map_err(|e| io_err("OVA reader task", e))?
        .map_err(not_ova)?;
    let names: Vec<String> = (0..appliance.disks.len())
        .map(|i| {
            if i == 0 {
                name.clone()
            } else {
                format!("{name}-disk{}", i + 1)
            }
        })
        .collect();
    for n in &names {
        check_new_name(state, &project, n)?;
    }
    let mut prepared = vec![];
    let count = appliance.disks.len();
    for (i, (disk, image_name)) in appliance.disks.iter().zip(&names).enumerate() {
        let member = members
            .iter()
            .find(|m| m.name == disk.file || m.name.ends_with(&format!("/{}", disk.file)))
            .ok_or_else(|| {
                not_ova(format!(
                    "the OVF names disk file {:?}, which the archive does not hold",
                    disk.file
                ))
            })?;
        let disk_incoming = Incoming::new(&state.images_dir).await?;
        let disk_upload = disk_incoming.dir.join("upload");
        let started = std::time::Instant::now();
        let range = (member.offset, member.size);
        let step = format!(
            "disk {} of {count} ({}, {}): checking and converting",
            i + 1,
            disk.file,
            format_size(member.size)
        );
        let fraction = Some(i as f64 / count as f64);
        if let Err(e) = set_progress(state.store.as_ref(), op, &step, fraction).await {
            tracing::debug!(operation = %op, error = %e.0.message, "progress not recorded");
        }
        let converted = if in_place {
            let dest = disk_upload.with_extension("qcow2");
            novacron_qemu::import_range(&archive, lease.as_ref(), range, &dest)
                .await
                .map_err(|e| refused_image(image_name, e))
        } else {
            Ok(None)
        };
        let (prepared_image, read) = match converted {
            Err(e) => (Err(e), "in place"),
            Ok(Some(imported)) => (
                finish_image(state, disk_incoming, image_name, &project, imported).await,
                "in place",
            ),
            Ok(None) => {
                extract(&archive, member.offset, member.size, &disk_upload).await?;
                let prepared = prepare_image(
                    state,
                    disk_incoming,
                    image_name,
                    &project,
                    &disk_upload,
                    false,
                )
                .await;
                (prepared, "copied out")
            }
        };
        let (disk_incoming, image) =
            prepared_image.map_err(|e| not_ova(format!("disk {}: {}", disk.file, e.0.message)))?;
        tracing::info!(
            disk = %disk.file,
            read,
            ms = started.elapsed().as_millis() as u64,
            "OVA disk imported"
        );
        if !matches!(image.kind, ImageKind::Disk { .. }) {
            return Err(not_ova(format!("{} is not a disk image", disk.file)));
        }
        // The boot disk's image boots the way the appliance did.
        let firmware = (prepared.is_empty() && appliance.uefi).then_some(Firmware::Uefi);
        prepared.push((disk_incoming, Image { firmware, ..image }));
    }
    drop(incoming);
    let mut images = vec![];
    for (disk_incoming, image) in prepared {
        match publish(state, disk_incoming, image).await {
            Ok(image) => images.push(image),
            Err(e) => {
                for done in &images {
                    unpublish(state, done).await;
                }
                return Err(e);
            }
        }
    }
    let mut vm_create = format!("novacron vm create {name} --image {name}");
    if let Some(cpus) = appliance.cpus {
        vm_create.push_str(&format!(" --cpus {cpus}"));
    }
    let memory = if appliance.uefi {
        // OVMF needs more than some appliances ask for (or than `vm create`'s default).
        let least = novacron_api_types::validate::MIN_UEFI_MEMORY_BYTES;
        Some(appliance.memory_bytes.map_or(least, |m| m.max(least)))
    } else {
        appliance.memory_bytes
    };
    if appliance.uefi {
        vm_create.push_str(" --firmware uefi");
    }
    if let Some(m) = memory {
        if m % (1 << 30) == 0 {
            vm_create.push_str(&format!(" --memory {}G", m >> 30));
        } else {
            vm_create.push_str(&format!(" --memory {}M", m.div_ceil(1 << 20)));
        }
    }
    let disk_adds = images
        .iter()
        .skip(1)
        .map(|image| format!("novacron vm disk add {name} --image {}", image.name))
        .collect();
    tracing::info!(image = %name, disks = images.len(), via, "OVA imported");
    Ok(OvaImport {
        images,
        appliance: appliance.name,
        cpus: appliance.cpus,
        memory_bytes: appliance.memory_bytes,
        nics: appliance
            .nics
            .into_iter()
            .map(|n| OvaNic {
                network: n.network,
                model: n.model,
            })
            .collect(),
        vm_create,
        disk_adds,
        operation: None,
    })
}

/// The OVF of the OVA at `path` and the archive's members.
fn read_ova(
    path: &FsPath,
) -> Result<
    (
        novacron_qemu::ova::OvfAppliance,
        Vec<novacron_qemu::ova::TarMember>,
    ),
    String,
> {
    use std::io::{Read, Seek};
    let members = novacron_qemu::ova::tar_members(path)?;
    let ovf = members
        .iter()
        .find(|m| m.name.to_ascii_lowercase().ends_with(".ovf"))
        .ok_or("the archive holds no .ovf descriptor, so it is not an OVA appliance")?;
    if ovf.size > 4 << 20 {
        return Err(format!(
            "the OVF descriptor is {} bytes (at most 4 MiB)",
            ovf.size
        ));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening the archive: {e}"))?;
    let mut xml = vec![0u8; ovf.size as usize];
    file.seek(std::io::SeekFrom::Start(ovf.offset))
        .and_then(|_| file.read_exact(&mut xml))
        .map_err(|e| format!("reading the OVF: {e}"))?;
    let xml = String::from_utf8(xml).map_err(|_| "the OVF descriptor is not UTF-8".to_string())?;
    let appliance = novacron_qemu::ova::parse_ovf(&xml)?;
    if appliance.disks.is_empty() {
        return Err("its OVF descriptor names no disks".into());
    }
    Ok((appliance, members))
}

/// Copies `size` bytes at `offset` of `archive` into a new file `dest`.
async fn extract(archive: &FsPath, offset: u64, size: u64, dest: &FsPath) -> ApiResult<()> {
    let (archive, dest) = (archive.to_path_buf(), dest.to_path_buf());
    // One copy in the kernel on the blocking pool: std copies a File's range to a File with
    // copy_file_range. (tokio::io::copy went through an 8 KiB buffer, one blocking-pool round
    // trip each: 1 GiB took about 10 s.)
    let copied = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut src = std::fs::File::open(&archive)?;
        src.seek(std::io::SeekFrom::Start(offset))?;
        let mut out = std::fs::File::create(&dest)?;
        std::io::copy(&mut src.take(size), &mut out)
    })
    .await
    .map_err(|e| io_err("extracting a disk from the OVA", e))?
    .map_err(|e| io_err("extracting a disk from the OVA", e))?;
    if copied != size {
        return Err(ApiError::invalid("the OVA is truncated").into());
    }
    Ok(())
}

/// Removes a published image again (an OVA whose later disk could not be published).
async fn unpublish(state: &AppState, image: &Image) {
    let key = records::image_key(&image.project, &image.name);
    if let Err(e) = state
        .store
        .txn(vec![], vec![Op::Delete { key: key.clone() }])
        .await
    {
        tracing::warn!(image = %image.name, error = %e, "removing a half-imported OVA's image");
        return;
    }
    let _ =
        tokio::fs::remove_dir_all(image_dir(&state.images_dir, &image.project, &image.name)).await;
}

/// Import an image from an http(s) URL: the control plane downloads it (as an operation with
/// progress), checks the SHA-256 when given, and imports it as `PUT .../import` does.
#[utoipa::path(post, path = "/api/v1/images/{name}/import-url", params(("name" = String, Path)),
    request_body = ImageUrlImportRequest,
    responses((status = 202, body = OperationRef), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import_url(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Json(req): Json<ImageUrlImportRequest>,
) -> ApiResult<(StatusCode, AxumJson<OperationRef>)> {
    req.validate()?;
    // The operation is the request's project's; the image may be a public one.
    let image_project = target_project(&scope, req.public)?;
    check_new_name(&state, &image_project, &name)?;
    let expected = expected_sha256(req.sha256.as_deref())?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let message = format!("downloading {}", req.url);
    let op = start_import_op(&state, &name, &message).await?;
    let id = op.id.clone();
    let url = req.url;
    tokio::spawn(async move {
        let result = download_and_import(
            &state,
            &id,
            incoming,
            &name,
            &image_project,
            &url,
            expected.as_deref(),
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(image = %name, %url, error = %e.0.message, "URL import failed");
        }
        let outcome = result.map(|image| imported_message(&name, &image));
        finish_import_op(&state, &id, outcome).await;
    });
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    ))
}

/// Where a client on this host hands the control plane a file to import (see
/// [`crate::local_files`]): the socket and this replica's id. Answers 404 when this replica has
/// no such socket; the client then uploads.
#[utoipa::path(get, path = "/api/v1/local-files",
    responses((status = 200, body = novacron_api_types::LocalFiles), (status = 404, body = ApiError)))]
pub async fn local_files(
    State(state): State<Arc<AppState>>,
) -> ApiResult<AxumJson<novacron_api_types::LocalFiles>> {
    let files = state.local_files.as_ref().ok_or_else(|| {
        ApiError::not_found("this control plane replica takes no local files: upload the file")
    })?;
    Ok(AxumJson(novacron_api_types::LocalFiles {
        socket: files.socket().display().to_string(),
        server: files.server().to_string(),
    }))
}

/// Import a file handed to this replica's local-files socket (`GET /api/v1/local-files`) as an
/// operation with progress: its bytes are copied from the descriptor into the import's scratch
/// and imported as `PUT .../import` does an upload.
#[utoipa::path(post, path = "/api/v1/images/{name}/import-local", params(("name" = String, Path)),
    request_body = ImageLocalImportRequest,
    responses((status = 202, body = OperationRef), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn import_local(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Json(req): Json<ImageLocalImportRequest>,
) -> ApiResult<(StatusCode, AxumJson<OperationRef>)> {
    req.validate()?;
    let image_project = target_project(&scope, req.public)?;
    check_new_name(&state, &image_project, &name)?;
    let expected = expected_sha256(req.sha256.as_deref())?;
    let handed = take_handed(&state, &req.ticket)?;
    let incoming = Incoming::new(&state.images_dir).await?;
    let shown = req.filename.as_deref().unwrap_or("a local file");
    let op = start_import_op(&state, &name, &format!("reading {shown}")).await?;
    let id = op.id.clone();
    let named_iso = req
        .filename
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().ends_with(".iso"));
    tokio::spawn(async move {
        let size = handed.size;
        let source = Source::<FileOnly>::File {
            file: handed.file,
            size,
        };
        let result = import_from(
            &state,
            incoming,
            (&name, &image_project),
            (source, Some(size), named_iso),
            expected.as_deref(),
            Some((&id, "reading")),
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(image = %name, uid = handed.uid, error = %e.0.message, "local import failed");
        }
        let outcome = result.map(|image| imported_message(&name, &image));
        finish_import_op(&state, &id, outcome).await;
    });
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    ))
}

/// The file handed to this replica's local-files socket under `ticket`, which is spent.
fn take_handed(state: &AppState, ticket: &str) -> ApiResult<crate::local_files::HandedFile> {
    state
        .local_files
        .as_ref()
        .and_then(|files| files.take(ticket))
        .ok_or_else(|| {
            ApiFailure(ApiError::invalid(format!(
                "no file was handed to control plane replica {} under ticket {ticket} (a ticket is spent by one import and expires after {}s): hand the file in again, or upload it",
                state.member_id,
                crate::local_files::TICKET_TTL.as_secs()
            )))
        })
}

/// The first `size` bytes of `file`, 4 MiB at a time, each read on the blocking pool at its own
/// offset (the sender's file position is left alone). Ends short if the file does.
fn file_chunks(
    file: std::fs::File,
    size: u64,
) -> impl futures_util::Stream<Item = ApiResult<axum::body::Bytes>> {
    const CHUNK: u64 = 4 << 20;
    let file = Arc::new(file);
    futures_util::stream::unfold(0u64, move |offset| {
        let file = file.clone();
        async move {
            if offset >= size {
                return None;
            }
            let want = (size - offset).min(CHUNK) as usize;
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                        0 => break,
                        n => filled += n,
                    }
                }
                buf.truncate(filled);
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match read {
                Ok(buf) if buf.is_empty() => None,
                Ok(buf) => {
                    let next = offset + buf.len() as u64;
                    Some((Ok(axum::body::Bytes::from(buf)), next))
                }
                Err(e) => Some((Err(io_err("reading the handed file", e)), size)),
            }
        }
    })
}

/// Records a running `image.import` operation (and its runner) for image `name`.
async fn start_import_op(state: &AppState, name: &str, message: &str) -> ApiResult<Operation> {
    let project = crate::tenancy::current_project();
    let op = new_operation("image.import", &project, &format!("image/{name}"), message);
    let runner = put_runner(state, &op)?;
    state.store.txn(vec![], vec![put_op(&op)?, runner]).await?;
    Ok(op)
}

/// What an `image.import` operation says when `image` was imported as `name`.
fn imported_message(name: &str, image: &Image) -> String {
    let how = match &image.kind {
        ImageKind::Iso => "ISO 9660 medium".to_string(),
        ImageKind::Disk { format } => format!("{format} disk"),
        ImageKind::Kernel { .. } => "kernel".to_string(),
    };
    format!(
        "image {name} imported ({how}, {})",
        format_size(image.size_bytes)
    )
}

/// Records how an `image.import` operation ended: succeeded saying `outcome`'s message, or
/// failed with its error's.
async fn finish_import_op(state: &AppState, id: &str, outcome: ApiResult<String>) {
    let (outcome, message) = match outcome {
        Ok(message) => (OperationState::Succeeded, message),
        Err(e) => (OperationState::Failed, e.0.message),
    };
    if let Err(e) = finish(state.store.as_ref(), id, outcome, message).await {
        tracing::warn!(operation = %id, error = %e.0.message, "recording the import's outcome");
    }
}

async fn download_and_import(
    state: &AppState,
    op: &str,
    incoming: Incoming,
    name: &str,
    project: &str,
    url: &str,
    expected: Option<&str>,
) -> ApiResult<Image> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| io_err("HTTP client", e))?;
    let unreachable = |e: reqwest::Error| {
        ApiFailure(ApiError::unavailable(format!(
            "downloading {url}: {}",
            novacron_client::error_chain(&e)
        )))
    };
    let resp = client.get(url).send().await.map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(ApiError::invalid(format!("{url} answered {}", resp.status())).into());
    }
    let total = resp.content_length();
    let body = resp.bytes_stream().map(|c| c.map_err(unreachable));
    let named_iso = url
        .split(['?', '#'])
        .next()
        .is_some_and(|p| p.to_ascii_lowercase().ends_with(".iso"));
    import_from(
        state,
        incoming,
        (name, project),
        (Source::Body(body), total, named_iso),
        expected,
        Some((op, "downloading")),
    )
    .await
}

/// Receives `source` (`total` bytes when known; `named_iso` when its name ends in `.iso`) and
/// imports it as image `name` of `project`. With `progress` = (operation, verb), the operation's
/// message says "`verb`: bytes of total" once a second, then "checking".
async fn import_from<S>(
    state: &AppState,
    incoming: Incoming,
    (name, project): (&str, &str),
    (source, total, named_iso): (Source<S>, Option<u64>, bool),
    expected: Option<&str>,
    progress: Option<(&str, &str)>,
) -> ApiResult<Image>
where
    S: futures_util::Stream<Item = ApiResult<axum::body::Bytes>>,
{
    let started = std::time::Instant::now();
    let mut last_report = started;
    let upload = incoming.dir.join("upload");
    let (received, imported) = receive_and_import(
        source,
        &upload,
        total,
        expected.is_some(),
        named_iso,
        |bytes| {
            let report = progress.filter(|_| last_report.elapsed() >= Duration::from_secs(1));
            if report.is_some() {
                last_report = std::time::Instant::now();
            }
            async move {
                if let Some((op, verb)) = report {
                    let (message, fraction) =
                        progress_message(verb, bytes, total, started.elapsed());
                    if let Err(e) = set_progress(state.store.as_ref(), op, &message, fraction).await
                    {
                        tracing::debug!(operation = %op, error = %e.0.message, "progress not recorded");
                    }
                }
            }
        },
    )
    .await;
    let received = received?;
    check_sha256(expected, &received)?;
    let read = received.read;
    if let Some((op, _)) = progress {
        let checking = format!("checking {}", format_size(received.bytes));
        let _ = set_progress(state.store.as_ref(), op, &checking, None).await;
    }
    let imported = imported.map_err(|e| refused_image(name, e))?;
    let converted = started.elapsed();
    let (incoming, image) = finish_image(state, incoming, name, project, imported).await?;
    let finished = started.elapsed();
    let image = publish(state, incoming, image).await?;
    tracing::info!(
        image = %name,
        read,
        received_and_converted_ms = converted.as_millis() as u64,
        synced_and_hashed_ms = (finished - converted).as_millis() as u64,
        published_ms = (started.elapsed() - finished).as_millis() as u64,
        "image imported"
    );
    Ok(image)
}

/// The operation's message ("`verb`: bytes, rate, ETA") and fraction while receiving.
fn progress_message(
    verb: &str,
    bytes: u64,
    total: Option<u64>,
    elapsed: Duration,
) -> (String, Option<f64>) {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    match total.filter(|t| *t > 0) {
        Some(total) => {
            let eta = (total.saturating_sub(bytes)) as f64 / rate.max(1.0);
            (
                format!(
                    "{verb}: {} of {} ({}/s, ETA {}s)",
                    format_size(bytes),
                    format_size(total),
                    format_size(rate as u64),
                    eta.ceil() as u64
                ),
                Some((bytes as f64 / total as f64).min(1.0)),
            )
        }
        None => (
            format!(
                "{verb}: {} ({}/s)",
                format_size(bytes),
                format_size(rate as u64)
            ),
            None,
        ),
    }
}

/// Sets the message and fraction of a running operation.
async fn set_progress(
    store: &dyn novacron_store::Store,
    id: &str,
    message: &str,
    fraction: Option<f64>,
) -> ApiResult<()> {
    crate::typed_store::update(store, &records::op_key(id), |mut op: Operation| {
        let change = if op.is_done() {
            crate::typed_store::Change::Keep
        } else {
            op.message = message.to_string();
            op.progress = fraction;
            op.updated_at = now();
            crate::typed_store::Change::Write(op)
        };
        std::future::ready(Ok(change))
    })
    .await?;
    Ok(())
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Delete the public image of that name (cluster admins only).
    pub public: Option<bool>,
}

/// Delete an image no VM uses (with `public=true`, a public image no VM of any project uses).
#[utoipa::path(delete, path = "/api/v1/images/{name}", params(("name" = String, Path), DeleteQuery), responses((status = 200), (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    validate_name("image", &name)?;
    let project = target_project(&scope, q.public.unwrap_or(false))?;
    let key = records::image_key(&project, &name);
    let kv = state.store.get(&key).await?.ok_or_else(|| {
        if project != PUBLIC_IMAGES
            && state
                .images
                .get(&records::image_key(PUBLIC_IMAGES, &name))
                .is_some()
        {
            ApiError::not_found(format!(
                "{name:?} is a public image; a cluster admin deletes it with --public"
            ))
        } else {
            ApiError::not_found(format!("no image named {name:?}"))
        }
    })?;
    // The VMs whose image of that name is this one: the project's, or for a public image
    // those of every project (none has its own image of the name).
    let users: Vec<String> = state.vms.with(|vms| {
        vms.values()
            .filter(|v| {
                (v.image == name || v.iso.as_deref() == Some(name.as_str()))
                    && state.names_image_of(&v.project, &name, &project)
            })
            .map(|v| {
                if project == PUBLIC_IMAGES {
                    format!("{}/{}", v.project, v.name)
                } else {
                    v.name.clone()
                }
            })
            .collect()
    });
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "image {name} is used by VMs {}; delete them first",
            users.join(", ")
        ))
        .into());
    }
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
    let _ = tokio::fs::remove_dir_all(image_dir(&state.images_dir, &project, &name)).await;
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
    firmware: Option<novacron_api_types::Firmware>,
    write_disk: F,
) -> ApiResult<Image>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = ApiResult<()>>,
{
    check_new_name(state, project, name)?;
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
        firmware,
    };
    publish(state, incoming, image).await
}
