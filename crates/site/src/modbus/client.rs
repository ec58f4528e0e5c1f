//! A Modbus TCP client for one device (or one RS-485 gateway with many unit ids behind it).
//!
//! Every call has a deadline, a lost or timed-out connection is dropped and re-made on the
//! next attempt (a late answer on the old socket can then never be taken for the next
//! request's), and failures come back as [`ModbusError`] with a metric counted by kind. A
//! device that answers with an exception is not asked again: it answered, and asking again
//! would only repeat the answer; the gateway's "busy" and "no answer from the target" are
//! the exceptions worth a retry.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{Context, Reader, Writer, tcp};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};

use super::{DecodeError, Function, Point};
use crate::power::inventory::Address;

/// Deadlines and retries of a [`ModbusClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    /// Deadline for the TCP connect.
    pub connect_timeout: Duration,
    /// Deadline for one request and its answer.
    pub call_timeout: Duration,
    /// Attempts per operation, the first included (at least 1).
    pub attempts: u32,
    /// Pause between two attempts (an RS-485 gateway needs a moment after a timeout).
    pub retry_delay: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            // An RS-485 round trip at 9600 baud through a gateway is ~50-150 ms.
            call_timeout: Duration::from_secs(1),
            attempts: 3,
            retry_delay: Duration::from_millis(100),
        }
    }
}

/// Why a Modbus operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModbusError {
    /// The TCP connection could not be made (refused, unreachable, unknown host).
    #[error("modbus {address}: connect failed: {problem}")]
    Connect {
        /// The device's address.
        address: String,
        /// What the OS or resolver said.
        problem: String,
    },
    /// No answer within the deadline.
    #[error("modbus {address}: no answer within {after:?} ({what})")]
    Timeout {
        /// The device's address.
        address: String,
        /// The request that timed out.
        what: String,
        /// The deadline that ran out.
        after: Duration,
    },
    /// The connection broke or the answer did not fit the request (wrong transaction,
    /// function or unit).
    #[error("modbus {address}: {what}: {problem}")]
    Transport {
        /// The device's address.
        address: String,
        /// The request.
        what: String,
        /// What went wrong.
        problem: String,
    },
    /// The device answered with a Modbus exception (illegal address, device failure, ...).
    #[error("modbus {address}: {what}: exception {code:#04x} ({text})")]
    Exception {
        /// The device's address.
        address: String,
        /// The request.
        what: String,
        /// The exception code.
        code: u8,
        /// The exception's meaning.
        text: String,
    },
    /// Fewer registers or bits came back than were asked for.
    #[error("modbus {address}: {what}: asked for {expected}, got {got}")]
    ShortReply {
        /// The device's address.
        address: String,
        /// The request.
        what: String,
        /// Registers or bits asked for.
        expected: usize,
        /// Registers or bits received.
        got: usize,
    },
    /// The words read do not make a number.
    #[error("modbus {address}: {what}: {source}")]
    Decode {
        /// The device's address.
        address: String,
        /// The point read.
        what: String,
        /// Why the words were refused.
        source: DecodeError,
    },
    /// Coils read back after a write differ from what was written.
    #[error("modbus {address}: {what}: wrote {wrote:?}, read back {read:?}")]
    ReadBack {
        /// The device's address.
        address: String,
        /// The write.
        what: String,
        /// The states written.
        wrote: Vec<bool>,
        /// The states read back.
        read: Vec<bool>,
    },
    /// The value decoded but cannot be true (a meter reporting more than a gigawatt).
    #[error("modbus {address}: {what}: implausible value {value}")]
    Implausible {
        /// The device's address.
        address: String,
        /// The point read.
        what: String,
        /// The value, in base units.
        value: f64,
    },
    /// The request itself is impossible (no coils, a range past address 65535, a write to
    /// a read-only table).
    #[error("modbus {address}: {what}: {problem}")]
    Invalid {
        /// The device's address.
        address: String,
        /// The request.
        what: String,
        /// Why it cannot be sent.
        problem: String,
    },
}

