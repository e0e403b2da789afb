//! Every LLM the catalogue lists (models/*.toml) loads and runs with its real shapes and weight
//! types. The hubs are out of reach here, so each is rebuilt from its `[shape]`: a GGUF with the
//! real width, feed-forward size, heads, head size, vocabulary size, RoPE, biases and tying but
//! two layers of random F16 weights (the real layer counts would be gigabytes), written by our
//! GGUF writer, quantized by our quantizer to the catalogue's type (Q4_K_M: rows that are not
//! whole 256-value blocks fall back to Q5_0/Q8_0, as llama-quantize does), then loaded by the
//! engine, which must run every matrix on our kernels and give finite logits.
//!
//! Time: made at full size, the tables of 128k-152k tokens by 1536-2048 values that Q4_K_M
//! stores as Q6_K take our (unoptimised, in tests) quantizer most of two minutes on two cores.
//! Those tables are cut to 16,384 tokens unless `GLASSBOX_FULL_VOCAB=1`: they are the same rows,
//! only fewer. Tables stored as Q8_0 (rows of 576, 896 or 960 values) are cheap and always have
//! the real vocabulary.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use clap::ValueEnum;
use glassbox::llm::gguf_write::{
    DEFAULT_ALIGNMENT, MetadataEntry, TensorEntry, padding, write_header,
};
use glassbox::llm::quantize::{Mixture, quantize_file};
use glassbox::llm::{CacheSize, Engine, EngineOptions, Message, Role as ChatRole};
use glassbox::models::{self, Llama3RopeScaling, ModelSpec, Role};
use glassbox::rng::Rng;

/// Layers each synthetic model gets: two, so that the `_M` rules' first and later layers differ.
const LAYERS: usize = 2;

/// Tokens of a vocabulary whose table is a K-quant, unless `GLASSBOX_FULL_VOCAB=1`.
const K_QUANT_VOCAB: usize = 16_384;

/// Rows of the embedding table (and tokens) the synthetic model gets: see the module's note.
fn vocab(spec: &ModelSpec) -> usize {
    let real = spec.shape.as_ref().unwrap().vocab;
    let k_quant_table = spec.dimensions.is_multiple_of(256);
    if k_quant_table && std::env::var("GLASSBOX_FULL_VOCAB").as_deref() != Ok("1") {
        real.min(K_QUANT_VOCAB)
    } else {
        real
    }
}

#[test]
fn every_catalogue_llm_loads_and_runs_with_its_real_shapes() {
    let llms: Vec<ModelSpec> = models::known()
        .into_iter()
        .filter(|m| m.role == Role::Llm)
        .collect();
    assert!(llms.len() >= 6, "{} LLMs in the catalogue", llms.len());
    for spec in &llms {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("f16.gguf");
        let output = dir.path().join("quantized.gguf");
        write_synthetic(spec, &input);
        let summary = quantize_file(&input, &output, mixture(spec), &|_| {}).unwrap();
        // The F16 file is the larger one: gone before the engine maps the other.
        std::fs::remove_file(&input).unwrap();
        let types: Vec<String> = summary
            .types
            .iter()
            .map(|(t, _)| format!("{t:?}"))
            .collect();
        if !spec.dimensions.is_multiple_of(256) {
            // The K-quant fallbacks: Q4_K rows of this width become Q5_0, Q6_K ones Q8_0.
            assert!(
                summary.types.iter().any(|(t, _)| *t == GgmlDType::Q5_0)
                    && summary.types.iter().any(|(t, _)| *t == GgmlDType::Q8_0),
                "{}: {types:?}",
                spec.id
            );
        }
        check_runs(spec, &output);
        eprintln!(
            "{}: {} tokens, {} MB as {}, {types:?}, {:.1} s",
            spec.id,
            vocab(spec),
            summary.output_bytes / 1_000_000,
            spec.quantization.as_deref().unwrap_or("?"),
            started.elapsed().as_secs_f64()
        );
    }
}

