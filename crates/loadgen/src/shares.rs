//! Precomputed valid shares, pre-encoded as `mining.submit` lines in batches.
//!
//! Share number `k` of a connection (a counter that never goes back, so no share repeats
//! across jobs either) is laid out as:
//!
//! | field | value |
//! |---|---|
//! | extranonce2 | `k mod 256^s` as `s` big-endian bytes (`s` = extranonce2 size) |
//! | ntime | job ntime + `k / 256^s` (only moves once extranonce2 wraps; refused past 7199 s) |
//! | nonce | 0, or the first nonce from 0 up whose hash meets the target |
//! | version bits | the job's own bits under the granted mask (6-param submit), when rolling was granted |
//!
//! At a difficulty whose target saturates (≤ 65535·2⁻⁴⁸ ≈ 2⁻³², [`Target::MAX`]) every hash
//! meets it, so nothing is hashed except the first share of each batch, which is checked
//! with [`validate`]. Above that every share is searched for (≈ difficulty·2³² hashes each)
//! and counted, so the report can say the load generator did real work.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use hashgate_protocol::work::{
    Difficulty, HeaderFields, Job, ShareInput, SubmitPolicy, Target, merkle_root, sha256d, validate,
};

/// Highest expected number of hashes per share the generator will search: about half a
/// second of one core per share, already far from "cheap".
pub const MAX_EXPECTED_HASHES: f64 = 4_194_304.0;

/// A submit line is ~150 bytes with an 8-byte extranonce2 and a 16-character job id.
const LINE_HINT: usize = 160;

/// What a connection knows about the work it may submit, borrowed from its state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkContext<'a> {
    /// The newest job.
    pub job: &'a Job,
    /// The job id as a JSON string literal, quotes included (escaped once per job).
    pub job_id_json: &'a str,
    /// The extranonce1 the target assigned.
    pub extranonce1: &'a [u8],
    /// How many extranonce2 bytes to send.
    pub extranonce2_size: usize,
    /// The granted version-rolling mask (0: 5-param submits).
    pub version_mask: u32,
    /// The current share difficulty.
    pub difficulty: Difficulty,
}

/// Why no batch could be made for the current work.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ShareError {
    /// The target's difficulty makes every share cost too many hashes to be a load test.
    #[error(
        "difficulty {0} needs ~{1:.0} hashes per share; set the target's miner difficulty to 1e-10 or lower"
    )]
    DifficultyTooHigh(f64, f64),
    /// Extranonce2 and ntime rolling ran out for this job.
    #[error("share space of this job exhausted (extranonce2 of {0} bytes and 7200 s of ntime)")]
    Exhausted(usize),
    /// The extranonce2 size is above what a submit can carry.
    #[error("extranonce2 size {0} is above 16 bytes")]
    Extranonce2TooLong(usize),
    /// A precomputed share failed the crate's own validator: a loadgen or context bug.
    #[error("self-check failed: a precomputed share does not validate ({0})")]
    SelfCheck(&'static str),
}

/// A run of pre-encoded submit lines with consecutive request ids.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// All lines back to back, each ending in `\n`.
    bytes: Bytes,
    /// End offset of each line in `bytes`.
    ends: Vec<usize>,
    /// Request id of the first line; line `i` has id `first_id + i`.
    first_id: u64,
    /// Lines already handed out.
    taken: usize,
}

impl Batch {
    /// Lines left.
    pub(crate) fn remaining(&self) -> usize {
        self.ends.len() - self.taken
    }

    /// Takes up to `count` lines: their bytes (one slice, for one write) and first id.
    pub(crate) fn take(&mut self, count: usize) -> Option<(Bytes, u64, usize)> {
        let count = count.min(self.remaining());
        if count == 0 {
            return None;
        }
        let start = match self.taken {
            0 => 0,
            n => *self.ends.get(n - 1)?,
        };
        let end = *self.ends.get(self.taken + count - 1)?;
        let first = self.first_id + self.taken as u64;
        self.taken += count;
        Some((self.bytes.slice(start..end), first, count))
    }
}

