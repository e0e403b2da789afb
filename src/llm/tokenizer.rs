//! The model's tokenizer, built from the GGUF vocabulary (or a `tokenizer.json` beside the file).
//!
//! GGUF files name their pre-tokenizer (`tokenizer.ggml.pre`); getting it exactly right matters:
//! this engine must reproduce llama.cpp's token ids, because small models answer differently when
//! a single prompt token differs. Every token's raw bytes are kept so that decoding and streaming
//! never depend on lossy string conversion.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;

/// The regex llama 3 and Qwen2 use to split text before byte-level BPE; `DIGITS` stands for
/// how many digits make one piece.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}DIGITS| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

pub struct LlmTokenizer {
    inner: Tokenizer,
    /// The bytes each token stands for (special tokens: their text).
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Extra end-of-turn tokens (for example `<|im_end|>`, `<|eot_id|>`).
    pub stop_ids: Vec<u32>,
    pub add_bos: bool,
}

impl LlmTokenizer {
    /// From the GGUF metadata, or from `tokenizer.json` in the same folder when there is one.
    pub fn from_gguf(gguf: &Gguf) -> LlmResult<Self> {
        let path = gguf.path();
        let beside = path.with_file_name("tokenizer.json");
        let tokens = string_array(gguf, "tokenizer.ggml.tokens")?;
        let inner = if beside.is_file() {
            Tokenizer::from_file(&beside).map_err(|e| tok_err(&beside, e))?
        } else {
            build_from_gguf(gguf, &tokens)?
        };
        let types: Vec<i32> = gguf
            .array("tokenizer.ggml.token_type")
            .map(|a| a.iter().map(|v| v.to_i32().unwrap_or(1)).collect())
            .unwrap_or_default();
        let special: Vec<bool> = (0..tokens.len())
            .map(|i| matches!(types.get(i), Some(&TOKEN_CONTROL)))
            .collect();
        let byte_level = tokens.iter().any(|t| t.contains('Ġ'));
        let bytes = tokens
            .iter()
            .zip(&special)
            .map(|(t, &s)| token_bytes(t, s, byte_level))
            .collect();
        let model = gguf.string("tokenizer.ggml.model").unwrap_or("gpt2");
        let id = |key: &str| gguf.int(key).map(|v| v as u32);
        let eos = id("tokenizer.ggml.eos_token_id");
        let stop_ids = [
            "<|im_end|>",
            "<|eot_id|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<|eom_id|>",
        ]
        .iter()
        .filter_map(|s| tokens.iter().position(|t| t == s).map(|i| i as u32))
        .filter(|&i| Some(i) != eos)
        .collect();
        Ok(Self {
            inner,
            bytes,
            special,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos,
            stop_ids,
            add_bos: gguf
                .bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(model == "llama"),
        })
    }

    /// Token ids of `text`. Special-token text such as `<|im_start|>` becomes its token only
    /// when `parse_special` is set, so that documents cannot inject chat-control tokens.
    pub fn encode(&self, text: &str, parse_special: bool) -> LlmResult<Vec<u32>> {
        if !parse_special {
            return self.encode_plain(text);
        }
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn encode_plain(&self, text: &str) -> LlmResult<Vec<u32>> {
        // Split around special-token text and encode each piece on its own, so that its
        // characters are tokenized as ordinary text.
        let mut ids = Vec::new();
        let mut rest = text;
        while let Some((at, len)) = self.find_special(rest) {
            // Cut the special text in two: neither half matches a special token.
            let cut = (at + len / 2..)
                .find(|&i| rest.is_char_boundary(i))
                .unwrap_or(at);
            ids.extend(self.encode(&rest[..cut], true)?);
            rest = &rest[cut..];
        }
        ids.extend(self.encode(rest, true)?);
        Ok(ids)
    }

    fn find_special(&self, text: &str) -> Option<(usize, usize)> {
        self.special
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s)
            .filter_map(|(i, _)| {
                let t = std::str::from_utf8(&self.bytes[i]).ok()?;
                (t.len() > 1).then(|| text.find(t).map(|at| (at, t.len())))?
            })
            .min()
    }

    /// `text` with any special-token text (such as `<|im_end|>`) defused by replacing its `<`
    /// with `‹`, so that document text cannot end a chat turn or open a new one.
    pub fn neutralize(&self, text: &str) -> String {
        let mut out = text.to_owned();
        while let Some((at, _)) = self.find_special(&out) {
            let first = out[at..].chars().next().map_or(1, char::len_utf8);
            out.replace_range(at..at + first, "‹");
        }
        out
    }

    /// Ids with BOS prepended when the model's metadata asks for it.
    /// Templates that print the BOS text themselves (Llama 3) are not given a second one.
    pub fn encode_prompt(&self, text: &str) -> LlmResult<Vec<u32>> {
        let mut ids = self.encode(text, true)?;
        if self.add_bos
            && let Some(bos) = self.bos
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// The bytes a token stands for (may be part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], |b| b.as_slice())
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether generation ends at this token.
    pub fn is_stop(&self, id: u32) -> bool {
        Some(id) == self.eos || self.stop_ids.contains(&id)
    }

    /// The text of `ids`; special tokens are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| !(skip_special && self.is_special(id)))
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A display form of one token: its text, or `<0xE3>` for a byte that is part of a character.
    pub fn piece(&self, id: u32) -> String {
        let bytes = self.token_bytes(id);
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => bytes.iter().map(|b| format!("<0x{b:02X}>")).collect(),
        }
    }
}

