//! Modbus register points and the decoding of register words into numbers.
//!
//! A meter, sensor or relay module is read as a set of [`Point`]s: which table (function
//! code), which unit id behind a gateway, which 0-based protocol address, how many words
//! make the value and in which order, and the factor to the physical unit. The words come
//! from a device on the network, so decoding never panics: a wrong word count, a NaN or an
//! infinity is a [`DecodeError`].
//!
//! Addresses here are always the 0-based address sent on the wire (PDU address). Maker
//! tables often print 1-based register numbers (Schneider's "3060" is PDU address 3059) or
//! the old 3xxxx/4xxxx reference numbers; [`Addressing`] converts them.
//!
//! Word layouts (`W0` is the first register read, each word is big-endian on the wire):
//!
//! | type | words | [`WordOrder::Big`] | [`WordOrder::Little`] (word-swapped) |
//! |---|---|---|---|
//! | `u16`, `i16` | 1 | `W0` | `W0` |
//! | `u32`, `i32`, `f32` | 2 | `W0 W1` (high word first) | `W1 W0` (low word first) |
//! | `u64`, `f64` | 4 | `W0 W1 W2 W3` | `W3 W2 W1 W0` |

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which Modbus table a point lives in, named by its read function code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Coils (read 0x01, written with 0x05 / 0x0F): one bit, read-write.
    Coil,
    /// Discrete inputs (0x02): one bit, read-only.
    Discrete,
    /// Holding registers (0x03): 16-bit words, read-write.
    Holding,
    /// Input registers (0x04): 16-bit words, read-only.
    Input,
}

impl Function {
    /// The function code that reads this table.
    pub fn read_code(self) -> u8 {
        match self {
            Function::Coil => 0x01,
            Function::Discrete => 0x02,
            Function::Holding => 0x03,
            Function::Input => 0x04,
        }
    }

    /// Whether the table holds bits (coils, discrete inputs) rather than words.
    pub fn is_bits(self) -> bool {
        matches!(self, Function::Coil | Function::Discrete)
    }

    /// Stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Function::Coil => "coil",
            Function::Discrete => "discrete",
            Function::Holding => "holding",
            Function::Input => "input",
        }
    }
}

/// How a value is encoded in its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Unsigned 16-bit, one register.
    U16,
    /// Signed 16-bit (two's complement), one register.
    I16,
    /// Unsigned 32-bit, two registers.
    U32,
    /// Signed 32-bit, two registers.
    I32,
    /// Unsigned 64-bit, four registers (energy counters).
    U64,
    /// IEEE 754 single precision, two registers.
    F32,
    /// IEEE 754 double precision, four registers.
    F64,
}

impl DataType {
    /// Registers the value occupies.
    pub fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::F64 => 4,
        }
    }

    /// Stable label for logs and docs.
    pub fn label(self) -> &'static str {
        match self {
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        }
    }
}

/// Order of the 16-bit words in a multi-register value (bytes inside a word are always
/// big-endian, as Modbus sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// Most significant word first (the Modbus convention; Eastron, Schneider).
    #[default]
    Big,
    /// Least significant word first ("word-swapped", "CDAB"), as some PLCs and gateways send.
    Little,
}

/// How a maker's register table numbers its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// The table prints the address sent on the wire (Eastron's hex addresses, Acrel).
    ZeroBased,
    /// The table prints register numbers starting at 1 (Schneider): wire address = n − 1.
    OneBased,
}

impl Addressing {
    /// The wire (0-based) address of a register as the table prints it; `None` for a
    /// one-based table's register 0, which does not exist.
    pub fn wire_address(self, printed: u16) -> Option<u16> {
        match self {
            Addressing::ZeroBased => Some(printed),
            Addressing::OneBased => printed.checked_sub(1),
        }
    }
}

/// The physical unit of a point's value after its scale factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Watts.
    W,
    /// Kilowatts.
    Kw,
    /// Watt-hours.
    Wh,
    /// Kilowatt-hours.
    Kwh,
    /// Degrees Celsius.
    Celsius,
    /// Percent (relative humidity, duty).
    Percent,
    /// Volts.
    V,
    /// Amperes.
    A,
    /// Hertz.
    Hz,
    /// No unit (a count, a state, a bit).
    None,
}

