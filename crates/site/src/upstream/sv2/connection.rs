//! The socket task of one SV2 pool connection: TCP connect, the Noise NX handshake as
//! initiator with the pool's authority key checked, then a thin loop around the sans-I/O
//! [`Sv2Session`] as the SV1 connection has around its session. The Noise state is split:
//! a reader task owns the decrypting half and hands decoded messages over a channel (so
//! the loop's `select!` never cancels a half-read frame), the loop owns the encrypting
//! half.

use std::sync::Arc;
use std::time::Duration;

use codec_sv2::{Decoded, Decrypted, Handshake, NoiseDecoder, NoiseEncoder, TransportDecryptState};
use noise_sv2::{INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE, Initiator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::AuthorityKey;
use crate::hub::{UpstreamLink, UpstreamSubmit};
use crate::stats::Undelivered;

use super::super::UpstreamContext;
use super::super::connection::{PoolReader, PoolWriter, SUBMIT_QUEUE, now, open};
use super::super::error::UpstreamError;
use super::super::event::{ConnSpec, Ended, Event};
use super::super::session::{SessionEvent, TICK};
use super::session::Sv2Session;
use super::wire::{self, Frame, FromPool, ToPool};

/// Shares taken off the queue per write (as SV1).
const SUBMIT_BATCH: usize = 256;

/// Messages decoded ahead of the loop; the pool's own pace bounds it in practice.
const READ_AHEAD: usize = 64;

use crate::exporter::UPSTREAM_SV2_HANDSHAKE_FAILURES as SV2_HANDSHAKE_FAILURES;

/// Runs one SV2 connection until it fails, is redirected or is closed, then reports how
/// it ended.
pub(in super::super) async fn run(
    shared: Arc<UpstreamContext>,
    spec: ConnSpec,
    key: AuthorityKey,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let (pool, conn) = (spec.pool, spec.conn);
    // The series exists from the first connection, so an alert's `increase()` sees the
    // first failure.
    let failures = metrics::counter!(SV2_HANDSHAKE_FAILURES, "pool" => spec.name.to_string());
    failures.increment(0);
    let end = match open(&shared, &spec, &cancel).await {
        Ok(Some(stream)) => {
            let deadline = shared.config.failover.silence_timeout;
            let address = spec.address.authority();
            match tokio::time::timeout(deadline, handshake(stream, &key, &address)).await {
                Ok(Ok((reader, writer, decrypt, encrypt))) => {
                    let mut task = Task::new(
                        shared,
                        spec,
                        reader,
                        writer,
                        decrypt,
                        encrypt,
                        events.clone(),
                        cancel,
                    );
                    let end = task.serve().await;
                    task.finish(end).await
                }
                Ok(Err(err)) => {
                    failures.increment(1);
                    Ended::Failed(err)
                }
                Err(_) => {
                    failures.increment(1);
                    Ended::Failed(UpstreamError::Sv2Handshake {
                        address,
                        reason: format!("no answer within {deadline:?}"),
                    })
                }
            }
        }
        Ok(None) => Ended::Closed,
        Err(err) => Ended::Failed(err),
    };
    let _ = events.send(Event::Ended { pool, conn, end }).await;
}

/// The Noise NX handshake: our ephemeral key out, the pool's ephemeral and static keys
/// and its certificate back; the certificate must be signed by `key`.
async fn handshake(
    (mut reader, mut writer): (PoolReader, PoolWriter),
    key: &AuthorityKey,
    address: &str,
) -> Result<
    (
        PoolReader,
        PoolWriter,
        (NoiseDecoder, TransportDecryptState),
        (NoiseEncoder, codec_sv2::TransportEncryptState),
    ),
    UpstreamError,
> {
    let failed = |reason: String| UpstreamError::Sv2Handshake {
        address: address.to_owned(),
        reason,
    };
    let initiator = Initiator::from_raw_k(key.bytes())
        .map_err(|_| failed("the authority key is not a valid secp256k1 x-only key".into()))?;
    let (first, sent) = Handshake::initiator(initiator)
        .step_0()
        .map_err(|err| failed(format!("{err:?}")))?;
    let mut encoder = NoiseEncoder::new();
    let bytes = encoder.encode_handshake(first);
    writer
        .write_all(bytes.as_ref())
        .await
        .map_err(|err| failed(format!("write: {err}")))?;
    let mut decoder = NoiseDecoder::new();
    let reply = loop {
        match decoder.next_handshake_frame::<codec_sv2::InitiatorSent>() {
            Ok(Decoded::Frame(reply)) => break reply,
            Ok(Decoded::Incomplete(_)) => {
                reader.read_exact(decoder.writable()).await.map_err(|err| {
                    failed(format!("the pool closed or failed mid-handshake: {err}"))
                })?;
            }
            Err(err) => return Err(failed(format!("{err:?}"))),
        }
    };
    let reply: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] = reply
        .payload()
        .try_into()
        .map_err(|_| failed("the pool's handshake reply has the wrong size".into()))?;
    let transport = sent.step_2(reply).map_err(|err| {
        let text = format!("{err:?}");
        if text.contains("InvalidCertificate") {
            failed("the pool's certificate is not signed by the configured authority key".into())
        } else {
            failed(text)
        }
    })?;
    let (encrypt, decrypt) = transport.split();
    Ok((reader, writer, (decoder, decrypt), (encoder, encrypt)))
}

