//! Which type each tensor gets: llama.cpp's rules (llama-quant.cpp, build b4748, no importance
//! matrix, default options) for the file types we make. A `_M` mixture spends more bits where
//! quantization hurts most: the output matrix, and `attn_v`/`ffn_down` in the first and last
//! eighth of the layers and every third layer between. A K-quant that does not fit a row (its
//! length is not a multiple of 256) falls back to the 32-value type of about the same size.

use candle_core::quantized::GgmlDType;

/// The file types `glassbox quantize` makes, named and numbered as llama.cpp names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mixture {
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q5_k_m")]
    Q5KM,
    #[value(name = "q6_k")]
    Q6K,
}

impl Mixture {
    /// The type every quantizable tensor gets unless a rule says otherwise.
    pub fn base_type(self) -> GgmlDType {
        match self {
            Mixture::Q4_0 => GgmlDType::Q4_0,
            Mixture::Q4_1 => GgmlDType::Q4_1,
            Mixture::Q8_0 => GgmlDType::Q8_0,
            Mixture::Q4KM => GgmlDType::Q4K,
            Mixture::Q5KM => GgmlDType::Q5K,
            Mixture::Q6K => GgmlDType::Q6K,
        }
    }

    /// llama.cpp's `llama_ftype`, written as `general.file_type`.
    pub fn file_type(self) -> u32 {
        match self {
            Mixture::Q4_0 => 2,
            Mixture::Q4_1 => 3,
            Mixture::Q8_0 => 7,
            Mixture::Q4KM => 15,
            Mixture::Q5KM => 17,
            Mixture::Q6K => 18,
        }
    }
}

/// What the rules need to know about the model.
pub struct ModelFacts {
    pub arch: String,
    pub layers: usize,
    pub experts: usize,
    /// llama.cpp's 70B size class (more bits for attn_v, whose heads are shared eight ways).
    pub is_70b: bool,
}

/// Chooses types tensor by tensor, in llama.cpp's order (`loader_order`): the `attn_v` and
/// `ffn_down` rules count the tensors seen so far, as llama.cpp does.
pub struct Planner {
    mixture: Mixture,
    facts: ModelFacts,
    has_output: bool,
    attn_v_count: usize,
    attn_v_seen: usize,
    ffn_down_seen: usize,
}

