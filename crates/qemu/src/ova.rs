//! OVA appliances: a tar archive holding an OVF descriptor (XML) and the disk files it names. This reads the
//! archive's member list and the descriptor's CPUs, memory, disks and NICs; the disks themselves are vetted and
//! converted by [`crate::import_file`] like any other upload.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// One regular file inside a tar archive: its bytes are `size` bytes at `offset` of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarMember {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

const BLOCK: u64 = 512;
/// More members than any appliance has: a bound on work for a hostile archive.
const MAX_MEMBERS: usize = 4096;

/// The regular files of the (ustar, pax or GNU) tar archive at `path`, in archive order. Refuses a header whose
/// checksum is wrong and a member that runs past the end of the file (truncated), so a damaged archive is an
/// error, not a shorter list.
pub fn tar_members(path: &Path) -> Result<Vec<TarMember>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening the archive: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("reading the archive: {e}"))?
        .len();
    tar_members_of(&mut file, len)
}

/// [`tar_members`] of an archive of `len` bytes read from `file`.
pub fn tar_members_of<R: Read + Seek>(file: &mut R, len: u64) -> Result<Vec<TarMember>, String> {
    let mut members = vec![];
    let mut pos = 0u64;
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        if pos + BLOCK > len {
            return Err("the tar archive is truncated (no end-of-archive marker)".into());
        }
        let mut header = [0u8; BLOCK as usize];
        file.seek(SeekFrom::Start(pos))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|e| format!("reading the archive: {e}"))?;
        if header.iter().all(|b| *b == 0) {
            return Ok(members);
        }
        if !checksum_ok(&header) {
            return Err(format!(
                "not a valid tar archive: the header at byte {pos} has a wrong checksum"
            ));
        }
        let size = match pax_size.take() {
            Some(s) => s,
            None => octal(&header[124..136])
                .ok_or_else(|| format!("not a valid tar archive: bad size at byte {pos}"))?,
        };
        let data = pos + BLOCK;
        let next = size
            .div_ceil(BLOCK)
            .checked_mul(BLOCK)
            .and_then(|padded| data.checked_add(padded))
            .filter(|n| *n <= len)
            .ok_or_else(|| {
                format!("the tar archive is truncated: a member of {size} bytes at byte {data} runs past its end")
            })?;
        let read_data = |file: &mut R| -> Result<Vec<u8>, String> {
            if size > 1 << 20 {
                return Err("a tar extended header is larger than 1 MiB".into());
            }
            let mut buf = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(data))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(|e| format!("reading the archive: {e}"))?;
            Ok(buf)
        };
        match header[156] {
            b'L' => long_name = Some(c_string(&read_data(file)?)),
            b'x' => {
                for (key, value) in pax_records(&read_data(file)?) {
                    match key.as_str() {
                        "path" => pax_path = Some(value),
                        "size" => pax_size = value.parse().ok(),
                        _ => {}
                    }
                }
            }
            b'0' | 0 => {
                let name = pax_path
                    .take()
                    .or_else(|| long_name.take())
                    .unwrap_or_else(|| {
                        let name = c_string(&header[0..100]);
                        // POSIX ustar only: GNU tar keeps times where ustar has the prefix.
                        let prefix = if &header[257..263] == b"ustar\0" {
                            c_string(&header[345..500])
                        } else {
                            String::new()
                        };
                        if prefix.is_empty() {
                            name
                        } else {
                            format!("{prefix}/{name}")
                        }
                    });
                members.push(TarMember {
                    name,
                    offset: data,
                    size,
                });
                if members.len() > MAX_MEMBERS {
                    return Err(format!("the archive has more than {MAX_MEMBERS} files"));
                }
            }
            _ => {
                // Directories, links and global headers carry nothing an appliance needs.
                long_name = None;
                pax_path = None;
            }
        }
        pos = next;
    }
}

