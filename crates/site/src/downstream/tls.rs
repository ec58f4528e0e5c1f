//! Stratum over TLS for miners, and the socket interface a miner connection is served
//! through ([`MinerIo`]): a plain `TcpStream` or a TLS stream over one.
//!
//! The connection task is driven by readiness (`readable`, then a non-blocking read), so
//! an idle plain miner holds no buffer. A TLS stream keeps that shape: its non-blocking
//! read and write poll `tokio-rustls` with a no-op waker (the task is woken by the
//! socket's own readiness instead), and two things differ from a plain socket:
//!
//! - rustls may hold decrypted bytes the socket no longer signals (a record read with the
//!   handshake, or more than one read takes). A read therefore drains until the socket
//!   would block, and when it stops early (its byte budget) the stream says it is still
//!   readable.
//! - rustls may hold encrypted bytes the socket would not take yet after the plaintext
//!   queue drained, so the connection waits for writability while
//!   [`MinerIo::has_pending_write`] says so.

use std::fs;
use std::future::Future;
use std::io::{self, IoSlice};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::ListenerTls;

/// Bytes one read may drain from a TLS stream before it lets the connection handle the
/// lines: a flood over TLS is cut into slices like a plain one.
const TLS_READ_BUDGET: usize = 64 * 1024;

/// Plaintext taken from rustls per step of a read.
const TLS_READ_STEP: usize = 4096;

/// Why a TLS listener could not be set up from its files.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file named by `tls_cert` or `tls_key`.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key together (a key that does not match).
    #[error("certificate and key refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server side of TLS for one listener, built from its PEM files.
///
/// # Errors
/// [`TlsSetupError`] naming the file, or rustls' reason for refusing the pair.
pub(super) fn server_config(
    files: &ListenerTls,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let file_error = |path: &Path, reason: String| TlsSetupError::File {
        path: path.display().to_string(),
        reason,
    };
    // Read first so a missing file is named as such, not as a PEM problem.
    let cert_pem = fs::read(&files.cert).map_err(|e| file_error(&files.cert, e.to_string()))?;
    let key_pem = fs::read(&files.key).map_err(|e| file_error(&files.key, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            &files.cert,
            "holds no CERTIFICATE block".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_error(&files.key, format!("no PEM private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A miner's byte stream as the connection task drives it: wait for readiness, then read
/// or write without blocking (`WouldBlock` when nothing moves).
pub(super) trait MinerIo: Send + 'static {
    /// Resolves when a read may make progress.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Resolves when a write may make progress.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads what is there into `buf`; `Ok(0)` at the end of the stream.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Writes what the stream takes now.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Bytes accepted by [`try_write_vectored`](MinerIo::try_write_vectored) still wait
    /// to reach the socket.
    fn has_pending_write(&self) -> bool {
        false
    }
    /// Pushes such bytes on as far as the socket takes them.
    fn try_flush_pending(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MinerIo for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::writable(self)
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }
}

/// A miner's TLS stream, read and written without blocking.
pub(super) struct TlsIo {
    /// The TLS session over the miner's socket.
    stream: TlsStream<TcpStream>,
    /// rustls may hold plaintext the socket will not signal: the last read stopped at its
    /// budget, or the handshake read the miner's first records with its own.
    more: bool,
}

impl TlsIo {
    /// Wraps a stream whose handshake is done.
    pub(super) fn new(stream: TlsStream<TcpStream>) -> TlsIo {
        TlsIo { stream, more: true }
    }
}

impl MinerIo for TlsIo {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        let more = self.more;
        let socket = self.stream.get_ref().0;
        async move {
            if more {
                Ok(())
            } else {
                socket.readable().await
            }
        }
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.stream.get_ref().0.writable()
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut step = [0u8; TLS_READ_STEP];
        let mut total = 0;
        loop {
            if total >= TLS_READ_BUDGET {
                self.more = true;
                return Ok(total);
            }
            let mut read = ReadBuf::new(&mut step);
            match Pin::new(&mut self.stream).poll_read(&mut cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        // The end: reported now, or on the next read after these bytes.
                        self.more = total > 0;
                        return Ok(total);
                    }
                    buf.extend_from_slice(filled);
                    total += filled.len();
                }
                Poll::Ready(Err(e)) => {
                    if total == 0 {
                        return Err(e);
                    }
                    // Hand over what came before the error; the next read reports it.
                    self.more = true;
                    return Ok(total);
                }
                Poll::Pending => {
                    self.more = false;
                    return if total == 0 {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(total)
                    };
                }
            }
        }
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.stream).poll_write_vectored(&mut cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn has_pending_write(&self) -> bool {
        self.stream.get_ref().1.wants_write()
    }

    fn try_flush_pending(&mut self) -> io::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.stream).poll_flush(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }
}
