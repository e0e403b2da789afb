//! The reader: a cited passage in its document, highlighted, with where it is and a button that
//! opens the file in the system's own app.

use std::path::Path;

use super::text::Strings;
use crate::ingest::reader::Reading;

#[derive(Default)]
pub struct ReaderView {
    reading: Option<Box<Reading>>,
    /// Scroll to the passage once, when it is first shown.
    scroll: bool,
    failed: Option<String>,
}

impl ReaderView {
    pub fn open(&mut self, reading: Box<Reading>) {
        self.reading = Some(reading);
        self.scroll = true;
        self.failed = None;
    }

    pub fn show(&mut self, ctx: &egui::Context, t: &Strings) {
        let Some(reading) = &self.reading else { return };
        let mut open = true;
        let chunk = &reading.chunk;
        egui::Window::new(t.reader)
            .open(&mut open)
            .default_size([560.0, 480.0])
            .show(ctx, |ui| {
                let place = match chunk.page {
                    Some(p) => format!("{} · {} {p}", chunk.path.display(), t.page),
                    None => format!(
                        "{} · {} {}–{}",
                        chunk.path.display(),
                        t.lines,
                        chunk.lines.0,
                        chunk.lines.1
                    ),
                };
                ui.strong(&chunk.title);
                ui.horizontal(|ui| {
                    ui.small(place);
                    if ui.button(t.open_file).clicked()
                        && let Err(e) = open_in_system_app(&chunk.path)
                    {
                        self.failed = Some(e);
                    }
                });
                if let Some(note) = reading.note.as_ref().or(self.failed.as_ref()) {
                    ui.colored_label(ui.visuals().warn_fg_color, note);
                }
                ui.separator();
                egui::ScrollArea::vertical().show(ui, |ui| {
                    if !reading.before.is_empty() {
                        ui.weak(&reading.before);
                    }
                    let highlight = ui.visuals().selection.bg_fill;
                    let passage = ui.label(
                        egui::RichText::new(&reading.passage)
                            .background_color(highlight.gamma_multiply(0.6)),
                    );
                    if std::mem::take(&mut self.scroll) {
                        passage.scroll_to_me(Some(egui::Align::Center));
                    }
                    if !reading.after.is_empty() {
                        ui.weak(&reading.after);
                    }
                });
            });
        if !open {
            self.reading = None;
        }
    }
}

/// Opens `path` with the application the desktop associates with it.
fn open_in_system_app(path: &Path) -> Result<(), String> {
    let mut command = if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else {
        std::process::Command::new("xdg-open")
    };
    let mut child = command
        .arg(path)
        .spawn()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // Reaped on a thread of its own: the opener may stay until the app it started quits.
    std::thread::spawn(move || child.wait());
    Ok(())
}
