//! Simulated Avalon API (4028): `summary`, `stats` with the `MM ID0` string, and
//! `ascset 0,softoff|softon,1:<time>`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::state::SimMinerState;
use super::tcp::{Handler, command_of, error, reply};

const DESCRIPTION: &str = "cgminer 4.11.1";

pub(crate) fn handler(state: SimMinerState) -> Handler {
    Arc::new(move |req: &Value, now: Instant| handle(&state, req, now))
}

fn handle(state: &SimMinerState, req: &Value, now: Instant) -> String {
    let (cmd, param) = command_of(req);
    let r = state.reading(now);
    match cmd {
        "summary" => reply(
            "SUMMARY",
            // cgminer on Avalon logs every 30 s, so its rate windows are `30s`, not `5s`.
            json!([{ "MHS 30s": r.hashrate_ths * 1e6, "MHS av": r.hashrate_ths * 1e6, "Elapsed": 1 }]),
            "Summary",
            11,
            DESCRIPTION,
        )
        .to_string(),
        "stats" => {
            let join = |v: Vec<String>| v.join(" ");
            let mtmax = join(r.board_temps_c.iter().map(|t| format!("{t:.0}")).collect());
            let tmax = r.board_temps_c.iter().copied().fold(0.0, f64::max);
            let fans: String = r
                .fan_rpm
                .iter()
                .enumerate()
                .map(|(i, rpm)| format!(" Fan{}[{rpm}]", i + 1))
                .collect();
            // The A15xx layout (cgminer 4.11): PS[error 12Vin Vout Iout Pout Vset Pin], volts
            // in 10 mV, the PSU's output Pout = Vout × Iout, and the wall figure Pin also
            // printed as WALLPOWER. The PSU is taken as 93 % efficient at 12.00 V out.
            let vout_cv = 1200.0;
            let iout = (r.power_watts * 0.93 / 12.0).round();
            let pout = vout_cv * iout / 100.0;
            let mm = format!(
                "Ver[15-194-sim] Elapsed[1] SYSTEMSTATU[Work: In Work, Hash Board: {boards} ] Temp[{:.0}] TMax[{tmax:.0}]{fans} FanR[60%] PS[0 1209 {vout_cv:.0} {iout:.0} {pout:.0} 1200 {:.0}] WALLPOWER[{:.0}] GHSspd[{:.2}] MTmax[{mtmax}] SoftOFF[{}] WORKMODE[1]",
                r.inlet_c,
                r.power_watts,
                r.power_watts,
                r.hashrate_ths * 1000.0,
                u8::from(!r.awake),
                boards = r.board_temps_c.len(),
            );
            reply(
                "STATS",
                json!([{ "STATS": 0, "ID": "AVA100", "MM ID0": mm, "MM Count": 1 }]),
                "CGMiner stats",
                70,
                DESCRIPTION,
            )
            .to_string()
        }
        "ascset" => {
            let mut parts = param.splitn(3, ',');
            let (dev, action) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if dev != "0" {
                return error(107, &format!("Invalid ASC id {dev}"), DESCRIPTION);
            }
            match action {
                "softoff" => state.set_awake(false, now),
                "softon" => state.set_awake(true, now),
                other => return error(120, &format!("ASC 0 set failed: unknown option {other}"), DESCRIPTION),
            }
            json!({
                "STATUS": super::tcp::status("I", 119, &format!("ASC 0 set info: success {action}"), DESCRIPTION),
                "id": 1,
            })
            .to_string()
        }
        other => error(14, &format!("Invalid command '{other}'"), DESCRIPTION),
    }
}
