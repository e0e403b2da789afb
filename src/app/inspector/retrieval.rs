//! The retrieval panel: each passage's rank in the BM25, vector, fused and re-ranked lists, as a
//! slope chart (one line per passage across the stages) and as a table with its fate.

use egui::{Color32, Pos2, Stroke, pos2, vec2};

use crate::app::text::Strings;
use crate::viz::retrieval::{Fate, Journey};

#[derive(Default)]
pub struct RetrievalPanel {
    pub journeys: Vec<Journey>,
}

impl RetrievalPanel {
    pub fn ui(&self, ui: &mut egui::Ui, t: &Strings) {
        if self.journeys.is_empty() {
            ui.weak(t.nothing_yet);
            return;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.slopes(ui, t);
            ui.add_space(8.0);
            self.table(ui, t);
        });
    }

    /// Lines across the four stages; a passage missing from a list breaks its line there.
    fn slopes(&self, ui: &mut egui::Ui, t: &Strings) {
        let depth = self
            .journeys
            .iter()
            .flat_map(|j| [j.bm25, j.vector, j.fused, j.reranked])
            .flatten()
            .max()
            .unwrap_or(1)
            .max(2);
        let size = vec2(ui.available_width(), 180.0);
        let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let inner = rect.shrink2(vec2(30.0, 18.0));
        let x = |stage: usize| inner.left() + inner.width() * stage as f32 / 3.0;
        let y = |rank: usize| inner.top() + inner.height() * (rank - 1) as f32 / (depth - 1) as f32;
        let text = ui.visuals().text_color();
        for (stage, name) in t.stage_columns[1..5].iter().enumerate() {
            painter.text(
                pos2(x(stage), rect.top() + 2.0),
                egui::Align2::CENTER_TOP,
                *name,
                egui::FontId::proportional(11.0),
                text,
            );
        }
        for j in &self.journeys {
            let colour = fate_colour(j.fate);
            let ranks = [j.bm25, j.vector, j.fused, j.reranked];
            let points: Vec<Option<Pos2>> = ranks
                .iter()
                .enumerate()
                .map(|(s, r)| r.map(|r| pos2(x(s), y(r))))
                .collect();
            for pair in points.windows(2) {
                if let [Some(a), Some(b)] = pair {
                    painter.line_segment([*a, *b], Stroke::new(1.5, colour));
                }
            }
            for p in points.iter().flatten() {
                painter.circle_filled(*p, 3.0, colour);
            }
        }
    }

    fn table(&self, ui: &mut egui::Ui, t: &Strings) {
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
                ui.colored_label(
                    fate_colour(j.fate),
                    match j.fate {
                        Some(Fate::InPrompt(n)) => format!("{} [{n}]", t.in_prompt),
                        Some(Fate::DroppedForContext) => t.dropped.to_owned(),
                        Some(Fate::BelowCutoff) => t.below_cutoff.to_owned(),
                        None => t.shown.to_owned(),
                    },
                );
                ui.end_row();
            }
        });
    }
}

fn fate_colour(fate: Option<Fate>) -> Color32 {
    match fate {
        Some(Fate::InPrompt(_)) | None => Color32::from_rgb(70, 150, 230),
        Some(Fate::DroppedForContext) => Color32::from_rgb(230, 150, 40),
        Some(Fate::BelowCutoff) => Color32::from_gray(140),
    }
}
