//! Glassbox: a local "chat with your documents" app that shows how every step works.
//!
//! The library holds all logic; the binary, the GUI and the tests are thin clients of it.
//! See ARCHITECTURE.md for the map of modules and the data flow.

pub mod answer;
pub mod app;
pub mod bench;
pub mod catalog;
pub mod concepts;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod index;
pub mod ingest;
pub mod library;
pub mod llm;
pub mod models;
pub mod retrieve;
pub mod rng;
pub mod viz;

pub use error::{Error, Result};
pub use library::Library;
