//! The token table of a GGUF vocabulary: each token's text, score and kind, and the text → id
//! map every tokenizer looks pieces up in (a hash map: Gemma 3 has 262,144 tokens).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::llm::error::{LlmError, LlmResult};
use crate::llm::gguf::Gguf;

/// What a token is, from `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(value: i32) -> Self {
        match value {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// Texts that end a turn or fill in the middle. llama.cpp makes these control tokens whatever
/// type the file gives them (some converters mark them normal), so they are matched as special
/// text only when special text is parsed, and never come out of ordinary text.
pub const CONTROL_BY_TEXT: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<PAD>",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<|file_sep|>",
];

pub struct Vocab {
    /// Each token's text as the file stores it (SentencePiece's `▁`, GPT-2's byte alphabet).
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
    pub kinds: Vec<TokenKind>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    pub fn from_gguf(gguf: &Gguf) -> LlmResult<Self> {
        let texts = string_array(gguf, "tokenizer.ggml.tokens")?;
        // Scores are f32 (i32 in some files); a missing one counts as 0, as in llama.cpp.
        let scores = per_token(gguf, "tokenizer.ggml.scores", texts.len(), |v| match v {
            Value::F32(f) => Some(*f),
            Value::I32(i) => Some(*i as f32),
            _ => None,
        });
        let types = per_token(gguf, "tokenizer.ggml.token_type", texts.len(), |v| {
            v.to_i32().ok()
        });
        let kinds = texts
            .iter()
            .zip(&types)
            .map(|(text, ty)| match ty {
                _ if CONTROL_BY_TEXT.contains(&text.as_str()) => TokenKind::Control,
                Some(t) => TokenKind::from_gguf(*t),
                None => TokenKind::Normal,
            })
            .collect();
        // A text given twice maps to its last id, as llama.cpp's map does.
        let ids = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ok(Self {
            scores: scores.into_iter().map(|s| s.unwrap_or(0.0)).collect(),
            texts,
            kinds,
            ids,
        })
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }
}

#[cfg(test)]
impl Vocab {
    /// Normal tokens with these scores, ids in order.
    pub fn from_pieces(pieces: &[(&str, f32)]) -> Self {
        let mut vocab = Self::from_kinds(
            &pieces
                .iter()
                .map(|&(t, _)| (t, TokenKind::Normal))
                .collect::<Vec<_>>(),
        );
        vocab.scores = pieces.iter().map(|&(_, s)| s).collect();
        vocab
    }

    /// Tokens of these kinds, scored 0, ids in order.
    pub fn from_kinds(tokens: &[(&str, TokenKind)]) -> Self {
        Self {
            texts: tokens.iter().map(|&(t, _)| t.to_owned()).collect(),
            scores: vec![0.0; tokens.len()],
            kinds: tokens.iter().map(|&(_, k)| k).collect(),
            ids: tokens
                .iter()
                .enumerate()
                .map(|(i, &(t, _))| (t.to_owned(), i as u32))
                .collect(),
        }
    }
}

/// One value per token from a metadata array: `None` where it is short or of another type.
fn per_token<T>(
    gguf: &Gguf,
    key: &str,
    count: usize,
    read: fn(&Value) -> Option<T>,
) -> Vec<Option<T>> {
    let values = gguf.array(key).map(Vec::as_slice).unwrap_or_default();
    (0..count).map(|i| values.get(i).and_then(read)).collect()
}

pub fn string_array(gguf: &Gguf, key: &str) -> LlmResult<Vec<String>> {
    let values = gguf
        .array(key)
        .ok_or_else(|| gguf.missing(key, "a tokenizer"))?;
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(LlmError::Tokenizer(format!(
                "{}: `{key}` holds a non-string value; the vocabulary is damaged, convert the model again",
                gguf.path().display()
            ))),
        })
        .collect()
}
