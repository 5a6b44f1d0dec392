//! The BLAKE3 of an image file, as [`ImageFile::blake3`](crate::ImageFile) records it, computed on
//! several threads.
//!
//! BLAKE3 hashes a tree of 1 KiB chunks, so disjoint subtrees of one file can be hashed side by
//! side and their chaining values merged into the same root hash a single pass gives. An import
//! or an image download hashes a whole image before it answers; on one thread that is about
//! 0.35 s per GiB here, which the other cores now share.

use std::fs::File;
use std::os::unix::fs::FileExt;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// Files up to this size are hashed on one thread; larger ones are split into subtrees down to it.
const SPLIT_ABOVE: u64 = 16 << 20;
/// How many times the tree is halved at most: up to 8 threads.
const SPLIT_DEPTH: u32 = 3;
/// How much each thread reads at a time.
const READ: usize = 1 << 20;

/// The BLAKE3 of `file`'s content (lower-case hex), reading it from offset 0 to its current end
/// (its position is left alone).
pub fn blake3_file(file: &File) -> std::io::Result<String> {
    let len = file.metadata()?.len();
    blake3_range(file, len, SPLIT_ABOVE)
}

fn blake3_range(file: &File, len: u64, split_above: u64) -> std::io::Result<String> {
    if len <= split_above {
        let mut hasher = blake3::Hasher::new();
        hash_into(file, 0, len, &mut hasher)?;
        return Ok(hasher.finalize().to_hex().to_string());
    }
    let left = left_subtree_len(len);
    let (l, r) = both(
        || subtree(file, 0, left, SPLIT_DEPTH - 1, split_above),
        || subtree(file, left, len - left, SPLIT_DEPTH - 1, split_above),
    )?;
    Ok(merge_subtrees_root(&l, &r, Mode::Hash).to_hex().to_string())
}

/// The chaining value of the subtree of `len` bytes at `offset` (a subtree of the file's tree).
fn subtree(
    file: &File,
    offset: u64,
    len: u64,
    depth: u32,
    split_above: u64,
) -> std::io::Result<ChainingValue> {
    if depth == 0 || len <= split_above {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        hash_into(file, offset, len, &mut hasher)?;
        return Ok(hasher.finalize_non_root());
    }
    let left = left_subtree_len(len);
    let (l, r) = both(
        || subtree(file, offset, left, depth - 1, split_above),
        || subtree(file, offset + left, len - left, depth - 1, split_above),
    )?;
    Ok(merge_subtrees_non_root(&l, &r, Mode::Hash))
}

/// Runs `a` here and `b` on a thread of its own.
fn both<A, B>(a: A, b: B) -> std::io::Result<(ChainingValue, ChainingValue)>
where
    A: FnOnce() -> std::io::Result<ChainingValue>,
    B: FnOnce() -> std::io::Result<ChainingValue> + Send,
{
    std::thread::scope(|s| {
        let right = s.spawn(b);
        let left = a();
        let right = right
            .join()
            .map_err(|_| std::io::Error::other("a hashing thread panicked"))?;
        Ok((left?, right?))
    })
}

/// Feeds `len` bytes of `file` from `offset` to `hasher`; a file shorter than that is an error.
fn hash_into(
    file: &File,
    offset: u64,
    len: u64,
    hasher: &mut blake3::Hasher,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ.min(usize::try_from(len).unwrap_or(READ))];
    let mut done = 0u64;
    while done < len {
        let want = buf
            .len()
            .min(usize::try_from(len - done).unwrap_or(buf.len()));
        let n = file.read_at(&mut buf[..want], offset + done)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was hashed",
            ));
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn split_hashes_equal_one_pass_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; (3 << 20) + 4099];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        // Sizes around chunk and subtree edges, split down to 4 KiB subtrees.
        for len in [
            0usize,
            1,
            1023,
            1024,
            1025,
            4096,
            4097,
            65536,
            (1 << 20) + 1,
            (2 << 20) - 1,
            3 << 20,
            data.len(),
        ] {
            let path = dir.path().join(format!("f{len}"));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&data[..len])
                .unwrap();
            let file = File::open(&path).unwrap();
            let expected = blake3::hash(&data[..len]).to_hex().to_string();
            assert_eq!(
                blake3_range(&file, len as u64, 4096).unwrap(),
                expected,
                "{len}"
            );
            assert_eq!(blake3_file(&file).unwrap(), expected, "{len}");
        }
    }

    #[test]
    fn a_file_shorter_than_its_length_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        let file = File::open(&path).unwrap();
        assert!(blake3_range(&file, 20_000, 4096).is_err());
    }
}
