//! Power-aware gating: miner management APIs and the budget controller.

pub mod api;
pub mod inventory;
