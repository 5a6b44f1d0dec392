//! Benchmark corpora: random (incompressible), text (real text files from the host), mixed
//! (segments of text, binaries, random data, zeros and repeats) and memory (the RAM of a real
//! Linux guest booted under QEMU/TCG, saved from a file-backed memory backend).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use novacron_qemu::{GuestFile, TinyOptions};

/// Which corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorpusKind {
    /// A booted guest's RAM image.
    Memory,
    /// Real text files.
    Text,
    /// Incompressible bytes.
    Random,
    /// Segments of text, binaries, random data, zeros and repeats.
    Mixed,
}

impl std::str::FromStr for CorpusKind {
    type Err = CorpusError;
    fn from_str(s: &str) -> Result<Self, CorpusError> {
        Ok(match s {
            "memory" => CorpusKind::Memory,
            "text" => CorpusKind::Text,
            "random" => CorpusKind::Random,
            "mixed" => CorpusKind::Mixed,
            other => return Err(CorpusError::Unknown(other.to_string())),
        })
    }
}

impl std::fmt::Display for CorpusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CorpusKind::Memory => "memory",
            CorpusKind::Text => "text",
            CorpusKind::Random => "random",
            CorpusKind::Mixed => "mixed",
        })
    }
}

/// Errors making a corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// Unknown corpus name.
    #[error("unknown corpus {0:?}: use memory, text, random or mixed")]
    Unknown(String),
    /// File system failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not enough host files to build the corpus.
    #[error("not enough {0} files on this host to build the corpus")]
    NotEnoughFiles(&'static str),
    /// Building or running the guest failed.
    #[error("memory image: {0}")]
    Guest(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CorpusError {
    let what = what.into();
    move |source| CorpusError::Io { what, source }
}

/// A corpus ready to send, plus content the receiving site already holds (for DWCP to
/// reference): for the memory corpus, the guest's boot image and data files.
pub struct Corpus {
    /// The bytes to move.
    pub data: Vec<u8>,
    /// Blocks the receiver holds before the transfer (already 4 KiB each).
    pub receiver_holds: Vec<Vec<u8>>,
    /// One-line description of where the bytes came from.
    pub description: String,
}

/// Guest RAM of the memory corpus.
pub const MEMORY_IMAGE_BYTES: u64 = 512 << 20;
const PAGE: usize = 4096;

/// Builds corpus `kind` of about `size_bytes` (the memory corpus is always the whole RAM image).
pub fn build(kind: CorpusKind, size_bytes: u64, cache_dir: &Path) -> Result<Corpus, CorpusError> {
    let size = size_bytes as usize;
    match kind {
        CorpusKind::Random => {
            let mut data = vec![0u8; size];
            random_fill(&mut data, 1);
            Ok(Corpus {
                data,
                receiver_holds: Vec::new(),
                description: "BLAKE3 XOF output (incompressible)".into(),
            })
        }
        CorpusKind::Text => {
            let files = collect_files(&text_roots(), is_text, 512 << 20);
            let (data, unique) = fill_from_files(&files, size)?;
            Ok(Corpus {
                data,
                receiver_holds: Vec::new(),
                description: format!("{} MiB of host text files (/usr/share/doc, /usr/include, python stdlib), repeated to size", unique >> 20),
            })
        }
        CorpusKind::Mixed => Ok(Corpus {
            data: mixed(size)?,
            receiver_holds: Vec::new(),
            description: "1 MiB segments: 30% text, 20% ELF binaries, 25% random, 15% zero, 10% repeat of an earlier segment".into(),
        }),
        CorpusKind::Memory => memory(cache_dir),
    }
}

/// Fills `buf` with incompressible bytes derived from `seed`.
pub fn random_fill(buf: &mut [u8], seed: u64) {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(buf);
}

fn text_roots() -> Vec<PathBuf> {
    [
        "/usr/share/doc",
        "/usr/include",
        "/usr/lib/python3.11",
        "/usr/share/perl",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

fn is_text(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(
        ext,
        "h" | "py" | "pm" | "txt" | "html" | "md" | "rst" | "pl" | "c"
    ) || name == "copyright"
        || name == "changelog"
}

fn is_elf_lib(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".so"))
}

fn is_gz(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) == Some("gz")
}

/// Regular files under `roots` (sorted walk, deterministic), up to `budget` bytes.
fn collect_files(roots: &[PathBuf], keep: fn(&Path) -> bool, budget: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let Ok(rd) = std::fs::read_dir(&p) else {
                continue;
            };
            let mut kids: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            kids.sort();
            stack.extend(kids.into_iter().rev());
        } else if meta.is_file() && meta.len() > 0 && keep(&p) {
            out.push(p);
            total += meta.len();
            if total >= budget {
                break;
            }
        }
    }
    out
}

