//! Writing GGUF files as ggml's writer does (gguf.cpp): version 3, the metadata in order, tensor
//! descriptions with offsets rounded up to the alignment, the header padded to the alignment and
//! each tensor's data followed by zeros up to it. Metadata is carried over as raw bytes read in
//! file order (`read_metadata`), so a value is copied exactly, whatever its type.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use candle_core::quantized::GgmlDType;

/// GGUF's default alignment, used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One metadata entry: key, GGUF value type and the value's bytes as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataEntry {
    pub key: String,
    pub value_type: u32,
    pub value: Vec<u8>,
}

impl MetadataEntry {
    pub fn u32(key: &str, value: u32) -> Self {
        MetadataEntry {
            key: key.to_owned(),
            value_type: TYPE_U32,
            value: value.to_le_bytes().to_vec(),
        }
    }

    /// The value, when it is a u32.
    pub fn as_u32(&self) -> Option<u32> {
        let bytes: [u8; 4] = self.value.as_slice().try_into().ok()?;
        (self.value_type == TYPE_U32).then(|| u32::from_le_bytes(bytes))
    }
}

const TYPE_U32: u32 = 4;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

/// The metadata of a GGUF file (version 2 or 3), in file order. Errors are described in words
/// (the caller names the file); lengths are checked against the file's size before allocating.
pub fn read_metadata(path: &Path) -> Result<Vec<MetadataEntry>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Reader {
        inner: BufReader::new(file),
        size,
    };
    if r.take(4)? != b"GGUF" {
        return Err("it does not start with the GGUF magic".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported (2 or 3)"));
    }
    let _tensor_count = r.u64()?;
    let count = r.u64()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let key_len = r.u64()?;
        let key = String::from_utf8(r.take(key_len)?)
            .map_err(|_| "a metadata key is not UTF-8".to_string())?;
        let value_type = r.u32()?;
        let mut value = Vec::new();
        r.value(value_type, &mut value, 0)?;
        entries.push(MetadataEntry {
            key,
            value_type,
            value,
        });
    }
    Ok(entries)
}

/// A reader that refuses lengths longer than the file.
struct Reader {
    inner: BufReader<File>,
    size: u64,
}

impl Reader {
    fn take(&mut self, len: u64) -> Result<Vec<u8>, String> {
        if len > self.size {
            return Err(format!(
                "a length of {len} bytes exceeds the file's {} bytes",
                self.size
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut bytes)
            .map_err(|_| "the metadata ends before the file says it does".to_string())?;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(std::array::from_fn(|i| b[i])))
    }

    /// Appends one value of `value_type` to `out`, as stored (arrays recursively).
    fn value(&mut self, value_type: u32, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
        let fixed = match value_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => 0,
        };
        if fixed > 0 {
            out.extend(self.take(fixed)?);
        } else if value_type == TYPE_STRING {
            let len = self.u64()?;
            out.extend(len.to_le_bytes());
            out.extend(self.take(len)?);
        } else if value_type == TYPE_ARRAY && depth < 8 {
            let element_type = self.u32()?;
            let count = self.u64()?;
            // Every element takes at least a byte, so a longer array cannot be real (and an
            // array of empty arrays would otherwise loop for as long as it claims).
            if count > self.size {
                return Err(format!("an array of {count} values exceeds the file"));
            }
            out.extend(element_type.to_le_bytes());
            out.extend(count.to_le_bytes());
            for _ in 0..count {
                self.value(element_type, out, depth + 1)?;
            }
        } else {
            return Err(format!("unknown metadata value type {value_type}"));
        }
        Ok(())
    }
}

/// A tensor as the header describes it: name, ggml dimensions (innermost first), type.
pub struct TensorEntry {
    pub name: String,
    pub ne: Vec<usize>,
    pub dtype: GgmlDType,
}

/// Bytes of data of a tensor of `dtype` with dimensions `ne` (whole blocks).
pub fn data_size(ne: &[usize], dtype: GgmlDType) -> u64 {
    let elems: usize = ne.iter().product();
    (elems / dtype.block_size() * dtype.type_size()) as u64
}

/// Writes the header (metadata, tensor descriptions, padding); the caller then writes the
/// tensors in the same order, each followed by `padding(size, alignment)` zero bytes, which is
/// where the header says they are.
pub fn write_header<'a>(
    out: &mut impl Write,
    metadata: &[MetadataEntry],
    tensors: impl ExactSizeIterator<Item = &'a TensorEntry>,
    alignment: u64,
) -> io::Result<()> {
    // The header is built in memory (a few megabytes at most: the vocabulary) to know its
    // length for the padding.
    let mut header = Vec::new();
    let mut put = |bytes: &[u8]| header.extend_from_slice(bytes);
    put(b"GGUF");
    put(&3u32.to_le_bytes());
    put(&(tensors.len() as u64).to_le_bytes());
    put(&(metadata.len() as u64).to_le_bytes());
    for entry in metadata {
        put(&string(&entry.key));
        put(&entry.value_type.to_le_bytes());
        put(&entry.value);
    }
    let mut offset = 0u64;
    for tensor in tensors {
        put(&string(&tensor.name));
        put(&(tensor.ne.len() as u32).to_le_bytes());
        for &n in &tensor.ne {
            put(&(n as u64).to_le_bytes());
        }
        put(&ggml_type_id(tensor.dtype).to_le_bytes());
        put(&offset.to_le_bytes());
        let size = data_size(&tensor.ne, tensor.dtype);
        offset += size + padding(size, alignment);
    }
    let pad = padding(header.len() as u64, alignment);
    header.resize(header.len() + pad as usize, 0);
    out.write_all(&header)
}

/// Zero bytes that bring `len` up to a multiple of `alignment`.
pub fn padding(len: u64, alignment: u64) -> u64 {
    len.next_multiple_of(alignment) - len
}

fn string(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text.as_bytes());
    bytes
}

/// ggml's number for a type (`enum ggml_type`).
pub fn ggml_type_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}
