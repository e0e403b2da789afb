//! The retrieval panel: each passage's rank in the BM25, vector, fused and re-ranked lists, as a
//! slope chart (one line per passage across the stages) and as a table with its fate.

use std::collections::HashMap;

use egui::{Color32, Pos2, Rect, Stroke, pos2, vec2};

use crate::app::text::Strings;
use crate::viz::retrieval::{Fate, Journey};

#[derive(Default)]
pub struct RetrievalPanel {
    pub journeys: Vec<Journey>,
    /// Where each passage with a known record is (`file:lines`); others show their id.
    pub names: HashMap<i64, String>,
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
            ui.strong(t.rrf_parts);
            ui.strong(t.rerank_score);
            ui.end_row();
            let rank = |r: Option<usize>| r.map_or("—".to_owned(), |r| r.to_string());
            for j in &self.journeys {
                match self.names.get(&j.chunk_id) {
                    Some(name) => ui.label(name),
                    None => ui.label(format!("#{}", j.chunk_id)),
                };
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
                match j.rrf_parts {
                    Some((b, v)) => rrf_bar(ui, b, v),
                    None => {
                        ui.label("—");
                    }
                }
                ui.label(j.rerank_score.map_or("—".to_owned(), |s| format!("{s:.2}")));
                ui.end_row();
            }
        });
    }
}

/// The fused score as two stacked bars: BM25's part and the vector list's part.
fn rrf_bar(ui: &mut egui::Ui, bm25: f32, vector: f32) {
    // The largest possible part is 1/(k+1) with k >= 1: scale to 0.02 for a readable bar.
    let scale = 40.0 / 0.02;
    let (rect, response) = ui.allocate_exact_size(vec2(48.0, 12.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let b = Rect::from_min_size(rect.min, vec2((bm25 * scale).min(48.0), 12.0));
    let v = Rect::from_min_size(
        pos2(b.right(), rect.top()),
        vec2((vector * scale).min(48.0 - b.width()), 12.0),
    );
    painter.rect_filled(b, 0.0, BM25);
    painter.rect_filled(v, 0.0, VECTOR);
    response.on_hover_text(format!(
        "BM25 {bm25:.4} + vector {vector:.4} = {:.4}",
        bm25 + vector
    ));
}

const BM25: Color32 = Color32::from_rgb(230, 150, 40);
const VECTOR: Color32 = Color32::from_rgb(70, 150, 230);

fn fate_colour(fate: Option<Fate>) -> Color32 {
    match fate {
        Some(Fate::InPrompt(_)) | None => Color32::from_rgb(70, 150, 230),
        Some(Fate::DroppedForContext) => Color32::from_rgb(230, 150, 40),
        Some(Fate::BelowCutoff) => Color32::from_gray(140),
    }
}
