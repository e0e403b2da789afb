//! Cutting special-token text out of a text before it is tokenized, as llama.cpp's
//! `tokenizer_st_partition` does.
//!
//! Control and unknown tokens (`<|im_start|>`, `<s>`, `<unk>`) are cut out only when special
//! text is parsed; user-defined tokens (Gemma's runs of newlines, added words) always are. The
//! longest tokens are cut first, each at all its places, so where two overlap the longer wins.

use aho_corasick::{AhoCorasick, MatchKind};

use super::vocab::{TokenKind, Vocab};
use crate::llm::error::{LlmError, LlmResult};

/// A piece of the text: ordinary text to tokenize, or a special token found in it.
#[derive(Debug, PartialEq, Eq)]
pub enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

struct Special {
    id: u32,
    text: String,
    /// Cut out only when special text is parsed (control and unknown tokens).
    parsed_only: bool,
}

pub struct SpecialTokens {
    /// Longest first; between equal lengths, the lower id first.
    tokens: Vec<Special>,
    /// Finds every place any of `tokens` occurs, in one pass (Gemma 3 has over 6,000).
    finder: AhoCorasick,
}

impl SpecialTokens {
    pub fn new(vocab: &Vocab) -> LlmResult<Self> {
        let mut tokens: Vec<Special> = vocab
            .kinds
            .iter()
            .zip(&vocab.texts)
            .enumerate()
            .filter(|(_, (_, text))| !text.is_empty())
            .filter_map(|(id, (kind, text))| {
                let parsed_only = match kind {
                    TokenKind::Control | TokenKind::Unknown => true,
                    TokenKind::UserDefined => false,
                    _ => return None,
                };
                Some(Special {
                    id: id as u32,
                    text: text.clone(),
                    parsed_only,
                })
            })
            .collect();
        tokens.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(tokens.iter().map(|t| &t.text))
            .map_err(|e| LlmError::Tokenizer(format!("special tokens: {e}")))?;
        Ok(Self { tokens, finder })
    }

    /// `text` cut into ordinary text and special tokens, in order. Empty text gives nothing.
    pub fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments: Vec<Fragment> = Vec::new();
        if !text.is_empty() {
            fragments.push(Fragment::Text(text));
        }
        for token in self.present(text) {
            if token.parsed_only && !parse_special {
                continue;
            }
            fragments = fragments
                .into_iter()
                .flat_map(|f| match f {
                    Fragment::Text(t) => cut(t, token),
                    token => vec![token],
                })
                .collect();
        }
        fragments
    }

    /// Where the first text of a token that only parsing cuts out starts, leaving out
    /// one-character tokens (defusing those would change every such character).
    pub fn find_parsed_only(&self, text: &str) -> Option<usize> {
        self.finder
            .find_overlapping_iter(text)
            .filter(|m| {
                let token = &self.tokens[m.pattern().as_usize()];
                token.parsed_only && token.text.chars().nth(1).is_some()
            })
            .map(|m| m.start())
            .min()
    }

    /// The tokens whose text occurs in `text`, longest first: the others cannot cut anything.
    fn present(&self, text: &str) -> impl Iterator<Item = &Special> {
        let mut found: Vec<usize> = self
            .finder
            .find_overlapping_iter(text)
            .map(|m| m.pattern().as_usize())
            .collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().map(|i| &self.tokens[i])
    }
}

/// `text` cut at every place `token` occurs, left to right.
fn cut<'a>(mut text: &'a str, token: &Special) -> Vec<Fragment<'a>> {
    let mut out = Vec::new();
    while let Some(at) = text.find(token.text.as_str()) {
        if at > 0 {
            out.push(Fragment::Text(&text[..at]));
        }
        out.push(Fragment::Token(token.id));
        text = &text[at + token.text.len()..];
    }
    if !text.is_empty() {
        out.push(Fragment::Text(text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fragment::{Text, Token};

    fn specials(tokens: &[(&str, TokenKind)]) -> SpecialTokens {
        let normal = [("a", TokenKind::Normal)];
        SpecialTokens::new(&Vocab::from_kinds(&[&normal, tokens].concat())).unwrap()
    }

    #[test]
    fn control_tokens_are_cut_only_when_parsing_user_defined_always() {
        let s = specials(&[
            ("<s>", TokenKind::Control),
            ("\n\n", TokenKind::UserDefined),
        ]);
        assert_eq!(
            s.partition("a<s>b\n\nc", true),
            [Text("a"), Token(1), Text("b"), Token(2), Text("c")]
        );
        assert_eq!(
            s.partition("a<s>b\n\nc", false),
            [Text("a<s>b"), Token(2), Text("c")]
        );
    }

    #[test]
    fn longer_tokens_are_cut_first_wherever_they_are() {
        // "xa" comes first in the text, but "aby" is longer: it is cut, and "x" stays text.
        let s = specials(&[("xa", TokenKind::Control), ("aby", TokenKind::Control)]);
        assert_eq!(s.partition("xaby", true), [Text("x"), Token(2)]);
        // Every place, and the text between neighbours is not an empty fragment.
        assert_eq!(s.partition("abyaby", true), [Token(2), Token(2)]);
        assert!(s.partition("", true).is_empty());
    }

    #[test]
    fn the_first_parsed_only_text_of_two_characters_or_more_is_found() {
        let s = specials(&[
            ("<|im_end|>", TokenKind::Control),
            ("<b>", TokenKind::UserDefined),
            ("|", TokenKind::Control),
        ]);
        assert_eq!(s.find_parsed_only("<b> | x <|im_end|>"), Some(8));
        assert_eq!(s.find_parsed_only("<b> plain | text"), None);
    }
}
