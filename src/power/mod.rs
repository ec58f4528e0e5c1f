//! Power-aware gating: miner management APIs, the inventory and the budget controller.

pub mod admin;
pub mod api;
pub mod controller;
pub mod driver;
pub mod inventory;

pub use driver::{PowerDriver, PowerHandle, PowerStatus};
