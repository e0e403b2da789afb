//! Retrieval evaluation: how well each mode finds what a labelled question set says it should
//! (hit@1, hit@5, MRR@10, nDCG@10), so a learner sees what each stage buys on their documents.

use super::{Mode, SearchOptions};
use crate::error::{Error, Result};
use crate::library::Library;
use std::path::Path;

/// A question and what should be found: file names (or path suffixes) of relevant documents, or
/// `text:` followed by a string that a relevant passage contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub text: String,
    pub targets: Vec<String>,
}

/// Reads `question<TAB>target[<TAB>target…]` lines; a header line starting with `query` and
/// lines starting with `#` are skipped.
pub fn read_qrels(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Path {
        path: path.to_owned(),
        source,
    })?;
    let questions: Vec<Question> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("query\t"))
        .filter_map(|line| {
            let mut parts = line.split('\t').map(str::trim);
            let text = parts.next()?.to_owned();
            let targets: Vec<String> = parts.filter(|t| !t.is_empty()).map(str::to_owned).collect();
            (!text.is_empty() && !targets.is_empty()).then_some(Question { text, targets })
        })
        .collect();
    if questions.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no questions found; each line is QUESTION<TAB>FILE-NAME (or text:PASSAGE-TEXT)",
            path.display()
        )));
    }
    Ok(questions)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub hit_at_1: f64,
    pub hit_at_5: f64,
    pub mrr_at_10: f64,
    pub ndcg_at_10: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModeScore {
    pub mode: Mode,
    pub questions: usize,
    pub metrics: Metrics,
    pub mean_ms: f64,
}

/// Scores one mode. For file targets the ranked chunks become a ranked list of distinct
/// documents, so one long relevant document cannot fill every rank; `text:` targets are judged
/// passage by passage.
pub async fn evaluate(library: &Library, questions: &[Question], mode: Mode) -> Result<ModeScore> {
    let opts = SearchOptions {
        k: 30,
        mode: Some(mode),
        ..SearchOptions::default()
    };
    let mut sum = Metrics::default();
    let mut ms = 0.0;
    for question in questions {
        let response = library.search(&question.text, &opts).await?;
        ms += response.trace.timings.total_ms;
        // Passage targets are judged per chunk; document targets per document.
        let by_passage = question.targets.iter().any(|t| t.starts_with("text:"));
        let mut seen = std::collections::HashSet::new();
        let relevance: Vec<bool> = response
            .results
            .iter()
            .filter(|r| by_passage || seen.insert(r.chunk.path.clone()))
            .map(|r| {
                question
                    .targets
                    .iter()
                    .any(|t| matches(t, &r.chunk.path, &r.chunk.text))
            })
            .take(10)
            .collect();
        let m = metrics(&relevance, question.targets.len());
        sum.hit_at_1 += m.hit_at_1;
        sum.hit_at_5 += m.hit_at_5;
        sum.mrr_at_10 += m.mrr_at_10;
        sum.ndcg_at_10 += m.ndcg_at_10;
    }
    let n = questions.len().max(1) as f64;
    Ok(ModeScore {
        mode,
        questions: questions.len(),
        metrics: Metrics {
            hit_at_1: sum.hit_at_1 / n,
            hit_at_5: sum.hit_at_5 / n,
            mrr_at_10: sum.mrr_at_10 / n,
            ndcg_at_10: sum.ndcg_at_10 / n,
        },
        mean_ms: ms / n,
    })
}

fn matches(target: &str, path: &Path, text: &str) -> bool {
    match target.strip_prefix("text:") {
        Some(needle) => text.contains(needle),
        None => path.ends_with(target),
    }
}

/// Metrics of one ranked relevance list (best first, at most 10) with `relevant` targets.
pub fn metrics(relevance: &[bool], relevant: usize) -> Metrics {
    let first = relevance.iter().position(|&r| r);
    let dcg: f64 = relevance
        .iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..relevant.min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    Metrics {
        hit_at_1: f64::from(first == Some(0)),
        hit_at_5: f64::from(first.is_some_and(|p| p < 5)),
        mrr_at_10: first.map_or(0.0, |p| 1.0 / (p + 1) as f64),
        ndcg_at_10: if ideal > 0.0 {
            (dcg / ideal).min(1.0)
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_second_place_hit() {
        let m = metrics(&[false, true, false], 1);
        assert_eq!((m.hit_at_1, m.hit_at_5, m.mrr_at_10), (0.0, 1.0, 0.5));
        assert!((m.ndcg_at_10 - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(metrics(&[false; 10], 1), Metrics::default());
    }
}
