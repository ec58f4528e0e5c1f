//! The SV2 messages the session speaks, as plain owned values, and their translation to
//! and from SRI's wire types (`common_messages_sv2`, `mining_sv2`, encoded by
//! `binary_sv2` into `framing_sv2` frames). The session never sees SRI's borrowed types,
//! so it is tested with values built by hand.

use binary_sv2::{B032, Str0255, U256};
use common_messages_sv2::{
    MESSAGE_TYPE_RECONNECT, MESSAGE_TYPE_SETUP_CONNECTION, MESSAGE_TYPE_SETUP_CONNECTION_ERROR,
    MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, Protocol, Reconnect, SetupConnection,
    SetupConnectionError, SetupConnectionSuccess,
};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{
    CloseChannel, MESSAGE_TYPE_CLOSE_CHANNEL, MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
    MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
    MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS, MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR,
    MESSAGE_TYPE_SET_EXTRANONCE_PREFIX, MESSAGE_TYPE_SET_TARGET, MESSAGE_TYPE_SUBMIT_SHARES_ERROR,
    MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED, MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS,
    MESSAGE_TYPE_UPDATE_CHANNEL, NewExtendedMiningJob, OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess, OpenMiningChannelError, SetExtranoncePrefix, SetNewPrevHash,
    SetTarget, SubmitSharesError, SubmitSharesExtended, SubmitSharesSuccess, UpdateChannel,
};

/// The easiest target a channel asks for: the pool's own vardiff sets the real one.
const MAX_TARGET: [u8; 32] = [0xff; 32];

/// The mining protocol's `SetupConnection` flag asking for version rolling (BIP320 bits).
const REQUIRES_VERSION_ROLLING: u32 = 0b100;

/// What the session asks the connection to send.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ToPool {
    /// `SetupConnection` for the mining protocol, version 2.
    Setup {
        /// The pool's host as dialled.
        host: String,
        /// The pool's port.
        port: u16,
    },
    /// `OpenExtendedMiningChannel`.
    OpenChannel {
        /// Our id for the request.
        request_id: u32,
        /// The pool user.
        user: String,
        /// The channel's hashrate, from which the pool sets the first target.
        nominal_hash_rate: f32,
        /// The fewest extranonce bytes the miners' split needs.
        min_extranonce_size: u16,
    },
    /// `SubmitSharesExtended`.
    Submit(Share),
    /// `UpdateChannel`: the channel's hashrate has moved.
    Update {
        /// The channel.
        channel_id: u32,
        /// Its share-proven hashrate.
        nominal_hash_rate: f32,
    },
}

/// One share in SV2 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Share {
    /// The pool's channel.
    pub channel_id: u32,
    /// Our running number, which the pool's acknowledgements refer to.
    pub sequence_number: u32,
    /// The pool's job.
    pub job_id: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Header time.
    pub ntime: u32,
    /// The whole header version (rolled bits included).
    pub version: u32,
    /// The coinbase bytes after the channel's extranonce prefix.
    pub extranonce: Vec<u8>,
}

/// A job as `NewExtendedMiningJob` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Job {
    /// The channel it is for (or the group the channel is in).
    pub channel_id: u32,
    /// The pool's job id.
    pub job_id: u32,
    /// None: a future job, mined only once a `SetNewPrevHash` names it.
    pub min_ntime: Option<u32>,
    /// Block version.
    pub version: u32,
    /// Whether the BIP320 bits may be rolled.
    pub version_rolling_allowed: bool,
    /// Merkle branch of the coinbase, internal byte order.
    pub merkle_path: Vec<[u8; 32]>,
    /// Coinbase (without witness) up to the extranonce prefix.
    pub coinbase_prefix: Vec<u8>,
    /// Coinbase after the extranonce.
    pub coinbase_suffix: Vec<u8>,
}

