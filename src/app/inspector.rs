//! The right panel: the learner panels, following the last question. Each tab starts with its
//! "What am I seeing?" and links to the concepts it shows.

use super::text::{Lang, Strings};
use super::worker::Update;
use crate::answer::Answer;
use crate::concepts;
use crate::retrieve::SearchResponse;
use crate::viz::attention::{Rollup, average, rollup};
use crate::viz::retrieval::{Fate, Journey, journeys};

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

#[derive(Default)]
pub struct InspectorView {
    pub tab: Tab,
    journeys: Vec<Journey>,
    /// The answer's attention per source, averaged over its tokens and the heads.
    attention: Option<Rollup>,
    answer: Option<Box<Answer>>,
}

impl InspectorView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::Results(r) => self.follow_search(r),
            Update::Answered(a) => self.follow_answer(a),
            _ => {}
        }
    }

    fn follow_search(&mut self, r: &SearchResponse) {
        self.journeys = journeys(&r.trace, None);
        self.attention = None;
        self.answer = None;
    }

    fn follow_answer(&mut self, a: &Answer) {
        self.journeys = journeys(&a.trace, Some(&a.plan));
        // The answer tokens' attention in the captured layer, averaged over heads and tokens,
        // summed per source.
        let rolled: Vec<_> = a
            .attention
            .iter()
            .filter(|r| r.row.pos >= a.plan.prompt_tokens)
            .map(|r| rollup(&r.row.probs, a.plan.prompt_tokens, &a.plan.source_spans))
            .collect();
        self.attention = average(&rolled);
        self.answer = Some(Box::new(a.clone()));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, lang: Lang) {
        ui.horizontal_wrapped(|ui| {
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.tab, tab, tab.panel().name(lang.concepts()));
            }
        });
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
        egui::ScrollArea::vertical().show(ui, |ui| match self.tab {
            Tab::Retrieval => self.retrieval(ui, t),
            Tab::Attention => self.attention(ui, t),
            Tab::EmbeddingSpace => {
                ui.weak(t.nothing_yet);
            }
            Tab::Engine => self.engine(ui, t),
        });
    }

    fn retrieval(&self, ui: &mut egui::Ui, t: &Strings) {
        if self.journeys.is_empty() {
            ui.weak(t.nothing_yet);
            return;
        }
        egui::Grid::new("journeys").striped(true).show(ui, |ui| {
            for c in t.stage_columns {
                ui.strong(c);
            }
            ui.end_row();
            let rank = |r: Option<usize>| r.map_or("—".to_owned(), |r| r.to_string());
            for j in &self.journeys {
                ui.label(format!("#{}", j.chunk_id));
                ui.label(rank(j.bm25));
                ui.label(rank(j.vector));
                ui.label(rank(j.fused));
                ui.label(rank(j.reranked));
                ui.label(match j.fate {
                    Some(Fate::InPrompt(n)) => format!("{} [{n}]", t.in_prompt),
                    Some(Fate::DroppedForContext) => t.dropped.to_owned(),
                    Some(Fate::BelowCutoff) => t.below_cutoff.to_owned(),
                    None => t.shown.to_owned(),
                });
                ui.end_row();
            }
        });
    }

    fn attention(&self, ui: &mut egui::Ui, t: &Strings) {
        let Some(Rollup {
            sources,
            other_prompt: other,
            answer: own,
        }) = &self.attention
        else {
            ui.weak(t.nothing_yet);
            return;
        };
        ui.label(t.attention_by_source);
        for (n, share) in sources {
            ui.add(egui::ProgressBar::new(*share).text(format!("[{n}] {:.1}%", share * 100.0)));
        }
        ui.add(egui::ProgressBar::new(*other).text(format!(
            "{} {:.1}%",
            t.rest_of_prompt,
            other * 100.0
        )));
        ui.add(egui::ProgressBar::new(*own).text(format!(
            "{} {:.1}%",
            t.answer_so_far,
            own * 100.0
        )));
    }

    fn engine(&self, ui: &mut egui::Ui, t: &Strings) {
        let Some(a) = &self.answer else {
            ui.weak(t.nothing_yet);
            return;
        };
        let tm = &a.timings;
        ui.strong(t.timings);
        let [retrieve, prompt, prefill, tokens, cached, decode] = t.timing_labels;
        ui.label(format!(
            "{retrieve} {:.3} s · {prompt} {:.3} s · {prefill} {:.3} s ({} {tokens}, {} {cached}) · {decode} {:.1} tok/s ({} {tokens})",
            tm.retrieve_s, tm.prompt_s, tm.prefill_s, tm.prompt_tokens, tm.cached_tokens, tm.decode_tokens_per_s, tm.answer_tokens
        ));
    }
}
