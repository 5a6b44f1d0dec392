//! cloud-init NoCloud seeds: an ISO 9660 image labelled "cidata" holding meta-data, user-data and optionally
//! network-config, written here (ISO 9660 with Joliet names, so no genisoimage is needed).

use std::path::Path;

use crate::QemuError;

const SECTOR: usize = 2048;

/// What goes into a NoCloud seed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoCloudSeed {
    /// cloud-init runs its once-per-instance steps again when this changes.
    pub instance_id: String,
    pub hostname: String,
    pub ssh_authorized_keys: Vec<String>,
    /// Network config (version 1 or 2 YAML) written as `network-config`; `None` leaves networking to the image (DHCP).
    pub network_config: Option<String>,
    /// The user's own user-data, written as it is instead of the generated one (the hostname
    /// and SSH keys then reach the guest through meta-data: `local-hostname`, `public-keys`).
    /// The control plane checked it is cloud-config YAML.
    pub user_data: Option<String>,
    /// vendor-data, written as `vendor-data` when given.
    pub vendor_data: Option<String>,
}

/// Writes a NoCloud seed ISO at `path` with the instance id, hostname and SSH keys.
pub fn write_nocloud_seed(
    path: &Path,
    instance_id: &str,
    hostname: &str,
    ssh_authorized_keys: &[String],
) -> Result<(), QemuError> {
    NoCloudSeed {
        instance_id: instance_id.to_string(),
        hostname: hostname.to_string(),
        ssh_authorized_keys: ssh_authorized_keys.to_vec(),
        network_config: None,
        user_data: None,
        vendor_data: None,
    }
    .write(path)
}

impl NoCloudSeed {
    /// The files of the seed: (name, contents), in name order.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, QemuError> {
        let bad = |msg: String| Err(QemuError::Seed(msg));
        if self.instance_id.is_empty()
            || self.instance_id.len() > 255
            || self.instance_id.chars().any(char::is_control)
        {
            return bad(format!(
                "instance id {:?} must be 1-255 printable characters",
                self.instance_id
            ));
        }
        if !is_hostname(&self.hostname) {
            return bad(format!(
                "hostname {:?} is not a valid host name (letters, digits, '-', dots between labels of 1-63)",
                self.hostname
            ));
        }
        for key in &self.ssh_authorized_keys {
            if key.trim().is_empty() || key.chars().any(char::is_control) {
                return bad(format!("ssh key {key:?} must be one non-empty line"));
            }
        }
        let mut meta = String::new();
        meta.push_str(&format!(
            "instance-id: {}\n",
            yaml_string(&self.instance_id)
        ));
        meta.push_str(&format!(
            "local-hostname: {}\n",
            yaml_string(&self.hostname)
        ));
        let user = match &self.user_data {
            Some(own) => {
                if !self.ssh_authorized_keys.is_empty() {
                    meta.push_str("public-keys:\n");
                    for key in &self.ssh_authorized_keys {
                        meta.push_str(&format!("  - {}\n", yaml_string(key.trim())));
                    }
                }
                own.clone()
            }
            None => {
                let mut user = String::from("#cloud-config\n");
                user.push_str(&format!("hostname: {}\n", yaml_string(&self.hostname)));
                if !self.ssh_authorized_keys.is_empty() {
                    user.push_str("ssh_authorized_keys:\n");
                    for key in &self.ssh_authorized_keys {
                        user.push_str(&format!("  - {}\n", yaml_string(key.trim())));
                    }
                }
                user
            }
        };
        let mut files = vec![("meta-data", meta.into_bytes())];
        if let Some(net) = &self.network_config {
            files.push(("network-config", net.clone().into_bytes()));
        }
        files.push(("user-data", user.into_bytes()));
        if let Some(vendor) = &self.vendor_data {
            files.push(("vendor-data", vendor.clone().into_bytes()));
        }
        Ok(files)
    }

    /// Writes the seed ISO at `path` (replacing any file there).
    pub fn write(&self, path: &Path) -> Result<(), QemuError> {
        let files = self.files()?;
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let iso = build_iso("cidata", &refs, unix_now())?;
        let tmp = path.with_extension("iso.tmp");
        std::fs::write(&tmp, &iso)
            .map_err(|e| QemuError::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| QemuError::io(format!("renaming to {}", path.display()), e))
    }
}

fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) in UTC from Unix seconds.
fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

fn both_u32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

fn both_u16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
}

/// One directory record (ECMA-119 9.1).
fn dir_record(extent: u32, size: u32, is_dir: bool, id: &[u8], date: &[u8; 7]) -> Vec<u8> {
    let pad = usize::from(id.len().is_multiple_of(2));
    let len = 33 + id.len() + pad;
    let mut r = vec![0u8; len];
    r[0] = len as u8;
    r[2..10].copy_from_slice(&both_u32(extent));
    r[10..18].copy_from_slice(&both_u32(size));
    r[18..25].copy_from_slice(date);
    r[25] = if is_dir { 0x02 } else { 0 };
    r[28..32].copy_from_slice(&both_u16(1));
    r[32] = id.len() as u8;
    r[33..33 + id.len()].copy_from_slice(id);
    r
}

/// A path table with only the root directory (ECMA-119 9.4); `big_endian` selects the M table.
fn path_table(root_extent: u32, big_endian: bool) -> Vec<u8> {
    let mut t = vec![1u8, 0];
    t.extend_from_slice(&if big_endian {
        root_extent.to_be_bytes()
    } else {
        root_extent.to_le_bytes()
    });
    t.extend_from_slice(&if big_endian {
        1u16.to_be_bytes()
    } else {
        1u16.to_le_bytes()
    });
    t.extend_from_slice(&[0, 0]); // root identifier byte + padding
    t
}

/// Name of a file in the primary (plain ISO 9660) directory: d-characters, uppercase, with version ";1".
fn primary_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{mapped}.;1")
}

