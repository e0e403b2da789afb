//! Our own quantizer (`glassbox quantize`): a GGUF file in, the same model in another ggml type
//! out, byte for byte what llama.cpp's `llama-quantize` (build b4748, no importance matrix) writes.
//! Each tensor that changes type is widened to f32 exactly as ggml does (candle's dequantizers
//! do the same arithmetic) and quantized by our ports of ggml's reference quantizers (`legacy`,
//! `kquants`); `mixture` chooses each tensor's type by llama.cpp's rules; `gguf_write` writes
//! the file. The output is written to `OUT.tmp` and renamed, so a killed run never leaves a
//! partial file under the final name.

mod blocks;
mod error;
mod kquants;
mod legacy;
mod mixture;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::ggml_file::qtensor_from_ggml;

use super::gguf::Gguf;
use super::gguf_write::{
    DEFAULT_ALIGNMENT, MetadataEntry, TensorEntry, data_size, padding, read_metadata, write_header,
};
pub use blocks::quantize_values;
pub use error::{QuantizeError, QuantizeResult};
pub use mixture::Mixture;
use mixture::{ModelFacts, Planner, loader_order};

/// Where a run is, after each tensor: `done` of `total` tensors, `bytes_done` of `bytes_total`
/// bytes of input tensor data.
pub struct QuantizeProgress<'a> {
    pub tensor: &'a str,
    pub done: usize,
    pub total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What a run wrote.
#[derive(Debug)]
pub struct QuantizeSummary {
    pub tensors: usize,
    /// Tensors that changed type (the others were copied as they were).
    pub requantized: usize,
    /// How many tensors of each type the output has, most common first.
    pub types: Vec<(GgmlDType, usize)>,
    pub input_bytes: u64,
    pub output_bytes: u64,
}

/// One tensor of the output: where it comes from and what it becomes.
struct Planned {
    entry: TensorEntry,
    from: GgmlDType,
    source_bytes: u64,
}

