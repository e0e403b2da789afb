//! The window's settings, kept by eframe's storage between runs, and the settings window.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::text::{Lang, Strings};
use crate::answer::AskOptions;
use crate::llm::{AttentionKind, CaptureSpec, SamplingParams};
use crate::retrieve::{Mode, SearchOptions};
use crate::viz::space::Method;

/// eframe storage key.
pub const KEY: &str = "glassbox.settings";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub lang: Lang,
    pub theme: Theme,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    /// `None`: the best the library can do (hybrid with re-ranking when it can).
    pub mode: Option<Mode>,
    /// Passages retrieved (and at most put in the prompt).
    pub k: usize,
    pub rrf_k: f32,
    pub rerank: bool,
    /// Answer a question asked again (same sources, same settings) from the LLM cache.
    pub llm_cache: bool,
    pub attention: AttentionKind,
    /// The layer whose attention the next answer records (the last when unset).
    pub attention_layer: Option<usize>,
    /// How the embedding-space panel flattens the vectors.
    pub projection: Method,
    /// The GGUF model that answers; keyword search only without one.
    pub llm: Option<PathBuf>,
    /// Where the library lives (the platform's data folder when unset); used at the next start.
    pub data_dir: Option<PathBuf>,
}

impl Theme {
    pub fn preference(self) -> egui::ThemePreference {
        match self {
            Theme::System => egui::ThemePreference::System,
            Theme::Light => egui::ThemePreference::Light,
            Theme::Dark => egui::ThemePreference::Dark,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let ask = AskOptions::default();
        Settings {
            lang: Lang::from_locale(),
            theme: Theme::System,
            temperature: ask.sampling.temperature,
            top_p: ask.sampling.top_p,
            max_tokens: ask.max_tokens,
            mode: None,
            k: ask.sources,
            rrf_k: ask.search.rrf_k,
            rerank: true,
            llm_cache: ask.cache,
            attention: AttentionKind::default(),
            attention_layer: None,
            projection: Method::Pca,
            llm: None,
            data_dir: None,
        }
    }
}

impl Settings {
    pub fn search_options(&self) -> SearchOptions {
        SearchOptions {
            k: self.k,
            mode: self.mode,
            rrf_k: self.rrf_k,
            ..SearchOptions::default()
        }
    }

    /// How to answer with a model of `n_layer` layers and `n_head` heads.
    pub fn ask_options(&self, n_layer: usize, n_head: usize) -> AskOptions {
        let layer = self.attention_layer.unwrap_or(n_layer - 1).min(n_layer - 1);
        AskOptions {
            sources: self.k,
            search: self.search_options(),
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                ..AskOptions::default().sampling
            },
            capture: CaptureSpec {
                layers: vec![layer],
                heads: (0..n_head).collect(),
            },
            cache: self.llm_cache,
        }
    }

    /// The settings window's contents.
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings) {
        egui::Grid::new("settings").num_columns(2).show(ui, |ui| {
            ui.label(t.language);
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.lang, Lang::Ko, "한국어");
                ui.selectable_value(&mut self.lang, Lang::En, "English");
            });
            ui.end_row();
            ui.label(t.theme);
            ui.horizontal(|ui| {
                for (theme, name) in [Theme::System, Theme::Light, Theme::Dark]
                    .into_iter()
                    .zip(t.themes)
                {
                    ui.selectable_value(&mut self.theme, theme, name);
                }
            });
            ui.end_row();
            let label = ui.label(t.retrieval_mode);
            egui::ComboBox::from_id_salt("mode")
                .selected_text(self.mode.map_or(t.best_mode, Mode::name))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.mode, None, t.best_mode);
                    for mode in Mode::ALL {
                        ui.selectable_value(&mut self.mode, Some(mode), mode.name());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            row(ui, t.passages_k, |ui| {
                ui.add(egui::Slider::new(&mut self.k, 1..=20))
            });
            row(ui, t.rrf_k, |ui| {
                ui.add(egui::Slider::new(&mut self.rrf_k, 1.0..=200.0))
            });
            row(ui, t.reranker, |ui| ui.checkbox(&mut self.rerank, ""));
            row(ui, t.llm_cache, |ui| ui.checkbox(&mut self.llm_cache, ""));
            row(ui, t.temperature, |ui| {
                ui.add(egui::Slider::new(&mut self.temperature, 0.0..=2.0))
            });
            row(ui, "top-p", |ui| {
                ui.add(egui::Slider::new(&mut self.top_p, 0.05..=1.0))
            });
            row(ui, t.max_tokens, |ui| {
                ui.add(egui::Slider::new(&mut self.max_tokens, 16..=2048))
            });
            let label = ui.label(t.attention_backend);
            egui::ComboBox::from_id_salt("attention")
                .selected_text(self.attention.name())
                .show_ui(ui, |ui| {
                    for kind in AttentionKind::ALL {
                        ui.selectable_value(&mut self.attention, kind, kind.name());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label(t.data_dir);
            ui.vertical(|ui| {
                let mut text = self
                    .data_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                let edit = ui
                    .add(egui::TextEdit::singleline(&mut text).hint_text(t.default_folder))
                    .labelled_by(label.id);
                if edit.changed() {
                    self.data_dir = (!text.trim().is_empty()).then(|| PathBuf::from(text.trim()));
                }
                ui.weak(t.after_restart);
            });
            ui.end_row();
        });
    }
}

/// A labelled row of the settings grid; the label names the widget for screen readers.
fn row(ui: &mut egui::Ui, label: &str, widget: impl FnOnce(&mut egui::Ui) -> egui::Response) {
    let label = ui.label(label);
    widget(ui).labelled_by(label.id);
    ui.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_round_trip_and_reach_the_options() {
        let settings = Settings {
            k: 7,
            rrf_k: 12.0,
            mode: Some(Mode::Bm25),
            temperature: 0.0,
            attention_layer: Some(99),
            projection: Method::Umap,
            llm_cache: false,
            ..Settings::default()
        };
        let text = serde_json::to_string(&settings).unwrap();
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, settings);
        let ask = back.ask_options(30, 9);
        assert_eq!((ask.sources, ask.search.k, ask.search.rrf_k), (7, 7, 12.0));
        assert_eq!(ask.search.mode, Some(Mode::Bm25));
        assert!(!ask.cache, "the LLM cache turned off");
        assert_eq!(
            ask.capture.layers,
            vec![29],
            "a layer past the model is its last"
        );
        // Settings written by an older version, with fields missing, still load.
        let old: Settings = serde_json::from_str(r#"{"k": 3}"#).unwrap();
        assert_eq!((old.k, old.rrf_k), (3, Settings::default().rrf_k));
    }
}
