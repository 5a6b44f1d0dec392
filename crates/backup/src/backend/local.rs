//! Local-directory backend: one file per object. Puts write a temporary file in the target
//! directory and rename it into place, so an object is either absent or complete even after
//! `kill -9`. Durability against power loss comes from `flush`, which the repository calls
//! before publishing an index (and after): with [`SyncLevel::Filesystem`] (default) one
//! `syncfs(2)` makes every earlier put durable at once, as Proxmox Backup Server's default
//! does; [`SyncLevel::File`] fsyncs each object before its rename and the changed directories
//! on flush (slower: one journal commit per chunk).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, BoxFuture, ObjectInfo};
use crate::error::{BackupError, Result};
use crate::util::random_hex8;

const TMP_MARK: &str = ".tmp-";

/// When puts become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncLevel {
    /// fsync every object before it is renamed into place.
    File,
    /// One syncfs(2) of the whole file system on `flush`.
    #[default]
    Filesystem,
}

/// A repository in a local (or mounted) directory.
#[derive(Clone)]
pub struct LocalBackend {
    root: PathBuf,
    dirty_dirs: Arc<Mutex<HashSet<PathBuf>>>,
    sync_level: SyncLevel,
    unsynced: Arc<AtomicBool>,
}

fn syncfs(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)?;
    // SAFETY: `f` is an open descriptor that lives until the end of this function; syncfs(2)
    // only uses the descriptor number and touches no memory of ours.
    let r = unsafe { libc::syncfs(f.as_raw_fd()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl LocalBackend {
    /// Uses `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalBackend> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| BackupError::io(&root, e))?;
        Ok(LocalBackend {
            root,
            dirty_dirs: Arc::new(Mutex::new(HashSet::new())),
            sync_level: SyncLevel::default(),
            unsynced: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Chooses when puts become durable (default [`SyncLevel::Filesystem`]).
    pub fn with_sync_level(mut self, level: SyncLevel) -> LocalBackend {
        self.sync_level = level;
        self
    }

    /// The directory holding the repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(BackupError::InvalidArgument(format!(
                "bad object key {key:?}"
            )));
        }
        Ok(self.root.join(key))
    }

    fn mark_dirty(&self, dir: &Path) {
        if let Ok(mut d) = self.dirty_dirs.lock() {
            d.insert(dir.to_path_buf());
        }
    }

    fn put_blocking(&self, key: &str, data: &[u8], only_new: bool) -> Result<bool> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| BackupError::InvalidArgument(key.to_string()))?
            .to_path_buf();
        if only_new && path.exists() {
            return Ok(false);
        }
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
            if let Some(pp) = dir.parent() {
                self.mark_dirty(pp);
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!("{name}{TMP_MARK}{}", random_hex8()?));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            if self.sync_level == SyncLevel::File {
                f.sync_data()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::io(&tmp, e));
        }
        if only_new {
            // link(2) fails if the name exists: atomic create-if-absent.
            let r = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(BackupError::io(&path, e)),
            }
        } else if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::io(&path, e));
        }
        self.mark_dirty(&dir);
        self.unsynced.store(true, Ordering::Release);
        Ok(true)
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // Walk from the deepest directory named by the prefix, then filter by full key.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackupError::io(&dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| BackupError::io(&dir, e))?;
                let p = entry.path();
                let ft = entry.file_type().map_err(|e| BackupError::io(&p, e))?;
                if ft.is_dir() {
                    stack.push(p);
                    continue;
                }
                let Ok(rel) = p.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel.to_string_lossy().into_owned();
                if !key.starts_with(prefix) || key.contains(TMP_MARK) {
                    continue;
                }
                let md = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(BackupError::io(&p, e)),
                };
                out.push(ObjectInfo {
                    key,
                    size_bytes: md.len(),
                    modified_unix_ms: mtime_ms(&md),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn cleanup_blocking(&self, older_than_ms: u64) -> Result<u64> {
        let now = crate::util::now_unix_ms();
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in rd.flatten() {
                let p = entry.path();
                let Ok(md) = entry.metadata() else { continue };
                if md.is_dir() {
                    stack.push(p);
                } else if entry.file_name().to_string_lossy().contains(TMP_MARK)
                    && now.saturating_sub(mtime_ms(&md)) >= older_than_ms
                    && std::fs::remove_file(&p).is_ok()
                {
                    removed += 1;
                    self.mark_dirty(&dir);
                }
            }
        }
        Ok(removed)
    }
}

