//! A simulated Modbus TCP device: a register bank (holding and input registers, coils,
//! discrete inputs, per unit id) served by `tokio-modbus`'s server on 127.0.0.1 port 0.
//!
//! The bank is shared: a simulation (a meter following the site's load, a thermal model
//! writing its sensor, a test) sets values while hashgate reads them, and reads back the
//! coils hashgate switched. One device can stand for an RS-485 gateway with several unit
//! ids behind it. An address nobody set answers "illegal data address", as a real device
//! does for a register it does not have; faults make it silent, busy, or deaf to writes.

use std::collections::HashMap;
use std::future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hashgate_site::modbus::{Function, Point, decode, encode};
use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// How the simulated device misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceFault {
    /// Answers every request.
    #[default]
    None,
    /// Reads every request and answers none (a dead device behind a live gateway).
    Silent,
    /// Answers every request with this exception code (0x04 device failure, 0x0B gateway
    /// target failed to respond, ...).
    Exception(u8),
    /// Accepts coil and register writes and changes nothing (a welded relay).
    IgnoreWrites,
}

#[derive(Debug, Default)]
struct Bank {
    words: HashMap<(Function, u8, u16), u16>,
    bits: HashMap<(Function, u8, u16), bool>,
    fault: DeviceFault,
    requests: u64,
}

/// The device's memory, shared between the server and whoever drives the simulation.
#[derive(Debug, Clone, Default)]
pub struct RegisterBank(Arc<Mutex<Bank>>);

impl RegisterBank {
    /// An empty bank: every address answers "illegal data address" until set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Bank> {
        // A panic elsewhere while holding the lock leaves plain data; keep serving it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets consecutive registers of a word table (holding or input) from `address`.
    pub fn set_words(&self, function: Function, unit_id: u8, address: u16, words: &[u16]) {
        let mut bank = self.lock();
        for (i, word) in words.iter().enumerate() {
            let Some(at) = u16::try_from(i).ok().and_then(|i| address.checked_add(i)) else {
                break;
            };
            bank.words.insert((function, unit_id, at), *word);
        }
    }

    /// The registers at `address..address + count`, if all are set.
    pub fn words(
        &self,
        function: Function,
        unit_id: u8,
        address: u16,
        count: u16,
    ) -> Option<Vec<u16>> {
        let bank = self.lock();
        words_of(&bank, function, unit_id, address, count)
    }

    /// Sets one bit of a bit table (coil or discrete input); setting defines it.
    pub fn set_bit(&self, function: Function, unit_id: u8, address: u16, on: bool) {
        self.lock().bits.insert((function, unit_id, address), on);
    }

    /// One bit, if defined.
    pub fn bit(&self, function: Function, unit_id: u8, address: u16) -> Option<bool> {
        self.lock().bits.get(&(function, unit_id, address)).copied()
    }

    /// Defines `count` coils from `address`, all off (a relay module's outputs).
    pub fn add_coils(&self, unit_id: u8, address: u16, count: u16) {
        for i in 0..count {
            if let Some(at) = address.checked_add(i) {
                self.set_bit(Function::Coil, unit_id, at, false);
            }
        }
    }

    /// Stores `value` (in the point's unit) as the point's device would: divided by its
    /// scale and encoded in its type and word order; a bit point is on when `value` ≠ 0.
    pub fn set_value(&self, point: &Point, value: f64) {
        if point.function.is_bits() {
            self.set_bit(point.function, point.unit_id, point.address, value != 0.0);
            return;
        }
        let raw = if point.scale != 0.0 {
            value / point.scale
        } else {
            value
        };
        let words = encode(raw, point.data_type, point.word_order);
        self.set_words(point.function, point.unit_id, point.address, &words);
    }

    /// The point's value as hashgate would decode it, if set and decodable.
    pub fn value(&self, point: &Point) -> Option<f64> {
        if point.function.is_bits() {
            return self
                .bit(point.function, point.unit_id, point.address)
                .map(Point::bit_value);
        }
        let words = self.words(point.function, point.unit_id, point.address, point.count())?;
        decode(&words, point.data_type, point.word_order)
            .ok()
            .map(|raw| raw * point.scale)
    }

    /// Makes the device misbehave (or behave again with [`DeviceFault::None`]).
    pub fn set_fault(&self, fault: DeviceFault) {
        self.lock().fault = fault;
    }