impl Planner {
    pub fn new<'a>(
        mixture: Mixture,
        facts: ModelFacts,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let (mut has_output, mut attn_v_count) = (false, 0);
        for name in names {
            has_output |= name == "output.weight";
            if ["attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight"]
                .iter()
                .any(|part| name.contains(part))
            {
                attn_v_count += 1;
            }
        }
        Planner {
            mixture,
            facts,
            has_output,
            attn_v_count,
            attn_v_seen: 0,
            ffn_down_seen: 0,
        }
    }

    /// The type tensor `name` (ggml dimensions `ne`, innermost first) is written as. Tensors
    /// that are not quantized keep `current`.
    pub fn target(&mut self, name: &str, ne: &[usize], current: GgmlDType) -> GgmlDType {
        if !quantizable(name, ne.len()) {
            return current;
        }
        let row = ne.first().copied().unwrap_or(0);
        let chosen = self.rules(name, row, self.mixture.base_type());
        fallback(chosen, row)
    }

    fn rules(&mut self, name: &str, row: usize, base: GgmlDType) -> GgmlDType {
        let (m, falcon) = (self.mixture, self.facts.arch == "falcon");
        let k_m = matches!(m, Mixture::Q4KM | Mixture::Q5KM);
        if name == "output.weight" || (!self.has_output && name == "token_embd.weight") {
            // The output matrix (or the embeddings it is tied to): 6 bits, or 8 when the rows
            // do not fit 256-value blocks.
            return if falcon || !row.is_multiple_of(256) {
                GgmlDType::Q8_0
            } else if base != GgmlDType::Q8_0 {
                GgmlDType::Q6K
            } else {
                base
            };
        }
        if name.contains("attn_v.weight") {
            let mut chosen = base;
            if k_m && use_more_bits(self.attn_v_seen, self.attn_v_count) {
                chosen = GgmlDType::Q6K;
            }
            if self.facts.is_70b && matches!(chosen, GgmlDType::Q3K | GgmlDType::Q4K) {
                chosen = GgmlDType::Q5K;
            }
            if self.facts.experts == 8 {
                chosen = GgmlDType::Q8_0;
            }
            self.attn_v_seen += 1;
            return chosen;
        }
        if name.contains("attn_k.weight") && self.facts.experts == 8 {
            return GgmlDType::Q8_0;
        }
        if name.contains("ffn_down") {
            let layer = self.ffn_down_layer(name);
            self.ffn_down_seen += 1;
            let (n, more) = (self.facts.layers, use_more_bits(layer, self.facts.layers));
            return match m {
                Mixture::Q4KM if falcon && layer < n / 16 => GgmlDType::Q6K,
                Mixture::Q4KM if falcon && more => GgmlDType::Q5K,
                Mixture::Q4KM if falcon => GgmlDType::Q4K,
                Mixture::Q4KM | Mixture::Q5KM if more => GgmlDType::Q6K,
                _ => base,
            };
        }
        if name.contains("attn_output.weight") && !falcon && self.facts.experts == 8 {
            return if m == Mixture::Q4KM {
                GgmlDType::Q5K
            } else {
                base
            };
        }
        if name.contains("attn_qkv.weight") {
            return match m {
                Mixture::Q4KM => GgmlDType::Q5K,
                Mixture::Q5KM => GgmlDType::Q6K,
                _ => base,
            };
        }
        base
    }

    /// The layer of an `ffn_down` tensor: its count so far, or (mixture-of-experts models, whose
    /// expert tensors are not in layer order) the number in its name.
    fn ffn_down_layer(&self, name: &str) -> usize {
        let counted = self.ffn_down_seen;
        if self.facts.experts <= 1 {
            return counted;
        }
        block_number(name)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(counted)
    }
}

/// llama.cpp's choice of layers that get more bits: the first and last eighth, and every third
/// layer between.
fn use_more_bits(layer: usize, layers: usize) -> bool {
    let (layer, layers) = (layer as i64, layers as i64);
    layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
}

/// Whether llama.cpp quantizes a tensor at all: matrices named `*weight`, except norms, the
/// expert router, positional and token-type embeddings, and a few small special matrices.
fn quantizable(name: &str, dims: usize) -> bool {
    const KEPT: [&str; 10] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ssm_conv1d.weight",
        "time_mix_first.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
    ];
    dims >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !KEPT.iter().any(|kept| name.contains(kept))
}

/// A K-quant whose rows are not whole 256-value blocks becomes the 32-value type of about the
/// same size; a row that fits no block at all stays F16 (llama.cpp gives up on such a row for the
/// 32-value types).
fn fallback(chosen: GgmlDType, row: usize) -> GgmlDType {
    let chosen = match chosen {
        GgmlDType::Q4K if !row.is_multiple_of(256) => GgmlDType::Q5_0,
        GgmlDType::Q5K if !row.is_multiple_of(256) => GgmlDType::Q5_1,
        GgmlDType::Q6K if !row.is_multiple_of(256) => GgmlDType::Q8_0,
        other => other,
    };
    if row.is_multiple_of(chosen.block_size()) {
        chosen
    } else {
        GgmlDType::F16
    }
}

/// The `N` of a `blk.N.` name, read as C's `sscanf("blk.%d.")` reads it.
fn block_number(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// The order llama.cpp's loader keeps tensors in, which is the order they are written and counted
/// in: tensors outside the blocks first, then block by block, each group by name.
pub fn loader_order(a: &str, b: &str) -> std::cmp::Ordering {
    let layer = |name: &str| block_number(name).unwrap_or(-1);
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}