impl ModbusError {
    /// Stable label for the `kind` of `hashgate_modbus_errors_total` and for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ModbusError::Connect { .. } => "connect",
            ModbusError::Timeout { .. } => "timeout",
            ModbusError::Transport { .. } => "transport",
            ModbusError::Exception { .. } => "exception",
            ModbusError::ShortReply { .. } => "short_reply",
            ModbusError::Decode { .. } => "decode",
            ModbusError::ReadBack { .. } => "read_back",
            ModbusError::Implausible { .. } => "implausible",
            ModbusError::Invalid { .. } => "invalid",
        }
    }

    /// Whether another attempt may succeed where this one failed.
    fn retryable(&self) -> bool {
        match self {
            ModbusError::Connect { .. }
            | ModbusError::Timeout { .. }
            | ModbusError::Transport { .. } => true,
            // 0x06 busy, 0x0A gateway path unavailable, 0x0B gateway target did not answer.
            ModbusError::Exception { code, .. } => matches!(code, 0x06 | 0x0A | 0x0B),
            _ => false,
        }
    }
}

/// One request on the wire.
#[derive(Debug, Clone)]
enum Op {
    Words(Function, u8, u16, u16),
    Bits(Function, u8, u16, u16),
    WriteCoil(u8, u16, bool),
    WriteCoils(u8, u16, Vec<bool>),
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::Words(f, unit, addr, n) | Op::Bits(f, unit, addr, n) => {
                format!("read {n} {} at {addr} unit {unit}", f.label())
            }
            Op::WriteCoil(unit, addr, on) => format!("write coil {addr} unit {unit} = {on}"),
            Op::WriteCoils(unit, addr, states) => {
                format!("write {} coils at {addr} unit {unit}", states.len())
            }
        }
    }
}

/// What a request returned.
enum Reply {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    Done,
}

/// A client for one Modbus TCP device or gateway; keeps its connection between calls.
pub struct ModbusClient {
    /// Where the device answers.
    address: Address,
    /// Deadlines and retries.
    settings: ClientSettings,
    /// The open connection, dropped after any transport failure or timeout.
    conn: Option<Context>,
}

