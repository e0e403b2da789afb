//! Our quantizer against llama.cpp's `llama-quantize` (b4748): the real SmolLM2 Q4_1 file made
//! into Q4_K_M byte for byte by the real `glassbox quantize`, its metadata kept, broken input
//! refused with the file's name; each block quantizer against blocks llama-quantize wrote
//! (tests/data/quantize, made by its make_fixtures.py: edge cases and real weights) and against
//! the precision its type promises.

use crate::common::{data, glassbox, succeed};
use crate::llm::smollm_path;
use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::Content;
use glassbox::llm::quantize::{Mixture, quantize_file, quantize_values};
use glassbox::rng::Rng;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What llama-quantize b4748 writes for the PyPI SmolLM2 Q4_1 file with Q4_K_M.
const Q4_K_M_SHA256: &str = "dc0f3a02e821146247a0af6895adf9872124f368682cb110cb9ed09ff2a9f9f1";

/// Fixture file, type, values and bytes per block.
const BLOCK_TYPES: [(&str, GgmlDType, usize, usize); 8] = [
    ("q4_0", GgmlDType::Q4_0, 32, 18),
    ("q4_1", GgmlDType::Q4_1, 32, 20),
    ("q5_0", GgmlDType::Q5_0, 32, 22),
    ("q5_1", GgmlDType::Q5_1, 32, 24),
    ("q8_0", GgmlDType::Q8_0, 32, 34),
    ("q4_k", GgmlDType::Q4K, 256, 144),
    ("q5_k", GgmlDType::Q5K, 256, 176),
    ("q6_k", GgmlDType::Q6K, 256, 210),
];

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn content(path: &Path) -> Content {
    Content::read(&mut std::fs::File::open(path).unwrap()).unwrap()
}

#[test]
fn quantize_smollm2_to_q4_k_m_writes_llama_quantize_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-q4_k_m.gguf");
    let input = smollm_path();
    let run = succeed(
        glassbox()
            .arg("quantize")
            .arg(&input)
            .arg(&out)
            .args(["--type", "q4_k_m"]),
    );
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains("272 tensors"), "{said}");

    // The mixture first, so that a difference says where it is before the hash does.
    let written = content(&out);
    let mut types = std::collections::BTreeMap::new();
    for info in written.tensor_infos.values() {
        *types.entry(format!("{:?}", info.ggml_dtype)).or_insert(0) += 1;
    }
    let expected = [
        ("F32", 61),
        ("Q4K", 16),
        ("Q5_0", 166),
        ("Q6K", 14),
        ("Q8_0", 15),
    ];
    assert_eq!(types, expected.map(|(t, n)| (t.to_owned(), n)).into());
    assert_eq!(sha256(&out), Q4_K_M_SHA256);

    // Every key of the input, with its value; only the file type changes (3 → 15).
    let before = content(&input).metadata;
    assert_eq!(written.metadata.len(), before.len());
    for (key, value) in &before {
        let now = &written.metadata[key];
        if key == "general.file_type" {
            assert_eq!(now.to_u32().unwrap(), 15);
        } else {
            assert_eq!(format!("{now:?}"), format!("{value:?}"), "{key}");
        }
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "only the output is left, no temporary file");
}

