//! The centre: the chats (new, rename, delete, export), the conversation with its answers as
//! they stream, citation chips that open the reader, and keyword results when no model is
//! loaded.

use std::collections::HashMap;
use std::sync::Arc;

use super::text::Strings;
use super::worker::{Answered, Request, Update, Worker};
use crate::catalog::{ChatSummary, StoredMessage};
use crate::llm::Role;
use crate::retrieve::SearchResponse;

/// What was clicked under an answer.
#[derive(Default)]
struct AnswerClicks {
    regenerate: bool,
    inspect: bool,
}

#[derive(Default)]
pub struct ChatView {
    chats: Vec<ChatSummary>,
    current: Option<i64>,
    messages: Vec<StoredMessage>,
    question: String,
    /// The question being answered and the answer so far.
    pending: Option<(String, String)>,
    busy: bool,
    results: Option<Box<SearchResponse>>,
    /// Why the last question got no answer.
    failed: Option<String>,
    /// The chat being renamed and the title typed so far.
    renaming: Option<String>,
    /// The answers given this session, by message id, with what the inspector draws from them.
    given: HashMap<i64, Arc<Answered>>,
    /// The answer the inspector shows.
    inspected: Option<i64>,
}

impl ChatView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::AnswerText(piece) => {
                if let Some((_, text)) = &mut self.pending {
                    text.push_str(piece);
                }
            }
            Update::Answered(a) => {
                self.current = Some(a.chat);
                self.given.insert(a.message, a.clone());
                self.inspected = Some(a.message);
            }
            // The chat chosen, or the one the question being answered went to.
            Update::ChatOpened(chat, messages) if self.busy || self.current == Some(*chat) => {
                self.current = Some(*chat);
                self.messages = messages.clone();
                self.pending = None;
                self.busy = false;
            }
            Update::ChatClosed(chat) if self.current == Some(*chat) => self.new_chat(),
            Update::Chats(chats) => self.chats = chats.clone(),
            Update::Results(r, _) => {
                self.busy = false;
                self.pending = None;
                self.results = Some(r.clone());
            }
            Update::Failed(e) if self.busy => {
                self.busy = false;
                self.pending = None;
                self.failed = Some(e.clone());
            }
            _ => {}
        }
    }

    fn new_chat(&mut self) {
        self.current = None;
        self.messages.clear();
        self.results = None;
        self.renaming = None;
    }

    /// Draws the chat; returns an answer the user chose to look into.
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) -> Option<Arc<Answered>> {
        egui::Panel::top("chat_bar").show(ui, |ui| self.chat_bar(ui, t, worker));
        egui::Panel::bottom("question").show(ui, |ui| self.question_box(ui, t, worker));
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                let inspect = self.conversation(ui, t, worker);
                self.keyword_results(ui, t, worker);
                inspect
            })
            .inner
    }

    fn chat_bar(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) {
        ui.horizontal_wrapped(|ui| {
            if ui.button(t.new_chat).clicked() {
                self.new_chat();
            }
            let title = self
                .current_summary()
                .map_or(t.new_chat.to_owned(), |c| c.title.clone());
            let label = ui.label(t.chat);
            egui::ComboBox::from_id_salt("chats")
                .selected_text(title)
                .width(220.0)
                .show_ui(ui, |ui| {
                    for c in &self.chats {
                        let label = format!("{} ({})", c.title, c.messages);
                        if ui
                            .selectable_label(self.current == Some(c.id), label)
                            .clicked()
                        {
                            self.current = Some(c.id);
                            self.results = None;
                            worker.send(Request::OpenChat(c.id));
                        }
                    }
                })
                .response
                .labelled_by(label.id);
            let Some(chat) = self.current else { return };
            if let Some(title) = &mut self.renaming {
                let edit = ui.text_edit_singleline(title);
                let done = edit.lost_focus() || ui.button(t.save).clicked();
                if done && !title.trim().is_empty() {
                    worker.send(Request::RenameChat(chat, title.trim().to_owned()));
                    self.renaming = None;
                }
            } else if ui.button(t.rename).clicked() {
                self.renaming = self.current_summary().map(|c| c.title.clone());
            }
            if ui.button(t.export).clicked() {
                let title = self.current_summary().map_or("chat", |c| &c.title);
                worker.export_chat(chat, title);
            }
            if ui.button(t.delete).clicked() {
                worker.send(Request::DeleteChat(chat));
            }
        });
    }

    fn current_summary(&self) -> Option<&ChatSummary> {
        self.chats.iter().find(|c| Some(c.id) == self.current)
    }

    fn question_box(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            let edit = ui.add(
                egui::TextEdit::multiline(&mut self.question)
                    .hint_text(t.ask_hint)
                    .desired_rows(2)
                    .return_key(Some(egui::KeyboardShortcut::new(
                        egui::Modifiers::SHIFT,
                        egui::Key::Enter,
                    )))
                    .desired_width(ui.available_width() - 80.0),
            );
            let enter = edit.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if self.busy {
                if ui.button(t.stop).clicked() {
                    worker.stop_answer();
                }
            } else if (ui.button(t.ask).clicked() || enter) && !self.question.trim().is_empty() {
                let question = self.question.trim().to_owned();
                self.question.clear();
                self.ask(question, worker);
            }
        });
        ui.add_space(4.0);
    }

    /// Asks `question` in the current chat (a new one when none is open).
    pub fn ask(&mut self, question: String, worker: &Worker) {
        self.results = None;
        self.failed = None;
        self.busy = true;
        self.pending = Some((question.clone(), String::new()));
        worker.send(Request::Ask {
            chat: self.current,
            question,
        });
    }

    pub fn is_busy(&self) -> bool {
        self.busy
    }

    fn conversation(
        &mut self,
        ui: &mut egui::Ui,
        t: &Strings,
        worker: &Worker,
    ) -> Option<Arc<Answered>> {
        let last_answer = self
            .messages
            .iter()
            .rposition(|m| m.message.role == Role::Assistant);
        let (mut regenerate, mut inspect) = (false, None);
        for (i, m) in self.messages.iter().enumerate() {
            match m.message.role {
                Role::User => question(ui, &m.message.content),
                _ => {
                    let last = Some(i) == last_answer && !self.busy;
                    let clicked = self.answer(ui, t, worker, m, last);
                    regenerate |= clicked.regenerate;
                    inspect = inspect.or(clicked.inspect.then_some(m.id));
                }
            }
        }
        if regenerate {
            self.regenerate(worker);
        }
        let inspect = inspect.and_then(|id| {
            self.inspected = Some(id);
            self.given.get(&id).cloned()
        });
        if let Some(e) = &self.failed {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some((q, text)) = &self.pending {
            question(ui, q);
            if text.is_empty() {
                ui.spinner();
            } else {
                ui.label(text);
            }
        }
        inspect
    }

    /// Draws an answer; says whether its Regenerate button (shown on the `last` one) or its
    /// Inspect toggle (on answers given this session) was clicked.
    fn answer(
        &self,
        ui: &mut egui::Ui,
        t: &Strings,
        worker: &Worker,
        m: &StoredMessage,
        last: bool,
    ) -> AnswerClicks {
        let mut clicks = AnswerClicks::default();
        for line in m.message.content.lines() {
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing.x = 0.0;
                for piece in crate::answer::prompt::cited_pieces(line) {
                    match piece {
                        crate::answer::prompt::Piece::Text(s) => {
                            ui.label(s);
                        }
                        crate::answer::prompt::Piece::Citation(n) => {
                            let source = m.sources.iter().find(|s| s.n == n);
                            let chip = ui.add_enabled(
                                source.is_some(),
                                egui::Button::new(egui::RichText::new(format!("[{n}]")).small())
                                    .small(),
                            );
                            if let Some(s) = source {
                                let chip = chip.on_hover_text(format!(
                                    "{}\n{}",
                                    s.chunk.title,
                                    s.location()
                                ));
                                if chip.clicked() {
                                    worker.send(Request::Read(s.chunk.chunk_id));
                                }
                            }
                        }
                    }
                }
            });
        }
        ui.horizontal_wrapped(|ui| {
            if let Some(meta) = &m.meta {
                // A cached answer had no decoding speed: where it came from is said instead.
                let speed = if meta.from_cache {
                    t.from_llm_cache.to_owned()
                } else {
                    format!("{:.1} tok/s", meta.tokens_per_s)
                };
                ui.small(format!(
                    "{} · {speed} · {} {:.2} s · {} {}",
                    meta.model, t.first_token, meta.first_token_s, meta.answer_tokens, t.tokens
                ));
            }
            if ui.small_button(t.copy).clicked() {
                ui.ctx().copy_text(m.message.content.clone());
            }
            if last {
                clicks.regenerate = ui.small_button(t.regenerate).clicked();
            }
            if self.given.contains_key(&m.id) {
                let shown = self.inspected == Some(m.id);
                clicks.inspect = ui
                    .selectable_label(shown, t.inspect)
                    .on_hover_text(t.inspect_hint)
                    .clicked();
            }
        });
        let cited = crate::answer::citations(&m.message.content, m.sources.len());
        for s in &m.sources {
            let text = format!(
                "[{}] {} · {}",
                s.n,
                s.chunk.title,
                super::text::place(&s.chunk)
            );
            let link = if cited.contains(&s.n) {
                ui.link(text)
            } else {
                ui.link(egui::RichText::new(text).weak())
                    .on_hover_text(t.not_cited)
            };
            if link
                .on_hover_text(s.chunk.path.display().to_string())
                .clicked()
            {
                worker.send(Request::Read(s.chunk.chunk_id));
            }
        }
        ui.separator();
        clicks
    }

    /// Asks the last question again; its answer is replaced as the new one streams in.
    fn regenerate(&mut self, worker: &Worker) {
        let (Some(chat), Some(at)) = (
            self.current,
            self.messages
                .iter()
                .rposition(|m| m.message.role == Role::User),
        ) else {
            return;
        };
        let question = self.messages[at].message.content.clone();
        self.messages.truncate(at);
        self.busy = true;
        self.pending = Some((question, String::new()));
        worker.send(Request::Regenerate(chat));
    }

    fn keyword_results(&self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) {
        let Some(r) = &self.results else { return };
        ui.weak(t.no_model);
        if r.results.is_empty() {
            ui.label(t.no_results);
        }
        for hit in &r.results {
            let title = ui.link(format!("{}. {}", hit.rank, hit.chunk.title));
            if title.clicked() {
                worker.send(Request::Read(hit.chunk.chunk_id));
            }
            ui.small(super::text::place(&hit.chunk))
                .on_hover_text(hit.chunk.path.display().to_string());
            ui.label(&hit.snippet.text);
            ui.add_space(6.0);
        }
    }
}

fn question(ui: &mut egui::Ui, text: &str) {
    ui.add_space(6.0);
    ui.label(egui::RichText::new(text).strong());
    ui.add_space(4.0);
}
