//! The background side of the app: one thread with a tokio runtime that owns the library and the
//! language model and serves requests in order, reporting through a channel and waking the UI.
//! Cancelling indexing and stopping an answer are flags the UI sets directly, so they act even
//! while the thread is busy.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Library;
use crate::answer::{Answer, AskOptions};
use crate::library::{IndexOptions, IndexSummary, LibraryStatus, Progress};
use crate::llm::{Engine, EngineOptions};
use crate::retrieve::{SearchOptions, SearchResponse};

pub enum Request {
    /// Add these folders or files to the library and index them.
    Index(Vec<PathBuf>),
    /// Answer with the model, or search when there is none.
    Ask(String),
    Refresh,
}

/// Indexing progress, accumulated from the indexer's per-file reports.
#[derive(Clone, Debug, Default)]
pub struct IndexProgress {
    pub files_done: usize,
    pub files_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub current: Option<PathBuf>,
    pub failed: usize,
    pub seconds: f64,
}

impl IndexProgress {
    pub fn fraction(&self) -> f32 {
        if self.bytes_total == 0 {
            return 0.0;
        }
        (self.bytes_done as f64 / self.bytes_total as f64) as f32
    }

    /// Bytes per second so far, and the seconds left at that rate.
    pub fn rate_and_eta(&self) -> Option<(f64, f64)> {
        if self.seconds < 0.5 || self.bytes_done == 0 {
            return None;
        }
        let rate = self.bytes_done as f64 / self.seconds;
        Some((rate, (self.bytes_total - self.bytes_done) as f64 / rate))
    }
}

pub enum Update {
    Status(LibraryStatus),
    Progress(IndexProgress),
    Indexed(IndexSummary),
    /// Search results (no model): the passages and how they were found.
    Results(Box<SearchResponse>),
    /// A piece of the answer being written.
    AnswerText(String),
    Answered(Box<Answer>),
    /// Something failed; the message says what and what to do.
    Failed(String),
}

pub struct Worker {
    requests: Sender<Request>,
    updates: Receiver<Update>,
    cancel_index: Arc<AtomicBool>,
    stop_answer: Arc<AtomicBool>,
}

impl Worker {
    pub fn start(
        data_dir: PathBuf,
        llm: Option<PathBuf>,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Worker {
        let (requests, inbox) = channel();
        let (outbox, updates) = channel();
        let cancel_index = Arc::new(AtomicBool::new(false));
        let stop_answer = Arc::new(AtomicBool::new(false));
        let state = Background {
            outbox,
            wake: Arc::new(wake),
            cancel_index: cancel_index.clone(),
            stop_answer: stop_answer.clone(),
            llm,
            engine: None,
        };
        std::thread::Builder::new()
            .name("glassbox-worker".into())
            .spawn(move || state.run(data_dir, inbox))
            .expect("spawning the worker thread");
        Worker {
            requests,
            updates,
            cancel_index,
            stop_answer,
        }
    }

    pub fn send(&self, request: Request) {
        if matches!(request, Request::Index(_)) {
            self.cancel_index.store(false, Ordering::Relaxed);
        }
        if matches!(request, Request::Ask(_)) {
            self.stop_answer.store(false, Ordering::Relaxed);
        }
        // A closed channel means the worker has stopped and already reported why.
        let _ = self.requests.send(request);
    }

    /// Opens the system's folder dialog on a thread of its own (it blocks until the user
    /// chooses, and the window must keep drawing), then indexes the chosen folder.
    pub fn pick_folder(&self) {
        self.cancel_index.store(false, Ordering::Relaxed);
        let requests = self.requests.clone();
        std::thread::spawn(move || {
            if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                let _ = requests.send(Request::Index(vec![folder]));
            }
        });
    }

    /// Everything reported since the last call.
    pub fn poll(&self) -> Vec<Update> {
        self.updates.try_iter().collect()
    }

    pub fn cancel_index(&self) {
        self.cancel_index.store(true, Ordering::Relaxed);
    }

    pub fn stop_answer(&self) {
        self.stop_answer.store(true, Ordering::Relaxed);
    }
}

