//! The desktop app (eframe with the wgpu renderer). A thin shell: each panel keeps its own view
//! state and draws; the library and the model work on a background thread (`worker` sends to
//! it, `background` serves) and report back through a channel, so the UI thread never waits.

mod background;
pub mod bench;
mod chat;
mod fonts;
mod inspector;
mod library;
mod models;
mod reader;
mod screenshot;
mod settings;
mod text;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::llm::AttentionKind;

/// Room for the memory figure in the top bar ("메모리 12345 MB" fits).
const MEMORY_WIDTH: f32 = 120.0;

pub use inspector::Tab;
pub use settings::{Settings, Theme};
pub use text::Lang;
pub use worker::{Job, Request, Update, Worker};

/// The whole window's state.
pub struct GlassboxApp {
    /// The context to wake when background work reports; known from the first frame on.
    ctx: Arc<OnceLock<egui::Context>>,
    worker: Worker,
    settings: Settings,
    /// The settings the worker last heard of.
    sent: Settings,
    settings_open: bool,
    /// Whether the theme has been applied once.
    themed: bool,
    job: Option<Job>,
    notice: Option<String>,
    /// The last thing that failed, until dismissed.
    error: Option<String>,
    memory: (Instant, Option<u64>),
    /// Where the loaded model's attention runs, and why not where asked, if so.
    attention: Option<(String, &'static str, Option<String>)>,
    library: library::LibraryView,
    chat: chat::ChatView,
    inspector: inspector::InspectorView,
    reader: reader::ReaderView,
    models: models::ModelsView,
    screenshot: Option<screenshot::Screenshot>,
    bench: Option<bench::FrameBench>,
}

impl GlassboxApp {
    /// An app over the library in `data_dir`.
    pub fn new(data_dir: PathBuf, settings: Settings) -> Self {
        let ctx: Arc<OnceLock<egui::Context>> = Arc::default();
        let wake = ctx.clone();
        let worker = Worker::start(data_dir, settings.clone(), move || {
            if let Some(ctx) = wake.get() {
                ctx.request_repaint();
            }
        });
        GlassboxApp {
            ctx,
            worker,
            sent: settings.clone(),
            settings,
            settings_open: false,
            themed: false,
            job: None,
            notice: None,
            error: None,
            memory: (Instant::now(), crate::models::fit::resident_memory()),
            attention: None,
            library: library::LibraryView::default(),
            chat: chat::ChatView::default(),
            inspector: inspector::InspectorView::default(),
            reader: reader::ReaderView::default(),
            models: models::ModelsView::new(crate::models::Hub::from_env()),
            screenshot: None,
            bench: None,
        }
    }

    /// Saves a picture of the window to `path` once it has settled, then closes it.
    pub fn with_screenshot(mut self, path: PathBuf) -> Self {
        self.screenshot = Some(screenshot::Screenshot::new(path));
        self
    }

    /// GPU attention runs on `gpu` (the window's own device) rather than a second device.
    pub fn with_gpu(self, gpu: crate::gpu::GpuContext) -> Self {
        self.worker.send(Request::Gpu(Box::new(gpu)));
        self
    }

    /// The Models window downloads from and looks in `hub` (the default reads HF_ENDPOINT and
    /// HF_HOME).
    pub fn with_hub(mut self, hub: crate::models::Hub) -> Self {
        self.models = models::ModelsView::new(hub);
        self
    }

