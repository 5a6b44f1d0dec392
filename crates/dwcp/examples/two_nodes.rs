//! Two nodes on loopback: a mutually authenticated DWCP session, a message channel, and HDE
//! blocks with a reference to content the receiver announced. Run with
//! `cargo run -p novacron-dwcp --features testing --example two_nodes`.

use novacron_dwcp::hde::{DecoderConfig, EncoderConfig};
use novacron_dwcp::testing::TestCa;
use novacron_dwcp::{BlockReceiver, BlockSender, Listener, SessionOptions, connect};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Cluster CA and one certificate per node (in production: from the control plane).
    let ca = TestCa::new("example cluster")?;
    let (node_a, node_b) = (ca.issue("node-a")?, ca.issue("node-b")?);
    let opts = SessionOptions {
        server_name: "node-b".into(), // name in node-b's certificate
        ..SessionOptions::default()
    };

    // node-b listens.
    let listener = Listener::bind("127.0.0.1:0".parse()?, &node_b, opts.clone()).await?;
    let addr = listener.local_addr();
    let base_image = vec![0x5au8; 4096]; // a block both sites hold
    let receiver = tokio::spawn({
        let base_image = base_image.clone();
        async move {
            let session = listener.accept().await?;
            // Channel 1: plain messages, in order.
            let ch = session.accept_channel().await?;
            while let Some(msg) = ch.recv().await? {
                println!("node-b got {} bytes on channel {}", msg.len(), ch.id());
            }
            // Channel 2: HDE blocks. Announce what this site already holds first.
            let mut blocks = BlockReceiver::new(session.open_channel(2)?, DecoderConfig::default());
            blocks.preload(&base_image);
            blocks.announce().await?;
            while let Some(batch) = blocks.recv_batch().await? {
                for b in batch {
                    println!(
                        "node-b got block {:#x}: {} bytes, verified",
                        b.block_id,
                        b.data.len()
                    );
                }
            }
            Ok::<_, novacron_dwcp::DwcpError>(())
        }
    });

    // node-a connects.
    let session = connect(addr, &node_a, opts).await?;
    let tls = session.tls_info().expect("handshake done");
    println!(
        "key exchange {}, cipher {}",
        tls.key_exchange_group, tls.cipher_suite
    );

    let ch = session.open_channel(1)?;
    ch.send(b"hello from node-a".to_vec()).await?;
    ch.send(vec![7u8; 3 << 20]).await?; // large messages are striped over the streams
    ch.finish().await?;
    // PBA samples every 100 ms: give it a few samples before reading the estimate.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let est = session.path_estimate();
    println!(
        "PBA: rtt {:.3} ms, {} streams, mode {:?}",
        est.rtt_ms, est.streams, est.mode
    );

    let mut tx =
        BlockSender::new(session.open_channel(2)?, EncoderConfig::default()).auto_level(&session);
    tx.receive_announcement().await?;
    tx.send_block(0x1000, &base_image).await?; // travels as a 16-byte reference
    tx.send_block(0x2000, &[0u8; 4096]).await?; // zero page
    tx.send_block(0x3000, &b"page of text ".repeat(316)[..4096])
        .await?; // compressed
    let stats = tx.finish().await?;
    session.flush().await?;
    println!(
        "HDE: {} refs, {} zero, {} raw; {} bytes encoded",
        stats.ref_blocks, stats.zero_blocks, stats.raw_blocks, stats.output_bytes
    );
    receiver.await??;
    session.close().await?;
    Ok(())
}
