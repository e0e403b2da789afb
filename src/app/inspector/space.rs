//! The embedding-space panel: every chunk of the library as a point (PCA or UMAP of the
//! vectors), coloured by document, with the question placed among them and lines to the passages the
//! vector search found: solid for those within the top-k cut-off, faint beyond it. Drag to pan,
//! scroll to zoom; hover shows a chunk, click opens it.

use std::collections::HashMap;
use std::sync::Arc;

use egui::{Color32, Pos2, Rect, Stroke, pos2, vec2};

use crate::app::text::Strings;
use crate::app::worker::{Request, Worker};
use crate::retrieve::SearchTrace;
use crate::viz::space::{Method, Space};

/// How close, in screen points, the pointer must be to a point to pick it.
const PICK_RADIUS: f32 = 6.0;

#[derive(Default)]
pub struct SpacePanel {
    space: Option<Arc<Space>>,
    by_chunk: HashMap<i64, usize>,
    /// The data rectangle of the whole picture.
    bounds: Option<Rect>,
    question: Option<[f32; 2]>,
    /// The vector search's hits for the question, best first, and how many passed the cut-off.
    neighbours: Vec<i64>,
    cutoff: usize,
    zoom: f32,
    pan: egui::Vec2,
    requested: bool,
    /// Each point's colour, by document (computed once per picture, not per frame).
    colours: Vec<Color32>,
    /// Where the picture was drawn last frame.
    canvas: Option<Rect>,
}

impl SpacePanel {
    /// Shows `space` without asking the worker for the library's own (for `bench space`).
    pub fn show(&mut self, space: Arc<Space>) {
        self.requested = true;
        self.set(Some(space), None);
    }

    pub fn canvas(&self) -> Option<Rect> {
        self.canvas
    }

    /// A new picture, with the last question placed in it.
    pub fn set(&mut self, space: Option<Arc<Space>>, question: Option<[f32; 2]>) {
        self.question = question;
        self.by_chunk = space.as_ref().map(|s| s.index_of()).unwrap_or_default();
        self.bounds = space.as_ref().and_then(|s| bounds(&s.points));
        self.colours = space.as_ref().map_or_else(Vec::new, |s| {
            s.labels.iter().map(|l| colour_of(l.document_id)).collect()
        });
        self.space = space;
        (self.zoom, self.pan) = (1.0, egui::Vec2::ZERO);
    }

    pub fn follow(&mut self, question: Option<[f32; 2]>, trace: &SearchTrace, cutoff: usize) {
        self.question = question;
        self.neighbours = trace.vector.iter().map(|h| h.chunk_id).collect();
        self.cutoff = if cutoff == 0 {
            trace.vector.len()
        } else {
            cutoff
        };
    }

