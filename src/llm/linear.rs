//! Linear layers: our kernels for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, Q4_K/Q5_K/Q6_K and float matrices
//! (F16/BF16/F32), candle's QMatMul for every other GGUF type (named by `candle_types`, so the
//! engine can say which run slower).

use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};

use super::error::{LlmError, LlmResult};
use super::floatmm::FWeight;
use super::gguf::Gguf;
use super::quant::QWeight;

pub enum Linear {
    Own(QWeight),
    Float(FWeight),
    Candle {
        mm: QMatMul,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        bytes: usize,
    },
    /// Several layers applied to the same input, outputs side by side (when they cannot be
    /// stacked into one matrix because their types differ).
    Concat(Vec<Linear>),
}

impl Linear {
    pub fn load(g: &mut Gguf, name: &str) -> LlmResult<Self> {
        let raw = g.raw(name)?;
        let (rows, cols) = match raw.dims.as_slice() {
            [r, c] => (*r, *c),
            _ => {
                return Err(LlmError::Corrupt {
                    path: g.path().to_owned(),
                    reason: format!("tensor `{name}` is not a matrix: {:?}", raw.dims),
                });
            }
        };
        if let Some(w) = QWeight::from_bytes(raw.dtype, rows, cols, &raw.bytes) {
            return Ok(Linear::Own(w));
        }
        if let Some(w) = FWeight::from_bytes(raw.dtype, rows, cols, &raw.bytes) {
            return Ok(Linear::Float(w));
        }
        if matches!(raw.dtype, GgmlDType::Q8_1 | GgmlDType::Q8K) {
            return Err(LlmError::UnsupportedQuant {
                path: g.path().to_owned(),
                tensor: name.to_owned(),
                dtype: format!("{:?}", raw.dtype),
            });
        }
        let bytes = raw.bytes.len();
        let q = g.qtensor(name)?;
        Ok(Linear::Candle {
            mm: QMatMul::from_qtensor(q)?,
            dtype: raw.dtype,
            rows,
            cols,
            bytes,
        })
    }

    /// One layer computing all of `parts` (stacked when the kernels allow it).
    pub fn fuse(parts: Vec<Linear>) -> Linear {
        let floats: Vec<&FWeight> = parts
            .iter()
            .filter_map(|p| match p {
                Linear::Float(w) => Some(w),
                _ => None,
            })
            .collect();
        if floats.len() == parts.len()
            && let Some(w) = FWeight::stack(&floats)
        {
            return Linear::Float(w);
        }
        let own: Vec<&QWeight> = parts
            .iter()
            .filter_map(|p| match p {
                Linear::Own(w) => Some(w),
                _ => None,
            })
            .collect();
        if own.len() == parts.len()
            && let Some(w) = QWeight::stack(&own)
        {
            return Linear::Own(w);
        }
        Linear::Concat(parts)
    }

    pub fn rows(&self) -> usize {
        match self {
            Linear::Own(w) => w.rows,
            Linear::Float(w) => w.rows,
            Linear::Candle { rows, .. } => *rows,
            Linear::Concat(p) => p.iter().map(Linear::rows).sum(),
        }
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        match self {
            Linear::Own(w) => w.cols,
            Linear::Float(w) => w.cols,
            Linear::Candle { cols, .. } => *cols,
            Linear::Concat(p) => p.first().map_or(0, Linear::cols),
        }
    }

    /// The GGUF types of this layer that run on candle's kernels instead of ours.
    pub fn candle_types(&self) -> Vec<GgmlDType> {
        match self {
            Linear::Own(_) | Linear::Float(_) => Vec::new(),
            Linear::Candle { dtype, .. } => vec![*dtype],
            Linear::Concat(p) => p.iter().flat_map(Linear::candle_types).collect(),
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Linear::Own(w) => w.bytes(),
            Linear::Float(w) => w.bytes(),
            Linear::Candle { bytes, .. } => *bytes,
            Linear::Concat(p) => p.iter().map(Linear::bytes).sum(),
        }
    }

    /// `x` is `m x cols`; returns `m x rows`.
    pub fn forward(&self, x: &[f32], m: usize) -> LlmResult<Vec<f32>> {
        match self {
            Linear::Own(w) => {
                let mut out = vec![0f32; m * w.rows];
                w.matmul(x, m, &mut out);
                Ok(out)
            }
            Linear::Float(w) => {
                let mut out = vec![0f32; m * w.rows];
                w.matmul(x, m, &mut out);
                Ok(out)
            }
            Linear::Candle { mm, cols, .. } => {
                let t = Tensor::from_slice(x, (m, *cols), &Device::Cpu)?;
                Ok(mm.forward(&t)?.flatten_all()?.to_vec1()?)
            }
            Linear::Concat(parts) => {
                let outs = parts
                    .iter()
                    .map(|p| p.forward(x, m))
                    .collect::<LlmResult<Vec<_>>>()?;
                let mut out = Vec::with_capacity(m * self.rows());
                for i in 0..m {
                    for (p, o) in parts.iter().zip(&outs) {
                        out.extend_from_slice(&o[i * p.rows()..(i + 1) * p.rows()]);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// The token embedding table: rows looked up by id (our blocks or float rows, or candle for
/// other types).
pub enum Embedding {
    Own(QWeight),
    Float(FWeight),
    Candle {
        mm: QMatMul,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
    },
}

impl Embedding {
    pub fn load(g: &mut Gguf, name: &str) -> LlmResult<Self> {
        match Linear::load(g, name)? {
            Linear::Own(w) => Ok(Embedding::Own(w)),
            Linear::Float(w) => Ok(Embedding::Float(w)),
            other => Ok(Embedding::Candle {
                mm: QMatMul::from_qtensor(g.qtensor(name)?)?,
                dtype: other.candle_types()[0],
                rows: other.rows(),
                cols: other.cols(),
            }),
        }
    }

    pub fn candle_types(&self) -> Vec<GgmlDType> {
        match self {
            Embedding::Own(_) | Embedding::Float(_) => Vec::new(),
            Embedding::Candle { dtype, .. } => vec![*dtype],
        }
    }

    /// (vocabulary rows, width).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Embedding::Own(w) => (w.rows, w.cols),
            Embedding::Float(w) => (w.rows, w.cols),
            Embedding::Candle { rows, cols, .. } => (*rows, *cols),
        }
    }

    pub fn row(&self, id: u32, out: &mut [f32]) -> LlmResult<()> {
        match self {
            Embedding::Own(w) => w.row(id as usize, out),
            Embedding::Float(w) => w.row(id as usize, out),
            Embedding::Candle { mm, .. } => {
                let ids = Tensor::new(&[id], &Device::Cpu)?;
                let row: Vec<f32> = mm.embedding(&ids)?.flatten_all()?.to_vec1()?;
                out.copy_from_slice(&row);
            }
        }
        Ok(())
    }
}
