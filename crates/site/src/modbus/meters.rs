//! Power meters as register maps: total active power, optionally the three phase powers
//! and the imported energy, each a [`Point`]. Shipped models carry the maker's register
//! table; a site can write its own map in the config ([`MeterMapRaw`]).
//!
//! | model (`model = ...`) | table, type | addressing in the maker's table | total power | phases | import energy | source |
//! |---|---|---|---|---|---|---|
//! | `eastron_sdm630` | input (0x04), f32 big-endian | 0-based hex (also printed 1-based as 3xxxx) | 0x0034, W | 0x000C / 0x000E / 0x0010, W | 0x0048, kWh | Eastron "SDM630 Modbus Protocol" (input register table) |
//! | `schneider_pm5000` | holding (0x03), f32 big-endian | 1-based register numbers | 3060 → wire 3059, kW | 3054 / 3056 / 3058 → 3053 / 3055 / 3057, kW | 2700 → 2699 "Active Energy Delivered (Into Load)", kWh | Schneider Electric "PM5100 / PM5300 / PM5500 Modbus register list" |
//! | `gavazzi_em21` | input (0x04; 0x03 reads the same), i32 low word first, × 0.1 | 0-based hex (also printed 1-based as 3xxxx) | 0x0028 "W Σ", W | 0x0012 / 0x0014 / 0x0016, W | 0x0034 "kWh(+) TOT", kWh | Carlo Gavazzi "EM21 Communication Protocol" V1 Rev0, table 2.3-1 |
//!
//! SDM630 and PM5000 are configured with their CT ratio on the meter and report primary
//! values (`ratio = 1`). The EM21 also holds its CT and VT ratios (1003h, 1005h) and, by
//! the width of its registers, reports primary values: its current is an i32 in mA although
//! the input stops at 6.5 A, room only a ratio up to 60000 needs (`ratio = 1`).
//!
//! A map is shipped only where the maker's own register table was read. An earlier
//! `acrel_dtsd1352` map is withdrawn: Acrel's "DTSD1352 Installation and operation
//! instruction V2.0", §9.1 "Address table", confirms function 03H and the energy registers
//! (0000H total, 000AH forward active, two registers each), and the ADL3000-E manual of
//! the same family (§9.1 "ADDR list") gives energy = data × PT × CT × 0.01 kWh; but no
//! Acrel table for the power registers (0164H-016AH, taken from two third-party drivers)
//! could be read. The name is refused with a pointer to a site's own map
//! ([`RETIRED_MODELS`], docs/POWER.md "Acrel meters").

use serde::Deserialize;
use serde::de::Error as _;

use super::{Addressing, DataType, Function, ModbusClient, ModbusError, Point, Unit, WordOrder};

/// Largest power believed from any meter, W: a container feed is under 5 MW, a whole site
/// under a few hundred; past this the words are garbage that happened to decode.
pub const MAX_PLAUSIBLE_WATTS: f64 = 1e9;

/// A meter model whose register map hashgate ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterModel {
    /// Eastron SDM630 (and SDM630MCT): DIN-rail three-phase meter, input registers, f32.
    EastronSdm630,
    /// Schneider Electric PowerLogic PM5000 series (PM5100/PM5300/PM5500), holding, f32.
    SchneiderPm5000,
    /// Carlo Gavazzi EM21: DIN-rail three-phase meter, input registers, i32 in tenths,
    /// low word first.
    GavazziEm21,
}

/// Model names once shipped and withdrawn, with what to write instead: refused with that
/// message rather than as an unknown name.
pub const RETIRED_MODELS: [(&str, &str); 1] = [(
    "acrel_dtsd1352",
    "the acrel_dtsd1352 map is no longer shipped: its power registers could not be \
     confirmed from Acrel's own register table; describe the meter with a \
     [containers.meter.map] (or it_meter.map) read off your meter's manual, see \
     docs/POWER.md \"Acrel meters\"",
)];

