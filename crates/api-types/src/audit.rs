//! The audit log as the API shows it, and the hash chain that makes it tamper-evident.
//!
//! Every request that changes something, and every refused one, becomes an [`AuditRecord`].
//! Records are numbered from 1 without gaps; each carries the hash of the one before it
//! (`prev`, [`GENESIS`] for the first) and its own hash over that and all its fields
//! ([`record_hash`]). The store also keeps the chain's head (last number and hash), and the
//! control plane writes checkpoints of the head where an operator can keep them.
//! [`verify`] walks a chain in order and names the first record that does not fit: an
//! edited record fails its own hash, a deleted, inserted or moved one breaks the numbering
//! or the link to its predecessor, and records cut from the end disagree with the head or
//! with a checkpoint.
//!
//! The same code runs in the control plane (which appends) and in the CLI (which verifies
//! what it exported), so the two cannot disagree on what a hash covers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UnixSeconds;

/// The `prev` of the first record: 32 zero bytes, in hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a request ended, as the audit log counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Answered with 2xx or 3xx.
    Ok,
    /// Refused for want of a valid token or role (401, 403), or a project the caller may not
    /// see (404 from the role gate).
    Refused,
    /// Any other error answer.
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// One request in the audit log. Never holds a secret: no bodies, no headers, no tokens
/// (only a token's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When the answer was sent (Unix seconds).
    pub time: UnixSeconds,
    /// Who called: `user alice`, `token tk-…`, `admin token`, `node n1`, `join token jt-…`,
    /// `replica …` or `anonymous`.
    pub actor: String,
    /// The user behind the token, if it is a user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The API token's id, if the caller used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The project the request acted in; none for cluster and agent routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Method and route: `POST /api/v1/vms/{name}/start`.
    pub action: String,
    /// The path called: `/api/v1/vms/web1/start`.
    pub target: String,
    pub outcome: AuditOutcome,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The request's id (the `X-Request-Id` the caller sent, or one the control plane made
    /// and answered with).
    pub request_id: String,
    /// The caller's address (`ip:port`), when known.
    pub source: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// BLAKE3 of `prev` and every field above ([`record_hash`]), in hex.
    pub hash: String,
}

/// The last record of the chain, kept next to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct AuditHead {
    /// 0 while the log is empty.
    pub seq: u64,
    /// [`GENESIS`] while the log is empty.
    pub hash: String,
}

/// A page of `GET /api/v1/audit`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// A checkpoint of the chain's head, as the control plane writes it (one JSON object per
/// line in `<data-dir>/audit-checkpoints.jsonl`, and a log line `audit checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditCheckpoint {
    pub seq: u64,
    pub hash: String,
    pub time: UnixSeconds,
}

/// What [`verify`] found in a sound chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerified {
    pub records: u64,
    pub head: AuditHead,
    pub checkpoints: usize,
}

/// The first place where a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct AuditBroken {
    /// The number of the first record that does not fit (where one was expected).
    pub seq: u64,
    pub reason: String,
}

/// The hash of `r`: BLAKE3 over a domain tag, `r.prev` and every other field except `hash`,
/// each length-prefixed so no two records encode alike.
pub fn record_hash(r: &AuditRecord) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"novacron-audit-v1\0");
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(r.prev.as_bytes());
    field(&r.seq.to_le_bytes());
    field(&r.time.to_le_bytes());
    field(r.actor.as_bytes());
    for opt in [&r.user, &r.token_id, &r.project] {
        match opt {
            Some(s) => {
                field(b"\x01");
                field(s.as_bytes());
            }
            None => field(b"\x00"),
        }
    }
    field(r.action.as_bytes());
    field(r.target.as_bytes());
    field(r.outcome.as_str().as_bytes());
    field(&r.status.to_le_bytes());
    field(r.request_id.as_bytes());
    field(r.source.as_bytes());
    h.finalize().to_hex().to_string()
}

/// Links `r` after `head`: sets its number, `prev` and hash. Returns the new head.
pub fn chain(head: &AuditHead, r: &mut AuditRecord) -> AuditHead {
    r.seq = head.seq + 1;
    r.prev = if head.seq == 0 {
        GENESIS.to_string()
    } else {
        head.hash.clone()
    };
    r.hash = record_hash(r);
    AuditHead {
        seq: r.seq,
        hash: r.hash.clone(),
    }
}

