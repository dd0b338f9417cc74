//! `--plot FILE.svg`: the latency percentile distribution of append acks and
//! end-to-end delivery. The x axis counts "nines" (90%, 99%, 99.9%, ...) so
//! the tail gets as much room as the median; the y axis is logarithmic.

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Percentile points `(nines, µs)` of `h`, up to the resolution its sample
/// count supports.
fn curve(h: &Histogram<u64>, max_nines: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut x = 0.0;
    while x <= max_nines + 1e-9 {
        let q = 1.0 - 10f64.powf(-x);
        out.push((x, h.value_at_quantile(q).max(1) as f64));
        x += 0.02;
    }
    out
}

/// The percentile a position on the nines axis stands for, as a label.
fn label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// A latency in µs as a short label with its unit, so the y labels stay
/// narrow enough for their area whatever the scale.
fn latency_label(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    let s = if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s} {unit}")
}

/// The y range: from a little under the smallest figure to a little over the
/// largest, so the curves fill the plot instead of sitting at the top of an
/// axis that starts at 1 µs.
fn y_range(series: &[Vec<(f64, f64)>]) -> (f64, f64) {
    let values = || series.iter().flat_map(|c| c.iter().map(|p| p.1));
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let lo = (lo / 1.25).max(1.0);
    // A flat curve still gets a readable span of at least one decade.
    let hi = (hi * 1.25).max(lo * 10.0);
    (lo, hi)
}

/// The y axis's labelled values: 1, 2 and 5 of every decade within the
/// range, so labels sit at round figures and never crowd each other.
fn y_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Writes the SVG plot of `ack` and `e2e` to `path`.
pub fn write_svg(
    path: &Path,
    title: &str,
    ack: &Histogram<u64>,
    e2e: &Histogram<u64>,
) -> anyhow::Result<()> {
    let samples = ack.len().max(e2e.len()).max(10) as f64;
    // Beyond 1/samples the curve is just the maximum: stop there (at least 90%, at most 99.999%).
    let max_nines = samples.log10().floor().clamp(1.0, 5.0);
    let series = [
        ("append ack", curve(ack, max_nines), &BLUE),
        ("end-to-end", curve(e2e, max_nines), &RED),
    ];
    let curves: Vec<_> = series.iter().map(|(_, c, _)| c.clone()).collect();
    let (y_min, y_max) = y_range(&curves);
    // A long title (it carries the run's parameters) shrinks rather than
    // running off the canvas: about 0.55 em per character of sans-serif.
    let title_size = (1600.0 / title.chars().count().max(1) as f64).clamp(11.0, 20.0);

    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The right margin leaves room for the last x label ("99.999%"), which
    // is centred on the plot's right edge.
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", title_size))
        .margin_top(15)
        .margin_bottom(15)
        .margin_left(15)
        .margin_right(45)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            0.0..max_nines,
            (y_min..y_max)
                .log_scale()
                .with_key_points(y_ticks(y_min, y_max)),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_labels(max_nines as usize + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|y| latency_label(*y))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (name, points, color) in series {
        if points.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_read_as_percentiles() {
        assert_eq!(super::label(&0.0), "0%");
        assert_eq!(super::label(&2.0), "99%");
        assert_eq!(super::label(&3.0), "99.9%");
    }

    #[test]
    fn latency_labels_carry_their_unit() {
        assert_eq!(super::latency_label(250.0), "250 µs");
        assert_eq!(super::latency_label(1500.0), "1.5 ms");
        assert_eq!(super::latency_label(12_000.0), "12 ms");
        assert_eq!(super::latency_label(2_000_000.0), "2 s");
    }

    #[test]
    fn the_y_axis_starts_near_the_smallest_figure() {
        let (lo, hi) = super::y_range(&[vec![(0.0, 800.0), (1.0, 2_000.0)], vec![(0.0, 5_000.0)]]);
        assert!((600.0..800.0).contains(&lo), "{lo}");
        assert!(hi >= 6_000.0, "{hi}");
        assert_eq!(super::y_range(&[vec![]]), (1.0, 10.0));
    }

    #[test]
    fn y_ticks_are_round_figures_within_the_range() {
        assert_eq!(
            super::y_ticks(150.0, 11_000.0),
            vec![200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0]
        );
    }
}
