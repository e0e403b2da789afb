//! The grounded prompt: numbered sources in the system turn, earlier chat turns, the question.
//!
//! Context policy, when everything does not fit in the model's window (minus room for the
//! answer): drop the lowest-ranked sources first, one at a time; then the oldest chat turns,
//! a question and its answer together; the question itself is never cut. What was dropped is
//! reported so that the answer can say so.

use serde::Serialize;

use crate::catalog::ChunkRecord;
use crate::llm::{Engine, LlmError, LlmResult, Message, Role};
use crate::viz::attention::{SourceSpan, spans_of};

/// A passage given to the model, numbered as the model will cite it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Source {
    pub n: usize,
    #[serde(flatten)]
    pub chunk: ChunkRecord,
    /// The retrieval score of the passage (last stage).
    pub score: f32,
}

impl Source {
    /// Where the passage is: `path:lines` or `path (page p)`.
    pub fn location(&self) -> String {
        let c = &self.chunk;
        match c.page {
            Some(p) => format!("{} (page {p})", c.path.display()),
            None => format!("{}:{}-{}", c.path.display(), c.lines.0, c.lines.1),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PromptPlan {
    #[serde(skip)]
    pub ids: Vec<u32>,
    pub prompt_tokens: usize,
    /// Sources in the prompt, best first.
    pub sources: Vec<Source>,
    /// Sources left out to fit the context window (lowest-ranked first to go).
    pub dropped_sources: Vec<Source>,
    /// Earlier chat messages left out to fit.
    pub dropped_messages: usize,
    /// The prompt tokens that quote each source (for the attention panel).
    pub source_spans: Vec<SourceSpan>,
}

impl PromptPlan {
    /// What the answer should tell the user about trimming, if anything.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.dropped_sources.is_empty() {
            notes.push(format!(
                "{} lower-ranked source(s) were left out to fit the model's context window.",
                self.dropped_sources.len()
            ));
        }
        if self.dropped_messages > 0 {
            notes.push(format!(
                "The {} oldest message(s) of this chat were left out to fit the context window.",
                self.dropped_messages
            ));
        }
        notes
    }
}

const INSTRUCTIONS: &str = "You answer questions using only the numbered sources below. \
After each statement, cite the sources it comes from as [1], [2]. If the sources do not \
contain the answer, say that you could not find it in the documents. Answer in the language \
of the question.";

/// Build the prompt for `question` after `history`, fitting `budget` tokens (the window minus
/// room for the answer).
pub fn build(
    engine: &Engine,
    history: &[Message],
    question: &str,
    mut sources: Vec<Source>,
    budget: usize,
) -> LlmResult<PromptPlan> {
    let mut dropped_sources = Vec::new();
    let mut history = history.to_vec();
    let mut dropped_messages = 0;
    loop {
        let (messages, quoted) = messages(engine, &history, question, &sources);
        let ids = engine.chat_prompt(&messages)?;
        if ids.len() <= budget {
            let bytes: Vec<&[u8]> = ids
                .iter()
                .map(|&id| engine.tokenizer.token_bytes(id))
                .collect();
            let pieces: Vec<(usize, &str)> = quoted.iter().map(|(n, t)| (*n, t.as_str())).collect();
            return Ok(PromptPlan {
                prompt_tokens: ids.len(),
                source_spans: spans_of(&bytes, &pieces),
                ids,
                sources,
                dropped_sources,
                dropped_messages,
            });
        }
        if let Some(s) = sources.pop() {
            dropped_sources.push(s);
        } else if !history.is_empty() {
            let n = history.len().min(2);
            history.drain(..n);
            dropped_messages += n;
        } else {
            return Err(LlmError::ContextOverflow {
                tokens: ids.len(),
                context: budget,
            });
        }
    }
}

/// The messages of the prompt, and the text quoting each source.
fn messages(
    engine: &Engine,
    history: &[Message],
    question: &str,
    sources: &[Source],
) -> (Vec<Message>, Vec<(usize, String)>) {
    let mut quoted = Vec::new();
    let mut system = String::from(INSTRUCTIONS);
    system.push_str("\n\nSources:");
    for s in sources {
        let c = &s.chunk;
        let heading = if c.heading.is_empty() {
            String::new()
        } else {
            format!(" > {}", c.heading)
        };
        let header = format!("[{}] {}{heading} ({})", s.n, c.title, s.location());
        // Titles, headings and paths come from documents too.
        let safe = |t: &str| engine.tokenizer.neutralize(t);
        let quote = format!("{}\n{}", safe(&header), safe(c.text.trim()));
        system.push_str("\n\n");
        system.push_str(&quote);
        quoted.push((s.n, quote));
    }
    if sources.is_empty() {
        system.push_str("\n(none found)");
    }
    let mut all = vec![Message::new(Role::System, system)];
    all.extend(
        history
            .iter()
            .map(|m| Message::new(m.role, engine.tokenizer.neutralize(&m.content))),
    );
    all.push(Message::new(
        Role::User,
        engine.tokenizer.neutralize(question),
    ));
    (all, quoted)
}

/// The source numbers `text` cites as `[n]` or `[n, m]`, in order of first citation, limited
/// to `1..=max`.
pub fn citations(text: &str, max: usize) -> Vec<usize> {
    let mut found = Vec::new();
    for piece in cited_pieces(text) {
        if let Piece::Citation(n) = piece
            && (1..=max).contains(&n)
            && !found.contains(&n)
        {
            found.push(n);
        }
    }
    found
}

/// A stretch of answer text, or one source number it cites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Citation(usize),
}

/// `text` cut into plain stretches and citations: `[2]` is one citation, `[1, 3]` two; brackets
/// holding anything else stay text.
pub fn cited_pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut plain_from = 0;
    let mut at = 0;
    while let Some(open) = text[at..].find('[').map(|i| i + at) {
        let Some(close) = text[open..].find(']').map(|i| i + open) else {
            break;
        };
        let numbers: Option<Vec<usize>> = text[open + 1..close]
            .split(',')
            .map(|p| p.trim().parse::<usize>().ok())
            .collect();
        match numbers {
            Some(numbers) => {
                if plain_from < open {
                    pieces.push(Piece::Text(&text[plain_from..open]));
                }
                pieces.extend(numbers.into_iter().map(Piece::Citation));
                plain_from = close + 1;
                at = close + 1;
            }
            None => at = open + 1,
        }
    }
    if plain_from < text.len() {
        pieces.push(Piece::Text(&text[plain_from..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    #[test]
    fn citations_are_read_in_order_without_duplicates() {
        let text =
            "BM25 ranks by terms [2]. Vectors compare meaning [1, 3]. Again [2]; bad [9] [x].";
        assert_eq!(super::citations(text, 3), vec![2, 1, 3]);
    }

    #[test]
    fn answers_cut_into_text_and_citation_chips() {
        use super::Piece::{Citation, Text};
        let pieces = super::cited_pieces("Feed it [2]. See [1, 3] and [x] or [");
        assert_eq!(
            pieces,
            vec![
                Text("Feed it "),
                Citation(2),
                Text(". See "),
                Citation(1),
                Citation(3),
                Text(" and [x] or ["),
            ]
        );
        assert_eq!(super::cited_pieces("[4]"), vec![Citation(4)]);
    }
}
