//! The engine panel: the KV cache as a block map at the answer's last token (this sequence's
//! blocks, the prefix blocks it reused, cached free blocks, free blocks) and the timeline
//! of the answer: prefill, then one tick per decoded token.

use std::sync::Arc;

use egui::{Color32, Rect, Stroke, pos2, vec2};

use crate::answer::{Answer, LlmCacheUse};
use crate::app::text::Strings;
use crate::catalog::LlmCacheStats;

const USED: Color32 = Color32::from_rgb(70, 150, 230);
const SHARED: Color32 = Color32::from_rgb(170, 90, 220);
const CACHED: Color32 = Color32::from_rgb(90, 180, 120);
const FREE: Color32 = Color32::from_gray(90);
const PREFILL: Color32 = Color32::from_rgb(230, 150, 40);

#[derive(Default)]
pub struct EnginePanel {
    pub answer: Option<Arc<Answer>>,
    /// The library's LLM cache, as it stood after the last answer.
    pub llm_cache: Option<LlmCacheStats>,
}

impl EnginePanel {
    /// Draws the panel; says whether the user asked to clear the LLM cache.
    pub fn ui(&self, ui: &mut egui::Ui, t: &Strings) -> bool {
        let Some(a) = &self.answer else {
            ui.weak(t.nothing_yet);
            return false;
        };
        let mut clear = false;
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.timings(ui, t, a);
            ui.separator();
            clear = self.llm_cache(ui, t, a);
            ui.separator();
            timeline(ui, t, a);
            ui.separator();
            block_map(ui, t, a);
        });
        clear
    }

    /// Whether this answer came from the LLM cache, and the cache as a whole.
    fn llm_cache(&self, ui: &mut egui::Ui, t: &Strings, a: &Answer) -> bool {
        ui.strong(t.llm_cache);
        let [hit, miss, off] = t.llm_cache_use;
        ui.label(match a.llm_cache {
            LlmCacheUse::Hit { generation_s, .. } => format!("{hit} {generation_s:.2} s."),
            LlmCacheUse::Miss => miss.to_owned(),
            LlmCacheUse::Off => off.to_owned(),
        });
        let Some(stats) = self.llm_cache else {
            return false;
        };
        let [answers, hits, saved] = t.llm_cache_stats;
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "{answers} {} · {hits} {} · {saved} {:.1} s",
                stats.answers, stats.hits, stats.saved_s
            ));
            stats.answers > 0 && ui.small_button(t.clear).clicked()
        })
        .inner
    }

    fn timings(&self, ui: &mut egui::Ui, t: &Strings, a: &Answer) {
        let tm = &a.timings;
        ui.strong(t.timings);
        let [retrieve, prompt, prefill, tokens, cached, decode] = t.timing_labels;
        ui.label(format!(
            "{retrieve} {:.3} s · {prompt} {:.3} s · {prefill} {:.3} s ({} {tokens}, {} {cached}) · {decode} {:.1} tok/s ({} {tokens})",
            tm.retrieve_s, tm.prompt_s, tm.prefill_s, tm.prompt_tokens, tm.cached_tokens, tm.decode_tokens_per_s, tm.answer_tokens
        ));
    }
}

/// Prefill as one bar, then a tick per answer token at the time it came.
fn timeline(ui: &mut egui::Ui, t: &Strings, a: &Answer) {
    ui.strong(t.timeline);
    let end = a.token_times.last().copied().unwrap_or(0.0).max(1e-3);
    let (rect, response) =
        ui.allocate_exact_size(vec2(ui.available_width(), 36.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let x = |s: f32| rect.left() + rect.width() * s / end;
    let first = a.token_times.first().copied().unwrap_or(0.0);
    painter.rect_filled(
        Rect::from_min_max(
            pos2(rect.left(), rect.top() + 4.0),
            pos2(x(first), rect.bottom() - 4.0),
        ),
        2.0,
        PREFILL,
    );
    for &s in &a.token_times {
        painter.line_segment(
            [
                pos2(x(s), rect.top() + 8.0),
                pos2(x(s), rect.bottom() - 8.0),
            ],
            Stroke::new(1.0, USED),
        );
    }
    response.on_hover_text(format!(
        "{} {:.2} s · {} {} · {:.2} s",
        t.timing_labels[2],
        first,
        a.token_times.len(),
        t.timing_labels[3],
        end
    ));
}

/// One square per block of the pool.
fn block_map(ui: &mut egui::Ui, t: &Strings, a: &Answer) {
    let c = &a.cache;
    ui.strong(t.kv_blocks);
    ui.small(format!(
        "{} {} × {} {} · {:.1} KiB/{}",
        c.total,
        t.blocks,
        c.block_size,
        t.tokens,
        c.block_bytes as f64 / 1024.0,
        t.block
    ));
    let ours: Vec<u32> = c.sequences.iter().flat_map(|s| s.blocks.clone()).collect();
    // Whole blocks of the prompt found in the prefix cache were reused, not computed.
    let reused = (a.timings.cached_tokens / c.block_size.max(1)).min(ours.len());
    let side = 9.0;
    let per_row = ((ui.available_width() / (side + 2.0)) as usize).max(1);
    let rows = c.total.div_ceil(per_row);
    let (rect, _) = ui.allocate_exact_size(
        vec2(ui.available_width(), rows as f32 * (side + 2.0)),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    // The answer's blocks in sequence order, the reused prefix first; then the rest of the
    // pool: free blocks that still hold a reusable prefix, then empty ones.
    let mut colours = vec![SHARED; reused];
    colours.resize(ours.len(), USED);
    colours.extend(std::iter::repeat_n(CACHED, c.cached));
    colours.resize(c.total.max(colours.len()), FREE);
    for (i, colour) in colours.iter().enumerate() {
        let at = rect.min + vec2((i % per_row) as f32, (i / per_row) as f32) * (side + 2.0);
        painter.rect_filled(Rect::from_min_size(at, vec2(side, side)), 1.0, *colour);
    }
    ui.horizontal_wrapped(|ui| {
        for (colour, name, n) in [
            (USED, t.block_legend[0], ours.len() - reused),
            (SHARED, t.block_legend[1], reused),
            (CACHED, t.block_legend[2], c.cached),
            (FREE, t.block_legend[3], c.free.saturating_sub(c.cached)),
        ] {
            ui.colored_label(colour, "■");
            ui.small(format!("{name} {n}"));
        }
    });
}
