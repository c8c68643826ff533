//! Figures of `dpft report` with plotters, each written as PNG (900×600) and SVG.
//!
//! Two drawings cover the four figures: a line chart (metric vs ε per method; metric vs model size per ε,
//! the paper's Figure 1; training loss per step) and a heatmap (metric over batch size × learning rate,
//! the paper's hyperparameter study, Section 3.1). Text in PNGs is drawn with DejaVu Sans, embedded through
//! the `dejavu` crate and registered with plotters' ab_glyph renderer, so no system font is needed; SVGs
//! keep text as `<text>` elements.
//!
//! The legend sits in a panel right of the plot so that it never hides data; categorical and
//! log-scaled x axes get their tick labels drawn by hand at the data positions.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (900, 600);
const FONT: &str = "sans-serif";

/// Tableau 10: distinct colours for up to ten series (then they repeat).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The `i`-th palette colour.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers DejaVu Sans as plotters' `sans-serif` (regular and bold) once per process.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [(FontStyle::Normal, dejavu::sans::regular()), (FontStyle::Bold, dejavu::sans::bold())] {
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                log::warn!("DejaVu Sans could not be registered: PNG text will be missing");
            }
        }
    });
}

/// One point: x (data coordinates, log10 for log axes), y, and the half-height of its error bar.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// Position on the x axis.
    pub x: f64,
    /// Value.
    pub y: f64,
    /// ± this much (a standard deviation), drawn as an error bar.
    pub err: Option<f64>,
}

/// A line (or scattered points) of a line chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; `None` keeps it out of the legend (a further part of a series already listed).
    pub label: Option<String>,
    /// Colour.
    pub color: RGBColor,
    /// Points in drawing order.
    pub points: Vec<Point>,
    /// Join the points with a line.
    pub line: bool,
    /// Dashed line.
    pub dashed: bool,
    /// Draw a marker at each point.
    pub markers: bool,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X-axis description.
    pub x_label: String,
    /// Y-axis description.
    pub y_label: String,
    /// Hand-placed x ticks (position, lines of text); `None` for plotters' numeric labels.
    pub x_ticks: Option<Vec<(f64, Vec<String>)>>,
    /// Vertical dashed separators at these x positions (e.g. before the non-private column).
    pub separators: Vec<f64>,
    /// The series.
    pub series: Vec<Series>,
}

/// A heatmap of a metric over two categorical axes; each cell is annotated with its value.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Title above the plot.
    pub title: String,
    /// X-axis description.
    pub x_label: String,
    /// Y-axis description.
    pub y_label: String,
    /// X categories, left to right.
    pub x_ticks: Vec<String>,
    /// Y categories, bottom to top.
    pub y_ticks: Vec<String>,
    /// `values[y][x]`: the cell's text and value; `None` where no run exists.
    pub values: Vec<Vec<Option<(f64, String)>>>,
    /// What the colour shows (colour-bar title).
    pub value_label: String,
}

