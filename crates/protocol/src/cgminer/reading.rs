//! Tolerant reading of the figures inside a firmware reply.
//!
//! One figure goes by several names across firmware versions (`GHS 5s`, `MHS 30s`,
//! `HS RT`, `hash-realtime`, `rate_5s` + `rate_unit`; `Env Temp` and
//! `environment-temperature`), in several units, as a number or a numeric string. The
//! helpers here look names up loosely and convert units; a figure that is absent or
//! malformed reads as `None`, so one odd field never costs the rest of a good reply.

use serde_json::{Map, Value};

use super::number;

/// A key reduced for loose comparison: ASCII lower case without spaces, `_` and `-`.
pub fn norm(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The value of the first of `names` present in `obj`: exact spelling first, then the
/// loose one ([`norm`]), so `"Env Temp"` also finds `"env_temp"`.
pub fn get<'a>(obj: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let map = obj.as_object()?;
    names.iter().find_map(|name| lookup(map, name))
}

fn lookup<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(name) {
        return Some(v);
    }
    let want = norm(name);
    map.iter().find(|(k, _)| norm(k) == want).map(|(_, v)| v)
}

/// The first of `names` in `obj` that reads as a finite number (a malformed one is skipped).
pub fn num(obj: &Value, names: &[&str]) -> Option<f64> {
    let map = obj.as_object()?;
    names.iter().find_map(|name| number(lookup(map, name)))
}

/// A temperature a sensor really reported: firmware writes 0 (and Avalon's `devs` -273)
/// for a sensor that is absent, and nothing on a miner reads above 150 °C.
pub fn plausible_temp(t: f64) -> Option<f64> {
    (t > 0.0 && t < 150.0).then_some(t)
}

