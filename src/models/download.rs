//! Downloads with the hf-hub crate into the standard Hugging Face cache (files a user already
//! has are reused), honouring HF_ENDPOINT and HF_HOME; resumable (hf-hub keeps a `.part` file and
//! continues it with a Range request) and SHA-256 verified.

use super::ModelSpec;
use crate::embed::ModelError;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where models come from and where they go.
#[derive(Debug, Clone)]
pub struct Hub {
    endpoint: Option<String>,
    cache: Cache,
}

/// Bytes done of one file.
#[derive(Debug, Clone)]
pub struct DownloadProgress {
    pub file: String,
    pub done: u64,
    pub total: u64,
}

impl Hub {
    /// HF_ENDPOINT and HF_HOME from the environment, else huggingface.co and ~/.cache/huggingface.
    pub fn from_env() -> Hub {
        Hub {
            endpoint: std::env::var("HF_ENDPOINT").ok(),
            cache: Cache::from_env(),
        }
    }

    /// An explicit endpoint and cache folder (the HF_HOME layout: models go under `hub/`).
    pub fn new(endpoint: Option<String>, hf_home: &Path) -> Hub {
        Hub {
            endpoint,
            cache: Cache::new(hf_home.join("hub")),
        }
    }

    fn repo(&self, spec: &ModelSpec) -> Repo {
        Repo::with_revision(spec.repo.clone(), RepoType::Model, spec.revision.clone())
    }

    /// The snapshot folder the model's files are (or will be) in.
    pub fn snapshot_dir(&self, spec: &ModelSpec) -> PathBuf {
        self.cache
            .repo(self.repo(spec))
            .pointer_path(&spec.revision)
    }

    /// The snapshot folder when every file of the model is in the cache.
    pub fn cached_dir(&self, spec: &ModelSpec) -> Option<PathBuf> {
        let dir = self.snapshot_dir(spec);
        spec.files
            .iter()
            .all(|f| dir.join(&f.name).is_file())
            .then_some(dir)
    }

    /// Downloads every missing file of `spec`, verifying each against its SHA-256; returns the
    /// snapshot folder. A file that fails verification is removed from the cache.
    pub fn download(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<PathBuf, ModelError> {
        self.download_cancellable(spec, &AtomicBool::new(false), progress)
    }

    /// As `download`, stopping as soon as `cancel` is set, within a file too: the part fetched
    /// so far stays as hf-hub's `.part` file, and the next download resumes it. Files already
    /// fetched stay in the cache, verified.
    pub fn download_cancellable(
        &self,
        spec: &ModelSpec,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(DownloadProgress),
    ) -> Result<PathBuf, ModelError> {
        let mut builder = ApiBuilder::from_cache(self.cache.clone()).with_progress(false);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let fail = |file: &str, detail: String| ModelError::Download {
            repo: spec.repo.clone(),
            file: file.to_owned(),
            detail,
        };
        let api = builder.build().map_err(|e| fail("", e.to_string()))?;
        let repo = api.repo(self.repo(spec));
        for file in &spec.files {
            let cached = self.snapshot_dir(spec).join(&file.name);
            if cached.is_file() {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(fail(&file.name, "cancelled".into()));
            }
            let reporter = Reporter {
                file: file.name.clone(),
                done: 0,
                total: 0,
                callback: progress,
                cancel,
            };
            let fetched = std::panic::catch_unwind(AssertUnwindSafe(|| {
                repo.download_with_progress(&file.name, reporter)
            }));
            let path = match fetched {
                Ok(result) => result.map_err(|e| fail(&file.name, e.to_string()))?,
                Err(stop) if stop.is::<StopDownload>() => {
                    return Err(fail(&file.name, "cancelled".into()));
                }
                Err(other) => std::panic::resume_unwind(other),
            };
            let actual = sha256(&path).map_err(|e| fail(&file.name, e.to_string()))?;
            if actual != file.sha256 {
                remove_cached(&path);
                return Err(ModelError::Checksum {
                    repo: spec.repo.clone(),
                    file: file.name.clone(),
                    expected: file.sha256.clone(),
                    actual,
                });
            }
        }
        Ok(self.snapshot_dir(spec))
    }
}

/// Removes a snapshot entry, the blob it points to, and hf-hub's lock file of that blob.
fn remove_cached(pointer: &Path) {
    if let Ok(blob) = std::fs::canonicalize(pointer) {
        let mut lock = blob.clone().into_os_string();
        lock.push(".lock");
        std::fs::remove_file(lock).ok();
        std::fs::remove_file(blob).ok();
    }
    std::fs::remove_file(pointer).ok();
}

pub fn sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Adapts hf-hub's progress calls to our callback, and stops the download when cancelled.
struct Reporter<'a> {
    file: String,
    done: u64,
    total: u64,
    callback: &'a mut dyn FnMut(DownloadProgress),
    cancel: &'a AtomicBool,
}

/// Carries a cancel out of hf-hub's copy loop, which has no way to stop. Raised with
/// `resume_unwind` (no panic hook, nothing printed) and caught in `download_cancellable`.
/// Unwinding runs hf-hub's destructors: its lock on the blob is released and the `.part` file
/// is closed, ready to be resumed.
struct StopDownload;

impl hf_hub::api::Progress for Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        (self.callback)(DownloadProgress {
            file: self.file.clone(),
            done: self.done,
            total: self.total,
        });
        if self.cancel.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(StopDownload));
        }
    }

    fn finish(&mut self) {}
}