/// The catalogue's quantization as our quantizer's mixture (`Q4_K_M` is `q4_k_m`).
fn mixture(spec: &ModelSpec) -> Mixture {
    let name = spec.quantization.as_deref().expect("an LLM names its type");
    Mixture::from_str(name, true)
        .unwrap_or_else(|e| panic!("{}: {name} is not a mixture we make: {e}", spec.id))
}

/// Loads the quantized file and runs a chat prompt through it.
fn check_runs(spec: &ModelSpec, path: &Path) {
    let shape = spec.shape.as_ref().unwrap();
    let options = EngineOptions {
        cache: CacheSize::Tokens(256),
        ..EngineOptions::default()
    };
    let mut engine = Engine::load(path, &options).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
    let c = &engine.model.config;
    let loaded = (
        c.n_layer,
        c.n_embd,
        c.n_ff,
        c.n_head,
        c.n_kv_head,
        c.head_dim,
    );
    let expected = (
        LAYERS,
        spec.dimensions,
        shape.ffn,
        shape.heads,
        shape.kv_heads,
        shape.head_dim,
    );
    assert_eq!(loaded, expected, "{}", spec.id);
    assert_eq!(
        (c.context, c.rope_base),
        (spec.max_tokens, shape.rope_base),
        "{}",
        spec.id
    );
    assert_eq!(engine.model.vocab_size(), vocab(spec), "{}", spec.id);
    assert!(
        engine.candle_tensors().is_empty(),
        "{}: {:?} run on candle",
        spec.id,
        engine.candle_tensors()
    );
    let prompt = engine
        .chat_prompt(&[Message::new(ChatRole::User, "hello world")])
        .unwrap();
    let logits = engine.logits(&prompt, false).unwrap();
    assert_eq!(logits.len(), vocab(spec), "{}", spec.id);
    assert!(logits.iter().all(|v| v.is_finite()), "{}", spec.id);
    let (min, max) = logits
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(max > min, "{}: every logit is {min}", spec.id);
}

/// What a tensor's values are.
enum Fill {
    /// Random weights of a matrix or bias.
    Weights,
    /// Norm weights around one.
    Norm,
    Given(Vec<f32>),
}

struct Tensor {
    entry: TensorEntry,
    fill: Fill,
}

/// Writes the two-layer F16 model of `spec`'s shape (norms, biases and RoPE factors in F32, as
/// llama.cpp's converter writes them), streaming the values so no table is held in memory.
fn write_synthetic(spec: &ModelSpec, path: &Path) {
    let tensors = tensors(spec);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let entries = tensors.iter().map(|t| &t.entry);
    write_header(&mut out, &metadata(spec), entries, DEFAULT_ALIGNMENT).unwrap();
    let mut rng = Rng::new(13);
    for tensor in &tensors {
        let written = write_values(&mut out, tensor, &mut rng);
        let pad = padding(written, DEFAULT_ALIGNMENT) as usize;
        out.write_all(&vec![0u8; pad]).unwrap();
    }
    out.flush().unwrap();
}

/// Writes one tensor's values; returns the bytes written.
fn write_values(out: &mut impl Write, tensor: &Tensor, rng: &mut Rng) -> u64 {
    let count: usize = tensor.entry.ne.iter().product();
    let mut bytes = Vec::new();
    let mut written = 0;
    let mut values = Vec::with_capacity(1 << 16);
    for i in 0..count {
        values.push(match &tensor.fill {
            Fill::Weights => (rng.next_f32() - 0.5) * 0.1,
            Fill::Norm => 1.0 + (rng.next_f32() - 0.5) * 0.2,
            Fill::Given(v) => v[i],
        });
        if values.len() == values.capacity() || i + 1 == count {
            encode(&values, tensor.entry.dtype, &mut bytes);
            out.write_all(&bytes).unwrap();
            written += bytes.len() as u64;
            values.clear();
        }
    }
    written
}

