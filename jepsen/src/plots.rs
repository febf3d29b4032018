//! The run's two plots, drawn with `plotters` as SVG: throughput and latency over time, with
//! the nemesis's faults shaded behind them.

use crate::history::{pairs, Entry, OpType};
use crate::report::Fault;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const SIZE: (u32, u32) = (900, 360);
/// Most latency points drawn; beyond it they are sampled evenly.
pub const MAX_POINTS: usize = 20_000;
/// Outcomes in plotting order: label and color.
const OUTCOMES: [(&str, RGBColor); 3] = [
    ("ok", RGBColor(0x2c, 0xa0, 0x2c)),
    ("fail", RGBColor(0xe8, 0x59, 0x0c)),
    ("info", RGBColor(0x8c, 0x8c, 0x8c)),
];
const P50: RGBColor = RGBColor(0x1f, 0x3b, 0x73);
const P99: RGBColor = RGBColor(0x6a, 0x3d, 0x9a);
/// How opaque the fault shading is.
const FAULT_OPACITY: f64 = 0.18;
pub const NO_OPS: &str = "no completed client operations";
const FONT: &str = "sans-serif";

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing {plot}: {reason}")]
pub struct PlotError {
    plot: &'static str,
    reason: String,
}

/// The position of an outcome in `OUTCOMES` (an operation never completed counts as info).
pub fn outcome_index(kind: OpType) -> usize {
    match kind {
        OpType::Ok => 0,
        OpType::Fail => 1,
        _ => 2,
    }
}

pub fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "partition" => RGBColor(0x4e, 0x79, 0xa7),
        "loss" => RGBColor(0xb0, 0x7a, 0xa1),
        "kill" => RGBColor(0xd6, 0x27, 0x28),
        "pause" => RGBColor(0x17, 0xbe, 0xcf),
        "membership" => RGBColor(0xed, 0xc9, 0x48),
        _ => RGBColor(0x9e, 0x9e, 0x9e),
    }
}

/// A fault kind's color as HTML writes it (`#4e79a7`).
pub fn fault_hex(kind: &str) -> String {
    let RGBColor(r, g, b) = fault_color(kind);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `v` (> 0).
fn nice_ceil(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    let n = [1.0, 2.0, 5.0].into_iter().find(|&n| v / mag <= n + 1e-9);
    mag * n.unwrap_or(10.0)
}

/// An axis from 0 covering `max` and ending on a tick.
fn nice_max(max: f64) -> f64 {
    let step = nice_ceil(max.max(1e-9) / 8.0);
    (max / step - 1e-9).ceil().max(1.0) * step
}

/// Seconds the plots cover: the history and every fault, or 1 s if that is nothing.
fn span_s(ops: &[Entry], faults: &[Fault]) -> f64 {
    let ends = ops
        .iter()
        .map(|o| o.time)
        .chain(faults.iter().map(|f| f.end_ns));
    let s = ends.max().unwrap_or(0) as f64 / 1e9;
    if s > 0.0 {
        s
    } else {
        1.0
    }
}

/// Bucket width in seconds: 1 s, finer for short runs, coarser for long ones; and the count.
fn buckets(span: f64) -> (f64, usize) {
    let width = nice_ceil((span / 600.0).max((span / 20.0).min(1.0)));
    (width, ((span / width - 1e-9).ceil() as usize).max(1))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Indices of at most `cap` items out of `n`, spread evenly.
pub fn sample_indices(n: usize, cap: usize) -> Vec<usize> {
    (0..n.min(cap)).map(|i| i * n / n.min(cap)).collect()
}

type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Shades each fault's interval over the whole height, one legend entry per kind.
fn shade_faults<'a, 'b: 'a, Y>(
    chart: &mut Chart<'a, 'b, Y>,
    faults: &[Fault],
    y: (f64, f64),
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let mut kinds: Vec<&str> = Vec::new();
    for f in faults {
        let color = fault_color(&f.kind);
        let (x0, x1) = (f.start_ns as f64 / 1e9, f.end_ns as f64 / 1e9);
        let area = Rectangle::new([(x0, y.0), (x1, y.1)], color.mix(FAULT_OPACITY).filled());
        let series = chart.draw_series([area]).map_err(|e| e.to_string())?;
        if !kinds.contains(&f.kind.as_str()) {
            kinds.push(&f.kind);
            series
                .label(format!("fault: {}", f.kind))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.mix(0.35).filled())
                });
        }
    }
    Ok(())
}