    /// Requests received so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Answers one request from the bank.
    fn serve(&self, unit_id: u8, request: Request<'_>) -> Result<Option<Response>, ExceptionCode> {
        let mut bank = self.lock();
        bank.requests += 1;
        match bank.fault {
            DeviceFault::Silent => return Ok(None),
            DeviceFault::Exception(code) => return Err(ExceptionCode::new(code)),
            DeviceFault::None | DeviceFault::IgnoreWrites => {}
        }
        let apply = bank.fault != DeviceFault::IgnoreWrites;
        let missing = ExceptionCode::IllegalDataAddress;
        let response = match request {
            Request::ReadHoldingRegisters(addr, n) => Response::ReadHoldingRegisters(
                words_of(&bank, Function::Holding, unit_id, addr, n).ok_or(missing)?,
            ),
            Request::ReadInputRegisters(addr, n) => Response::ReadInputRegisters(
                words_of(&bank, Function::Input, unit_id, addr, n).ok_or(missing)?,
            ),
            Request::ReadCoils(addr, n) => Response::ReadCoils(
                bits_of(&bank, Function::Coil, unit_id, addr, n).ok_or(missing)?,
            ),
            Request::ReadDiscreteInputs(addr, n) => Response::ReadDiscreteInputs(
                bits_of(&bank, Function::Discrete, unit_id, addr, n).ok_or(missing)?,
            ),
            Request::WriteSingleCoil(addr, on) => {
                let key = (Function::Coil, unit_id, addr);
                if !bank.bits.contains_key(&key) {
                    return Err(missing);
                }
                if apply {
                    bank.bits.insert(key, on);
                }
                Response::WriteSingleCoil(addr, on)
            }
            Request::WriteMultipleCoils(addr, states) => {
                let n = u16::try_from(states.len()).map_err(|_| ExceptionCode::IllegalDataValue)?;
                bits_of(&bank, Function::Coil, unit_id, addr, n).ok_or(missing)?;
                if apply {
                    for (at, on) in (addr..).zip(states.iter()) {
                        bank.bits.insert((Function::Coil, unit_id, at), *on);
                    }
                }
                Response::WriteMultipleCoils(addr, n)
            }
            Request::WriteSingleRegister(addr, word) => {
                let key = (Function::Holding, unit_id, addr);
                if !bank.words.contains_key(&key) {
                    return Err(missing);
                }
                if apply {
                    bank.words.insert(key, word);
                }
                Response::WriteSingleRegister(addr, word)
            }
            Request::WriteMultipleRegisters(addr, words) => {
                let n = u16::try_from(words.len()).map_err(|_| ExceptionCode::IllegalDataValue)?;
                words_of(&bank, Function::Holding, unit_id, addr, n).ok_or(missing)?;
                if apply {
                    for (at, word) in (addr..).zip(words.iter()) {
                        bank.words.insert((Function::Holding, unit_id, at), *word);
                    }
                }
                Response::WriteMultipleRegisters(addr, n)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }
}

fn words_of(
    bank: &Bank,
    function: Function,
    unit_id: u8,
    address: u16,
    count: u16,
) -> Option<Vec<u16>> {
    (0..count)
        .map(|i| {
            let at = address.checked_add(i)?;
            bank.words.get(&(function, unit_id, at)).copied()
        })
        .collect()
}

fn bits_of(
    bank: &Bank,
    function: Function,
    unit_id: u8,
    address: u16,
    count: u16,
) -> Option<Vec<bool>> {
    (0..count)
        .map(|i| {
            let at = address.checked_add(i)?;
            bank.bits.get(&(function, unit_id, at)).copied()
        })
        .collect()
}

/// The `tokio-modbus` service answering from a bank.
struct BankService(RegisterBank);

impl tokio_modbus::server::Service for BankService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.0.serve(req.slave, req.request))
    }
}

/// A running simulated Modbus TCP device; dropping it stops the server.
#[derive(Debug)]
pub struct SimModbusDevice {
    /// Where it answers (127.0.0.1, an OS-chosen port).
    pub addr: SocketAddr,
    /// Its registers and coils.
    pub bank: RegisterBank,
    /// Stops the server and its connections when cancelled (on drop).
    cancel: CancellationToken,
}

