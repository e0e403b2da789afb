//! The embedding-space panel: every chunk of the library as a point (PCA of the vectors),
//! coloured by document, with the question placed among them and lines to the passages the
//! vector search found: solid for those within the top-k cut-off, faint beyond it. Drag to pan,
//! scroll to zoom; hover shows a chunk, click opens it.

use std::collections::HashMap;
use std::sync::Arc;

use egui::{Color32, Pos2, Rect, Stroke, pos2, vec2};

use crate::app::text::Strings;
use crate::app::worker::{Request, Worker};
use crate::retrieve::SearchTrace;
use crate::viz::space::Space;

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
}

impl SpacePanel {
    pub fn set(&mut self, space: Option<Arc<Space>>) {
        self.by_chunk = space.as_ref().map(|s| s.index_of()).unwrap_or_default();
        self.bounds = space.as_ref().and_then(|s| bounds(&s.projection.points));
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

    /// Draws the panel; returns the chunk the user clicked.
    pub fn ui(&mut self, ui: &mut egui::Ui, t: &Strings, worker: &Worker) -> Option<i64> {
        if !self.requested {
            self.requested = true;
            worker.send(Request::Space);
        }
        let (Some(space), Some(bounds)) = (self.space.clone(), self.bounds) else {
            ui.weak(t.no_vectors);
            if ui.button(t.project).clicked() {
                worker.send(Request::Space);
            }
            return None;
        };
        let p = &space.projection;
        ui.horizontal_wrapped(|ui| {
            ui.small(format!(
                "{} {} · PC1 {:.0}% · PC2 {:.0}%",
                p.points.len(),
                t.chunks,
                p.explained[0] * 100.0,
                p.explained[1] * 100.0
            ));
            if ui.small_button(t.reset_view).clicked() {
                (self.zoom, self.pan) = (1.0, egui::Vec2::ZERO);
            }
        });
        let size = vec2(ui.available_width(), ui.available_height().max(240.0));
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click_and_drag());
        self.navigate(ui, &response);
        let to_screen = |q: [f32; 2]| self.to_screen(bounds, rect, q);
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
        painter.add(points_mesh(&space, rect, &to_screen));
        if let Some(q) = self.question {
            self.neighbour_lines(&painter, &space, to_screen(q), &to_screen);
        }
        let picked = response
            .hover_pos()
            .and_then(|at| nearest(&space, at, &to_screen));
        let i = picked?;
        let label = &space.labels[i];
        painter.circle_stroke(
            to_screen(p.points[i]),
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

    fn to_screen(&self, bounds: Rect, rect: Rect, q: [f32; 2]) -> Pos2 {
        let scale = (rect.width() / bounds.width()).min(rect.height() / bounds.height()) * 0.9;
        let centre = rect.center() + self.pan;
        let d = pos2(q[0], q[1]) - bounds.center();
        centre + vec2(d.x, -d.y) * scale * self.zoom
    }

    fn neighbour_lines(
        &self,
        painter: &egui::Painter,
        space: &Space,
        q: Pos2,
        to_screen: &dyn Fn([f32; 2]) -> Pos2,
    ) {
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
                [q, to_screen(space.projection.points[i])],
                Stroke::new(width, colour),
            );
        }
        painter.circle_filled(q, 6.0, Color32::from_rgb(255, 60, 60));
        painter.circle_stroke(q, 6.0, Stroke::new(1.5, Color32::WHITE));
    }
}

/// One mesh of small squares: a single shape however many points there are.
fn points_mesh(space: &Space, rect: Rect, to_screen: &dyn Fn([f32; 2]) -> Pos2) -> egui::Shape {
    let mut mesh = egui::Mesh::default();
    let half = vec2(1.5, 1.5);
    for (point, label) in space.projection.points.iter().zip(&space.labels) {
        let at = to_screen(*point);
        if rect.contains(at) {
            mesh.add_colored_rect(
                Rect::from_center_size(at, half * 2.0),
                colour_of(label.document_id),
            );
        }
    }
    egui::Shape::mesh(mesh)
}

fn nearest(space: &Space, at: Pos2, to_screen: &dyn Fn([f32; 2]) -> Pos2) -> Option<usize> {
    space
        .projection
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (i, to_screen(*p).distance_sq(at)))
        .filter(|(_, d)| *d <= PICK_RADIUS * PICK_RADIUS)
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
