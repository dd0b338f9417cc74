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
    let y_max = series
        .iter()
        .flat_map(|(_, c, _)| c.iter().map(|p| p.1))
        .fold(10.0, f64::max)
        * 1.5;

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_nines, (1.0..y_max).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(max_nines as usize + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format!("{y:.0}"))
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
}
