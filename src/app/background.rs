//! The thread behind the window: a tokio runtime that owns the library, its models and the
//! language model, and serves the window's requests one at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::settings::Settings;
use super::worker::{Answered, IndexProgress, Job, Request, Update};
use crate::Library;
use crate::answer::{Answer, LlmCacheUse};
use crate::catalog::chats::to_markdown;
use crate::library::watch::FolderWatcher;
use crate::library::{IndexOptions, Progress};
use crate::llm::{Engine, EngineOptions};
use crate::viz::attention::Heatmap;
use crate::viz::space::{self, Method, Space};

type Outcome = Result<(), String>;

/// How long watched folders must be quiet before their changes are indexed.
const WATCH_QUIET: Duration = Duration::from_millis(1500);

pub(super) struct Background {
    /// The worker's own inbox, for the folder watcher to ask for re-indexing.
    requests: Sender<Request>,
    watcher: Option<FolderWatcher>,
    outbox: Sender<Update>,
    wake: Arc<dyn Fn() + Send + Sync>,
    cancel_index: Arc<AtomicBool>,
    stop_answer: Arc<AtomicBool>,
    settings: Settings,
    engine: Option<Engine>,
    space: Option<Arc<Space>>,
    /// How the panel last asked for the space to be drawn; kept for redrawing it.
    method: Method,
    /// The last question, placed again when the space is redrawn.
    question: Option<String>,
    /// Cancels the projection running on its own thread.
    projecting: Option<Arc<AtomicBool>>,
    /// The answers given this session, by message id, for recomputing their attention.
    given: HashMap<i64, Shown>,
    /// The window's wgpu device, shared for GPU attention.
    gpu: Option<crate::gpu::GpuContext>,
}

