//! Known models (the TOML files in `models/`, built into the binary), where they live on disk,
//! and downloading them from the Hugging Face Hub into the standard Hugging Face cache.

pub mod active;
mod download;
pub mod fit;

pub use download::{DownloadProgress, Hub};

use crate::embed::{EmbedderOptions, ModelError, Pooling};
use std::path::PathBuf;

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Embedder,
    Reranker,
    Llm,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ModelFile {
    pub name: String,
    pub sha256: String,
    pub size: Option<u64>,
}

/// One known model, as described by its TOML file.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub id: String,
    pub role: Role,
    #[serde(default)]
    pub default: bool,
    pub repo: String,
    pub revision: String,
    pub architecture: String,
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    #[serde(default)]
    pub query_prefix: String,
    #[serde(default)]
    pub passage_prefix: String,
    pub max_tokens: usize,
    pub dimensions: usize,
    /// How the weights are stored: llama.cpp's name of a GGUF's file type (`Q4_K_M`), or the
    /// dtype of a safetensors file (`F32`).
    pub quantization: Option<String>,
    pub languages: Vec<String>,
    pub license: String,
    /// An LLM's hyper-parameters beyond `max_tokens` (context) and `dimensions` (width).
    pub shape: Option<LlmShape>,
    pub files: Vec<ModelFile>,
}

/// An LLM's architecture as its published config.json gives it, so that a file of its real
/// shapes can be built without downloading it (tests/it/model_catalogue.rs).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmShape {
    pub layers: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// The output projection is the embedding table (no `output.weight` in the GGUF).
    pub tied_output: bool,
    /// `tokenizer.ggml.pre` of the GGUF (llama.cpp's converter names it).
    pub pre_tokenizer: String,
    pub rope_scaling: Option<Llama3RopeScaling>,
}

/// Llama 3.1+'s RoPE scaling (`rope_type = "llama3"`), which llama.cpp's converter turns into a
/// `rope_freqs.weight` tensor of per-frequency factors.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_context: usize,
}

impl ModelSpec {
    /// Total download size in bytes (files of unknown size count as zero).
    pub fn size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    pub fn embedder_options(&self) -> EmbedderOptions {
        EmbedderOptions {
            pooling: self.pooling,
            normalize: self.normalize,
            max_tokens: Some(self.max_tokens),
            query_prefix: self.query_prefix.clone(),
            passage_prefix: self.passage_prefix.clone(),
        }
    }
}

const REGISTRY: &[&str] = &[
    include_str!("../../models/multilingual-e5-small.toml"),
    include_str!("../../models/all-minilm-l6-v2.toml"),
    include_str!("../../models/bge-m3.toml"),
    include_str!("../../models/mmarco-mminilmv2-l12.toml"),
    include_str!("../../models/ms-marco-minilm-l6-v2.toml"),
    include_str!("../../models/bge-reranker-v2-m3.toml"),
    include_str!("../../models/qwen2.5-1.5b-instruct.toml"),
    include_str!("../../models/qwen2.5-0.5b-instruct.toml"),
    include_str!("../../models/smollm2-135m-instruct.toml"),
    include_str!("../../models/smollm2-360m-instruct.toml"),
    include_str!("../../models/smollm2-1.7b-instruct.toml"),
    include_str!("../../models/llama-3.2-1b-instruct.toml"),
];

/// Every known model. The TOML files are checked by a test, so parsing cannot fail here.
pub fn known() -> Vec<ModelSpec> {
    REGISTRY
        .iter()
        .filter_map(|text| toml::from_str(text).ok())
        .collect()
}

/// A known model by id (case-insensitive).
pub fn find(id: &str) -> Result<ModelSpec, ModelError> {
    known()
        .into_iter()
        .find(|m| m.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| ModelError::UnknownModel(id.to_owned()))
}

/// The default model of a role.
pub fn default_for(role: Role) -> Option<ModelSpec> {
    known().into_iter().find(|m| m.role == role && m.default)
}

/// A model chosen by the user: a folder on disk, or a known id resolved through the cache.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The id vectors are stored under: the model id, or `path:` and the folder.
    pub id: String,
    pub dir: PathBuf,
    pub spec: Option<ModelSpec>,
}

/// Resolves `PATH|ID`: an existing folder is used as it is, a file stands for the folder it is in
/// (say, a model.safetensors); otherwise a known id whose files are in the Hugging Face cache.
pub fn resolve(choice: &str, hub: &Hub) -> Result<Resolved, ModelError> {
    let mut path = PathBuf::from(choice);
    if path.is_file() {
        path = path.parent().map(PathBuf::from).unwrap_or_default();
    }
    if path.is_dir() {
        let dir = std::fs::canonicalize(&path).unwrap_or(path);
        return Ok(Resolved {
            id: format!("path:{}", dir.display()),
            dir,
            spec: None,
        });
    }
    let spec = find(choice)?;
    let dir = hub.cached_dir(&spec).ok_or_else(|| ModelError::Missing {
        path: hub.snapshot_dir(&spec).join(&spec.files[0].name),
    })?;
    Ok(Resolved {
        id: spec.id.clone(),
        dir,
        spec: Some(spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_file_stands_for_its_folder_and_unknown_ids_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
        let hub = Hub::new(None, dir.path());
        let file = dir.path().join("model.safetensors");
        let resolved = resolve(file.to_str().unwrap(), &hub).unwrap();
        assert_eq!(resolved.dir, std::fs::canonicalize(dir.path()).unwrap());
        assert!(resolved.id.starts_with("path:"));
        let err = resolve("no/such-model", &hub).unwrap_err();
        assert!(err.to_string().contains("glassbox models list"), "{err}");
        let missing = resolve("BAAI/bge-m3", &hub).unwrap_err();
        assert!(
            missing.to_string().contains("glassbox models download"),
            "{missing}"
        );
    }

    #[test]
    fn every_model_file_parses_and_defaults_are_unique() {
        for text in REGISTRY {
            let spec: ModelSpec = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(!spec.files.is_empty());
            assert!(
                spec.files.iter().all(|f| f.sha256.len() == 64),
                "{}",
                spec.id
            );
            assert_eq!(spec.revision.len(), 40, "{}", spec.id);
            assert!(spec.quantization.is_some(), "{}", spec.id);
            // Every LLM can be rebuilt from its shape (tests/it/model_catalogue.rs); others have
            // none.
            assert_eq!(spec.shape.is_some(), spec.role == Role::Llm, "{}", spec.id);
        }
        assert_eq!(known().len(), REGISTRY.len());
        for role in [Role::Embedder, Role::Reranker, Role::Llm] {
            assert_eq!(
                known()
                    .iter()
                    .filter(|m| m.role == role && m.default)
                    .count(),
                1
            );
        }
        assert_eq!(
            default_for(Role::Embedder).unwrap().id,
            "intfloat/multilingual-e5-small"
        );
        assert_eq!(
            default_for(Role::Reranker).unwrap().id,
            "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1"
        );
    }
}