impl MeterModel {
    /// Every shipped model.
    pub const ALL: [MeterModel; 3] = [
        MeterModel::EastronSdm630,
        MeterModel::SchneiderPm5000,
        MeterModel::GavazziEm21,
    ];

    /// The config name (`model = "..."`).
    pub fn label(self) -> &'static str {
        match self {
            MeterModel::EastronSdm630 => "eastron_sdm630",
            MeterModel::SchneiderPm5000 => "schneider_pm5000",
            MeterModel::GavazziEm21 => "gavazzi_em21",
        }
    }

    /// The model a config name means.
    ///
    /// # Errors
    /// What is wrong with the name: a withdrawn model's message ([`RETIRED_MODELS`]), or
    /// the list of shipped ones.
    pub fn from_name(name: &str) -> Result<MeterModel, String> {
        if let Some(model) = MeterModel::ALL.into_iter().find(|m| m.label() == name) {
            return Ok(model);
        }
        if let Some((_, why)) = RETIRED_MODELS.iter().find(|(n, _)| *n == name) {
            return Err((*why).to_owned());
        }
        let shipped: Vec<&str> = MeterModel::ALL.iter().map(|m| m.label()).collect();
        Err(format!(
            "unknown meter model {name:?}: shipped maps are {}, or write a map",
            shipped.join(", ")
        ))
    }

    /// The model's register map for a meter at `unit_id`.
    pub fn map(self, unit_id: u8) -> MeterMap {
        let p = |function, address, data_type, scale, unit| Point {
            function,
            unit_id,
            address,
            data_type,
            word_order: WordOrder::Big,
            scale,
            unit,
        };
        match self {
            MeterModel::EastronSdm630 => {
                let f = |address, unit| p(Function::Input, address, DataType::F32, 1.0, unit);
                MeterMap {
                    addressing: Addressing::ZeroBased,
                    power: f(0x0034, Unit::W),
                    phases: Some([f(0x000C, Unit::W), f(0x000E, Unit::W), f(0x0010, Unit::W)]),
                    energy: Some(f(0x0048, Unit::Kwh)),
                }
            }
            MeterModel::SchneiderPm5000 => {
                // The maker's table is 1-based: register 3060 is wire address 3059.
                let f = |register: u16, unit| {
                    p(Function::Holding, register - 1, DataType::F32, 1.0, unit)
                };
                MeterMap {
                    addressing: Addressing::OneBased,
                    power: f(3060, Unit::Kw),
                    phases: Some([f(3054, Unit::Kw), f(3056, Unit::Kw), f(3058, Unit::Kw)]),
                    energy: Some(f(2700, Unit::Kwh)),
                }
            }
            MeterModel::GavazziEm21 => {
                // Carlo Gavazzi's 32-bit integers put the low word first (table 2.1), and
                // table 2.3-1 weighs power as W × 10 and energy as kWh × 10.
                let f = |address, unit| Point {
                    word_order: WordOrder::Little,
                    ..p(Function::Input, address, DataType::I32, 0.1, unit)
                };
                MeterMap {
                    addressing: Addressing::ZeroBased,
                    power: f(0x0028, Unit::W),
                    phases: Some([f(0x0012, Unit::W), f(0x0014, Unit::W), f(0x0016, Unit::W)]),
                    energy: Some(f(0x0034, Unit::Kwh)),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for MeterModel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        MeterModel::from_name(&name).map_err(D::Error::custom)
    }
}

/// Where a meter keeps its figures; every point's address is the 0-based wire address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterMap {
    /// How the maker's table numbers registers (the points are already converted).
    pub addressing: Addressing,
    /// Total active power (W or kW).
    pub power: Point,
    /// Active power of phases 1, 2, 3, when the map has them.
    pub phases: Option<[Point; 3]>,
    /// Imported active energy counter (Wh or kWh), when the map has it.
    pub energy: Option<Point>,
}

/// One reading of a Modbus meter, in base units (PT × CT ratio applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReading {
    /// Total active power, W.
    pub watts: f64,
    /// Per-phase active power, W, when the map has it and it was read.
    pub phase_watts: Option<[f64; 3]>,
    /// Imported energy, Wh, when the map has it and it was read.
    pub energy_wh: Option<f64>,
}

