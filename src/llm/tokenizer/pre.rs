//! Pre-tokenizers of byte-level BPE vocabularies: the regexes llama.cpp applies for each value of
//! `tokenizer.ggml.pre`, one after another. Each regex cuts every piece so far into its matches
//! and the text between them (both kept), and sees only that piece, so a lookahead stops at the
//! piece's end. A name this list does not know is refused: guessing gives other token ids.

use fancy_regex::Regex;

use crate::llm::error::{LlmError, LlmResult};

/// GPT-2's regex (llama.cpp writes it without the final `\s+`; the pieces come out the same).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's regex with its case-insensitive contractions spelt out, as llama.cpp has it; `{1,3}`
/// is how many digits make one piece.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's: Llama 3's with every digit on its own.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Mistral's Tekken: words keep a leading capital run, digits alone.
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Han ideographs (U+4E00..U+9FA5), U+0800..U+4E00 and Hangul syllables, as DeepSeek writes it.
const DEEPSEEK_CJK: &str = "[\u{4E00}-\u{9FA5}\u{0800}-\u{4E00}\u{AC00}-\u{D7FF}]+";

/// Han ideographs, hiragana and katakana.
const DEEPSEEK3_CJK: &str = "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+";

const DEEPSEEK3_WORDS: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

/// A pre-tokenizer and the settings llama.cpp ties to its name.
struct Preset {
    regexes: &'static [&'static str],
    /// A word that is a token as a whole is taken without merging (Llama 3, Tekken).
    ignore_merges: bool,
    /// Whether a BOS token is added when the file does not say (`tokenizer.ggml.add_bos_token`).
    add_bos: bool,
}

/// The names llama.cpp gives each pre-tokenizer, with the regexes it runs for them.
fn preset(name: &str) -> Option<Preset> {
    let plain = |regexes| Preset {
        regexes,
        ignore_merges: false,
        add_bos: false,
    };
    Some(match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => Preset {
            regexes: &[LLAMA3],
            ignore_merges: true,
            add_bos: true,
        },
        "tekken" => Preset {
            regexes: &[TEKKEN],
            ignore_merges: true,
            add_bos: true,
        },
        "dbrx" | "smaug-bpe" => plain(&[LLAMA3]),
        "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" => plain(&[QWEN2]),
        "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" => plain(&[GPT2]),
        "starcoder" | "smollm" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            plain(&[r"\p{N}", GPT2])
        }
        "deepseek-coder" => plain(&[
            r"[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            DEEPSEEK_CJK,
            r"\p{N}",
        ]),
        "deepseek-v3" => plain(&[r"\p{N}{1,3}", DEEPSEEK3_CJK, DEEPSEEK3_WORDS]),
        "default" => plain(&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"]),
        _ => return None,
    })
}

pub struct PreTokenizer {
    regexes: Vec<Regex>,
    pub ignore_merges: bool,
    pub add_bos: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer `tokenizer.ggml.pre` names; none named is llama.cpp's `default`.
    pub fn for_name(name: Option<&str>) -> LlmResult<Self> {
        let name = name.unwrap_or("default");
        let preset = preset(name).ok_or_else(|| {
            LlmError::Tokenizer(format!(
                "pre-tokenizer `{name}` (tokenizer.ggml.pre) is not supported, so this model's \
                 token ids cannot be reproduced; supported: llama3/llama-bpe, qwen2, smollm, \
                 starcoder, gpt-2, deepseek-coder, deepseek-v3, deepseek-r1-qwen, tekken, \
                 default and their aliases. Choose a model of one of these families"
            ))
        })?;
        let regexes = preset
            .regexes
            .iter()
            .map(|r| {
                Regex::new(r)
                    .map_err(|e| LlmError::Tokenizer(format!("pre-tokenizer `{name}`: {e}")))
            })
            .collect::<LlmResult<_>>()?;
        Ok(Self {
            regexes,
            ignore_merges: preset.ignore_merges,
            add_bos: preset.add_bos,
        })
    }

    /// The words of `text`, in order; together they are `text`.
    pub fn split<'a>(&self, text: &'a str) -> LlmResult<Vec<&'a str>> {
        let mut pieces = vec![text];
        for regex in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut end = 0;
                for found in regex.find_iter(piece) {
                    let found = found.map_err(|e| {
                        LlmError::Tokenizer(format!("pre-tokenizer regex failed on the text: {e}"))
                    })?;
                    next.extend(
                        [&piece[end..found.start()], found.as_str()]
                            .into_iter()
                            .filter(|p| !p.is_empty()),
                    );
                    end = found.end();
                }
                if end < piece.len() {
                    next.push(&piece[end..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        let p = PreTokenizer::for_name(Some(pre)).unwrap();
        p.split(text)
            .unwrap()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_preset_compiles_and_unknown_names_are_refused() {
        for name in [
            "llama-bpe",
            "tekken",
            "dbrx",
            "qwen2",
            "gpt-2",
            "smollm",
            "deepseek-coder",
            "deepseek-v3",
            "default",
        ] {
            PreTokenizer::for_name(Some(name)).unwrap();
        }
        let err = PreTokenizer::for_name(Some("my-new-model")).err().unwrap();
        assert!(err.to_string().contains("`my-new-model`"), "{err}");
    }

    #[test]
    fn gpt2_keeps_one_space_with_the_next_word() {
        assert_eq!(
            split("gpt-2", "it's  12 ab!"),
            ["it", "'s", " ", " 12", " ab", "!"]
        );
        assert_eq!(split("gpt-2", "a \n b"), ["a", " \n", " b"]);
    }

    #[test]
    fn digits_group_as_each_family_groups_them() {
        assert_eq!(split("llama-bpe", "n=12345"), ["n", "=", "123", "45"]);
        assert_eq!(split("qwen2", "n=123"), ["n", "=", "1", "2", "3"]);
        assert_eq!(split("smollm", "n 12"), ["n", " ", "1", "2"]);
    }

    #[test]
    fn llama3_contractions_ignore_case_and_newlines_stay_together() {
        assert_eq!(split("llama-bpe", "I'M here"), ["I", "'M", " here"]);
        assert_eq!(split("llama-bpe", "a.\n\n  b"), ["a", ".\n\n", " ", " b"]);
    }

    #[test]
    fn a_lookahead_stops_at_the_end_of_its_piece() {
        // smollm cuts "1" out first, so the two spaces before it end their piece: `\s+(?!\S)`
        // takes both, where GPT-2 alone would leave the second for " 1".
        assert_eq!(split("smollm", "a  1"), ["a", "  ", "1"]);
        assert_eq!(split("gpt-2", "a  1"), ["a", " ", " 1"]);
    }
}
