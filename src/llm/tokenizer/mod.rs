//! The model's tokenizer, built from the GGUF vocabulary to give llama.cpp's token ids.
//!
//! Small models answer differently when a single prompt token differs, so this follows
//! llama.cpp's tokenizer step for step, and the tests run llama.cpp's own test vectors. Special
//! tokens are cut out of the text first (`special`); the rest is tokenized by the vocabulary's
//! model: SentencePiece (`llama`) merges characters by score (`spm`), byte-level BPE (`gpt2`)
//! splits with the pre-tokenizer `tokenizer.ggml.pre` names (`pre`) and merges by rank (`bpe`).
//! Every token's raw bytes are kept so that decoding and streaming never depend on lossy string
//! conversion.

mod bpe;
mod pre;
mod special;
mod spm;
mod vocab;

use bpe::Bpe;
use pre::PreTokenizer;
use special::{Fragment, SpecialTokens};
use vocab::{TokenKind, Vocab};

use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;

/// How ordinary text becomes tokens.
enum Model {
    Spm {
        /// Put a space before the text and after every special token (llama.cpp's rule; on
        /// for Llama 2 and Mistral, off for Gemma).
        add_space_prefix: bool,
        /// The token each byte falls back to: `<0xXX>`, else the byte as a one-character
        /// token, else the unknown token.
        byte_tokens: Vec<Option<u32>>,
    },
    Bpe(Bpe),
}

impl Model {
    /// The model `tokenizer.ggml.model` names, and whether it adds BOS by default.
    fn from_gguf(
        gguf: &Gguf,
        vocab: &Vocab,
        kind: &str,
        unk: Option<u32>,
    ) -> LlmResult<(Self, bool)> {
        let path = gguf.path().display();
        match kind {
            "llama" => {
                let model = Self::Spm {
                    add_space_prefix: gguf.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true),
                    byte_tokens: (0..=255u8).map(|b| byte_token(vocab, b, unk)).collect(),
                };
                Ok((model, true))
            }
            "gpt2" => {
                let pre = PreTokenizer::for_name(gguf.string("tokenizer.ggml.pre"))
                    .map_err(|e| LlmError::Tokenizer(format!("{path}: {e}")))?;
                let add_bos = pre.add_bos;
                let merges = vocab::string_array(gguf, "tokenizer.ggml.merges")?;
                Ok((Self::Bpe(Bpe::new(merges, pre)), add_bos))
            }
            other => Err(LlmError::Tokenizer(format!(
                "{path}: tokenizer model `{other}` is not supported (gpt2 BPE and llama \
                 SentencePiece are); choose a model with one of these vocabularies"
            ))),
        }
    }
}

pub struct LlmTokenizer {
    vocab: Vocab,
    model: Model,
    specials: SpecialTokens,
    /// The bytes each token stands for (control and user-defined tokens: their text).
    bytes: Vec<Vec<u8>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Extra end-of-turn tokens (for example `<|im_end|>`, `<|eot_id|>`).
    pub stop_ids: Vec<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
}

impl LlmTokenizer {
    /// From the GGUF metadata (a vocabulary-only file will do).
    pub fn from_gguf(gguf: &Gguf) -> LlmResult<Self> {
        let vocab = Vocab::from_gguf(gguf)?;
        let kind = gguf
            .string("tokenizer.ggml.model")
            .ok_or_else(|| gguf.missing("tokenizer.ggml.model", "a tokenizer"))?;
        let id = |key: &str| {
            gguf.int(key)
                .map(|v| v as u32)
                .filter(|&v| (v as usize) < vocab.texts.len())
        };
        let spm = kind == "llama";
        // llama.cpp's defaults where the file names no special token: SentencePiece's 1, 2, 0.
        let or_spm = |found: Option<u32>, default: u32| found.or(spm.then_some(default));
        let (bos, eos) = (
            or_spm(id("tokenizer.ggml.bos_token_id"), 1),
            or_spm(id("tokenizer.ggml.eos_token_id"), 2),
        );
        let unk = or_spm(id("tokenizer.ggml.unknown_token_id"), 0);
        let (model, add_bos) = Model::from_gguf(gguf, &vocab, kind, unk)?;
        let bytes = (0..vocab.texts.len())
            .map(|i| token_bytes(&vocab.texts[i], vocab.kinds[i], spm))
            .collect();
        Ok(Self {
            specials: SpecialTokens::new(&vocab)?,
            bytes,
            bos,
            eos,
            stop_ids: stop_ids(&vocab, eos),
            add_bos: gguf.bool("tokenizer.ggml.add_bos_token").unwrap_or(add_bos),
            add_eos: gguf.bool("tokenizer.ggml.add_eos_token").unwrap_or(false),
            vocab,
            model,
        })
    }

