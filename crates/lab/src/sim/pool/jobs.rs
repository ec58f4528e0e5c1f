//! Real-looking jobs for the simulated pool, and the book of jobs still open for shares.
//!
//! Coinbase layout (one input, one P2WPKH output):
//!
//! | part | bytes |
//! |---|---|
//! | coinb1 | version `01000000` ‖ 1 input ‖ null prevout ‖ scriptSig length ‖ BIP34 height push ‖ push opcode for the extranonces |
//! | (miner) | extranonce1 ‖ extranonce2 |
//! | coinb2 | push of the pool's tag ‖ sequence `ffffffff` ‖ 1 output ‖ value ‖ P2WPKH script ‖ locktime |

use std::collections::VecDeque;
use std::sync::Arc;

use rand::Rng;

use bytes::Bytes;

use hashgate_protocol::stratum::{Id, Message, Method, Notify, Request};

/// One job as the pool sent it; shares are judged against these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolJob {
    /// The notify as sent (its `clean_jobs` is the one broadcast).
    pub notify: Notify,
    /// Block height in the coinbase.
    pub height: u32,
    /// The `mining.notify` line encoded once, without and with `clean_jobs`, so that
    /// sending it to thousands of connections copies bytes instead of hex-encoding the
    /// coinbase and branch for each (that made the pool's own fan-out the widest part of
    /// what the load generator measured).
    lines: [Bytes; 2],
}

impl PoolJob {
    /// The encoded notify line, with `clean_jobs` as given.
    pub fn notify_line(&self, clean_jobs: bool) -> &Bytes {
        let [plain, clean] = &self.lines;
        if clean_jobs { clean } else { plain }
    }
}

/// `notify` as a line, with its `clean_jobs` replaced.
fn encode_notify(notify: &Notify, clean_jobs: bool) -> Bytes {
    Message::Request(Request {
        id: Id::Null,
        method: Method::Notify(Notify {
            clean_jobs,
            ..notify.clone()
        }),
    })
    .to_bytes()
}

/// Where a job's prevhash and height come from: changes only on a new block.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// Current block height being mined.
    pub height: u32,
    /// Stratum-order prevhash of the block being built on.
    pub prevhash: [u8; 32],
}

impl Chain {
    /// A chain at `height` with a random previous block.
    pub(super) fn new(height: u32, rng: &mut impl Rng) -> Chain {
        Chain {
            height,
            prevhash: random_prevhash(rng),
        }
    }

    /// Moves to the next block.
    pub(super) fn advance(&mut self, rng: &mut impl Rng) {
        self.height = self.height.wrapping_add(1);
        self.prevhash = random_prevhash(rng);
    }
}

/// A random block hash that looks mined: its most significant 8 bytes are zero.
fn random_prevhash(rng: &mut impl Rng) -> [u8; 32] {
    let mut header_order = [0u8; 32];
    rng.fill(&mut header_order[..24]);
    // Header order is little-endian, so the zero (most significant) bytes go last;
    // Stratum sends each 4-byte word reversed.
    let mut stratum = [0u8; 32];
    for (s, h) in stratum.chunks_mut(4).zip(header_order.chunks(4)) {
        for (d, b) in s.iter_mut().zip(h.iter().rev()) {
            *d = *b;
        }
    }
    stratum
}

/// The values that shape every job of one pool.
#[derive(Debug, Clone)]
pub(super) struct JobShape {
    /// Bytes of extranonce1 plus extranonce2 the coinbase leaves for miners.
    pub extranonce_len: usize,
    /// Pool tag in the coinbase scriptSig, e.g. `/hashgate-sim/`.
    pub tag: Vec<u8>,
    /// Merkle branch length (transactions besides the coinbase, roughly log2).
    pub branch_len: usize,
    /// Block version before rolling.
    pub version: u32,
    /// Compact network target.
    pub nbits: u32,
}

/// Builds one job. `ntime` is the pool's clock in Unix seconds.
pub(super) fn make_job(
    id: String,
    chain: &Chain,
    shape: &JobShape,
    ntime: u32,
    clean_jobs: bool,
    rng: &mut impl Rng,
) -> PoolJob {
    let height = chain.height.to_le_bytes();
    // BIP34: the height as a minimal little-endian push (3 bytes for today's heights).
    let height_push: Vec<u8> = {
        let len = height.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
        let mut v = vec![len as u8];
        v.extend_from_slice(height.get(..len).unwrap_or(&height));
        v
    };
    // scriptSig is at most 100 bytes; the tag gives way first.
    let room = 100usize.saturating_sub(height_push.len() + 1 + shape.extranonce_len + 1);
    let tag = shape.tag.get(..room.min(shape.tag.len())).unwrap_or(&[]);
    let script_len = height_push.len() + 1 + shape.extranonce_len + 1 + tag.len();

    let mut coinb1 = Vec::with_capacity(64);
    coinb1.extend_from_slice(&1u32.to_le_bytes());
    coinb1.push(1);
    coinb1.extend_from_slice(&[0u8; 32]);
    coinb1.extend_from_slice(&u32::MAX.to_le_bytes());
    coinb1.push(script_len as u8);
    coinb1.extend_from_slice(&height_push);
    coinb1.push(shape.extranonce_len as u8);

    let mut coinb2 = Vec::with_capacity(64);
    coinb2.push(tag.len() as u8);
    coinb2.extend_from_slice(tag);
    coinb2.extend_from_slice(&u32::MAX.to_le_bytes());
    coinb2.push(1);
    // 3.125 BTC plus a little in fees, in satoshis.
    let value: u64 = 312_500_000 + rng.random_range(0..5_000_000);
    coinb2.extend_from_slice(&value.to_le_bytes());
    coinb2.push(22);
    coinb2.extend_from_slice(&[0x00, 0x14]);
    let mut key_hash = [0u8; 20];
    rng.fill(&mut key_hash);
    coinb2.extend_from_slice(&key_hash);
    coinb2.extend_from_slice(&0u32.to_le_bytes());

    let merkle_branch = (0..shape.branch_len)
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            h
        })
        .collect();
    let notify = Notify {
        job_id: id,
        prevhash: chain.prevhash,
        coinb1,
        coinb2,
        merkle_branch,
        version: shape.version,
        nbits: shape.nbits,
        ntime,
        clean_jobs,
    };
    PoolJob {
        lines: [encode_notify(&notify, false), encode_notify(&notify, true)],
        notify,
        height: chain.height,
    }
}

