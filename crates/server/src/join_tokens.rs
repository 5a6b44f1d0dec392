//! Join tokens: minting (the secret is shown once and stored only as its hash), listing,
//! revoking, and deciding whether one may still register a node. The API handlers
//! (`api::join_tokens`) parse and delegate here; registration (`api::agent::register`)
//! consumes single-use tokens through [`use_ops`].

use crate::records::store_err;
use std::time::Duration;

use novacron_api_types::join_token::{
    DEFAULT_JOIN_TOKEN_TTL_SECONDS, JoinTokenCreateRequest, JoinTokenInfo,
    MAX_JOIN_TOKEN_TTL_SECONDS,
};
use novacron_api_types::{ApiError, ErrorCode, UnixSeconds, validate_name};
use novacron_store::{Compare, Op};

use crate::auth::{new_token, token_hash};
use crate::records::{
    self, JoinTokenRecord, JoinUseRecord, TokenRecord, join_token_id, join_use_key, token_key,
};
use crate::state::AppState;

/// Where to get a new join token, for messages.
const CREATE_HINT: &str = "ask an admin for a new one (`novacron join-token create`)";

/// Why `rec` (id `id`) may not register a node at `now`, as the one line the agent prints;
/// `None` when it may.
pub fn refusal(rec: &JoinTokenRecord, id: &str, now: UnixSeconds) -> Option<String> {
    if rec.revoked_at.is_some() {
        return Some(format!("join token {id} was revoked: {CREATE_HINT}"));
    }
    match rec.expires_at {
        Some(t) if now < t => None,
        Some(_) => Some(format!(
            "this join token has expired ({id}): create a new one on the control plane, or {CREATE_HINT}"
        )),
        None => Some(format!(
            "this join token ({id}) has expired (it was minted before join tokens carried an expiry): {CREATE_HINT}"
        )),
    }
}

/// The refusal of a single-use token that already registered `node`.
pub fn spent(id: &str, node: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!(
            "single-use join token {id} already registered node {node}; it registers no other: {CREATE_HINT}"
        ),
    )
}

/// What `join-token list` shows about one token.
pub fn info(
    hash: &str,
    rec: &JoinTokenRecord,
    last_use: Option<&JoinUseRecord>,
    now: UnixSeconds,
) -> JoinTokenInfo {
    let id = join_token_id(hash);
    let state = if rec.revoked_at.is_some() {
        "revoked"
    } else if rec.single_use && last_use.is_some() {
        "used"
    } else if refusal(rec, &id, now).is_some() {
        "expired"
    } else {
        "active"
    };
    JoinTokenInfo {
        id,
        name: rec.name.clone(),
        created_at: rec.created_at,
        expires_at: rec.expires_at,
        single_use: rec.single_use,
        used: last_use.is_some(),
        used_by: last_use.map(|u| u.node.clone()),
        revoked: rec.revoked_at.is_some(),
        state: state.into(),
    }
}

/// Checks a create request; returns the record to store.
pub fn new_record(
    req: &JoinTokenCreateRequest,
    now: UnixSeconds,
) -> Result<JoinTokenRecord, ApiError> {
    if let Some(name) = &req.name {
        validate_name("join token", name).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_JOIN_TOKEN_TTL_SECONDS);
    if ttl == 0 || ttl > MAX_JOIN_TOKEN_TTL_SECONDS {
        return Err(ApiError::invalid(format!(
            "a join token's ttl must be between 1 second and {} days, not {ttl} seconds",
            MAX_JOIN_TOKEN_TTL_SECONDS / 86_400
        )));
    }
    Ok(JoinTokenRecord {
        expires_at: Some(now + ttl),
        name: req.name.clone(),
        created_at: Some(now),
        single_use: req.single_use,
        revoked_at: None,
    })
}

/// Mints a join token: returns the secret (never stored) and its entry.
pub async fn create(
    state: &AppState,
    req: &JoinTokenCreateRequest,
) -> Result<(String, JoinTokenInfo), ApiError> {
    let now = records::now();
    let rec = new_record(req, now)?;
    let secret = new_token();
    let hash = token_hash(&secret);
    let rev = state
        .store
        .put(&token_key(&hash), encode(&TokenRecord::Join(rec.clone()))?)
        .await
        .map_err(store_err)?;
    state.tokens.wait_for(rev, AppState::CATCH_UP).await;
    let info = info(&hash, &rec, None, now);
    tracing::info!(join_token = %info.id, single_use = rec.single_use, expires_at = ?rec.expires_at, "join token created");
    Ok((secret, info))
}

