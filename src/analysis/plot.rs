//! PNG figures: t-SNE scatter coloured by cluster, similarity heat maps with
//! the selected isovalues marked, and dendrograms.
//!
//! plotters draws into an RGB bitmap and encodes PNG in pure Rust. Text uses
//! the Hack font compiled into the binary (epaint_default_fonts) through
//! plotters' ab_glyph backend, registered once as "sans-serif": no fontconfig
//! or FreeType on the machine is needed, and every machine renders the same.

use super::AnalysisError;
use plotters::prelude::*;
use std::path::Path;

const FONT: &str = "sans-serif";

fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is a compile-time constant known to parse; a failure would only lose text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR);
    });
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> AnalysisError + '_ {
    move |e| AnalysisError::Plot { path: path.to_owned(), msg: e.to_string() }
}

/// Distinct colours for up to 10 clusters, then a repeating palette.
pub fn cluster_colour(c: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)];
    let (r, g, b) = TAB10[c % TAB10.len()];
    RGBColor(r, g, b)
}

/// Viridis-like map of t in [0, 1] (piecewise linear through 5 anchors).
pub fn heat_colour(t: f64) -> RGBColor {
    const A: [(f64, f64, f64); 5] = [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let i = (t as usize).min(3);
    let f = t - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(mix(A[i].0, A[i + 1].0), mix(A[i].1, A[i + 1].1), mix(A[i].2, A[i + 1].2))
}

fn padded(lo: f32, hi: f32) -> std::ops::Range<f32> {
    let span = (hi - lo).max(1e-6);
    lo - 0.05 * span..hi + 0.05 * span
}

/// Scatter of 2-D points, one colour per label, with a legend of cluster sizes.
pub fn scatter(path: &Path, title: &str, points: &[[f32; 2]], labels: &[usize]) -> Result<(), AnalysisError> {
    fonts();
    let e = plot_err(path);
    let (xl, xh) = points.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), p| (l.min(p[0]), h.max(p[0])));
    let (yl, yh) = points.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), p| (l.min(p[1]), h.max(p[1])));
    if !(xl.is_finite() && yl.is_finite()) {
        return Err(AnalysisError::Plot { path: path.to_owned(), msg: "no finite points".into() });
    }
    let root = BitMapBackend::new(path, (800, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart = ChartBuilder::on(&root).caption(title, (FONT, 22)).margin(12).x_label_area_size(32).y_label_area_size(48).build_cartesian_2d(padded(xl, xh), padded(yl, yh)).map_err(&e)?;
    chart.configure_mesh().light_line_style(RGBColor(238, 238, 238)).label_style((FONT, 13)).x_desc("t-SNE 1").y_desc("t-SNE 2").draw().map_err(&e)?;
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    for c in 0..k {
        let col = cluster_colour(c);
        let members: Vec<[f32; 2]> = points.iter().zip(labels).filter(|(_, &l)| l == c).map(|(p, _)| *p).collect();
        let n = members.len();
        chart
            .draw_series(members.into_iter().map(|p| Circle::new((p[0], p[1]), 4, col.mix(0.85).filled())))
            .map_err(&e)?
            .label(format!("cluster {c} ({n})"))
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, col.filled()));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).label_font((FONT, 14)).background_style(WHITE.mix(0.85)).border_style(BLACK).draw().map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Heat map of an `n × n` similarity matrix (row 0 at the top), axis ticks in
/// isovalues, selected isovalues marked with red ticks and numbered in order.
pub fn heatmap(path: &Path, title: &str, sim: &[f64], values: &[f64], selected: &[usize]) -> Result<(), AnalysisError> {
    fonts();
    let e = plot_err(path);
    let n = values.len();
    if n == 0 || sim.len() != n * n {
        return Err(AnalysisError::Plot { path: path.to_owned(), msg: "matrix does not match the isovalues".into() });
    }
    let root = BitMapBackend::new(path, (820, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let (main, bar) = root.split_horizontally(720);
    let (lo, hi) = (values[0], values[n - 1]);
    let step = (hi - lo) / n.max(2).saturating_sub(1) as f64;
    let (a, b) = (lo - 0.5 * step, hi + 0.5 * step);
    // Colour scale over the off-diagonal range, so structure is visible even when all values are high.
    let off: Vec<f64> = (0..n * n).filter(|p| p / n != p % n).map(|p| sim[p]).collect();
    let smin = off.iter().copied().fold(f64::INFINITY, f64::min).min(1.0);
    let smax = 1.0f64;
    let smin = if smin.is_finite() && smin < smax { smin } else { smax - 1.0 };
    let norm = |v: f64| (v - smin) / (smax - smin);
    let mut chart = ChartBuilder::on(&main).caption(title, (FONT, 20)).margin(12).x_label_area_size(40).y_label_area_size(56).build_cartesian_2d(a..b, b..a).map_err(&e)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 13))
        .x_desc("isovalue")
        .y_desc("isovalue")
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(&e)?;
    chart
        .draw_series((0..n * n).map(|p| {
            let (i, j) = (p / n, p % n);
            let (x, y) = (values[j], values[i]);
            Rectangle::new([(x - 0.5 * step, y - 0.5 * step), (x + 0.5 * step, y + 0.5 * step)], heat_colour(norm(sim[p])).filled())
        }))
        .map_err(&e)?;
    for (rank, &s) in selected.iter().enumerate() {
        let v = values[s];
        let red = RGBColor(220, 20, 20);
        chart.draw_series(std::iter::once(Rectangle::new([(v - 0.5 * step, v - 0.5 * step), (v + 0.5 * step, v + 0.5 * step)], red.stroke_width(3)))).map_err(&e)?;
        chart.draw_series(std::iter::once(Text::new(format!("{}: {v:.2}", rank + 1), (v + 0.6 * step, v - 0.6 * step), (FONT, 15).into_font().color(&WHITE)))).map_err(&e)?;
    }
    // Colour bar.
    let mut cb = ChartBuilder::on(&bar).margin_top(48).margin_bottom(52).margin_right(8).y_label_area_size(48).build_cartesian_2d(0.0..1.0, smin..smax).map_err(&e)?;
    cb.configure_mesh().disable_mesh().disable_x_axis().label_style((FONT, 12)).y_label_formatter(&|v| format!("{v:.2}")).draw().map_err(&e)?;
    let steps = 100;
    cb.draw_series((0..steps).map(|s| {
        let v0 = smin + (smax - smin) * s as f64 / steps as f64;
        let v1 = smin + (smax - smin) * (s + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, v0), (1.0, v1)], heat_colour(norm(0.5 * (v0 + v1))).filled())
    }))
    .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Dendrogram of the last `show` merges (the top of the tree), leaves in tree