/// A figure that draws itself on any plotters backend.
pub trait Figure {
    /// Draws onto `root` (SIZE pixels, origin top left).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn text_style(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

/// Writes `figure` as `stem.png` and `stem.svg`, each through a temporary file renamed into place.
pub fn save(figure: &impl Figure, stem: &Path) -> anyhow::Result<Vec<PathBuf>> {
    register_font();
    let dir = stem.parent().unwrap_or(Path::new("."));
    let name = stem.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let png = dir.join(format!("{name}.png"));
    // The bitmap backend picks the format from the extension: the temporary name keeps `.png`.
    let tmp = dir.join(format!(".{name}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        figure.draw(&root).map_err(|e| anyhow::anyhow!("drawing {}: {e}", png.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &png).map_err(|e| anyhow::anyhow!("writing {}: {e}", png.display()))?;
    let svg = dir.join(format!("{name}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        figure.draw(&root).map_err(|e| anyhow::anyhow!("drawing {}: {e}", svg.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("drawing {}: {e}", svg.display()))?;
    }
    super::write_atomic(&svg, text.as_bytes())?;
    Ok(vec![png, svg])
}

/// Pads a value range by 8% on each side (a fixed amount around a single value); a range of
/// non-negative values does not extend below zero.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let (a, b) = if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = (hi.abs() * 0.05).max(0.5);
        (lo - d, hi + d)
    } else {
        (lo - 0.08 * span, hi + 0.08 * span)
    };
    (if lo >= 0.0 { a.max(0.0) } else { a }, b)
}

/// The legend panel's width: room for the longest label at 15 px, between 170 and 330 pixels.
fn legend_width<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, labels: &[&str]) -> u32 {
    let widest = labels.iter().filter_map(|l| root.estimate_text_size(l, &text_style(15.0)).ok()).map(|(w, _)| w).max();
    (widest.unwrap_or(0) + 75).clamp(170, 330)
}

/// A figure's plot area and legend panel.
type Panes<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

/// Title area, plot area and legend panel (`legend` pixels wide) of a figure.
fn layout<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, legend: u32) -> Result<Panes<DB>, String> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .margin(10, 0, 0, 0)
        .titled(title, TextStyle::from((FONT, 22).into_font().style(FontStyle::Bold)))
        .map_err(err)?;
    let (w, _) = body.dim_in_pixel();
    Ok(body.split_horizontally(w.saturating_sub(legend)))
}

/// `text` shortened with "…" to at most `width` pixels at `size`.
fn fit_text<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: f64, width: u32) -> String {
    let fits = |t: &str| area.estimate_text_size(t, &text_style(size)).map(|(w, _)| w <= width).unwrap_or(true);
    if fits(text) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for n in (1..chars.len()).rev() {
        let t: String = chars[..n].iter().collect::<String>() + "…";
        if fits(&t) {
            return t;
        }
    }
    "…".into()
}

