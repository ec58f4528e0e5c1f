//! A minimal simulated Stratum V2 pool: the Noise NX responder with an authority key pair,
//! `SetupConnection.Success`, one extended channel per connection, one job and its
//! previous hash, and `SubmitSharesExtended` judged by the textbook SV2 recipe and
//! acknowledged in batches. Enough to test an SV2 upstream over real sockets in
//! `cargo test`; the real peer is `pool_sv2` in the interop stage.
//!
//! Shares are judged apart from hashgate's validator, as the SV1 simulated pool's are, and
//! from SV2's own fields: the header is `LE(version) ‖ prev_hash (as sent, header order) ‖
//! merkle root ‖ LE(ntime) ‖ LE(nbits) ‖ LE(nonce)`, the coinbase
//! `prefix ‖ extranonce_prefix ‖ extranonce ‖ suffix`. So a proxy that word-swaps the
//! previous hash wrongly, or sends the rolled bits instead of the whole version, fails
//! here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use binary_sv2::{B032, B064K, Seq0255, Str0255, U256};
use codec_sv2::{Decoded, Decrypted, Handshake, NoiseDecoder, NoiseEncoder, TransportEncryptState};
use common_messages_sv2::{
    MESSAGE_TYPE_SETUP_CONNECTION, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, SetupConnectionSuccess,
};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{
    MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH, MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB,
    MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL, MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
    MESSAGE_TYPE_SUBMIT_SHARES_ERROR, MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
    MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS, NewExtendedMiningJob, OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess, SetNewPrevHash, SubmitSharesError, SubmitSharesExtended,
    SubmitSharesSuccess,
};
use noise_sv2::{ELLSWIFT_ENCODING_SIZE, Responder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::pool::judge::{self, BigEndian256};

/// SRI's published example authority public key (x-only), as the base58check text pools
/// publish: what a pool URL for [`SimSv2Pool`] carries.
pub const EXAMPLE_AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

/// The x-only bytes of [`EXAMPLE_AUTHORITY_PUBLIC`].
const EXAMPLE_PUBLIC: [u8; 32] =
    hex32("24ee3c3804a1aaa4c03b80ea19f7a5863c916e8994b7db94a3bad7ee092b6ce7");
/// Its secret key (SRI's published example; loopback tests only).
const EXAMPLE_SECRET: [u8; 32] =
    hex32("65995eb19631f478a46ffa5cf1e545091efe950eaeac7482ffdc06eb6a89f697");

const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let bytes = text.as_bytes();
    assert!(bytes.len() == 64, "32 bytes of hex");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(bytes[2 * i]) << 4 | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// The one job every channel gets.
const JOB_ID: u32 = 1;
const VERSION: u32 = 0x2000_0000;
const NBITS: u32 = 0x1d00_ffff;
const CHANNEL_ID: u32 = 1;
/// The channel's extranonce prefix; the proxy controls [`EXTRANONCE_SIZE`] bytes after it.
const EXTRANONCE_PREFIX: [u8; 4] = [0, 0, 0, 7];
const EXTRANONCE_SIZE: u16 = 8;

/// How the simulated SV2 pool behaves.
#[derive(Debug, Clone)]
pub struct SimSv2PoolConfig {
    /// Share difficulty (the channel target).
    pub difficulty: f64,
    /// Accepted shares per `SubmitShares.Success` (`pool_sv2`'s `share_batch_size`).
    pub batch: u32,
}

impl Default for SimSv2PoolConfig {
    fn default() -> Self {
        SimSv2PoolConfig {
            difficulty: 1e-6,
            batch: 3,
        }
    }
}

/// What the pool has seen.
#[derive(Debug, Default)]
pub struct SimSv2PoolStats {
    handshakes: AtomicU64,
    channels: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    rolled: AtomicU64,
}

impl SimSv2PoolStats {
    /// Noise handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
    /// Extended channels opened.
    pub fn channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }
    /// Shares whose header met the channel target.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Shares that did not (or named another job or channel).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Accepted shares whose version differs from the job's (rolled bits).
    pub fn rolled(&self) -> u64 {
        self.rolled.load(Ordering::Relaxed)
    }
}

/// A running simulated SV2 pool; stops when dropped.
#[derive(Debug)]
pub struct SimSv2Pool {
    addr: SocketAddr,
    stats: Arc<SimSv2PoolStats>,
    cancel: CancellationToken,
}

impl Drop for SimSv2Pool {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SimSv2Pool {
    /// Binds 127.0.0.1 port 0 and serves.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(config: SimSv2PoolConfig) -> std::io::Result<SimSv2Pool> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SimSv2PoolStats::default());
        let cancel = CancellationToken::new();
        let (s, c) = (stats.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = c.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (s, c, config) = (s.clone(), c.clone(), config.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = c.cancelled() => {}
                        result = serve(stream, &config, &s) => {
                            if let Err(err) = result {
                                tracing::debug!(error = %err, "simulated SV2 pool connection ended");
                            }
                        }
                    }
                });
            }
        });
        Ok(SimSv2Pool {
            addr,
            stats,
            cancel,
        })
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pool's URL with its authority key, as a site config names it.
    pub fn url(&self) -> String {
        format!("stratum2+tcp://{}/{EXAMPLE_AUTHORITY_PUBLIC}", self.addr)
    }

    /// What it has seen.
    pub fn stats(&self) -> &SimSv2PoolStats {
        &self.stats
    }
}