/// A note in the middle of the plotting area.
fn note(root: &DrawingArea<SVGBackend<'_>, Shift>, text: &str) -> Result<(), String> {
    let (w, h) = root.dim_in_pixel();
    let style = (FONT, 14)
        .into_font()
        .color(&RGBColor(0x66, 0x66, 0x66))
        .pos(Pos::new(HPos::Center, VPos::Center));
    root.draw_text(text, &style, (w as i32 / 2, h as i32 / 2))
        .map_err(|e| e.to_string())
}

fn draw_legend<'a, 'b: 'a, Y>(chart: &mut Chart<'a, 'b, Y>) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0x44, 0x44, 0x44))
        .label_font((FONT, 11))
        .draw()
        .map_err(|e| e.to_string())
}

/// Completed client operations per second over time, one line per outcome (ok green, fail
/// orange, info grey), with the fault intervals shaded behind.
pub fn throughput_svg(ops: &[Entry], faults: &[Fault]) -> Result<String, PlotError> {
    render("throughput", |svg| draw_throughput(svg, ops, faults))
}

/// The SVG text `draw` writes.
fn render(
    plot: &'static str,
    draw: impl FnOnce(&mut String) -> Result<(), String>,
) -> Result<String, PlotError> {
    let mut svg = String::new();
    draw(&mut svg).map_err(|reason| PlotError { plot, reason })?;
    Ok(svg)
}

