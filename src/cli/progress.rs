//! The terminal progress bar of `glassbox index` (only when stderr is a terminal).

use glassbox::library::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct IndexBar {
    bar: Option<ProgressBar>,
}

impl IndexBar {
    pub fn new(enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message("scanning…");
            bar
        });
        IndexBar { bar }
    }

    pub fn update(&self, progress: &Progress) {
        let Some(bar) = &self.bar else { return };
        match progress {
            Progress::Planned {
                bytes,
                files,
                unchanged,
            } => {
                bar.set_length(*bytes);
                bar.set_message(format!("{files} files to index, {unchanged} unchanged"));
            }
            Progress::File { path, bytes, .. } => {
                bar.inc(*bytes);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                bar.set_message(name);
            }
            Progress::Finishing => bar.set_message("committing the index…"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
