//! Byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`) as llama.cpp tokenizes them.
//!
//! The pre-tokenizer cuts the text into words; each word is written in GPT-2's byte alphabet
//! (every byte a printable character) and starts as one symbol per character; then the
//! neighbouring pair with the lowest merge rank is merged (equal ranks: the leftmost), again and
//! again, until no pair has a merge rule.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::LazyLock;

use super::pre::PreTokenizer;
use super::vocab::Vocab;
use crate::llm::error::LlmResult;

pub struct Bpe {
    /// Merge rules as the GGUF writes them, `left right`, with their rank (first is best).
    ranks: HashMap<String, u32>,
    pre: PreTokenizer,
}

/// Two neighbouring symbols that a merge rule of rank `rank` joins (`len` bytes together).
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Bigram {
    /// The heap's greatest is merged first: lowest rank, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// A run of the word: one character at first. Merged-away symbols keep `len == 0`.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Bpe {
    pub fn new(merges: Vec<String>, pre: PreTokenizer) -> Self {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, rule) in merges.into_iter().enumerate() {
            // llama.cpp splits a rule at its first space after the first byte and keeps the
            // first rank a rule is given; a rule with no such space never matches.
            if rule.bytes().skip(1).any(|b| b == b' ') {
                ranks.entry(rule).or_insert(rank as u32);
            }
        }
        Self { ranks, pre }
    }

    /// Appends the tokens of `text` (no special-token text in it) to `out`.
    pub fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> LlmResult<()> {
        let mut key = String::new();
        for word in self.pre.split(text)? {
            let word = to_byte_alphabet(word);
            // Llama 3's files skip the merges for a word that is a token as a whole.
            if self.pre.ignore_merges
                && let Some(id) = vocab.id(&word)
            {
                out.push(id);
                continue;
            }
            let symbols = self.merge(&word, &mut key);
            emit(vocab, &word, &symbols, out);
        }
        Ok(())
    }

    fn merge(&self, word: &str, key: &mut String) -> Vec<Symbol> {
        let mut symbols = characters(word);
        let mut queue = BinaryHeap::new();
        let mut offer = |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left, right| {
            let (l, r): (Symbol, Symbol) = (symbols[left], symbols[right]);
            key.clear();
            key.push_str(&word[l.start..l.start + l.len]);
            key.push(' ');
            key.push_str(&word[r.start..r.start + r.len]);
            if let Some(&rank) = self.ranks.get(key.as_str()) {
                queue.push(Bigram {
                    rank,
                    left,
                    right,
                    len: l.len + r.len,
                });
            }
        };
        for right in 1..symbols.len() {
            offer(&symbols, &mut queue, right - 1, right);
        }
        while let Some(pair) = queue.pop() {
            let (left, right) = (symbols[pair.left], symbols[pair.right]);
            // Symbols only grow or vanish, so a pair an earlier merge touched no longer adds
            // up to its length.
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.len {
                continue;
            }
            symbols[pair.left].len += right.len;
            symbols[pair.left].next = right.next;
            symbols[pair.right].len = 0;
            if let Some(next) = right.next {
                symbols[next].prev = Some(pair.left);
                offer(&symbols, &mut queue, pair.left, next);
            }
            if let Some(prev) = left.prev {
                offer(&symbols, &mut queue, prev, pair.left);
            }
        }
        symbols
    }
}

fn characters(word: &str) -> Vec<Symbol> {
    let count = word.chars().count();
    word.char_indices()
        .enumerate()
        .map(|(i, (start, c))| Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < count).then_some(i + 1),
        })
        .collect()
}

