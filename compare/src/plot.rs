//! `latency.svg`: the one-way latency distributions, one panel per payload
//! size, one percentile curve per system and round (rounds differ when the
//! host has moved the vCPUs, so they are not pooled). The x axis is in
//! "nines" (-log10(1 - p)), so p90, p99, p99.9 and p99.99 are evenly
//! spread; the y axis is logarithmic.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::{Results, size_name};
use crate::systems::System;

fn color(sys: System) -> RGBColor {
    match sys {
        System::Floor => RGBColor(110, 110, 110),
        System::FloorTwoLines => RGBColor(170, 170, 170),
        System::ShmBus => RGBColor(214, 39, 40),
        System::ShmBusPreloaned => RGBColor(227, 119, 194),
        System::ShmBusBatched => RGBColor(240, 120, 120),
        System::Iceoryx2 => RGBColor(31, 119, 180),
        System::Iceoryx2Preloaned => RGBColor(120, 180, 230),
        System::Uds => RGBColor(255, 127, 14),
    }
}

fn percent_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("p{p:.decimals$}")
}

fn ns_label(y: &f64) -> String {
    if *y >= 1000.0 {
        format!("{:.0} µs", y / 1000.0)
    } else {
        format!("{y:.0} ns")
    }
}

pub fn latency_svg(r: &Results, path: &Path) -> Result<()> {
    let plot_err = |e: &dyn std::fmt::Debug| anyhow!("plotting: {e:?}");
    let mut sizes: Vec<usize> = r.latency.iter().map(|c| c.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let panels = sizes.len().max(1);
    let root = SVGBackend::new(path, (600 * panels as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let areas = root.split_evenly((1, panels));
    for (size, area) in sizes.iter().zip(areas.iter()) {
        let cases: Vec<_> = r.latency.iter().filter(|c| c.size == *size).collect();
        let mut lo = f64::MAX;
        let mut hi = 1.0f64;
        for c in &cases {
            for y in c.round_curves.iter().flatten() {
                lo = lo.min(*y);
                hi = hi.max(*y);
            }
        }
        let lo = (lo * 0.8).max(1.0);
        let hi = hi * 1.25;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("one-way latency, {} payload", size_name(*size)),
                ("sans-serif", 20),
            )
            .margin(14)
            .margin_right(40)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..4f64, (lo..hi).log_scale())
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_max_light_lines(0)
            .y_max_light_lines(4)
            .x_label_formatter(&percent_label)
            .y_label_formatter(&ns_label)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .x_desc("percentile (one line per round; log scale of nines)")
            .y_desc("one-way latency (log scale)")
            .draw()
            .map_err(|e| plot_err(&e))?;
        for sys in System::LATENCY {
            let Some(c) = cases.iter().find(|c| c.system == sys) else {
                continue;
            };
            let col = color(sys);
            let p50 = crate::report::spread(&c.p50_ns).median;
            for (i, curve) in c.round_curves.iter().enumerate() {
                let series = chart
                    .draw_series(LineSeries::new(
                        curve
                            .iter()
                            .enumerate()
                            .map(|(k, y)| (k as f64 * c.nines_step, y.max(lo))),
                        col.stroke_width(1),
                    ))
                    .map_err(|e| plot_err(&e))?;
                if i == 0 {
                    series
                        .label(format!("{} (median p50 {p50:.0} ns)", sys.name()))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2))
                        });
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| plot_err(&e))?;
    }
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}