/// Every join token (the newest first), never the secrets.
pub async fn list(state: &AppState) -> Result<Vec<JoinTokenInfo>, ApiError> {
    let (uses, _) = state
        .store
        .list(&records::join_use_prefix())
        .await
        .map_err(store_err)?;
    let uses: std::collections::HashMap<String, JoinUseRecord> = uses
        .iter()
        .filter_map(|kv| {
            let id = kv.key.rsplit('/').next()?.to_string();
            Some((id, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect();
    let now = records::now();
    let mut out: Vec<JoinTokenInfo> = state.tokens.with(|t| {
        t.iter()
            .filter_map(|(k, v)| match v.as_ref() {
                TokenRecord::Join(rec) => {
                    let hash = k.rsplit('/').next()?;
                    Some(info(hash, rec, uses.get(&join_token_id(hash)), now))
                }
                _ => None,
            })
            .collect()
    });
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Revokes join token `id`: it registers no more nodes (nodes it registered keep their own
/// credentials). The record stays, marked, until it would have expired anyway, so that the
/// refusal can say it was revoked.
pub async fn revoke(state: &AppState, id: &str) -> Result<JoinTokenInfo, ApiError> {
    let key = state
        .tokens
        .with(|t| {
            t.iter()
                .find(|(k, v)| {
                    matches!(v.as_ref(), TokenRecord::Join(_))
                        && k.rsplit('/').next().map(join_token_id).as_deref() == Some(id)
                })
                .map(|(k, _)| k.clone())
        })
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no join token {id:?}: see `novacron join-token list`"
            ))
        })?;
    for _ in 0..10 {
        let kv = state
            .store
            .get(&key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::not_found(format!("join token {id} is gone")))?;
        let TokenRecord::Join(mut rec) = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("join token record: {e}")))?
        else {
            return Err(ApiError::not_found(format!("no join token {id:?}")));
        };
        if rec.revoked_at.is_none() {
            rec.revoked_at = Some(records::now());
        }
        let value = encode(&TokenRecord::Join(rec.clone()))?;
        if let Some(rev) = state
            .store
            .compare_and_swap(&key, kv.mod_revision, value)
            .await
            .map_err(store_err)?
        {
            state.tokens.wait_for(rev, AppState::CATCH_UP).await;
            let last_use = state
                .store
                .get(&join_use_key(id))
                .await
                .map_err(store_err)?
                .and_then(|kv| serde_json::from_slice(&kv.value).ok());
            let hash = key.rsplit('/').next().unwrap_or_default();
            tracing::info!(join_token = %id, "join token revoked");
            return Ok(info(hash, &rec, last_use.as_ref(), records::now()));
        }
    }
    Err(ApiError::unavailable(
        "the join token kept changing; try again",
    ))
}

/// What a registration with join token `token_key` adds to its transaction: the token's
/// use, and for a single-use token the condition that it had none yet.
pub async fn use_ops(
    state: &AppState,
    token_key: &str,
    node: &str,
) -> Result<(Vec<Compare>, Vec<Op>), ApiError> {
    let hash = token_key.rsplit('/').next().unwrap_or_default();
    let id = join_token_id(hash);
    let single_use = matches!(
        state.tokens.get(token_key).as_deref(),
        Some(TokenRecord::Join(JoinTokenRecord {
            single_use: true,
            ..
        }))
    );
    let key = join_use_key(&id);
    let mut compares = vec![];
    if single_use {
        if let Some(kv) = state.store.get(&key).await.map_err(store_err)? {
            let used: JoinUseRecord = serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::internal(format!("join token use: {e}")))?;
            return Err(spent(&id, &used.node));
        }
        compares.push(Compare::ModRevision {
            key: key.clone(),
            equals: 0,
        });
    }
    let ops = vec![Op::Put {
        key,
        value: encode(&JoinUseRecord {
            node: node.to_string(),
            at: records::now(),
        })?,
    }];
    Ok((compares, ops))
}

