//! The engine on a Q4_K_M file, the format users download: llama.cpp's quantizer makes SmolLM2
//! into Q5_0, Q8_0, Q4_K and Q6_K tensors (its fallbacks where 576 columns are not a multiple
//! of 256), all run by our kernels. Held to llama.cpp's greedy continuations of the same file
//! (tests/data/reference, computed by llama.cpp b4748 on the file whose sha256 is recorded
//! there; scripts/test makes the file with `glassbox quantize` from the PyPI Q4_1 file).

use glassbox::llm::{AttentionKind, CacheSize, Engine, EngineOptions};
use serde_json::Value;
use std::path::PathBuf;

pub fn q4km_path() -> PathBuf {
    crate::llm::smollm_path().with_file_name("smollm2-135m-q4_k_m.gguf")
}

fn reference() -> Value {
    let path = crate::common::data("reference/smollm2-135m-q4_k_m.llama-cpp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn engine() -> Engine {
    let options = EngineOptions {
        attention: AttentionKind::Cpu,
        cache: CacheSize::Tokens(2048),
        ..EngineOptions::default()
    };
    Engine::load(&q4km_path(), &options).unwrap()
}

/// Teacher-forced over each reference text (prompt and llama.cpp's greedy continuation), our
/// top token equals llama.cpp's choice almost everywhere: our matrix kernels equal ggml's to
/// the bit (below), and the rest of the forward pass (exp, SiLU, attention sums) rounds
/// slightly otherwise, which moves logits by a few hundredths and parts the text where two
/// tokens are nearly tied. Every matrix of the file runs on our kernels, none on candle.
#[test]
fn q4_k_m_follows_llama_cpp_at_almost_every_position() {
    let mut engine = engine();
    assert_eq!(
        engine.candle_tensors(),
        Vec::<String>::new(),
        "every tensor of a Q4_K_M file runs on our kernels"
    );
    let (same, total) = crate::llm::teacher_forced_agreement(&mut engine, &reference());
    eprintln!("Q4_K_M: llama.cpp's greedy token is our top token at {same} of {total} positions");
    assert!(
        same as f32 >= 0.95 * total as f32,
        "our top token is llama.cpp's at only {same} of {total} positions"
    );
}

/// Our matmul of one weight row with one activation row equals ggml's own `vec_dot`, to the
/// bit, for every block type our kernels run: tests/data/ggml/dots.json holds rows quantized
/// by ggml and the dots it computed (tests/data/make_ggml_dots.py calls llama.cpp's
/// libggml-cpu). The activations are quantized by us, so ggml's Q8_0/Q8_1/Q8_K are checked too.
#[test]
fn kernels_equal_ggml_vec_dot_to_the_bit() {
    use candle_core::quantized::GgmlDType as T;
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::data("ggml/dots.json")).unwrap(),
    )
    .unwrap();
    let mut wrong = Vec::new();
    for (i, case) in data["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["type"].as_str().unwrap();
        let dtype = match name {
            "q4_0" => T::Q4_0,
            "q4_1" => T::Q4_1,
            "q5_0" => T::Q5_0,
            "q5_1" => T::Q5_1,
            "q8_0" => T::Q8_0,
            "q4_K" => T::Q4K,
            "q5_K" => T::Q5K,
            "q6_K" => T::Q6K,
            other => panic!("unknown type {other}"),
        };
        let x: Vec<f32> = crate::common::hex(case["x"].as_str().unwrap())
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let bytes = crate::common::hex(case["weights"].as_str().unwrap());
        let w = glassbox::llm::quant::QWeight::from_bytes(dtype, 1, x.len(), &bytes).unwrap();
        let mut out = [0f32];
        w.matmul(&x, 1, &mut out);
        let expected = f32::from_bits(case["dot_bits"].as_u64().unwrap() as u32);
        if out[0].to_bits() != expected.to_bits() {
            wrong.push(format!("case {i} {name}: ours {} ggml {expected}", out[0]));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
