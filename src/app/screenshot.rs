//! `glassbox --screenshot FILE`: open the window, wait until the library has reported and
//! nothing is loading, save what the window shows as a PNG, and quit. It serves smoke tests and
//! bug reports. Next to the PNG, `FILE.json` says where the Library heading was drawn, so a test
//! can look at those glyphs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Frames drawn before the picture is taken, so that layout has settled.
const SETTLE_FRAMES: u32 = 10;

pub struct Screenshot {
    path: PathBuf,
    frames: u32,
    requested: bool,
    done: Arc<AtomicBool>,
}

impl Screenshot {
    pub fn new(path: PathBuf) -> Screenshot {
        Screenshot {
            path,
            frames: 0,
            requested: false,
            done: Arc::default(),
        }
    }

    /// Called once a frame: `ready` when the window shows a settled state; `heading` is where
    /// the Library heading was drawn.
    pub fn frame(&mut self, ctx: &egui::Context, ready: bool, heading: Option<egui::Rect>) {
        if self.done.load(Ordering::Acquire) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        self.frames += u32::from(ready);
        ctx.request_repaint();
        if self.requested || self.frames < SETTLE_FRAMES {
            return;
        }
        self.requested = true;
        let (path, done, wake) = (self.path.clone(), self.done.clone(), ctx.clone());
        let scale = ctx.pixels_per_point();
        let heading = heading
            .map(|r| [r.min.x, r.min.y, r.width(), r.height()].map(|v| (v * scale).round() as i64));
        ctx.request_screenshot(move |image| {
            if let Err(e) = save(&path, &image, heading) {
                eprintln!(
                    "error: cannot save the screenshot to {}: {e}",
                    path.display()
                );
            }
            done.store(true, Ordering::Release);
            wake.request_repaint();
        });
    }
}

fn save(path: &PathBuf, image: &egui::ColorImage, heading: Option<[i64; 4]>) -> Result<(), String> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|p| p.to_array()).collect();
    image::save_buffer(path, &rgba, w as u32, h as u32, image::ColorType::Rgba8)
        .map_err(|e| e.to_string())?;
    let sidecar = serde_json::json!({ "library_heading": heading });
    let mut json_path = path.clone().into_os_string();
    json_path.push(".json");
    std::fs::write(json_path, sidecar.to_string()).map_err(|e| e.to_string())
}
