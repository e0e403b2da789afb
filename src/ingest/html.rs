//! HTML: visible text only (no scripts, styles or templates); h1–h6 become the heading path,
//! block elements become paragraphs.

use super::document::{Extracted, TextBuilder};
use ego_tree::iter::Edge;
use scraper::{Html, Node};

const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "iframe",
];
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "pre",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "br",
    "hr",
    "dt",
    "dd",
    "figcaption",
    "td",
    "th",
    "form",
    "body",
];

pub fn extract(text: &str, encoding: &'static str) -> Extracted {
    let html = Html::parse_document(text);
    let mut out = TextBuilder::default();
    let mut buf = String::new();
    let mut hidden_depth = 0usize;
    // An explicit traversal instead of recursion: deeply nested pages must not overflow the stack.
    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) if HIDDEN.contains(&el.name()) => hidden_depth += 1,
                Node::Element(el) if hidden_depth == 0 && is_break(el.name()) => {
                    out.paragraph(&std::mem::take(&mut buf), None);
                }
                Node::Text(t) if hidden_depth == 0 => buf.push_str(t),
                _ => {}
            },
            Edge::Close(node) => {
                let Node::Element(el) = node.value() else {
                    continue;
                };
                let name = el.name();
                if HIDDEN.contains(&name) {
                    hidden_depth -= 1;
                } else if hidden_depth == 0
                    && let Some(level) = heading_level(name)
                {
                    out.heading(level, &std::mem::take(&mut buf));
                } else if hidden_depth == 0 && is_break(name) {
                    out.paragraph(&std::mem::take(&mut buf), None);
                }
            }
        }
    }
    out.paragraph(&buf, None);
    if let Some(title) = page_title(&html) {
        out.set_title(&title);
    }
    let mut extracted = out.finish();
    extracted.encoding = Some(encoding);
    extracted
}

fn is_break(name: &str) -> bool {
    BLOCKS.contains(&name) || heading_level(name).is_some()
}

fn heading_level(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some((d - b'0') as usize),
        _ => None,
    }
}

fn page_title(html: &Html) -> Option<String> {
    let selector = scraper::Selector::parse("title").ok()?;
    let title: String = html.select(&selector).next()?.text().collect();
    (!title.trim().is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_and_heading_paths() {
        let page = "<html><head><title>페이지</title><style>p{}</style></head><body>\
            <h1>소개</h1><p>첫 문단 <b>굵게</b>.</p><script>var x = 1;</script>\
            <h2>세부</h2><ul><li>하나</li><li>둘</li></ul></body></html>";
        let doc = extract(page, "UTF-8");
        assert_eq!(doc.title.as_deref(), Some("페이지"));
        assert!(doc.text.contains("첫 문단 굵게."));
        assert!(!doc.text.contains("var x"));
        assert!(!doc.text.contains("p{}"));
        let last = doc.blocks.last().unwrap();
        assert_eq!(last.heading, ["소개", "세부"]);
        assert!(doc.text[last.range.clone()].contains("하나"));
    }
}
