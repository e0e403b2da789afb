//! The attention panel: a heatmap of the answer tokens (rows) over every earlier position
//! (columns, binned for long prompts) for one head or the mean of the heads of the captured
//! layer, the GQA groups, and, for a clicked answer token, the prompt coloured by its attention
//! and rolled up per source.

use std::sync::Arc;

use egui::{Color32, TextureHandle, vec2};

use crate::app::settings::Settings;
use crate::app::text::Strings;
use crate::app::worker::{Answered, Request, Worker};
use crate::viz::attention::{Heatmap, SourceSpan, gqa_groups, rollup};

/// Columns of the heatmap at most: a long prompt is summed into this many cells per row.
const MAX_COLUMNS: usize = 256;

#[derive(Default)]
pub struct AttentionPanel {
    map: Arc<Heatmap>,
    prompt: Vec<String>,
    answer: Vec<String>,
    spans: Vec<SourceSpan>,
    n_layer: usize,
    n_head: usize,
    n_kv_head: usize,
    /// Per layer, a local layer's window.
    layer_windows: Vec<Option<usize>>,
    /// An index into the captured heads, or the mean when `None`.
    head: Option<usize>,
    token: usize,
    /// The drawn heatmap and the head it shows, made again only when the head changes.
    texture: Option<(Option<usize>, TextureHandle, usize)>,
    /// The layer asked for, while the worker recomputes it.
    pending: Option<usize>,
    /// The answer shown.
    message: i64,
}

impl AttentionPanel {
    pub fn follow(&mut self, a: &Answered) {
        self.message = a.message;
        self.map = a.heatmap.clone();
        self.prompt = a.prompt_pieces.clone();
        self.answer = a.answer_pieces.clone();
        self.spans = a.answer.plan.source_spans.clone();
        (self.n_layer, self.n_head, self.n_kv_head) = (a.n_layer, a.n_head, a.n_kv_head);
        self.layer_windows = a.layer_windows.clone();
        self.token = 0;
        self.texture = None;
        self.pending = a.attention_pending;
    }

    /// The worker failed (the message is in the status bar): no layer is on its way.
    pub fn stop_waiting(&mut self) {
        self.pending = None;
    }