/// Makes batches of valid shares for one connection.
#[derive(Debug, Default)]
pub(crate) struct ShareMaker {
    /// Next share number; never reused, so shares never repeat.
    counter: u64,
    /// Hashes computed while searching nonces (0 at saturated targets).
    pub hashes: u64,
    /// Shares that needed a search (target below [`Target::MAX`]).
    pub searched: u64,
}

impl ShareMaker {
    /// A maker starting at share 0.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Encodes `count` valid shares for `ctx` with ids from `first_id`, by `worker_json`
    /// (a JSON string literal, quotes included).
    ///
    /// # Errors
    /// [`ShareError`] when the work does not allow cheap valid shares.
    pub(crate) fn batch(
        &mut self,
        ctx: &WorkContext<'_>,
        worker_json: &str,
        first_id: u64,
        count: usize,
    ) -> Result<Batch, ShareError> {
        let size = ctx.extranonce2_size;
        if size > 16 {
            return Err(ShareError::Extranonce2TooLong(size));
        }
        let target = ctx.difficulty.to_target();
        let saturated = target == Target::MAX;
        if !saturated {
            let expected = ctx.difficulty.get() * 4_294_967_296.0;
            if expected > MAX_EXPECTED_HASHES {
                return Err(ShareError::DifficultyTooHigh(
                    ctx.difficulty.get(),
                    expected,
                ));
            }
        }
        let version_bits = (ctx.version_mask != 0).then_some(ctx.job.version() & ctx.version_mask);
        let policy = SubmitPolicy {
            version_mask: ctx.version_mask,
            ..SubmitPolicy::new(size, target)
        };
        let mut bytes = BytesMut::with_capacity(count * LINE_HINT);
        let mut ends = Vec::with_capacity(count);
        for i in 0..count {
            let k = self.counter;
            let (extranonce2, ntime) = roll(k, size, ctx.job.ntime())?;
            let en2 = extranonce2.get(..size).unwrap_or(&[]);
            let nonce = if saturated {
                0
            } else {
                self.search(ctx, en2, ntime, version_bits, &target)?
            };
            if i == 0 {
                let submit = ShareInput {
                    extranonce1: ctx.extranonce1,
                    extranonce2: en2,
                    ntime,
                    nonce,
                    version_bits,
                };
                validate(ctx.job, &submit, &policy)
                    .map_err(|r| ShareError::SelfCheck(r.label()))?;
            }
            self.counter += 1;
            put_submit(
                &mut bytes,
                first_id + i as u64,
                worker_json,
                ctx.job_id_json,
                en2,
                ntime,
                nonce,
                version_bits,
            );
            ends.push(bytes.len());
        }
        Ok(Batch {
            bytes: bytes.freeze(),
            ends,
            first_id,
            taken: 0,
        })
    }

    /// The first nonce from 0 whose header hash meets `target`.
    fn search(
        &mut self,
        ctx: &WorkContext<'_>,
        extranonce2: &[u8],
        ntime: u32,
        version_bits: Option<u32>,
        target: &Target,
    ) -> Result<u32, ShareError> {
        self.searched += 1;
        let version = match version_bits {
            Some(bits) => (ctx.job.version() & !ctx.version_mask) | bits,
            None => ctx.job.version(),
        };
        let mut fields = HeaderFields {
            version,
            prev_blockhash: *ctx.job.prev_blockhash(),
            merkle_root: merkle_root(ctx.job, ctx.extranonce1, extranonce2),
            time: ntime,
            nbits: ctx.job.nbits(),
            nonce: 0,
        };
        // Eight times the expected count: a miss that long means the target is not what
        // the difficulty says, and the share is given up rather than spun on.
        let limit = (MAX_EXPECTED_HASHES * 8.0) as u32;
        for nonce in 0..limit {
            fields.nonce = nonce;
            self.hashes += 1;
            let hash = hashgate_protocol::work::Hash256::from_bytes(sha256d::sha256d_80(
                &fields.to_bytes(),
            ));
            if target.is_met_by(&hash) {
                return Ok(nonce);
            }
        }
        Err(ShareError::DifficultyTooHigh(
            ctx.difficulty.get(),
            f64::from(limit),
        ))
    }
}

