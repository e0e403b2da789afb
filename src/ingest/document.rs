//! The shape every extractor produces: one normalised text plus structural blocks over it.

use std::ops::Range;

/// What kind of file a document is, decided by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Hwpx,
    Csv,
    Json,
    Code,
}

impl FileKind {
    /// Classifies a path by extension; `None` means Glassbox does not index it.
    pub fn from_path(path: &std::path::Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "log" | "rst" | "org" | "adoc" => FileKind::Text,
            "md" | "markdown" | "mdx" => FileKind::Markdown,
            "html" | "htm" | "xhtml" => FileKind::Html,
            "pdf" => FileKind::Pdf,
            "docx" => FileKind::Docx,
            "hwpx" => FileKind::Hwpx,
            "csv" | "tsv" => FileKind::Csv,
            "json" | "jsonl" | "ndjson" => FileKind::Json,
            "rs" | "py" | "js" | "mjs" | "cjs" | "ts" | "tsx" | "jsx" | "go" | "java" | "kt"
            | "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "cs" | "rb" | "php" | "swift"
            | "scala" | "sh" | "bash" | "zsh" | "sql" | "lua" | "r" | "toml" | "yaml" | "yml"
            | "ini" | "css" | "scss" | "vue" | "svelte" | "dart" | "zig" | "hs" | "ml" | "ex"
            | "exs" | "erl" | "clj" | "pl" => FileKind::Code,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Text => "text",
            FileKind::Markdown => "markdown",
            FileKind::Html => "html",
            FileKind::Pdf => "pdf",
            FileKind::Docx => "docx",
            FileKind::Hwpx => "hwpx",
            FileKind::Csv => "csv",
            FileKind::Json => "json",
            FileKind::Code => "code",
        }
    }

    /// In line-oriented formats every line break is a good place to cut a chunk; in prose
    /// a single line break is often just wrapping inside a sentence.
    pub fn line_oriented(self) -> bool {
        matches!(self, FileKind::Code | FileKind::Csv | FileKind::Json)
    }
}

/// A run of the document text that shares a heading path and (for PDFs) a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Byte range into [`Extracted::text`].
    pub range: Range<usize>,
    pub heading: Vec<String>,
    pub page: Option<u32>,
}

/// The text of a document, normalised to NFC, with its structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    /// The source encoding for text formats; `None` for binary containers (pdf, docx, hwpx).
    pub encoding: Option<&'static str>,
}

impl Extracted {
    /// A document with no structure: one block over the whole text.
    pub fn plain(text: String, encoding: Option<&'static str>) -> Self {
        let blocks = vec![Block {
            range: 0..text.len(),
            heading: Vec::new(),
            page: None,
        }];
        Extracted {
            text,
            title: None,
            blocks,
            encoding,
        }
    }
}

/// Builds an [`Extracted`] from sections of text appended one after another, as the
/// structured extractors (html, pdf, docx, hwpx) produce them.
#[derive(Default)]
pub struct TextBuilder {
    text: String,
    blocks: Vec<Block>,
    heading: Vec<String>,
    title: Option<String>,
}

impl TextBuilder {
    /// Starts a new section under a heading of `level` (1 = top).
    pub fn heading(&mut self, level: usize, title: &str) {
        let title = collapse_ws(title);
        if title.is_empty() {
            return;
        }
        self.heading.truncate(level.saturating_sub(1));
        self.heading.push(title.clone());
        if self.title.is_none() {
            self.title = Some(title.clone());
        }
        self.paragraph(&title, None);
    }

    /// Appends a paragraph on its own line(s), under the current heading path.
    pub fn paragraph(&mut self, text: &str, page: Option<u32>) {
        // Normalise piece by piece so that block ranges stay valid byte offsets.
        let text = super::decode::nfc(text.trim());
        if text.is_empty() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(&text);
        self.text.push_str("\n\n");
        let end = start + text.len();
        match self.blocks.last_mut() {
            Some(last) if last.heading == self.heading && last.page == page => last.range.end = end,
            _ => self.blocks.push(Block {
                range: start..end,
                heading: self.heading.clone(),
                page,
            }),
        }
    }

    pub fn set_title(&mut self, title: &str) {
        let title = collapse_ws(title);
        if !title.is_empty() {
            self.title = Some(title);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn finish(self) -> Extracted {
        Extracted {
            text: self.text,
            title: self.title,
            blocks: self.blocks,
            encoding: None,
        }
    }
}

/// Collapses runs of whitespace (as HTML and XML text nodes carry them) into single spaces.
pub fn collapse_ws(text: &str) -> String {
    super::decode::nfc(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}
