//! The desktop app (eframe with the wgpu renderer). A thin shell: each panel keeps its own view
//! state and draws; the library and the model work on the `worker` thread and report back
//! through a channel, so the UI thread never waits for them.

mod chat;
mod fonts;
mod inspector;
mod library;
mod text;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub use inspector::Tab;
pub use text::Lang;
pub use worker::{Request, Update, Worker};

/// The whole window's state.
pub struct GlassboxApp {
    /// The context to wake when background work reports; known from the first frame on.
    ctx: Arc<OnceLock<egui::Context>>,
    worker: Worker,
    lang: Lang,
    library: library::LibraryView,
    chat: chat::ChatView,
    inspector: inspector::InspectorView,
}

impl GlassboxApp {
    /// An app over the library in `data_dir`, answering with the GGUF model at `llm` when given
    /// (keyword search works without one).
    pub fn new(data_dir: PathBuf, llm: Option<PathBuf>, lang: Lang) -> Self {
        let ctx: Arc<OnceLock<egui::Context>> = Arc::default();
        let wake = ctx.clone();
        let worker = Worker::start(data_dir, llm, move || {
            if let Some(ctx) = wake.get() {
                ctx.request_repaint();
            }
        });
        worker.send(Request::Refresh);
        GlassboxApp {
            ctx,
            worker,
            lang,
            library: library::LibraryView::default(),
            chat: chat::ChatView::default(),
            inspector: inspector::InspectorView::default(),
        }
    }

    /// Which inspector tab is open.
    pub fn tab(&self) -> inspector::Tab {
        self.inspector.tab
    }

    /// One frame: take what the worker reported, then draw the three panels.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        if self.ctx.set(ui.ctx().clone()).is_ok() {
            fonts::install(ui.ctx());
        }
        for update in self.worker.poll() {
            self.library.apply(&update);
            self.chat.apply(&update);
            self.inspector.apply(&update);
        }
        let t = text::strings(self.lang);
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Glassbox");
                ui.separator();
                ui.label(t.language);
                ui.selectable_value(&mut self.lang, Lang::Ko, "한국어");
                ui.selectable_value(&mut self.lang, Lang::En, "English");
            });
        });
        egui::Panel::left("library")
            .default_size(260.0)
            .show(ui, |ui| self.library.ui(ui, t, &self.worker));
        egui::Panel::right("inspector")
            .default_size(360.0)
            .show(ui, |ui| self.inspector.ui(ui, t, self.lang));
        egui::CentralPanel::default_margins().show(ui, |ui| self.chat.ui(ui, t, &self.worker));
    }
}

impl eframe::App for GlassboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}

/// Opens the window and runs until it is closed.
pub fn run(data_dir: PathBuf, llm: Option<PathBuf>, lang: Lang) -> eframe::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Glassbox")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "Glassbox",
        options,
        Box::new(move |_| Ok(Box::new(GlassboxApp::new(data_dir, llm, lang)))),
    )
}