fn draw_throughput(svg: &mut String, ops: &[Entry], faults: &[Fault]) -> Result<(), String> {
    let span = span_s(ops, faults);
    let (width, n) = buckets(span);
    let mut counts = vec![[0u64; 3]; n];
    let done: Vec<&Entry> = pairs(ops).iter().filter_map(|p| p.complete).collect();
    for c in &done {
        let i = ((c.time as f64 / 1e9 / width) as usize).min(n - 1);
        counts[i][outcome_index(c.kind)] += 1;
    }
    let max_rate = counts.iter().flatten().copied().max().unwrap_or(0) as f64 / width;
    let y_max = nice_max(max_rate.max(1.0));
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Throughput ({width} s buckets)"), (FONT, 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..nice_max(span), 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("completed ops/s")
        .draw()
        .map_err(|e| e.to_string())?;
    shade_faults(&mut chart, faults, (0.0, y_max))?;
    for (k, (label, color)) in OUTCOMES.iter().enumerate().filter(|_| !done.is_empty()) {
        // A step line: each bucket's rate held over its width.
        let steps = (0..n).flat_map(|i| {
            let rate = counts[i][k] as f64 / width;
            [(i as f64 * width, rate), ((i + 1) as f64 * width, rate)]
        });
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart)?;
    if done.is_empty() {
        note(&root, NO_OPS)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// One completed operation: invoked at `s`, took `ms`, its outcome, which `f` it was.
struct Point {
    s: f64,
    ms: f64,
    outcome: usize,
    f: usize,
}

/// Every completed client operation, and the names of the operations (in order of first
/// appearance). Zero latencies are clamped to 0.01 ms, for the log scale.
fn latency_points(ops: &[Entry]) -> (Vec<Point>, Vec<&str>) {
    let mut fs: Vec<&str> = Vec::new();
    let mut points = Vec::new();
    for p in pairs(ops) {
        let Some(c) = p.complete else { continue };
        let f = fs.iter().position(|f| *f == p.invoke.f).unwrap_or_else(|| {
            fs.push(&p.invoke.f);
            fs.len() - 1
        });
        let ms = (c.time.saturating_sub(p.invoke.time) as f64 / 1e6).max(0.01);
        points.push(Point {
            s: p.invoke.time as f64 / 1e9,
            ms,
            outcome: outcome_index(c.kind),
            f,
        });
    }
    (points, fs)
}

/// p50 or p99 of the latencies in each time bucket, at the bucket's middle.
fn percentile_line(points: &[Point], span: f64, p: f64) -> Vec<(f64, f64)> {
    let (width, n) = buckets(span);
    let mut by_bucket: Vec<Vec<f64>> = vec![Vec::new(); n];
    for point in points {
        by_bucket[((point.s / width) as usize).min(n - 1)].push(point.ms);
    }
    by_bucket
        .iter_mut()
        .enumerate()
        .filter_map(|(i, b)| {
            b.sort_by(f64::total_cmp);
            percentile(b, p).map(|v| ((i as f64 + 0.5) * width, v))
        })
        .collect()
}

/// Latency of each completed client operation at its invocation time, on a log scale in ms,
/// colored by outcome, one marker shape per `f` (for the first three); p50 and p99 per time
/// bucket as lines; faults shaded behind. At most `MAX_POINTS` points, sampled evenly.
pub fn latency_svg(ops: &[Entry], faults: &[Fault]) -> Result<String, PlotError> {
    render("latency", |svg| draw_latency(svg, ops, faults))
}

fn draw_latency(svg: &mut String, ops: &[Entry], faults: &[Fault]) -> Result<(), String> {
    let (points, fs) = latency_points(ops);
    let span = span_s(ops, faults);
    let lo = points.iter().map(|p| p.ms).reduce(f64::min).unwrap_or(0.1);
    let hi = points
        .iter()
        .map(|p| p.ms)
        .reduce(f64::max)
        .unwrap_or(1000.0);
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency of completed operations", (FONT, 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..nice_max(span), (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("latency (ms, log scale)")
        .draw()
        .map_err(|e| e.to_string())?;
    shade_faults(&mut chart, faults, (lo, hi))?;
    draw_points(&mut chart, &points, &fs)?;
    for (p, label, color) in [(0.5, "p50 per bucket", P50), (0.99, "p99 per bucket", P99)] {
        let line = percentile_line(&points, span, p);
        if line.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart)?;
    match points.len() {
        0 => note(&root, NO_OPS)?,
        k if k > MAX_POINTS => note(&root, &format!("{MAX_POINTS} of {k} points shown"))?,
        _ => {}
    }
    root.present().map_err(|e| e.to_string())
}

/// The latency markers: a circle, triangle or cross per operation name, colored by outcome.
fn draw_points<'a, 'b: 'a, Y>(
    chart: &mut Chart<'a, 'b, Y>,
    points: &[Point],
    fs: &[&str],
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let sampled: Vec<&Point> = sample_indices(points.len(), MAX_POINTS)
        .into_iter()
        .map(|i| &points[i])
        .collect();
    for (outcome, (label, color)) in OUTCOMES.iter().enumerate() {
        let style = color.mix(0.55).filled();
        let mine = sampled.iter().filter(|p| p.outcome == outcome);
        let series = chart
            .draw_series(
                mine.map(|p| -> DynElement<'static, SVGBackend<'b>, (f64, f64)> {
                    match p.f % 3 {
                        0 => Circle::new((p.s, p.ms), 2, style).into_dyn(),
                        1 => TriangleMarker::new((p.s, p.ms), 3, style).into_dyn(),
                        _ => Cross::new((p.s, p.ms), 3, style).into_dyn(),
                    }
                }),
            )
            .map_err(|e| e.to_string())?;
        series
            .label(*label)
            .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
    }
    for (i, f) in fs.iter().enumerate().take(3) {
        let grey = RGBColor(0x33, 0x33, 0x33).filled();
        let empty: [Circle<(f64, f64), i32>; 0] = [];
        let series = chart.draw_series(empty).map_err(|e| e.to_string())?;
        series.label(format!("f: {f}")).legend(
            move |(x, y)| -> DynElement<'static, SVGBackend<'b>, (i32, i32)> {
                match i {
                    0 => Circle::new((x + 9, y), 3, grey).into_dyn(),
                    1 => TriangleMarker::new((x + 9, y), 4, grey).into_dyn(),
                    _ => Cross::new((x + 9, y), 4, grey).into_dyn(),
                }
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use crate::report::fault_intervals;
    use crate::report::tests::{check_svg, history, op};

    fn both(ops: &[Entry], faults: &[Fault]) -> [String; 2] {
        [
            throughput_svg(ops, faults).unwrap(),
            latency_svg(ops, faults).unwrap(),
        ]
    }

    /// A label as plotters writes it: on a line of its own inside `<text>`.
    fn label(text: &str) -> String {
        format!("\n{text}\n</text>")
    }

    #[test]
    fn the_plots_shade_faults_and_are_well_formed() {
        let ops = history(
            &[
                ("start-partition", 100),
                ("stop-partition", 300),
                ("start-weird", 350),
            ],
            300,
            7,
        );
        let faults = fault_intervals(&ops);
        assert_eq!(faults.len(), 2);
        for svg in both(&ops, &faults) {
            check_svg(&svg);
            let shaded = "opacity=\"0.18\"";
            assert_eq!(svg.matches(shaded).count(), 2, "{svg}");
            assert!(svg.contains(&format!("{shaded} fill=\"#4E79A7\"")));
            assert!(
                svg.contains(&format!("{shaded} fill=\"#9E9E9E\"")),
                "unknown kinds are grey"
            );
            assert!(svg.contains(&label("fault: weird")) && !svg.contains(NO_OPS));
        }
        let [throughput, latency] = both(&ops, &faults);
        assert!(throughput.contains(&label("completed ops/s")));
        assert!(latency.contains(&label("p99 per bucket")));
        assert!(latency.contains(&label("f: transfer")) && latency.contains(&label("f: read")));
        // Every outcome's color is drawn: transfers ok and info, reads fail.
        for color in ["#2CA02C", "#E8590C", "#8C8C8C"] {
            assert!(
                latency.contains(&format!("opacity=\"0.55\" fill=\"{color}\"")),
                "{color}"
            );
        }
    }

    #[test]
    fn edge_cases_still_draw() {
        let zero_latency = history(&[], 4, 0);
        let mut zero_time = zero_latency.clone();
        zero_time.iter_mut().for_each(|o| o.time = 0);
        let open_only = vec![op(OpType::Invoke, "read", Process::Client(1), 5)];
        for ops in [vec![], zero_latency.clone(), zero_time, open_only.clone()] {
            let faults = fault_intervals(&ops);
            both(&ops, &faults).iter().for_each(|svg| check_svg(svg));
        }
        assert!(latency_svg(&open_only, &[]).unwrap().contains(NO_OPS));
        assert!(throughput_svg(&[], &[]).unwrap().contains(NO_OPS));
    }

    #[test]
    fn many_points_are_sampled() {
        assert_eq!(sample_indices(10, 20), (0..10).collect::<Vec<_>>());
        let s = sample_indices(30_000, MAX_POINTS);
        assert_eq!(s.len(), MAX_POINTS);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && *s.last().unwrap() < 30_000);
        let svg = latency_svg(&history(&[], 30_000, 2), &[]).unwrap();
        check_svg(&svg);
        assert!(svg.contains("20000 of 30000 points shown"));
        assert!(svg.len() < 3_000_000, "{} bytes", svg.len());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let got = [0.5, 0.99, 1.0].map(|p| percentile(&v, p));
        assert_eq!(got, [Some(50.0), Some(99.0), Some(100.0)]);
        assert_eq!(percentile(&[], 0.5), None);
    }
}