/// Builds a single-directory ISO 9660 image with a Joliet supplementary descriptor (exact-case names).
/// File names must be at most 64 characters; the root directory must fit in one sector (a handful of files).
pub fn build_iso(
    volume_id: &str,
    files: &[(&str, &[u8])],
    unix_time: i64,
) -> Result<Vec<u8>, QemuError> {
    if volume_id.is_empty() || volume_id.len() > 16 || !volume_id.is_ascii() {
        return Err(QemuError::Seed(format!(
            "volume id {volume_id:?} must be 1-16 ASCII characters"
        )));
    }
    let mut sorted: Vec<(&str, &[u8])> = files.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for w in sorted.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(QemuError::Seed(format!("file {} given twice", w[0].0)));
        }
    }
    for (name, data) in &sorted {
        if name.is_empty() || name.len() > 64 || name.contains('/') || !name.is_ascii() {
            return Err(QemuError::Seed(format!(
                "file name {name:?} must be 1-64 ASCII characters without '/'"
            )));
        }
        if data.len() > (u32::MAX as usize) / 2 {
            return Err(QemuError::Seed(format!("file {name} is too large")));
        }
    }
    let (y, mo, d, h, mi, s) = civil(unix_time);
    let rec_date: [u8; 7] = [
        (y - 1900).clamp(0, 255) as u8,
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
        0,
    ];
    let vol_date = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00");

    // Layout (sectors): 16 PVD, 17 Joliet SVD, 18 terminator, 19-22 path tables, 23 root, 24 Joliet root, 25.. data.
    const PVD: usize = 16;
    const ROOT: u32 = 23;
    const JROOT: u32 = 24;
    let mut next = 25u32;
    let mut extents = Vec::new();
    for (_, data) in &sorted {
        extents.push(next);
        next += data.len().div_ceil(SECTOR).max(1) as u32;
    }
    let total_sectors = next;

    let build_dir = |self_extent: u32, joliet: bool| -> Result<Vec<u8>, QemuError> {
        let mut dir = Vec::new();
        dir.extend(dir_record(
            self_extent,
            SECTOR as u32,
            true,
            &[0],
            &rec_date,
        ));
        dir.extend(dir_record(
            self_extent,
            SECTOR as u32,
            true,
            &[1],
            &rec_date,
        ));
        for ((name, data), extent) in sorted.iter().zip(&extents) {
            let id = if joliet {
                ucs2(name)
            } else {
                primary_name(name).into_bytes()
            };
            dir.extend(dir_record(
                *extent,
                data.len() as u32,
                false,
                &id,
                &rec_date,
            ));
        }
        if dir.len() > SECTOR {
            return Err(QemuError::Seed(
                "too many files for a one-sector directory".into(),
            ));
        }
        dir.resize(SECTOR, 0);
        Ok(dir)
    };
    let root = build_dir(ROOT, false)?;
    let jroot = build_dir(JROOT, true)?;

    let descriptor = |joliet: bool| -> Vec<u8> {
        let mut v = vec![0u8; SECTOR];
        v[0] = if joliet { 2 } else { 1 };
        v[1..6].copy_from_slice(b"CD001");
        v[6] = 1;
        let text = |field: &mut [u8], s: &str| {
            if joliet {
                for pair in field.chunks_mut(2) {
                    if let [hi, lo] = pair {
                        (*hi, *lo) = (0, b' ');
                    } else {
                        pair.fill(0);
                    }
                }
                let u = ucs2(s);
                let n = u.len().min(field.len() & !1);
                field[..n].copy_from_slice(&u[..n]);
            } else {
                field.fill(b' ');
                let n = s.len().min(field.len());
                field[..n].copy_from_slice(&s.as_bytes()[..n]);
            }
        };
        text(&mut v[8..40], "LINUX");
        text(&mut v[40..72], volume_id);
        v[80..88].copy_from_slice(&both_u32(total_sectors));
        if joliet {
            v[88..91].copy_from_slice(b"%/E"); // UCS-2 level 3
        }
        v[120..124].copy_from_slice(&both_u16(1));
        v[124..128].copy_from_slice(&both_u16(1));
        v[128..132].copy_from_slice(&both_u16(SECTOR as u16));
        v[132..140].copy_from_slice(&both_u32(10));
        let (l_table, m_table, root_extent) = if joliet {
            (21u32, 22u32, JROOT)
        } else {
            (19, 20, ROOT)
        };
        v[140..144].copy_from_slice(&l_table.to_le_bytes());
        v[148..152].copy_from_slice(&m_table.to_be_bytes());
        v[156..190].copy_from_slice(&dir_record(
            root_extent,
            SECTOR as u32,
            true,
            &[0],
            &rec_date,
        ));
        text(&mut v[190..318], "");
        text(&mut v[318..446], "");
        text(&mut v[446..574], "");
        text(&mut v[574..702], "NOVACRON");
        text(&mut v[702..739], "");
        text(&mut v[739..776], "");
        text(&mut v[776..813], "");
        for (i, date) in [&vol_date, &vol_date, &"0".repeat(16), &vol_date]
            .into_iter()
            .enumerate()
        {
            let off = 813 + i * 17;
            v[off..off + 16].copy_from_slice(date.as_bytes());
            v[off + 16] = 0;
        }
        v[881] = 1;
        v
    };

    let mut iso = vec![0u8; total_sectors as usize * SECTOR];
    let mut put = |sector: usize, bytes: &[u8]| {
        let off = sector * SECTOR;
        iso[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(PVD, &descriptor(false));
    put(PVD + 1, &descriptor(true));
    let mut terminator = vec![0u8; 7];
    terminator[0] = 255;
    terminator[1..6].copy_from_slice(b"CD001");
    terminator[6] = 1;
    put(PVD + 2, &terminator);
    put(19, &path_table(ROOT, false));
    put(20, &path_table(ROOT, true));
    put(21, &path_table(JROOT, false));
    put(22, &path_table(JROOT, true));
    put(ROOT as usize, &root);
    put(JROOT as usize, &jroot);
    for ((_, data), extent) in sorted.iter().zip(&extents) {
        put(*extent as usize, data);
    }
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the Joliet root directory of an image built by [`build_iso`]: (name, contents).
    fn read_joliet(iso: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
        let svd = &iso[17 * SECTOR..18 * SECTOR];
        assert_eq!(svd[0], 2);
        assert_eq!(&svd[1..6], b"CD001");
        assert_eq!(&svd[88..91], b"%/E");
        let label: String = char::decode_utf16(
            svd[40..72]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .map(|c| c.unwrap())
        .collect::<String>()
        .trim_end()
        .to_string();
        let root_extent = u32::from_le_bytes(svd[158..162].try_into().unwrap()) as usize;
        let dir = &iso[root_extent * SECTOR..(root_extent + 1) * SECTOR];
        let mut pos = 0;
        let mut out = Vec::new();
        while dir[pos] != 0 {
            let len = dir[pos] as usize;
            let rec = &dir[pos..pos + len];
            let extent = u32::from_le_bytes(rec[2..6].try_into().unwrap()) as usize;
            assert_eq!(rec[6..10], (extent as u32).to_be_bytes());
            let size = u32::from_le_bytes(rec[10..14].try_into().unwrap()) as usize;
            let id = &rec[33..33 + rec[32] as usize];
            if rec[25] & 2 == 0 {
                let name =
                    char::decode_utf16(id.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
                        .map(|c| c.unwrap())
                        .collect();
                out.push((name, iso[extent * SECTOR..extent * SECTOR + size].to_vec()));
            }
            pos += len;
        }
        (label, out)
    }

    #[test]
    fn iso_layout_and_joliet_names() {
        let big = vec![b'x'; 5000];
        let iso = build_iso(
            "cidata",
            &[("user-data", b"#cloud-config\n"), ("meta-data", &big)],
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(iso.len() % SECTOR, 0);
        let pvd = &iso[16 * SECTOR..17 * SECTOR];
        assert_eq!(&pvd[0..6], b"\x01CD001");
        assert_eq!(&pvd[40..72], format!("{:<32}", "cidata").as_bytes());
        assert_eq!(
            u32::from_le_bytes(pvd[80..84].try_into().unwrap()) as usize * SECTOR,
            iso.len()
        );
        assert_eq!(&pvd[813..829], b"2023111422132000");
        assert_eq!(iso[18 * SECTOR], 255);
        let (label, files) = read_joliet(&iso);
        assert_eq!(label, "cidata");
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], ("meta-data".to_string(), big));
        assert_eq!(
            files[1],
            ("user-data".to_string(), b"#cloud-config\n".to_vec())
        );
    }

    #[test]
    fn seed_contents() {
        let seed = NoCloudSeed {
            instance_id: "i-123".into(),
            hostname: "web-1".into(),
            ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3Nza user@host".into()],
            network_config: None,
            ..NoCloudSeed::default()
        };
        let files = seed.files().unwrap();
        assert_eq!(files[0].0, "meta-data");
        assert_eq!(
            String::from_utf8(files[0].1.clone()).unwrap(),
            "instance-id: \"i-123\"\nlocal-hostname: \"web-1\"\n"
        );
        assert_eq!(files[1].0, "user-data");
        assert_eq!(
            String::from_utf8(files[1].1.clone()).unwrap(),
            "#cloud-config\nhostname: \"web-1\"\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nza user@host\"\n"
        );
        for bad in [
            NoCloudSeed {
                hostname: "bad_host".into(),
                ..seed.clone()
            },
            NoCloudSeed {
                hostname: "-x".into(),
                ..seed.clone()
            },
            NoCloudSeed {
                instance_id: "".into(),
                ..seed.clone()
            },
            NoCloudSeed {
                ssh_authorized_keys: vec!["a\nb".into()],
                ..seed.clone()
            },
        ] {
            assert!(bad.files().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_user_data_goes_in_as_it_is_and_keys_move_to_meta_data() {
        let own = "#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n";
        let seed = NoCloudSeed {
            instance_id: "i-1".into(),
            hostname: "web-1".into(),
            ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3Nza user@host".into()],
            user_data: Some(own.into()),
            vendor_data: Some("#cloud-config\npackages: [htop]\n".into()),
            ..NoCloudSeed::default()
        };
        let files = seed.files().unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(names, ["meta-data", "user-data", "vendor-data"]);
        assert_eq!(files[1].1, own.as_bytes());
        assert_eq!(files[2].1, b"#cloud-config\npackages: [htop]\n");
        assert_eq!(
            String::from_utf8(files[0].1.clone()).unwrap(),
            "instance-id: \"i-1\"\nlocal-hostname: \"web-1\"\npublic-keys:\n  - \"ssh-ed25519 AAAAC3Nza user@host\"\n"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
    }
}