/// Extranonce2 bytes (left-aligned in 16) and ntime for share number `k`.
fn roll(k: u64, size: usize, job_ntime: u32) -> Result<([u8; 16], u32), ShareError> {
    let bits = 8 * size as u32;
    let (low, high) = if bits >= 64 {
        (k, 0)
    } else {
        (k & ((1u64 << bits) - 1), k >> bits)
    };
    if high >= 7200 {
        return Err(ShareError::Exhausted(size));
    }
    let mut en2 = [0u8; 16];
    let be = low.to_be_bytes();
    // Right-align the counter in the first `size` bytes: big-endian.
    for (i, slot) in en2.iter_mut().take(size).enumerate() {
        let from = (i + 8).checked_sub(size);
        *slot = from.and_then(|f| be.get(f)).copied().unwrap_or(0);
    }
    let ntime = job_ntime
        .checked_add(high as u32)
        .ok_or(ShareError::Exhausted(size))?;
    Ok((en2, ntime))
}

/// Appends one `mining.submit` line.
#[allow(clippy::too_many_arguments)]
fn put_submit(
    buf: &mut BytesMut,
    id: u64,
    worker_json: &str,
    job_id_json: &str,
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
) {
    buf.put_slice(b"{\"id\":");
    // Writing into a BytesMut cannot fail.
    let _ = write!(buf, "{id}");
    buf.put_slice(b",\"method\":\"mining.submit\",\"params\":[");
    buf.put_slice(worker_json.as_bytes());
    buf.put_u8(b',');
    buf.put_slice(job_id_json.as_bytes());
    buf.put_slice(b",\"");
    let mut hex = [0u8; 32];
    let len = extranonce2.len() * 2;
    if let Some(slot) = hex.get_mut(..len)
        && hex::encode_to_slice(extranonce2, slot).is_ok()
    {
        buf.put_slice(slot);
    }
    let _ = write!(buf, "\",\"{ntime:08x}\",\"{nonce:08x}\"");
    if let Some(bits) = version_bits {
        let _ = write!(buf, ",\"{bits:08x}\"");
    }
    buf.put_slice(b"]}\n");
}

