//! HDE over a session channel: send blocks by id, receive them decoded and verified.
//!
//! The sender batches encoded blocks into messages of about `batch_bytes`; with
//! [`BlockSender::auto_level`] the zstd level follows PBA's bandwidth estimate so compression
//! keeps up with the link. Content the receiver already holds can be preloaded on its side
//! and announced to the sender ([`BlockReceiver::announce`] / [`BlockSender::receive_announcement`]).

use std::time::{Duration, Instant};

use crate::error::DwcpError;
use crate::hde::{
    self, BlockKind, DecodedBlock, Decoder, DecoderConfig, Encoder, EncoderConfig, EncoderStats,
    Fingerprint,
};
use crate::pba;
use crate::session::{Channel, Session};

/// Default size of one batch message, bytes of encoded records before compression.
pub const DEFAULT_BATCH_BYTES: usize = 256 << 10;
// Sessions default to 512 KiB frames, so a batch normally travels as one frame.

/// Sends blocks through HDE on one channel.
pub struct BlockSender {
    channel: Channel,
    encoder: Encoder,
    batch_bytes: usize,
    session: Option<Session>,
    last_level_check: Instant,
}

impl BlockSender {
    /// Wraps `channel` with a new encoder.
    pub fn new(channel: Channel, cfg: EncoderConfig) -> Self {
        BlockSender {
            channel,
            encoder: Encoder::new(cfg),
            batch_bytes: DEFAULT_BATCH_BYTES,
            session: None,
            last_level_check: Instant::now(),
        }
    }

    /// Lets the zstd level follow the session's bandwidth estimate.
    pub fn auto_level(mut self, session: &Session) -> Self {
        self.session = Some(session.clone());
        self
    }

    /// Sets the batch size.
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Waits for the receiver's announcement of content it holds and marks it available.
    /// Returns how many fingerprints were announced.
    pub async fn receive_announcement(&mut self) -> Result<usize, DwcpError> {
        let msg = self.channel.recv().await?.ok_or(DwcpError::Closed)?;
        let fps = hde::decode_announcement(&msg)?;
        let n = fps.len();
        self.encoder.announce(fps);
        Ok(n)
    }

    /// Encodes one block; sends a batch when enough is pending.
    pub async fn send_block(&mut self, block_id: u64, data: &[u8]) -> Result<BlockKind, DwcpError> {
        let kind = self.encoder.encode_block(block_id, data);
        if self.encoder.pending_bytes() >= self.batch_bytes {
            self.flush().await?;
        }
        Ok(kind)
    }

    /// Sends the pending batch, if any.
    pub async fn flush(&mut self) -> Result<(), DwcpError> {
        if let Some(s) = &self.session
            && self.last_level_check.elapsed() >= Duration::from_millis(500)
        {
            self.last_level_check = Instant::now();
            let level = pba::zstd_level_for(s.path_estimate().bandwidth_bps);
            if level != self.encoder.zstd_level() {
                tracing::debug!(?level, "hde zstd level");
                self.encoder.set_zstd_level(level);
            }
        }
        if let Some(batch) = self.encoder.finish_batch() {
            self.channel.send(batch).await?;
        }
        Ok(())
    }

    /// Flushes and ends the channel; returns the encoder's counters.
    pub async fn finish(mut self) -> Result<EncoderStats, DwcpError> {
        self.flush().await?;
        self.channel.finish().await?;
        Ok(self.encoder.stats().clone())
    }

    /// What the encoder did so far.
    pub fn stats(&self) -> &EncoderStats {
        self.encoder.stats()
    }
}

/// Receives blocks sent by a [`BlockSender`].
pub struct BlockReceiver {
    channel: Channel,
    decoder: Decoder,
    preloaded: Vec<Fingerprint>,
}

impl BlockReceiver {
    /// Wraps `channel` with a new decoder.
    pub fn new(channel: Channel, cfg: DecoderConfig) -> Self {
        BlockReceiver {
            channel,
            decoder: Decoder::new(cfg),
            preloaded: Vec::new(),
        }
    }

    /// Adds content this side holds (e.g. blocks of a base image) for the sender to reference.
    pub fn preload(&mut self, data: &[u8]) -> Fingerprint {
        let fp = self.decoder.preload(data);
        self.preloaded.push(fp);
        fp
    }

    /// Sends the fingerprints of preloaded content to the sender.
    pub async fn announce(&mut self) -> Result<(), DwcpError> {
        self.preloaded.sort_unstable();
        self.preloaded.dedup();
        let msg = hde::encode_announcement(&self.preloaded);
        self.channel.send(msg).await
    }

    /// Next batch of decoded, verified blocks; `None` when the sender finished.
    pub async fn recv_batch(&mut self) -> Result<Option<Vec<DecodedBlock>>, DwcpError> {
        match self.channel.recv().await? {
            Some(msg) => Ok(Some(self.decoder.decode_batch_bytes(msg)?)),
            None => Ok(None),
        }
    }
}