/// Jobs still open for shares, newest last.
///
/// A clean job closes every earlier one (their shares are stale, code 21); otherwise the
/// book keeps the last `capacity` jobs, as a pool keeps a few minutes of work alive.
#[derive(Debug)]
pub(super) struct JobBook {
    /// Open jobs, oldest first.
    open: VecDeque<Arc<PoolJob>>,
    /// Most jobs kept open at once.
    capacity: usize,
}

impl JobBook {
    /// An empty book keeping at most `capacity` (at least 1) open jobs.
    pub(super) fn new(capacity: usize) -> JobBook {
        JobBook {
            open: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a job; returns the ids of jobs it closed.
    pub(super) fn push(&mut self, job: Arc<PoolJob>) -> Vec<String> {
        let mut closed = Vec::new();
        if job.notify.clean_jobs {
            closed.extend(self.open.drain(..).map(|j| j.notify.job_id.clone()));
        }
        self.open.push_back(job);
        while self.open.len() > self.capacity {
            if let Some(old) = self.open.pop_front() {
                closed.push(old.notify.job_id.clone());
            }
        }
        closed
    }

    /// The open job with this id.
    pub(super) fn get(&self, id: &str) -> Option<&Arc<PoolJob>> {
        self.open.iter().find(|j| j.notify.job_id == id)
    }

    /// The newest job.
    pub(super) fn latest(&self) -> Option<&Arc<PoolJob>> {
        self.open.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn shape() -> JobShape {
        JobShape {
            extranonce_len: 12,
            tag: b"/hashgate-sim/".to_vec(),
            branch_len: 3,
            version: 0x2000_0000,
            nbits: 0x1702_9a8a,
        }
    }

    #[test]
    fn coinbase_has_bip34_height_and_consistent_script_length() {
        let mut rng = StdRng::seed_from_u64(7);
        let chain = Chain::new(881_424, &mut rng);
        let job = make_job("1".into(), &chain, &shape(), 1_700_000_000, true, &mut rng);
        let c1 = &job.notify.coinb1;
        // version 4 + input count 1 + prevout 36 = 41, then the script length.
        let script_len = usize::from(c1[41]);
        assert_eq!(&c1[42..46], &[3, 0x10, 0x73, 0x0d]); // 881424 = 0x0d7310
        let tag_len = usize::from(job.notify.coinb2[0]);
        assert_eq!(script_len, (c1.len() - 42) + 12 + 1 + tag_len);
        assert_eq!(job.notify.merkle_branch.len(), 3);
        // The prevhash's most significant bytes (last header word, first after swapping back) are zero.
        assert_eq!(&job.notify.prevhash[24..], &[0u8; 8]);
    }

    #[test]
    fn pre_encoded_lines_parse_back_to_the_job_with_either_clean_flag() {
        let mut rng = StdRng::seed_from_u64(3);
        let chain = Chain::new(900_000, &mut rng);
        let job = make_job(
            "ab".into(),
            &chain,
            &shape(),
            1_700_000_000,
            false,
            &mut rng,
        );
        for clean in [false, true] {
            let line = job.notify_line(clean);
            assert_eq!(line.last(), Some(&b'\n'));
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            match Message::parse(text) {
                Ok(Message::Request(Request {
                    method: Method::Notify(n),
                    ..
                })) => {
                    assert_eq!(n.clean_jobs, clean);
                    assert_eq!(
                        Notify {
                            clean_jobs: false,
                            ..n
                        },
                        job.notify
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn clean_job_closes_the_book_and_capacity_evicts_oldest() {
        let mut rng = StdRng::seed_from_u64(1);
        let chain = Chain::new(1, &mut rng);
        let mut book = JobBook::new(2);
        let mk = |id: &str, clean: bool, rng: &mut StdRng| {
            Arc::new(make_job(id.into(), &chain, &shape(), 0, clean, rng))
        };
        assert!(book.push(mk("a", true, &mut rng)).is_empty());
        assert!(book.push(mk("b", false, &mut rng)).is_empty());
        assert_eq!(book.push(mk("c", false, &mut rng)), vec!["a".to_string()]);
        assert!(book.get("b").is_some());
        assert_eq!(
            book.push(mk("d", true, &mut rng)),
            vec!["b".to_string(), "c".to_string()]
        );
        assert!(book.get("c").is_none());
        assert_eq!(book.latest().map(|j| j.notify.job_id.as_str()), Some("d"));
    }
}
