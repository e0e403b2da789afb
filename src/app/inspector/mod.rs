//! The right panel: the learner panels, following the last answer (or search). Each tab starts
//! with its "What am I seeing?" and links to the concepts it shows.

mod attention;
mod engine;
mod retrieval;
mod space;

use std::collections::HashMap;
use std::sync::Arc;

use super::settings::Settings;
use super::text::{Lang, Strings};
use super::worker::{Answered, Request, Update, Worker};
use crate::concepts;
use crate::viz::retrieval::journeys;
use crate::viz::space::Space;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tab {
    #[default]
    Retrieval,
    Attention,
    EmbeddingSpace,
    Engine,
}

impl Tab {
    const ALL: [Tab; 4] = [
        Tab::Retrieval,
        Tab::Attention,
        Tab::EmbeddingSpace,
        Tab::Engine,
    ];

    fn panel(self) -> &'static concepts::Panel {
        let id = match self {
            Tab::Retrieval => "retrieval",
            Tab::Attention => "attention",
            Tab::EmbeddingSpace => "embedding-space",
            Tab::Engine => "engine",
        };
        concepts::panels()
            .iter()
            .find(|p| p.id == id)
            .expect("every tab has a panel text (checked by the concepts test)")
    }
}

fn names<'a>(
    chunks: impl Iterator<Item = &'a crate::catalog::ChunkRecord>,
) -> HashMap<i64, String> {
    chunks
        .map(|c| (c.chunk_id, super::text::place(c)))
        .collect()
}

#[derive(Default)]
pub struct InspectorView {
    pub tab: Tab,
    retrieval: retrieval::RetrievalPanel,
    attention: attention::AttentionPanel,
    space: space::SpacePanel,
    engine: engine::EnginePanel,
    /// The question of the answer the panels show.
    question: Option<String>,
}

impl InspectorView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::Results(r, point) => {
                self.question = None;
                self.retrieval.journeys = journeys(&r.trace, None);
                self.retrieval.names = names(r.results.iter().map(|h| &h.chunk));
                self.space.follow(*point, &r.trace, 0);
            }
            Update::Answered(a) => self.follow_answer(a),
            Update::Heatmap(map) => self.attention.show_layer(map.clone()),
            Update::LlmCache(stats) => self.engine.llm_cache = Some(*stats),
            Update::Failed(_) => self.attention.stop_waiting(),
            Update::Space(space, question) => self.space.set(space.clone(), *question),
            _ => {}
        }
    }

    /// Shows what `a` was made of in every panel.
    pub fn follow_answer(&mut self, a: &Answered) {
        let answer = &a.answer;
        self.question = Some(answer.question.clone());
        self.retrieval.journeys = journeys(&answer.trace, Some(&answer.plan));
        let plan = &answer.plan;
        self.retrieval.names = names(
            plan.sources
                .iter()
                .chain(&plan.dropped_sources)
                .map(|s| &s.chunk),
        );
        self.space
            .follow(a.question_point, &answer.trace, answer.plan.sources.len());
        self.attention.follow(a);
        self.engine.answer = Some(answer.clone());
    }

    /// Opens the embedding-space tab on `space` (for `bench space`).
    pub fn show_space(&mut self, space: Arc<Space>) {
        self.tab = Tab::EmbeddingSpace;
        self.space.show(space);
    }

    /// Where the embedding-space picture was drawn last frame.
    pub fn space_canvas(&self) -> Option<egui::Rect> {
        self.space.canvas()
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Strings,
        lang: Lang,
        settings: &mut Settings,
        worker: &Worker,
    ) {
        ui.horizontal_wrapped(|ui| {
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.tab, tab, tab.panel().name(lang.concepts()));
            }
        });
        if let Some(q) = &self.question {
            ui.weak(format!("{} {q}", t.inspecting));
        }
        ui.separator();
        let panel = self.tab.panel();
        egui::CollapsingHeader::new(t.what_am_i_seeing)
            .default_open(true)
            .show(ui, |ui| {
                ui.label(panel.text(lang.concepts()));
                ui.horizontal_wrapped(|ui| {
                    ui.weak(t.concepts);
                    for id in &panel.concepts {
                        if let Some(c) = concepts::find(id) {
                            ui.label(c.name(lang.concepts()))
                                .on_hover_text(c.text(lang.concepts()));
                        }
                    }
                });
            });
        ui.separator();
        match self.tab {
            Tab::Retrieval => self.retrieval.ui(ui, t),
            Tab::Attention => self.attention.ui(ui, t, settings, worker),
            Tab::EmbeddingSpace => {
                if let Some(chunk) = self.space.ui(ui, t, worker, &mut settings.projection) {
                    worker.send(Request::Read(chunk));
                }
            }
            Tab::Engine => {
                if self.engine.ui(ui, t) {
                    worker.send(Request::ClearLlmCache);
                }
            }
        }
    }
}