/// Reads a meter: total power must be read; phases and energy are best effort (their
/// failures are counted by the client and leave them `None`).
///
/// # Errors
/// [`ModbusError`] when the total power cannot be read or is not plausible.
pub async fn read_meter(
    client: &mut ModbusClient,
    map: &MeterMap,
    ratio: f64,
) -> Result<MeterReading, ModbusError> {
    let watts = read_watts(client, &map.power, ratio).await?;
    let phase_watts = match &map.phases {
        None => None,
        Some(points) => {
            let mut out = [0.0; 3];
            let mut all = true;
            for (slot, point) in out.iter_mut().zip(points) {
                match read_watts(client, point, ratio).await {
                    Ok(w) => *slot = w,
                    Err(_) => {
                        all = false;
                        break;
                    }
                }
            }
            all.then_some(out)
        }
    };
    let energy_wh = match &map.energy {
        None => None,
        Some(point) => client
            .read_point(point)
            .await
            .ok()
            .map(|v| v * point.unit.to_base() * ratio)
            .filter(|wh| wh.is_finite() && *wh >= 0.0),
    };
    Ok(MeterReading {
        watts,
        phase_watts,
        energy_wh,
    })
}

async fn read_watts(
    client: &mut ModbusClient,
    point: &Point,
    ratio: f64,
) -> Result<f64, ModbusError> {
    let watts = client.read_point(point).await? * point.unit.to_base() * ratio;
    if watts.is_nan() || watts.abs() > MAX_PLAUSIBLE_WATTS {
        let err = ModbusError::Implausible {
            address: client.address().to_string(),
            what: point.to_string(),
            value: watts,
        };
        super::client::count_error(&err);
        return Err(err);
    }
    Ok(watts)
}

/// A register map as a site writes it in the config (`[power.containers.meter.map]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterMapRaw {
    /// How the addresses below are numbered: `zero_based` (as sent on the wire) or
    /// `one_based` (register numbers of a table starting at 1). Required: guessing wrong
    /// reads the neighbouring register.
    pub addressing: Addressing,
    /// Total active power; its unit must be `w` or `kw`.
    pub power: PointRaw,
    /// Phase 1, 2, 3 active power (exactly three), optional.
    pub phases: Option<Vec<PointRaw>>,
    /// Imported energy counter; its unit must be `wh` or `kwh`; optional.
    pub energy: Option<PointRaw>,
}

/// One point of a config register map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRaw {
    /// `holding` or `input` (meters keep figures in registers).
    pub function: Function,
    /// Address as the maker's table prints it, numbered per the map's `addressing`.
    pub address: u16,
    /// `u16`, `i16`, `u32`, `i32`, `u64`, `f32` or `f64`.
    pub data_type: DataType,
    /// `big` (default, high word first) or `little` (word-swapped).
    pub word_order: Option<WordOrder>,
    /// Factor from the decoded number to `unit` (default 1).
    pub scale: Option<f64>,
    /// Unit after the scale.
    pub unit: Unit,
}