fn mtime_ms(md: &std::fs::Metadata) -> u64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        let this = self.clone();
        let key = key.to_string();
        Box::pin(blocking(move || {
            this.put_blocking(&key, &data, false).map(|_| ())
        }))
    }

    fn put_new(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<bool>> {
        let this = self.clone();
        let key = key.to_string();
        Box::pin(blocking(move || this.put_blocking(&key, &data, true)))
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Vec<u8>>> {
        let path = self.path(key);
        let key = key.to_string();
        Box::pin(blocking(move || {
            let path = path?;
            std::fs::read(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    BackupError::NotFound { key }
                } else {
                    BackupError::io(&path, e)
                }
            })
        }))
    }

    fn exists(&self, key: &str) -> BoxFuture<'_, Result<bool>> {
        let path = self.path(key);
        Box::pin(async move {
            let path = path?;
            match std::fs::symlink_metadata(&path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(BackupError::io(&path, e)),
            }
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<()>> {
        let this = self.clone();
        let path = self.path(key);
        Box::pin(blocking(move || {
            let path = path?;
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(d) = path.parent() {
                        this.mark_dirty(d);
                    }
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(BackupError::io(&path, e)),
            }
        }))
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>>> {
        let this = self.clone();
        let prefix = prefix.to_string();
        Box::pin(blocking(move || this.list_blocking(&prefix)))
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        let this = self.clone();
        Box::pin(blocking(move || {
            let dirs: Vec<PathBuf> = match this.dirty_dirs.lock() {
                Ok(mut d) => d.drain().collect(),
                Err(_) => Vec::new(),
            };
            if this.sync_level == SyncLevel::Filesystem {
                if this.unsynced.swap(false, Ordering::AcqRel) || !dirs.is_empty() {
                    syncfs(&this.root).map_err(|e| BackupError::io(&this.root, e))?;
                }
                return Ok(());
            }
            for d in dirs {
                match std::fs::File::open(&d).and_then(|f| f.sync_all()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(BackupError::io(&d, e)),
                }
            }
            Ok(())
        }))
    }

    fn cleanup_partial(&self, older_than_ms: u64) -> BoxFuture<'_, Result<u64>> {
        let this = self.clone();
        Box::pin(blocking(move || this.cleanup_blocking(older_than_ms)))
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path()).unwrap();
        b.put("chunks/ab/abc", b"hello".to_vec()).await.unwrap();
        b.put("indexes/x", b"i".to_vec()).await.unwrap();
        assert_eq!(b.get("chunks/ab/abc").await.unwrap(), b"hello");
        assert!(b.exists("chunks/ab/abc").await.unwrap());
        assert!(!b.exists("chunks/ab/zzz").await.unwrap());
        assert!(matches!(
            b.get("chunks/ab/zzz").await,
            Err(BackupError::NotFound { .. })
        ));
        let l = b.list("chunks/").await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].key, "chunks/ab/abc");
        assert_eq!(l[0].size_bytes, 5);
        assert!(!b.put_new("indexes/x", b"j".to_vec()).await.unwrap());
        assert_eq!(b.get("indexes/x").await.unwrap(), b"i");
        assert!(b.put_new("indexes/y", b"j".to_vec()).await.unwrap());
        b.flush().await.unwrap();
        b.delete("chunks/ab/abc").await.unwrap();
        b.delete("chunks/ab/abc").await.unwrap();
        assert!(b.list("chunks/").await.unwrap().is_empty());
        assert!(b.get("../etc/passwd").await.is_err());
        // Leftover temporaries are invisible to list and removed by cleanup.
        std::fs::write(dir.path().join("indexes/z.tmp-1234"), b"partial").unwrap();
        assert_eq!(b.list("indexes/").await.unwrap().len(), 2);
        assert_eq!(b.cleanup_partial(0).await.unwrap(), 1);
    }
}
