//! Reading GGUF files: metadata and raw tensor bytes, checked against the file size up front so
//! that a truncated download fails at open with a clear message, not halfway through loading.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use super::error::{LlmError, LlmResult};

/// An opened GGUF file: its metadata and where each tensor lies.
pub struct Gguf {
    path: PathBuf,
    content: Content,
    file: File,
}

/// One tensor as stored: type, shape (outermost first, as candle orders it) and bytes.
pub struct RawTensor {
    pub dtype: GgmlDType,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Gguf {
    pub fn open(path: &Path) -> LlmResult<Self> {
        let io = |source| LlmError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file).map_err(|e| corrupt(path, e.to_string()))?;
        let size = file.metadata().map_err(io)?.len();
        for (name, info) in &content.tensor_infos {
            let bytes = tensor_size(info.ggml_dtype, info.shape.elem_count())
                .ok_or_else(|| corrupt(path, format!("tensor `{name}` has a partial block")))?;
            let end = content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|e| e.checked_add(bytes as u64))
                .unwrap_or(u64::MAX);
            if end > size {
                return Err(corrupt(
                    path,
                    format!("tensor `{name}` ends at byte {end} but the file has {size} bytes"),
                ));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            content,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }

    /// An integer of any GGUF integer type.
    pub fn int(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::U8(v) => Some(*v as u64),
            Value::U16(v) => Some(*v as u64),
            Value::U32(v) => Some(*v as u64),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn float(&self, key: &str) -> Option<f32> {
        match self.get(key)? {
            Value::F32(v) => Some(*v),
            Value::F64(v) => Some(*v as f32),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn array(&self, key: &str) -> Option<&Vec<Value>> {
        self.get(key).and_then(|v| v.to_vec().ok())
    }

    /// A required integer; the error says which key and what the file was to be used for.
    pub fn require_int(&self, key: &str, purpose: &'static str) -> LlmResult<u64> {
        self.int(key).ok_or_else(|| self.missing(key, purpose))
    }

    pub fn missing(&self, what: &str, purpose: &'static str) -> LlmError {
        LlmError::MissingMetadata {
            path: self.path.clone(),
            what: what.to_owned(),
            purpose,
        }
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &String> {
        self.content.tensor_infos.keys()
    }

    /// A tensor's type and shape (outermost first), without reading its bytes.
    pub fn tensor_layout(&self, name: &str) -> Option<(GgmlDType, &[usize])> {
        let info = self.content.tensor_infos.get(name)?;
        Some((info.ggml_dtype, info.shape.dims()))
    }

    /// The raw bytes of a tensor.
    pub fn raw(&mut self, name: &str) -> LlmResult<RawTensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| LlmError::MissingTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        let len = tensor_size(info.ggml_dtype, info.shape.elem_count()).unwrap_or(0);
        let mut bytes = vec![0u8; len];
        let start = self.content.tensor_data_offset + info.offset;
        let (dtype, dims) = (info.ggml_dtype, info.shape.dims().to_vec());
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|source| LlmError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(RawTensor { dtype, dims, bytes })
    }

    /// A tensor as candle's quantized tensor (for the types our own kernels do not cover).
    pub fn qtensor(&mut self, name: &str) -> LlmResult<QTensor> {
        let path = self.path.clone();
        self.content
            .tensor(&mut self.file, name, &candle_core::Device::Cpu)
            .map_err(|e| corrupt(&path, format!("tensor `{name}`: {e}")))
    }
}

fn corrupt(path: &Path, reason: String) -> LlmError {
    LlmError::Corrupt {
        path: path.to_owned(),
        reason,
    }
}

fn tensor_size(dtype: GgmlDType, elems: usize) -> Option<usize> {
    let block = dtype.block_size();
    elems
        .is_multiple_of(block)
        .then(|| elems / block * dtype.type_size())
}
