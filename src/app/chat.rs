//! The centre: the question box, the answer as it streams (or the keyword search results when
//! no model is loaded), and the numbered sources.

use super::text::Strings;
use super::worker::{Request, Update, Worker};
use crate::answer::Answer;
use crate::retrieve::SearchResponse;

#[derive(Default)]
pub struct ChatView {
    question: String,
    asked: Option<String>,
    streaming: String,
    busy: bool,
    answer: Option<Box<Answer>>,
    results: Option<Box<SearchResponse>>,
}

impl ChatView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::AnswerText(piece) => self.streaming.push_str(piece),
            Update::Answered(a) => {
                self.busy = false;
                self.answer = Some(a.clone());
            }
            Update::Results(r) => {
                self.busy = false;
                self.results = Some(r.clone());
            }
            Update::Failed(_) => self.busy = false,
            _ => {}
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) {
        ui.horizontal(|ui| {
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.question)
                    .hint_text(t.ask_hint)
                    .desired_width(ui.available_width() - 80.0),
            );
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if self.busy {
                if ui.button(t.stop).clicked() {
                    worker.stop_answer();
                }
            } else if (ui.button(t.ask).clicked() || enter) && !self.question.trim().is_empty() {
                let q = self.question.trim().to_owned();
                self.asked = Some(q.clone());
                self.streaming.clear();
                self.answer = None;
                self.results = None;
                self.busy = true;
                worker.send(Request::Ask(q));
            }
        });
        ui.separator();
        if let Some(q) = &self.asked {
            ui.strong(q);
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            if let Some(a) = &self.answer {
                ui.label(&a.text);
                for note in &a.notes {
                    ui.weak(note);
                }
                ui.small(format!(
                    "{} · {:.1} tok/s · {:.2} s",
                    a.model, a.timings.decode_tokens_per_s, a.timings.first_token_s
                ));
                ui.separator();
                ui.strong(t.sources);
                for s in &a.plan.sources {
                    ui.label(format!("[{}] {} ({})", s.n, s.chunk.title, s.location()));
                }
            } else if !self.streaming.is_empty() {
                ui.label(&self.streaming);
            }
            if let Some(r) = &self.results {
                ui.weak(t.no_model);
                if r.results.is_empty() {
                    ui.label(t.no_results);
                }
                for hit in &r.results {
                    ui.strong(format!("{}. {}", hit.rank, hit.chunk.title));
                    ui.small(format!(
                        "{}:{}-{}",
                        hit.chunk.path.display(),
                        hit.chunk.lines.0,
                        hit.chunk.lines.1
                    ));
                    ui.label(&hit.snippet.text);
                    ui.add_space(6.0);
                }
            }
        });
    }
}
