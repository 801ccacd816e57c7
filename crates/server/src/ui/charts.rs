//! Charts drawn on the server as plain SVG: no JavaScript, no CDN, and they
//! print. Hand-written because the chart crates render whole figures to
//! files or canvases, while these are small inline pieces that must match the
//! page's styles and carry accessible titles.

use std::fmt::Write;

/// Escapes text for SVG/XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colour of the n-th series, from a palette that stays readable for
/// the common colour-vision deficiencies.
pub fn colour(index: usize) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#1f6feb", "#e36209", "#2da44e", "#8250df", "#bf3989", "#0a7ea4", "#9a6700", "#57606a",
    ];
    PALETTE[index % PALETTE.len()]
}

/// One mark on a timeline lane.
pub struct Mark {
    pub at_ms: i64,
    /// Shown on hover.
    pub title: String,
    /// Drawn emphasised (an article the customer already read, say).
    pub emphasised: bool,
}

/// One lane of a timeline: a label and its marks.
pub struct Lane {
    pub label: String,
    pub marks: Vec<Mark>,
}

/// Formats a UTC millisecond time for an axis tick.
fn tick_label(ms: i64, span_ms: i64) -> String {
    let text = tracklog_domain::time::UtcMillis::from_millis(ms).to_rfc3339();
    // "2026-02-27T09:00:00.000Z" → "02-27 09:00" or "09:00:00" for short spans.
    if span_ms <= 2 * 3_600_000 {
        text[11..19].to_owned()
    } else {
        format!("{} {}", &text[5..10], &text[11..16])
    }
}

/// A timeline: time across, one lane per series, a circle per event, and a
/// red line at the end (the case's creation).
pub fn timeline(start_ms: i64, end_ms: i64, lanes: &[Lane], end_label: &str) -> String {
    let (left, right, top, lane_h) = (170.0, 30.0, 16.0, 34.0);
    let width = 900.0;
    let plot_w = width - left - right;
    let height = top + lane_h * lanes.len().max(1) as f64 + 40.0;
    let span = (end_ms - start_ms).max(1);
    let x = |ms: i64| left + plot_w * ((ms - start_ms) as f64 / span as f64);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot timeline" viewBox="0 0 {width} {height}" role="img" aria-label="Timeline of interactions by type" xmlns="http://www.w3.org/2000/svg">"#
    );
    for tick in 0..=6 {
        let at = start_ms + span * tick / 6;
        let tx = x(at);
        let _ = write!(
            svg,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{:.1}" stroke="#e6e9ee"/><text x="{tx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5f6b7a">{}</text>"##,
            height - 30.0,
            height - 14.0,
            escape(&tick_label(at, span))
        );
    }
    for (index, lane) in lanes.iter().enumerate() {
        let y = top + lane_h * index as f64 + lane_h / 2.0;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#1d2430">{}</text><line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d9dee5"/>"##,
            left - 10.0,
            y + 4.0,
            escape(&lane.label),
            left + plot_w
        );
        for mark in &lane.marks {
            let (r, stroke) = if mark.emphasised {
                (7.0, r##" stroke="#b42318" stroke-width="3""##)
            } else {
                (5.5, "")
            };
            let _ = write!(
                svg,
                r#"<circle class="mark{}" cx="{:.1}" cy="{y:.1}" r="{r}" fill="{}" fill-opacity="0.85"{stroke}><title>{}</title></circle>"#,
                if mark.emphasised { " emphasised" } else { "" },
                x(mark.at_ms),
                colour(index),
                escape(&mark.title)
            );
        }
    }
    let end_x = x(end_ms);
    let _ = write!(
        svg,
        r##"<line x1="{end_x:.1}" y1="{:.1}" x2="{end_x:.1}" y2="{:.1}" stroke="#b42318" stroke-width="2" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#b42318">{}</text></svg>"##,
        top - 6.0,
        height - 30.0,
        end_x - 4.0,
        top - 4.0 + 8.0,
        escape(end_label)
    );
    svg
}

