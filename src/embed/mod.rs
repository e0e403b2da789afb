//! Models that turn text into numbers: bi-encoder embeddings for vector search and cross-encoder
//! re-ranking, both BERT-family encoders run by candle on the CPU.

pub mod bert;
pub mod embedder;
pub mod encoder;
pub mod error;
pub mod rerank;
pub mod text;

pub use embedder::{BATCH, Embedder, EmbedderOptions, Pooling};
pub use error::ModelError;
pub use rerank::CrossEncoder;
