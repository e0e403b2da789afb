//! The Models window: the known models with their size, licence and languages, whether they fit
//! in this machine's memory, and downloads (each on a thread of its own) with progress; a
//! downloaded language model can be chosen to answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use egui::Color32;

use super::text::Strings;
use crate::models::fit::{Fit, fit, total_memory};
use crate::models::{self, Hub, ModelSpec, Role};

#[derive(Clone, Debug, Default)]
enum Download {
    #[default]
    Starting,
    Running {
        file: String,
        done: u64,
        total: u64,
    },
    Done,
    Failed(String),
}

pub struct ModelsView {
    pub open: bool,
    hub: Hub,
    downloads: HashMap<String, (Arc<Mutex<Download>>, Arc<AtomicBool>)>,
    /// The known models and, for those downloaded, their folder. Read from disk when the
    /// window opens and when a download ends, not on every frame.
    known: Option<Vec<(ModelSpec, Option<PathBuf>)>>,
    was_open: bool,
}

impl ModelsView {
    /// Downloads go to `hub` (in the app: HF_ENDPOINT and HF_HOME, else the Hugging Face
    /// defaults).
    pub fn new(hub: Hub) -> Self {
        ModelsView {
            open: false,
            hub,
            downloads: HashMap::new(),
            known: None,
            was_open: false,
        }
    }

    fn known(&mut self) -> &[(ModelSpec, Option<PathBuf>)] {
        let hub = &self.hub;
        self.known.get_or_insert_with(|| {
            models::known()
                .into_iter()
                .map(|m| {
                    let dir = hub.cached_dir(&m);
                    (m, dir)
                })
                .collect()
        })
    }

    /// The language models on disk: the known ones downloaded, as paths to their GGUF file.
    pub fn installed_llms(&mut self) -> Vec<(String, PathBuf)> {
        self.known()
            .iter()
            .filter(|(m, _)| m.role == Role::Llm)
            .filter_map(|(m, dir)| Some((m.id.clone(), dir.as_ref()?.join(&m.files.first()?.name))))
            .collect()
    }

    /// Draws the window; returns a language model the user chose to answer with.
    pub fn show(&mut self, ctx: &egui::Context, t: &Strings) -> Option<PathBuf> {
        if self.open && !self.was_open {
            self.known = None;
        }
        self.was_open = self.open;
        let mut open = self.open;
        let mut chosen = None;
        let chosen_ref = &mut chosen;
        egui::Window::new(t.models)
            .open(&mut open)
            .default_size([720.0, 420.0])
            .show(ctx, |ui| {
                ui.label(t.models_intro);
                let memory = total_memory();
                if let Some(m) = memory {
                    ui.small(format!("{} {:.1} GB", t.memory_total, m as f64 / 1e9));
                }
                egui::ScrollArea::vertical().show(ui, |ui| {
                    egui::Grid::new("models_grid").striped(true).show(ui, |ui| {
                        for h in t.model_columns {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for (spec, dir) in self.known().to_vec() {
                            if let Some(path) = self.row(ui, t, &spec, dir.as_deref(), memory) {
                                *chosen_ref = Some(path);
                            }
                            ui.end_row();
                        }
                    });
                });
                ui.separator();
                ui.weak(t.drop_gguf);
            });
        self.open = open;
        chosen
    }

    fn row(
        &mut self,
        ui: &mut egui::Ui,
        t: &Strings,
        spec: &ModelSpec,
        downloaded: Option<&std::path::Path>,
        memory: Option<u64>,
    ) -> Option<PathBuf> {
        ui.label(&spec.id);
        ui.label(format!("{:?}", spec.role).to_lowercase());
        // The weight type beside the size: both say what the download costs in memory and quality.
        let weights = spec
            .quantization
            .as_deref()
            .map_or(String::new(), |q| format!(" · {q}"));
        ui.label(format!("{:.0} MB{weights}", spec.size() as f64 / 1e6));
        ui.label(&spec.license);
        ui.label(spec.languages.join(", "));
        let (colour, text) = match memory.map(|m| fit(spec.size(), m)) {
            Some(Fit::Good) => (Color32::from_rgb(60, 180, 90), t.fits[0]),
            Some(Fit::Tight) => (Color32::from_rgb(230, 180, 40), t.fits[1]),
            Some(Fit::No) => (Color32::from_rgb(220, 60, 60), t.fits[2]),
            None => (Color32::GRAY, "?"),
        };
        ui.colored_label(colour, format!("● {text}"));
        if let Some(dir) = downloaded {
            if spec.role == Role::Llm
                && let Some(file) = spec.files.first()
                && ui.button(t.use_model).clicked()
            {
                return Some(dir.join(&file.name));
            }
            ui.weak(t.downloaded);
            return None;
        }
        let state = self
            .downloads
            .get(&spec.id)
            .map(|(s, _)| s.lock().unwrap_or_else(|e| e.into_inner()).clone());
        match state {
            None | Some(Download::Failed(_)) => {
                if let Some(Download::Failed(e)) = &state {
                    ui.colored_label(ui.visuals().error_fg_color, "!")
                        .on_hover_text(e);
                }
                if ui.button(t.download).clicked() {
                    self.start(ui.ctx().clone(), spec.clone());
                }
            }
            Some(Download::Starting) => {
                ui.spinner();
            }
            Some(Download::Running { file, done, total }) => {
                let fraction = if total == 0 {
                    0.0
                } else {
                    done as f32 / total as f32
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(140.0)
                        .text(format!("{file} {:.0}%", fraction * 100.0)),
                );
                if ui.button(t.cancel).clicked()
                    && let Some((_, cancel)) = self.downloads.get(&spec.id)
                {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            Some(Download::Done) => {
                // On disk now: read the folders again, and the row offers "Use".
                ui.weak(t.downloaded);
                self.downloads.remove(&spec.id);
                self.known = None;
            }
        }
        None
    }

    /// Downloads on a thread of its own; a cancelled download stops within the file it is on
    /// and resumes from there next time.
    fn start(&mut self, ctx: egui::Context, spec: ModelSpec) {
        let state = Arc::new(Mutex::new(Download::Starting));
        let cancel = Arc::new(AtomicBool::new(false));
        self.downloads
            .insert(spec.id.clone(), (state.clone(), cancel.clone()));
        let hub = self.hub.clone();
        std::thread::spawn(move || {
            let set = |d: Download| {
                *state.lock().unwrap_or_else(|e| e.into_inner()) = d;
                ctx.request_repaint();
            };
            let result = hub.download_cancellable(&spec, &cancel, &mut |p| {
                set(Download::Running {
                    file: p.file,
                    done: p.done,
                    total: p.total,
                })
            });
            set(match result {
                Ok(_) => Download::Done,
                Err(e) => Download::Failed(e.to_string()),
            });
        });
    }
}
