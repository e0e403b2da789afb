//! The terminal progress bar of `glassbox index` (only when stderr is a terminal).

use glassbox::library::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A progress bar on stderr, only when it is a terminal (and `enabled`).
pub fn terminal_bar(enabled: bool, template: &str) -> Option<ProgressBar> {
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    })
}

pub struct IndexBar {
    bar: Option<ProgressBar>,
    files_done: AtomicUsize,
    files_total: AtomicUsize,
}

impl IndexBar {
    pub fn new(enabled: bool) -> Self {
        let bar = terminal_bar(
            enabled,
            "{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
        );
        if let Some(bar) = &bar {
            bar.set_message("scanning…");
        }
        IndexBar {
            bar,
            files_done: AtomicUsize::new(0),
            files_total: AtomicUsize::new(0),
        }
    }

    pub fn update(&self, progress: &Progress) {
        let Some(bar) = &self.bar else { return };
        match progress {
            Progress::Planned {
                bytes,
                files,
                unchanged,
            } => {
                self.files_total.store(*files, Ordering::Relaxed);
                bar.set_prefix(format!("0/{files} files"));
                bar.set_length(*bytes);
                bar.set_message(format!("{files} files to index, {unchanged} unchanged"));
            }
            Progress::File { path, bytes, .. } => {
                bar.inc(*bytes);
                let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
                let total = self.files_total.load(Ordering::Relaxed);
                bar.set_prefix(format!("{done}/{total} files"));
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

/// The progress bar of the embedding phase of `glassbox index`.
pub struct EmbedBar {
    bar: Option<ProgressBar>,
}

impl EmbedBar {
    pub fn new(enabled: bool) -> Self {
        EmbedBar {
            bar: terminal_bar(
                enabled,
                "embedding [{bar:30}] {pos}/{len} chunks {per_sec} eta {eta}",
            ),
        }
    }

    pub fn update(&self, progress: glassbox::library::EmbedProgress) {
        if let Some(bar) = &self.bar {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