    /// Draws the panel; returns the chunk the user clicked. `method` is the user's choice of
    /// picture, kept in the settings.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &Strings,
        worker: &Worker,
        method: &mut Method,
    ) -> Option<i64> {
        if !self.requested {
            self.requested = true;
            worker.send(Request::Space(*method));
        }
        ui.horizontal_wrapped(|ui| {
            let label = ui.label(t.projection);
            let before = *method;
            egui::ComboBox::from_id_salt("projection")
                .selected_text(method.name())
                .show_ui(ui, |ui| {
                    for m in Method::ALL {
                        ui.selectable_value(method, m, m.name());
                    }
                })
                .response
                .labelled_by(label.id);
            if *method != before {
                worker.send(Request::Space(*method));
            }
            if let Some(space) = &self.space {
                ui.small(describe(space, t));
            }
            if ui.small_button(t.reset_view).clicked() {
                (self.zoom, self.pan) = (1.0, egui::Vec2::ZERO);
            }
        });
        let (Some(space), Some(bounds)) = (self.space.clone(), self.bounds) else {
            ui.weak(t.no_vectors);
            if ui.button(t.project).clicked() {
                worker.send(Request::Space(*method));
            }
            return None;
        };
        let size = vec2(ui.available_width(), ui.available_height().max(240.0));
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click_and_drag());
        self.canvas = Some(rect);
        self.navigate(ui, &response);
        let view = View::new(bounds, rect, self.pan, self.zoom);
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
        painter.add(points_mesh(&space.points, &self.colours, rect, &view));
        if let Some(q) = self.question {
            self.neighbour_lines(&painter, &space, view.to_screen(q), &view);
        }
        let picked = response
            .hover_pos()
            .and_then(|at| nearest(&space.points, at, &view));
        let i = picked?;
        let label = &space.labels[i];
        painter.circle_stroke(
            view.to_screen(space.points[i]),
            5.0,
            Stroke::new(2.0, Color32::WHITE),
        );
        let clicked = response.clicked();
        response.on_hover_text(format!("{}\n{}", label.title, label.preview));
        clicked.then_some(label.chunk_id)
    }

    fn navigate(&mut self, ui: &egui::Ui, response: &egui::Response) {
        self.zoom = self.zoom.max(0.05);
        if response.dragged() {
            self.pan += response.drag_delta();
        }
        if let Some(at) = response.hover_pos() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                let factor = (scroll / 200.0).exp();
                // Zoom about the pointer: the point under it stays under it.
                let centre = response.rect.center() + self.pan;
                self.pan += (at - centre) * (1.0 - factor);
                self.zoom *= factor;
            }
        }
    }

    fn neighbour_lines(&self, painter: &egui::Painter, space: &Space, q: Pos2, view: &View) {
        for (rank, id) in self.neighbours.iter().enumerate() {
            let Some(&i) = self.by_chunk.get(id) else {
                continue;
            };
            let within = rank < self.cutoff;
            let colour = if within {
                Color32::from_rgb(255, 200, 0)
            } else {
                Color32::from_rgba_unmultiplied(255, 200, 0, 60)
            };
            let width = if within { 1.5 } else { 1.0 };
            painter.line_segment(
                [q, view.to_screen(space.points[i])],
                Stroke::new(width, colour),
            );
        }
        painter.circle_filled(q, 6.0, Color32::from_rgb(255, 60, 60));
        painter.circle_stroke(q, 6.0, Stroke::new(1.5, Color32::WHITE));
    }
}

/// How many points, and what the picture keeps of the vectors.
fn describe(space: &Space, t: &Strings) -> String {
    let n = space.points.len();
    match space.method {
        Method::Pca => format!(
            "{n} {} · PC1 {:.0}% · PC2 {:.0}%",
            t.chunks,
            space.pca.explained[0] * 100.0,
            space.pca.explained[1] * 100.0
        ),
        Method::Umap => format!("{n} {} · UMAP · {}", t.chunks, t.umap_kept),
    }
}

/// Data coordinates to screen and back, for one frame: the picture fitted to the canvas, then
/// zoomed and panned (y grows upwards in the data).
struct View {
    origin: Pos2,
    centre: Pos2,
    scale: f32,
}

impl View {
    fn new(bounds: Rect, canvas: Rect, pan: egui::Vec2, zoom: f32) -> View {
        let fit = (canvas.width() / bounds.width()).min(canvas.height() / bounds.height()) * 0.9;
        View {
            origin: bounds.center(),
            centre: canvas.center() + pan,
            scale: fit * zoom,
        }
    }

    fn to_screen(&self, q: [f32; 2]) -> Pos2 {
        pos2(
            self.centre.x + (q[0] - self.origin.x) * self.scale,
            self.centre.y - (q[1] - self.origin.y) * self.scale,
        )
    }

    fn to_data(&self, at: Pos2) -> [f32; 2] {
        [
            self.origin.x + (at.x - self.centre.x) / self.scale,
            self.origin.y - (at.y - self.centre.y) / self.scale,
        ]
    }
}