fn encode(values: &[f32], dtype: GgmlDType, bytes: &mut Vec<u8>) {
    bytes.clear();
    match dtype {
        GgmlDType::F16 => bytes.extend(
            values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
        ),
        _ => bytes.extend(values.iter().flat_map(|v| v.to_le_bytes())),
    }
}

/// The tensors llama.cpp's converter writes for the architecture, in its order.
fn tensors(spec: &ModelSpec) -> Vec<Tensor> {
    let shape = spec.shape.as_ref().unwrap();
    let d = spec.dimensions;
    let (q, kv) = (
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
    );
    // ggml's dimensions: the row length first.
    let matrix = |name: &str, rows: usize, cols: usize| tensor(name, &[cols, rows], Fill::Weights);
    let mut tensors = vec![matrix("token_embd.weight", vocab(spec), d)];
    if let Some(scaling) = &shape.rope_scaling {
        let factors = llama3_rope_factors(scaling, shape.rope_base, shape.head_dim);
        tensors.push(tensor(
            "rope_freqs.weight",
            &[factors.len()],
            Fill::Given(factors),
        ));
    }
    for layer in 0..LAYERS {
        let name = |n: &str| format!("blk.{layer}.{n}");
        tensors.extend([
            tensor(&name("attn_norm.weight"), &[d], Fill::Norm),
            matrix(&name("attn_q.weight"), q, d),
            matrix(&name("attn_k.weight"), kv, d),
            matrix(&name("attn_v.weight"), kv, d),
            matrix(&name("attn_output.weight"), d, q),
            tensor(&name("ffn_norm.weight"), &[d], Fill::Norm),
            matrix(&name("ffn_gate.weight"), shape.ffn, d),
            matrix(&name("ffn_up.weight"), shape.ffn, d),
            matrix(&name("ffn_down.weight"), d, shape.ffn),
        ]);
        if spec.architecture == "qwen2" {
            tensors.extend([
                tensor(&name("attn_q.bias"), &[q], Fill::Weights),
                tensor(&name("attn_k.bias"), &[kv], Fill::Weights),
                tensor(&name("attn_v.bias"), &[kv], Fill::Weights),
            ]);
        }
    }
    tensors.push(tensor("output_norm.weight", &[d], Fill::Norm));
    if !shape.tied_output {
        tensors.push(matrix("output.weight", vocab(spec), d));
    }
    tensors
}

/// Matrices in F16, vectors in F32.
fn tensor(name: &str, ne: &[usize], fill: Fill) -> Tensor {
    let dtype = if ne.len() > 1 {
        GgmlDType::F16
    } else {
        GgmlDType::F32
    };
    Tensor {
        entry: TensorEntry {
            name: name.to_owned(),
            ne: ne.to_vec(),
            dtype,
        },
        fill,
    }
}

/// llama.cpp's converter's `rope_freqs` for Llama 3.1+: high frequencies kept, low ones divided
/// by `factor`, a smooth blend between.
fn llama3_rope_factors(s: &Llama3RopeScaling, base: f32, head_dim: usize) -> Vec<f32> {
    let old = s.original_context as f32;
    let (low_wavelen, high_wavelen) = (old / s.low_freq_factor, old / s.high_freq_factor);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / base.powf((2 * i) as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                s.factor
            } else {
                let smooth =
                    (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                1.0 / ((1.0 - smooth) / s.factor + smooth)
            }
        })
        .collect()
}