impl MeterMapRaw {
    /// Checks the map and converts it to wire addresses for a meter at `unit_id`.
    ///
    /// # Errors
    /// `(field, problem)` naming the bad key under `map.`.
    pub fn validate(&self, unit_id: u8) -> Result<MeterMap, (&'static str, String)> {
        let power = self
            .power
            .validate(self.addressing, unit_id)
            .map_err(|e| ("map.power", e))?;
        if !power.unit.is_power() {
            return Err(("map.power", "unit must be w or kw".into()));
        }
        let phases = match &self.phases {
            None => None,
            Some(list) => {
                let points = list
                    .iter()
                    .map(|p| p.validate(self.addressing, unit_id))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ("map.phases", e))?;
                if points.iter().any(|p| !p.unit.is_power()) {
                    return Err(("map.phases", "unit must be w or kw".into()));
                }
                let three: [Point; 3] = points
                    .try_into()
                    .map_err(|_| ("map.phases", "must list exactly three phases".to_owned()))?;
                Some(three)
            }
        };
        let energy = match &self.energy {
            None => None,
            Some(p) => {
                let point = p
                    .validate(self.addressing, unit_id)
                    .map_err(|e| ("map.energy", e))?;
                if !point.unit.is_energy() {
                    return Err(("map.energy", "unit must be wh or kwh".into()));
                }
                Some(point)
            }
        };
        Ok(MeterMap {
            addressing: self.addressing,
            power,
            phases,
            energy,
        })
    }
}