    /// Which inspector tab is open.
    pub fn tab(&self) -> inspector::Tab {
        self.inspector.tab
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One frame: take what the worker reported, then draw the panels.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if self.ctx.set(ctx.clone()).is_ok() {
            fonts::install(&ctx);
        }
        self.receive();
        self.take_drops(&ctx);
        self.configure(&ctx);
        let t = text::strings(self.settings.lang);
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui, t));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui, t));
        egui::Panel::left("library")
            .default_size(260.0)
            .show(ui, |ui| self.library.ui(ui, t, &self.worker));
        egui::Panel::right("inspector")
            .default_size(380.0)
            .show(ui, |ui| {
                self.inspector
                    .ui(ui, t, self.settings.lang, &mut self.settings, &self.worker)
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if self.library.is_empty() {
                self.first_run(ui, t);
            }
            if let Some(answer) = self.chat.ui(ui, t, &self.worker) {
                self.inspector.follow_answer(&answer);
            }
        });
        self.reader.show(&ctx, t);
        if let Some(llm) = self.models.show(&ctx, t) {
            self.settings.llm = Some(llm);
        }
        if self.settings_open {
            let mut open = true;
            egui::Window::new(t.settings)
                .open(&mut open)
                .show(&ctx, |ui| self.settings.ui(ui, t));
            self.settings_open = open;
        }
    }

    fn receive(&mut self) {
        for update in self.worker.poll() {
            match &update {
                Update::Job(job) => self.job = *job,
                Update::Notice(n) => self.notice = Some(n.clone()),
                Update::Failed(e) => self.error = Some(e.clone()),
                Update::Attention {
                    device,
                    backend,
                    notice,
                } => self.attention = Some((device.clone(), backend, notice.clone())),
                Update::Reading(r) => self.reader.open(r.clone()),
                _ => {}
            }
            self.library.apply(&update);
            self.chat.apply(&update);
            self.inspector.apply(&update);
        }
    }

    /// Files dropped on the window: a .gguf becomes the answering model, the rest is indexed.
    fn take_drops(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let (models, documents): (Vec<PathBuf>, Vec<PathBuf>) =
            dropped.into_iter().partition(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            });
        if let Some(model) = models.into_iter().next() {
            self.settings.llm = Some(model);
        }
        if !documents.is_empty() {
            self.worker.send(Request::Index(documents));
        }
    }

    /// Tells the worker about changed settings and applies the theme.
    fn configure(&mut self, ctx: &egui::Context) {
        if self.settings.theme != self.sent.theme || !self.themed {
            self.themed = true;
            ctx.set_theme(self.settings.theme.preference());
        }
        if self.settings != self.sent {
            self.sent = self.settings.clone();
            self.worker
                .send(Request::Configure(Box::new(self.settings.clone())));
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui, t: &text::Strings) {
        ui.horizontal(|ui| {
            ui.heading("Glassbox");
            ui.separator();
            let name = |p: &PathBuf| text::short_name(p);
            let current = self.settings.llm.as_ref().map_or(t.no_llm.to_owned(), name);
            let label = ui.label(t.model);
            egui::ComboBox::from_id_salt("llm")
                .selected_text(current)
                .width(240.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.settings.llm, None, t.no_llm);
                    let mut installed = self.models.installed_llms();
                    if let Some(own) = &self.settings.llm
                        && !installed.iter().any(|(_, p)| p == own)
                    {
                        installed.push((name(own), own.clone()));
                    }
                    for (id, path) in installed {
                        ui.selectable_value(&mut self.settings.llm, Some(path), id);
                    }
                })
                .response
                .labelled_by(label.id);
            if ui.button(t.get_models).clicked() {
                self.models.open = true;
            }
            ui.separator();
            // What the loaded model runs on (and why not what was asked for, if so); before
            // a model is loaded, what was asked for.
            let (device, backend, notice) = match &self.attention {
                Some((device, backend, notice)) => (device.as_str(), *backend, notice.as_deref()),
                None => match self.settings.attention {
                    kind @ (AttentionKind::Gpu | AttentionKind::Auto) => ("GPU", kind.name(), None),
                    kind => ("CPU", kind.name(), None),
                },
            };
            let label = ui.label(format!("{device} · {} {backend}", t.attention));
            if let Some(n) = notice {
                label.on_hover_text(n);
            }
            ui.separator();
            if self.memory.0.elapsed().as_secs() >= 1 {
                self.memory = (Instant::now(), crate::models::fit::resident_memory());
            }
            if let Some(bytes) = self.memory.1 {
                // A fixed slot, so the buttons after it stay put as the figure grows a digit.
                let text = format!("{} {:.0} MB", t.memory, bytes as f64 / 1e6);
                ui.add_sized(
                    [MEMORY_WIDTH, ui.spacing().interact_size.y],
                    egui::Label::new(text),
                );
            }
            ui.separator();
            if ui.button(t.settings).clicked() {
                self.settings_open = true;
            }
            ui.selectable_value(&mut self.settings.lang, Lang::Ko, "한국어");
            ui.selectable_value(&mut self.settings.lang, Lang::En, "English");
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui, t: &text::Strings) {
        ui.horizontal(|ui| {
            match self.job {
                Some(job) => {
                    ui.spinner();
                    ui.label(t.job(job));
                }
                None => {
                    ui.weak(t.idle);
                }
            }
            if let Some(n) = &self.notice {
                ui.separator();
                ui.weak(format!("{} {n}", t.exported));
            }
            if let Some(e) = &self.error {
                ui.separator();
                ui.colored_label(ui.visuals().error_fg_color, e);
                if ui.small_button("×").on_hover_text(t.dismiss).clicked() {
                    self.error = None;
                }
            }
        });
    }

    /// What to do first, until the library has a folder.
    fn first_run(&mut self, ui: &mut egui::Ui, t: &text::Strings) {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.heading(t.welcome);
            ui.horizontal(|ui| {
                ui.label(t.step_folder);
                if ui.button(t.add_folder).clicked() {
                    self.worker.pick_folder();
                }
            });
            ui.horizontal(|ui| {
                ui.label(t.step_model);
                if ui.button(t.get_models).clicked() {
                    self.models.open = true;
                }
            });
            ui.weak(t.keyword_first);
        });
    }
}

impl eframe::App for GlassboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.show(ui);
        bench::FrameBench::frame(self, ui.ctx(), frame.info().cpu_usage);
        if let Some(shot) = &mut self.screenshot {
            let ready = self.library.has_reported() && self.job.is_none();
            shot.frame(ui.ctx(), ready, self.library.heading);
        }
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw: &mut egui::RawInput) {
        bench::FrameBench::input(self, raw);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, settings::KEY, &self.settings);
    }
}

fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Glassbox")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    }
}

/// Opens the window and runs until it is closed. The saved settings are read first; a data
/// directory or model given on the command line (`llm`) wins over them, and `fallback_llm`
/// answers when neither names a model.
pub fn run(
    data_dir: Option<PathBuf>,
    llm: Option<PathBuf>,
    fallback_llm: Option<PathBuf>,
    screenshot: Option<PathBuf>,
) -> eframe::Result<()> {
    eframe::run_native(
        "Glassbox",
        native_options(),
        Box::new(move |cc| {
            let mut settings: Settings = cc
                .storage
                .and_then(|s| eframe::get_value(s, settings::KEY))
                .unwrap_or_default();
            settings.llm = llm.or(settings.llm).or(fallback_llm);
            let dir = data_dir.or(settings.data_dir.clone());
            let dir = crate::library::resolve_data_dir(dir)?;
            let mut app = GlassboxApp::new(dir, settings);
            if let Some(render) = &cc.wgpu_render_state {
                app = app.with_gpu(crate::gpu::GpuContext {
                    device: Arc::new(render.device.clone()),
                    queue: Arc::new(render.queue.clone()),
                    info: render.adapter.get_info(),
                    limits: render.device.limits(),
                });
            }
            Ok(Box::new(match screenshot {
                Some(path) => app.with_screenshot(path),
                None => app,
            }))
        }),
    )
}
