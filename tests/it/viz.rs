//! The learner panels' numbers, computed from a real answer: a real library, the real model
//! answering with attention captured, and the real retrieval trace.

use glassbox::answer::{AskOptions, ask};
use glassbox::llm::{AttentionKind, CaptureSpec};
use glassbox::viz::attention::{bin, gqa_groups, mean, rollup};
use glassbox::viz::retrieval::{Fate, journeys};

#[tokio::test]
async fn an_answer_shows_where_its_attention_went_and_how_its_sources_were_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let library =
        crate::common::indexed_library(dir.path(), &crate::common::data("en-corpus")).await;
    let mut engine = crate::llm::engine(AttentionKind::CpuFused);
    let config = engine.model.config.clone();
    let last = config.n_layer - 1;
    let opts = AskOptions {
        sources: 3,
        max_tokens: 6,
        capture: CaptureSpec {
            layers: vec![last],
            heads: (0..config.n_head).collect(),
        },
        ..AskOptions::default()
    };
    let question = "How do you revive a neglected sourdough starter?";
    let answer = ask(
        &library,
        &mut engine,
        &[],
        question,
        &opts,
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    let plan = &answer.plan;

    // Each source's span spells that source in the prompt.
    assert_eq!(plan.source_spans.len(), plan.sources.len());
    let mut previous_end = 0;
    for (span, source) in plan.source_spans.iter().zip(&plan.sources) {
        assert_eq!(span.n, source.n);
        assert!(span.tokens.start >= previous_end && span.tokens.end <= plan.prompt_tokens);
        previous_end = span.tokens.end;
        let spelled = engine
            .tokenizer
            .decode(&plan.ids[span.tokens.clone()], false);
        let start: String = source.chunk.text.trim().chars().take(30).collect();
        assert!(
            spelled.contains(&start),
            "span of [{}]: {spelled:?}",
            source.n
        );
    }

    // Every captured row (answer tokens x heads of the last layer) rolls up to its whole mass.
    let rows: Vec<&[f32]> = answer
        .attention
        .iter()
        .filter(|r| r.layer == last && r.row.pos >= plan.prompt_tokens)
        .map(|r| r.row.probs.as_slice())
        .collect();
    assert!(rows.len() >= config.n_head, "captured {} rows", rows.len());
    for probs in &rows {
        let r = rollup(probs, plan.prompt_tokens, &plan.source_spans);
        let total = r.sources.iter().map(|s| s.1).sum::<f32>() + r.other_prompt + r.answer;
        assert!((total - 1.0).abs() < 1e-3, "{r:?}");
        assert!(r.sources.iter().all(|s| (0.0..=1.0).contains(&s.1)));
        let binned = bin(probs, 64);
        assert!(binned.len() <= 64);
        assert!((binned.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    }
    let first_token_heads: Vec<&[f32]> = rows[..config.n_head].to_vec();
    let head_mean = mean(&first_token_heads);
    assert!((head_mean.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    let groups = gqa_groups(config.n_head, config.n_kv_head);
    assert_eq!(groups.len(), config.n_kv_head);
    assert_eq!(groups.concat(), (0..config.n_head).collect::<Vec<_>>());

    // Every passage in the prompt is marked as such; every listed passage came from a stage.
    let trips = journeys(&answer.trace, Some(plan));
    for source in &plan.sources {
        let trip = trips
            .iter()
            .find(|t| t.chunk_id == source.chunk.chunk_id)
            .unwrap();
        assert_eq!(trip.fate, Some(Fate::InPrompt(source.n)));
    }
    assert!(
        trips
            .iter()
            .all(|t| t.bm25.is_some() || t.vector.is_some() || t.reranked.is_some())
    );
    assert!(trips.len() >= plan.sources.len());
    library.close().await;
}
