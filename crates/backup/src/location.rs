//! Opening a repository by where it lives (a directory or an S3 URL) and its optional key
//! file: what the control plane and the node agents both need, in one place.

use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::s3::{S3Backend, S3Config};
use crate::repo::{CreateOptions, Repository};
use crate::{BackupError, KeyFile, LocalBackend, Result};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(String),
    S3(String),
}

/// The storage backend at `location`.
pub fn backend(location: &Location) -> Result<Arc<dyn Backend>> {
    Ok(match location {
        Location::Dir(p) => Arc::new(LocalBackend::new(p)?),
        Location::S3(url) => Arc::new(S3Backend::new(&S3Config::from_url(url)?)?),
    })
}

/// Opens the repository at `location`.
pub async fn open(location: &Location, key_file: Option<&Path>) -> Result<Repository> {
    let key = key_file.map(KeyFile::load).transpose()?;
    Repository::open(backend(location)?, key.as_ref()).await
}

/// Opens the repository at `location`, creating it (and, for encryption, a new key file
/// where none exists yet) when there is none. Returns whether it was created.
pub async fn open_or_create(
    location: &Location,
    key_file: Option<&Path>,
) -> Result<(Repository, bool)> {
    let key = match key_file {
        Some(p) if p.exists() => Some(KeyFile::load(p)?),
        Some(p) => Some(KeyFile::generate(p)?),
        None => None,
    };
    let b = backend(location)?;
    match Repository::open(b.clone(), key.as_ref()).await {
        Ok(r) => Ok((r, false)),
        Err(BackupError::NotARepository { .. }) => {
            let r = Repository::create(
                b,
                CreateOptions {
                    key,
                    ..CreateOptions::default()
                },
            )
            .await?;
            Ok((r, true))
        }
        Err(e) => Err(e),
    }
}