/// The tokens an answer ran through its model.
struct Shown {
    model: PathBuf,
    tokens: Vec<u32>,
    prompt_len: usize,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Background {
    pub(super) fn new(
        requests: Sender<Request>,
        outbox: Sender<Update>,
        wake: Arc<dyn Fn() + Send + Sync>,
        cancel_index: Arc<AtomicBool>,
        stop_answer: Arc<AtomicBool>,
        settings: Settings,
    ) -> Background {
        Background {
            requests,
            watcher: None,
            outbox,
            wake,
            cancel_index,
            stop_answer,
            settings,
            engine: None,
            space: None,
            method: Method::default(),
            question: None,
            projecting: None,
            given: HashMap::new(),
            gpu: None,
        }
    }

    fn send(&self, update: Update) {
        let _ = self.outbox.send(update);
        (self.wake)();
    }

    pub(super) fn run(mut self, data_dir: PathBuf, inbox: Receiver<Request>) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return self.send(Update::Failed(format!("cannot start: {e}"))),
        };
        let mut library = match runtime.block_on(Library::open(&data_dir)) {
            Ok(l) => l,
            Err(e) => return self.send(Update::Failed(e.to_string())),
        };
        self.start_watching(&data_dir);
        if let Err(message) = runtime.block_on(self.start(&mut library)) {
            self.send(Update::Failed(message));
        }
        while let Ok(request) = inbox.recv() {
            if matches!(request, Request::Shutdown) {
                if let Some(projecting) = &self.projecting {
                    projecting.store(true, Ordering::Relaxed);
                }
                break;
            }
            let result = runtime.block_on(self.serve(&mut library, request));
            self.send(Update::Job(None));
            if let Err(message) = result {
                self.send(Update::Failed(message));
            }
        }
        runtime.block_on(library.close());
    }

    /// Changed files in watched folders come back as requests to index those folders.
    fn start_watching(&mut self, data_dir: &std::path::Path) {
        let requests = Mutex::new(self.requests.clone());
        let started = FolderWatcher::start(WATCH_QUIET, data_dir.to_owned(), move |roots| {
            let requests = requests.lock().unwrap_or_else(|e| e.into_inner());
            let _ = requests.send(Request::Index(roots));
        });
        match started {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(e) => self.send(Update::Failed(e.to_string())),
        }
    }

    /// Watches the library's watched folders (and stops watching the others).
    async fn follow_folders(&mut self, library: &Library) -> Outcome {
        let Some(watcher) = &mut self.watcher else {
            return Ok(());
        };
        for folder in library.catalog().folders().await.map_err(text)? {
            if folder.watched && folder.path.exists() {
                watcher.watch(&folder.path).map_err(text)?;
            } else {
                watcher.unwatch(&folder.path);
            }
        }
        Ok(())
    }

    async fn start(&mut self, library: &mut Library) -> Outcome {
        self.refresh(library).await?;
        self.follow_folders(library).await?;
        self.send(Update::Chats(
            library.catalog().chats().await.map_err(text)?,
        ));
        self.send(Update::Job(Some(Job::LoadingModels)));
        self.load_models(library).await?;
        self.send(Update::Job(None));
        Ok(())
    }

    /// The embedder (vector search) and, when re-ranking is on, the cross-encoder.
    async fn load_models(&mut self, library: &mut Library) -> Outcome {
        let embedder = crate::models::active::embedder(library, None).await;
        library.set_embedder(embedder.map_err(text)?);
        let reranker = if self.settings.rerank {
            crate::models::active::reranker(library, None)
                .await
                .map_err(text)?
        } else {
            None
        };
        library.set_reranker(reranker);
        Ok(())
    }

    async fn serve(&mut self, library: &mut Library, request: Request) -> Outcome {
        let catalog = library.catalog();
        match request {
            Request::Index(paths) => self.index(library, &paths).await,
            Request::Ask { chat, question } => self.ask(library, chat, &question, false).await,
            Request::ClearLlmCache => {
                library.catalog().clear_llm_cache().await.map_err(text)?;
                self.send(Update::LlmCache(
                    library.catalog().llm_cache_stats().await.map_err(text)?,
                ));
                Ok(())
            }
            Request::Regenerate(chat) => self.regenerate(library, chat).await,
            Request::Configure(settings) => self.configure(library, *settings).await,
            Request::Watch(folder, on) => {
                catalog.set_watched(folder, on).await.map_err(text)?;
                self.follow_folders(library).await?;
                self.refresh(library).await
            }
            Request::Chats => {
                self.send(Update::Chats(catalog.chats().await.map_err(text)?));
                Ok(())
            }
            Request::OpenChat(chat) => self.open_chat(library, chat).await,
            Request::RenameChat(chat, title) => {
                catalog.rename_chat(chat, &title).await.map_err(text)?;
                self.send(Update::Chats(catalog.chats().await.map_err(text)?));
                Ok(())
            }
            Request::DeleteChat(chat) => {
                catalog.delete_chat(chat).await.map_err(text)?;
                self.send(Update::ChatClosed(chat));
                self.send(Update::Chats(catalog.chats().await.map_err(text)?));
                Ok(())
            }
            Request::ExportChat(chat, path) => self.export(library, chat, &path).await,
            Request::Read(chunk) => {
                let chunks = catalog.chunks(&[chunk]).await.map_err(text)?;
                let Some(chunk) = chunks.first() else {
                    return Err("this passage is no longer in the library".into());
                };
                let reading = crate::ingest::reader::read(chunk);
                self.send(Update::Reading(Box::new(reading)));
                Ok(())
            }
            Request::Space(method) => {
                self.method = method;
                self.project(library).await
            }
            Request::Attention { message, layer } => self.recompute_attention(message, layer),
            Request::Projected(space) => {
                self.projecting = None;
                self.show_space(library, space);
                Ok(())
            }
            Request::Refresh => self.refresh(library).await,
            Request::Gpu(ctx) => {
                self.gpu = Some(*ctx);
                // Loaded again on the window's device at the next question.
                self.engine = None;
                Ok(())
            }
            Request::Documents(folder) => {
                let documents = library.documents(folder).await.map_err(text)?;
                self.send(Update::Documents(folder, documents));
                Ok(())
            }
            Request::Shutdown => Ok(()),
        }
    }

    async fn refresh(&self, library: &Library) -> Outcome {
        let status = library.status().await.map_err(text)?;
        self.send(Update::Status(status));
        Ok(())
    }

    async fn configure(&mut self, library: &mut Library, settings: Settings) -> Outcome {
        let old = std::mem::replace(&mut self.settings, settings);
        if old.attention != self.settings.attention || old.llm != self.settings.llm {
            // Loaded again, with the new choice, at the next question.
            self.engine = None;
        }
        if old.rerank != self.settings.rerank {
            self.send(Update::Job(Some(Job::LoadingModels)));
            self.load_models(library).await?;
        }
        Ok(())
    }

    async fn index(&mut self, library: &Library, paths: &[PathBuf]) -> Outcome {
        self.send(Update::Job(Some(Job::Indexing)));
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
        let summary = library.index(paths, &opts, &report).await.map_err(text)?;
        self.send(Update::Indexed(summary));
        self.refresh(library).await?;
        self.follow_folders(library).await?;
        let (outbox, wake) = (self.outbox.clone(), self.wake.clone());
        let embedded = library
            .embed_pending(&opts, &move |p| {
                let job = Job::Embedding {
                    done: p.done,
                    total: p.total,
                };
                let _ = outbox.send(Update::Job(Some(job)));
                wake();
            })
            .await
            .map_err(text)?;
        if embedded.embedded > 0 && self.space.take().is_some() {
            // The picture changed; draw it again.
            self.project(library).await?;
        }
        Ok(())
    }

    /// Answers `question`; `fresh` asks for a new answer (Regenerate), not the cached one.
    async fn ask(
        &mut self,
        library: &Library,
        chat: Option<i64>,
        question: &str,
        fresh: bool,
    ) -> Outcome {
        self.question = Some(question.to_owned());
        if self.settings.llm.is_none() {
            let response = library
                .search(question, &self.settings.search_options())
                .await
                .map_err(text)?;
            let point = self.question_point(library, question);
            self.send(Update::Results(Box::new(response), point));
            return Ok(());
        }
        let catalog = library.catalog();
        let chat = match chat {
            Some(id) => id,
            None => {
                let title: String = question.chars().take(60).collect();
                let id = catalog.create_chat(&title).await.map_err(text)?;
                self.send(Update::Chats(catalog.chats().await.map_err(text)?));
                id
            }
        };
        let history = catalog.messages(chat).await.map_err(text)?;
        let answer = self.generate(library, &history, question, fresh).await?;
        let message = catalog
            .record_turn(chat, question, &answer)
            .await
            .map_err(text)?;
        let answered = self.answered(library, chat, message, answer);
        let pending = answered.attention_pending;
        self.send(Update::Answered(Arc::new(answered)));
        self.send(Update::LlmCache(
            catalog.llm_cache_stats().await.map_err(text)?,
        ));
        self.open_chat(library, chat).await?;
        self.send(Update::Chats(catalog.chats().await.map_err(text)?));
        // A cached answer is on screen already; its attention follows (one pass, not a decode).
        match pending {
            Some(layer) => self.recompute_attention(message, layer),
            None => Ok(()),
        }
    }

    async fn regenerate(&mut self, library: &Library, chat: i64) -> Outcome {
        let stored = library
            .catalog()
            .stored_messages(chat)
            .await
            .map_err(text)?;
        let Some(last) = stored
            .iter()
            .rev()
            .find(|m| m.message.role == crate::llm::Role::User)
        else {
            return Ok(());
        };
        let question = last.message.content.clone();
        library
            .catalog()
            .truncate_chat(chat, last.id)
            .await
            .map_err(text)?;
        self.ask(library, Some(chat), &question, true).await
    }

    async fn generate(
        &mut self,
        library: &Library,
        history: &[crate::llm::Message],
        question: &str,
        fresh: bool,
    ) -> Result<Answer, String> {
        if self.engine.is_none() {
            self.send(Update::Job(Some(Job::LoadingLlm)));
            let path = self.settings.llm.clone().unwrap_or_default();
            let options = EngineOptions {
                attention: self.settings.attention,
                gpu: self.gpu.clone(),
                ..EngineOptions::default()
            };
            let engine = Engine::load(&path, &options)
                .map_err(|e| format!("cannot load the model {}: {e}", path.display()))?;
            self.engine = Some(engine);
            self.report_attention();
        }
        self.send(Update::Job(Some(Job::Answering)));
        let engine = self.engine.as_mut().expect("loaded above");
        let config = &engine.model.config;
        let mut opts = self.settings.ask_options(config.n_layer, config.n_head);
        if fresh {
            opts.cache = false;
            opts.sampling.seed = new_seed();
        }
        let (outbox, wake) = (self.outbox.clone(), self.wake.clone());
        let mut on_text = |piece: &str| {
            let _ = outbox.send(Update::AnswerText(piece.to_owned()));
            wake();
        };
        let stop = self.stop_answer.clone();
        let answer = crate::answer::ask(
            library,
            engine,
            history,
            question,
            &opts,
            Some(&stop),
            &mut on_text,
        )
        .await
        .map_err(text);
        // The GPU may have failed while answering (the CPU took over): the top bar says so.
        self.report_attention();
        answer
    }

    /// Where the engine's attention runs, and why not where asked.
    fn report_attention(&self) {
        let Some(engine) = &self.engine else {
            return;
        };
        let device = match (&self.gpu, engine.attention_name()) {
            (Some(gpu), "gpu") => gpu.describe(),
            (None, "gpu") => "GPU".to_owned(),
            _ => "CPU".to_owned(),
        };
        self.send(Update::Attention {
            device,
            backend: engine.attention_name(),
            // The top bar also says which weight types run on slower kernels.
            notice: [engine.attention_notice(), engine.quant_notice()]
                .into_iter()
                .flatten()
                .reduce(|a, b| format!("{a}; {b}")),
        });
    }

    /// The answer with its attention heatmap and token texts. The captured rows go into the
    /// heatmap and leave the answer, so the window never copies them.
    fn answered(
        &mut self,
        library: &Library,
        chat: i64,
        message: i64,
        mut answer: Answer,
    ) -> Answered {
        let engine = self
            .engine
            .as_ref()
            .expect("an answer comes from a loaded engine");
        let config = &engine.model.config;
        let attention = std::mem::take(&mut answer.attention);
        let asked = self
            .settings
            .ask_options(config.n_layer, config.n_head)
            .capture
            .layers[0];
        let layer = attention.first().map_or(asked, |r| r.layer);
        let heatmap = Heatmap::new(
            layer,
            answer.plan.prompt_tokens,
            attention
                .iter()
                .map(|r| (r.row.head, r.row.pos, r.row.probs.as_slice())),
        );
        // The tokens generation ran (the last sampled one never is), to run again for
        // another layer.
        let mut tokens = answer.plan.ids.clone();
        tokens.extend(&answer.ids[..answer.ids.len().saturating_sub(1)]);
        let shown = Shown {
            model: engine.path().to_owned(),
            tokens,
            prompt_len: answer.plan.prompt_tokens,
        };
        let pieces = |ids: &[u32]| ids.iter().map(|&id| engine.tokenizer.piece(id)).collect();
        // The model did not run for a cached answer: its layer is run afterwards.
        let attention_pending =
            matches!(answer.llm_cache, LlmCacheUse::Hit { .. }).then_some(layer);
        let answered = Answered {
            chat,
            message,
            attention_pending,
            heatmap: Arc::new(heatmap),
            prompt_pieces: pieces(&answer.plan.ids),
            answer_pieces: pieces(&answer.ids),
            n_layer: config.n_layer,
            n_head: config.n_head,
            n_kv_head: config.n_kv_head,
            layer_windows: (0..config.n_layer)
                .map(|l| config.layer_window(l))
                .collect(),
            question_point: self.question_point(library, &answer.question),
            answer: Arc::new(answer),
        };
        self.given.insert(message, shown);
        answered
    }

    /// Another layer's attention for answer `message`, by running its tokens again with that
    /// layer captured (the engine keeps one layer per answer, to bound memory).
    fn recompute_attention(&mut self, message: i64, layer: usize) -> Outcome {
        self.send(Update::Job(Some(Job::Attention(layer))));
        let shown = self
            .given
            .get(&message)
            .ok_or("this answer was given before the app started: ask again to look into it")?;
        let engine = self
            .engine
            .as_mut()
            .filter(|e| e.path() == shown.model)
            .ok_or("the model that gave this answer is no longer loaded: ask again")?;
        let config = &engine.model.config;
        let mut capture = self
            .settings
            .ask_options(config.n_layer, config.n_head)
            .capture;
        capture.layers = vec![layer.min(config.n_layer - 1)];
        let records = engine.attention_of(&shown.tokens, &capture).map_err(text)?;
        let heatmap = Heatmap::new(
            capture.layers[0],
            shown.prompt_len,
            records
                .iter()
                .map(|r| (r.row.head, r.row.pos, r.row.probs.as_slice())),
        );
        self.send(Update::Heatmap(Arc::new(heatmap)));
        Ok(())
    }

    fn question_point(&self, library: &Library, question: &str) -> Option<[f32; 2]> {
        let space = self.space.as_ref()?;
        space.place_question(library, question).ok().flatten()
    }

    async fn open_chat(&self, library: &Library, chat: i64) -> Outcome {
        let messages = library
            .catalog()
            .stored_messages(chat)
            .await
            .map_err(text)?;
        self.send(Update::ChatOpened(chat, messages));
        Ok(())
    }

    async fn export(&self, library: &Library, chat: i64, path: &std::path::Path) -> Outcome {
        let catalog = library.catalog();
        let title = catalog
            .chats()
            .await
            .map_err(text)?
            .into_iter()
            .find(|c| c.id == chat)
            .map(|c| c.title)
            .unwrap_or_default();
        let messages = catalog.stored_messages(chat).await.map_err(text)?;
        std::fs::write(path, to_markdown(&title, &messages))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.send(Update::Notice(path.display().to_string()));
        Ok(())
    }

    /// Starts projecting the library's vectors on a thread of its own (UMAP of a large library
    /// takes minutes), so the worker goes on serving; the picture comes back as
    /// `Request::Projected`. A projection still running is cancelled: only the newest counts.
    async fn project(&mut self, library: &Library) -> Outcome {
        if let Some(previous) = self.projecting.take() {
            previous.store(true, Ordering::Relaxed);
        }
        let Some(index) = library.vector_index().await.map_err(text)? else {
            self.show_space(library, None);
            return Ok(());
        };
        let labels = library.catalog().chunk_labels().await.map_err(text)?;
        let cancel = Arc::new(AtomicBool::new(false));
        self.projecting = Some(cancel.clone());
        let (outbox, wake, requests) = (
            self.outbox.clone(),
            self.wake.clone(),
            self.requests.clone(),
        );
        let method = self.method;
        std::thread::spawn(move || {
            let mut last = Instant::now();
            let mut progress = |p: f32| {
                if last.elapsed() > Duration::from_millis(100) {
                    last = Instant::now();
                    let _ = outbox.send(Update::Job(Some(Job::Projecting(p))));
                    wake();
                }
            };
            progress(0.0);
            match space::project(&index, labels, method, &cancel, &mut progress) {
                Ok(space) => {
                    let _ = requests.send(Request::Projected(space.map(Arc::new)));
                }
                // Cancelled: a newer projection has taken its place.
                Err(_) if cancel.load(Ordering::Relaxed) => {}
                Err(e) => {
                    let _ = outbox.send(Update::Failed(e.to_string()));
                    wake();
                }
            }
        });
        Ok(())
    }

    /// A new picture: kept for placing questions, and sent with the last question placed.
    fn show_space(&mut self, library: &Library, space: Option<Arc<Space>>) {
        self.space = space;
        let point = (self.question.as_deref()).and_then(|q| self.question_point(library, q));
        self.send(Update::Space(self.space.clone(), point));
    }
}

/// A seed no earlier answer used (in practice): the clock's nanoseconds.
fn new_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
