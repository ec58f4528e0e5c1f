//! Power-aware gating: miner management APIs, the inventory and the budget controller.

pub mod api;
pub mod controller;
pub mod inventory;
