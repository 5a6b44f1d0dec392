//! S3-compatible object storage backend through the `object_store` crate. S3 PUTs are atomic
//! and durable on success and, since 2020, reads and listings are strongly consistent,
//! which is all the repository needs (no rename, no append).

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::backend::{Backend, BoxFuture, ObjectInfo};
use crate::error::{BackupError, Result};

/// Where and how to reach the bucket.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing slash; may be empty).
    pub prefix: String,
    /// e.g. `http://127.0.0.1:9000` for MinIO/moto/Ceph; `None` = AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// `None`: taken from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain http endpoints (tests, on-site gateways).
    pub allow_http: bool,
}

impl S3Config {
    /// Parses `s3://bucket[/prefix][?endpoint=URL&region=R]`; credentials come from the
    /// environment. `endpoint` beginning with `http://` turns on `allow_http`.
    pub fn from_url(url: &str) -> Result<S3Config> {
        let bad = |m: &str| BackupError::InvalidArgument(format!("bad S3 URL {url:?}: {m}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("must start with s3://"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let (bucket, prefix) = match path.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (path, ""),
        };
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let mut cfg = S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            ..Default::default()
        };
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("endpoint", v)) => {
                    cfg.allow_http = v.starts_with("http://");
                    cfg.endpoint = Some(v.into());
                }
                Some(("region", v)) => cfg.region = v.into(),
                _ => return Err(bad(&format!("unknown parameter {kv:?}"))),
            }
        }
        Ok(cfg)
    }
}

/// A repository in an S3 bucket.
#[derive(Clone)]
pub struct S3Backend {
    store: Arc<AmazonS3>,
    prefix: String,
    location: String,
}

fn backend_err(key: &str, e: object_store::Error) -> BackupError {
    match e {
        object_store::Error::NotFound { .. } => BackupError::NotFound { key: key.into() },
        e => BackupError::Backend {
            key: key.into(),
            message: e.to_string(),
        },
    }
}

impl S3Backend {
    /// Connects (lazily: the first request reaches the server).
    pub fn new(cfg: &S3Config) -> Result<S3Backend> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http);
        if let Some(ep) = &cfg.endpoint {
            b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b.build().map_err(|e| BackupError::Backend {
            key: String::new(),
            message: format!("S3 configuration: {e}"),
        })?;
        let location = match &cfg.endpoint {
            Some(ep) => format!("s3://{}/{} at {ep}", cfg.bucket, cfg.prefix),
            None => format!("s3://{}/{}", cfg.bucket, cfg.prefix),
        };
        Ok(S3Backend {
            store: Arc::new(store),
            prefix: cfg.prefix.trim_matches('/').to_string(),
            location,
        })
    }

    fn path(&self, key: &str) -> Result<OsPath> {
        if key.is_empty()
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(BackupError::InvalidArgument(format!(
                "bad object key {key:?}"
            )));
        }
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        OsPath::parse(&full)
            .map_err(|e| BackupError::InvalidArgument(format!("bad object key {key:?}: {e}")))
    }

    fn strip(&self, location: &OsPath) -> String {
        let s = location.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string())
        }
    }
}

impl Backend for S3Backend {
    fn put(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<()>> {
        let key = key.to_string();
        Box::pin(async move {
            let p = self.path(&key)?;
            self.store
                .put(&p, PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| backend_err(&key, e))
        })
    }

    fn put_new(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<bool>> {
        let key = key.to_string();
        Box::pin(async move {
            let p = self.path(&key)?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(&p, PutPayload::from(data), opts).await {
                Ok(_) => Ok(true),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(false),
                Err(e) => Err(backend_err(&key, e)),
            }
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Vec<u8>>> {
        let key = key.to_string();
        Box::pin(async move {
            let p = self.path(&key)?;
            let r = self.store.get(&p).await.map_err(|e| backend_err(&key, e))?;
            let b = r.bytes().await.map_err(|e| backend_err(&key, e))?;
            Ok(b.to_vec())
        })
    }

    fn exists(&self, key: &str) -> BoxFuture<'_, Result<bool>> {
        let key = key.to_string();
        Box::pin(async move {
            let p = self.path(&key)?;
            match self.store.head(&p).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(backend_err(&key, e)),
            }
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<()>> {
        let key = key.to_string();
        Box::pin(async move {
            let p = self.path(&key)?;
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(backend_err(&key, e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>>> {
        let prefix = prefix.to_string();
        Box::pin(async move {
            // object_store lists whole path segments: list the directory, filter by prefix.
            let dir = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let list_path = match (self.prefix.is_empty(), dir.is_empty()) {
                (true, true) => None,
                (true, false) => Some(OsPath::from(dir)),
                (false, true) => Some(OsPath::from(self.prefix.as_str())),
                (false, false) => Some(OsPath::from(format!("{}/{dir}", self.prefix))),
            };
            let metas: Vec<object_store::ObjectMeta> = self
                .store
                .list(list_path.as_ref())
                .try_collect()
                .await
                .map_err(|e| backend_err(&prefix, e))?;
            let mut out: Vec<ObjectInfo> = metas
                .into_iter()
                .map(|m| ObjectInfo {
                    key: self.strip(&m.location),
                    size_bytes: m.size,
                    modified_unix_ms: m.last_modified.timestamp_millis().max(0) as u64,
                })
                .filter(|o| o.key.starts_with(&prefix))
                .collect();
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn cleanup_partial(&self, _older_than_ms: u64) -> BoxFuture<'_, Result<u64>> {
        // Single-part PUTs leave nothing behind when interrupted.
        Box::pin(async { Ok(0) })
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let c =
            S3Config::from_url("s3://bk/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-1")
                .unwrap();
        assert_eq!(c.bucket, "bk");
        assert_eq!(c.prefix, "some/prefix");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(c.allow_http);
        assert_eq!(c.region, "eu-1");
        assert!(S3Config::from_url("http://x").is_err());
        assert!(S3Config::from_url("s3://").is_err());
        assert!(S3Config::from_url("s3://b?foo=1").is_err());
    }
}
