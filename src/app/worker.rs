//! The app's messenger to the background: requests go to one thread (see `background`) that owns
//! the library and the language model and serves them in order; what it reports comes back
//! through a channel, and it wakes the UI. Cancelling indexing and stopping an answer are flags
//! the UI sets directly, so they act even while that thread is busy.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use super::background::Background;
use super::settings::Settings;
use crate::answer::Answer;
use crate::catalog::{ChatSummary, DocumentRow, LlmCacheStats, StoredMessage};
use crate::gpu::GpuContext;
use crate::ingest::reader::Reading;
use crate::library::{IndexSummary, LibraryStatus};
use crate::retrieve::SearchResponse;
use crate::viz::attention::Heatmap;
use crate::viz::space::{Method, Space};

pub enum Request {
    /// Add these folders or files to the library and index them.
    Index(Vec<PathBuf>),
    /// Answer with the model in this chat (a new one when `None`), or search when there is no
    /// model.
    Ask {
        chat: Option<i64>,
        question: String,
    },
    /// Answer the chat's last question again, replacing its answer: a new answer, drawn with a
    /// new seed, never the LLM cache's.
    Regenerate(i64),
    /// Forget every answer in the LLM cache.
    ClearLlmCache,
    /// Watch a folder for changes (re-indexed automatically), or stop.
    Watch(i64, bool),
    /// The settings changed: models are reloaded as needed.
    Configure(Box<Settings>),
    Chats,
    OpenChat(i64),
    RenameChat(i64, String),
    DeleteChat(i64),
    ExportChat(i64, PathBuf),
    /// Show this chunk where it stands in its document.
    Read(i64),
    /// Project the library's vectors for the embedding-space panel, this way.
    Space(Method),
    /// Show this layer's attention for answer `message` (given this session): its tokens are
    /// run again.
    Attention {
        message: i64,
        layer: usize,
    },
    /// The documents of a folder, for the library panel.
    Documents(i64),
    /// The window's own wgpu device, for GPU attention (one device, not a second).
    Gpu(Box<GpuContext>),
    /// A picture of the space, finished (sent by the thread that computed it).
    Projected(Option<Arc<Space>>),
    Refresh,
    /// The window is closing: stop serving and close the library.
    Shutdown,
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

/// What the background thread is doing, for the status bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Job {
    LoadingModels,
    Indexing,
    Embedding {
        done: u64,
        total: u64,
    },
    LoadingLlm,
    Answering,
    Projecting(f32),
    /// Running the shown answer again for the attention of this layer.
    Attention(usize),
}

/// An answer with what the inspector draws from it.
pub struct Answered {
    pub chat: i64,
    /// The answer's message in the chat.
    pub message: i64,
    /// Shared with the panels that follow it (its captured attention is in `heatmap`).
    pub answer: Arc<Answer>,
    /// The captured layer's attention, one row per answer token.
    pub heatmap: Arc<Heatmap>,
    /// The text of each prompt token and each answer token.
    pub prompt_pieces: Vec<String>,
    pub answer_pieces: Vec<String>,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Per layer: the window of a local (sliding-window) layer, `None` for a global one.
    pub layer_windows: Vec<Option<usize>>,
    /// Where the question lands in the embedding space, when it has been projected.
    pub question_point: Option<[f32; 2]>,
    /// A cached answer comes without attention: this layer's is being computed, and comes as
    /// an `Update::Heatmap`.
    pub attention_pending: Option<usize>,
}

pub enum Update {
    Status(LibraryStatus),
    /// A folder's documents.
    Documents(i64, Vec<DocumentRow>),
    /// Where attention runs now that the model is loaded (device, backend), and why not where
    /// asked, if so.
    Attention {
        device: String,
        backend: &'static str,
        notice: Option<String>,
    },
    Progress(IndexProgress),
    Indexed(IndexSummary),
    Job(Option<Job>),
    /// Search results (no model): the passages and how they were found, and where the
    /// question lands in the embedding space.
    Results(Box<SearchResponse>, Option<[f32; 2]>),
    /// A piece of the answer being written.
    AnswerText(String),
    Answered(Arc<Answered>),
    Chats(Vec<ChatSummary>),
    ChatOpened(i64, Vec<StoredMessage>),
    /// The chat shown was deleted.
    ChatClosed(i64),
    Reading(Box<Reading>),
    /// The library's embedding space (`None` without vectors to project) and where the last
    /// question lands in it.
    Space(Option<Arc<Space>>, Option<[f32; 2]>),
    /// Another layer's attention for the answer shown.
    Heatmap(Arc<Heatmap>),
    /// The LLM cache after an answer, or after it was cleared.
    LlmCache(LlmCacheStats),
    /// A finished action worth telling the user about.
    Notice(String),
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
        settings: Settings,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Worker {
        let (requests, inbox) = channel();
        let (outbox, updates) = channel();
        let cancel_index = Arc::new(AtomicBool::new(false));
        let stop_answer = Arc::new(AtomicBool::new(false));
        let background = Background::new(
            requests.clone(),
            outbox,
            Arc::new(wake),
            cancel_index.clone(),
            stop_answer.clone(),
            settings,
        );
        std::thread::Builder::new()
            .name("glassbox-worker".into())
            .spawn(move || background.run(data_dir, inbox))
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
        if matches!(request, Request::Ask { .. } | Request::Regenerate(_)) {
            self.stop_answer.store(false, Ordering::Relaxed);
        }
        // A closed channel means the worker has stopped and already reported why.
        let _ = self.requests.send(request);
    }

    /// Opens the system's folder dialog on a thread of its own (it blocks until the user
    /// chooses, and the window must keep drawing), then indexes the chosen folder.
    pub fn pick_folder(&self) {
        self.cancel_index.store(false, Ordering::Relaxed);
        self.dialog(|| {
            rfd::FileDialog::new()
                .pick_folder()
                .map(|f| Request::Index(vec![f]))
        });
    }

    /// Asks where to save a chat as Markdown, then writes it there.
    pub fn export_chat(&self, chat: i64, title: &str) {
        let name = format!("{}.md", title.replace(['/', '\\', ':'], "-"));
        self.dialog(move || {
            rfd::FileDialog::new()
                .set_file_name(name)
                .add_filter("Markdown", &["md"])
                .save_file()
                .map(|path| Request::ExportChat(chat, path))
        });
    }

    fn dialog(&self, ask: impl FnOnce() -> Option<Request> + Send + 'static) {
        let requests = self.requests.clone();
        std::thread::spawn(move || {
            if let Some(request) = ask() {
                let _ = requests.send(request);
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

impl Drop for Worker {
    /// The background thread also holds its own inbox (for the folder watcher), so it is told to
    /// stop rather than left to notice the window's end. An answer being written stops first.
    fn drop(&mut self) {
        self.stop_answer.store(true, Ordering::Relaxed);
        self.cancel_index.store(true, Ordering::Relaxed);
        let _ = self.requests.send(Request::Shutdown);
    }
}
