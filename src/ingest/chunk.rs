//! Structure- and sentence-aware chunking with a token budget and overlap.
//!
//! Each block of an [`Extracted`] document is cut into segments at sentence ends (Korean and
//! English punctuation) and line breaks, then segments are packed greedily into chunks of at most
//! `target_tokens`, preferring to end a chunk on a strong boundary (sentence end, paragraph, code
//! line). The next chunk repeats up to `overlap_tokens` of trailing segments so that a passage cut
//! in two still appears whole in one of them. Chunks never cross blocks, so every chunk has one
//! heading path and one page.

use super::document::{Extracted, FileKind};
use std::ops::Range;

/// Counts tokens the way the embedding model will. Until a model tokenizer is plugged in,
/// [`ApproxTokens`] stands in for it.
pub trait TokenCounter: Send + Sync {
    fn count(&self, text: &str) -> usize;
}

/// Approximates subword tokenizers without a vocabulary: every Hangul syllable, kana or CJK
/// ideograph counts as one token (multilingual vocabularies split Korean into pieces of one or two
/// syllables, so this errs on the side of smaller chunks), other words count one token per four
/// characters (the usual English average), each punctuation mark counts one.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApproxTokens;

impl TokenCounter for ApproxTokens {
    fn count(&self, text: &str) -> usize {
        let mut tokens = 0;
        let mut word_len: usize = 0;
        for c in text.chars() {
            // The CJK range check first: `is_alphanumeric` is a slow table lookup for Hangul.
            let cjk = is_cjk(c);
            if !cjk && c.is_alphanumeric() {
                word_len += 1;
                continue;
            }
            tokens += word_len.div_ceil(4);
            word_len = 0;
            if cjk || !c.is_whitespace() {
                tokens += 1;
            }
        }
        tokens + word_len.div_ceil(4)
    }
}

/// Hangul, kana and CJK ideographs: scripts written without spaces between subword units.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}'
        | '\u{3040}'..='\u{30FF}' | '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}'
        | '\u{F900}'..='\u{FAFF}')
}

/// Chunk sizes in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    pub target_tokens: usize,
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            target_tokens: 256,
            overlap_tokens: 32,
        }
    }
}

/// One retrievable passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub ordinal: usize,
    /// Byte range in the extracted text.
    pub bytes: Range<usize>,
    /// First and last line (1-based, inclusive) in the extracted text.
    pub lines: (usize, usize),
    pub page: Option<u32>,
    pub heading: String,
    pub text: String,
    pub tokens: usize,
}

#[derive(Debug, Clone)]
struct Segment {
    range: Range<usize>,
    tokens: usize,
    strong_end: bool,
}

/// Cuts a document into chunks.
pub fn chunk(
    doc: &Extracted,
    kind: FileKind,
    opts: ChunkOptions,
    counter: &dyn TokenCounter,
) -> Vec<Chunk> {
    let target = opts.target_tokens.max(8);
    let overlap = opts.overlap_tokens.min(target / 2);
    let lines = LineIndex::new(&doc.text);
    let mut chunks = Vec::new();
    for block in &doc.blocks {
        let segments = segments(&doc.text, block.range.clone(), kind, target, counter);
        for range in pack(&segments, target, overlap) {
            let text = doc.text[range.clone()].to_owned();
            chunks.push(Chunk {
                ordinal: chunks.len(),
                lines: (
                    lines.line_of(range.start),
                    lines.line_of(range.end.saturating_sub(1)),
                ),
                bytes: range,
                page: block.page,
                heading: block.heading.join(" > "),
                tokens: counter.count(&text),
                text,
            });
        }
    }
    chunks
}

/// Splits `range` of `text` into trimmed, non-empty segments no larger than `target` tokens.
fn segments(
    text: &str,
    range: Range<usize>,
    kind: FileKind,
    target: usize,
    counter: &dyn TokenCounter,
) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = range.start;
    let slice = &text[range.clone()];
    let mut iter = slice.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let next = iter.peek().map(|&(_, n)| n);
        let abs_end = range.start + i + c.len_utf8();
        let sentence_end = matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…')
            && next.is_none_or(char::is_whitespace);
        let paragraph_end = c == '\n' && next == Some('\n');
        let line_end = c == '\n';
        if sentence_end || line_end {
            let strong = sentence_end || paragraph_end || kind.line_oriented();
            push_segment(text, start..abs_end, strong, target, counter, &mut out);
            start = abs_end;
        }
    }
    push_segment(text, start..range.end, true, target, counter, &mut out);
    out
}