/// Quantizes `input` into `output` as `mixture`, calling `progress` after each tensor.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    mixture: Mixture,
    progress: &dyn Fn(&QuantizeProgress),
) -> QuantizeResult<QuantizeSummary> {
    let mut gguf = Gguf::open(input)?;
    let corrupt = |reason: String| QuantizeError::Corrupt {
        path: input.to_owned(),
        reason,
    };
    let metadata = output_metadata(read_metadata(input).map_err(corrupt)?, mixture);
    let plan = plan(&gguf, mixture)?;
    let alignment = alignment(&metadata);
    let tmp = temporary_path(output);
    let written = write_file(&mut gguf, &tmp, &metadata, &plan, alignment, progress)
        .and_then(|()| rename(&tmp, output));
    if written.is_err() {
        // Nothing useful is left in a partial file; the error says what went wrong.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(summary(&gguf, &plan, output))
}

/// The input's metadata, in order, without split-file keys, then the quantization version and
/// the file type moved to the end with their new values, as llama-quantize writes them.
fn output_metadata(input: Vec<MetadataEntry>, mixture: Mixture) -> Vec<MetadataEntry> {
    const REPLACED: [&str; 5] = [
        "general.quantization_version",
        "general.file_type",
        "split.no",
        "split.count",
        "split.tensors.count",
    ];
    let mut metadata: Vec<MetadataEntry> = input
        .into_iter()
        .filter(|entry| !REPLACED.contains(&entry.key.as_str()))
        .collect();
    // ggml's current quantization format (GGML_QNT_VERSION).
    metadata.push(MetadataEntry::u32("general.quantization_version", 2));
    metadata.push(MetadataEntry::u32("general.file_type", mixture.file_type()));
    metadata
}

fn alignment(metadata: &[MetadataEntry]) -> u64 {
    metadata
        .iter()
        .find(|entry| entry.key == "general.alignment")
        .and_then(MetadataEntry::as_u32)
        .filter(|&a| a > 0)
        .map_or(DEFAULT_ALIGNMENT, u64::from)
}

/// Every tensor in llama.cpp's order with the type the rules give it.
fn plan(gguf: &Gguf, mixture: Mixture) -> QuantizeResult<Vec<Planned>> {
    let mut names: Vec<&str> = gguf.tensor_names().map(String::as_str).collect();
    names.sort_by(|a, b| loader_order(a, b));
    let mut planner = Planner::new(mixture, model_facts(gguf)?, names.iter().copied());
    let mut plan = Vec::with_capacity(names.len());
    for name in names {
        let Some((from, dims)) = gguf.tensor_layout(name) else {
            continue;
        };
        let ne: Vec<usize> = dims.iter().rev().copied().collect();
        let dtype = planner.target(name, &ne, from);
        plan.push(Planned {
            source_bytes: data_size(&ne, from),
            entry: TensorEntry {
                name: name.to_owned(),
                ne,
                dtype,
            },
            from,
        });
    }
    Ok(plan)
}

fn model_facts(gguf: &Gguf) -> QuantizeResult<ModelFacts> {
    const PURPOSE: &str = "a model to quantize";
    let arch = gguf
        .string("general.architecture")
        .ok_or_else(|| gguf.missing("general.architecture", PURPOSE))?
        .to_owned();
    let layers = gguf.require_int(&format!("{arch}.block_count"), PURPOSE)? as usize;
    let experts = gguf.int(&format!("{arch}.expert_count")).unwrap_or(0) as usize;
    let heads = gguf.int(&format!("{arch}.attention.head_count"));
    let kv_heads = gguf.int(&format!("{arch}.attention.head_count_kv"));
    // llama.cpp's size table: 80 layers are its 70B class for Qwen2, and for Llama unless every
    // head has its own keys and values (then it is the 65B class).
    let is_70b = layers == 80
        && match arch.as_str() {
            "qwen2" => true,
            "llama" => heads.is_some() && kv_heads.is_some() && heads != kv_heads,
            _ => false,
        };
    Ok(ModelFacts {
        arch,
        layers,
        experts,
        is_70b,
    })
}

fn write_file(
    gguf: &mut Gguf,
    path: &Path,
    metadata: &[MetadataEntry],
    plan: &[Planned],
    alignment: u64,
    progress: &dyn Fn(&QuantizeProgress),
) -> QuantizeResult<()> {
    let write_error = |source| QuantizeError::Write {
        path: path.to_owned(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(write_error)?);
    let entries = plan.iter().map(|p| &p.entry);
    write_header(&mut out, metadata, entries, alignment).map_err(write_error)?;
    let bytes_total: u64 = plan.iter().map(|p| p.source_bytes).sum();
    let mut bytes_done = 0;
    for (done, planned) in plan.iter().enumerate() {
        let data = tensor_data(gguf, planned)?;
        let pad = padding(data.len() as u64, alignment) as usize;
        out.write_all(&data)
            .and_then(|()| out.write_all(&vec![0u8; pad]))
            .map_err(write_error)?;
        bytes_done += planned.source_bytes;
        progress(&QuantizeProgress {
            tensor: &planned.entry.name,
            done: done + 1,
            total: plan.len(),
            bytes_done,
            bytes_total,
        });
    }
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)
}

/// The bytes of one output tensor: the input's own when the type stays, else requantized.
fn tensor_data(gguf: &mut Gguf, planned: &Planned) -> QuantizeResult<Vec<u8>> {
    let raw = gguf.raw(&planned.entry.name)?;
    if planned.entry.dtype == planned.from {
        return Ok(raw.bytes);
    }
    let unreadable = || QuantizeError::UnreadableType {
        path: gguf.path().to_owned(),
        tensor: planned.entry.name.clone(),
        dtype: format!("{:?}", planned.from),
    };
    let values = qtensor_from_ggml(raw.dtype, &raw.bytes, raw.dims, &Device::Cpu)
        .and_then(|q| q.dequantize(&Device::Cpu))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|_| unreadable())?;
    // The rules only choose types `quantize_values` writes, for rows of whole blocks.
    let bytes = quantize_values(planned.entry.dtype, &values).ok_or_else(unreadable)?;
    match blocks::first_non_finite(planned.entry.dtype, &bytes) {
        Some(block) => Err(QuantizeError::Overflow {
            path: gguf.path().to_owned(),
            tensor: planned.entry.name.clone(),
            dtype: format!("{:?}", planned.entry.dtype),
            block,
        }),
        None => Ok(bytes),
    }
}

fn temporary_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn rename(tmp: &Path, output: &Path) -> QuantizeResult<()> {
    std::fs::rename(tmp, output).map_err(|source| QuantizeError::Write {
        path: output.to_owned(),
        source,
    })
}

fn summary(gguf: &Gguf, plan: &[Planned], output: &Path) -> QuantizeSummary {
    let mut types: Vec<(GgmlDType, usize)> = Vec::new();
    for planned in plan {
        match types.iter_mut().find(|(t, _)| *t == planned.entry.dtype) {
            Some((_, n)) => *n += 1,
            None => types.push((planned.entry.dtype, 1)),
        }
    }
    types.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    QuantizeSummary {
        tensors: plan.len(),
        requantized: plan.iter().filter(|p| p.entry.dtype != p.from).count(),
        types,
        input_bytes: size(gguf.path()),
        output_bytes: size(output),
    }
}