    /// Another layer of the same answer.
    pub fn show_layer(&mut self, map: Arc<Heatmap>) {
        self.map = map;
        self.texture = None;
        self.pending = None;
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, settings: &mut Settings, worker: &Worker) {
        if self.map.answer_len() == 0 {
            match self.pending {
                Some(layer) => ui.weak(format!("{} {layer}", t.recomputing_layer)),
                None => ui.weak(t.nothing_yet),
            };
            return;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.choices(ui, t, settings, worker);
            self.heatmap(ui, t);
            ui.separator();
            self.token_view(ui, t);
        });
    }

    /// The layer (changing it runs the answer again, and later answers record that layer too)
    /// and the head.
    fn choices(
        &mut self,
        ui: &mut egui::Ui,
        t: &Strings,
        settings: &mut Settings,
        worker: &Worker,
    ) {
        ui.horizontal(|ui| {
            let label = ui.label(t.layer);
            let mut layer = self.pending.unwrap_or(self.map.layer);
            egui::ComboBox::from_id_salt("layer")
                .selected_text(format!("{} / {}", self.layer_name(layer, t), self.n_layer))
                .show_ui(ui, |ui| {
                    for l in 0..self.n_layer {
                        ui.selectable_value(&mut layer, l, self.layer_name(l, t));
                    }
                })
                .response
                .labelled_by(label.id);
            if layer != self.pending.unwrap_or(self.map.layer) {
                self.pending = Some(layer);
                settings.attention_layer = Some(layer);
                worker.send(Request::Attention {
                    message: self.message,
                    layer,
                });
            }
            if let Some(l) = self.pending {
                ui.spinner();
                ui.weak(format!("{} {l}", t.recomputing_layer));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut self.head, None, t.mean_of_heads);
            for (g, heads) in gqa_groups(self.n_head, self.n_kv_head).iter().enumerate() {
                ui.separator();
                ui.weak(format!("KV {g}:"));
                for &h in heads {
                    if let Some(i) = self.map.heads.iter().position(|&x| x == h) {
                        ui.selectable_value(&mut self.head, Some(i), format!("h{h}"));
                    }
                }
            }
        });
        ui.small(t.gqa_note);
    }

    /// A layer's number, and its window when it is a local layer ("3 · sliding window 512").
    fn layer_name(&self, layer: usize, t: &Strings) -> String {
        match self.window(layer) {
            Some(w) => format!("{layer} · {} {w}", t.sliding_window),
            None => layer.to_string(),
        }
    }

    fn window(&self, layer: usize) -> Option<usize> {
        self.layer_windows.get(layer).copied().flatten()
    }

    fn heatmap(&mut self, ui: &mut egui::Ui, t: &Strings) {
        if self.texture.as_ref().is_none_or(|(h, ..)| *h != self.head) {
            let (rows, width) = self.map.grid(self.head, MAX_COLUMNS);
            let image = picture(&rows);
            let texture = ui
                .ctx()
                .load_texture("attention", image, egui::TextureOptions::NEAREST);
            self.texture = Some((self.head, texture, width));
        }
        let Some((_, texture, width)) = &self.texture else {
            return;
        };
        let [cols, rows] = texture.size();
        let w = ui.available_width();
        let h = (rows as f32 * 4.0).clamp(80.0, 360.0);
        let response = ui.add(
            egui::Image::new((texture.id(), vec2(w, h)))
                .fit_to_exact_size(vec2(w, h))
                .sense(egui::Sense::click()),
        );
        ui.small(format!(
            "{} ({} {width})",
            t.heatmap_axes, t.positions_per_cell
        ));
        if let Some(w) = self.window(self.map.layer) {
            ui.small(format!("{} {w}", t.sliding_window_note));
        }
        let Some(pos) = response.hover_pos() else {
            return;
        };
        let r = &response.rect;
        let row = (((pos.y - r.top()) / r.height()) * rows as f32) as usize;
        let col = (((pos.x - r.left()) / r.width()) * cols as f32) as usize;
        let (row, col) = (row.min(rows - 1), col.min(cols - 1));
        let weights = self.map.row(self.head, row);
        let span = col * width..((col + 1) * width).min(weights.len());
        let weight: f32 = weights.get(span.clone()).map_or(0.0, |w| w.iter().sum());
        let keys: String = span.clone().map(|p| self.piece(p)).collect();
        response.clone().on_hover_text(format!(
            "{} «{}» → «{}» ({}..{}): {:.3}",
            t.answer_token,
            self.answer.get(row).map_or("", String::as_str),
            keys,
            span.start,
            span.end,
            weight
        ));
        if response.clicked() {
            self.token = row;
        }
    }

    /// The text of position `p`: a prompt token, then the answer's own.
    fn piece(&self, p: usize) -> &str {
        let prompt = self.map.prompt_len;
        if p < prompt {
            self.prompt.get(p).map_or("", String::as_str)
        } else {
            self.answer.get(p - prompt).map_or("", String::as_str)
        }
    }

    /// The chosen answer token: the sources it drew on and the prompt coloured by its weights.
    fn token_view(&self, ui: &mut egui::Ui, t: &Strings) {
        let weights = self.map.row(self.head, self.token);
        let token = self.answer.get(self.token).map_or("", String::as_str);
        ui.strong(format!("{} #{} «{}»", t.answer_token, self.token, token));
        let rolled = rollup(&weights, self.map.prompt_len, &self.spans);
        let mut drawn: Vec<(usize, f32)> = rolled.sources.clone();
        drawn.sort_by(|a, b| b.1.total_cmp(&a.1));
        let main: Vec<String> = drawn
            .iter()
            .filter(|(_, share)| *share >= 0.1)
            .map(|(n, _)| format!("[{n}]"))
            .collect();
        if main.is_empty() {
            ui.label(t.drew_on_none);
        } else {
            ui.label(format!("{} {}", t.drew_on, main.join(", ")));
        }
        for (n, share) in &rolled.sources {
            ui.add(egui::ProgressBar::new(*share).text(format!("[{n}] {:.1}%", share * 100.0)));
        }
        ui.add(egui::ProgressBar::new(rolled.other_prompt).text(format!(
            "{} {:.1}%",
            t.rest_of_prompt,
            rolled.other_prompt * 100.0
        )));
        ui.add_space(6.0);
        ui.small(t.prompt_coloured);
        let top = weights[..self.map.prompt_len.min(weights.len())]
            .iter()
            .fold(f32::MIN_POSITIVE, |m, &w| m.max(w));
        let mut job = egui::text::LayoutJob::default();
        let font = egui::FontId::monospace(11.0);
        let text = ui.visuals().text_color();
        for (p, piece) in self.prompt.iter().enumerate() {
            let w = weights.get(p).copied().unwrap_or(0.0) / top;
            let format = egui::TextFormat {
                font_id: font.clone(),
                color: text,
                background: Color32::from_rgba_unmultiplied(255, 140, 0, (w.sqrt() * 200.0) as u8),
                ..Default::default()
            };
            job.append(piece, 0.0, format);
        }
        job.wrap.max_width = ui.available_width();
        egui::ScrollArea::vertical()
            .id_salt("prompt")
            .max_height(240.0)
            .show(ui, |ui| ui.label(job));
    }
}

/// Each row scaled to its own largest cell (a square root brightens the faint cells).
fn picture(rows: &[Vec<f32>]) -> egui::ColorImage {
    let cols = rows.first().map_or(1, Vec::len).max(1);
    let mut pixels = Vec::with_capacity(rows.len() * cols);
    for row in rows {
        let top = row.iter().fold(f32::MIN_POSITIVE, |m, &v| m.max(v));
        pixels.extend(row.iter().map(|&v| {
            let x = (v / top).sqrt();
            Color32::from_rgb(
                (255.0 * x) as u8,
                (140.0 * x) as u8,
                (40.0 + 60.0 * x) as u8,
            )
        }));
    }
    egui::ColorImage::new([cols, rows.len().max(1)], pixels)
}
