//! The left panel: folders and their documents' state, drag-and-drop and "Add folder…", and
//! indexing progress with a cancel button. A folder opens to list its documents: indexed,
//! waiting for their vectors, or failed with the reason.

use std::collections::HashMap;

use egui::Color32;

use super::text::Strings;
use super::worker::{IndexProgress, Request, Update, Worker};
use crate::catalog::{DocumentRow, FolderStatus};
use crate::library::LibraryStatus;

#[derive(Default)]
pub struct LibraryView {
    /// Where the heading was drawn (the screenshot's glyph check looks there).
    pub heading: Option<egui::Rect>,
    status: Option<LibraryStatus>,
    progress: Option<IndexProgress>,
    /// Files the last indexing passed over: not a kind Glassbox reads.
    skipped: usize,
    /// The documents of each folder opened so far, by folder id.
    documents: HashMap<i64, Vec<DocumentRow>>,
    /// The library changed since the open folders' documents were read.
    stale: bool,
}

impl LibraryView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::Status(s) => {
                self.status = Some(s.clone());
                self.stale = true;
            }
            Update::Documents(folder, documents) => {
                self.documents.insert(*folder, documents.clone());
            }
            Update::Progress(p) => self.progress = Some(p.clone()),
            Update::Indexed(s) => {
                self.progress = None;
                self.skipped = s.skipped;
            }
            Update::Failed(_) => self.progress = None,
            _ => {}
        }
    }

    pub fn has_reported(&self) -> bool {
        self.status.is_some()
    }

    /// No folder yet (first run); false until the library has reported.
    pub fn is_empty(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.folders.is_empty())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) {
        self.heading = Some(ui.heading(t.library).rect);
        if ui.button(t.add_folder).clicked() {
            worker.pick_folder();
        }
        ui.weak(t.drop_here);
        if let Some(p) = &self.progress {
            ui.separator();
            ui.label(format!(
                "{}: {}/{} {}, {:.1}/{:.1} MB",
                t.indexing,
                p.files_done,
                p.files_total,
                t.files,
                p.bytes_done as f64 / 1e6,
                p.bytes_total as f64 / 1e6
            ));
            let mut bar = egui::ProgressBar::new(p.fraction()).show_percentage();
            if let Some((rate, eta)) = p.rate_and_eta() {
                bar = bar.text(format!("{:.1} MB/s, {eta:.0} s", rate / 1e6));
            }
            ui.add(bar);
            if let Some(current) = &p.current {
                ui.small(current.display().to_string());
            }
            if ui.button(t.cancel).clicked() {
                worker.cancel_index();
            }
        }
        if self.skipped > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("{} {}", self.skipped, t.skipped),
            );
        }
        ui.separator();
        // Taken out for the frame (and put back below), so the folders can be drawn by `&mut
        // self` methods without copying the status every frame.
        let Some(status) = self.status.take() else {
            return;
        };
        if std::mem::take(&mut self.stale) {
            // Read the open folders' documents again; the others are read when opened.
            for folder in self.documents.keys() {
                worker.send(Request::Documents(*folder));
            }
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            for f in &status.folders {
                self.folder(ui, t, worker, f);
            }
            for failed in &status.failed {
                let name = super::text::short_name(&failed.path);
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{name}: {}", failed.error),
                )
                .on_hover_text(failed.path.display().to_string());
            }
        });
        self.status = Some(status);
    }

    /// A folder: its name, Watch and counts; opened, its documents.
    fn folder(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker, f: &FolderStatus) {
        let id = ui.make_persistent_id(("folder", f.folder.id));
        let state =
            egui::collapsing_header::CollapsingState::load_with_default_open(ui.ctx(), id, false);
        let was_open = state.is_open();
        let name = super::text::short_name(&f.folder.path);
        let (toggle, _, body) = state
            .show_header(ui, |ui| {
                ui.strong(&name)
                    .on_hover_text(f.folder.path.display().to_string());
                let mut watched = f.folder.watched;
                if ui.checkbox(&mut watched, t.watch).changed() {
                    worker.send(Request::Watch(f.folder.id, watched));
                }
            })
            .body(|ui| match self.documents.get(&f.folder.id) {
                Some(documents) => document_list(ui, t, documents),
                None => {
                    ui.spinner();
                }
            });
        toggle.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Button,
                true,
                format!("{} {name}", t.documents_of),
            )
        });
        if body.is_some() && !was_open && !self.documents.contains_key(&f.folder.id) {
            worker.send(Request::Documents(f.folder.id));
        }
        ui.small(format!(
            "{} {} · {} {} · {} {}",
            f.indexed, t.indexed, f.chunks, t.chunks, f.failed, t.failed
        ));
    }
}

/// A folder's documents, only the visible rows drawn (a folder may hold thousands).
fn document_list(ui: &mut egui::Ui, t: &Strings, documents: &[DocumentRow]) {
    let row_height = ui.text_style_height(&egui::TextStyle::Body);
    egui::ScrollArea::vertical()
        .max_height(240.0)
        .auto_shrink([false, true])
        .show_rows(ui, row_height, documents.len(), |ui, rows| {
            for d in &documents[rows] {
                let (colour, state) = match &d.error {
                    Some(e) => (Color32::from_rgb(220, 60, 60), e.clone()),
                    None if d.embedded.is_some_and(|e| e < d.chunks) => (
                        Color32::from_rgb(230, 180, 40),
                        format!(
                            "{} {}/{}",
                            t.embedding_pending,
                            d.embedded.unwrap_or(0),
                            d.chunks
                        ),
                    ),
                    None => (
                        Color32::from_rgb(60, 180, 90),
                        format!("{} · {} {}", t.indexed, d.chunks, t.chunks),
                    ),
                };
                ui.horizontal(|ui| {
                    ui.colored_label(colour, "●");
                    ui.label(super::text::short_name(&d.path))
                        .on_hover_text(format!("{}\n{} · {state}", d.path.display(), d.kind));
                });
            }
        });
}