/// Draws the legend entries (colour sample, marker, text) top-down in `panel`.
fn legend<DB: DrawingBackend>(panel: &DrawingArea<DB, Shift>, series: &[Series]) -> Result<(), String> {
    let entries: Vec<&Series> = series.iter().filter(|s| s.label.is_some()).collect();
    let (w, h) = panel.dim_in_pixel();
    let row = 24;
    let top = 45;
    let fit = ((h as i32 - top - 20) / row).max(1) as usize;
    let shown = if entries.len() > fit { fit - 1 } else { entries.len() };
    for (i, s) in entries.iter().take(shown).enumerate() {
        let y = top + i as i32 * row;
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        if s.dashed {
            for (a, b) in [(6, 13), (18, 25), (30, 36)] {
                panel.draw(&PathElement::new(vec![(a, y), (b, y)], style)).map_err(err)?;
            }
        } else if s.line {
            panel.draw(&PathElement::new(vec![(6, y), (36, y)], style)).map_err(err)?;
        }
        if s.markers || !s.line {
            panel.draw(&Circle::new((21, y), 5, s.color.filled())).map_err(err)?;
        }
        let label = fit_text(panel, s.label.as_deref().unwrap_or_default(), 15.0, w.saturating_sub(50));
        panel
            .draw(&Text::new(label, (44, y), text_style(15.0).pos(Pos::new(HPos::Left, VPos::Center))))
            .map_err(err)?;
    }
    if shown < entries.len() {
        let y = top + shown as i32 * row;
        let more = format!("… {} more", entries.len() - shown);
        panel.draw(&Text::new(more, (44, y), text_style(15.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(err)?;
    }
    Ok(())
}

/// The y-axis description, written horizontally above the axis (the bitmap text renderer cannot rotate).
fn y_description<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, at: (i32, i32), text: &str) -> Result<(), String> {
    let style = text_style(16.0).pos(Pos::new(HPos::Left, VPos::Bottom));
    root.draw(&Text::new(text.to_string(), (at.0 - 40, at.1 - 12), style)).map_err(err)
}

impl Figure for LineChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let labels: Vec<&str> = self.series.iter().filter_map(|s| s.label.as_deref()).collect();
        let (plot, panel) = layout(root, &self.title, legend_width(root, &labels))?;
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let (xlo, xhi) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.x), b.max(p.x)));
        let integral_x = points().all(|p| p.x.fract() == 0.0);
        let (xlo, xhi) = match &self.x_ticks {
            Some(t) => {
                let lo = t.iter().map(|(x, _)| *x).fold(xlo, f64::min);
                let hi = t.iter().map(|(x, _)| *x).fold(xhi, f64::max);
                // Categories and log positions: half a step of room at both ends.
                let step = if t.len() > 1 { (hi - lo) / (t.len() - 1) as f64 } else { 1.0 };
                (lo - 0.5 * step, hi + 0.5 * step)
            }
            None if integral_x && xhi > xlo => (xlo, xhi),
            None => padded(xlo, xhi),
        };
        let (ylo, yhi) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            let e = p.err.unwrap_or(0.0);
            (a.min(p.y - e), b.max(p.y + e))
        });
        let (ylo, yhi) = padded(ylo, yhi);
        let tick_lines = self.x_ticks.iter().flatten().map(|(_, l)| l.len()).max().unwrap_or(1) as u32;
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .margin_top(40)
            .x_label_area_size(45 + 18 * tick_lines)
            .y_label_area_size(70)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(err)?;
        let int_format = |x: &f64| format!("{x:.0}");
        let span = (xhi - xlo).round() as usize;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_label.as_str())
            .label_style(text_style(15.0))
            .axis_desc_style(text_style(17.0))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225));
        if self.x_ticks.is_some() {
            mesh.x_labels(0).disable_x_mesh();
        } else if integral_x {
            // Steps: whole numbers only.
            mesh.x_labels((span + 1).min(10)).x_label_formatter(&int_format);
        }
        mesh.draw().map_err(err)?;
        y_description(root, chart.backend_coord(&(xlo, yhi)), &self.y_label)?;
        let grid = ShapeStyle::from(&RGBColor(225, 225, 225)).stroke_width(1);
        for (x, lines) in self.x_ticks.iter().flatten() {
            chart.draw_series(std::iter::once(PathElement::new(vec![(*x, ylo), (*x, yhi)], grid))).map_err(err)?;
            let (px, py) = chart.backend_coord(&(*x, ylo));
            root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK)).map_err(err)?;
            for (i, line) in lines.iter().enumerate() {
                let pos = (px, py + 9 + 18 * i as i32);
                let style = text_style(if i == 0 { 15.0 } else { 13.0 }).pos(Pos::new(HPos::Center, VPos::Top));
                root.draw(&Text::new(line.clone(), pos, style)).map_err(err)?;
            }
        }
        for x in &self.separators {
            let style = ShapeStyle::from(&RGBColor(110, 110, 110)).stroke_width(1);
            chart.draw_series(DashedLineSeries::new(vec![(*x, ylo), (*x, yhi)], 6, 5, style)).map_err(err)?;
        }
        let cap = (xhi - xlo) * 0.008;
        for s in &self.series {
            let style = ShapeStyle::from(&s.color).stroke_width(2);
            let xy: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, p.y)).collect();
            if s.line && xy.len() > 1 {
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(xy.clone(), 10, 6, style)).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(xy.clone(), style)).map_err(err)?;
                }
            }
            for p in &s.points {
                if let Some(e) = p.err.filter(|e| *e > 0.0) {
                    let (lo, hi) = (p.y - e, p.y + e);
                    chart
                        .draw_series([
                            PathElement::new(vec![(p.x, lo), (p.x, hi)], style),
                            PathElement::new(vec![(p.x - cap, lo), (p.x + cap, lo)], style),
                            PathElement::new(vec![(p.x - cap, hi), (p.x + cap, hi)], style),
                        ])
                        .map_err(err)?;
                }
            }
            if s.markers || xy.len() == 1 {
                chart.draw_series(xy.iter().map(|&c| Circle::new(c, 5, s.color.filled()))).map_err(err)?;
            }
        }
        legend(&panel, &self.series)?;
        Ok(())
    }
}

