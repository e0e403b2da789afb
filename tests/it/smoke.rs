//! The real binary in a real X server (Xvfb), drawing with wgpu on Mesa's software Vulkan: it
//! opens the window, saves a picture of it with `--screenshot`, and quits. The picture must not
//! be blank, and the Korean heading must be drawn as five different glyphs, not five copies of
//! the "missing glyph" box (which is what a machine without a Korean font would show, had we
//! not bundled one).

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use image::{Rgba, RgbaImage};

#[test]
fn the_window_draws_korean_under_xvfb() {
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("window.png");
    let mut child = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_glassbox"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--screenshot")
        .arg(&shot)
        // A clean home: no saved settings, and Korean from the locale.
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("share"))
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "ko_KR.UTF-8")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xvfb-run (scripts/test installs xvfb and xauth)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(180) {
            child.kill().ok();
            panic!("the window did not save its picture within 3 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "glassbox failed: {stderr}");

    let image = image::open(&shot).expect("the screenshot").to_rgba8();
    assert!(
        image.width() >= 1000 && image.height() >= 600,
        "{:?}",
        image.dimensions()
    );
    let colours: HashSet<Rgba<u8>> = image.pixels().copied().collect();
    assert!(
        colours.len() > 50,
        "a blank window: {} colours",
        colours.len()
    );

    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("window.png.json")).unwrap())
            .unwrap();
    let rect: Vec<u32> = sidecar["library_heading"]
        .as_array()
        .expect("where the heading was drawn")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let glyphs = glyph_shapes(&image, &rect, 5);
    let distinct: HashSet<&Vec<bool>> = glyphs.iter().collect();
    assert!(
        distinct.len() >= 4,
        "라이브러리 drawn as {} distinct shapes of 5: boxes, not glyphs",
        distinct.len()
    );
}

/// The heading cut into `n` equal cells (Hangul syllables have equal widths), each reduced to a
/// coarse grid of inked cells. A repeated "missing glyph" box gives the same grid every time.
fn glyph_shapes(image: &RgbaImage, rect: &[u32], n: u32) -> Vec<Vec<bool>> {
    let [x, y, w, h] = [rect[0], rect[1], rect[2], rect[3]];
    let background = *image.get_pixel(x.saturating_sub(2), y + h / 2);
    let inked = |px: u32, py: u32| {
        let p = image.get_pixel(px, py);
        let d: i32 = (0..3)
            .map(|c| (p[c] as i32 - background[c] as i32).abs())
            .sum();
        d > 120
    };
    const GRID: u32 = 6;
    let cell_w = w / n;
    (0..n)
        .map(|g| {
            let mut shape = Vec::new();
            for gy in 0..GRID {
                for gx in 0..GRID {
                    let (x0, x1) = (
                        x + g * cell_w + gx * cell_w / GRID,
                        x + g * cell_w + (gx + 1) * cell_w / GRID,
                    );
                    let (y0, y1) = (y + gy * h / GRID, y + (gy + 1) * h / GRID);
                    let total = ((x1 - x0) * (y1 - y0)).max(1);
                    let ink = (x0..x1)
                        .flat_map(|px| (y0..y1).map(move |py| (px, py)))
                        .filter(|&(px, py)| inked(px, py))
                        .count() as u32;
                    shape.push(ink * 5 > total);
                }
            }
            assert!(shape.iter().any(|&c| c), "glyph {g} has no ink");
            shape
        })
        .collect()
}
