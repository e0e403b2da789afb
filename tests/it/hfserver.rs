//! A real HTTP server on 127.0.0.1 that serves files in the Hugging Face Hub layout
//! (`/{repo}/resolve/{revision}/{file}`, ETag, X-Repo-Commit, Range requests), with an optional
//! cut connection, for testing downloads without the Hub.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct HfServer {
    pub endpoint: String,
    state: Arc<State>,
}

struct State {
    /// URL path → (content, etag).
    files: Mutex<HashMap<String, (Vec<u8>, String)>>,
    /// How many body responses to cut off halfway.
    cuts: AtomicUsize,
    /// Every Range header received, in order.
    ranges: Mutex<Vec<String>>,
}

impl HfServer {
    pub fn start() -> HfServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            files: Mutex::default(),
            cuts: AtomicUsize::new(0),
            ranges: Mutex::default(),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        HfServer { endpoint, state }
    }

    /// Serves `content` as `repo@revision/file`, announcing `etag` (the Hub uses the SHA-256).
    pub fn add(&self, repo: &str, revision: &str, file: &str, content: Vec<u8>, etag: &str) {
        let path = format!("/{repo}/resolve/{revision}/{file}");
        self.state
            .files
            .lock()
            .unwrap()
            .insert(path, (content, etag.to_owned()));
    }

    pub fn cut_next_downloads(&self, n: usize) {
        self.state.cuts.store(n, Ordering::SeqCst);
    }

    pub fn ranges(&self) -> Vec<String> {
        self.state.ranges.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    let mut out = stream;
    let Some((content, etag)) = state.files.lock().unwrap().get(&path).cloned() else {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let total = content.len();
    let (start, end) = match &range {
        Some(r) => {
            state.ranges.lock().unwrap().push(r.clone());
            let spec = r.trim_start_matches("bytes=");
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b
                .parse()
                .map(|b: usize| b.min(total - 1))
                .unwrap_or(total - 1);
            (a, b + 1)
        }
        None => (0, total),
    };
    let status = if range.is_some() {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{total}\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {}\r\nConnection: close\r\n\r\n",
        end - start,
        end - 1,
        path.split('/').nth(4).unwrap_or("main"),
    );
    let _ = out.write_all(header.as_bytes());
    let body = &content[start..end];
    // A metadata probe asks for one byte; only real body downloads are cut.
    let cut = body.len() > 1
        && state
            .cuts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if cut {
        let _ = out.write_all(&body[..body.len() / 2]);
        let _ = out.flush();
        let _ = out.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = out.write_all(body);
}
