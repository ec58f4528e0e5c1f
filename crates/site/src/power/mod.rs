//! Power-aware gating: miner management APIs, the inventory, the budget controller, the
//! driver that runs it against real miners, the admin API, and PUE (`pue`).

pub mod admin;
pub mod api;
pub mod controller;
pub mod driver;
pub mod inventory;
pub mod pue;

pub use driver::{PowerDriver, PowerHandle, PowerStatus};
