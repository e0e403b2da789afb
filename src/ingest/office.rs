//! Office formats that are XML inside a zip: docx (Word) and hwpx (Hangul). Read with the zip
//! and quick-xml crates directly: the text lives in a few known XML parts, and reading them as a
//! stream is faster and more forgiving of unusual producers than building a full document model.

use super::document::{Extracted, TextBuilder};
use super::error::ExtractError;
use quick_xml::Reader;
use quick_xml::events::Event;
use std::io::{Cursor, Read};

/// Guards against zip bombs: no XML part we read may inflate beyond this.
const MAX_PART_BYTES: u64 = 256 * 1024 * 1024;

pub fn docx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut zip = open_zip("DOCX", bytes)?;
    let xml = read_part(&mut zip, "DOCX", "word/document.xml")?;
    let mut out = TextBuilder::default();
    paragraphs(&xml, "DOCX", Dialect::WORD, &mut out)?;
    Ok(out.finish())
}

pub fn hwpx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut zip = open_zip("HWPX", bytes)?;
    let mut sections: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.starts_with("Contents/section") && n.ends_with(".xml"))
        .map(|n| n.into_owned())
        .collect();
    if sections.is_empty() {
        return Err(ExtractError::corrupt(
            "HWPX",
            "no Contents/section*.xml part",
        ));
    }
    sections.sort_by_key(|n| section_number(n));
    let mut out = TextBuilder::default();
    for name in sections {
        let xml = read_part(&mut zip, "HWPX", &name)?;
        paragraphs(&xml, "HWPX", Dialect::HWPX, &mut out)?;
    }
    Ok(out.finish())
}

fn section_number(name: &str) -> u32 {
    name.trim_start_matches("Contents/section")
        .trim_end_matches(".xml")
        .parse()
        .unwrap_or(u32::MAX)
}

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

fn open_zip<'a>(format: &'static str, bytes: &'a [u8]) -> Result<Zip<'a>, ExtractError> {
    zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ExtractError::corrupt(format, e))
}

fn read_part(zip: &mut Zip<'_>, format: &'static str, name: &str) -> Result<String, ExtractError> {
    let part = zip
        .by_name(name)
        .map_err(|e| ExtractError::corrupt(format, format!("{name}: {e}")))?;
    let mut xml = String::new();
    part.take(MAX_PART_BYTES)
        .read_to_string(&mut xml)
        .map_err(|e| ExtractError::corrupt(format, format!("{name}: {e}")))?;
    Ok(xml)
}

/// Element names of a word-processing XML dialect (local names, namespace prefixes ignored).
struct Dialect {
    paragraph: &'static str,
    text: &'static str,
    tab: &'static str,
    line_break: &'static str,
    /// The element whose `val` attribute names the paragraph style, where the format has one.
    style: Option<&'static str>,
}

impl Dialect {
    const WORD: Dialect = Dialect {
        paragraph: "p",
        text: "t",
        tab: "tab",
        line_break: "br",
        style: Some("pStyle"),
    };
    const HWPX: Dialect = Dialect {
        paragraph: "p",
        text: "t",
        tab: "tab",
        line_break: "lineBreak",
        style: None,
    };
}

/// Streams paragraphs out of the XML; paragraphs styled as headings extend the heading path.
fn paragraphs(
    xml: &str,
    format: &'static str,
    dialect: Dialect,
    out: &mut TextBuilder,
) -> Result<(), ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut para = String::new();
    let mut level: Option<usize> = None;
    let mut in_text = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ExtractError::corrupt(format, e))?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == dialect.text {
                    in_text = true;
                } else if name == dialect.tab {
                    para.push('\t');
                } else if name == dialect.line_break {
                    para.push('\n');
                } else if Some(name) == dialect.style {
                    level = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "val")
                        .and_then(|a| heading_level(&a.value));
                }
            }
            Event::Text(t) if in_text => para.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => push_entity(&r, &mut para),
            Event::End(e) => {
                let name = e.local_name();
                if name.as_ref() == dialect.text {
                    in_text = false;
                } else if name.as_ref() == dialect.paragraph {
                    match level.take() {
                        Some(level) => out.heading(level, &para),
                        None => out.paragraph(&para, None),
                    }
                    para.clear();
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn push_entity(reference: &quick_xml::events::BytesRef<'_>, out: &mut String) {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        out.push(c);
    } else if let Some(s) = quick_xml::escape::resolve_xml_entity(reference) {
        out.push_str(s);
    }
}

/// Word style ids: "Heading1".."Heading9" (English Word), "Title"; localised Word writes numeric
/// ids for headings, which we cannot tell from other numbered styles, so those stay paragraphs.
fn heading_level(style: &str) -> Option<usize> {
    let lower = style.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let digits = lower.strip_prefix("heading")?.trim();
    digits.parse().ok().filter(|l| (1..=9).contains(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_styles() {
        assert_eq!(heading_level("Heading2"), Some(2));
        assert_eq!(heading_level("Title"), Some(1));
        assert_eq!(heading_level("Normal"), None);
    }

    #[test]
    fn corrupt_zip_is_an_error() {
        assert!(matches!(
            docx(b"PK\x03\x04garbage"),
            Err(ExtractError::Corrupt { .. })
        ));
        assert!(matches!(
            hwpx(b"not a zip"),
            Err(ExtractError::Corrupt { .. })
        ));
    }
}
