//! What a hash earns: network difficulty and height from the pool's job, the block
//! subsidy from the halving schedule, fees and the pool's cut from the config.

use hashgate_protocol::work::{HeightError, Job, coinbase_height};

/// Satoshis in one bitcoin.
pub const SATS_PER_BTC: f64 = 100_000_000.0;
/// Blocks between subsidy halvings.
pub const HALVING_INTERVAL: u64 = 210_000;
/// The first block subsidy, 50 BTC, in satoshis.
const INITIAL_SUBSIDY_SATS: u64 = 50 * 100_000_000;
/// Expected hashes per unit of difficulty: difficulty 1 is a 2^-32 chance per hash
/// (to within 0xFFFF/0x10000, which the network's own difficulty figure also ignores).
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;
/// Hashes in one TH/s sustained for a day.
pub const HASHES_PER_TH_DAY: f64 = 1e12 * 86_400.0;

/// The block subsidy at `height`, in satoshis: 50 BTC halved every 210,000 blocks, zero
/// once the shift empties it (height 13,440,000 and on).
pub fn block_subsidy_sats(height: u64) -> u64 {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        0
    } else {
        INITIAL_SUBSIDY_SATS >> halvings
    }
}

/// Why a job does not tell what a block is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The coinbase has no BIP34 height.
    #[error("job's coinbase has no block height: {0}")]
    Height(#[from] HeightError),
    /// nbits decodes to a zero target, an infinite difficulty.
    #[error("job's nbits {0:08x} gives no finite network difficulty")]
    Difficulty(u32),
}

/// The network as one pool job shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    /// Network difficulty from the job's `nbits`.
    pub difficulty: f64,
    /// Block height from the coinbase (BIP34).
    pub height: u64,
}

impl Network {
    /// Reads the difficulty and height of a pool job (its coinb1 as the proxy holds it:
    /// the extranonces come after the height, so the pool's or the miner-facing coinb1 do).
    ///
    /// # Errors
    /// [`NetworkError`] for a coinbase without a height or an unusable nbits.
    pub fn from_job(job: &Job) -> Result<Self, NetworkError> {
        Self::from_parts(job.nbits(), job.coinb1())
    }

    /// As [`Network::from_job`], from the raw nbits and coinb1.
    ///
    /// # Errors
    /// As [`Network::from_job`].
    pub fn from_parts(nbits: u32, coinb1: &[u8]) -> Result<Self, NetworkError> {
        let difficulty = hashgate_protocol::work::Target::from_compact(nbits)
            .map(|t| t.difficulty())
            .ok()
            .filter(|d| d.is_finite() && *d > 0.0)
            .ok_or(NetworkError::Difficulty(nbits))?;
        Ok(Network {
            difficulty,
            height: coinbase_height(coinb1)?,
        })
    }

    /// The subsidy of the block this job would make, satoshis.
    pub fn subsidy_sats(&self) -> u64 {
        block_subsidy_sats(self.height)
    }
}

/// What a hash earns on average, before the coin price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Revenue {
    /// The network the figures are for.
    pub network: Network,
    /// Average transaction fees per block (config), satoshis.
    pub fees_sats: f64,
    /// The pool's fee as a fraction (0.02 for 2 %).
    pub pool_fee: f64,
}

impl Revenue {
    /// Satoshis per block paid to miners after the pool fee.
    pub fn block_reward_sats(&self) -> f64 {
        (self.network.subsidy_sats() as f64 + self.fees_sats) * (1.0 - self.pool_fee)
    }

    /// Expected satoshis per hash: reward × (1 − pool fee) / (difficulty × 2^32).
    pub fn sats_per_hash(&self) -> f64 {
        self.block_reward_sats() / (self.network.difficulty * HASHES_PER_DIFFICULTY)
    }

    /// Expected satoshis per TH/s per day (hashprice in sats).
    pub fn sats_per_th_day(&self) -> f64 {
        self.sats_per_hash() * HASHES_PER_TH_DAY
    }

    /// Expected revenue per hash in the price's currency, for `price` per BTC.
    pub fn per_hash(&self, price: f64) -> f64 {
        self.sats_per_hash() / SATS_PER_BTC * price
    }

    /// Hashprice: expected revenue per TH/s per day in the price's currency.
    pub fn hashprice(&self, price: f64) -> f64 {
        self.sats_per_th_day() / SATS_PER_BTC * price
    }