type Failure = String;

fn fail(what: &str) -> impl Fn(codec_sv2::Error) -> Failure + '_ {
    move |err| format!("{what}: {err:?}")
}

struct Writer {
    half: OwnedWriteHalf,
    encoder: NoiseEncoder,
    state: TransportEncryptState,
}

impl Writer {
    async fn send<T: binary_sv2::Serialize + binary_sv2::GetSize>(
        &mut self,
        message: T,
        msg_type: u8,
        channel_msg: bool,
    ) -> Result<(), Failure> {
        let frame = MessageFrame::from_message(message, msg_type, 0, channel_msg)
            .map_err(|err| format!("frame: {err:?}"))?;
        let bytes = self
            .encoder
            .encode_transport(frame, &mut self.state)
            .map_err(fail("encrypt"))?;
        self.half
            .write_all(bytes.as_ref())
            .await
            .map_err(|err| err.to_string())
    }
}

/// The coinbase around the extranonce: version, one input with a BIP34 height, and one
/// output paying to `OP_TRUE`; the extranonce sits at the end of the input script.
fn coinbase_parts() -> (Vec<u8>, Vec<u8>) {
    let mut prefix = Vec::new();
    prefix.extend_from_slice(&1u32.to_le_bytes());
    prefix.push(1);
    prefix.extend_from_slice(&[0; 32]);
    prefix.extend_from_slice(&u32::MAX.to_le_bytes());
    let script_len = 4 + EXTRANONCE_PREFIX.len() + usize::from(EXTRANONCE_SIZE);
    prefix.push(u8::try_from(script_len).unwrap_or(u8::MAX));
    prefix.extend_from_slice(&[3, 0x40, 0x42, 0x0f]);
    let mut suffix = Vec::new();
    suffix.extend_from_slice(&u32::MAX.to_le_bytes());
    suffix.push(1);
    suffix.extend_from_slice(&5_000_000_000u64.to_le_bytes());
    suffix.extend_from_slice(&[1, 0x51]);
    suffix.extend_from_slice(&0u32.to_le_bytes());
    (prefix, suffix)
}

fn prev_hash() -> [u8; 32] {
    let mut prev = [0u8; 32];
    for (i, b) in prev.iter_mut().enumerate() {
        *b = u8::try_from(i * 7 % 256).unwrap_or(0);
    }
    prev
}

fn branch() -> [u8; 32] {
    [0x33; 32]
}

/// The header hash of a share, built from SV2's fields alone.
fn share_hash(share: &SubmitSharesExtended<'_>, prefix: &[u8], suffix: &[u8]) -> [u8; 32] {
    let mut coinbase = prefix.to_vec();
    coinbase.extend_from_slice(&EXTRANONCE_PREFIX);
    coinbase.extend_from_slice(share.extranonce.as_bytes());
    coinbase.extend_from_slice(suffix);
    let mut root = judge::sha256d(&coinbase);
    let mut pair = root.to_vec();
    pair.extend_from_slice(&branch());
    root = judge::sha256d(&pair);
    let mut header = Vec::with_capacity(80);
    header.extend_from_slice(&share.version.to_le_bytes());
    header.extend_from_slice(&prev_hash());
    header.extend_from_slice(&root);
    header.extend_from_slice(&share.ntime.to_le_bytes());
    header.extend_from_slice(&NBITS.to_le_bytes());
    header.extend_from_slice(&share.nonce.to_le_bytes());
    judge::sha256d(&header)
}