impl std::fmt::Debug for ModbusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusClient")
            .field("address", &self.address)
            .field("settings", &self.settings)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl ModbusClient {
    /// A client for the device at `address`; nothing connects until the first call.
    pub fn new(address: Address, settings: ClientSettings) -> Self {
        Self {
            address,
            settings,
            conn: None,
        }
    }

    /// The device's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Reads `count` registers of a word table (holding or input) from `unit_id`.
    ///
    /// # Errors
    /// [`ModbusError`] after the attempts run out, or at once for an exception or an
    /// impossible request.
    pub async fn read_words(
        &mut self,
        function: Function,
        unit_id: u8,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, ModbusError> {
        match self
            .call(Op::Words(function, unit_id, address, count))
            .await?
        {
            Reply::Words(words) => Ok(words),
            _ => Err(self.invalid("read words", "unexpected reply kind")),
        }
    }

    /// Reads `count` bits of a bit table (coils or discrete inputs) from `unit_id`.
    ///
    /// # Errors
    /// As [`Self::read_words`].
    pub async fn read_bits(
        &mut self,
        function: Function,
        unit_id: u8,
        address: u16,
        count: u16,
    ) -> Result<Vec<bool>, ModbusError> {
        match self
            .call(Op::Bits(function, unit_id, address, count))
            .await?
        {
            Reply::Bits(bits) => Ok(bits),
            _ => Err(self.invalid("read bits", "unexpected reply kind")),
        }
    }

    /// Reads one point: its words decoded and scaled into its unit, or a bit as 0.0 / 1.0.
    ///
    /// # Errors
    /// As [`Self::read_words`], plus [`ModbusError::Decode`] for words that make no number.
    pub async fn read_point(&mut self, point: &Point) -> Result<f64, ModbusError> {
        if point.function.is_bits() {
            let bits = self
                .read_bits(point.function, point.unit_id, point.address, 1)
                .await?;
            return Ok(Point::bit_value(bits.first().copied().unwrap_or(false)));
        }
        let words = self
            .read_words(point.function, point.unit_id, point.address, point.count())
            .await?;
        point.value(&words).map_err(|source| {
            let err = ModbusError::Decode {
                address: self.address.to_string(),
                what: point.to_string(),
                source,
            };
            count_error(&err);
            err
        })
    }

    /// Switches one coil, then reads it back.
    ///
    /// # Errors
    /// As [`Self::read_words`], plus [`ModbusError::ReadBack`] when the coil did not take
    /// the state.
    pub async fn write_coil(
        &mut self,
        unit_id: u8,
        address: u16,
        on: bool,
    ) -> Result<(), ModbusError> {
        self.call(Op::WriteCoil(unit_id, address, on)).await?;
        self.read_back(unit_id, address, &[on]).await
    }

    /// Switches consecutive coils in one request, then reads them back.
    ///
    /// # Errors
    /// As [`Self::write_coil`]; [`ModbusError::Invalid`] for an empty list.
    pub async fn write_coils(
        &mut self,
        unit_id: u8,
        address: u16,
        states: &[bool],
    ) -> Result<(), ModbusError> {
        self.call(Op::WriteCoils(unit_id, address, states.to_vec()))
            .await?;
        self.read_back(unit_id, address, states).await
    }

    /// Drops the connection (the next call reconnects).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn read_back(
        &mut self,
        unit_id: u8,
        address: u16,
        wrote: &[bool],
    ) -> Result<(), ModbusError> {
        let count = u16::try_from(wrote.len()).unwrap_or(u16::MAX);
        let read = self
            .read_bits(Function::Coil, unit_id, address, count)
            .await?;
        if read != wrote {
            let err = ModbusError::ReadBack {
                address: self.address.to_string(),
                what: format!("coils at {address} unit {unit_id}"),
                wrote: wrote.to_vec(),
                read,
            };
            count_error(&err);
            return Err(err);
        }
        Ok(())
    }

    fn invalid(&self, what: &str, problem: &str) -> ModbusError {
        ModbusError::Invalid {
            address: self.address.to_string(),
            what: what.to_owned(),
            problem: problem.to_owned(),
        }
    }

    /// Runs one operation with the configured attempts.
    async fn call(&mut self, op: Op) -> Result<Reply, ModbusError> {
        if let Some(problem) = check(&op) {
            let err = self.invalid(&op.describe(), problem);
            count_error(&err);
            return Err(err);
        }
        let attempts = self.settings.attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.once(&op).await {
                Ok(reply) => return Ok(reply),
                Err(err) if attempt < attempts && err.retryable() => {
                    attempt += 1;
                    tokio::time::sleep(self.settings.retry_delay).await;
                }
                Err(err) => {
                    count_error(&err);
                    return Err(err);
                }
            }
        }
    }

    async fn connect(target: &Address, settings: ClientSettings) -> Result<Context, ModbusError> {
        let address = target.to_string();
        let connect = async {
            match target {
                Address::Socket(addr) => TcpStream::connect(addr).await,
                Address::Host { host, port } => TcpStream::connect((host.as_str(), *port)).await,
            }
        };
        let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
            Err(_) => {
                return Err(ModbusError::Timeout {
                    address,
                    what: "connect".into(),
                    after: settings.connect_timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(ModbusError::Connect {
                    address,
                    problem: e.to_string(),
                });
            }
            Ok(Ok(stream)) => stream,
        };
        // Requests are a few bytes each; waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        Ok(tcp::attach_slave(stream, Slave(1)))
    }

    async fn once(&mut self, op: &Op) -> Result<Reply, ModbusError> {
        let mut ctx = match self.conn.take() {
            Some(ctx) => ctx,
            // Not `&self` across the await: the client holds a `Send`-only connection, so a
            // borrow of all of it would keep the future from moving between threads.
            None => Self::connect(&self.address, self.settings).await?,
        };
        let after = self.settings.call_timeout;
        let result = tokio::time::timeout(after, request(&mut ctx, op)).await;
        let address = self.address.to_string();
        match result {
            Err(_) => Err(ModbusError::Timeout {
                address,
                what: op.describe(),
                after,
            }),
            Ok(Err(e)) => Err(ModbusError::Transport {
                address,
                what: op.describe(),
                problem: e.to_string(),
            }),
            Ok(Ok(Err(code))) => {
                // The connection is fine: the device answered.
                self.conn = Some(ctx);
                Err(ModbusError::Exception {
                    address,
                    what: op.describe(),
                    code: u8::from(code),
                    text: code.to_string(),
                })
            }
            Ok(Ok(Ok(reply))) => {
                self.conn = Some(ctx);
                let expected = match op {
                    Op::Words(.., n) | Op::Bits(.., n) => usize::from(*n),
                    _ => 0,
                };
                match reply {
                    Reply::Words(words) if words.len() != expected => {
                        Err(ModbusError::ShortReply {
                            address,
                            what: op.describe(),
                            expected,
                            got: words.len(),
                        })
                    }
                    // Bits come back padded to whole bytes; only the first `expected` count.
                    Reply::Bits(mut bits) => {
                        if bits.len() < expected {
                            return Err(ModbusError::ShortReply {
                                address,
                                what: op.describe(),
                                expected,
                                got: bits.len(),
                            });
                        }
                        bits.truncate(expected);
                        Ok(Reply::Bits(bits))
                    }
                    other => Ok(other),
                }
            }
        }
    }
}