/// One mesh of small squares: a single shape however many points there are (this runs every
/// frame over every point). A point landing on a screen pixel already drawn is skipped: it would
/// hide under its neighbour anyway, and a zoomed-out picture of 100,000 points shrinks to the
/// pixels it covers, which is what the GPU then has to fill.
fn points_mesh(points: &[[f32; 2]], colours: &[Color32], rect: Rect, view: &View) -> egui::Shape {
    let (w, h) = (
        rect.width().max(1.0) as usize,
        rect.height().max(1.0) as usize,
    );
    let mut taken = vec![false; (w + 1) * (h + 1)];
    let mut mesh = egui::Mesh::default();
    let half = vec2(1.5, 1.5);
    for (point, &colour) in points.iter().zip(colours) {
        let at = view.to_screen(*point);
        if !rect.contains(at) {
            continue;
        }
        let pixel = (at.y - rect.min.y) as usize * w + (at.x - rect.min.x) as usize;
        if !std::mem::replace(&mut taken[pixel], true) {
            mesh.add_colored_rect(Rect::from_min_max(at - half, at + half), colour);
        }
    }
    egui::Shape::mesh(mesh)
}

/// The point nearest the pointer within the pick radius, compared in data coordinates so no
/// point needs transforming.
fn nearest(points: &[[f32; 2]], at: Pos2, view: &View) -> Option<usize> {
    let [x, y] = view.to_data(at);
    let radius = PICK_RADIUS / view.scale;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| (i, (p[0] - x).powi(2) + (p[1] - y).powi(2)))
        .filter(|(_, d)| *d <= radius * radius)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

fn bounds(points: &[[f32; 2]]) -> Option<Rect> {
    let first = points.first()?;
    let mut r = Rect::from_min_max(pos2(first[0], first[1]), pos2(first[0], first[1]));
    for p in points {
        r.extend_with(pos2(p[0], p[1]));
    }
    // A flat picture still needs some extent to scale.
    Some(r.expand(1e-3))
}

/// A stable colour per document: the golden-angle hue walk keeps neighbours apart.
fn colour_of(document: i64) -> Color32 {
    let hue = (document as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(hue, 0.65, 0.9, 1.0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> (View, Rect) {
        let bounds = Rect::from_min_max(pos2(-1.0, -2.0), pos2(3.0, 2.0));
        let canvas = Rect::from_min_size(pos2(100.0, 50.0), vec2(400.0, 300.0));
        (View::new(bounds, canvas, vec2(20.0, -10.0), 2.5), canvas)
    }

    #[test]
    fn screen_and_data_coordinates_invert_each_other() {
        let (view, _) = view();
        for q in [[0.0, 0.0], [2.5, -1.5], [-1.0, 2.0]] {
            let back = view.to_data(view.to_screen(q));
            assert!((back[0] - q[0]).abs() < 1e-4 && (back[1] - q[1]).abs() < 1e-4);
        }
        // Up in the data is up on the screen.
        assert!(view.to_screen([0.0, 1.0]).y < view.to_screen([0.0, 0.0]).y);
    }

    #[test]
    fn picking_takes_the_nearest_point_within_reach() {
        let (view, _) = view();
        let points = [[0.0, 0.0], [0.05, 0.0], [2.0, 1.0]];
        let near_second = view.to_screen([0.04, 0.0]);
        assert_eq!(nearest(&points, near_second, &view), Some(1));
        let far = view.to_screen([1.0, -1.0]);
        assert_eq!(nearest(&points, far, &view), None);
    }

    #[test]
    fn points_on_one_pixel_or_off_the_canvas_add_nothing() {
        let (view, canvas) = view();
        let points = [[0.0, 0.0], [0.000_1, 0.0], [50.0, 50.0], [1.0, 0.5]];
        let colours = [Color32::RED; 4];
        let egui::Shape::Mesh(mesh) = points_mesh(&points, &colours, canvas, &view) else {
            panic!("a mesh");
        };
        // Two squares of four corners: the second point shares the first's pixel, the third
        // is off the canvas.
        assert_eq!(mesh.vertices.len(), 8);
    }
}