    /// Revenue of `hashes` share-proven hashes in the price's currency (for the ledger).
    pub fn for_hashes(&self, hashes: f64, price: f64) -> f64 {
        hashes * self.per_hash(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// coinb1 of mainnet block 881423 (tests/fixtures/stratum/share-vectors.json).
    const COINB1_881423: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3d030f730d000469c19a67";

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-9
    }

    #[test]
    fn subsidy_follows_the_halvings() {
        assert_eq!(block_subsidy_sats(0), 5_000_000_000);
        assert_eq!(block_subsidy_sats(209_999), 5_000_000_000);
        assert_eq!(block_subsidy_sats(210_000), 2_500_000_000);
        assert_eq!(block_subsidy_sats(840_000), 312_500_000);
        assert_eq!(block_subsidy_sats(1_050_000), 156_250_000);
        // 33 halvings take the last satoshi; the shift never overflows.
        assert_eq!(block_subsidy_sats(33 * 210_000), 0);
        assert_eq!(block_subsidy_sats(64 * 210_000), 0);
        assert_eq!(block_subsidy_sats(u64::MAX), 0);
    }

    /// Block 881423 (mainnet, 2025-01-29), nbits 0x17029a8a, priced at 100,000 USD/BTC.
    ///
    /// - height: scriptSig push `03 0f 73 0d` → 0x0d730f = 881,423; 881,423 / 210,000 = 4
    ///   halvings → subsidy 50 BTC / 16 = 3.125 BTC = 312,500,000 sats.
    /// - difficulty: target = 0x029a8a × 2^(8·(0x17−3)) = 170,634 × 2^160; diff1 = 0xffff ×
    ///   2^208, so D = 65,535 × 2^48 / 170,634 = 18,446,462,598,732,840,960 / 170,634
    ///   = 108,105,433,845,147.2 (the 108.1 T every explorer shows for that block).
    /// - no fees, no pool fee: sats/hash = 312,500,000 / (108,105,433,845,147.2 × 2^32)
    ///   = 312,500,000 / 4.643100 × 10^23 = 6.730427 × 10^-16; × 10^12 × 86,400 =
    ///   58.150892 sats per TH/s per day → × 100,000 / 10^8 = 0.058150892 USD/TH/day
    ///   (58.15 USD per PH/s per day).
    /// - fees 0.25 BTC per block, pool fee 2 %: (312,500,000 + 25,000,000) × 0.98 =
    ///   330,750,000 sats; × 58.150892 / 312,500,000 = 61.546904 sats per TH/s per day →
    ///   0.061546904 USD/TH/day.
    #[test]
    fn block_881423_hand_worked() {
        let coinb1 = hex::decode(COINB1_881423).unwrap();
        let network = Network::from_parts(0x1702_9a8a, &coinb1).unwrap();
        assert_eq!(network.height, 881_423);
        assert_eq!(network.subsidy_sats(), 312_500_000);
        assert!(
            close(network.difficulty, 108_105_433_845_147.16),
            "{}",
            network.difficulty
        );

        let bare = Revenue {
            network,
            fees_sats: 0.0,
            pool_fee: 0.0,
        };
        assert!(
            close(bare.sats_per_hash(), 6.730_427_283e-16),
            "{}",
            bare.sats_per_hash()
        );
        assert!(
            close(bare.sats_per_th_day(), 58.150_891_727),
            "{}",
            bare.sats_per_th_day()
        );
        assert!(close(bare.hashprice(100_000.0), 0.058_150_891_727));
        // One PH/s-day of proven work at 10^15 × 86,400 hashes earns 58.15 USD.
        assert!(close(
            bare.for_hashes(1e15 * 86_400.0, 100_000.0),
            58.150_891_727
        ));

        let with_fees = Revenue {
            fees_sats: 25_000_000.0,
            pool_fee: 0.02,
            ..bare
        };
        assert!(close(with_fees.block_reward_sats(), 330_750_000.0));
        assert!(
            close(with_fees.hashprice(100_000.0), 0.061_546_903_804),
            "{}",
            with_fees.hashprice(100_000.0)
        );
    }

    #[test]
    fn bad_jobs_are_typed_errors() {
        let coinb1 = hex::decode(COINB1_881423).unwrap();
        assert_eq!(
            Network::from_parts(0, &coinb1),
            Err(NetworkError::Difficulty(0))
        );
        assert_eq!(
            Network::from_parts(0x1702_9a8a, &coinb1[..40]),
            Err(NetworkError::Height(HeightError::Truncated))
        );
    }
}
