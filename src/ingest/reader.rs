//! A cited passage shown where it stands in its document: the file is extracted again (so pdf and
//! docx read as they were indexed) and the passage's lines come with a few lines around them.
//! When the file is gone or changed, the stored passage is shown with a note saying so.

use crate::catalog::ChunkRecord;

use super::{FileKind, extract};

/// Lines of context shown before and after a passage.
const CONTEXT_LINES: usize = 12;

#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub chunk: ChunkRecord,
    /// First line number of `before` (1-based, as in the index).
    pub first_line: usize,
    pub before: String,
    /// The cited passage, to highlight.
    pub passage: String,
    pub after: String,
    /// Why the stored passage is shown instead of the file's text, if it is.
    pub note: Option<String>,
}

/// Reads `chunk`'s document and cuts out the passage with its context.
pub fn read(chunk: &ChunkRecord) -> Reading {
    match current_text(chunk) {
        Ok(text) => in_context(chunk, &text),
        Err(note) => Reading {
            chunk: chunk.clone(),
            first_line: chunk.lines.0 as usize,
            before: String::new(),
            passage: chunk.text.clone(),
            after: String::new(),
            note: Some(note),
        },
    }
}

fn current_text(chunk: &ChunkRecord) -> Result<String, String> {
    let path = &chunk.path;
    let kind = FileKind::from_path(path)
        .ok_or_else(|| format!("{} is no longer a supported file", path.display()))?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let extracted = extract::extract(kind, &bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(extracted.text)
}

fn in_context(chunk: &ChunkRecord, text: &str) -> Reading {
    let lines: Vec<&str> = text.lines().collect();
    let (start, end) = (chunk.lines.0 as usize, chunk.lines.1 as usize);
    if start == 0 || end > lines.len() || start > end {
        return Reading {
            note: Some(format!(
                "{} changed since it was indexed; showing the indexed passage",
                chunk.path.display()
            )),
            ..read_stored(chunk)
        };
    }
    let from = start.saturating_sub(CONTEXT_LINES).max(1);
    let to = (end + CONTEXT_LINES).min(lines.len());
    let join = |a: usize, b: usize| lines[a - 1..b].join("\n");
    Reading {
        chunk: chunk.clone(),
        first_line: from,
        before: if from < start {
            join(from, start - 1)
        } else {
            String::new()
        },
        passage: join(start, end),
        after: if end < to {
            join(end + 1, to)
        } else {
            String::new()
        },
        note: None,
    }
}

fn read_stored(chunk: &ChunkRecord) -> Reading {
    Reading {
        chunk: chunk.clone(),
        first_line: chunk.lines.0 as usize,
        before: String::new(),
        passage: chunk.text.clone(),
        after: String::new(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(path: std::path::PathBuf, lines: (u32, u32)) -> ChunkRecord {
        ChunkRecord {
            chunk_id: 1,
            document_id: 1,
            path,
            title: "t".into(),
            heading: String::new(),
            page: None,
            lines,
            text: "stored passage".into(),
        }
    }

    #[test]
    fn the_passage_comes_with_its_surroundings_or_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        let text: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        let r = read(&chunk(path.clone(), (20, 22)));
        assert_eq!(r.passage, "line 20\nline 21\nline 22");
        assert_eq!(r.first_line, 8);
        assert!(r.before.starts_with("line 8\n") && r.before.ends_with("line 19"));
        assert!(r.after.starts_with("line 23") && r.after.ends_with("line 34"));
        assert_eq!(r.note, None);

        let r = read(&chunk(path.clone(), (39, 45)));
        assert_eq!(r.passage, "stored passage");
        assert!(r.note.unwrap().contains("changed since it was indexed"));

        std::fs::remove_file(&path).unwrap();
        let r = read(&chunk(path, (1, 2)));
        assert_eq!(r.passage, "stored passage");
        assert!(r.note.unwrap().contains("cannot read"));
    }
}