fn push_segment(
    text: &str,
    range: Range<usize>,
    strong_end: bool,
    target: usize,
    counter: &dyn TokenCounter,
    out: &mut Vec<Segment>,
) {
    let Some(range) = trim_range(text, range) else {
        if strong_end && let Some(last) = out.last_mut() {
            last.strong_end = true;
        }
        return;
    };
    let tokens = counter.count(&text[range.clone()]);
    if tokens <= target {
        out.push(Segment {
            range,
            tokens,
            strong_end,
        });
        return;
    }
    // An over-long sentence (minified code, a table row, Korean without punctuation) is cut at
    // spaces, or at characters when it has none.
    let pieces = split_long(text, range, target, counter);
    let last = pieces.len() - 1;
    for (n, piece) in pieces.into_iter().enumerate() {
        let tokens = counter.count(&text[piece.clone()]);
        out.push(Segment {
            range: piece,
            tokens,
            strong_end: n == last && strong_end,
        });
    }
}

/// Cuts an over-long segment at spaces into pieces of at most `target` tokens, counting word by
/// word (linear in the text, whatever the counter costs); a single word longer than the budget
/// (minified code, unspaced text) is cut every `target / 2` characters, which no subword
/// vocabulary turns into more than `target` tokens.
fn split_long(
    text: &str,
    range: Range<usize>,
    target: usize,
    counter: &dyn TokenCounter,
) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    let mut tokens = 0;
    for word in words(text, range.clone()) {
        let word_tokens = counter.count(&text[word.clone()]);
        if word_tokens > target {
            pieces.push(start..word.start);
            pieces.extend(char_pieces(text, word.clone(), (target / 2).max(1)));
            (start, tokens) = (word.end, 0);
            continue;
        }
        if tokens + word_tokens > target {
            pieces.push(start..word.start);
            (start, tokens) = (word.start, 0);
        }
        tokens += word_tokens;
    }
    pieces.push(start..range.end);
    pieces
        .into_iter()
        .filter_map(|r| trim_range(text, r))
        .collect()
}

/// Whitespace-separated words of `range`, each with the spaces that follow it.
fn words(text: &str, range: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    let base = range.start;
    text[range]
        .split_inclusive(char::is_whitespace)
        .scan(base, |at, word| {
            let r = *at..*at + word.len();
            *at = r.end;
            Some(r)
        })
}

