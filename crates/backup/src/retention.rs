//! Retention policies for `prune`: which backups of a VM to keep. Each rule independently
//! keeps the newest backup of each of the last N periods (hours, days, ISO weeks, months,
//! years — UTC) that have a backup; `keep_last` keeps the N newest; a backup is kept when
//! any rule keeps it (the same semantics as restic's `forget` and PBS's prune).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::util::{civil_from_days, iso_week};

/// How many backups to keep per rule. All zero is rejected (it would delete everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

impl RetentionPolicy {
    /// True when no rule keeps anything.
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
    }
}

/// Period a backup falls in, per rule.
fn period(rule: usize, unix_ms: u64) -> (i64, i64) {
    let secs = (unix_ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, _) = civil_from_days(days);
    match rule {
        0 => (secs.div_euclid(3600), 0),
        1 => (days, 0),
        2 => {
            let (wy, w) = iso_week(days);
            (wy, w as i64)
        }
        3 => (y, m as i64),
        _ => (y, 0),
    }
}

/// Decides, for the backups of one VM given as (creation time ms), which to keep. Returns a
/// parallel vector: `Some(reason)` to keep, `None` to remove.
pub fn select(created_unix_ms: &[u64], policy: &RetentionPolicy) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..created_unix_ms.len()).collect();
    // Newest first; ties broken by position for determinism.
    order.sort_by(|&a, &b| created_unix_ms[b].cmp(&created_unix_ms[a]).then(a.cmp(&b)));
    let mut keep: Vec<Option<String>> = vec![None; created_unix_ms.len()];
    for (rank, &i) in order.iter().enumerate() {
        if rank < policy.keep_last as usize {
            keep[i] = Some("last".into());
        }
    }
    let rules = [
        (policy.keep_hourly, "hourly"),
        (policy.keep_daily, "daily"),
        (policy.keep_weekly, "weekly"),
        (policy.keep_monthly, "monthly"),
        (policy.keep_yearly, "yearly"),
    ];
    for (r, (n, name)) in rules.iter().enumerate() {
        let mut seen = HashSet::new();
        for &i in &order {
            if seen.len() >= *n as usize {
                break;
            }
            if seen.insert(period(r, created_unix_ms[i])) {
                let reason = keep[i].take();
                keep[i] = Some(match reason {
                    Some(prev) => format!("{prev},{name}"),
                    None => name.to_string(),
                });
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::days_from_civil;

    fn at(y: i64, m: u32, d: u32, h: u64) -> u64 {
        (days_from_civil(y, m, d) as u64 * 86_400 + h * 3600) * 1000
    }

    #[test]
    fn daily_weekly_monthly() {
        // Two backups a day (00:00 and 12:00) for 60 days ending 2026-11-23.
        let end = days_from_civil(2026, 11, 23);
        let mut t = Vec::new();
        for d in (end - 59)..=end {
            let (y, m, dd) = civil_from_days(d);
            t.push(at(y, m, dd, 0));
            t.push(at(y, m, dd, 12));
        }
        let p = RetentionPolicy {
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            ..Default::default()
        };
        let k = select(&t, &p);
        let kept: Vec<u64> = t
            .iter()
            .zip(&k)
            .filter(|(_, k)| k.is_some())
            .map(|(t, _)| *t)
            .collect();
        // 7 daily (the 12:00 of the last 7 days) + weekly/monthly extras that are older.
        for d in (end - 6)..=end {
            let (y, m, dd) = civil_from_days(d);
            assert!(kept.contains(&at(y, m, dd, 12)));
            assert!(!kept.contains(&at(y, m, dd, 0)));
        }
        // Months touched: Sep 25..Nov 23 → Nov, Oct, Sep: 3 monthly (newest of each).
        assert!(kept.contains(&at(2026, 10, 31, 12)));
        assert!(kept.contains(&at(2026, 9, 30, 12)));
        // Weekly: newest of the last 4 ISO weeks: Sun 2026-11-22, 11-15, 11-08 (+ Mon 11-23).
        assert!(kept.contains(&at(2026, 11, 15, 12)));
        assert!(kept.contains(&at(2026, 11, 8, 12)));
        assert_eq!(kept.len(), 7 + 2 + 2);
    }

    #[test]
    fn keep_last_and_empty() {
        let t = [5, 1, 3, 4, 2];
        let k = select(
            &t,
            &RetentionPolicy {
                keep_last: 2,
                ..Default::default()
            },
        );
        assert_eq!(k.iter().filter(|x| x.is_some()).count(), 2);
        assert!(k[0].is_some() && k[3].is_some());
        assert!(RetentionPolicy::default().is_empty());
    }
}
