//! hashgate's lab: simulated peers for the demo and the tests. They share hashgate's
//! assumptions, so they are for speed and scale; behaviour toward real pools and miners is
//! proven against real peers in the interop stage.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`sim`] | a simulated pool, ASICs that really hash at low difficulty, and the management APIs of their firmware families |
//! | [`demo`] | the `demo` command: the real proxy against a simulated site (pools, ASICs, management APIs) |

pub mod demo;
pub mod sim;