/// A string as a JSON literal, quotes included (worker names, job ids).
pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgate_protocol::stratum::{Message, Method};
    use hashgate_protocol::work::JobTemplate;

    struct Owned {
        job: Job,
        job_id_json: String,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        version_mask: u32,
        difficulty: Difficulty,
    }

    impl Owned {
        fn ctx(&self) -> WorkContext<'_> {
            WorkContext {
                job: &self.job,
                job_id_json: &self.job_id_json,
                extranonce1: &self.extranonce1,
                extranonce2_size: self.extranonce2_size,
                version_mask: self.version_mask,
                difficulty: self.difficulty,
            }
        }
    }

    fn ctx(difficulty: f64, size: usize, mask: u32) -> Owned {
        let job = Job::new(JobTemplate {
            id: "job\"1".into(),
            prevhash: [3; 32],
            coinb1: vec![1; 70],
            coinb2: vec![2; 40],
            merkle_branch: vec![[5; 32]; 3],
            version: 0x2000_0000,
            nbits: 0x1702_9a8a,
            ntime: 1_700_000_000,
            clean_jobs: true,
        })
        .expect("valid job");
        Owned {
            job_id_json: json_string(job.id()),
            job,
            extranonce1: vec![0xab; 4],
            extranonce2_size: size,
            version_mask: mask,
            difficulty: Difficulty::new(difficulty).expect("positive"),
        }
    }

    fn parse_all(batch: &mut Batch) -> Vec<(u64, hashgate_protocol::stratum::Submit)> {
        let (bytes, first, count) = batch.take(usize::MAX).expect("lines");
        let lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), count);
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| match Message::parse(line).expect("parses") {
                Message::Request(r) => {
                    assert_eq!(r.id, hashgate_protocol::stratum::Id::Int(first + i as u64));
                    match r.method {
                        Method::Submit(s) => (first + i as u64, s),
                        other => panic!("not a submit: {other:?}"),
                    }
                }
                Message::Response(_) => panic!("not a request"),
            })
            .collect()
    }

    fn check_valid(c: &Owned, s: &hashgate_protocol::stratum::Submit) {
        let policy = SubmitPolicy {
            version_mask: c.version_mask,
            ..SubmitPolicy::new(c.extranonce2_size, c.difficulty.to_target())
        };
        let submit = ShareInput {
            extranonce1: &c.extranonce1,
            extranonce2: s.extranonce2.as_bytes(),
            ntime: s.ntime,
            nonce: s.nonce,
            version_bits: s.version_bits,
        };
        assert!(validate(&c.job, &submit, &policy).is_ok(), "{s:?}");
    }

    #[test]
    fn saturated_batch_parses_back_with_distinct_shares() {
        let c = ctx(1e-10, 4, 0);
        let mut maker = ShareMaker::new();
        let mut batch = maker
            .batch(&c.ctx(), &json_string("lg.w1"), 10, 50)
            .expect("batch");
        let shares = parse_all(&mut batch);
        assert_eq!(maker.hashes, 0);
        let mut seen = std::collections::HashSet::new();
        for (_, s) in &shares {
            assert_eq!(s.worker, "lg.w1");
            assert_eq!(s.job_id, "job\"1");
            assert_eq!(s.version_bits, None);
            assert!(seen.insert((s.extranonce2, s.ntime, s.nonce)));
            check_valid(&c, s);
        }
        // The next batch continues the counter: still no repeats.
        let mut next = maker
            .batch(&c.ctx(), &json_string("lg.w1"), 60, 5)
            .expect("batch");
        for (id, s) in parse_all(&mut next) {
            assert!(id >= 60);
            assert!(seen.insert((s.extranonce2, s.ntime, s.nonce)));
        }
    }

    #[test]
    fn searched_shares_meet_a_real_target_and_carry_version_bits() {
        // ~4,300 hashes a share: a real search, still quick in a debug build.
        let c = ctx(1e-6, 8, 0x1fff_e000);
        let mut maker = ShareMaker::new();
        let mut batch = maker
            .batch(&c.ctx(), &json_string("w"), 1, 4)
            .expect("batch");
        for (_, s) in parse_all(&mut batch) {
            assert_eq!(s.version_bits, Some(0x2000_0000 & 0x1fff_e000));
            check_valid(&c, &s);
        }
        assert_eq!(maker.searched, 4);
        assert!(maker.hashes >= 4);
    }

    #[test]
    fn small_extranonce2_rolls_ntime_then_runs_out() {
        let c = ctx(1e-10, 1, 0);
        let mut maker = ShareMaker::new();
        let mut batch = maker
            .batch(&c.ctx(), &json_string("w"), 0, 300)
            .expect("batch");
        let shares = parse_all(&mut batch);
        let last = &shares.last().expect("some").1;
        assert_eq!(last.ntime, 1_700_000_001);
        assert_eq!(last.extranonce2.as_bytes(), &[43]);
        maker.counter = 256 * 7200;
        assert_eq!(
            maker.batch(&c.ctx(), "\"w\"", 0, 1).err(),
            Some(ShareError::Exhausted(1))
        );
    }

    #[test]
    fn high_difficulty_is_refused_not_spun_on() {
        let c = ctx(1.0, 4, 0);
        assert!(matches!(
            ShareMaker::new().batch(&c.ctx(), "\"w\"", 0, 1),
            Err(ShareError::DifficultyTooHigh(..))
        ));
    }

    #[test]
    fn batch_hands_out_lines_in_order() {
        let c = ctx(1e-10, 4, 0);
        let mut batch = ShareMaker::new()
            .batch(&c.ctx(), "\"w\"", 5, 3)
            .expect("batch");
        let (one, first, n) = batch.take(1).expect("line");
        assert_eq!((first, n), (5, 1));
        assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 1);
        let (two, first, n) = batch.take(9).expect("lines");
        assert_eq!((first, n), (6, 2));
        assert_eq!(two.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(batch.take(1).is_none());
    }
}