/// Viridis at `t` in [0, 1] (five anchors, linear between them).
fn viridis(t: f64) -> RGBColor {
    const A: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 };
    let f = t * (A.len() - 1) as f64;
    let i = (f.floor() as usize).min(A.len() - 2);
    let u = f - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * u).round() as u8;
    RGBColor(mix(A[i].0, A[i + 1].0), mix(A[i].1, A[i + 1].1), mix(A[i].2, A[i + 1].2))
}

impl Figure for Heatmap {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, panel) = layout(root, &self.title, 170)?;
        let (nx, ny) = (self.x_ticks.len().max(1), self.y_ticks.len().max(1));
        let vals: Vec<f64> = self.values.iter().flatten().flatten().map(|(v, _)| *v).collect();
        let (vlo, vhi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let scale = |v: f64| if vhi > vlo { (v - vlo) / (vhi - vlo) } else { 0.5 };
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .margin_top(40)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc(self.x_label.as_str())
            .axis_desc_style(text_style(17.0))
            .draw()
            .map_err(err)?;
        y_description(root, chart.backend_coord(&(-0.5, ny as f64 - 0.5)), &self.y_label)?;
        for (yi, row) in self.values.iter().enumerate() {
            for (xi, cell) in row.iter().enumerate() {
                let (x, y) = (xi as f64, yi as f64);
                let corners = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
                let (fill, label, ink) = match cell {
                    Some((v, text)) => {
                        let t = scale(*v);
                        (viridis(t), text.clone(), if t < 0.6 { WHITE } else { BLACK })
                    }
                    None => (RGBColor(225, 225, 225), "no run".to_string(), RGBColor(90, 90, 90)),
                };
                chart.draw_series(std::iter::once(Rectangle::new(corners, fill.filled()))).map_err(err)?;
                chart.draw_series(std::iter::once(Rectangle::new(corners, WHITE.stroke_width(2)))).map_err(err)?;
                let style = text_style(18.0).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(label, (x, y), style))).map_err(err)?;
            }
        }
        for (i, t) in self.x_ticks.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, -0.5));
            root.draw(&Text::new(t.clone(), (px, py + 8), text_style(15.0).pos(Pos::new(HPos::Center, VPos::Top))))
                .map_err(err)?;
        }
        for (i, t) in self.y_ticks.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(-0.5, i as f64));
            root.draw(&Text::new(t.clone(), (px - 8, py), text_style(15.0).pos(Pos::new(HPos::Right, VPos::Center))))
                .map_err(err)?;
        }
        // Colour bar: the value range of the cells, top = largest.
        let (_, h) = panel.dim_in_pixel();
        let (top, bottom) = (70i32, (h as i32 - 90).max(120));
        panel
            .draw(&Text::new(
                self.value_label.clone(),
                (20, 40),
                text_style(15.0).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        for py in top..bottom {
            let t = 1.0 - (py - top) as f64 / (bottom - top) as f64;
            panel.draw(&Rectangle::new([(20, py), (45, py + 1)], viridis(t).filled())).map_err(err)?;
        }
        panel.draw(&Rectangle::new([(20, top), (45, bottom)], BLACK.stroke_width(1))).map_err(err)?;
        if !vals.is_empty() {
            for (v, py) in [(vhi, top), (vlo, bottom)] {
                let label = format!("{v:.2}");
                panel
                    .draw(&Text::new(label, (52, py), text_style(14.0).pos(Pos::new(HPos::Left, VPos::Center))))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// "82M", "1.5B", "774M", "4.1k": a parameter count in few characters.
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    let (v, unit) = if n >= 1e9 {
        (n / 1e9, "B")
    } else if n >= 1e6 {
        (n / 1e6, "M")
    } else if n >= 1e3 {
        (n / 1e3, "k")
    } else {
        return format!("{n}");
    };
    if v >= 10.0 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_are_short() {
        assert_eq!(human_count(124_439_808), "124M");
        assert_eq!(human_count(1_557_611_200), "1.6B");
        assert_eq!(human_count(4_100), "4.1k");
        assert_eq!(human_count(12), "12");
    }

    #[test]
    fn viridis_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
