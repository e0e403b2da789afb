//! `glassbox bench ui` and `bench space`: the real window, driven by a script, measuring how
//! long each frame takes on the UI thread while the library indexes a corpus, while the model
//! answers, and while the user pans, zooms and hovers over a large embedding-space picture. The
//! UI must never wait for work, so its frames should stay short throughout.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::worker::Request;
use super::{GlassboxApp, Settings};
use crate::viz::space::Space;

/// Frame times of one phase, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseFrames {
    pub frames: usize,
    /// CPU time eframe reports for each frame: the app's drawing, layout, tessellation and
    /// handing the frame to the GPU.
    pub cpu_p50_ms: f32,
    pub cpu_p95_ms: f32,
    pub cpu_max_ms: f32,
    /// Wall time from one frame's start to the next's (includes waiting for the display).
    pub interval_p95_ms: f32,
    pub seconds: f32,
}

/// The phases a script ran; those it did not run have no frames.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FrameReport {
    pub indexing: PhaseFrames,
    pub answering: PhaseFrames,
    pub exploring: PhaseFrames,
}

impl FrameReport {
    pub fn phases(&self) -> impl Iterator<Item = (&'static str, &PhaseFrames)> {
        [
            ("indexing", &self.indexing),
            ("answering", &self.answering),
            ("exploring the embedding space", &self.exploring),
        ]
        .into_iter()
        .filter(|(_, p)| p.frames > 0)
    }
}

/// What the window is made to do.
pub enum Script {
    /// Index `corpus`, then ask `question`.
    IndexAndAnswer { corpus: PathBuf, question: String },
    /// Show `space` in the embedding-space panel and, for `frames` frames, move the pointer over
    /// it, scroll to zoom in and out, and drag to pan, as real input events.
    Explore { space: Arc<Space>, frames: usize },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Start,
    Indexing { seen_work: bool },
    Answering { seen_work: bool },
    Exploring { frame: usize },
    Done,
}

pub struct FrameBench {
    script: Script,
    phase: Phase,
    started: Instant,
    last_frame: Option<Instant>,
    cpu: Vec<f32>,
    intervals: Vec<f32>,
    report: Arc<Mutex<FrameReport>>,
}

impl FrameBench {
    pub fn new(script: Script, report: Arc<Mutex<FrameReport>>) -> Self {
        FrameBench {
            script,
            phase: Phase::Start,
            started: Instant::now(),
            last_frame: None,
            cpu: Vec::new(),
            intervals: Vec::new(),
            report,
        }
    }

    /// One frame of the script: records the previous frame's time and moves the phases on.
    pub(super) fn frame(app: &mut GlassboxApp, ctx: &egui::Context, cpu_s: Option<f32>) {
        let Some(bench) = &mut app.bench else { return };
        // No extra repaints: the frames measured are the ones the app draws by itself, woken by
        // progress reports and streamed tokens, as a user's window would be.
        let now = Instant::now();
        if let (Some(last), Some(cpu)) = (bench.last_frame, cpu_s) {
            bench.cpu.push(cpu * 1000.0);
            bench.intervals.push((now - last).as_secs_f32() * 1000.0);
        }
        bench.last_frame = Some(now);
        let busy = app.job.is_some();
        bench.phase = match (bench.phase, &bench.script) {
            (Phase::Start, Script::IndexAndAnswer { corpus, .. }) => {
                app.worker.send(Request::Index(vec![corpus.clone()]));
                bench.restart();
                Phase::Indexing { seen_work: false }
            }
            (Phase::Start, Script::Explore { space, .. }) => {
                app.inspector.show_space(space.clone());
                bench.restart();
                Phase::Exploring { frame: 0 }
            }
            (Phase::Exploring { frame }, Script::Explore { frames, .. }) if frame >= *frames => {
                bench.finish_phase(|r| &mut r.exploring);
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                Phase::Done
            }
            (Phase::Exploring { frame }, _) => {
                // Input drives these frames: ask for the next one as a moving pointer would.
                ctx.request_repaint();
                Phase::Exploring { frame: frame + 1 }
            }
            (Phase::Indexing { seen_work }, Script::IndexAndAnswer { question, .. })
                if seen_work && !busy =>
            {
                let question = question.clone();
                bench.finish_phase(|r| &mut r.indexing);
                app.chat.ask(question, &app.worker);
                Phase::Answering { seen_work: false }
            }
            (Phase::Indexing { seen_work }, _) => Phase::Indexing {
                seen_work: seen_work || busy,
            },
            (Phase::Answering { seen_work }, _) if seen_work && !busy && !app.chat.is_busy() => {
                bench.finish_phase(|r| &mut r.answering);
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                Phase::Done
            }
            (Phase::Answering { seen_work }, _) => Phase::Answering {
                seen_work: seen_work || busy,
            },
            (Phase::Done, _) => Phase::Done,
        };
    }