/// Concatenates files, cycling when they are fewer bytes than `size`. Returns the bytes and
/// how many were unique.
fn fill_from_files(files: &[PathBuf], size: usize) -> Result<(Vec<u8>, usize), CorpusError> {
    let mut unique = Vec::new();
    for f in files {
        if unique.len() >= size {
            break;
        }
        if let Ok(b) = std::fs::read(f) {
            unique.extend_from_slice(&b);
        }
    }
    if unique.is_empty() {
        return Err(CorpusError::NotEnoughFiles("text"));
    }
    let n = unique.len().min(size);
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let take = (size - data.len()).min(n);
        data.extend_from_slice(&unique[..take]);
    }
    Ok((data, n))
}

fn mixed(size: usize) -> Result<Vec<u8>, CorpusError> {
    const SEG: usize = 1 << 20;
    let text_files = collect_files(&text_roots(), is_text, 256 << 20);
    let (text, _) = fill_from_files(&text_files, (size / 2).max(SEG))?;
    let bin_files = collect_files(
        &[PathBuf::from("/usr/lib/x86_64-linux-gnu")],
        is_elf_lib,
        256 << 20,
    );
    let (bins, _) = fill_from_files(&bin_files, (size / 2).max(SEG))
        .map_err(|_| CorpusError::NotEnoughFiles("binary"))?;
    let mut data = Vec::with_capacity(size);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let (mut ti, mut bi) = (0usize, 0usize);
    let mut seg = 0u64;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pick = x % 100;
        let start = data.len();
        let len = SEG.min(size - start);
        match pick {
            0..30 => {
                let s = ti % (text.len().saturating_sub(len).max(1));
                data.extend_from_slice(&text[s..s + len]);
                ti += len;
            }
            30..50 => {
                let s = bi % (bins.len().saturating_sub(len).max(1));
                data.extend_from_slice(&bins[s..s + len]);
                bi += len;
            }
            50..75 => {
                data.resize(start + len, 0);
                random_fill(&mut data[start..], 100 + seg);
            }
            75..90 => data.resize(start + len, 0),
            _ if start >= SEG => {
                let earlier = ((x >> 20) as usize % (start / SEG)) * SEG;
                let copy = data[earlier..earlier + len].to_vec();
                data.extend_from_slice(&copy);
            }
            _ => data.resize(start + len, 0),
        }
        seg += 1;
    }
    Ok(data)
}

