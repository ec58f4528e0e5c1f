//! Power-aware gating: miner management APIs, the inventory, the budget controller, the
//! driver that runs it against real miners, and the admin API.

pub mod admin;
pub mod api;
pub mod controller;
pub mod driver;
pub mod inventory;

pub use driver::{PowerDriver, PowerHandle, PowerStatus};