    /// The input of an exploring frame: the pointer circles over the picture; for the first half
    /// of every 120 frames the wheel zooms in and out about it, for the second half the primary
    /// button is held, so the picture pans with the pointer.
    pub(super) fn input(app: &GlassboxApp, raw: &mut egui::RawInput) {
        let Some(FrameBench {
            phase: Phase::Exploring { frame },
            ..
        }) = app.bench
        else {
            return;
        };
        let Some(canvas) = app.inspector.space_canvas() else {
            return;
        };
        let angle = frame as f32 * 0.05;
        let radius = canvas.width().min(canvas.height()) * 0.3;
        let at = canvas.center() + egui::vec2(angle.cos(), angle.sin()) * radius;
        raw.events.push(egui::Event::PointerMoved(at));
        let cycle = frame % 120;
        let button = |pressed| egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        };
        match cycle {
            0..60 => {
                let direction = if cycle < 30 { 1.0 } else { -1.0 };
                raw.events.push(egui::Event::MouseWheel {
                    unit: egui::MouseWheelUnit::Point,
                    delta: egui::vec2(0.0, 40.0 * direction),
                    phase: egui::TouchPhase::Move,
                    source: egui::MouseWheelSource::Wheel,
                    modifiers: egui::Modifiers::NONE,
                });
            }
            60 => raw.events.push(button(true)),
            119 => raw.events.push(button(false)),
            _ => {}
        }
    }

    fn restart(&mut self) {
        self.cpu.clear();
        self.intervals.clear();
        self.started = Instant::now();
    }

    /// Puts the frames measured since the last phase into the report's `slot`, and starts
    /// counting again.
    fn finish_phase(&mut self, slot: impl FnOnce(&mut FrameReport) -> &mut PhaseFrames) {
        let frames = PhaseFrames {
            frames: self.cpu.len(),
            cpu_p50_ms: percentile(&mut self.cpu, 0.50),
            cpu_p95_ms: percentile(&mut self.cpu, 0.95),
            cpu_max_ms: percentile(&mut self.cpu, 1.0),
            interval_p95_ms: percentile(&mut self.intervals, 0.95),
            seconds: self.started.elapsed().as_secs_f32(),
        };
        self.restart();
        *slot(&mut self.report.lock().unwrap_or_else(|e| e.into_inner())) = frames;
    }
}

fn percentile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    let i = ((values.len() - 1) as f32 * q).round() as usize;
    values[i]
}

/// Runs the window over `data_dir` through `script`; returns the frame times of its phases.
pub fn run(data_dir: PathBuf, script: Script, settings: Settings) -> Result<FrameReport, String> {
    let report = Arc::new(Mutex::new(FrameReport::default()));
    let sink = report.clone();
    let options = super::native_options();
    eframe::run_native(
        "Glassbox bench",
        options,
        Box::new(move |_| {
            let mut app = GlassboxApp::new(data_dir, settings);
            app.bench = Some(FrameBench::new(script, sink));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))?;
    let report = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(report)
}
