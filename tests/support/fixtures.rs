//! Helpers shared by the tests that read `tests/fixtures/`: each test crate uses a subset,
//! hence the dead-code allowance.
#![allow(dead_code)]

use hashgate_protocol::work::{Job, JobTemplate};
use serde_json::Value;

/// The repository's fixture folder (`tests/fixtures/`, sources and licences in its README).
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads a Stratum fixture from `tests/fixtures/stratum/`.
pub fn fixture(rel: &str) -> String {
    let path = fixtures_dir().join("stratum").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s}: {e}"))
}

pub fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("32 bytes")
}

/// The bytes of a JSON hex string (a notify or subscribe field).
pub fn hex_bytes(v: &Value) -> Vec<u8> {
    unhex(v.as_str().expect("hex string"))
}

pub fn hex_u32(v: &Value) -> u32 {
    u32::from_str_radix(v.as_str().expect("hex string"), 16).expect("u32 hex")
}

/// A job from `mining.notify` params, decoded the plain way (tests only).
pub fn job_from_notify(params: &Value) -> Job {
    let p = params.as_array().expect("notify params array");
    let branch = p[4]
        .as_array()
        .expect("branch array")
        .iter()
        .map(|b| unhex32(b.as_str().unwrap()))
        .collect();
    Job::new(JobTemplate {
        id: p[0].as_str().unwrap().to_owned(),
        prevhash: unhex32(p[1].as_str().unwrap()),
        coinb1: unhex(p[2].as_str().unwrap()),
        coinb2: unhex(p[3].as_str().unwrap()),
        merkle_branch: branch,
        version: hex_u32(&p[5]),
        nbits: hex_u32(&p[6]),
        ntime: hex_u32(&p[7]),
        clean_jobs: p[8].as_bool().unwrap(),
    })
    .expect("valid job")
}
