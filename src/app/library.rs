//! The left panel: folders and their documents' state, drag-and-drop and "Add folder…", and
//! indexing progress with a cancel button.

use super::text::Strings;
use super::worker::{IndexProgress, Request, Update, Worker};
use crate::library::LibraryStatus;

#[derive(Default)]
pub struct LibraryView {
    /// Where the heading was drawn (the screenshot's glyph check looks there).
    pub heading: Option<egui::Rect>,
    status: Option<LibraryStatus>,
    progress: Option<IndexProgress>,
    /// Files the last indexing passed over: not a kind Glassbox reads.
    skipped: usize,
}

impl LibraryView {
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::Status(s) => self.status = Some(s.clone()),
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
        let Some(status) = &self.status else { return };
        egui::ScrollArea::vertical().show(ui, |ui| {
            for f in &status.folders {
                let name = super::text::short_name(&f.folder.path);
                ui.horizontal(|ui| {
                    ui.strong(name)
                        .on_hover_text(f.folder.path.display().to_string());
                    let mut watched = f.folder.watched;
                    if ui.checkbox(&mut watched, t.watch).changed() {
                        worker.send(Request::Watch(f.folder.id, watched));
                    }
                });
                ui.small(format!(
                    "{} {} · {} {} · {} {}",
                    f.indexed, t.indexed, f.chunks, t.chunks, f.failed, t.failed
                ));
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
    }
}
