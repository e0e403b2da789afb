//! Integration tests: one binary (builds are slow on small machines), one module per capability.
//! Everything here uses real parts: SQLite files, tantivy indexes, the real `glassbox` binary.

mod cli;
mod common;
mod crash;
mod download;
mod embed;
mod float_weights;
mod formats;
mod gemma;
mod gpu;
mod gui;
mod hfserver;
mod incremental;
mod korean;
mod kquant;
mod llm;
mod llm_cache;
mod llm_files;
mod model_catalogue;
mod quantize;
mod semantic;
mod smoke;
mod tokenizer;
mod viz;