/// Reads and decodes frames until the socket ends or a frame fails; the last item sent
/// is the reason it stopped.
async fn read_frames(
    mut reader: PoolReader,
    mut decoder: NoiseDecoder,
    mut state: TransportDecryptState,
    tx: mpsc::Sender<Result<FromPool, UpstreamError>>,
) {
    loop {
        let mut frame = loop {
            match decoder.next_transport_frame(state) {
                Ok(Decrypted::Frame(frame, next)) => {
                    state = next;
                    break frame;
                }
                Ok(Decrypted::Incomplete(_, next)) => {
                    state = next;
                    let buf = decoder.writable();
                    if buf.is_empty() {
                        continue;
                    }
                    match reader.read_exact(buf).await {
                        Ok(_) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                            let _ = tx.send(Err(UpstreamError::Closed)).await;
                            return;
                        }
                        Err(err) => {
                            let _ = tx.send(Err(UpstreamError::Sv2Frame(err.to_string()))).await;
                            return;
                        }
                    }
                }
                Err(err) => {
                    let _ = tx
                        .send(Err(UpstreamError::Sv2Frame(format!(
                            "cannot decrypt a frame: {err:?}"
                        ))))
                        .await;
                    return;
                }
            }
        };
        let header = frame.header();
        let message = if header.ext_type_without_channel_msg() != 0 {
            Ok(FromPool::Other(header.msg_type()))
        } else {
            wire::decode(header.msg_type(), frame.payload())
                .map_err(|err| UpstreamError::Sv2Frame(err.to_string()))
        };
        if tx.send(message).await.is_err() {
            return;
        }
    }
}