/// Why a request cannot be sent, if it cannot (limits of the Modbus spec's PDUs).
fn check(op: &Op) -> Option<&'static str> {
    let (function, addr, n, max) = match op {
        Op::Words(f, _, addr, n) => (*f, *addr, *n, 125),
        Op::Bits(f, _, addr, n) => (*f, *addr, *n, 2000),
        Op::WriteCoil(..) => return None,
        Op::WriteCoils(_, addr, states) => (
            Function::Coil,
            *addr,
            u16::try_from(states.len()).unwrap_or(u16::MAX),
            1968,
        ),
    };
    let words = matches!(op, Op::Words(..));
    if words == function.is_bits() {
        return Some("wrong table for this request (bits vs registers)");
    }
    if n == 0 {
        return Some("nothing to read or write");
    }
    if n > max {
        return Some("more than one request may carry");
    }
    if u32::from(addr) + u32::from(n) > 0x1_0000 {
        return Some("range runs past address 65535");
    }
    None
}

type Answer = Result<Result<Reply, ExceptionCode>, tokio_modbus::Error>;

async fn request(ctx: &mut Context, op: &Op) -> Answer {
    let unit = match op {
        Op::Words(_, unit, ..) | Op::Bits(_, unit, ..) => *unit,
        Op::WriteCoil(unit, ..) | Op::WriteCoils(unit, ..) => *unit,
    };
    ctx.set_slave(Slave(unit));
    let words = |r: tokio_modbus::Result<Vec<u16>>| r.map(|r| r.map(Reply::Words));
    let bits = |r: tokio_modbus::Result<Vec<bool>>| r.map(|r| r.map(Reply::Bits));
    let done = |r: tokio_modbus::Result<()>| r.map(|r| r.map(|()| Reply::Done));
    match op {
        Op::Words(Function::Holding, _, addr, n) => {
            words(ctx.read_holding_registers(*addr, *n).await)
        }
        Op::Words(_, _, addr, n) => words(ctx.read_input_registers(*addr, *n).await),
        Op::Bits(Function::Discrete, _, addr, n) => bits(ctx.read_discrete_inputs(*addr, *n).await),
        Op::Bits(_, _, addr, n) => bits(ctx.read_coils(*addr, *n).await),
        Op::WriteCoil(_, addr, on) => done(ctx.write_single_coil(*addr, *on).await),
        Op::WriteCoils(_, addr, states) => done(ctx.write_multiple_coils(*addr, states).await),
    }
}

pub(super) fn count_error(err: &ModbusError) {
    metrics::counter!("hashgate_modbus_errors_total", "kind" => err.kind()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_requests_are_refused_before_the_wire() {
        assert!(check(&Op::Words(Function::Holding, 1, 0, 0)).is_some());
        assert!(check(&Op::Words(Function::Holding, 1, 0, 126)).is_some());
        assert!(check(&Op::Words(Function::Coil, 1, 0, 1)).is_some());
        assert!(check(&Op::Bits(Function::Input, 1, 0, 1)).is_some());
        assert!(check(&Op::Words(Function::Input, 1, 0xFFFF, 2)).is_some());
        assert!(check(&Op::WriteCoils(1, 0, vec![])).is_some());
        assert_eq!(check(&Op::Words(Function::Input, 1, 0xFFFE, 2)), None);
        assert_eq!(check(&Op::Bits(Function::Discrete, 1, 7, 8)), None);
        assert_eq!(check(&Op::WriteCoil(1, 0xFFFF, true)), None);
    }

    #[tokio::test]
    async fn refused_connection_is_a_typed_error_after_bounded_attempts() {
        // A port just freed: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let settings = ClientSettings {
            attempts: 2,
            retry_delay: Duration::from_millis(1),
            ..ClientSettings::default()
        };
        let mut client = ModbusClient::new(Address::Socket(addr), settings);
        let err = client
            .read_words(Function::Input, 1, 0, 2)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "connect", "{err}");
    }
}
