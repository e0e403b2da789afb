//! `glassbox bench ui`: the real window, driven by a script, measuring how long each frame
//! takes on the UI thread while the library indexes a corpus and while the model answers. The
//! UI must never wait for that work, so its frames should stay short throughout.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::worker::Request;
use super::{GlassboxApp, Settings};

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

#[derive(Clone, Debug, Default, Serialize)]
pub struct FrameReport {
    pub indexing: PhaseFrames,
    pub answering: PhaseFrames,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Start,
    Indexing { seen_work: bool },
    Answering { seen_work: bool },
    Done,
}

pub struct FrameBench {
    corpus: PathBuf,
    question: String,
    phase: Phase,
    started: Instant,
    last_frame: Option<Instant>,
    cpu: Vec<f32>,
    intervals: Vec<f32>,
    report: Arc<Mutex<FrameReport>>,
}

impl FrameBench {
    pub fn new(corpus: PathBuf, question: String, report: Arc<Mutex<FrameReport>>) -> Self {
        FrameBench {
            corpus,
            question,
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
        bench.phase = match bench.phase {
            Phase::Start => {
                app.worker.send(Request::Index(vec![bench.corpus.clone()]));
                bench.restart();
                Phase::Indexing { seen_work: false }
            }
            Phase::Indexing { seen_work } if seen_work && !busy => {
                bench
                    .report
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .indexing = bench.take();
                app.chat.ask(bench.question.clone(), &app.worker);
                Phase::Answering { seen_work: false }
            }
            Phase::Indexing { seen_work } => Phase::Indexing {
                seen_work: seen_work || busy,
            },
            Phase::Answering { seen_work } if seen_work && !busy && !app.chat.is_busy() => {
                bench
                    .report
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .answering = bench.take();
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                Phase::Done
            }
            Phase::Answering { seen_work } => Phase::Answering {
                seen_work: seen_work || busy,
            },
            Phase::Done => Phase::Done,
        };
    }

    fn restart(&mut self) {
        self.cpu.clear();
        self.intervals.clear();
        self.started = Instant::now();
    }

    fn take(&mut self) -> PhaseFrames {
        let frames = PhaseFrames {
            frames: self.cpu.len(),
            cpu_p50_ms: percentile(&mut self.cpu, 0.50),
            cpu_p95_ms: percentile(&mut self.cpu, 0.95),
            cpu_max_ms: percentile(&mut self.cpu, 1.0),
            interval_p95_ms: percentile(&mut self.intervals, 0.95),
            seconds: self.started.elapsed().as_secs_f32(),
        };
        self.restart();
        frames
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

/// Runs the window over `data_dir`, indexing `corpus` and then asking `question`; returns the
/// frame times of both phases.
pub fn run(
    data_dir: PathBuf,
    corpus: PathBuf,
    question: String,
    settings: Settings,
) -> Result<FrameReport, String> {
    let report = Arc::new(Mutex::new(FrameReport::default()));
    let sink = report.clone();
    let options = super::native_options();
    eframe::run_native(
        "Glassbox bench",
        options,
        Box::new(move |_| {
            let mut app = GlassboxApp::new(data_dir, settings);
            app.bench = Some(FrameBench::new(corpus, question, sink));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))?;
    let report = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(report)
}