/// The I/O around one [`Sv2Session`].
struct Task {
    session: Sv2Session,
    shared: Arc<UpstreamContext>,
    pool: usize,
    conn: u64,
    address: String,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    messages: mpsc::Receiver<Result<FromPool, UpstreamError>>,
    reader: tokio::task::JoinHandle<()>,
    writer: PoolWriter,
    encoder: NoiseEncoder,
    encrypt: codec_sv2::TransportEncryptState,
    submits: mpsc::Receiver<UpstreamSubmit>,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    fn new(
        shared: Arc<UpstreamContext>,
        spec: ConnSpec,
        reader: PoolReader,
        writer: PoolWriter,
        (decoder, decrypt): (NoiseDecoder, TransportDecryptState),
        (encoder, encrypt): (NoiseEncoder, codec_sv2::TransportEncryptState),
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> Task {
        let (tx, submits) = mpsc::channel(SUBMIT_QUEUE);
        let link = UpstreamLink::new(spec.name.clone(), spec.conn, tx)
            .with_hashrate(spec.hashrate.clone());
        let (msg_tx, messages) = mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(read_frames(reader, decoder, decrypt, msg_tx));
        let (pool, conn) = (spec.pool, spec.conn);
        let address = spec.address.authority();
        tracing::info!(pool = %spec.name, conn, address = %spec.address, "connected to SV2 pool (Noise handshake done, authority key checked)");
        Task {
            session: Sv2Session::new(shared.clone(), spec, link, now()),
            shared,
            pool,
            conn,
            address,
            events,
            cancel,
            messages,
            reader,
            writer,
            encoder,
            encrypt,
            submits,
        }
    }

    async fn serve(&mut self) -> Ended {
        self.session.start(now());
        if let Err(end) = self.drain().await {
            return end;
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(SUBMIT_BATCH);
        loop {
            let step = tokio::select! {
                _ = self.cancel.cancelled() => return Ended::Closed,
                message = self.messages.recv() => match message {
                    Some(Ok(message)) => self.session.on_message(message, now()),
                    Some(Err(err)) => Err(err.into()),
                    None => Err(UpstreamError::Closed.into()),
                },
                _ = self.submits.recv_many(&mut batch, SUBMIT_BATCH) => {
                    self.session.on_submits(&mut batch, now());
                    Ok(())
                }
                _ = tick.tick() => self.session.on_tick(now()),
            };
            let drained = self.drain().await;
            if let Err(end) = step.and(drained) {
                return end;
            }
        }
    }

    /// Encrypts and writes what the session queued; hands its jobs to the channel server.
    async fn drain(&mut self) -> Result<(), Ended> {
        let out = self.session.take_output();
        if !out.is_empty() {
            let bytes = self.encrypt_all(&out)?;
            let limit = self.shared.config.failover.silence_timeout;
            match tokio::time::timeout(limit, self.writer.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(UpstreamError::Sv2Frame(format!("write: {err}")).into()),
                Err(_) => return Err(UpstreamError::WriteStalled(limit).into()),
            }
        }
        for event in self.session.take_events() {
            if let SessionEvent::Work(work) = event {
                let event = Event::Work {
                    pool: self.pool,
                    conn: self.conn,
                    work,
                };
                if self.events.send(event).await.is_err() {
                    return Err(Ended::Closed);
                }
            }
        }
        Ok(())
    }

    fn encrypt_all(&mut self, out: &[ToPool]) -> Result<Vec<u8>, Ended> {
        let mut bytes = Vec::new();
        let (encoder, state) = (&mut self.encoder, &mut self.encrypt);
        for message in out {
            let result = wire::encode(message, |frame| {
                let sealed = match frame {
                    Frame::Setup(f) => encoder.encode_transport(f, state),
                    Frame::Open(f) => encoder.encode_transport(f, state),
                    Frame::Submit(f) => encoder.encode_transport(f, state),
                    Frame::Update(f) => encoder.encode_transport(f, state),
                }
                .map_err(|err| wire::WireError::Encode {
                    what: "frame",
                    detail: format!("{err:?}"),
                })?;
                bytes.extend_from_slice(sealed.as_ref());
                Ok(())
            });
            if let Err(err) = result {
                // Our own message did not fit its type (a pool user over 255 bytes): the
                // pool cannot be used with this configuration.
                return Err(UpstreamError::Sv2Frame(format!("{}: {err}", self.address)).into());
            }
        }
        Ok(bytes)
    }

    /// Accounts for every share still held, as the SV1 connection does: a close asked
    /// for by the proxy first sends what is queued and waits a grace period for the
    /// pool's acknowledgements.
    async fn finish(&mut self, end: Ended) -> Ended {
        self.submits.close();
        let shutdown = self.shared.shutdown.is_cancelled();
        let mut end = end;
        if matches!(end, Ended::Closed) {
            let mut queued = Vec::new();
            while let Ok(share) = self.submits.try_recv() {
                queued.push(share);
            }
            self.session.on_submits(&mut queued, now());
            if let Err(failed) = self.drain().await {
                end = failed;
            } else {
                self.await_acks().await;
            }
        }
        while let Ok(share) = self.submits.try_recv() {
            let reason = if shutdown {
                Undelivered::Shutdown
            } else {
                Undelivered::UpstreamGone
            };
            self.session.undelivered(&share, reason);
        }
        self.session.finish(shutdown);
        self.reader.abort();
        end
    }

    async fn await_acks(&mut self) {
        let grace: Duration = self
            .shared
            .config
            .failover
            .submit_timeout
            .min(super::super::SHUTDOWN_GRACE);
        let deadline = tokio::time::Instant::now() + grace;
        while self.session.awaiting_verdicts() {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                message = self.messages.recv() => message,
            };
            match message {
                Some(Ok(
                    message @ (FromPool::SharesAccepted { .. } | FromPool::ShareRefused { .. }),
                )) => {
                    if self.session.on_message(message, now()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    }
}
