//! Store URLs (`sqlite:///var/lib/novacron/store.db`, a plain path, or
//! `etcd://10.0.0.1:2379,10.0.0.2:2379`) and opening the store they name.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{SqliteStore, Store, StoreError};

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded store in this database file.
    Sqlite(PathBuf),
    /// An etcd cluster; each entry is `http://host:port`.
    Etcd(Vec<String>),
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Etcd(endpoints) => {
                let hosts: Vec<&str> = endpoints
                    .iter()
                    .map(|e| e.strip_prefix("http://").unwrap_or(e))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

/// Parse a store URL: `sqlite:///abs/path`, `sqlite://rel/path`, a plain path, or
/// `etcd://host:port[,host:port...]`.
pub fn parse_store_url(s: &str) -> Result<StoreUrl, StoreError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(StoreError::Invalid("empty store URL".to_string()));
    }
    if let Some(rest) = s.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(StoreError::Invalid(format!(
                "{s:?}: no database path (use sqlite:///path/to/store.db)"
            )));
        }
        return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
    }
    if let Some(rest) = s.strip_prefix("etcd://") {
        let rest = rest.trim_end_matches('/');
        let mut endpoints = Vec::new();
        for host_port in rest.split(',') {
            endpoints.push(parse_endpoint(s, host_port.trim())?);
        }
        return Ok(StoreUrl::Etcd(endpoints));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(StoreError::Invalid(format!(
            "{s:?}: unknown store scheme {scheme:?} (use sqlite:///path or etcd://host:port,...)"
        )));
    }
    Ok(StoreUrl::Sqlite(PathBuf::from(s)))
}

fn parse_endpoint(url: &str, host_port: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("{url:?}: endpoint {host_port:?} {why}"));
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| bad("needs host:port"))?;
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if host.contains('/') || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(bad("is not host:port"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("has an IPv6 address without [brackets]"));
    }
    let port: u16 = port.parse().map_err(|_| bad("has no valid port"))?;
    if port == 0 {
        return Err(bad("has port 0"));
    }
    Ok(format!("http://{host}:{port}"))
}

/// Open the store a URL names: the embedded store (created if missing) or a connection to
/// an etcd cluster.
pub async fn open_store(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))??;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "etcd")]
        StoreUrl::Etcd(endpoints) => {
            let store = crate::EtcdStore::connect(endpoints, crate::EtcdOptions::default()).await?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "etcd"))]
        StoreUrl::Etcd(_) => Err(StoreError::Invalid(
            "this build has no etcd support (novacron-store built without feature \"etcd\")"
                .to_string(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_forms() {
        assert_eq!(
            parse_store_url("sqlite:///var/lib/novacron/store.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/novacron/store.db".into())
        );
        assert_eq!(
            parse_store_url("sqlite://data/store.db").unwrap(),
            StoreUrl::Sqlite("data/store.db".into())
        );
        assert_eq!(
            parse_store_url("/tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(parse_store_url("sqlite://").is_err());
        assert!(parse_store_url("").is_err());
    }

    #[test]
    fn parses_etcd_endpoints() {
        assert_eq!(
            parse_store_url("etcd://10.0.0.1:2379,10.0.0.2:2379").unwrap(),
            StoreUrl::Etcd(vec![
                "http://10.0.0.1:2379".into(),
                "http://10.0.0.2:2379".into()
            ])
        );
        assert_eq!(
            parse_store_url("etcd://[::1]:2379/").unwrap(),
            StoreUrl::Etcd(vec!["http://[::1]:2379".into()])
        );
        for bad in [
            "etcd://",
            "etcd://host",
            "etcd://host:notaport",
            "etcd://host:0",
            "etcd://:2379",
            "etcd://a:1,,b:2",
            "etcd://::1:2379",
            "etcd://user@host:2379",
            "redis://host:1",
        ] {
            assert!(
                matches!(parse_store_url(bad), Err(StoreError::Invalid(_))),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["etcd://10.0.0.1:2379,10.0.0.2:2379", "sqlite:///a/b.db"] {
            let url = parse_store_url(s).unwrap();
            assert_eq!(url.to_string(), s);
            assert_eq!(parse_store_url(&url.to_string()).unwrap(), url);
        }
    }
}