fn build_from_gguf(gguf: &Gguf, tokens: &[String]) -> LlmResult<Tokenizer> {
    let path = gguf.path();
    let model = gguf.string("tokenizer.ggml.model").unwrap_or("gpt2");
    let mut tokenizer = match model {
        "gpt2" => {
            let merges = string_array(gguf, "tokenizer.ggml.merges")?
                .into_iter()
                .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
                .collect();
            let vocab: tokenizers::models::bpe::Vocab = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i as u32))
                .collect();
            let bpe = BPE::builder()
                .vocab_and_merges(vocab, merges)
                .build()
                .map_err(|e| tok_err(path, e))?;
            let mut t = Tokenizer::new(bpe);
            t.with_pre_tokenizer(Some(bpe_pre_tokenizer(gguf.string("tokenizer.ggml.pre"))?));
            t.with_decoder(Some(ByteLevel::default()));
            t
        }
        "llama" => {
            let scores = gguf
                .array("tokenizer.ggml.scores")
                .ok_or_else(|| gguf.missing("tokenizer.ggml.scores", "a tokenizer"))?;
            let vocab = tokens
                .iter()
                .zip(scores)
                .map(|(t, s)| (t.clone(), s.to_f32().unwrap_or(0.0) as f64))
                .collect();
            let unk = gguf
                .int("tokenizer.ggml.unknown_token_id")
                .map(|v| v as usize);
            let unigram = Unigram::from(vocab, unk, true).map_err(|e| tok_err(path, e))?;
            let mut t = Tokenizer::new(unigram);
            let prepend = match gguf.bool("tokenizer.ggml.add_space_prefix") {
                Some(false) => PrependScheme::Never,
                _ => PrependScheme::First,
            };
            t.with_pre_tokenizer(Some(Metaspace::new('▁', prepend, false)));
            t
        }
        other => {
            return Err(LlmError::Tokenizer(format!(
                "{}: tokenizer model `{other}` is not supported (gpt2 BPE and llama SentencePiece are)",
                path.display()
            )));
        }
    };
    let types = gguf.array("tokenizer.ggml.token_type");
    let special: Vec<AddedToken> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let ty = types.and_then(|a| a.get(*i)).and_then(|v| v.to_i32().ok());
            matches!(ty, Some(TOKEN_CONTROL | TOKEN_USER_DEFINED))
        })
        .map(|(_, t)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

/// The pre-tokenizer a GGUF's `tokenizer.ggml.pre` names (llama.cpp's presets).
fn bpe_pre_tokenizer(pre: Option<&str>) -> LlmResult<PreTokenizerWrapper> {
    let byte_level = |regex| ByteLevel::new(false, true, regex).into();
    let split = |digits: &str| -> LlmResult<PreTokenizerWrapper> {
        let pattern = SplitPattern::Regex(LLAMA3_SPLIT.replace("DIGITS", digits));
        Split::new(pattern, SplitDelimiterBehavior::Isolated, false)
            .map(Into::into)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))
    };
    Ok(match pre.unwrap_or("default") {
        // SmolLM: every digit alone, then GPT-2's byte-level split (no prefix space).
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into(),
        "llama3" | "llama-bpe" | "smaug-bpe" => {
            Sequence::new(vec![split("{1,3}")?, byte_level(false)]).into()
        }
        "qwen2" | "deepseek-r1-qwen" => Sequence::new(vec![split("")?, byte_level(false)]).into(),
        _ => byte_level(true),
    })
}

/// GPT-2's byte-level alphabet maps each byte to a printable character; this is its inverse.
fn byte_level_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut next = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + next);
            next += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| char::from_u32(c).map(|c| (c, b as u8)))
        .collect()
}

fn token_bytes(token: &str, special: bool, byte_level: bool) -> Vec<u8> {
    thread_local! {
        static DECODER: HashMap<char, u8> = byte_level_decoder();
    }
    if special {
        return token.as_bytes().to_vec();
    }
    if byte_level {
        return DECODER.with(|d| {
            token
                .chars()
                .flat_map(|c| match d.get(&c) {
                    Some(&b) => vec![b],
                    None => c.to_string().into_bytes(),
                })
                .collect()
        });
    }
    // SentencePiece: `▁` is a space and `<0xNN>` a raw byte.
    if let Some(hex) = token.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'))
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return vec![b];
    }
    token.replace('▁', " ").into_bytes()
}

fn string_array(gguf: &Gguf, key: &str) -> LlmResult<Vec<String>> {
    let values = gguf
        .array(key)
        .ok_or_else(|| gguf.missing(key, "a tokenizer"))?;
    Ok(values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            _ => String::new(),
        })
        .collect())
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Tokenizer(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn split(pre: &str, text: &str) -> Vec<String> {
        let p = bpe_pre_tokenizer(Some(pre)).unwrap();
        let mut s = PreTokenizedString::from(text);
        p.pre_tokenize(&mut s).unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(t, _, _)| t.to_owned())
            .collect()
    }

    #[test]
    fn pre_tokenizers_group_digits_as_their_models_do() {
        assert_eq!(split("llama3", "n=12345"), ["n", "=", "123", "45"]);
        assert_eq!(
            split("qwen2", "n=12345"),
            ["n", "=", "1", "2", "3", "4", "5"]
        );
        assert_eq!(split("smollm", "n 12"), ["n", "Ġ", "1", "2"]);
        assert_eq!(split("gpt2", "it's 12"), ["it", "'s", "Ġ12"]);
    }

    #[test]
    fn byte_level_tokens_map_back_to_their_bytes() {
        assert_eq!(token_bytes("Ġworld", false, true), b" world");
        assert_eq!(token_bytes("ì", false, true), [0xEC]);
        assert_eq!(token_bytes("<0x41>", false, false), b"A");
        assert_eq!(token_bytes("▁hello", false, false), b" hello");
        assert_eq!(token_bytes("<|im_end|>", true, true), b"<|im_end|>");
    }
}
