//! Korean-aware tokenizers for tantivy.
//!
//! Korean attaches particles and endings to words (검색은, 검색을, 검색에서), so whitespace
//! tokenization turns one word into many unrelated terms. Two remedies are implemented and
//! measured against each other (`glassbox bench tokenizers`, BENCHMARKS.md):
//! - **bigram**: every run of Hangul/CJK is cut into overlapping two-syllable grams, so 검색은
//!   and 검색을 share the gram 검색. Robust to unknown words, noisy for long words.
//! - **morph**: a light, dictionary-free morphological step that emits each Korean word and its
//!   stem with a known particle or verb ending removed (검색은 → 검색은 + 검색).
//!
//! Latin-script words are lowercased and stemmed with the English Snowball stemmer in both.

use crate::ingest::chunk::is_cjk;
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};

/// How a [`KoreanTokenizer`] treats runs of Hangul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangulMode {
    Bigram,
    Morph,
}

/// Splits text into Latin/digit words and Hangul/CJK runs, then treats the runs per [`HangulMode`].
/// Only the Latin words go through `latin` (lowercasing and stemming): running those filters
/// over Hangul tokens, which they leave unchanged, would double the cost of indexing Korean.
#[derive(Clone)]
pub struct KoreanTokenizer {
    pub mode: HangulMode,
    pub latin: TextAnalyzer,
}

/// Particles (조사) and common verb/adjective endings, longest first so the longest match wins.
const SUFFIXES: &[&str] = &[
    "으로부터",
    "에서부터",
    "이었습니다",
    "하였습니다",
    "되었습니다",
    "했습니다",
    "됐습니다",
    "입니다만",
    "에게서는",
    "으로서는",
    "으로써",
    "으로서",
    "로부터",
    "에게서",
    "한테서",
    "에서는",
    "에서도",
    "에서의",
    "으로는",
    "으로도",
    "이라는",
    "이라고",
    "이라면",
    "이지만",
    "합니다",
    "됩니다",
    "입니다",
    "습니다",
    "하였다",
    "되었다",
    "시키는",
    "시킨다",
    "시켜서",
    "하면서",
    "하지만",
    "이었다",
    "까지는",
    "부터는",
    "에게는",
    "처럼",
    "까지",
    "부터",
    "에게",
    "한테",
    "께서",
    "마저",
    "조차",
    "보다",
    "에서",
    "으로",
    "이나",
    "이며",
    "이고",
    "이다",
    "이라",
    "에는",
    "에도",
    "와는",
    "과는",
    "로는",
    "로도",
    "만큼",
    "마다",
    "하는",
    "하고",
    "하여",
    "해서",
    "했다",
    "한다",
    "하며",
    "하면",
    "하게",
    "되는",
    "된다",
    "되어",
    "되고",
    "되면",
    "되며",
    "적인",
    "적으로",
    "들은",
    "들이",
    "들을",
    "들의",
    "들에",
    "인",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "에",
    "의",
    "와",
    "과",
    "도",
    "로",
    "만",
    "나",
    "며",
    "고",
    "들",
    "한",
    "된",
    "할",
    "될",
    "히",
    "게",
    "요",
    "다",
];

impl Tokenizer for KoreanTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let mut tokens = Vec::new();
        for run in runs(text) {
            let position = tokens.last().map_or(0, |t: &Token| t.position + 1);
            let word = &text[run.start..run.end];
            if !run.cjk {
                let mut latin = self.latin.token_stream(word);
                while let Some(token) = latin.next() {
                    // The run is one alphanumeric word, so its token spans the whole run; the
                    // token's own offsets cannot be trusted once case folding changed its length
                    // (the Kelvin sign K lowercases from three bytes to one).
                    push_span(&mut tokens, run.start..run.end, &token.text, position);
                }
                continue;
            }
            match self.mode {
                HangulMode::Bigram => bigrams(&mut tokens, run.start, word, position),
                HangulMode::Morph => morph(&mut tokens, run.start, word, position),
            }
        }
        VecTokenStream {
            tokens,
            index: None,
        }
    }
}

