use super::*;
use proptest::prelude::*;

fn roundtrip(blocks: &[(u64, Vec<u8>)], cfg: EncoderConfig, batch_every: usize) {
    let history = cfg.history_bytes;
    let mut enc = Encoder::new(cfg);
    let mut dec = Decoder::new(DecoderConfig {
        history_bytes: history,
        ..DecoderConfig::default()
    });
    let mut got = Vec::new();
    for (i, (id, data)) in blocks.iter().enumerate() {
        enc.encode_block(*id, data);
        if (i + 1) % batch_every == 0
            && let Some(b) = enc.finish_batch()
        {
            got.extend(dec.decode_batch(&b).unwrap());
        }
    }
    if let Some(b) = enc.finish_batch() {
        got.extend(dec.decode_batch(&b).unwrap());
    }
    assert_eq!(got.len(), blocks.len());
    for (g, (id, data)) in got.iter().zip(blocks) {
        assert_eq!(g.block_id, *id);
        assert_eq!(&g.data[..], &data[..]);
    }
}

/// Blocks drawn so that zero, duplicate, slightly changed and random blocks all occur.
fn block_stream() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
    let op = (0u8..6, 0u64..8, any::<u64>(), 1usize..600, any::<u8>());
    proptest::collection::vec(op, 1..60).prop_map(|ops| {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut last: std::collections::HashMap<u64, Vec<u8>> = Default::default();
        for (kind, id, seed, len, byte) in ops {
            let data = match (kind, last.get(&id)) {
                (0, _) => vec![0u8; len],
                (1, Some(prev)) => {
                    // small change of the previous version
                    let mut d = prev.clone();
                    let at = (seed as usize) % d.len();
                    d[at] ^= byte | 1;
                    d
                }
                (2, _) if !out.is_empty() => out[(seed as usize) % out.len()].1.clone(),
                (3, _) => vec![byte; len],
                _ => {
                    let mut x = seed | 1;
                    (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect()
                }
            };
            last.insert(id, data.clone());
            out.push((id, data));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_encoding_round_trips(blocks in block_stream(), batch_every in 1usize..10,
                                  level in proptest::option::of(1i32..4), delta: bool, dedup: bool,
                                  history in prop_oneof![Just(0u64), Just(2000u64), Just(1u64 << 30)]) {
        roundtrip(&blocks, EncoderConfig { history_bytes: history, zstd_level: level, delta, dedup }, batch_every);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut dec = Decoder::new(DecoderConfig::default());
        let _ = dec.decode_batch(&bytes);
        let _ = decode_announcement(&bytes);
    }

    #[test]
    fn corrupted_or_truncated_batches_fail(blocks in block_stream(), flip in any::<usize>(), bit in 0u8..8, cut in any::<usize>()) {
        let mut enc = Encoder::new(EncoderConfig::default());
        for (id, d) in &blocks { enc.encode_block(*id, d); }
        let batch = enc.finish_batch().unwrap();
        let mut bad = batch.clone();
        let at = flip % bad.len();
        bad[at] ^= 1 << bit;
        prop_assert!(Decoder::new(DecoderConfig::default()).decode_batch(&bad).is_err());
        let short = &batch[..cut % batch.len()];
        prop_assert!(Decoder::new(DecoderConfig::default()).decode_batch(short).is_err());
    }
}

#[test]
fn announced_content_travels_as_references() {
    let base: Vec<Vec<u8>> = (0..16u8)
        .map(|i| vec![i.wrapping_mul(37) | 1; 4096])
        .collect();
    let mut dec = Decoder::new(DecoderConfig::default());
    let fps: Vec<Fingerprint> = base.iter().map(|b| dec.preload(b)).collect();
    let ann = encode_announcement(&fps);
    let mut enc = Encoder::new(EncoderConfig::default());
    enc.announce(decode_announcement(&ann).unwrap());
    for (i, b) in base.iter().enumerate() {
        assert_eq!(enc.encode_block(i as u64 * 4096, b), BlockKind::Ref);
    }
    let batch = enc.finish_batch().unwrap();
    assert!(batch.len() < 16 * 30, "16 refs took {} bytes", batch.len());
    let out = dec.decode_batch(&batch).unwrap();
    for (o, b) in out.iter().zip(&base) {
        assert_eq!(&o.data[..], &b[..]);
    }
}

#[test]
fn changed_page_travels_as_small_delta() {
    let mut enc = Encoder::new(EncoderConfig {
        zstd_level: None,
        ..EncoderConfig::default()
    });
    let mut dec = Decoder::new(DecoderConfig::default());
    let page: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    enc.encode_block(7, &page);
    dec.decode_batch(&enc.finish_batch().unwrap()).unwrap();
    let mut changed = page.clone();
    changed[1000..1008].copy_from_slice(b"modified");
    assert_eq!(enc.encode_block(7, &changed), BlockKind::Delta);
    let batch = enc.finish_batch().unwrap();
    assert!(batch.len() < 64, "delta batch is {} bytes", batch.len());
    assert_eq!(&dec.decode_batch(&batch).unwrap()[0].data[..], &changed[..]);
}

#[test]
fn incompressible_batches_are_stored() {
    let mut enc = Encoder::new(EncoderConfig::default());
    let mut x = 0x9E3779B97F4A7C15u64;
    let data: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    enc.encode_block(1, &data);
    let b = enc.finish_batch().unwrap();
    assert!(b.len() < data.len() + 64);
    assert_eq!(enc.stats().stored_batches, 1);
}

#[test]
fn decoder_refuses_input_after_an_error() {
    let mut enc = Encoder::new(EncoderConfig::default());
    enc.encode_block(1, &[1, 2, 3]);
    let good = enc.finish_batch().unwrap();
    let mut dec = Decoder::new(DecoderConfig::default());
    assert!(dec.decode_batch(&good[..good.len() - 1]).is_err());
    assert_eq!(dec.decode_batch(&good), Err(HdeError::Poisoned));
}
