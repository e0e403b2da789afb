//! Printing results, summaries and status for people (and JSON for programs).

use glassbox::Library;
use glassbox::library::{EmbedSummary, IndexSummary, LibraryStatus};
use glassbox::retrieve::{SearchResponse, SearchResult, SearchTrace, StageHit};
use std::io::{IsTerminal, Write};

pub fn results(results: &[SearchResult], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for result in results {
            writeln!(out, "{}", serde_json::to_string(result)?)?;
        }
        return Ok(());
    }
    if results.is_empty() {
        writeln!(out, "no results")?;
    }
    let color = std::io::stdout().is_terminal();
    for r in results {
        let mut place = format!("lines {}-{}", r.chunk.lines.0, r.chunk.lines.1);
        if let Some(page) = r.chunk.page {
            place = format!("page {page}, {place}");
        }
        writeln!(
            out,
            "{:>2}. {:>7.3}  {}  ({place})",
            r.rank,
            r.score,
            r.chunk.path.display()
        )?;
        if !r.chunk.heading.is_empty() {
            writeln!(out, "    § {}", r.chunk.heading)?;
        }
        writeln!(
            out,
            "    {}",
            highlight(&r.snippet.text, &r.snippet.highlights, color)
        )?;
    }
    Ok(())
}

pub fn batch_results(response: &SearchResponse, json: bool) -> anyhow::Result<()> {
    let query = &response.trace.query;
    if json {
        let line = serde_json::json!({ "query": query, "results": response.results, "trace": response.trace });
        println!("{line}");
        return Ok(());
    }
    println!("# {query}");
    results(&response.results, false)
}

/// The search trace as a table: every candidate with its rank and score in each stage.
pub async fn explain(library: &Library, trace: &SearchTrace, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::json!({ "trace": trace }));
        return Ok(());
    }
    let order: Vec<i64> = if !trace.reranked.is_empty() {
        trace.reranked.iter().map(|h| h.chunk_id).collect()
    } else if !trace.fused.is_empty() {
        trace.fused.iter().map(|f| f.chunk_id).collect()
    } else {
        trace
            .bm25
            .iter()
            .chain(&trace.vector)
            .map(|h| h.chunk_id)
            .collect()
    };
    let order: Vec<i64> = order.into_iter().take(15).collect();
    let names: std::collections::HashMap<i64, String> = library
        .catalog()
        .chunks(&order)
        .await?
        .into_iter()
        .map(|c| {
            let name = c
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (c.chunk_id, format!("{name}:{}-{}", c.lines.0, c.lines.1))
        })
        .collect();
    let find = |list: &[StageHit], id: i64| list.iter().find(|h| h.chunk_id == id).copied();
    let cell = |hit: Option<StageHit>, precision: usize| {
        hit.map_or("-".to_owned(), |h| {
            format!("#{} {:.*}", h.rank, precision, h.score)
        })
    };
    println!("\nmode {}   RRF k = {}", trace.mode.name(), trace.rrf_k);
    println!(
        "{:<4} {:<34} {:>14} {:>14} {:>22} {:>14}",
        "", "passage", "BM25", "vector cos", "RRF (bm25 + vector)", "rerank"
    );
    for (i, id) in order.iter().enumerate() {
        let fused = trace.fused.iter().find(|f| f.chunk_id == *id);
        let rrf = fused.map_or("-".to_owned(), |f| {
            let part =
                |c: Option<glassbox::retrieve::fusion::Contribution>| c.map_or(0.0, |c| c.rrf);
            format!("{:.4} ({:.4}+{:.4})", f.score, part(f.bm25), part(f.vector))
        });
        let name: String = names
            .get(id)
            .cloned()
            .unwrap_or_default()
            .chars()
            .take(34)
            .collect();
        println!(
            "{:<4} {:<34} {:>14} {:>14} {:>22} {:>14}",
            i + 1,
            name,
            cell(find(&trace.bm25, *id), 2),
            cell(find(&trace.vector, *id), 3),
            rrf,
            cell(find(&trace.reranked, *id), 3)
        );
    }
    let t = &trace.timings;
    println!(
        "timings (ms): bm25 {:.1}, embed query {:.1}, vector {:.1}, fusion {:.2}, rerank {:.1}, fetch {:.1}, total {:.1}",
        t.bm25_ms, t.embed_query_ms, t.vector_ms, t.fusion_ms, t.rerank_ms, t.fetch_ms, t.total_ms
    );
    Ok(())
}

