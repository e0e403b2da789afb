//! Every supported format is extracted with its structure; every kind of bad input becomes a
//! per-file error in the catalog and the run goes on.

use crate::common::*;
use glassbox::Library;
use glassbox::library::IndexSettings;

async fn fixture_library() -> (tempfile::TempDir, Library) {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    copy_dir(&data("docs"), &corpus.join("docs"));
    copy_dir(&data("bad"), &corpus.join("bad"));
    // Over the 1 MB cap set below; plain text so that only the size can make it fail.
    std::fs::write(
        corpus.join("bad/huge.txt"),
        "big file line\n".repeat(100_000),
    )
    .unwrap();
    let mut library = Library::open(&tmp.path().join("lib")).await.unwrap();
    let settings = IndexSettings {
        max_file_mb: 1,
        ..*library.settings()
    };
    library.set_settings(settings).await.unwrap();
    let summary = index(&library, &[corpus]).await;
    assert_eq!(summary.indexed, 11, "{summary:?}");
    assert_eq!(summary.failed.len(), 7, "{summary:?}");
    (tmp, library)
}

#[tokio::test]
async fn bad_inputs_are_recorded_with_reasons() {
    let (_tmp, library) = fixture_library().await;
    let status = library.status().await.unwrap();
    let reason = |name: &str| {
        status
            .failed
            .iter()
            .find(|f| file_name(&f.path) == name)
            .unwrap_or_else(|| panic!("{name} not recorded as failed: {:?}", status.failed))
            .error
            .clone()
    };
    assert!(reason("empty.txt").contains("empty"));
    assert!(reason("binary.txt").contains("binary"));
    assert!(reason("garbled.txt").contains("encoding"));
    assert!(reason("corrupt.pdf").contains("damaged"));
    assert!(reason("encrypted.pdf").contains("encrypted"));
    assert!(reason("truncated.docx").contains("damaged"));
    assert!(reason("huge.txt").contains("larger than the 1 MB limit"));
    assert_consistent(&library).await;
}

#[tokio::test]
async fn formats_are_extracted_with_structure() {
    let (_tmp, library) = fixture_library().await;

    // CP949 (Windows Korean) and UTF-16 text are decoded.
    assert_eq!(
        top_file(&library, "형태소 분석기가 조사를")
            .await
            .as_deref(),
        Some("windows-memo.txt")
    );
    assert_eq!(
        top_file(&library, "유니코드 문서를 읽는다")
            .await
            .as_deref(),
        Some("utf16-notes.txt")
    );

    // Decomposed Hangul (macOS) is normalised; so is a decomposed query.
    use unicode_normalization::UnicodeNormalization;
    let nfd_query: String = "자모로 분해".nfd().collect();
    assert_eq!(
        top_file(&library, &nfd_query).await.as_deref(),
        Some("mac-decomposed.md")
    );

    // HTML: visible text with heading paths, no script.
    let html = search(&library, "교차 인코더").await;
    assert_eq!(file_name(&html[0].chunk.path), "guide.html");
    assert_eq!(html[0].chunk.heading, "Hybrid retrieval > 재순위화");
    assert!(
        search(&library, "hidden never")
            .await
            .iter()
            .all(|r| !r.chunk.text.contains("never indexed"))
    );

    // PDF pages.
    let pdf = search(&library, "quantization").await;
    assert_eq!(
        (file_name(&pdf[0].chunk.path).as_str(), pdf[0].chunk.page),
        ("paper.pdf", Some(2))
    );
    let pdf = search(&library, "self attention").await;
    assert_eq!(
        (file_name(&pdf[0].chunk.path).as_str(), pdf[0].chunk.page),
        ("paper.pdf", Some(1))
    );

    // DOCX heading styles and XML entities; HWPX sections.
    let docx = search(&library, "lithium separators").await;
    assert_eq!(file_name(&docx[0].chunk.path), "report.docx");
    assert_eq!(docx[0].chunk.heading, "분기 보고서 > Risks");
    assert!(docx[0].chunk.text.contains("cells & separators"));
    assert_eq!(
        top_file(&library, "HWPX 압축").await.as_deref(),
        Some("proposal.hwpx")
    );
    assert_eq!(
        top_file(&library, "둘째 구역").await.as_deref(),
        Some("proposal.hwpx")
    );

    // CSV, JSON and code.
    assert_eq!(
        top_file(&library, "Busan population").await.as_deref(),
        Some("table.csv")
    );
    assert_eq!(
        top_file(&library, "설정 파일").await.as_deref(),
        Some("settings.json")
    );
    assert_eq!(
        top_file(&library, "split_whitespace tokens")
            .await
            .as_deref(),
        Some("tokenizer.rs")
    );
    assert_eq!(
        top_file(&library, "인사말을").await.as_deref(),
        Some("script.py")
    );
}

#[tokio::test]
async fn encodings_and_line_ranges_are_catalogued() {
    let (tmp, library) = fixture_library().await;
    let results = search(&library, "예산은 확정").await;
    let memo = results
        .iter()
        .find(|r| file_name(&r.chunk.path) == "windows-memo.txt")
        .unwrap();
    assert_eq!(memo.chunk.lines, (1, 3));
    assert!(memo.chunk.path.is_absolute());
    // Read the catalog as any SQLite client would.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        tmp.path().join("lib/glassbox.sqlite").display()
    ))
    .await
    .unwrap();
    let encoding: Option<String> =
        sqlx::query_scalar("SELECT encoding FROM documents WHERE path LIKE '%windows-memo.txt'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(encoding.as_deref(), Some("EUC-KR"));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}