struct Background {
    outbox: Sender<Update>,
    wake: Arc<dyn Fn() + Send + Sync>,
    cancel_index: Arc<AtomicBool>,
    stop_answer: Arc<AtomicBool>,
    llm: Option<PathBuf>,
    engine: Option<Engine>,
}

impl Background {
    fn send(&self, update: Update) {
        let _ = self.outbox.send(update);
        (self.wake)();
    }

    fn run(mut self, data_dir: PathBuf, inbox: Receiver<Request>) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return self.send(Update::Failed(format!("cannot start: {e}"))),
        };
        let library = match runtime.block_on(Library::open(&data_dir)) {
            Ok(l) => l,
            Err(e) => return self.send(Update::Failed(e.to_string())),
        };
        while let Ok(request) = inbox.recv() {
            let result = match request {
                Request::Index(paths) => runtime.block_on(self.index(&library, &paths)),
                Request::Ask(question) => runtime.block_on(self.ask(&library, &question)),
                Request::Refresh => runtime.block_on(self.refresh(&library)),
            };
            if let Err(message) = result {
                self.send(Update::Failed(message));
            }
        }
        runtime.block_on(library.close());
    }

    async fn refresh(&self, library: &Library) -> Result<(), String> {
        let status = library.status().await.map_err(|e| e.to_string())?;
        self.send(Update::Status(status));
        Ok(())
    }

    async fn index(&self, library: &Library, paths: &[PathBuf]) -> Result<(), String> {
        let started = Instant::now();
        let progress = Mutex::new((IndexProgress::default(), Instant::now()));
        let (outbox, wake) = (self.outbox.clone(), self.wake.clone());
        let report = |p: &Progress| {
            let mut guard = progress.lock().unwrap_or_else(|e| e.into_inner());
            let (state, last_sent) = &mut *guard;
            match p {
                Progress::Planned { files, bytes, .. } => {
                    state.files_total = *files;
                    state.bytes_total = *bytes;
                }
                Progress::File { path, bytes, error } => {
                    state.files_done += 1;
                    state.bytes_done += bytes;
                    state.failed += usize::from(error.is_some());
                    state.current = Some(path.clone());
                }
                Progress::Finishing => state.current = None,
            }
            state.seconds = started.elapsed().as_secs_f64();
            // A few reports a second are enough for a progress bar.
            if last_sent.elapsed() > Duration::from_millis(50)
                || matches!(p, Progress::Planned { .. })
            {
                *last_sent = Instant::now();
                let _ = outbox.send(Update::Progress(state.clone()));
                wake();
            }
        };
        let opts = IndexOptions {
            cancel: self.cancel_index.clone(),
        };
        let summary = library.index(paths, &opts, &report).await;
        let summary = summary.map_err(|e| e.to_string())?;
        self.send(Update::Indexed(summary));
        self.refresh(library).await
    }

    async fn ask(&mut self, library: &Library, question: &str) -> Result<(), String> {
        let Some(path) = self.llm.clone() else {
            let response = library
                .search(question, &SearchOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            self.send(Update::Results(Box::new(response)));
            return Ok(());
        };
        if self.engine.is_none() {
            let engine = Engine::load(&path, &EngineOptions::default())
                .map_err(|e| format!("cannot load the model {}: {e}", path.display()))?;
            self.engine = Some(engine);
        }
        let engine = self.engine.as_mut().expect("loaded above");
        let config = engine.model.config.clone();
        let opts = AskOptions {
            capture: crate::llm::CaptureSpec {
                layers: vec![config.n_layer - 1],
                heads: (0..config.n_head).collect(),
            },
            ..AskOptions::default()
        };
        let (outbox, wake) = (self.outbox.clone(), self.wake.clone());
        let mut on_text = |piece: &str| {
            let _ = outbox.send(Update::AnswerText(piece.to_owned()));
            wake();
        };
        let stop = self.stop_answer.clone();
        let answer = crate::answer::ask(
            library,
            engine,
            &[],
            question,
            &opts,
            Some(&stop),
            &mut on_text,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.send(Update::Answered(Box::new(answer)));
        Ok(())
    }
}