/// The guest's fill script: page cache of its image's files is already resident (initramfs);
/// add incompressible data, a duplicate of it, and a compressible concatenation of text.
const MEMFILL: &str = r#"#!/bin/sh
mkdir -p /work
mount -t tmpfs -o size=300m tmpfs /work
dd if=/dev/urandom of=/work/random bs=1M count=48 2>/dev/null
cp /work/random /work/random.copy
cat /data/text/* > /work/text.cat
cat /data/bin/* > /dev/null
cat /data/gz/* > /dev/null
sync
echo NOVACRON-MEMFILL-DONE
"#;

const MEMFILL_MARKER: &str = "NOVACRON-MEMFILL-DONE";

struct GuestData {
    files: Vec<(PathBuf, String)>,
}

fn guest_data() -> GuestData {
    let mut files = Vec::new();
    type Group = (&'static str, Vec<PathBuf>, fn(&Path) -> bool);
    let groups: [Group; 3] = [
        ("text", text_roots(), is_text),
        (
            "bin",
            vec![PathBuf::from("/usr/lib/x86_64-linux-gnu")],
            is_elf_lib,
        ),
        (
            "gz",
            vec![
                PathBuf::from("/usr/share/doc"),
                PathBuf::from("/usr/share/man"),
            ],
            is_gz,
        ),
    ];
    for (dir, roots, keep) in groups {
        for (i, f) in collect_files(&roots, keep, 32 << 20)
            .into_iter()
            .enumerate()
        {
            files.push((f, format!("/data/{dir}/{i:05}")));
        }
    }
    GuestData { files }
}

/// Splits `bytes` into 4 KiB blocks, zero-padding the last (as a page-cache page is).
fn pages(bytes: &[u8], out: &mut Vec<Vec<u8>>) {
    for c in bytes.chunks(PAGE) {
        let mut p = c.to_vec();
        p.resize(PAGE, 0);
        out.push(p);
    }
}

fn memory(cache_dir: &Path) -> Result<Corpus, CorpusError> {
    let dir = cache_dir.join("memory-guest");
    let image = dir.join(format!("ram-{}m.img", MEMORY_IMAGE_BYTES >> 20));
    let initrd = dir.join("initramfs.cpio");
    let manifest = dir.join("manifest.txt");
    if !image.exists() || !initrd.exists() || !manifest.exists() {
        make_memory_image(&dir, &image)?;
    }
    let data = std::fs::read(&image).map_err(io(format!("reading {}", image.display())))?;
    // What the destination site holds: the guest's boot image (initramfs) and its data files.
    let mut holds = Vec::new();
    let cpio = std::fs::read(&initrd).map_err(io(format!("reading {}", initrd.display())))?;
    pages(&cpio, &mut holds);
    let list = std::fs::read_to_string(&manifest).map_err(io("reading the manifest"))?;
    for line in list.lines() {
        if let Ok(b) = std::fs::read(line) {
            pages(&b, &mut holds);
        }
    }
    Ok(Corpus {
        data,
        receiver_holds: holds,
        description: format!(
            "RAM of a {} MiB Linux guest (TCG) after boot + page cache of 96 MiB of files + 48 MiB random + its copy + text concatenation; receiver holds the guest's initramfs and data files",
            MEMORY_IMAGE_BYTES >> 20
        ),
    })
}

fn make_memory_image(dir: &Path, image: &Path) -> Result<(), CorpusError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let data = guest_data();
    let mut extra = Vec::new();
    let mut manifest = String::new();
    for (host, guest) in &data.files {
        if let Ok(contents) = std::fs::read(host) {
            manifest.push_str(&host.display().to_string());
            manifest.push('\n');
            extra.push(GuestFile {
                path_in_guest: guest.clone(),
                contents,
                mode: 0o644,
            });
        }
    }
    extra.push(GuestFile {
        path_in_guest: "/etc/novacron/init.d/50-memfill".into(),
        contents: MEMFILL.as_bytes().to_vec(),
        mode: 0o755,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime"))?;
    let opts = TinyOptions {
        extra_files: extra,
        ..TinyOptions::default()
    };
    let tiny = rt
        .block_on(novacron_qemu::build_tiny(dir, &opts))
        .map_err(|e| CorpusError::Guest(e.to_string()))?;
    let ram = dir.join("ram.tmp");
    let serial = dir.join("serial.log");
    let _ = std::fs::remove_file(&ram);
    let _ = std::fs::remove_file(&serial);
    let mb = MEMORY_IMAGE_BYTES >> 20;
    let mut qemu = Command::new(novacron_qemu::process::qemu_binary());
    novacron_qemu::process::inherit_only_stdio(&mut qemu, &[]);
    let mut child = qemu
        .args([
            "-machine",
            "pc,memory-backend=ram0",
            "-accel",
            "tcg",
            "-smp",
            "1",
            "-m",
        ])
        .arg(format!("{mb}M"))
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=ram0,size={mb}M,mem-path={},share=on",
            ram.display()
        ))
        .arg("-kernel")
        .arg(&tiny.kernel)
        .arg("-initrd")
        .arg(&tiny.initrd)
        .arg("-append")
        .arg(&tiny.cmdline)
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
        ])
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting qemu-system-x86_64"))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let outcome = loop {
        if std::fs::read_to_string(&serial).is_ok_and(|s| s.contains(MEMFILL_MARKER)) {
            // Let the last writes settle, then stop the guest where it stands.
            std::thread::sleep(Duration::from_secs(2));
            break Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            break Err(CorpusError::Guest(format!(
                "QEMU exited early ({st}); serial log at {}",
                serial.display()
            )));
        }
        if Instant::now() > deadline {
            break Err(CorpusError::Guest(
                "guest did not finish filling memory within 600 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome?;
    std::fs::write(dir.join("manifest.txt"), manifest).map_err(io("writing the manifest"))?;
    std::fs::rename(&ram, image).map_err(io("saving the RAM image"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_and_mixed_have_the_requested_size() {
        let tmp = std::env::temp_dir();
        let r = build(CorpusKind::Random, 1 << 20, &tmp).unwrap();
        assert_eq!(r.data.len(), 1 << 20);
        let m = build(CorpusKind::Mixed, 8 << 20, &tmp).unwrap();
        assert_eq!(m.data.len(), 8 << 20);
        // Incompressible really is.
        let z = zstd::bulk::compress(&r.data, 3).unwrap();
        assert!(z.len() > r.data.len() * 99 / 100);
    }
}
