//! The CLI configuration file: where the API is, the token, and the cluster CA to trust.
//! `NOVACRON_URL` (comma-separated for several servers), `NOVACRON_TOKEN` and
//! `NOVACRON_CA_CERT` (a PEM file) override what the file says. The file may also name a
//! default project ([`default_project`]; `NOVACRON_PROJECT` overrides it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ClientError;

/// What a client needs to talk to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Control-plane base URLs, e.g. `https://127.0.0.1:9440`; tried in order.
    pub servers: Vec<String>,
    pub token: String,
    pub ca_cert_pem: String,
}

/// `$NOVACRON_CONFIG`, else `$XDG_CONFIG_HOME/novacron/config.json`, else
/// `~/.config/novacron/config.json`.
pub fn default_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NOVACRON_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("novacron").join("config.json")
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// The file at [`default_config_path`] with environment overrides applied.
    pub fn load() -> Result<Config, ClientError> {
        Self::load_from(&default_config_path())
    }

    pub fn load_from(path: &Path) -> Result<Config, ClientError> {
        let file = match std::fs::read(path) {
            Ok(bytes) => Some(serde_json::from_slice::<Config>(&bytes).map_err(|e| {
                ClientError::Config(format!(
                    "{} is not a valid NovaCron config: {e}",
                    path.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ClientError::Io {
                    what: format!("cannot read {}", path.display()),
                    source,
                });
            }
        };
        let url = env_nonempty("NOVACRON_URL");
        let token = env_nonempty("NOVACRON_TOKEN");
        let ca = match env_nonempty("NOVACRON_CA_CERT") {
            Some(p) => Some(
                std::fs::read_to_string(&p).map_err(|source| ClientError::Io {
                    what: format!("cannot read NOVACRON_CA_CERT {p}"),
                    source,
                })?,
            ),
            None => None,
        };
        let missing = || {
            ClientError::Config(format!(
                "no NovaCron config at {}: run `novacron up`, or set NOVACRON_URL, NOVACRON_TOKEN and NOVACRON_CA_CERT",
                path.display()
            ))
        };
        let servers = match url {
            Some(u) => u.split(',').map(|s| s.trim().to_string()).collect(),
            None => file.as_ref().ok_or_else(missing)?.servers.clone(),
        };
        let token = match token {
            Some(t) => t,
            None => file.as_ref().ok_or_else(missing)?.token.clone(),
        };
        let ca_cert_pem = match ca {
            Some(c) => c,
            None => file.as_ref().ok_or_else(missing)?.ca_cert_pem.clone(),
        };
        Ok(Config {
            servers,
            token,
            ca_cert_pem,
        })
    }

    /// Writes the file atomically, readable by its owner only (it holds a token).
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let io = |what: &str, source| ClientError::Io {
            what: format!("{what} {}", path.display()),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io("cannot create the directory of", e))?;
        }
        let tmp = path.with_extension("json.tmp");
        // Keys this struct does not know (the default project) stay as they are.
        let mut doc = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        let mine = serde_json::to_value(self)
            .map_err(|e| ClientError::Config(format!("cannot encode the config: {e}")))?;
        if let (Some(doc), Some(mine)) = (doc.as_object_mut(), mine.as_object()) {
            for (k, v) in mine {
                doc.insert(k.clone(), v.clone());
            }
        }
        let json = serde_json::to_vec_pretty(&doc)
            .map_err(|e| ClientError::Config(format!("cannot encode the config: {e}")))?;
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("cannot write", e))?;
            // A leftover temp file keeps its old mode through `open`: set it.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("cannot set the mode of", e))?;
            f.write_all(&json).map_err(|e| io("cannot write", e))?;
            f.sync_all().map_err(|e| io("cannot sync", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io("cannot replace", e))?;
        Ok(())
    }
}

/// The project requests name by default: `NOVACRON_PROJECT`, else the config file's
/// `project`, else none (the server then takes the token's project, or `default`).
pub fn default_project(path: &Path) -> Option<String> {
    if let Some(p) = env_nonempty("NOVACRON_PROJECT") {
        return Some(p);
    }
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("project")?.as_str().map(str::to_string))
        .filter(|p| !p.is_empty())
}

/// Sets (or with `None` removes) the config file's default project, keeping the rest.
pub fn set_default_project(path: &Path, project: Option<&str>) -> Result<(), ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
    if let Some(o) = doc.as_object_mut() {
        match project {
            Some(p) => o.insert("project".into(), p.into()),
            None => o.remove("project"),
        };
    }
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|source| ClientError::Io {
                what: format!("cannot write {}", tmp.display()),
                source,
            })?;
        let json = serde_json::to_vec_pretty(&doc)
            .map_err(|e| ClientError::Config(format!("cannot encode the config: {e}")))?;
        f.write_all(&json).map_err(|source| ClientError::Io {
            what: format!("cannot write {}", tmp.display()),
            source,
        })?;
    }
    std::fs::rename(&tmp, path).map_err(|source| ClientError::Io {
        what: format!("cannot replace {}", path.display()),
        source,
    })
}