/// After a failed registration transaction: the refusal when it failed because the
/// single-use join token `token_key` was used meanwhile.
pub async fn spent_meanwhile(state: &AppState, token_key: &str) -> Option<ApiError> {
    let id = join_token_id(token_key.rsplit('/').next().unwrap_or_default());
    let kv = state.store.get(&join_use_key(&id)).await.ok()??;
    let used: JoinUseRecord = serde_json::from_slice(&kv.value).ok()?;
    let single_use = matches!(
        state.tokens.get(token_key).as_deref(),
        Some(TokenRecord::Join(JoinTokenRecord {
            single_use: true,
            ..
        }))
    );
    single_use.then(|| spent(&id, &used.node))
}

/// Deletes join tokens (and their use records) that expired over a day ago.
pub async fn expire(state: &AppState) -> Result<usize, ApiError> {
    let cutoff = records::now().saturating_sub(86_400);
    let stale: Vec<(String, String)> = state.tokens.with(|t| {
        t.iter()
            .filter_map(|(k, v)| match v.as_ref() {
                TokenRecord::Join(rec) if rec.expires_at.is_none_or(|e| e < cutoff) => Some((
                    k.clone(),
                    join_token_id(k.rsplit('/').next().unwrap_or_default()),
                )),
                _ => None,
            })
            .collect()
    });
    for (key, id) in &stale {
        state.store.delete(key).await.map_err(store_err)?;
        state
            .store
            .delete(&join_use_key(id))
            .await
            .map_err(store_err)?;
    }
    Ok(stale.len())
}

/// How long `up`/`server` keep printing the default join token: while it has over an hour left.
pub const REPRINT_MARGIN: Duration = Duration::from_secs(3600);

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_and_what_to_do() {
        let now = 1_000_000;
        let live = JoinTokenRecord {
            expires_at: Some(now + 10),
            ..Default::default()
        };
        assert_eq!(refusal(&live, "jt-1", now), None);
        let expired = JoinTokenRecord {
            expires_at: Some(now),
            ..Default::default()
        };
        let m = refusal(&expired, "jt-1", now).unwrap();
        assert!(
            m.contains("expired") && m.contains("join-token create"),
            "{m}"
        );
        let legacy = JoinTokenRecord::default();
        assert!(refusal(&legacy, "jt-1", now).unwrap().contains("expired"));
        let revoked = JoinTokenRecord {
            revoked_at: Some(now - 1),
            ..live.clone()
        };
        let m = refusal(&revoked, "jt-1", now).unwrap();
        assert!(
            m.contains("revoked") && m.contains("join-token create"),
            "{m}"
        );
    }

    #[test]
    fn list_entries_have_a_state_and_no_secret() {
        let now = 1_000_000;
        let hash = "0123456789abcdef0123456789abcdef";
        let rec = JoinTokenRecord {
            expires_at: Some(now + 10),
            single_use: true,
            ..Default::default()
        };
        let i = info(hash, &rec, None, now);
        assert_eq!(i.id, "jt-0123456789abcdef");
        assert_eq!(i.state, "active");
        let used = JoinUseRecord {
            node: "n1".into(),
            at: now,
        };
        let i = info(hash, &rec, Some(&used), now);
        assert_eq!((i.state.as_str(), i.used), ("used", true));
        assert_eq!(i.used_by.as_deref(), Some("n1"));
        let multi = JoinTokenRecord {
            single_use: false,
            ..rec.clone()
        };
        assert_eq!(info(hash, &multi, Some(&used), now).state, "active");
        assert_eq!(info(hash, &rec, None, now + 10).state, "expired");
    }

    #[test]
    fn create_requests_are_checked() {
        let now = 5;
        let r = new_record(&JoinTokenCreateRequest::default(), now).unwrap();
        assert_eq!(r.expires_at, Some(now + DEFAULT_JOIN_TOKEN_TTL_SECONDS));
        for bad in [
            JoinTokenCreateRequest {
                ttl_seconds: Some(0),
                ..Default::default()
            },
            JoinTokenCreateRequest {
                ttl_seconds: Some(MAX_JOIN_TOKEN_TTL_SECONDS + 1),
                ..Default::default()
            },
            JoinTokenCreateRequest {
                name: Some("Not A Name".into()),
                ..Default::default()
            },
        ] {
            assert!(new_record(&bad, now).is_err(), "{bad:?}");
        }
    }
}