    /// Token ids of `text`, without BOS or EOS. Control-token text such as `<|im_start|>`
    /// becomes its token only when `parse_special` is set, so that documents cannot inject
    /// chat-control tokens; user-defined tokens are always matched, as in llama.cpp.
    pub fn encode(&self, text: &str, parse_special: bool) -> LlmResult<Vec<u32>> {
        let mut ids = Vec::new();
        let mut after_special = true;
        for fragment in self.specials.partition(text, parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    ids.push(id);
                    after_special = true;
                }
                Fragment::Text(text) => {
                    self.encode_text(text, after_special, &mut ids)?;
                    after_special = false;
                }
            }
        }
        Ok(ids)
    }

    fn encode_text(&self, text: &str, after_special: bool, ids: &mut Vec<u32>) -> LlmResult<()> {
        match &self.model {
            Model::Spm {
                add_space_prefix,
                byte_tokens,
            } => {
                let prefix = if *add_space_prefix && after_special {
                    "▁"
                } else {
                    ""
                };
                let escaped = format!("{prefix}{}", text.replace(' ', "▁"));
                spm::encode(
                    &self.vocab,
                    &escaped,
                    |b| byte_tokens[b as usize].ok_or(b),
                    ids,
                )
                .map_err(|b| {
                    LlmError::Tokenizer(format!(
                        "the vocabulary has no token for byte 0x{b:02X} (no <0x{b:02X}> \
                             token and no unknown token); the model file is damaged"
                    ))
                })
            }
            Model::Bpe(bpe) => bpe.encode(&self.vocab, text, ids),
        }
    }

    /// `text` with any control-token text (such as `<|im_end|>`) defused by replacing its first
    /// character with `‹`, so that document text cannot end a chat turn or open a new one.
    pub fn neutralize(&self, text: &str) -> String {
        let mut out = text.to_owned();
        while let Some(at) = self.specials.find_parsed_only(&out) {
            let first = out[at..].chars().next().map_or(1, char::len_utf8);
            out.replace_range(at..at + first, "‹");
        }
        out
    }

    /// Ids of a rendered prompt (special text parsed), with BOS before and EOS after when the
    /// model's metadata asks for them. Templates that print the BOS text themselves (Llama 3)
    /// are not given a second one.
    pub fn encode_prompt(&self, text: &str) -> LlmResult<Vec<u32>> {
        let mut ids = self.encode(text, true)?;
        if self.add_bos
            && let Some(bos) = self.bos
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        if self.add_eos
            && let Some(eos) = self.eos
            && ids.last() != Some(&eos)
        {
            ids.push(eos);
        }
        Ok(ids)
    }

    /// The bytes a token stands for (may be part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], |b| b.as_slice())
    }

    /// Control and unknown tokens: left out when decoding without special tokens.
    pub fn is_special(&self, id: u32) -> bool {
        matches!(
            self.vocab.kinds.get(id as usize),
            Some(TokenKind::Control | TokenKind::Unknown)
        )
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

/// Tokens that end a turn besides EOS (for example `<|im_end|>`, `<|eot_id|>`).
fn stop_ids(vocab: &Vocab, eos: Option<u32>) -> Vec<u32> {
    [
        "<|im_end|>",
        "<|eot_id|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|end_of_text|>",
        "<|eom_id|>",
    ]
    .iter()
    .filter_map(|s| vocab.id(s))
    .filter(|&i| Some(i) != eos)
    .collect()
}

/// The token a SentencePiece vocabulary gives a byte no piece covers.
fn byte_token(vocab: &Vocab, byte: u8, unk: Option<u32>) -> Option<u32> {
    vocab
        .id(&format!("<0x{byte:02X}>"))
        .or_else(|| {
            byte.is_ascii()
                .then(|| vocab.id(char::from(byte).encode_utf8(&mut [0; 4])))
                .flatten()
        })
        .or(unk)
}

/// The bytes a token stands for. Special tokens stand for their text; SentencePiece writes a
/// space `▁` and a raw byte `<0xXX>`, byte-level BPE every byte as a printable character.
fn token_bytes(text: &str, kind: TokenKind, spm: bool) -> Vec<u8> {
    match kind {
        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown => text.into(),
        TokenKind::Byte => text
            .strip_prefix("<0x")
            .and_then(|t| t.strip_suffix('>'))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map_or_else(|| text.into(), |b| vec![b]),
        _ if spm => text.replace('▁', " ").into_bytes(),
        _ => bpe::from_byte_alphabet(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_back_to_their_bytes() {
        assert_eq!(token_bytes("Ġworld", TokenKind::Normal, false), b" world");
        assert_eq!(token_bytes("ì", TokenKind::Normal, false), [0xEC]);
        assert_eq!(token_bytes("<0x41>", TokenKind::Byte, true), b"A");
        assert_eq!(token_bytes("▁hello", TokenKind::Normal, true), b" hello");
        assert_eq!(
            token_bytes("<|im_end|>", TokenKind::Control, false),
            b"<|im_end|>"
        );
        // A user-defined token is its text, not GPT-2's byte alphabet (Ġ stays Ġ).
        assert_eq!(
            token_bytes("Ġ<x>", TokenKind::UserDefined, false),
            "Ġ<x>".as_bytes()
        );
    }
}
