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
        r#"<svg class="chart timeline" viewBox="0 0 {width} {height}" role="img" aria-label="Timeline of interactions by type" xmlns="http://www.w3.org/2000/svg">"#
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
        r#"<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="Interactions per day by type" xmlns="http://www.w3.org/2000/svg">"#
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

#[cfg(test)]
mod tests {
    use super::*;

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
