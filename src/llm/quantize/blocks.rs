//! Block formats: which function writes a run of f32 values as a given ggml type, and the small
//! numeric helpers every quantizer shares. Each helper reproduces ggml's own arithmetic (f32 only,
//! no fused multiply-add, the same order of operations), because the point is to write the same
//! bytes as llama.cpp, not merely a file of the same quality.

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use super::{kquants, legacy};

/// How one ggml type stores values: `elems` values per block of `bytes` bytes, written by
/// `write` (which gets exactly one block of values and one block of output); `halves` are the
/// offsets of the block's f16 fields (scales, minimums).
#[derive(Clone, Copy)]
pub struct BlockFormat {
    pub elems: usize,
    pub bytes: usize,
    write: WriteBlock,
    halves: &'static [usize],
}

/// Writes one block of values as one block of bytes.
type WriteBlock = fn(&[f32], &mut [u8]);

/// The types the quantizer can write; `None` for the others.
pub fn block_format(dtype: GgmlDType) -> Option<BlockFormat> {
    let (elems, bytes, write, halves): (usize, usize, WriteBlock, &[usize]) = match dtype {
        GgmlDType::F16 => (1, 2, write_f16, &[0]),
        GgmlDType::Q4_0 => (32, 18, legacy::q4_0, &[0]),
        GgmlDType::Q4_1 => (32, 20, legacy::q4_1, &[0, 2]),
        GgmlDType::Q5_0 => (32, 22, legacy::q5_0, &[0]),
        GgmlDType::Q5_1 => (32, 24, legacy::q5_1, &[0, 2]),
        GgmlDType::Q8_0 => (32, 34, legacy::q8_0, &[0]),
        GgmlDType::Q4K => (256, 144, kquants::q4_k, &[0, 2]),
        GgmlDType::Q5K => (256, 176, kquants::q5_k, &[0, 2]),
        GgmlDType::Q6K => (256, 210, kquants::q6_k, &[208]),
        _ => return None,
    };
    Some(BlockFormat {
        elems,
        bytes,
        write,
        halves,
    })
}

/// `values` written as `dtype`, as ggml's reference quantizer writes them (no importance matrix).
/// `None` when the type cannot be written or `values` is not a whole number of blocks. Blocks are
/// independent, so they are spread over rayon's threads without changing a byte.
pub fn quantize_values(dtype: GgmlDType, values: &[f32]) -> Option<Vec<u8>> {
    let format = block_format(dtype)?;
    if !values.len().is_multiple_of(format.elems) {
        return None;
    }
    let mut out = vec![0u8; values.len() / format.elems * format.bytes];
    // Enough blocks per task that scheduling costs nothing next to the work.
    let per_task = (4096 / format.elems).max(1);
    values
        .par_chunks(format.elems)
        .zip(out.par_chunks_mut(format.bytes))
        .with_min_len(per_task)
        .for_each(|(block, bytes)| (format.write)(block, bytes));
    Some(out)
}

/// The first block of `bytes` (written as `dtype`) with an infinite or NaN f16 field: values too
/// large for the type, which llama-quantize refuses too (ggml_validate_row_data).
pub fn first_non_finite(dtype: GgmlDType, bytes: &[u8]) -> Option<usize> {
    let format = block_format(dtype)?;
    bytes.chunks(format.bytes).position(|block| {
        format
            .halves
            .iter()
            .any(|&at| !fp16_value([block[at], block[at + 1]]).is_finite())
    })
}

fn write_f16(value: &[f32], out: &mut [u8]) {
    out.copy_from_slice(&fp16(value[0]));
}

/// f32 to IEEE half, round to nearest even (ggml's GGML_FP32_TO_FP16), little-endian.
pub fn fp16(value: f32) -> [u8; 2] {
    half::f16::from_f32(value).to_bits().to_le_bytes()
}

/// The f32 a stored half stands for (exact).
pub fn fp16_value(bytes: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bytes)).to_f32()
}

/// ggml's `nearest_int`: adding 1.5·2²³ leaves the rounded integer (ties to even) in the low
/// mantissa bits. Valid for |value| < 2²², and deterministic (if meaningless) beyond, as in ggml.
pub fn nearest_int(value: f32) -> i32 {
    let bits = (value + 12_582_912.0).to_bits();
    (bits & 0x007f_ffff) as i32 - 0x0040_0000
}

/// The value of largest magnitude, the first one on ties (ggml's `amax`/`max` scan).
pub fn signed_absmax(values: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in values {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}