fn char_pieces(text: &str, range: Range<usize>, chars: usize) -> Vec<Range<usize>> {
    let mut cuts: Vec<usize> = text[range.clone()]
        .char_indices()
        .map(|(i, _)| range.start + i)
        .step_by(chars)
        .collect();
    cuts.push(range.end);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Greedy packing of segments into chunk ranges, with overlap.
fn pack(segments: &[Segment], target: usize, overlap: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut first = 0;
    while first < segments.len() {
        let mut end = first;
        let mut tokens = 0;
        while end < segments.len() && (end == first || tokens + segments[end].tokens <= target) {
            tokens += segments[end].tokens;
            end += 1;
        }
        if end < segments.len() {
            end = prefer_strong_end(segments, first, end, target);
        }
        chunks.push(segments[first].range.start..segments[end - 1].range.end);
        if end == segments.len() {
            break;
        }
        first = overlap_start(segments, first, end, overlap, target);
    }
    chunks
}

/// Moves a chunk end back to the last sentence/paragraph end if that keeps at least half the
/// budget, so chunks rarely stop mid-sentence.
fn prefer_strong_end(segments: &[Segment], first: usize, end: usize, target: usize) -> usize {
    let mut tokens: usize = segments[first..end].iter().map(|s| s.tokens).sum();
    let mut candidate = end;
    while candidate > first + 1 && !segments[candidate - 1].strong_end {
        tokens -= segments[candidate - 1].tokens;
        candidate -= 1;
    }
    if segments[candidate - 1].strong_end && tokens * 2 >= target {
        candidate
    } else {
        end
    }
}

/// The first segment of the next chunk: trailing segments of this one that fit in `overlap`,
/// but always progress past `first`.
fn overlap_start(
    segments: &[Segment],
    first: usize,
    end: usize,
    overlap: usize,
    target: usize,
) -> usize {
    let mut start = end;
    let mut tokens = 0;
    while start > first + 1 && tokens + segments[start - 1].tokens <= overlap {
        tokens += segments[start - 1].tokens;
        start -= 1;
    }
    // An overlap that leaves no room for the next segment would make a chunk of overlap alone.
    if tokens + segments[end].tokens > target {
        end
    } else {
        start
    }
}

fn trim_range(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let slice = &text[range.clone()];
    let trimmed_start = slice.len() - slice.trim_start().len();
    let trimmed = slice.trim();
    (!trimmed.is_empty())
        .then(|| range.start + trimmed_start..range.start + trimmed_start + trimmed.len())
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn line_of(&self, byte: usize) -> usize {
        self.starts.partition_point(|&s| s <= byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::document::Block;

    fn doc(text: &str) -> Extracted {
        Extracted::plain(text.to_owned(), Some("UTF-8"))
    }

    #[test]
    fn approx_counts_korean_syllables_and_english_words() {
        assert_eq!(ApproxTokens.count("검색은"), 3);
        assert_eq!(ApproxTokens.count("retrieval"), 3);
        assert_eq!(ApproxTokens.count("a b."), 3);
    }

    #[test]
    fn chunks_respect_budget_and_cover_all_text() {
        let sentence = "한국어 문장은 이렇게 끝납니다. This English sentence ends here. ";
        let text = sentence.repeat(60);
        let opts = ChunkOptions {
            target_tokens: 64,
            overlap_tokens: 16,
        };
        let chunks = chunk(&doc(&text), FileKind::Text, opts, &ApproxTokens);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.tokens <= 64, "chunk of {} tokens", c.tokens);
            assert_eq!(&text[c.bytes.clone()], c.text);
            // Every chunk starts at a sentence start and ends at a sentence end.
            assert!(c.text.ends_with('.'), "{:?}", c.text);
        }
        // Consecutive chunks overlap, and together they cover the whole text.
        for pair in chunks.windows(2) {
            assert!(pair[1].bytes.start < pair[0].bytes.end);
        }
        assert_eq!(chunks.last().unwrap().bytes.end, text.trim_end().len());
    }

    #[test]
    fn no_chunk_is_overlap_alone() {
        // Sentences of about 200, 20 and 250 tokens with a 256 budget and 32 overlap.
        let text = format!(
            "{}. {}. {}.",
            "가".repeat(199),
            "나".repeat(19),
            "다".repeat(249)
        );
        let opts = ChunkOptions {
            target_tokens: 256,
            overlap_tokens: 32,
        };
        let chunks = chunk(&doc(&text), FileKind::Text, opts, &ApproxTokens);
        for pair in chunks.windows(2) {
            let (a, b) = (&pair[0].bytes, &pair[1].bytes);
            assert!(
                !(b.start >= a.start && b.end <= a.end),
                "{:?} inside {:?}",
                b,
                a
            );
        }
    }

    #[test]
    fn long_unpunctuated_text_is_split() {
        let text = "가".repeat(1000);
        let chunks = chunk(
            &doc(&text),
            FileKind::Text,
            ChunkOptions::default(),
            &ApproxTokens,
        );
        assert!(chunks.len() >= 4, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.tokens <= 256));
        let covered: usize = chunks.iter().map(|c| c.text.len()).sum();
        assert!(covered >= text.len());
    }

    #[test]
    fn line_numbers_and_headings_follow_blocks() {
        let text = "# A\nfirst\n\n## B\nsecond line\nthird line\n";
        let extracted = Extracted {
            text: text.to_owned(),
            title: None,
            blocks: vec![
                Block {
                    range: 0..10,
                    heading: vec!["A".into()],
                    page: None,
                },
                Block {
                    range: 11..text.len(),
                    heading: vec!["A".into(), "B".into()],
                    page: Some(2),
                },
            ],
            encoding: None,
        };
        let chunks = chunk(
            &extracted,
            FileKind::Markdown,
            ChunkOptions::default(),
            &ApproxTokens,
        );
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].lines, (1, 2));
        assert_eq!(chunks[1].lines, (4, 6));
        assert_eq!(chunks[1].heading, "A > B");
        assert_eq!(chunks[1].page, Some(2));
    }
}