impl SimModbusDevice {
    /// Stops serving now (also done on drop); open connections are closed.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for SimModbusDevice {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a device serving `bank` on 127.0.0.1, port 0.
///
/// # Errors
/// When the listener cannot be bound.
pub async fn spawn(bank: RegisterBank) -> std::io::Result<SimModbusDevice> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let server = Server::new(listener);
    let served = bank.clone();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let on_connected = move |stream, peer| {
            let service = Arc::new(BankService(served.clone()));
            async move { accept_tcp_connection(stream, peer, |_| Ok(Some(Arc::clone(&service)))) }
        };
        // Dropping `serve` (on cancel) cancels every connection task it spawned.
        tokio::select! {
            () = stop.cancelled() => {}
            result = server.serve(&on_connected, |e| tracing::debug!(error = %e, "sim modbus connection ended")) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "sim modbus server stopped");
                }
            }
        }
    });
    Ok(SimModbusDevice { addr, bank, cancel })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hashgate_site::modbus::{
        ClientSettings, DataType, ModbusClient, ModbusError, Unit, WordOrder,
    };
    use hashgate_site::power::inventory::Address;

    use super::*;

    fn client(device: &SimModbusDevice) -> ModbusClient {
        ModbusClient::new(
            Address::Socket(device.addr),
            ClientSettings {
                connect_timeout: Duration::from_secs(2),
                call_timeout: Duration::from_millis(300),
                attempts: 2,
                retry_delay: Duration::from_millis(10),
            },
        )
    }

    fn point(function: Function, unit_id: u8, address: u16, data_type: DataType) -> Point {
        Point {
            function,
            unit_id,
            address,
            data_type,
            word_order: WordOrder::Big,
            scale: 1.0,
            unit: Unit::W,
        }
    }

    #[tokio::test]
    async fn reads_points_per_unit_and_table() {
        let device = spawn(RegisterBank::new()).await.unwrap();
        let power = point(Function::Input, 1, 0x34, DataType::F32);
        let temp = Point {
            scale: 0.1,
            unit: Unit::Celsius,
            ..point(Function::Holding, 7, 0, DataType::I16)
        };
        let swapped = Point {
            word_order: WordOrder::Little,
            ..point(Function::Holding, 1, 100, DataType::U32)
        };
        device.bank.set_value(&power, 1234.5);
        device.bank.set_value(&temp, -12.3);
        device.bank.set_value(&swapped, 100_000.0);
        assert_eq!(
            device.bank.words(Function::Holding, 1, 100, 2),
            Some(vec![0x86A0, 0x0001])
        );
        let mut c = client(&device);
        assert_eq!(c.read_point(&power).await.unwrap(), 1234.5);
        let t = c.read_point(&temp).await.unwrap();
        assert!((t + 12.3).abs() < 1e-9, "{t}");
        assert_eq!(c.read_point(&swapped).await.unwrap(), 100_000.0);
        // The same address in another unit or table is not there.
        let err = c
            .read_point(&point(Function::Input, 2, 0x34, DataType::F32))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ModbusError::Exception { code: 0x02, .. }),
            "{err}"
        );
        let err = c
            .read_point(&point(Function::Holding, 1, 0x34, DataType::F32))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "exception");
    }

    #[tokio::test]
    async fn nan_from_the_device_is_a_decode_error() {
        let device = spawn(RegisterBank::new()).await.unwrap();
        device
            .bank
            .set_words(Function::Input, 1, 0, &[0x7FC0, 0x0000]);
        let err = client(&device)
            .read_point(&point(Function::Input, 1, 0, DataType::F32))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "decode", "{err}");
    }

    #[tokio::test]
    async fn coils_switch_and_read_back() {
        let device = spawn(RegisterBank::new()).await.unwrap();
        device.bank.add_coils(3, 0, 8);
        let mut c = client(&device);
        c.write_coil(3, 2, true).await.unwrap();
        assert_eq!(device.bank.bit(Function::Coil, 3, 2), Some(true));
        c.write_coils(3, 4, &[true, false, true]).await.unwrap();
        assert_eq!(
            c.read_bits(Function::Coil, 3, 0, 8).await.unwrap(),
            vec![false, false, true, false, true, false, true, false]
        );
        // A coil the module does not have.
        let err = c.write_coil(3, 9, true).await.unwrap_err();
        assert!(
            matches!(err, ModbusError::Exception { code: 0x02, .. }),
            "{err}"
        );
        // A welded relay: the write is acknowledged, the read-back tells the truth.
        device.bank.set_fault(DeviceFault::IgnoreWrites);
        let err = c.write_coil(3, 0, true).await.unwrap_err();
        assert!(
            matches!(&err, ModbusError::ReadBack { wrote, read, .. } if wrote == &[true] && read == &[false]),
            "{err}"
        );
    }

    #[tokio::test]
    async fn silent_device_times_out_after_bounded_attempts_then_recovers() {
        let device = spawn(RegisterBank::new()).await.unwrap();
        let p = point(Function::Input, 1, 0, DataType::U16);
        device.bank.set_value(&p, 42.0);
        let mut c = client(&device);
        device.bank.set_fault(DeviceFault::Silent);
        let before = device.bank.requests();
        let err = c.read_point(&p).await.unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        // Two attempts, each on a fresh connection after the timeout.
        assert_eq!(device.bank.requests() - before, 2);
        device.bank.set_fault(DeviceFault::Exception(0x04));
        let err = c.read_point(&p).await.unwrap_err();
        assert!(
            matches!(err, ModbusError::Exception { code: 0x04, .. }),
            "{err}"
        );
        device.bank.set_fault(DeviceFault::None);
        assert_eq!(c.read_point(&p).await.unwrap(), 42.0);
    }

    #[tokio::test]
    async fn stopped_device_is_a_connect_error() {
        let device = spawn(RegisterBank::new()).await.unwrap();
        let mut c = client(&device);
        device.bank.add_coils(1, 0, 1);
        c.write_coil(1, 0, true).await.unwrap();
        let addr = device.addr;
        drop(device);
        // The listener closes with the server task; give it a moment to go.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut fresh = ModbusClient::new(Address::Socket(addr), ClientSettings::default());
        let err = fresh.read_bits(Function::Coil, 1, 0, 1).await.unwrap_err();
        assert!(
            matches!(err.kind(), "connect" | "transport" | "timeout"),
            "{err}"
        );
    }
}
