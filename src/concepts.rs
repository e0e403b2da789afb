//! The concepts Glassbox explains, in Korean and English (`assets/concepts.toml`, compiled in),
//! and the learner panels that show them. `glassbox explain` prints them; the GUI shows each
//! panel's text with links to its concepts.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Ko,
    En,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Concept {
    pub id: String,
    pub ko: String,
    pub en: String,
    pub text_ko: String,
    pub text_en: String,
}

/// A learner panel's "What am I seeing?" and the concepts it shows.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Panel {
    pub id: String,
    pub ko: String,
    pub en: String,
    pub text_ko: String,
    pub text_en: String,
    pub concepts: Vec<String>,
}

#[derive(Deserialize)]
struct Glossary {
    concept: Vec<Concept>,
    panel: Vec<Panel>,
}

fn glossary() -> &'static Glossary {
    static GLOSSARY: OnceLock<Glossary> = OnceLock::new();
    GLOSSARY.get_or_init(|| {
        toml::from_str(include_str!("../assets/concepts.toml"))
            .expect("assets/concepts.toml is checked by the tests")
    })
}

pub fn concepts() -> &'static [Concept] {
    &glossary().concept
}

pub fn panels() -> &'static [Panel] {
    &glossary().panel
}

/// A concept by id, or by its name in either language (case-insensitive).
pub fn find(key: &str) -> Option<&'static Concept> {
    let key = key.trim().to_lowercase();
    concepts()
        .iter()
        .find(|c| c.id == key || c.ko.to_lowercase() == key || c.en.to_lowercase() == key)
}

/// The Korean or the English of a pair.
fn pick<'a>(lang: Lang, ko: &'a str, en: &'a str) -> &'a str {
    match lang {
        Lang::Ko => ko,
        Lang::En => en,
    }
}

impl Concept {
    pub fn name(&self, lang: Lang) -> &str {
        pick(lang, &self.ko, &self.en)
    }

    pub fn text(&self, lang: Lang) -> &str {
        pick(lang, &self.text_ko, &self.text_en)
    }
}

impl Panel {
    pub fn name(&self, lang: Lang) -> &str {
        pick(lang, &self.ko, &self.en)
    }

    pub fn text(&self, lang: Lang) -> &str {
        pick(lang, &self.text_ko, &self.text_en)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hangul(s: &str) -> usize {
        s.chars()
            .filter(|c| ('\u{AC00}'..='\u{D7A3}').contains(c))
            .count()
    }

    /// Every concept of the glossary Glassbox was born from (`llm-concepts.ko.md`) is explained,
    /// in both languages, and every panel links only to concepts that exist.
    #[test]
    fn every_concept_and_panel_is_explained_in_both_languages() {
        let seed = [
            "transfer-learning",
            "sft",
            "embedding",
            "contrastive-learning",
            "bm25",
            "vector-search",
            "rrf",
            "reranking",
            "cross-encoder",
            "bi-encoder",
            "self-attention",
            "transformer",
            "flash-attention",
            "gqa-mqa",
            "continuous-batching",
            "speculative-decoding",
            "kv-cache",
            "llm-cache",
            "dpo",
            "guardrails",
            "diffusion",
            "quantization",
            "multimodal",
        ];
        for id in seed {
            let c = find(id).unwrap_or_else(|| panic!("concept {id} is missing"));
            assert!(hangul(&c.text_ko) > 40, "{id}: Korean text");
            assert!(hangul(&c.ko) > 0 || c.ko == c.en, "{id}: Korean name");
            assert_eq!(hangul(&c.text_en), 0, "{id}: English text");
            assert!(
                c.text_en.split_whitespace().count() > 20,
                "{id}: English text"
            );
        }
        let mut ids: Vec<&str> = concepts().iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), concepts().len(), "duplicate ids");
        let panel_ids: Vec<&str> = panels().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            panel_ids,
            ["retrieval", "attention", "embedding-space", "engine"]
        );
        for p in panels() {
            assert!(
                hangul(&p.text_ko) > 80 && hangul(&p.text_en) == 0,
                "{}",
                p.id
            );
            for c in &p.concepts {
                assert!(find(c).is_some(), "panel {} links to unknown {c}", p.id);
            }
        }
        assert_eq!(find("벡터 검색").unwrap().id, "vector-search");
        assert_eq!(find("Self-Attention").unwrap().id, "self-attention");
    }
}