/// The hyper-parameters and a byte-level BPE vocabulary of the real size.
fn metadata(spec: &ModelSpec) -> Vec<MetadataEntry> {
    let shape = spec.shape.as_ref().unwrap();
    let arch = spec.architecture.as_str();
    let key = |k: &str| format!("{arch}.{k}");
    let (tokens, merges) = vocabulary(vocab(spec));
    let types: Vec<i32> = tokens
        .iter()
        .map(|t| if SPECIALS.contains(&t.as_str()) { 3 } else { 1 })
        .collect();
    let end_of_turn = tokens.len() - 1;
    vec![
        string("general.architecture", arch),
        string("general.name", &spec.id),
        u32_entry(&key("block_count"), LAYERS),
        u32_entry(&key("context_length"), spec.max_tokens),
        u32_entry(&key("embedding_length"), spec.dimensions),
        u32_entry(&key("feed_forward_length"), shape.ffn),
        u32_entry(&key("attention.head_count"), shape.heads),
        u32_entry(&key("attention.head_count_kv"), shape.kv_heads),
        u32_entry(&key("attention.key_length"), shape.head_dim),
        u32_entry(&key("attention.value_length"), shape.head_dim),
        f32_entry(&key("rope.freq_base"), shape.rope_base),
        f32_entry(&key("attention.layer_norm_rms_epsilon"), shape.rms_eps),
        u32_entry("general.file_type", 1),
        string("tokenizer.ggml.model", "gpt2"),
        string("tokenizer.ggml.pre", &shape.pre_tokenizer),
        strings("tokenizer.ggml.tokens", &tokens),
        i32s("tokenizer.ggml.token_type", &types),
        strings("tokenizer.ggml.merges", &merges),
        u32_entry("tokenizer.ggml.bos_token_id", end_of_turn - 2),
        u32_entry("tokenizer.ggml.eos_token_id", end_of_turn),
    ]
}

/// Control tokens at the end of the vocabulary (ChatML's, which the engine's fallback template
/// writes).
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// `size` tokens: GPT-2's 256 byte symbols, then lowercase letter pairs, triples and quadruples
/// (each made by one merge of its prefix and last letter) until only the specials are left.
fn vocabulary(size: usize) -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = (0..=255u8).map(byte_symbol).map(String::from).collect();
    let mut merges = Vec::new();
    let letters = || ('a'..='z').map(String::from);
    let mut prefixes: Vec<String> = letters().collect();
    let wanted = size - SPECIALS.len();
    while tokens.len() < wanted {
        let mut longer = Vec::new();
        for prefix in &prefixes {
            for last in letters() {
                if tokens.len() == wanted {
                    break;
                }
                merges.push(format!("{prefix} {last}"));
                tokens.push(format!("{prefix}{last}"));
                longer.push(format!("{prefix}{last}"));
            }
        }
        prefixes = longer;
    }
    tokens.extend(SPECIALS.map(String::from));
    (tokens, merges)
}

/// GPT-2's printable stand-in for a byte: printable Latin-1 bytes stand for themselves, the
/// others for the code points from 256 up, in order.
fn byte_symbol(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).unwrap()
}

// GGUF metadata value types (gguf.h's `gguf_type`).
const TYPE_I32: u32 = 5;
const TYPE_F32: u32 = 6;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

fn entry(key: &str, value_type: u32, value: Vec<u8>) -> MetadataEntry {
    MetadataEntry {
        key: key.to_owned(),
        value_type,
        value,
    }
}

fn u32_entry(key: &str, value: usize) -> MetadataEntry {
    MetadataEntry::u32(key, u32::try_from(value).unwrap())
}

fn f32_entry(key: &str, value: f32) -> MetadataEntry {
    entry(key, TYPE_F32, value.to_le_bytes().to_vec())
}

fn string_bytes(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text.as_bytes());
    bytes
}

fn string(key: &str, text: &str) -> MetadataEntry {
    entry(key, TYPE_STRING, string_bytes(text))
}

fn array(key: &str, element_type: u32, count: usize, elements: Vec<u8>) -> MetadataEntry {
    let mut value = element_type.to_le_bytes().to_vec();
    value.extend((count as u64).to_le_bytes());
    value.extend(elements);
    entry(key, TYPE_ARRAY, value)
}

fn strings(key: &str, items: &[String]) -> MetadataEntry {
    let elements = items.iter().flat_map(|s| string_bytes(s)).collect();
    array(key, TYPE_STRING, items.len(), elements)
}

fn i32s(key: &str, items: &[i32]) -> MetadataEntry {
    let elements = items.iter().flat_map(|v| v.to_le_bytes()).collect();
    array(key, TYPE_I32, items.len(), elements)
}
