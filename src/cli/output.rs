//! Printing results, summaries and status for people (and JSON for programs).

use glassbox::library::{IndexSummary, LibraryStatus};
use glassbox::retrieve::SearchResult;
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

pub fn batch_results(query: &str, found: &[SearchResult], json: bool) -> anyhow::Result<()> {
    if json {
        let line = serde_json::json!({ "query": query, "results": found });
        println!("{line}");
        return Ok(());
    }
    println!("# {query}");
    results(found, false)
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