impl Unit {
    /// Factor to this unit's base unit: kW → W and kWh → Wh are 1000, the rest 1.
    pub fn to_base(self) -> f64 {
        match self {
            Unit::Kw | Unit::Kwh => 1e3,
            _ => 1.0,
        }
    }

    /// Whether the value is a power (W or kW).
    pub fn is_power(self) -> bool {
        matches!(self, Unit::W | Unit::Kw)
    }

    /// Whether the value is an energy (Wh or kWh).
    pub fn is_energy(self) -> bool {
        matches!(self, Unit::Wh | Unit::Kwh)
    }

    /// Stable label for logs and docs.
    pub fn label(self) -> &'static str {
        match self {
            Unit::W => "w",
            Unit::Kw => "kw",
            Unit::Wh => "wh",
            Unit::Kwh => "kwh",
            Unit::Celsius => "celsius",
            Unit::Percent => "percent",
            Unit::V => "v",
            Unit::A => "a",
            Unit::Hz => "hz",
            Unit::None => "none",
        }
    }
}

/// One value in a device's register map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Table (and so read function code).
    pub function: Function,
    /// Unit id (slave address) behind a gateway; 1 for most single devices.
    pub unit_id: u8,
    /// 0-based wire address of the first register or bit.
    pub address: u16,
    /// Encoding of the words (ignored for coils and discrete inputs, which read 0 or 1).
    pub data_type: DataType,
    /// Order of the words of a multi-register value.
    pub word_order: WordOrder,
    /// Factor from the decoded number to `unit` (0.1 for a register in tenths).
    pub scale: f64,
    /// Unit of the value after `scale`.
    pub unit: Unit,
}

impl Point {
    /// Registers (or bits) read for this point.
    pub fn count(&self) -> u16 {
        if self.function.is_bits() {
            1
        } else {
            self.data_type.words()
        }
    }

    /// The value of this point from the words read at its address, in `unit`.
    ///
    /// # Errors
    /// [`DecodeError`] when the word count is wrong or the value is not finite.
    pub fn value(&self, words: &[u16]) -> Result<f64, DecodeError> {
        let raw = decode(words, self.data_type, self.word_order)?;
        finite(raw * self.scale)
    }

    /// The value in the unit's base (W for kW, Wh for kWh).
    ///
    /// # Errors
    /// As [`Self::value`].
    pub fn value_in_base(&self, words: &[u16]) -> Result<f64, DecodeError> {
        finite(self.value(words)? * self.unit.to_base())
    }

    /// The value of a bit point (coil or discrete input): 1.0 on, 0.0 off.
    pub fn bit_value(on: bool) -> f64 {
        if on { 1.0 } else { 0.0 }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (0x{:04X}) unit {}",
            self.function.label(),
            self.address,
            self.address,
            self.unit_id
        )
    }
}

/// Why register words did not give a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The device answered with another number of registers than the type needs.
    #[error("{data_type} needs {expected} registers, got {got}", data_type = .data_type.label())]
    WordCount {
        /// The type decoded.
        data_type: DataType,
        /// Registers the type needs.
        expected: u16,
        /// Registers received.
        got: usize,
    },
    /// The value is NaN or infinite (a float a meter sends for "not available", or an
    /// overflow after scaling).
    #[error("value is not a finite number")]
    NotFinite,
}