/// order, branches coloured by the cluster of the `k`-cut they fall in.
pub fn dendrogram(path: &Path, title: &str, den: &super::cluster::Dendrogram, labels: &[usize], show: usize) -> Result<(), AnalysisError> {
    fonts();
    let e = plot_err(path);
    let n = den.n;
    if n < 2 || den.merges.len() + 1 != n || labels.len() != n {
        return Err(AnalysisError::Plot { path: path.to_owned(), msg: "dendrogram and labels do not match".into() });
    }
    // Collapse everything below the top `show` merges into leaves ("truncated" dendrogram).
    let show = show.clamp(1, n - 1);
    let first_shown = n - 1 - show;
    let node_size = |c: usize| if c < n { 1 } else { den.merges[c - n].size };
    // Leaf order: depth-first from the root over shown merges.
    let mut leaves: Vec<usize> = Vec::new();
    let mut stack = vec![n + n - 2];
    while let Some(c) = stack.pop() {
        if c >= n && c - n >= first_shown {
            let m = &den.merges[c - n];
            stack.push(m.b);
            stack.push(m.a);
        } else {
            leaves.push(c);
        }
    }
    // A collapsed node's cluster: the label of any of its observations (cuts at or above it agree).
    fn any_obs(den: &super::cluster::Dendrogram, mut c: usize) -> usize {
        while c >= den.n {
            c = den.merges[c - den.n].a;
        }
        c
    }
    let mut pos = std::collections::HashMap::new();
    for (i, &l) in leaves.iter().enumerate() {
        pos.insert(l, (i as f64, 0.0f64));
    }
    let top = den.merges.last().map_or(1.0, |m| m.distance).max(1e-12);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart =
        ChartBuilder::on(&root).caption(title, (FONT, 20)).margin(12).x_label_area_size(40).y_label_area_size(56).build_cartesian_2d(-0.5..leaves.len() as f64 - 0.5, 0.0..top * 1.05).map_err(&e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .label_style((FONT, 12))
        .y_desc("merge distance")
        .x_desc("clusters (size)")
        .x_labels(leaves.len().min(40))
        .x_label_formatter(&|x| {
            let i = x.round() as usize;
            leaves.get(i).map_or(String::new(), |&l| format!("{}", node_size(l)))
        })
        .draw()
        .map_err(&e)?;
    for (s, m) in den.merges.iter().enumerate().skip(first_shown) {
        let (Some(&(xa, ya)), Some(&(xb, yb))) = (pos.get(&m.a), pos.get(&m.b)) else { continue };
        let y = m.distance;
        let (ca, cb) = (labels[any_obs(den, m.a)], labels[any_obs(den, m.b)]);
        let colour = |c: usize, other: usize| if c == other { cluster_colour(c) } else { RGBColor(60, 60, 60) };
        let joined = if ca == cb { cluster_colour(ca) } else { RGBColor(60, 60, 60) };
        chart.draw_series(std::iter::once(PathElement::new(vec![(xa, ya), (xa, y)], colour(ca, cb).stroke_width(2)))).map_err(&e)?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(xb, yb), (xb, y)], colour(cb, ca).stroke_width(2)))).map_err(&e)?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(xa, y), (xb, y)], joined.stroke_width(2)))).map_err(&e)?;
        pos.insert(n + s, (0.5 * (xa + xb), y));
    }
    root.present().map_err(&e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pngs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.png");
        scatter(&p, "t", &[[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], &[0, 1, 1]).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG");
        let h = d.path().join("h.png");
        heatmap(&h, "sim", &[1.0, 0.5, 0.5, 1.0], &[1.0, 2.0], &[1]).unwrap();
        assert_eq!(&std::fs::read(&h).unwrap()[1..4], b"PNG");
        let x = [0.0f32, 0.1, 5.0, 5.2];
        let den = crate::analysis::cluster::hierarchical(&x, 4, 1, crate::analysis::cluster::Method::Ward).unwrap();
        let dp = d.path().join("d.png");
        dendrogram(&dp, "ward", &den, &den.cut(2).unwrap(), 3).unwrap();
        assert_eq!(&std::fs::read(&dp).unwrap()[1..4], b"PNG");
        assert!(scatter(&p, "t", &[], &[]).is_err());
        assert!(heatmap(&h, "sim", &[1.0], &[1.0, 2.0], &[]).is_err());
    }

    #[test]
    fn colour_maps_are_total() {
        assert_eq!(heat_colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(heat_colour(1.0), RGBColor(253, 231, 37));
        assert_eq!(heat_colour(f64::NAN), heat_colour(0.0));
        assert_eq!(cluster_colour(10), cluster_colour(0));
    }
}