/// Checks a whole chain, in the order it is stored, against the stored head and any
/// checkpoints the operator kept. Names the first record that does not fit.
pub fn verify(
    records: &[AuditRecord],
    head: &AuditHead,
    checkpoints: &[AuditCheckpoint],
) -> Result<AuditVerified, AuditBroken> {
    let mut expect = AuditHead {
        seq: 0,
        hash: GENESIS.to_string(),
    };
    for r in records {
        let seq = expect.seq + 1;
        let broken = |reason: String| AuditBroken { seq, reason };
        if r.seq != seq {
            return Err(broken(if r.seq > seq {
                format!(
                    "the next record is numbered {} (records {seq} to {} are missing)",
                    r.seq,
                    r.seq - 1
                )
            } else {
                format!(
                    "the next record is numbered {} (a record was inserted or moved)",
                    r.seq
                )
            }));
        }
        if r.prev != expect.hash {
            return Err(broken(format!(
                "it does not link to record {} (prev {} instead of {}): a record before it was replaced, or it was moved",
                expect.seq,
                short(&r.prev),
                short(&expect.hash)
            )));
        }
        let actual = record_hash(r);
        if actual != r.hash {
            return Err(broken(format!(
                "its contents do not match its hash (edited; stored {}, computed {})",
                short(&r.hash),
                short(&actual)
            )));
        }
        expect = AuditHead {
            seq: r.seq,
            hash: r.hash.clone(),
        };
    }
    let head_hash = if head.seq == 0 { GENESIS } else { &head.hash };
    if head.seq != expect.seq || head_hash != expect.hash {
        return Err(AuditBroken {
            seq: expect.seq + 1,
            reason: if head.seq > expect.seq {
                format!(
                    "the chain ends at record {} but its head says {}: records were removed from the end",
                    expect.seq, head.seq
                )
            } else {
                format!(
                    "the chain's head (record {}, {}) does not match its last record ({}, {})",
                    head.seq,
                    short(head_hash),
                    expect.seq,
                    short(&expect.hash)
                )
            },
        });
    }
    for c in checkpoints {
        let Some(r) = c
            .seq
            .checked_sub(1)
            .and_then(|i| records.get(usize::try_from(i).ok()?))
        else {
            return Err(AuditBroken {
                seq: c.seq,
                reason: format!(
                    "a checkpoint names record {} but the chain ends at {}: records were removed",
                    c.seq, expect.seq
                ),
            });
        };
        if r.hash != c.hash {
            return Err(AuditBroken {
                seq: c.seq,
                reason: format!(
                    "the checkpoint of record {} says {} but the chain has {}: the chain was rewritten",
                    c.seq,
                    short(&c.hash),
                    short(&r.hash)
                ),
            });
        }
    }
    Ok(AuditVerified {
        records: records.len() as u64,
        head: expect,
        checkpoints: checkpoints.len(),
    })
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            seq: 0,
            time: 1_800_000_000 + i,
            actor: format!("user u{}", i % 3),
            user: Some(format!("u{}", i % 3)),
            token_id: i.is_multiple_of(2).then(|| format!("tk-{i}")),
            project: (!i.is_multiple_of(4)).then(|| "team-a".to_string()),
            action: "POST /api/v1/vms".into(),
            target: format!("/api/v1/vms/vm{i}"),
            outcome: if i.is_multiple_of(5) {
                AuditOutcome::Refused
            } else {
                AuditOutcome::Ok
            },
            status: if i.is_multiple_of(5) { 403 } else { 201 },
            request_id: format!("req-{i}"),
            source: "127.0.0.1:5000".into(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    fn sample(n: u64) -> (Vec<AuditRecord>, AuditHead) {
        let mut head = AuditHead::default();
        let mut out = vec![];
        for i in 0..n {
            let mut r = record(i);
            head = chain(&head, &mut r);
            out.push(r);
        }
        (out, head)
    }

    /// xorshift64*: enough randomness to pick tamperings, reproducible per seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn a_sound_chain_verifies_with_its_head_and_checkpoints() {
        let (rs, head) = sample(50);
        let cps = [
            AuditCheckpoint {
                seq: 10,
                hash: rs[9].hash.clone(),
                time: 0,
            },
            AuditCheckpoint {
                seq: 50,
                hash: rs[49].hash.clone(),
                time: 0,
            },
        ];
        let v = verify(&rs, &head, &cps).unwrap();
        assert_eq!((v.records, v.head.seq, v.checkpoints), (50, 50, 2));
        // An empty log is sound too.
        assert!(verify(&[], &AuditHead::default(), &[]).is_ok());
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let (rs, _) = sample(1);
        let base = rs[0].clone();
        let edits: [fn(&mut AuditRecord); 11] = [
            |r| r.time += 1,
            |r| r.actor.push('x'),
            |r| r.user = None,
            |r| r.token_id = Some("tk-0x".into()),
            |r| r.project = Some("team-b".into()),
            |r| r.action = "DELETE /api/v1/vms".into(),
            |r| r.target.push('x'),
            |r| r.outcome = AuditOutcome::Failed,
            |r| r.status = 500,
            |r| r.request_id.push('x'),
            |r| r.source = "10.0.0.1:1".into(),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut r = base.clone();
            edit(&mut r);
            assert_ne!(record_hash(&r), base.hash, "edit {i} left the hash alone");
        }
        // Moving a value between two optional fields changes the hash too.
        let mut a = base.clone();
        a.user = None;
        a.token_id = Some("u0".into());
        let mut b = base.clone();
        b.user = Some("u0".into());
        b.token_id = None;
        assert_ne!(record_hash(&a), record_hash(&b));
    }

    #[test]
    fn random_edits_deletions_insertions_and_reorders_are_all_caught() {
        for seed in 1..=2000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let n = 2 + rng.below(40) as u64;
            let (mut rs, mut head) = sample(n);
            let kind = rng.below(7);
            let i = rng.below(rs.len());
            let what = match kind {
                0 => {
                    // Edit one field of one record.
                    let r = &mut rs[i];
                    match rng.below(5) {
                        0 => r.actor = "user mallory".into(),
                        1 => r.outcome = AuditOutcome::Ok,
                        2 => r.time = r.time.wrapping_sub(3600),
                        3 => r.project = None,
                        _ => r.status = 200,
                    }
                    if rs[i] == sample(n).0[i] {
                        continue; // the edit happened to change nothing
                    }
                    "edit"
                }
                1 => {
                    rs.remove(i);
                    "delete"
                }
                2 => {
                    // Insert a forged record, well formed on its own, with a plausible link.
                    let mut forged = record(99);
                    let prev = if i == 0 {
                        AuditHead::default()
                    } else {
                        AuditHead {
                            seq: rs[i - 1].seq,
                            hash: rs[i - 1].hash.clone(),
                        }
                    };
                    chain(&prev, &mut forged);
                    rs.insert(i, forged);
                    "insert"
                }
                3 => {
                    let j = (i + 1 + rng.below(rs.len() - 1)) % rs.len();
                    rs.swap(i, j);
                    "swap"
                }
                4 => {
                    // Delete a run and renumber what follows, keeping the stored hashes.
                    let k = 1 + rng.below(rs.len() - i);
                    rs.drain(i..i + k);
                    for (pos, r) in rs.iter_mut().enumerate() {
                        r.seq = pos as u64 + 1;
                    }
                    "delete and renumber"
                }
                5 => {
                    // Cut the tail and move the head back to match: only a checkpoint can
                    // tell, so keep one of the original last record.
                    let original_last = rs.last().map(|r| (r.seq, r.hash.clone()));
                    let keep = rng.below(rs.len());
                    rs.truncate(keep);
                    head = rs.last().map_or_else(AuditHead::default, |r| AuditHead {
                        seq: r.seq,
                        hash: r.hash.clone(),
                    });
                    let (seq, hash) = original_last.unwrap();
                    let cps = [AuditCheckpoint { seq, hash, time: 0 }];
                    assert!(
                        verify(&rs, &head, &cps).is_err(),
                        "seed {seed}: tail cut to {keep} not caught by the checkpoint"
                    );
                    continue;
                }
                _ => {
                    // Edit a record and fix its own hash: the next link breaks (or the
                    // head, for the last one).
                    let r = &mut rs[i];
                    r.actor = "user mallory".into();
                    r.hash = record_hash(r);
                    "edit and rehash"
                }
            };
            let err = verify(&rs, &head, &[])
                .expect_err(&format!("seed {seed}: {what} at {i} of {n} was not caught"));
            assert!(
                err.seq >= 1 && err.seq <= n + 1,
                "seed {seed}: {what}: {err}"
            );
        }
    }

    #[test]
    fn the_first_broken_record_is_named() {
        let (mut rs, head) = sample(10);
        rs[6].target = "/api/v1/vms/other".into();
        let e = verify(&rs, &head, &[]).unwrap_err();
        assert_eq!(e.seq, 7, "{e}");
        assert!(e.reason.contains("edited"), "{e}");
        let (mut rs, head) = sample(10);
        rs.remove(3);
        let e = verify(&rs, &head, &[]).unwrap_err();
        assert_eq!(e.seq, 4, "{e}");
        assert!(e.reason.contains("missing"), "{e}");
    }
}