/// Decodes register words as `data_type` in `order`, before any scale factor.
///
/// # Errors
/// [`DecodeError::WordCount`] when `words` is not exactly the type's length;
/// [`DecodeError::NotFinite`] for a NaN or infinite float.
pub fn decode(words: &[u16], data_type: DataType, order: WordOrder) -> Result<f64, DecodeError> {
    let expected = data_type.words();
    if words.len() != usize::from(expected) {
        return Err(DecodeError::WordCount {
            data_type,
            expected,
            got: words.len(),
        });
    }
    // Fold the words most significant first; `words` has the checked length.
    let wide = |ws: &[u16]| -> u64 {
        let fold = |acc: u64, w: &u16| (acc << 16) | u64::from(*w);
        match order {
            WordOrder::Big => ws.iter().fold(0, fold),
            WordOrder::Little => ws.iter().rev().fold(0, fold),
        }
    };
    let bits = wide(words);
    let value = match data_type {
        DataType::U16 => f64::from(bits as u16),
        DataType::I16 => f64::from(bits as u16 as i16),
        DataType::U32 => f64::from(bits as u32),
        DataType::I32 => f64::from(bits as u32 as i32),
        // Energy counters stay far below 2^53 Wh; above it the nearest double is fine.
        DataType::U64 => bits as f64,
        DataType::F32 => f64::from(f32::from_bits(bits as u32)),
        DataType::F64 => f64::from_bits(bits),
    };
    finite(value)
}

/// Encodes a value as `data_type` in `order`: what a simulated device serves. Integers are
/// rounded and saturate at the type's range.
pub fn encode(value: f64, data_type: DataType, order: WordOrder) -> Vec<u16> {
    let bits: u64 = match data_type {
        DataType::U16 => u64::from(value.round() as u16),
        DataType::I16 => u64::from(value.round() as i16 as u16),
        DataType::U32 => u64::from(value.round() as u32),
        DataType::I32 => u64::from(value.round() as i32 as u32),
        DataType::U64 => value.round() as u64,
        DataType::F32 => u64::from((value as f32).to_bits()),
        DataType::F64 => value.to_bits(),
    };
    let n = usize::from(data_type.words());
    let mut words: Vec<u16> = (0..n)
        .map(|i| (bits >> (16 * (n - 1 - i))) as u16)
        .collect();
    if order == WordOrder::Little {
        words.reverse();
    }
    words
}

