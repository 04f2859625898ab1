//! Bar charts as inline SVG: one bar per time bucket, series stacked, drawn on the server so the
//! page needs no script.

use std::fmt::Write;

use super::html::{axis_label, esc};

/// One stacked series: its legend name, its CSS class (`s0`, `s1`, …) and one value per bucket.
pub struct Series<'a> {
    /// Legend name.
    pub name: &'a str,
    /// CSS class giving its colour.
    pub class: &'a str,
    /// One value per bucket.
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A titled bar chart of `series` over the buckets starting at `starts` (Unix ms); `unit`
/// formats values for the axis and the hover titles.
pub fn bars(
    title: &str,
    starts: &[u64],
    hourly: bool,
    series: &[Series<'_>],
    unit: impl Fn(f64) -> String,
) -> String {
    let n = starts.len().max(1);
    let totals: Vec<f64> = (0..starts.len())
        .map(|i| series.iter().map(|s| value(s, i)).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max);
    let scale = if max > 0.0 {
        (HEIGHT - BOTTOM - TOP) / max
    } else {
        0.0
    };
    let slot = (WIDTH - LEFT) / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let base = HEIGHT - BOTTOM;
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        esc(title),
        esc(title),
        LEFT - 6.0,
        TOP + 10.0,
        esc(&unit(max)),
        LEFT - 6.0,
    );
    for (i, start) in starts.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = base;
        for s in series {
            let v = value(s, i);
            if v <= 0.0 {
                continue;
            }
            let h = (v * scale).max(1.0);
            y -= h;
            let _infallible = write!(
                svg,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\">\
                 <title>{} {}: {}</title></rect>",
                s.class,
                axis_label(*start, hourly),
                esc(s.name),
                esc(&unit(v)),
            );
        }
        // Label about six buckets so the axis stays legible at any count.
        if i.is_multiple_of(n.div_ceil(6)) || i + 1 == starts.len() {
            let _infallible = write!(
                svg,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                HEIGHT - 4.0,
                axis_label(*start, hourly)
            );
        }
    }
    svg.push_str("</svg><div class=\"legend\">");
    for s in series {
        let _infallible = write!(
            svg,
            "<span><i class=\"{}\"></i>{}</span>",
            s.class,
            esc(s.name)
        );
    }
    svg.push_str("</div></figure>\n");
    svg
}

fn value(series: &Series<'_>, i: usize) -> f64 {
    series.values.get(i).copied().unwrap_or(0.0).max(0.0)
}
