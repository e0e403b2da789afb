//! Korean keyword retrieval quality on the labelled question set in tests/data (the same
//! evaluation `glassbox bench tokenizers` reports in BENCHMARKS.md).

use crate::common::*;
use glassbox::bench::score_analyzer;
use glassbox::index::Analyzer;
use glassbox::retrieve::eval::read_qrels;

#[tokio::test]
async fn default_analyzer_finds_korean_documents_despite_particles() {
    let questions = read_qrels(&data("ko-queries.tsv")).unwrap();
    assert!(questions.len() >= 40);
    let corpus = data("ko-corpus");
    let tmp = tempfile::tempdir().unwrap();
    let simple = score_analyzer(
        Analyzer::Simple,
        &corpus,
        &questions,
        &tmp.path().join("simple"),
    )
    .await
    .unwrap();
    let chosen = score_analyzer(
        Analyzer::default(),
        &corpus,
        &questions,
        &tmp.path().join("default"),
    )
    .await
    .unwrap();
    assert!(chosen.metrics.hit_at_5 >= 0.95, "{chosen:?}");
    assert!(chosen.metrics.hit_at_1 >= 0.9, "{chosen:?}");
    assert!(
        chosen.metrics.hit_at_1 > simple.metrics.hit_at_1 + 0.1,
        "{chosen:?} vs {simple:?}"
    );
}

#[tokio::test]
async fn mixed_korean_and_english_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let library = glassbox::Library::open(tmp.path()).await.unwrap();
    index(&library, &[data("ko-corpus")]).await;
    let top = top_file(&library, "BM25의 inverted index는").await;
    assert_eq!(top.as_deref(), Some("13-bm25-search.md"));
    let top = top_file(&library, "lithium-ion 배터리를 관리하는 BMS").await;
    assert_eq!(top.as_deref(), Some("23-ev-battery.md"));
}