fn checksum_ok(header: &[u8; BLOCK as usize]) -> bool {
    let Some(stored) = octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// A tar number: octal digits (NUL/space padded), or base-256 when the first byte has its top bit set.
fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Records `LEN key=value\n` of a pax extended header.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .filter_map(|l| {
            let (_, kv) = l.split_once(' ')?;
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// What an OVF descriptor says about its virtual machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OvfAppliance {
    pub name: Option<String>,
    pub cpus: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// In boot order: the disks the hardware section attaches, then any others.
    pub disks: Vec<OvfDisk>,
    pub nics: Vec<OvfNic>,
    /// The machine boots through UEFI: VMware's `<vmw:Config vmw:key="firmware"
    /// vmw:value="efi"/>` in the hardware section.
    pub uefi: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvfDisk {
    pub id: String,
    /// The archive member holding the disk (`File ovf:href`).
    pub file: String,
    pub capacity_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OvfNic {
    /// The OVF network it connects to.
    pub network: Option<String>,
    /// e.g. `E1000`, `VmxNet3`.
    pub model: Option<String>,
}

/// Bytes per unit of an OVF allocation unit (`byte * 2^20`, `MegaBytes`, ...); `None` when unknown.
fn allocation_unit(units: &str) -> Option<u64> {
    let u: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    let u = u.to_ascii_lowercase();
    if let Some(rest) = u.strip_prefix("byte") {
        if rest.is_empty() {
            return Some(1);
        }
        let exp: u32 = rest.strip_prefix("*2^")?.parse().ok()?;
        return 1u64.checked_shl(exp);
    }
    match u.as_str() {
        "kilobytes" | "kb" => Some(1 << 10),
        "megabytes" | "mb" => Some(1 << 20),
        "gigabytes" | "gb" => Some(1 << 30),
        "terabytes" | "tb" => Some(1 << 40),
        _ => None,
    }
}

/// A virtual hardware item being read.
#[derive(Default)]
struct Item {
    resource_type: Option<u32>,
    quantity: Option<u64>,
    units: Option<String>,
    host_resource: Option<String>,
    subtype: Option<String>,
    connection: Option<String>,
}

/// Reads an OVF 1.x/2.x descriptor (namespace prefixes ignored): `References/File`, `DiskSection/Disk` and the
/// virtual hardware items for CPUs (resource type 3), memory (4), NICs (10) and disk drives (17).
pub fn parse_ovf(xml: &str) -> Result<OvfAppliance, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut files: Vec<(String, String)> = vec![];
    let mut disks: Vec<(String, String, Option<u64>)> = vec![];
    let mut out = OvfAppliance::default();
    let mut item: Option<Item> = None;
    let mut attached: Vec<String> = vec![];
    let mut text = String::new();
    let mut saw_envelope = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the OVF descriptor is not valid XML: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = std::collections::HashMap::new();
                for a in e.attributes().flatten() {
                    let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    if let Ok(v) = a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                        attrs.insert(key, v.into_owned());
                    }
                }
                match name.as_str() {
                    "Envelope" => saw_envelope = true,
                    "File" => {
                        if let (Some(id), Some(href)) = (attrs.get("id"), attrs.get("href")) {
                            files.push((id.clone(), href.clone()));
                        }
                    }
                    "Disk" => {
                        if let (Some(id), Some(file)) = (attrs.get("diskId"), attrs.get("fileRef"))
                        {
                            let unit = attrs
                                .get("capacityAllocationUnits")
                                .map_or(Some(1), |u| allocation_unit(u));
                            let capacity = attrs
                                .get("capacity")
                                .and_then(|c| c.parse::<u64>().ok())
                                .zip(unit)
                                .and_then(|(c, u)| c.checked_mul(u));
                            disks.push((id.clone(), file.clone(), capacity));
                        }
                    }
                    "VirtualSystem" if out.name.is_none() => {
                        out.name = attrs.get("id").cloned();
                    }
                    "Item" | "StorageItem" | "EthernetPortItem" => item = Some(Item::default()),
                    "Config" if attrs.get("key").map(String::as_str) == Some("firmware") => {
                        out.uefi = attrs.get("value").map(String::as_str) == Some("efi");
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Text(t) => {
                if let Ok(s) = t.decode() {
                    text.push_str(&s);
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let value = std::mem::take(&mut text).trim().to_string();
                if let Some(it) = item.as_mut() {
                    match name.as_str() {
                        "ResourceType" => it.resource_type = value.parse().ok(),
                        "VirtualQuantity" => it.quantity = value.parse().ok(),
                        "AllocationUnits" => it.units = Some(value),
                        "HostResource" => it.host_resource = Some(value),
                        "ResourceSubType" => it.subtype = Some(value),
                        "Connection" => it.connection = Some(value),
                        "Item" | "StorageItem" | "EthernetPortItem" => {
                            if let Some(it) = item.take() {
                                apply_item(&mut out, &mut attached, it)?;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_envelope {
        return Err("the OVF descriptor has no Envelope element".into());
    }
    let href = |file_ref: &str| {
        files
            .iter()
            .find(|(id, _)| id == file_ref)
            .map(|(_, h)| h.clone())
            .ok_or_else(|| {
                format!("OVF disk refers to file {file_ref:?}, which References does not list")
            })
    };
    let mut ordered: Vec<&(String, String, Option<u64>)> = attached
        .iter()
        .filter_map(|id| disks.iter().find(|d| &d.0 == id))
        .collect();
    for d in &disks {
        if !ordered.iter().any(|o| o.0 == d.0) {
            ordered.push(d);
        }
    }
    for (id, file_ref, capacity) in ordered {
        out.disks.push(OvfDisk {
            id: id.clone(),
            file: href(file_ref)?,
            capacity_bytes: *capacity,
        });
    }
    Ok(out)
}

fn apply_item(out: &mut OvfAppliance, attached: &mut Vec<String>, it: Item) -> Result<(), String> {
    match it.resource_type {
        Some(3) => {
            let n = it.quantity.unwrap_or(1);
            out.cpus = Some(u32::try_from(n).map_err(|_| format!("OVF asks for {n} CPUs"))?);
        }
        Some(4) => {
            let unit = match &it.units {
                Some(u) => allocation_unit(u)
                    .ok_or_else(|| format!("OVF memory has unknown allocation units {u:?}"))?,
                None => 1 << 20,
            };
            out.memory_bytes = it.quantity.and_then(|q| q.checked_mul(unit));
        }
        Some(10) => out.nics.push(OvfNic {
            network: it.connection,
            model: it.subtype,
        }),
        Some(17) => {
            if let Some(id) = it
                .host_resource
                .as_deref()
                .and_then(|h| h.rsplit('/').next())
            {
                // A disk attached twice is still one disk.
                if !attached.iter().any(|a| a == id) {
                    attached.push(id.to_string());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:href="app-disk1.vmdk" ovf:id="file1"/>
    <File ovf:href="app-disk2.vmdk" ovf:id="file2"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="data" ovf:fileRef="file2"/>
    <Disk ovf:capacity="16777216" ovf:diskId="root" ovf:fileRef="file1"/>
  </DiskSection>
  <NetworkSection><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="web-appliance">
    <VirtualHardwareSection>
      <Item><rasd:ElementName>2 virtual CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>
      <Item><rasd:HostResource>ovf:/disk/root</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

    #[test]
    fn reads_an_ovf() {
        let a = parse_ovf(OVF).unwrap();
        assert_eq!(a.name.as_deref(), Some("web-appliance"));
        assert_eq!(a.cpus, Some(2));
        assert_eq!(a.memory_bytes, Some(512 << 20));
        let disks: Vec<_> = a
            .disks
            .iter()
            .map(|d| (d.id.as_str(), d.file.as_str(), d.capacity_bytes))
            .collect();
        assert_eq!(
            disks,
            [
                ("root", "app-disk1.vmdk", Some(16 << 20)),
                ("data", "app-disk2.vmdk", Some(2 << 30))
            ]
        );
        assert_eq!(
            a.nics,
            [OvfNic {
                network: Some("VM Network".into()),
                model: Some("VmxNet3".into())
            }]
        );
        assert!(!a.uefi, "BIOS unless the OVF says efi");
        let efi = OVF.replace(
            "</VirtualHardwareSection>",
            r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/></VirtualHardwareSection>"#,
        );
        assert!(parse_ovf(&efi).unwrap().uefi);
        assert!(parse_ovf("<notovf/>").unwrap_err().contains("Envelope"));
        assert!(
            parse_ovf("<Envelope><a></b></Envelope>")
                .unwrap_err()
                .contains("not valid XML")
        );
    }

    #[test]
    fn a_disk_attached_twice_is_imported_once() {
        let root = "<Item><rasd:HostResource>ovf:/disk/root</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>";
        let twice = OVF.replacen(root, &format!("{root}{root}"), 1);
        assert_ne!(twice, OVF);
        let ids: Vec<_> = parse_ovf(&twice)
            .unwrap()
            .disks
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["root", "data"]);
    }

    #[test]
    fn allocation_units() {
        assert_eq!(allocation_unit("byte * 2^20"), Some(1 << 20));
        assert_eq!(allocation_unit("byte"), Some(1));
        assert_eq!(allocation_unit("MegaBytes"), Some(1 << 20));
        assert_eq!(allocation_unit("furlongs"), None);
    }

    /// A ustar header for a regular file of `size` bytes.
    fn header(name: &str, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    #[test]
    fn lists_tar_members_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = header("a.ovf", 5);
        tar.extend(b"hello");
        tar.resize(1024, 0);
        tar.extend(header("disk.vmdk", 600));
        tar.extend(vec![7u8; 1024]);
        tar.extend(vec![0u8; 1024]);
        let p = dir.path().join("x.ova");
        std::fs::write(&p, &tar).unwrap();
        let m = tar_members(&p).unwrap();
        assert_eq!(
            m,
            [
                TarMember {
                    name: "a.ovf".into(),
                    offset: 512,
                    size: 5
                },
                TarMember {
                    name: "disk.vmdk".into(),
                    offset: 1536,
                    size: 600
                }
            ]
        );
        std::fs::write(&p, &tar[..1800]).unwrap();
        assert!(tar_members(&p).unwrap_err().contains("truncated"));
        let mut bad = tar.clone();
        bad[0] = b'b';
        std::fs::write(&p, &bad).unwrap();
        assert!(tar_members(&p).unwrap_err().contains("checksum"));
    }

    #[test]
    fn a_member_size_near_the_u64_limit_is_truncation_not_overflow() {
        // GNU base-256 sizes reach u64::MAX; rounding one up to whole blocks must not wrap.
        let mut h = header("big", 0);
        h[124..136].copy_from_slice(&[
            0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h.extend(vec![0u8; 1024]);
        let len = h.len() as u64;
        let err = tar_members_of(&mut std::io::Cursor::new(h), len).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
