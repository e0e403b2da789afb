//! SentencePiece vocabularies (`tokenizer.ggml.model = llama`) as llama.cpp tokenizes them.
//!
//! This is not a unigram search: the text (spaces already written `▁`) starts as one symbol per
//! character, and the neighbouring pair whose concatenation is a token with the highest score is
//! merged, again and again (equal scores: the leftmost pair), until no pair forms a token. A
//! symbol that is still not a token becomes one byte token `<0xXX>` per byte.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// A run of the text: one character at first, then what merges make of it. Merged-away
/// symbols keep `len == 0`.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two neighbouring symbols whose concatenation (`len` bytes) is a token with `score`.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Bigram {
    /// The heap's greatest is merged first: highest score, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then(other.left.cmp(&self.left))
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

/// Appends the tokens of `text` to `out`. `byte_token` gives the token of a byte that no
/// piece covers; it fails with that byte when the vocabulary has none.
pub fn encode(
    vocab: &Vocab,
    text: &str,
    byte_token: impl Fn(u8) -> Result<u32, u8>,
    out: &mut Vec<u32>,
) -> Result<(), u8> {
    let mut merger = Merger {
        vocab,
        text,
        symbols: characters(text),
        queue: BinaryHeap::new(),
    };
    merger.run();
    let mut at = (!merger.symbols.is_empty()).then_some(0);
    while let Some(i) = at {
        let symbol = merger.symbols[i];
        let piece = &text[symbol.start..symbol.start + symbol.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for byte in piece.bytes() {
                    out.push(byte_token(byte)?);
                }
            }
        }
        at = symbol.next;
    }
    Ok(())
}

fn characters(text: &str) -> Vec<Symbol> {
    let count = text.chars().count();
    text.char_indices()
        .enumerate()
        .map(|(i, (start, c))| Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < count).then_some(i + 1),
        })
        .collect()
}

struct Merger<'a> {
    vocab: &'a Vocab,
    text: &'a str,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
}

impl Merger<'_> {
    fn run(&mut self) {
        for right in 1..self.symbols.len() {
            self.offer(right - 1, right);
        }
        while let Some(pair) = self.queue.pop() {
            let (left, right) = (self.symbols[pair.left], self.symbols[pair.right]);
            // Symbols only grow or vanish, so a pair an earlier merge touched no longer adds
            // up to its length.
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.len {
                continue;
            }
            self.symbols[pair.left].len += right.len;
            self.symbols[pair.left].next = right.next;
            self.symbols[pair.right].len = 0;
            if let Some(next) = right.next {
                self.symbols[next].prev = Some(pair.left);
                self.offer(pair.left, next);
            }
            if let Some(prev) = left.prev {
                self.offer(prev, pair.left);
            }
        }
    }

    /// Queues the pair if, joined, it is a token.
    fn offer(&mut self, left: usize, right: usize) {
        let start = self.symbols[left].start;
        let len = self.symbols[left].len + self.symbols[right].len;
        if let Some(id) = self.vocab.id(&self.text[start..start + len]) {
            self.queue.push(Bigram {
                score: self.vocab.scores[id as usize],
                left,
                right,
                len,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(pieces: &[(&str, f32)]) -> Vocab {
        Vocab::from_pieces(pieces)
    }

    fn tokens(vocab: &Vocab, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        encode(vocab, text, |b| Ok(1000 + b as u32), &mut out).unwrap();
        out.iter()
            .map(|&id| match vocab.texts.get(id as usize) {
                Some(t) => t.clone(),
                None => format!("<0x{:02X}>", id - 1000),
            })
            .collect()
    }

    #[test]
    fn the_best_scoring_pair_merges_first_wherever_it_is() {
        // "bc" outscores "ab": "abc" becomes a + bc, though "ab" comes first.
        let v = vocab(&[
            ("a", -1.0),
            ("b", -1.0),
            ("c", -1.0),
            ("ab", -3.0),
            ("bc", -2.0),
        ]);
        assert_eq!(tokens(&v, "abc"), ["a", "bc"]);
        // A merge makes a new pair with its neighbour: "bc" then "abc".
        let v = vocab(&[
            ("a", -1.0),
            ("b", -1.0),
            ("c", -1.0),
            ("bc", -2.0),
            ("abc", -5.0),
        ]);
        assert_eq!(tokens(&v, "abc"), ["abc"]);
    }

    #[test]
    fn equal_scores_merge_the_leftmost_pair() {
        let v = vocab(&[("a", -1.0), ("aa", -2.0)]);
        assert_eq!(tokens(&v, "aaa"), ["aa", "a"]);
    }

    #[test]
    fn a_merge_needs_the_whole_concatenation_to_be_a_token() {
        // "abc" is a token but neither "ab" nor "bc" is: no path reaches it.
        let v = vocab(&[("a", -1.0), ("b", -1.0), ("c", -1.0), ("abc", -1.0)]);
        assert_eq!(tokens(&v, "abc"), ["a", "b", "c"]);
    }

    #[test]
    fn characters_without_a_token_fall_back_to_their_bytes() {
        let v = vocab(&[("▁", -1.0), ("h", -1.0), ("é", -1.0)]);
        assert_eq!(
            tokens(&v, "▁hé한"),
            ["▁", "h", "é", "<0xED>", "<0x95>", "<0x9C>"]
        );
    }

    #[test]
    fn a_missing_byte_token_is_an_error_naming_the_byte() {
        let v = vocab(&[("a", -1.0)]);
        let mut out = Vec::new();
        let got = encode(&v, "aé", Err, &mut out);
        assert_eq!(got, Err(0xC3));
    }
}
