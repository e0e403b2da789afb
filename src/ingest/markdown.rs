//! Markdown: the text stays as written (so line numbers match the file); ATX headings outside
//! fenced code blocks start new blocks with a heading path.

use super::document::{Block, Extracted, collapse_ws};

pub fn extract(text: String, encoding: &'static str) -> Extracted {
    let mut blocks = Vec::new();
    let mut heading: Vec<String> = Vec::new();
    let mut title = None;
    let mut block_start = 0;
    let mut fence: Option<&str> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some((level, name)) = atx_heading(trimmed) {
            push_block(&mut blocks, block_start..offset, &heading);
            heading.truncate(level - 1);
            heading.push(name.clone());
            if title.is_none() && level == 1 {
                title = Some(name);
            }
            block_start = offset;
        }
        offset += line.len();
    }
    push_block(&mut blocks, block_start..text.len(), &heading);
    Extracted {
        text,
        title,
        blocks,
        encoding: Some(encoding),
    }
}

fn push_block(blocks: &mut Vec<Block>, range: std::ops::Range<usize>, heading: &[String]) {
    if !range.is_empty() {
        blocks.push(Block {
            range,
            heading: heading.to_vec(),
            page: None,
        });
    }
}

/// `## Title ##` → (2, "Title").
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r'])) {
        return None;
    }
    let name = collapse_ws(rest.trim().trim_end_matches('#'));
    (!name.is_empty()).then_some((level, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_make_paths_and_fences_are_ignored() {
        let text = "# 검색\nintro\n## BM25 점수\nbody\n```sh\n# not a heading\n```\n# Other\nend\n";
        let doc = extract(text.to_owned(), "UTF-8");
        assert_eq!(doc.title.as_deref(), Some("검색"));
        let paths: Vec<_> = doc.blocks.iter().map(|b| b.heading.join(" > ")).collect();
        assert_eq!(paths, ["검색", "검색 > BM25 점수", "Other"]);
        assert!(doc.text[doc.blocks[1].range.clone()].contains("# not a heading"));
    }

    #[test]
    fn hashtags_are_not_headings() {
        assert_eq!(atx_heading("#hashtag"), None);
        assert_eq!(atx_heading("### 제목 ###"), Some((3, "제목".into())));
    }
}