#[test]
fn quantize_refuses_broken_files_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(smollm_path()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "these are notes, not a model").unwrap();
    for input in [&truncated, &not_gguf] {
        let out = dir.path().join("out.gguf");
        let run = glassbox()
            .arg("quantize")
            .arg(input)
            .arg(&out)
            .args(["--type", "q8_0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains(&input.display().to_string()), "{stderr}");
        assert!(stderr.contains("not a usable GGUF file"), "{stderr}");
        assert!(!out.exists() && !dir.path().join("out.gguf.tmp").exists());
    }
    // Through the library: a typed error, no panic, nothing written.
    let out = dir.path().join("lib.gguf");
    let err = quantize_file(&truncated, &out, Mixture::Q4KM, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("truncated.gguf"), "{err}");
    assert!(!out.exists());
}

/// Each fixture record: a block's f32 values, then the bytes llama-quantize wrote for them.
#[test]
fn quantize_blocks_like_llama_quantize() {
    for (file, dtype, elems, bytes) in BLOCK_TYPES {
        let fixture = std::fs::read(data(&format!("quantize/{file}.bin"))).unwrap();
        let record = elems * 4 + bytes;
        assert!(!fixture.is_empty() && fixture.len().is_multiple_of(record));
        for (i, record) in fixture.chunks(record).enumerate() {
            let (values, expected) = record.split_at(elems * 4);
            let values: Vec<f32> = values
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let ours = quantize_values(dtype, &values).unwrap();
            assert_eq!(ours, expected, "{file}: record {i}");
        }
    }
}

/// Values as the type stores them, read back by candle's dequantizer.
fn round_trip(dtype: GgmlDType, values: &[f32]) -> Vec<f32> {
    let bytes = quantize_values(dtype, values).unwrap();
    qtensor_from_ggml(dtype, &bytes, vec![values.len()], &Device::Cpu)
        .and_then(|q| q.dequantize(&Device::Cpu))
        .and_then(|t| t.to_vec1())
        .unwrap()
}

/// Gaussian-like weights (sum of uniforms) with a few large outliers, as real matrices have.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let v: f32 = (0..4).map(|_| rng.next_f32() - 0.5).sum();
            if i % 97 == 0 { v * 8.0 } else { v }
        })
        .collect()
}

#[test]
fn quantize_round_trips_within_each_types_precision() {
    // Largest relative RMS error on these weights: what ggml's quantizers give (their bytes, as
    // the fixtures show) with a fifth of room, so a coarser port would fail.
    let bounds = [
        (GgmlDType::Q4_0, 0.16),
        (GgmlDType::Q4_1, 0.11),
        (GgmlDType::Q5_0, 0.08),
        (GgmlDType::Q5_1, 0.054),
        (GgmlDType::Q8_0, 0.01),
        (GgmlDType::Q4K, 0.103),
        (GgmlDType::Q5K, 0.052),
        (GgmlDType::Q6K, 0.03),
        (GgmlDType::F16, 0.00025),
    ];
    let x = weights(256 * 64, 11);
    let energy: f32 = x.iter().map(|v| v * v).sum();
    let mut previous = f32::INFINITY;
    for (dtype, bound) in bounds {
        let y = round_trip(dtype, &x);
        let error: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        let relative = (error / energy).sqrt();
        assert!(relative < bound, "{dtype:?}: relative RMS error {relative}");
        if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K) {
            // More bits, less error.
            assert!(relative < previous, "{dtype:?}");
            previous = relative;
        }
    }
    // Zeros stay exactly zero in every type.
    for (_, dtype, elems, _) in BLOCK_TYPES {
        assert!(
            round_trip(dtype, &vec![0.0; elems])
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}

/// The 32-value types keep every value within one step of its block's f16 scale, and the scale
/// is ggml's: the largest magnitude over -8 (Q4_0), -16 (Q5_0) or 127 (Q8_0), or the range over
/// 15 or 31 above the block's minimum (Q4_1, Q5_1).
#[test]
fn quantize_legacy_scales_are_ggml_s() {
    let half = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let x = weights(32 * 200, 5);
    for (_, dtype, elems, size) in &BLOCK_TYPES[..5] {
        let bytes = quantize_values(*dtype, &x).unwrap();
        let y = round_trip(*dtype, &x);
        for (b, block) in x.chunks(*elems).enumerate() {
            let stored = &bytes[b * size..];
            let d = half(stored);
            let max = block
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let (lo, hi) = block
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            // The scale, and the minimum where the type stores one (right after the scale).
            let (scale, min) = match dtype {
                GgmlDType::Q4_0 => (max / -8.0, None),
                GgmlDType::Q5_0 => (max / -16.0, None),
                GgmlDType::Q8_0 => (max.abs() / 127.0, None),
                GgmlDType::Q4_1 => ((hi - lo) / 15.0, Some(lo)),
                _ => ((hi - lo) / 31.0, Some(lo)),
            };
            let f16 = |v: f32| half::f16::from_f32(v).to_f32();
            assert_eq!(d, f16(scale), "{dtype:?} block {b}");
            if let Some(min) = min {
                assert_eq!(half(&stored[2..]), f16(min), "{dtype:?} block {b}");
            }
            for (v, r) in block.iter().zip(&y[b * elems..]) {
                assert!((v - r).abs() <= d.abs() * 1.01, "{dtype:?}: {v} became {r}");
            }
        }
    }
}
