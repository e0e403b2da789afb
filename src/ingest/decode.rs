//! Turning file bytes into NFC text: BOMs, UTF-8, and legacy encodings (EUC-KR/CP949 above all).

use super::error::ExtractError;
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use unicode_normalization::{UnicodeNormalization, is_nfc_quick};

/// Decoded text and the name of the encoding it came from (recorded in the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub encoding: &'static str,
}

/// Decodes `bytes` as text. Order: BOM, valid UTF-8, then a statistical guess (chardetng)
/// biased towards Korean, because legacy Korean files are the common non-UTF-8 case here.
pub fn decode(bytes: &[u8]) -> Result<Decoded, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return decode_with(encoding, &bytes[bom_len..]);
    }
    if looks_binary(bytes) {
        return Err(ExtractError::Binary);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Decoded {
            text: nfc(text),
            encoding: UTF_8.name(),
        });
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let guess = detector.guess(Some(b"kr"), chardetng::Utf8Detection::Deny);
    decode_with(guess, bytes)
}

fn decode_with(encoding: &'static Encoding, bytes: &[u8]) -> Result<Decoded, ExtractError> {
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    // A handful of replacement characters in a large file is tolerable damage; a text that is
    // mostly undecodable means the guess is wrong and indexing it would only add noise.
    if had_errors && share(&text, |c| c == char::REPLACEMENT_CHARACTER) > 0.01 {
        return Err(ExtractError::UnknownEncoding);
    }
    // Single-byte encodings decode any byte sequence, so a wrong guess shows up as control
    // characters instead of errors.
    if share(&text, is_stray_control) > 0.01 {
        return Err(ExtractError::UnknownEncoding);
    }
    if text.contains('\0') && encoding != UTF_16LE && encoding != UTF_16BE {
        return Err(ExtractError::Binary);
    }
    Ok(Decoded {
        text: nfc(&text),
        encoding: encoding.name(),
    })
}

/// NUL bytes do not occur in text files (UTF-16 is caught by its BOM before this check).
fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8192).any(|&b| b == 0)
}

fn share(text: &str, pred: impl Fn(char) -> bool) -> f64 {
    let total = text.chars().count().max(1);
    text.chars().filter(|&c| pred(c)).count() as f64 / total as f64
}

fn is_stray_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}' | '\u{1b}')
}

/// Unicode NFC, so that decomposed Hangul (as macOS writes file names and some text) matches
/// precomposed Hangul in queries. Cheap when the text is already NFC, which is the usual case.
pub fn nfc(text: &str) -> String {
    if is_nfc_quick(text.chars()) == unicode_normalization::IsNormalized::Yes {
        text.to_owned()
    } else {
        text.nfc().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp949_korean_is_recognised() {
        let (bytes, _, _) = encoding_rs::EUC_KR
            .encode("한국어 문서는 검색이 잘 되어야 합니다. 윈도우에서 저장한 파일입니다.");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.encoding, "EUC-KR");
        assert!(decoded.text.starts_with("한국어 문서는"));
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "안녕 hello".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.text, "안녕 hello");
        assert_eq!(decoded.encoding, "UTF-16LE");
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let decoded = decode("\u{FEFF}제목".as_bytes()).unwrap();
        assert_eq!(decoded.text, "제목");
    }

    #[test]
    fn decomposed_hangul_becomes_nfc() {
        let decomposed: String = "한글".nfd().collect();
        assert_ne!(decomposed, "한글");
        assert_eq!(decode(decomposed.as_bytes()).unwrap().text, "한글");
    }

    #[test]
    fn undecodable_bytes_are_an_unknown_encoding() {
        let bytes: Vec<u8> = (0..400u32)
            .map(|i| {
                if i % 2 == 0 {
                    0x81 + (i % 60) as u8
                } else {
                    1 + (i % 20) as u8
                }
            })
            .collect();
        assert_eq!(decode(&bytes), Err(ExtractError::UnknownEncoding));
    }

    #[test]
    fn binary_and_empty_are_rejected() {
        assert_eq!(
            decode(b"\x7fELF\x02\x01\x00\x00"),
            Err(ExtractError::Binary)
        );
        assert_eq!(decode(b""), Err(ExtractError::Empty));
    }
}