/// What the pool sent, as far as the session cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FromPool {
    /// `SetupConnection.Success`.
    SetupSuccess {
        /// Features the pool does or does not do.
        flags: u32,
    },
    /// `SetupConnection.Error`.
    SetupError {
        /// The pool's error code.
        code: String,
    },
    /// `OpenExtendedMiningChannel.Success`.
    ChannelOpened {
        /// Our request id.
        request_id: u32,
        /// The channel's id.
        channel_id: u32,
        /// The group it belongs to (its jobs may be sent to the group).
        group_channel_id: u32,
        /// Share target, little-endian.
        target: [u8; 32],
        /// Extranonce bytes we control (after the prefix).
        extranonce_size: u16,
        /// The pool's part of the extranonce.
        extranonce_prefix: Vec<u8>,
    },
    /// `OpenMiningChannel.Error`.
    ChannelRefused {
        /// The pool's error code.
        code: String,
    },
    /// `NewExtendedMiningJob`.
    Job(Job),
    /// `SetNewPrevHash` (mining protocol).
    PrevHash {
        /// The channel or its group.
        channel_id: u32,
        /// The future job it activates.
        job_id: u32,
        /// Previous block hash, internal byte order.
        prev_hash: [u8; 32],
        /// Earliest header time.
        min_ntime: u32,
        /// Compact network target.
        nbits: u32,
    },
    /// `SetTarget`.
    Target {
        /// The channel.
        channel_id: u32,
        /// New share target, little-endian.
        target: [u8; 32],
    },
    /// `SetExtranoncePrefix`.
    ExtranoncePrefix {
        /// The channel.
        channel_id: u32,
        /// The new prefix.
        prefix: Vec<u8>,
    },
    /// `SubmitShares.Success`: every share up to `last_sequence_number` not refused is in.
    SharesAccepted {
        /// The channel.
        channel_id: u32,
        /// Highest sequence number covered.
        last_sequence_number: u32,
        /// How many shares this acknowledgement covers.
        accepted: u32,
    },
    /// `SubmitShares.Error` for one share.
    ShareRefused {
        /// The channel.
        channel_id: u32,
        /// The share's sequence number.
        sequence_number: u32,
        /// The pool's error code (`stale-share`, `difficulty-too-low`, ...).
        code: String,
    },
    /// `CloseChannel`.
    ChannelClosed {
        /// The channel.
        channel_id: u32,
        /// The pool's reason.
        reason: String,
    },
    /// `Reconnect`.
    Reconnect {
        /// Where to (empty: the same host).
        host: String,
        /// Port (0: the same).
        port: u16,
    },
    /// A message the session does not act on.
    Other(u8),
}

/// A frame that could not be made or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// A field does not fit its SV2 type (a user name over 255 bytes, say).
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// Which message.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The pool's message does not parse as its type says.
    #[error("pool sent a malformed {name} (type 0x{msg_type:02x}): {detail}")]
    Decode {
        /// The message type.
        msg_type: u8,
        /// Its name.
        name: &'static str,
        /// Why.
        detail: String,
    },
}

fn enc(what: &'static str) -> impl Fn(binary_sv2::Error) -> WireError {
    move |err| WireError::Encode {
        what,
        detail: format!("{err:?}"),
    }
}