/// The largest of a dash- or space-separated list of numbers (`"63-59-56-61"`,
/// `"80 84 79"`), or of a JSON array of numbers.
pub fn max_of_list(value: &Value) -> Option<f64> {
    let items: Vec<f64> = match value {
        Value::Array(items) => items.iter().filter_map(|v| number(Some(v))).collect(),
        Value::String(s) => s
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter_map(|p| p.parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .collect(),
        other => number(Some(other)).into_iter().collect(),
    };
    items
        .into_iter()
        .fold(None, |acc, t| Some(acc.map_or(t, |a: f64| a.max(t))))
}

/// Factor from a hashrate unit (`"GH"`, `"GH/s"`, `"MHS"`, `"th"`) to TH/s.
pub fn unit_to_ths(unit: &str) -> Option<f64> {
    let u = unit.trim().to_ascii_lowercase();
    let u = u
        .trim_end_matches("/s")
        .trim_end_matches("hs")
        .trim_end_matches('h');
    match u {
        "" => Some(1e-12),
        "k" => Some(1e-9),
        "m" => Some(1e-6),
        "g" => Some(1e-3),
        "t" => Some(1.0),
        "p" => Some(1e3),
        _ => None,
    }
}

/// Averaging window of a rate key's suffix in seconds (`5s`, `1m`, `15min`, `24h`, `av`);
/// realtime counts as 0 and an average over the whole run as the longest.
fn window_secs(suffix: &str) -> Option<f64> {
    match suffix {
        "rt" | "realtime" => return Some(0.0),
        "av" | "avg" | "average" => return Some(f64::MAX),
        _ => {}
    }
    let split = suffix.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = suffix.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(n * scale)
}

/// A hashrate key's unit factor to TH/s and window, or `None` for any other key.
///
/// Understood: cgminer's `<unit>HS <window>` (`GHS 5s`, `MHS av`, `THS 30m`), btminer's
/// `HS RT` (MH/s), btminer API v3's `hash-<window>` (TH/s) and bmminer's `rate_<window>`
/// (unit from the sibling `rate_unit`, passed in as `rate_unit`).
fn rate_key(key: &str, rate_unit: Option<f64>) -> Option<(f64, f64)> {
    let k = norm(key);
    if k == "hsrt" {
        return Some((1e-6, 0.0));
    }
    if let Some(w) = k.strip_prefix("rate") {
        return Some((rate_unit?, window_secs(w)?));
    }
    if let Some(w) = k.strip_prefix("hash") {
        return Some((1.0, window_secs(w)?));
    }
    let (unit, rest) = k.split_at(k.find("hs")?);
    let w = rest.strip_prefix("hs")?;
    if unit.len() > 1 {
        return None;
    }
    Some((unit_to_ths(unit)?, window_secs(w)?))
}

/// The hashrate an object claims, in TH/s, from its shortest-window rate key (a 5 s rate
/// says whether the miner hashes now; the run average does not).
///
/// Keys whose value does not read as a number are skipped; `None` when no rate key reads.
pub fn hashrate_ths(obj: &Value) -> Option<f64> {
    let map = obj.as_object()?;
    let rate_unit = lookup(map, "rate_unit")
        .and_then(Value::as_str)
        .and_then(unit_to_ths);
    map.iter()
        .filter_map(|(k, v)| {
            let (scale, window) = rate_key(k, rate_unit)?;
            Some((window, number(Some(v))? * scale))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, ths)| ths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_loosely_but_exact_wins() {
        let v = json!({"env_temp": 30, "Env Temp": 28.5, "Power_RT": "3427"});
        assert_eq!(num(&v, &["Env Temp"]), Some(28.5));
        assert_eq!(num(&json!({"env_temp": 30}), &["Env Temp"]), Some(30.0));
        assert_eq!(num(&v, &["power rt"]), Some(3427.0));
        assert_eq!(num(&v, &["missing", "Power_RT"]), Some(3427.0));
        assert_eq!(num(&json!({"a": "n/a", "b": 2}), &["a", "b"]), Some(2.0));
    }

    #[test]
    fn hashrate_units_and_windows() {
        // cgminer: MH/s, shortest window wins over the run average.
        let avalon = json!({"MHS av": 44539601.86, "MHS 5s": 0.0, "MHS 15m": 52686.37});
        assert_eq!(hashrate_ths(&avalon), Some(0.0));
        // Avalon firmware logging every 30 s has no 5 s key.
        let a1566 = json!({"MHS av": 192796247.36, "MHS 30s": 197497926.49});
        assert!((hashrate_ths(&a1566).unwrap() - 197.49792649).abs() < 1e-9);
        // bmminer: GH/s, sometimes as a string.
        let s9 = json!({"GHS 5s": "13815.68", "GHS av": 13838.41});
        assert!((hashrate_ths(&s9).unwrap() - 13.81568).abs() < 1e-9);
        // btminer v2: `HS RT` is MH/s.
        let wm = json!({"HS RT": 124500000.0, "MHS av": 125000000.0});
        assert!((hashrate_ths(&wm).unwrap() - 124.5).abs() < 1e-9);
        // btminer API v3: TH/s under kebab-case names.
        let v3 = json!({"hash-average": 170.8, "hash-realtime": 171.259, "hash-1min": 171.2});
        assert!((hashrate_ths(&v3).unwrap() - 171.259).abs() < 1e-9);
        // bmminer's web-style names carry the unit beside them.
        let web = json!({"rate_5s": 572845.56, "rate_avg": 1.0, "rate_unit": "GH/s"});
        assert!((hashrate_ths(&web).unwrap() - 572.84556).abs() < 1e-9);
        assert_eq!(hashrate_ths(&json!({"rate_5s": 5.0})), None);
        // A terahash key and a petahash one.
        assert_eq!(hashrate_ths(&json!({"THS 5s": 1.5})), Some(1.5));
        assert_eq!(hashrate_ths(&json!({"PHS av": 0.002})), Some(2.0));
    }

    #[test]
    fn look_alikes_are_not_hashrates() {
        let v = json!({
            "Total MH": 1679772288024.0, "Factory GHS": 68796, "Hash Stable": true,
            "Hash Deviation%": 0.1, "hash-stable-cost-seconds": 10, "rate_ideal": 5.0,
            "chain_rate1": "161794.68", "MHS %": 3
        });
        assert_eq!(hashrate_ths(&v), None);
        assert_eq!(hashrate_ths(&json!({"GHS 5s": "n/a"})), None);
        assert_eq!(hashrate_ths(&json!([1, 2])), None);
    }

    #[test]
    fn lists_and_plausible_temperatures() {
        assert_eq!(max_of_list(&json!("63-59-56-61")), Some(63.0));
        assert_eq!(max_of_list(&json!("80 84 79")), Some(84.0));
        assert_eq!(max_of_list(&json!([30, 41, 0, 0])), Some(41.0));
        assert_eq!(max_of_list(&json!("")), None);
        assert_eq!(plausible_temp(0.0), None);
        assert_eq!(plausible_temp(-273.0), None);
        assert_eq!(plausible_temp(63.0), Some(63.0));
    }
}