/// The surviving symbols' tokens. A symbol that is not a token falls back to the tokens of its
/// single bytes, skipping those without one: what llama.cpp does (only ASCII bytes can match).
fn emit(vocab: &Vocab, word: &str, symbols: &[Symbol], out: &mut Vec<u32>) {
    let mut at = (!symbols.is_empty()).then_some(0);
    while let Some(i) = at {
        let symbol = symbols[i];
        let piece = &word[symbol.start..symbol.start + symbol.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => out.extend(
                piece
                    .bytes()
                    .filter(u8::is_ascii)
                    .filter_map(|b| vocab.id(char::from(b).encode_utf8(&mut [0; 4]))),
            ),
        }
        at = symbol.next;
    }
}

/// GPT-2's byte alphabet: printable bytes stand for themselves, the others (controls, space,
/// and a few more) for the characters from U+0100 on, in byte order.
static BYTE_ALPHABET: LazyLock<[char; 256]> = LazyLock::new(|| {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut chars = ['\0'; 256];
    let mut next = 0x100;
    for b in 0..=255u8 {
        chars[b as usize] = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
    }
    chars
});

pub fn to_byte_alphabet(text: &str) -> String {
    text.bytes().map(|b| BYTE_ALPHABET[b as usize]).collect()
}

/// The bytes a token written in GPT-2's byte alphabet stands for. A character outside the
/// alphabet is kept as its UTF-8 bytes.
pub fn from_byte_alphabet(token: &str) -> Vec<u8> {
    static DECODE: LazyLock<HashMap<char, u8>> = LazyLock::new(|| {
        (0..=255u8)
            .map(|b| (BYTE_ALPHABET[b as usize], b))
            .collect()
    });
    let mut bytes = Vec::with_capacity(token.len());
    for c in token.chars() {
        match DECODE.get(&c) {
            Some(&b) => bytes.push(b),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tokenizer::pre::PreTokenizer;

    fn bpe(merges: &[&str]) -> Bpe {
        let pre = PreTokenizer::for_name(Some("gpt-2")).unwrap();
        Bpe::new(merges.iter().map(|m| m.to_string()).collect(), pre)
    }

    fn tokens(vocab: &Vocab, bpe: &Bpe, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        bpe.encode(vocab, text, &mut out).unwrap();
        out.iter()
            .map(|&id| vocab.texts[id as usize].clone())
            .collect()
    }

    #[test]
    fn the_byte_alphabet_is_gpt2s() {
        assert_eq!(to_byte_alphabet(" hi\n"), "ĠhiĊ");
        assert_eq!(to_byte_alphabet("한"), "íķľ");
        assert_eq!(from_byte_alphabet("Ġworld"), b" world");
        assert_eq!(from_byte_alphabet("ì"), [0xEC]);
        for b in 0..=255u8 {
            assert_eq!(
                from_byte_alphabet(&BYTE_ALPHABET[b as usize].to_string()),
                [b]
            );
        }
    }

    #[test]
    fn the_lowest_rank_merges_first_wherever_it_is() {
        let vocab =
            Vocab::from_pieces(&[("a", 0.0), ("b", 0.0), ("c", 0.0), ("ab", 0.0), ("bc", 0.0)]);
        assert_eq!(tokens(&vocab, &bpe(&["b c", "a b"]), "abc"), ["a", "bc"]);
        assert_eq!(tokens(&vocab, &bpe(&["a b", "b c"]), "abc"), ["ab", "c"]);
    }

    #[test]
    fn equal_pairs_merge_leftmost_first() {
        let vocab = Vocab::from_pieces(&[("a", 0.0), ("aa", 0.0)]);
        assert_eq!(tokens(&vocab, &bpe(&["a a"]), "aaa"), ["aa", "a"]);
    }

    #[test]
    fn words_merge_apart_and_spaces_are_written_as_g() {
        let vocab = Vocab::from_pieces(&[("a", 0.0), ("Ġ", 0.0), ("Ġa", 0.0), ("aa", 0.0)]);
        // "a a": the words are "a" and " a"; "a Ġ" would join them but never meets.
        assert_eq!(
            tokens(&vocab, &bpe(&["Ġ a", "a Ġ", "a a"]), "a a"),
            ["a", "Ġa"]
        );
    }
}