/// Builds the frame for `message`, ready for the Noise encoder.
pub(super) fn encode<F>(message: &ToPool, mut sink: F) -> Result<(), WireError>
where
    F: FnMut(Frame<'_>) -> Result<(), WireError>,
{
    match message {
        ToPool::Setup { host, port } => {
            let setup = SetupConnection {
                protocol: Protocol::MiningProtocol,
                min_version: 2,
                max_version: 2,
                flags: REQUIRES_VERSION_ROLLING,
                endpoint_host: Str0255::try_from(host.as_str()).map_err(enc("SetupConnection"))?,
                endpoint_port: *port,
                vendor: Str0255::try_from("hashgate").map_err(enc("SetupConnection"))?,
                hardware_version: Str0255::try_from("").map_err(enc("SetupConnection"))?,
                firmware: Str0255::try_from(env!("CARGO_PKG_VERSION"))
                    .map_err(enc("SetupConnection"))?,
                device_id: Str0255::try_from("").map_err(enc("SetupConnection"))?,
            };
            sink(Frame::Setup(frame(
                setup,
                MESSAGE_TYPE_SETUP_CONNECTION,
                false,
                "SetupConnection",
            )?))
        }
        ToPool::OpenChannel {
            request_id,
            user,
            nominal_hash_rate,
            min_extranonce_size,
        } => {
            let open = OpenExtendedMiningChannel {
                request_id: *request_id,
                user_identity: Str0255::try_from(user.as_str())
                    .map_err(enc("OpenExtendedMiningChannel"))?,
                nominal_hash_rate: *nominal_hash_rate,
                max_target: U256::from(&MAX_TARGET),
                min_extranonce_size: *min_extranonce_size,
            };
            sink(Frame::Open(frame(
                open,
                MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
                false,
                "OpenExtendedMiningChannel",
            )?))
        }
        ToPool::Submit(share) => {
            let submit = SubmitSharesExtended {
                channel_id: share.channel_id,
                sequence_number: share.sequence_number,
                job_id: share.job_id,
                nonce: share.nonce,
                ntime: share.ntime,
                version: share.version,
                extranonce: B032::try_from(share.extranonce.as_slice())
                    .map_err(enc("SubmitSharesExtended"))?,
            };
            sink(Frame::Submit(frame(
                submit,
                MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
                true,
                "SubmitSharesExtended",
            )?))
        }
        ToPool::Update {
            channel_id,
            nominal_hash_rate,
        } => {
            let update = UpdateChannel {
                channel_id: *channel_id,
                nominal_hash_rate: *nominal_hash_rate,
                maximum_target: U256::from(&MAX_TARGET),
            };
            sink(Frame::Update(frame(
                update,
                MESSAGE_TYPE_UPDATE_CHANNEL,
                true,
                "UpdateChannel",
            )?))
        }
    }
}

/// One encodable frame of each kind we send (the encoder is generic over the message).
pub(super) enum Frame<'a> {
    /// `SetupConnection`.
    Setup(MessageFrame<SetupConnection<'a>>),
    /// `OpenExtendedMiningChannel`.
    Open(MessageFrame<OpenExtendedMiningChannel<'a>>),
    /// `SubmitSharesExtended`.
    Submit(MessageFrame<SubmitSharesExtended<'a>>),
    /// `UpdateChannel`.
    Update(MessageFrame<UpdateChannel<'a>>),
}

fn frame<T: binary_sv2::Serialize + binary_sv2::GetSize>(
    message: T,
    msg_type: u8,
    channel_msg: bool,
    what: &'static str,
) -> Result<MessageFrame<T>, WireError> {
    MessageFrame::from_message(message, msg_type, 0, channel_msg).map_err(|err| WireError::Encode {
        what,
        detail: format!("{err:?}"),
    })
}

fn u256(value: &U256<'_>) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&value.as_bytes()[..32]);
    out
}

fn text(value: &Str0255<'_>) -> String {
    value.as_utf8_or_hex()
}

/// Reads a message of type `msg_type` (extension 0) from its payload.
pub(super) fn decode(msg_type: u8, payload: &mut [u8]) -> Result<FromPool, WireError> {
    let name = message_name(msg_type);
    let bad = |err: binary_sv2::Error| WireError::Decode {
        msg_type,
        name,
        detail: format!("{err:?}"),
    };
    Ok(match msg_type {
        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS => {
            let m: SetupConnectionSuccess = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::SetupSuccess { flags: m.flags }
        }
        MESSAGE_TYPE_SETUP_CONNECTION_ERROR => {
            let m: SetupConnectionError<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::SetupError {
                code: text(&m.error_code),
            }
        }
        MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS => {
            let m: OpenExtendedMiningChannelSuccess<'_> =
                binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::ChannelOpened {
                request_id: m.request_id,
                channel_id: m.channel_id,
                group_channel_id: m.group_channel_id,
                target: u256(&m.target),
                extranonce_size: m.extranonce_size,
                extranonce_prefix: m.extranonce_prefix.as_bytes().to_vec(),
            }
        }
        MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR => {
            let m: OpenMiningChannelError<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::ChannelRefused {
                code: text(&m.error_code),
            }
        }
        MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB => {
            let m: NewExtendedMiningJob<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::Job(Job {
                channel_id: m.channel_id,
                job_id: m.job_id,
                min_ntime: m.min_ntime.as_ref().copied(),
                version: m.version,
                version_rolling_allowed: m.version_rolling_allowed,
                merkle_path: m.merkle_path.iter().map(u256).collect(),
                coinbase_prefix: m.coinbase_tx_prefix.as_bytes().to_vec(),
                coinbase_suffix: m.coinbase_tx_suffix.as_bytes().to_vec(),
            })
        }
        MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH => {
            let m: SetNewPrevHash<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::PrevHash {
                channel_id: m.channel_id,
                job_id: m.job_id,
                prev_hash: u256(&m.prev_hash),
                min_ntime: m.min_ntime,
                nbits: m.nbits,
            }
        }
        MESSAGE_TYPE_SET_TARGET => {
            let m: SetTarget<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::Target {
                channel_id: m.channel_id,
                target: u256(&m.maximum_target),
            }
        }
        MESSAGE_TYPE_SET_EXTRANONCE_PREFIX => {
            let m: SetExtranoncePrefix<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::ExtranoncePrefix {
                channel_id: m.channel_id,
                prefix: m.extranonce_prefix.as_bytes().to_vec(),
            }
        }
        MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS => {
            let m: SubmitSharesSuccess = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::SharesAccepted {
                channel_id: m.channel_id,
                last_sequence_number: m.last_sequence_number,
                accepted: m.new_submits_accepted_count,
            }
        }
        MESSAGE_TYPE_SUBMIT_SHARES_ERROR => {
            let m: SubmitSharesError<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::ShareRefused {
                channel_id: m.channel_id,
                sequence_number: m.sequence_number,
                code: text(&m.error_code),
            }
        }
        MESSAGE_TYPE_CLOSE_CHANNEL => {
            let m: CloseChannel<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::ChannelClosed {
                channel_id: m.channel_id,
                reason: text(&m.reason_code),
            }
        }
        MESSAGE_TYPE_RECONNECT => {
            let m: Reconnect<'_> = binary_sv2::from_bytes(payload).map_err(bad)?;
            FromPool::Reconnect {
                host: text(&m.new_host),
                port: m.new_port,
            }
        }
        other => FromPool::Other(other),
    })
}

/// A message type's name, for logs.
pub(super) fn message_name(msg_type: u8) -> &'static str {
    match msg_type {
        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS => "SetupConnection.Success",
        MESSAGE_TYPE_SETUP_CONNECTION_ERROR => "SetupConnection.Error",
        MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS => "OpenExtendedMiningChannel.Success",
        MESSAGE_TYPE_OPEN_MINING_CHANNEL_ERROR => "OpenMiningChannel.Error",
        MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB => "NewExtendedMiningJob",
        MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH => "SetNewPrevHash",
        MESSAGE_TYPE_SET_TARGET => "SetTarget",
        MESSAGE_TYPE_SET_EXTRANONCE_PREFIX => "SetExtranoncePrefix",
        MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS => "SubmitShares.Success",
        MESSAGE_TYPE_SUBMIT_SHARES_ERROR => "SubmitShares.Error",
        MESSAGE_TYPE_CLOSE_CHANNEL => "CloseChannel",
        MESSAGE_TYPE_RECONNECT => "Reconnect",
        _ => "message",
    }
}

/// Test-side helpers: a pool's messages encoded as SRI encodes them, for round trips.
#[cfg(test)]
pub(super) mod pool_side {
    use super::*;
    use binary_sv2::{B064K, Seq0255};

    /// The payload of `SetupConnection.Success`.
    pub(in super::super) fn setup_success() -> Vec<u8> {
        binary_sv2::to_bytes(SetupConnectionSuccess {
            used_version: 2,
            flags: 0,
        })
        .expect("encodes")
    }

    /// The payload of a `NewExtendedMiningJob` with these fields.
    pub(in super::super) fn job(job: &Job) -> Vec<u8> {
        let path: Vec<U256<'_>> = job.merkle_path.iter().map(U256::from).collect();
        binary_sv2::to_bytes(NewExtendedMiningJob {
            channel_id: job.channel_id,
            job_id: job.job_id,
            min_ntime: binary_sv2::Sv2Option::new(job.min_ntime),
            version: job.version,
            version_rolling_allowed: job.version_rolling_allowed,
            merkle_path: Seq0255::new(path).expect("short"),
            coinbase_tx_prefix: B064K::try_from(job.coinbase_prefix.as_slice()).expect("fits"),
            coinbase_tx_suffix: B064K::try_from(job.coinbase_suffix.as_slice()).expect("fits"),
        })
        .expect("encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reads_back_as_sri_wrote_it() {
        let job = Job {
            channel_id: 7,
            job_id: 3,
            min_ntime: None,
            version: 0x2000_0000,
            version_rolling_allowed: true,
            merkle_path: vec![[1; 32], [2; 32]],
            coinbase_prefix: vec![1, 2, 3],
            coinbase_suffix: vec![4, 5],
        };
        let mut payload = pool_side::job(&job);
        let read = decode(MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, &mut payload).expect("decodes");
        assert_eq!(read, FromPool::Job(job));
        let mut payload = pool_side::setup_success();
        assert_eq!(
            decode(MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, &mut payload).expect("decodes"),
            FromPool::SetupSuccess { flags: 0 }
        );
    }

    #[test]
    fn a_truncated_message_is_an_error_naming_it() {
        let mut payload = pool_side::job(&Job {
            channel_id: 1,
            job_id: 1,
            min_ntime: Some(5),
            version: 1,
            version_rolling_allowed: false,
            merkle_path: vec![],
            coinbase_prefix: vec![9; 40],
            coinbase_suffix: vec![8; 40],
        });
        let err = decode(MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, &mut payload[..20])
            .expect_err("truncated");
        assert!(err.to_string().contains("NewExtendedMiningJob"), "{err}");
    }

    #[test]
    fn every_outgoing_message_encodes() {
        let mut kinds = Vec::new();
        for message in [
            ToPool::Setup {
                host: "127.0.0.1".into(),
                port: 34254,
            },
            ToPool::OpenChannel {
                request_id: 1,
                user: "site".into(),
                nominal_hash_rate: 1e12,
                min_extranonce_size: 8,
            },
            ToPool::Submit(Share {
                channel_id: 1,
                sequence_number: 0,
                job_id: 2,
                nonce: 3,
                ntime: 4,
                version: 5,
                extranonce: vec![0; 8],
            }),
            ToPool::Update {
                channel_id: 1,
                nominal_hash_rate: 1e12,
            },
        ] {
            encode(&message, |frame| {
                kinds.push(match frame {
                    Frame::Setup(f) => f.header().msg_type(),
                    Frame::Open(f) => f.header().msg_type(),
                    Frame::Submit(f) => f.header().msg_type(),
                    Frame::Update(f) => f.header().msg_type(),
                });
                Ok(())
            })
            .expect("encodes");
        }
        assert_eq!(
            kinds,
            [
                MESSAGE_TYPE_SETUP_CONNECTION,
                MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
                MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
                MESSAGE_TYPE_UPDATE_CHANNEL
            ]
        );
        let long = ToPool::OpenChannel {
            request_id: 1,
            user: "u".repeat(300),
            nominal_hash_rate: 1.0,
            min_extranonce_size: 8,
        };
        assert!(
            encode(&long, |_| Ok(())).is_err(),
            "a 300-byte user does not fit"
        );
    }
}
