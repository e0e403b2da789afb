//! Float weight matrices (F16, BF16, F32) on our own kernels: equal to ggml's products to the
//! bit, and a whole F16 or BF16 model running on them.

use crate::llm::{reference, smollm_path, teacher_forced_agreement};
use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use glassbox::llm::floatmm::FWeight;
use glassbox::llm::{Engine, EngineOptions};
use serde_json::Value;
use std::time::Instant;

/// Our float matmul equals ggml's mul_mat to the bit: tests/data/ggml/float_dots.json holds
/// products computed by llama.cpp's libggml-cpu (tests/data/make_ggml_float_dots.py) through
/// llamafile's tinyBLAS for three activation rows and `vec_dot` for one, or where tinyBLAS
/// refuses the width. The activations are rounded to F16/BF16 by us.
#[test]
fn float_matmul_equals_ggml_to_the_bit() {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::data("ggml/float_dots.json")).unwrap(),
    )
    .unwrap();
    let mut wrong = Vec::new();
    for (i, case) in data["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["type"].as_str().unwrap();
        let dtype = match name {
            "f32" => GgmlDType::F32,
            "f16" => GgmlDType::F16,
            "bf16" => GgmlDType::BF16,
            other => panic!("unknown type {other}"),
        };
        let dim = |k: &str| case[k].as_u64().unwrap() as usize;
        let (rows, cols, m) = (dim("rows"), dim("cols"), dim("m"));
        let x: Vec<f32> = crate::common::hex(case["x"].as_str().unwrap())
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let bytes = crate::common::hex(case["weights"].as_str().unwrap());
        let w = FWeight::from_bytes(dtype, rows, cols, &bytes).unwrap();
        let mut out = vec![0f32; m * rows];
        w.matmul(&x, m, &mut out);
        for (j, (ours, bits)) in out
            .iter()
            .zip(case["out_bits"].as_array().unwrap())
            .enumerate()
        {
            let expected = f32::from_bits(bits.as_u64().unwrap() as u32);
            if ours.to_bits() != expected.to_bits() {
                let path = case["path"].as_str().unwrap();
                wrong.push(format!(
                    "case {i} {name} {cols} cols, {m} rows ({path}), output {j}: ours {ours} ggml {expected}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The Q4_1 test model written with every matrix in F16, then BF16: every matrix runs on our
/// kernels, and our top token is llama.cpp's greedy choice (for the Q4_1 file) nearly
/// everywhere.
#[test]
fn float_models_run_on_our_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::open(smollm_path()).unwrap();
    let content = Content::read(&mut file).unwrap();
    for dtype in [GgmlDType::F16, GgmlDType::BF16] {
        let tensors: Vec<(String, QTensor)> = content
            .tensor_infos
            .keys()
            .map(|name| {
                let q = content.tensor(&mut file, name, &Device::Cpu).unwrap();
                let q = if q.shape().dims().len() == 2 {
                    QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), dtype).unwrap()
                } else {
                    q
                };
                (name.clone(), q)
            })
            .collect();
        let path = dir.path().join(format!("{dtype:?}.gguf"));
        let mut f = std::fs::File::create(&path).unwrap();
        let meta: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut f, &meta, &t).unwrap();
        drop(f);
        let mut engine = Engine::load(&path, &EngineOptions::default()).unwrap();
        assert!(
            engine.candle_tensors().is_empty(),
            "{dtype:?}: on candle: {:?}",
            engine.candle_tensors()
        );
        let (same, total) = teacher_forced_agreement(&mut engine, reference());
        eprintln!("{dtype:?}: llama.cpp's greedy token is our top token at {same} of {total}");
        assert!(
            same as f32 >= 0.9 * total as f32,
            "{dtype:?}: {same} of {total}"
        );
    }
}

/// Times a 896 x 4864 F16 matmul (Qwen2.5-0.5B's FFN down projection shape, transposed) for
/// one and eight activation rows, ours against candle's QMatMul; prints, asserts nothing.
#[test]
fn float_matmul_speed_against_candle() {
    let (rows, cols) = (896, 4864);
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-4)
        .collect();
    let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, GgmlDType::F16).unwrap();
    let ours = FWeight::from_bytes(GgmlDType::F16, rows, cols, &q.data().unwrap()).unwrap();
    let candle = QMatMul::from_qtensor(q).unwrap();
    for m in [1, 8] {
        let x: Vec<f32> = (0..m * cols).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let xt = Tensor::from_slice(&x, (m, cols), &Device::Cpu).unwrap();
        let mut out = vec![0f32; m * rows];
        let time = |f: &mut dyn FnMut()| {
            f();
            let runs = 20;
            let start = Instant::now();
            for _ in 0..runs {
                f();
            }
            start.elapsed().as_secs_f64() * 1e3 / runs as f64
        };
        let a = time(&mut || ours.matmul(&x, m, &mut out));
        let b = time(&mut || {
            candle.forward(&xt).unwrap();
        });
        eprintln!("F16 {rows}x{cols}, {m} rows: ours {a:.3} ms, candle QMatMul {b:.3} ms");
    }
}
