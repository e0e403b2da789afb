//! `glassbox quantize IN OUT --type T`: the library's quantizer with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use glassbox::llm::quantize::{Mixture, QuantizeProgress, quantize_file};

use super::progress::terminal_bar;

#[derive(Args)]
pub struct QuantizeArgs {
    /// The GGUF file to read.
    input: PathBuf,
    /// The GGUF file to write (replaced if it exists).
    output: PathBuf,
    /// The file type, chosen per tensor by llama.cpp's rules (`_m`: more bits for the tensors
    /// that need them most).
    #[arg(long = "type", value_enum)]
    kind: Mixture,
}

pub fn run(args: &QuantizeArgs) -> anyhow::Result<ExitCode> {
    let bar = terminal_bar(
        true,
        "quantizing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
    );
    let progress = |p: &QuantizeProgress| {
        if let Some(bar) = &bar {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(format!("{}/{} {}", p.done, p.total, p.tensor));
        }
    };
    let start = Instant::now();
    // The library's errors name the file and say what to do.
    let summary = quantize_file(&args.input, &args.output, args.kind, &progress)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let types: Vec<String> = summary
        .types
        .iter()
        .map(|(dtype, n)| format!("{dtype:?} {n}"))
        .collect();
    println!(
        "wrote {} in {:.1} s: {} tensors ({} requantized; {}), {:.1} MB from {:.1} MB",
        args.output.display(),
        start.elapsed().as_secs_f64(),
        summary.tensors,
        summary.requantized,
        types.join(", "),
        summary.output_bytes as f64 / 1e6,
        summary.input_bytes as f64 / 1e6,
    );
    Ok(ExitCode::SUCCESS)
}
