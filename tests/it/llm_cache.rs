//! The LLM cache over a real library and the real model: a question asked again is answered
//! from the cache (exactly what the model would say; its attention can be computed again), and
//! anything that would change the answer (an edited source, another token budget, a cancelled
//! run) is a miss.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use glassbox::Library;
use glassbox::answer::{Answer, AskOptions, LlmCacheUse, ask};
use glassbox::catalog::{CachedAnswer, Catalog, LlmCacheStats};
use glassbox::llm::{AttentionKind, AttnRecord, CaptureSpec, Engine, StopReason};

const QUESTION: &str = "How do you revive a neglected sourdough starter?";

async fn ask_with(
    library: &Library,
    engine: &mut Engine,
    opts: &AskOptions,
    cancel: Option<&AtomicBool>,
) -> (Answer, String) {
    let mut streamed = String::new();
    let answer = ask(library, engine, &[], QUESTION, opts, cancel, &mut |t| {
        streamed.push_str(t)
    })
    .await
    .unwrap();
    (answer, streamed)
}

/// Attention rows by (layer, head, position).
fn rows(records: &[AttnRecord]) -> HashMap<(usize, usize, usize), &[f32]> {
    records
        .iter()
        .map(|r| ((r.layer, r.row.head, r.row.pos), r.row.probs.as_slice()))
        .collect()
}

#[tokio::test]
async fn a_question_asked_again_comes_from_the_llm_cache_until_its_sources_change() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    crate::common::copy_dir(&crate::common::data("en-corpus"), &corpus);
    let library = crate::common::indexed_library(dir.path(), &corpus).await;
    let mut engine = crate::llm::engine(AttentionKind::CpuFused);
    let config = engine.model.config.clone();
    let opts = AskOptions {
        sources: 3,
        max_tokens: 12,
        capture: CaptureSpec {
            layers: vec![config.n_layer - 1],
            heads: (0..config.n_head).collect(),
        },
        ..AskOptions::default()
    };
    let catalog = library.catalog();

    let (first, _) = ask_with(&library, &mut engine, &opts, None).await;
    assert_eq!(first.llm_cache, LlmCacheUse::Miss);
    assert_eq!(catalog.llm_cache_stats().await.unwrap().answers, 1);

    // Asked again: the same answer, streamed, without running the model.
    let (again, streamed) = ask_with(&library, &mut engine, &opts, None).await;
    let LlmCacheUse::Hit { generation_s, hits } = again.llm_cache else {
        panic!("expected a hit, got {:?}", again.llm_cache);
    };
    assert_eq!(hits, 1);
    assert!(generation_s > 0.0);
    assert_eq!((&again.text, &again.ids), (&first.text, &first.ids));
    assert_eq!(streamed, first.text);
    assert_eq!(again.stop, first.stop);
    assert!(again.token_times.is_empty(), "no token was decoded");
    assert!(again.attention.is_empty(), "the model did not run");
    // What the window does for the attention panel: one pass over the prompt and the answer
    // matches what generation recorded (rows of the prompt and of every answer token).
    let mut tokens = again.plan.ids.clone();
    tokens.extend(&again.ids[..again.ids.len() - 1]);
    let recomputed = engine.attention_of(&tokens, &opts.capture).unwrap();
    let (recorded, recomputed) = (rows(&first.attention), rows(&recomputed));
    let answer_rows = |r: &HashMap<_, _>| {
        r.keys()
            .filter(|&&(_, _, pos)| pos >= first.plan.prompt_tokens)
            .count()
    };
    assert_eq!(answer_rows(&recomputed), answer_rows(&recorded));
    assert!(answer_rows(&recorded) >= config.n_head);
    for (key, probs) in &recorded {
        let other = recomputed.get(key).unwrap_or_else(|| panic!("row {key:?}"));
        let gap = crate::common::largest_difference(probs, other);
        assert!(gap < 2e-3, "row {key:?} differs by {gap}");
    }
    let stats = catalog.llm_cache_stats().await.unwrap();
    assert_eq!((stats.answers, stats.hits), (1, 1));
    assert!((stats.saved_s - generation_s).abs() < 1e-9);

    // A hit is what the model says: a new engine, the cache turned off, says the same.
    let mut fresh = crate::llm::engine(AttentionKind::CpuFused);
    let no_cache = AskOptions {
        cache: false,
        ..opts.clone()
    };
    let (generated, _) = ask_with(&library, &mut fresh, &no_cache, None).await;
    assert_eq!(generated.llm_cache, LlmCacheUse::Off);
    assert_eq!(generated.ids, first.ids);
    assert_eq!(catalog.llm_cache_stats().await.unwrap().answers, 1);

    // Another token budget is another answer.
    let longer = AskOptions {
        max_tokens: 13,
        ..opts.clone()
    };
    let (other, _) = ask_with(&library, &mut engine, &longer, None).await;
    assert_eq!(other.llm_cache, LlmCacheUse::Miss);

    // Edit every source the answer quoted: the prompt changes, so the old answer is not given.
    for source in &first.plan.sources {
        let text = std::fs::read_to_string(&source.chunk.path).unwrap();
        std::fs::write(&source.chunk.path, text.replace("starter", "levain")).unwrap();
    }
    crate::common::index(&library, std::slice::from_ref(&corpus)).await;
    let (edited, _) = ask_with(&library, &mut engine, &opts, None).await;
    assert_eq!(edited.llm_cache, LlmCacheUse::Miss);
    assert_eq!(catalog.llm_cache_stats().await.unwrap().answers, 3);
}

#[tokio::test]
async fn a_cancelled_answer_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let library =
        crate::common::indexed_library(dir.path(), &crate::common::data("en-corpus")).await;
    let mut engine = crate::llm::engine(AttentionKind::CpuFused);
    let opts = AskOptions {
        sources: 2,
        max_tokens: 8,
        ..AskOptions::default()
    };
    let cancel = AtomicBool::new(true);
    let (stopped, _) = ask_with(&library, &mut engine, &opts, Some(&cancel)).await;
    assert_eq!(stopped.stop, StopReason::Cancelled);
    assert_eq!(
        library.catalog().llm_cache_stats().await.unwrap().answers,
        0
    );
    let (whole, _) = ask_with(&library, &mut engine, &opts, None).await;
    assert_eq!(whole.llm_cache, LlmCacheUse::Miss, "not the cancelled one");
}

#[tokio::test]
async fn the_cache_table_counts_hits_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    let entry = CachedAnswer {
        text: "안녕하세요 [1]".to_owned(),
        ids: vec![1, 2, 3],
        stop: StopReason::EndOfText,
        generation_s: 2.5,
        hits: 0,
    };
    assert_eq!(catalog.cached_answer("k").await.unwrap(), None);
    catalog.store_answer("k", "model", &entry).await.unwrap();
    for hits in 1..=2 {
        let got = catalog.cached_answer("k").await.unwrap().unwrap();
        assert_eq!(
            got,
            CachedAnswer {
                hits,
                ..entry.clone()
            }
        );
    }
    assert_eq!(
        catalog.llm_cache_stats().await.unwrap(),
        LlmCacheStats {
            answers: 1,
            hits: 2,
            saved_s: 5.0
        }
    );
    assert_eq!(catalog.clear_llm_cache().await.unwrap(), 1);
    assert_eq!(catalog.cached_answer("k").await.unwrap(), None);
    assert_eq!(
        catalog.llm_cache_stats().await.unwrap(),
        LlmCacheStats::default()
    );
}