/// `glassbox eval`: every mode the installed models allow, side by side.
pub async fn eval(library: &Library, qrels: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use glassbox::retrieve::Mode;
    let questions = glassbox::retrieve::eval::read_qrels(qrels)?;
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| match m {
            Mode::Bm25 => true,
            Mode::Vector | Mode::Hybrid => library.embedder().is_some(),
            Mode::HybridRerank => library.embedder().is_some() && library.reranker().is_some(),
        })
        .collect();
    if !json {
        println!(
            "| mode | questions | hit@1 | hit@5 | MRR@10 | nDCG@10 | mean ms |\n|---|---|---|---|---|---|---|"
        );
    }
    for mode in modes {
        let score = glassbox::retrieve::eval::evaluate(library, &questions, mode).await?;
        if json {
            println!("{}", serde_json::to_string(&score)?);
            continue;
        }
        let m = score.metrics;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} |",
            mode.name(),
            score.questions,
            m.hit_at_1,
            m.hit_at_5,
            m.mrr_at_10,
            m.ndcg_at_10,
            score.mean_ms
        );
    }
    Ok(())
}

pub fn embed_summary(summary: &EmbedSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else if summary.embedded > 0 {
        println!(
            "{} chunks embedded in {:.1} s ({:.1} chunks/s)",
            summary.embedded,
            summary.seconds,
            summary.embedded as f64 / summary.seconds.max(1e-9)
        );
    }
    Ok(())
}

/// Marks matched ranges: bold yellow on a terminal, «guillemets» in plain output.
fn highlight(text: &str, ranges: &[(usize, usize)], color: bool) -> String {
    let (open, close) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("«", "»")
    };
    let mut out = String::with_capacity(text.len() + ranges.len() * 8);
    let mut at = 0;
    for &(start, end) in ranges {
        if start < at || end > text.len() {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(open);
        out.push_str(&text[start..end]);
        out.push_str(close);
        at = end;
    }
    out.push_str(&text[at..]);
    out.replace('\n', " ")
}

pub fn summary(summary: &IndexSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let mb = summary.bytes as f64 / 1e6;
    println!(
        "{} indexed ({} chunks), {} unchanged, {} moved, {} removed, {} skipped (unsupported type), {} failed; {:.1} MB in {:.1} s",
        summary.indexed,
        summary.chunks,
        summary.unchanged,
        summary.moved,
        summary.removed,
        summary.skipped,
        summary.failed.len(),
        mb,
        summary.seconds
    );
    for failed in &summary.failed {
        println!("  failed: {}: {}", failed.path.display(), failed.error);
    }
    if summary.cancelled {
        println!("cancelled: run `glassbox index` again to finish");
    }
    Ok(())
}

pub fn status(status: &LibraryStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(status)?);
        return Ok(());
    }
    println!("library: {}", status.data_dir.display());
    println!(
        "keyword analyzer: {}, {} chunks in the index",
        status.analyzer, status.indexed_chunks
    );
    if status.folders.is_empty() {
        println!("no folders yet: add one with `glassbox index FOLDER`");
    }
    for f in &status.folders {
        println!(
            "  {}  {} indexed, {} failed, {} chunks",
            f.folder.path.display(),
            f.indexed,
            f.failed,
            f.chunks
        );
    }
    for failed in &status.failed {
        println!("  failed: {}: {}", failed.path.display(), failed.error);
    }
    Ok(())
}