async fn serve(
    stream: TcpStream,
    config: &SimSv2PoolConfig,
    stats: &SimSv2PoolStats,
) -> Result<(), Failure> {
    let (mut reader, half) = stream.into_split();
    let responder =
        Responder::from_authority_kp(&EXAMPLE_PUBLIC, &EXAMPLE_SECRET, Duration::from_secs(3600))
            .map_err(|err| format!("responder: {err:?}"))?;
    let mut decoder = NoiseDecoder::new();
    let first = loop {
        match decoder
            .next_handshake_frame::<Responder>()
            .map_err(fail("handshake"))?
        {
            Decoded::Frame(frame) => break frame,
            Decoded::Incomplete(_) => {
                reader
                    .read_exact(decoder.writable())
                    .await
                    .map_err(|err| err.to_string())?;
            }
        }
    };
    let first: [u8; ELLSWIFT_ENCODING_SIZE] = first
        .payload()
        .try_into()
        .map_err(|_| "first handshake message size".to_owned())?;
    let (reply, transport) = Handshake::responder(responder)
        .step_1(first)
        .map_err(fail("handshake step 1"))?;
    let mut encoder = NoiseEncoder::new();
    let mut half = half;
    half.write_all(encoder.encode_handshake(reply).as_ref())
        .await
        .map_err(|err| err.to_string())?;
    stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let (encrypt, mut decrypt) = transport.split();
    let mut writer = Writer {
        half,
        encoder,
        state: encrypt,
    };
    let target: BigEndian256 = judge::target_for_difficulty(config.difficulty);
    let mut target_le = target;
    target_le.reverse();
    let (prefix, suffix) = coinbase_parts();
    let mut unacknowledged = 0u32;
    loop {
        let mut frame = loop {
            match decoder
                .next_transport_frame(decrypt)
                .map_err(fail("decrypt"))?
            {
                Decrypted::Frame(frame, next) => {
                    decrypt = next;
                    break frame;
                }
                Decrypted::Incomplete(_, next) => {
                    decrypt = next;
                    let buf = decoder.writable();
                    if !buf.is_empty() {
                        reader
                            .read_exact(buf)
                            .await
                            .map_err(|err| err.to_string())?;
                    }
                }
            }
        };
        let msg_type = frame.header().msg_type();
        let payload = frame.payload();
        match msg_type {
            MESSAGE_TYPE_SETUP_CONNECTION => {
                writer
                    .send(
                        SetupConnectionSuccess {
                            used_version: 2,
                            flags: 0,
                        },
                        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
                        false,
                    )
                    .await?;
            }
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL => {
                let open: OpenExtendedMiningChannel<'_> =
                    binary_sv2::from_bytes(payload).map_err(|err| format!("{err:?}"))?;
                stats.channels.fetch_add(1, Ordering::Relaxed);
                let success = OpenExtendedMiningChannelSuccess {
                    request_id: open.request_id,
                    channel_id: CHANNEL_ID,
                    target: U256::from(&target_le),
                    extranonce_size: EXTRANONCE_SIZE,
                    extranonce_prefix: B032::try_from(&EXTRANONCE_PREFIX[..])
                        .map_err(|err| format!("{err:?}"))?,
                    group_channel_id: 0,
                };
                writer
                    .send(
                        success,
                        MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
                        false,
                    )
                    .await?;
                let leaf = branch();
                let path = vec![U256::from(&leaf)];
                let job = NewExtendedMiningJob {
                    channel_id: CHANNEL_ID,
                    job_id: JOB_ID,
                    min_ntime: binary_sv2::Sv2Option::new(None),
                    version: VERSION,
                    version_rolling_allowed: true,
                    merkle_path: Seq0255::new(path).map_err(|err| format!("{err:?}"))?,
                    coinbase_tx_prefix: B064K::try_from(&prefix[..])
                        .map_err(|err| format!("{err:?}"))?,
                    coinbase_tx_suffix: B064K::try_from(&suffix[..])
                        .map_err(|err| format!("{err:?}"))?,
                };
                writer
                    .send(job, MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, true)
                    .await?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let prev_bytes = prev_hash();
                let prev = SetNewPrevHash {
                    channel_id: CHANNEL_ID,
                    job_id: JOB_ID,
                    prev_hash: U256::from(&prev_bytes),
                    min_ntime: u32::try_from(now).unwrap_or(u32::MAX),
                    nbits: NBITS,
                };
                writer
                    .send(prev, MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH, true)
                    .await?;
            }
            MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED => {
                let share: SubmitSharesExtended<'_> =
                    binary_sv2::from_bytes(payload).map_err(|err| format!("{err:?}"))?;
                let ok = share.channel_id == CHANNEL_ID
                    && share.job_id == JOB_ID
                    && share.extranonce.as_bytes().len() == usize::from(EXTRANONCE_SIZE)
                    && judge::hash_as_number(&share_hash(&share, &prefix, &suffix)) <= target;
                if ok {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if share.version != VERSION {
                        stats.rolled.fetch_add(1, Ordering::Relaxed);
                    }
                    unacknowledged += 1;
                    if unacknowledged >= config.batch.max(1) {
                        let success = SubmitSharesSuccess {
                            channel_id: CHANNEL_ID,
                            last_sequence_number: share.sequence_number,
                            new_submits_accepted_count: unacknowledged,
                            new_shares_sum: u64::from(unacknowledged),
                        };
                        unacknowledged = 0;
                        writer
                            .send(success, MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS, true)
                            .await?;
                    }
                } else {
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                    let error = SubmitSharesError {
                        channel_id: share.channel_id,
                        sequence_number: share.sequence_number,
                        error_code: Str0255::try_from("difficulty-too-low")
                            .map_err(|err| format!("{err:?}"))?,
                    };
                    writer
                        .send(error, MESSAGE_TYPE_SUBMIT_SHARES_ERROR, true)
                        .await?;
                }
            }
            _ => {}
        }
    }
}