impl PointRaw {
    fn validate(&self, addressing: Addressing, unit_id: u8) -> Result<Point, String> {
        if self.function.is_bits() {
            return Err("function must be holding or input (figures live in registers)".into());
        }
        let address = addressing.wire_address(self.address).ok_or_else(|| {
            "address 0 does not exist in a one_based table (did you mean zero_based?)".to_owned()
        })?;
        if u32::from(address) + u32::from(self.data_type.words()) > 0x1_0000 {
            return Err(format!(
                "{} at {} runs past register 65535",
                self.data_type.label(),
                self.address
            ));
        }
        let scale = self.scale.unwrap_or(1.0);
        if !scale.is_finite() || scale == 0.0 {
            return Err("scale must be a finite, non-zero number".into());
        }
        Ok(Point {
            function: self.function,
            unit_id,
            address,
            data_type: self.data_type,
            word_order: self.word_order.unwrap_or_default(),
            scale,
            unit: self.unit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_maps_match_the_makers_tables() {
        let sdm = MeterModel::EastronSdm630.map(7);
        assert_eq!(
            (sdm.power.function, sdm.power.address, sdm.power.unit_id),
            (Function::Input, 0x34, 7)
        );
        assert_eq!(
            sdm.phases.map(|p| p.map(|p| p.address)),
            Some([0x0C, 0x0E, 0x10])
        );
        assert_eq!(
            sdm.energy.map(|p| (p.address, p.unit)),
            Some((0x48, Unit::Kwh))
        );
        let pm = MeterModel::SchneiderPm5000.map(1);
        assert_eq!(pm.power.address, 3059, "register 3060, 1-based");
        assert_eq!(pm.power.unit, Unit::Kw);
        assert_eq!(pm.energy.map(|p| p.address), Some(2699));
        assert_eq!(pm.addressing, Addressing::OneBased);
        for model in MeterModel::ALL {
            let map = model.map(1);
            assert!(map.power.unit.is_power(), "{}", model.label());
            assert!(!map.power.function.is_bits(), "{}", model.label());
        }
    }

    #[test]
    fn gavazzi_em21_decodes_tenths_low_word_first() {
        let em = MeterModel::GavazziEm21.map(4);
        assert_eq!(
            (em.power.function, em.power.address, em.power.unit_id),
            (Function::Input, 0x28, 4)
        );
        assert_eq!(
            em.phases.map(|p| p.map(|p| p.address)),
            Some([0x12, 0x14, 0x16])
        );
        assert_eq!(em.energy.map(|p| p.address), Some(0x34));
        // Tenths times 0.1 is not exact in binary floating point.
        let near = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want.abs();
        // 123 456.7 W is 1 234 567 = 0x0012_D687 in W × 10; low word first on the wire.
        let w = em.power.value_in_base(&[0xD687, 0x0012]).unwrap();
        assert!(near(w, 123_456.7), "{w}");
        // High word first would read 0xD687_0012, a large negative number.
        let swapped = em.power.value_in_base(&[0x0012, 0xD687]).unwrap();
        assert!(swapped < 0.0, "{swapped}");
        // Exported power is negative (a two's complement i32): -150.5 W is -1505.
        let neg = (-1505_i32).cast_unsigned();
        let words = [(neg & 0xFFFF) as u16, (neg >> 16) as u16];
        let w = em.power.value_in_base(&words).unwrap();
        assert!(near(w, -150.5), "{w}");
        // 98 765.4 kWh is 987 654 = 0x000F_1206 in kWh × 10.
        let wh = em.energy.unwrap().value_in_base(&[0x1206, 0x000F]).unwrap();
        assert!(near(wh, 98_765_400.0), "{wh}");
    }

    #[test]
    fn a_withdrawn_model_is_refused_with_what_to_write_instead() {
        #[derive(Debug, Deserialize)]
        struct Meter {
            #[allow(dead_code)]
            model: MeterModel,
        }
        let err = toml::from_str::<Meter>("model = \"acrel_dtsd1352\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no longer shipped") && err.contains("map"),
            "{err}"
        );
        let err = toml::from_str::<Meter>("model = \"acme\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eastron_sdm630, schneider_pm5000, gavazzi_em21"),
            "{err}"
        );
        for model in MeterModel::ALL {
            assert_eq!(MeterModel::from_name(model.label()), Ok(model));
        }
    }

    fn raw(text: &str) -> MeterMapRaw {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn config_map_converts_one_based_addresses() {
        let map = raw(r#"
            addressing = "one_based"
            power = { function = "holding", address = 3060, data_type = "f32", unit = "kw" }
            phases = [
              { function = "holding", address = 3054, data_type = "f32", unit = "kw" },
              { function = "holding", address = 3056, data_type = "f32", unit = "kw" },
              { function = "holding", address = 3058, data_type = "f32", unit = "kw", word_order = "little" },
            ]
            energy = { function = "holding", address = 2700, data_type = "f32", unit = "kwh" }
        "#)
        .validate(3)
        .unwrap();
        assert_eq!(map, {
            let mut m = MeterModel::SchneiderPm5000.map(3);
            if let Some(p) = m.phases.as_mut() {
                p[2].word_order = WordOrder::Little;
            }
            m
        });
    }

    #[test]
    fn config_map_mistakes_name_the_field() {
        let bad = |text: &str| raw(text).validate(1).unwrap_err();
        let (field, why) = bad(r#"
            addressing = "one_based"
            power = { function = "input", address = 0, data_type = "f32", unit = "w" }
        "#);
        assert_eq!(field, "map.power");
        assert!(why.contains("zero_based"), "{why}");
        let (field, _) = bad(r#"
            addressing = "zero_based"
            power = { function = "input", address = 0, data_type = "f32", unit = "kwh" }
        "#);
        assert_eq!(field, "map.power");
        let (field, why) = bad(r#"
            addressing = "zero_based"
            power = { function = "input", address = 0, data_type = "f32", unit = "w" }
            phases = [ { function = "input", address = 2, data_type = "f32", unit = "w" } ]
        "#);
        assert_eq!(field, "map.phases");
        assert!(why.contains("three"), "{why}");
        let (field, _) = bad(r#"
            addressing = "zero_based"
            power = { function = "coil", address = 0, data_type = "u16", unit = "w" }
        "#);
        assert_eq!(field, "map.power");
        let (_, why) = bad(r#"
            addressing = "zero_based"
            power = { function = "input", address = 65535, data_type = "f32", unit = "w" }
        "#);
        assert!(why.contains("65535"), "{why}");
        let (field, _) = bad(r#"
            addressing = "zero_based"
            power = { function = "input", address = 0, data_type = "f32", unit = "w", scale = 0.0 }
        "#);
        assert_eq!(field, "map.power");
        assert!(
            toml::from_str::<MeterMapRaw>(
                r#"power = { function = "input", address = 0, data_type = "f32", unit = "w" }"#
            )
            .is_err(),
            "addressing is required"
        );
    }
}