struct Run {
    start: usize,
    end: usize,
    cjk: bool,
}

/// Maximal runs of either CJK characters or other alphanumerics.
fn runs(text: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (i, c) in text.char_indices() {
        let cjk = is_cjk(c);
        if !cjk && !c.is_alphanumeric() {
            continue;
        }
        match out.last_mut() {
            Some(run) if run.end == i && run.cjk == cjk => run.end = i + c.len_utf8(),
            _ => out.push(Run {
                start: i,
                end: i + c.len_utf8(),
                cjk,
            }),
        }
    }
    out
}

fn push(tokens: &mut Vec<Token>, offset: usize, text: &str, position: usize) {
    push_span(tokens, offset..offset + text.len(), text, position);
}

fn push_span(tokens: &mut Vec<Token>, span: std::ops::Range<usize>, text: &str, position: usize) {
    tokens.push(Token {
        offset_from: span.start,
        offset_to: span.end,
        position,
        text: text.to_owned(),
        position_length: 1,
    });
}

fn bigrams(tokens: &mut Vec<Token>, offset: usize, word: &str, position: usize) {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    if chars.len() == 1 {
        push(tokens, offset, word, position);
        return;
    }
    for (n, pair) in chars.windows(2).enumerate() {
        let end = pair[1].0 + pair[1].1.len_utf8();
        push(
            tokens,
            offset + pair[0].0,
            &word[pair[0].0..end],
            position + n,
        );
    }
}

fn morph(tokens: &mut Vec<Token>, offset: usize, word: &str, position: usize) {
    push(tokens, offset, word, position);
    if let Some(stem) = strip_suffix(word) {
        push(tokens, offset, stem, position);
    }
}

/// The word without its particle or ending, if what remains is at least one syllable.
pub fn strip_suffix(word: &str) -> Option<&str> {
    SUFFIXES
        .iter()
        .filter_map(|suffix| word.strip_suffix(suffix))
        .find(|stem| !stem.is_empty())
}

/// A token stream over tokens computed up front.
pub struct VecTokenStream {
    tokens: Vec<Token>,
    index: Option<usize>,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        let next = self.index.map_or(0, |i| i + 1);
        self.index = Some(next);
        next < self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index.unwrap_or(0)]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index.unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(mode: HangulMode, text: &str) -> Vec<String> {
        let latin = TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default()).build();
        let mut tokenizer = KoreanTokenizer { mode, latin };
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn bigrams_share_the_stem_across_particles() {
        assert_eq!(texts(HangulMode::Bigram, "검색은"), ["검색", "색은"]);
        assert!(texts(HangulMode::Bigram, "검색을 BM25로").contains(&"BM25".to_owned()));
    }

    #[test]
    fn morph_strips_particles_and_endings() {
        assert_eq!(texts(HangulMode::Morph, "검색은"), ["검색은", "검색"]);
        assert_eq!(strip_suffix("학교에서는"), Some("학교"));
        assert_eq!(strip_suffix("발효된다"), Some("발효"));
        assert_eq!(strip_suffix("가"), None);
    }

    #[test]
    fn offsets_point_into_the_source_even_when_case_folding_changes_length() {
        let latin = crate::index::latin_analyzer();
        let mut tokenizer = KoreanTokenizer {
            mode: HangulMode::Morph,
            latin,
        };
        let text = "온도는 300\u{212A} İstanbul";
        let mut stream = tokenizer.token_stream(text);
        while stream.advance() {
            let t = stream.token();
            assert!(
                text.is_char_boundary(t.offset_from) && text.is_char_boundary(t.offset_to),
                "{t:?}"
            );
            assert!(t.offset_to <= text.len());
        }
    }

    #[test]
    fn mixed_script_words_split_at_script_changes() {
        assert_eq!(
            texts(HangulMode::Morph, "GPU에서 2배"),
            ["GPU", "에서", "2", "배"]
        );
    }
}