fn finite(value: f64) -> Result<f64, DecodeError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DecodeError::NotFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(words: &[u16], t: DataType, o: WordOrder) -> Result<f64, DecodeError> {
        decode(words, t, o)
    }

    #[test]
    fn integers_by_hand() {
        use DataType::*;
        use WordOrder::*;
        assert_eq!(d(&[0xFFFF], U16, Big), Ok(65535.0));
        assert_eq!(d(&[0xFFFF], I16, Big), Ok(-1.0));
        assert_eq!(d(&[0x8000], I16, Little), Ok(-32768.0));
        // 0x0001_86A0 = 100000.
        assert_eq!(d(&[0x0001, 0x86A0], U32, Big), Ok(100_000.0));
        assert_eq!(d(&[0x86A0, 0x0001], U32, Little), Ok(100_000.0));
        // 0xFFFE_7960 = -100000 as i32.
        assert_eq!(d(&[0xFFFE, 0x7960], I32, Big), Ok(-100_000.0));
        assert_eq!(d(&[0x7960, 0xFFFE], I32, Little), Ok(-100_000.0));
        // 0x0000_0001_0000_0002 = 4294967298.
        assert_eq!(d(&[0, 1, 0, 2], U64, Big), Ok(4_294_967_298.0));
        assert_eq!(d(&[2, 0, 1, 0], U64, Little), Ok(4_294_967_298.0));
    }

    #[test]
    fn floats_by_hand() {
        use DataType::*;
        use WordOrder::*;
        // 1234.5 f32 = 0x449A_5000.
        assert_eq!(d(&[0x449A, 0x5000], F32, Big), Ok(1234.5));
        assert_eq!(d(&[0x5000, 0x449A], F32, Little), Ok(1234.5));
        // -2.0 f32 = 0xC000_0000.
        assert_eq!(d(&[0xC000, 0x0000], F32, Big), Ok(-2.0));
        // 1.5 f64 = 0x3FF8_0000_0000_0000.
        assert_eq!(d(&[0x3FF8, 0, 0, 0], F64, Big), Ok(1.5));
        assert_eq!(d(&[0, 0, 0, 0x3FF8], F64, Little), Ok(1.5));
        // Word-swapped 1234.5 read as big-endian is a tiny, wrong number, not an error:
        // a wrong word order is caught by plausibility, not by decoding.
        let swapped = d(&[0x5000, 0x449A], F32, Big).unwrap_or(f64::NAN);
        assert!(swapped > 8.5e9 && swapped < 8.7e9, "{swapped}");
    }

    #[test]
    fn nan_infinity_and_absurd() {
        use DataType::*;
        use WordOrder::*;
        // Quiet NaN 0x7FC0_0000, the "not available" many meters send.
        assert_eq!(d(&[0x7FC0, 0x0000], F32, Big), Err(DecodeError::NotFinite));
        // +inf 0x7F80_0000, -inf 0xFF80_0000.
        assert_eq!(d(&[0x7F80, 0x0000], F32, Big), Err(DecodeError::NotFinite));
        assert_eq!(d(&[0xFF80, 0x0000], F32, Big), Err(DecodeError::NotFinite));
        assert_eq!(d(&[0x7FF8, 0, 0, 0], F64, Big), Err(DecodeError::NotFinite));
        // Largest finite f32 0x7F7F_FFFF decodes (absurd, but a number): callers bound it.
        let max = d(&[0x7F7F, 0xFFFF], F32, Big).unwrap_or(0.0);
        assert_eq!(max, f64::from(f32::MAX));
        // Scaling a huge f64 past the range is caught after the scale.
        let point = Point {
            function: Function::Holding,
            unit_id: 1,
            address: 0,
            data_type: F64,
            word_order: Big,
            scale: 1e10,
            unit: Unit::Kw,
        };
        // f64::MAX = 0x7FEF_FFFF_FFFF_FFFF.
        assert_eq!(
            point.value(&[0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF]),
            Err(DecodeError::NotFinite)
        );
    }

    #[test]
    fn wrong_word_count_is_an_error() {
        assert_eq!(
            d(&[1], DataType::F32, WordOrder::Big),
            Err(DecodeError::WordCount {
                data_type: DataType::F32,
                expected: 2,
                got: 1
            })
        );
        assert!(d(&[], DataType::U16, WordOrder::Big).is_err());
        assert!(d(&[1, 2, 3], DataType::U64, WordOrder::Big).is_err());
    }

    #[test]
    fn scale_and_unit() {
        let point = Point {
            function: Function::Input,
            unit_id: 1,
            address: 0x34,
            data_type: DataType::U16,
            word_order: WordOrder::Big,
            scale: 0.1,
            unit: Unit::Kw,
        };
        // 1234 tenths of a kW = 123.4 kW = 123400 W.
        let kw = point.value(&[1234]).unwrap_or(0.0);
        assert!((kw - 123.4).abs() < 1e-9, "{kw}");
        let w = point.value_in_base(&[1234]).unwrap_or(0.0);
        assert!((w - 123_400.0).abs() < 1e-6, "{w}");
        assert_eq!(point.count(), 1);
        assert_eq!(point.to_string(), "input 52 (0x0034) unit 1");
    }

    #[test]
    fn addressing() {
        assert_eq!(Addressing::OneBased.wire_address(3060), Some(3059));
        assert_eq!(Addressing::OneBased.wire_address(0), None);
        assert_eq!(Addressing::ZeroBased.wire_address(0x34), Some(0x34));
    }

    #[test]
    fn encode_round_trips() {
        use DataType::*;
        for order in [WordOrder::Big, WordOrder::Little] {
            for (t, v) in [
                (U16, 65535.0),
                (I16, -3.0),
                (U32, 100_000.0),
                (I32, -100_000.0),
                (U64, 4_294_967_298.0),
                (F32, 1234.5),
                (F64, -0.125),
            ] {
                assert_eq!(
                    decode(&encode(v, t, order), t, order),
                    Ok(v),
                    "{t:?} {order:?}"
                );
            }
        }
        assert_eq!(encode(1234.5, F32, WordOrder::Big), vec![0x449A, 0x5000]);
        assert_eq!(encode(1234.5, F32, WordOrder::Little), vec![0x5000, 0x449A]);
    }
}