/// Stacked daily bars: one bar per day, one colour per series.
pub fn stacked_bars(days: &[String], series: &[(String, Vec<u64>)]) -> String {
    let (left, right, top, bottom) = (48.0, 16.0, 12.0, 46.0);
    let (width, height) = (900.0, 260.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let totals: Vec<u64> = (0..days.len())
        .map(|d| {
            series
                .iter()
                .map(|(_, v)| v.get(d).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let slot = plot_w / days.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot bars" viewBox="0 0 {width} {height}" role="img" aria-label="Interactions per day by type" xmlns="http://www.w3.org/2000/svg">"#
    );
    for step in 0..=4 {
        let value = max * step / 4;
        let y = top + plot_h - plot_h * (value as f64 / max as f64);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e6e9ee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5f6b7a">{value}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let label_every = (days.len() / 10).max(1);
    for (d, day) in days.iter().enumerate() {
        let x = left + slot * d as f64 + (slot - bar_w) / 2.0;
        let mut y = top + plot_h;
        for (index, (name, values)) in series.iter().enumerate() {
            let value = values.get(d).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let h = plot_h * (value as f64 / max as f64);
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{} {}: {value}</title></rect>"#,
                colour(index),
                escape(day),
                escape(name)
            );
        }
        if d % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5f6b7a">{}</text>"##,
                x + bar_w / 2.0,
                height - bottom + 16.0,
                escape(day.get(5..).unwrap_or(day))
            );
        }
    }
    for (index, (name, _)) in series.iter().enumerate() {
        let x = left + 190.0 * index as f64;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#1d2430">{}</text>"##,
            height - 18.0,
            colour(index),
            x + 14.0,
            height - 9.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One line of a line chart: a name for the legend and one value per
/// label (`None` leaves a gap).
pub struct LineSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
    /// Drawn dashed (a forecast next to its actual, say).
    pub dashed: bool,
}

/// A line chart: one label per point across, values up, one coloured line
/// per series with a circle per value (its `<title>` is the tooltip), an
/// optional shaded band (a forecast's lower and upper bounds), the y axis
/// named `y_label` and its ticks written by `format`.
pub fn line_chart(
    labels: &[String],
    series: &[LineSeries],
    band: Option<(&[f64], &[f64])>,
    y_label: &str,
    format: &dyn Fn(f64) -> String,
) -> String {
    let (left, right, top, bottom) = (78.0, 16.0, 12.0, 64.0);
    let (width, height) = (900.0, 300.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let values = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(
            band.into_iter()
                .flat_map(|(_, upper)| upper.iter().copied()),
        );
    let max = values.fold(0.0_f64, |m, v| if v.is_finite() { m.max(v) } else { m });
    let max = if max > 0.0 { max * 1.05 } else { 1.0 };
    let count = labels.len().max(1);
    let x = |i: usize| {
        if count == 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (count - 1) as f64
        }
    };
    let y = |v: f64| top + plot_h - plot_h * (v.max(0.0) / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot lines" viewBox="0 0 {width} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(y_label)
    );
    for step in 0..=4 {
        let value = max * f64::from(step) / 4.0;
        let ty = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e6e9ee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5f6b7a">{}</text>"##,
            left + plot_w,
            left - 6.0,
            ty + 4.0,
            escape(&format(value))
        );
    }
    let _ = write!(
        svg,
        r##"<text class="axis-label" x="12" y="{:.1}" font-size="11" text-anchor="middle" fill="#5f6b7a" transform="rotate(-90 12 {:.1})">{}</text>"##,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    );
    let label_every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5f6b7a">{}</text>"##,
                x(i),
                top + plot_h + 16.0,
                escape(label)
            );
        }
    }
    if let Some((lower, upper)) = band {
        let n = lower.len().min(upper.len()).min(labels.len());
        if n > 0 {
            let mut d = String::new();
            for (i, value) in upper.iter().enumerate().take(n) {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if i == 0 { "M" } else { "L" },
                    x(i),
                    y(*value)
                );
            }
            for (i, value) in lower.iter().enumerate().take(n).rev() {
                let _ = write!(d, "L{:.1} {:.1} ", x(i), y(*value));
            }
            let _ = write!(
                svg,
                r##"<path class="band" d="{}Z" fill="#1f6feb" fill-opacity="0.12" stroke="none"><title>Forecast range</title></path>"##,
                d
            );
        }
    }
    for (index, line) in series.iter().enumerate() {
        let colour = colour(index);
        let mut d = String::new();
        let mut pen_down = false;
        let mut marks = String::new();
        for (i, value) in line.values.iter().enumerate().take(labels.len()) {
            let Some(value) = value.filter(|v| v.is_finite()) else {
                pen_down = false;
                continue;
            };
            let (px, py) = (x(i), y(value));
            let _ = write!(d, "{}{px:.1} {py:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
            let _ = write!(
                marks,
                r#"<circle class="point" cx="{px:.1}" cy="{py:.1}" r="2.5" fill="{colour}"><title>{} · {}: {}</title></circle>"#,
                escape(&labels[i]),
                escape(&line.name),
                escape(&format(value))
            );
        }
        let _ = write!(
            svg,
            r#"<g class="series" data-series="{}"><path d="{}" fill="none" stroke="{colour}" stroke-width="2"{}/>{marks}</g>"#,
            escape(&line.name),
            d.trim_end(),
            if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            }
        );
    }
    for (index, line) in series.iter().enumerate() {
        let lx = left + 190.0 * (index % 4) as f64;
        let ly = height - 26.0 + 14.0 * (index / 4) as f64;
        let _ = write!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}" font-size="12" fill="#1d2430">{}</text>"##,
            ly - 9.0,
            colour(index),
            lx + 14.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_charts_draw_a_series_per_line_and_skip_gaps() {
        let labels: Vec<String> = ["09:00", "10:00", "11:00"].map(String::from).to_vec();
        let svg = line_chart(
            &labels,
            &[
                LineSeries {
                    name: "billing <b>".into(),
                    values: vec![Some(0.0), None, Some(4.0)],
                    dashed: false,
                },
                LineSeries {
                    name: "sales".into(),
                    values: vec![Some(2.0), Some(2.0), Some(2.0)],
                    dashed: true,
                },
            ],
            Some((&[1.0, 1.0, 1.0][..], &[3.0, 3.0, 3.0][..])),
            "Conversations",
            &|v| format!("{v:.0}"),
        );
        assert!(svg.starts_with("<svg class=\"plot lines\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g class=\"series\"").count(), 2);
        assert_eq!(svg.matches("<circle class=\"point\"").count(), 5);
        // The gap starts a new sub-path instead of joining across it.
        assert!(svg.contains("d=\"M78.0 236.0 M884.0 "), "{svg}");
        assert!(svg.contains("billing &lt;b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("stroke-dasharray=\"6 4\""));
        assert!(svg.contains("class=\"band\""));
        assert!(svg.contains("<title>11:00 · sales: 2</title>"));
        // The top value (4) is drawn 5 % under the top of the plot.
        assert!(svg.contains("cx=\"884.0\" cy=\"22.7\""), "{svg}");
    }

    #[test]
    fn an_empty_line_chart_is_still_an_svg() {
        let svg = line_chart(&[], &[], None, "Nothing", &|v| v.to_string());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 0);
    }

    #[test]
    fn timelines_place_marks_and_escape_titles() {
        let svg = timeline(
            0,
            1000,
            &[Lane {
                label: "Knowledge <article>".into(),
                marks: vec![
                    Mark {
                        at_ms: 500,
                        title: "\"Reset\" & more".into(),
                        emphasised: true,
                    },
                    Mark {
                        at_ms: 0,
                        title: "first".into(),
                        emphasised: false,
                    },
                ],
            }],
            "Case created",
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("class=\"mark emphasised\""));
        assert!(svg.contains("Knowledge &lt;article&gt;"));
        assert!(svg.contains("&quot;Reset&quot; &amp; more"));
        // The mark at the middle of the span sits in the middle of the plot.
        assert!(svg.contains("cx=\"520.0\""), "{svg}");
    }

    #[test]
    fn bars_stack_per_day_and_scale_to_the_tallest() {
        let svg = stacked_bars(
            &["2026-03-01".into(), "2026-03-02".into()],
            &[("a".into(), vec![2, 0]), ("b".into(), vec![2, 1])],
        );
        assert_eq!(svg.matches("<rect").count(), 3 + 2);
        // The tallest day (4) fills the plot height of 202.
        assert!(svg.contains("height=\"101.0\""), "{svg}");
    }
}
