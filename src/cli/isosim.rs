//! `idlat isosim`: isosurface similarity maps and representative isovalues
//! from importance-driven latents, against Bruckner and Möller's distance
//! fields plus mutual information (paper section 6.4.2, Table 3).

use super::common::{DeviceArg, InputArgs, LatentUnits};
use super::CmdResult;
use crate::analysis::isosim;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Isosurface similarity map and representative isovalues from latents (paper 6.4.2).
///
/// For each of N isovalues the volume is encoded (in memory, no container) under
/// a value-based importance map centred on it; the concatenated quantised
/// latents of all blocks represent that isosurface, and the map is their cosine
/// similarity. The baseline is Bruckner and Möller's method: distance fields to
/// each isosurface, normalised mutual information of their joint histograms.
/// Both pick representative isovalues with Bruckner and Möller's algorithm, and
/// both are timed (representation, similarity). Writes into DIR:
///   similarity-idlat.csv/.png, similarity-baseline.csv/.png, isosim.json
///
/// Example (the paper's Vortex case study):
///   idlat isosim vorts01.data --dims 128x128x128 --isovalues 1:11:20 -o isosim
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Input volume (any format `pack` reads).
    pub input: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    /// Isovalues A:B:N: N values from A to B, all inside the data range.
    #[arg(long)]
    pub isovalues: String,
    /// Output directory (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Importance spec per isovalue; {v} is the isovalue, {w} the --width.
    #[arg(long, default_value = "near:{v},w={w}")]
    pub importance: String,
    /// Width of the value-based map (default: the isovalue spacing).
    #[arg(long)]
    pub width: Option<f64>,
    /// Number of representative isovalues to select.
    #[arg(long, default_value_t = 4)]
    pub select: usize,
    /// Plain cosine of the latents (default: cosine after subtracting the mean over isovalues).
    #[arg(long)]
    pub no_centre: bool,
    /// Histogram bins per distance field (baseline).
    #[arg(long, default_value_t = 128)]
    pub bins: usize,
    /// Skip the distance-field baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Model file (default: the shipped model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the encoder runs: auto (GPU if present), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Windows per network batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Units of the latents compared: `step` (y_hat over each block's
    /// quantisation step, the paper's importance-driven latents) or `value`.
    #[arg(long, value_enum, default_value_t = LatentUnits::Step)]
    pub units: LatentUnits,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

/// One method's outcome.
#[derive(serde::Serialize)]
struct Outcome {
    method: &'static str,
    representation_seconds: f64,
    similarity_seconds: f64,
    /// Selected isovalues in the order chosen.
    selected: Vec<f64>,
    selected_index: Vec<usize>,
    /// Largest |S - Sᵀ| and |diag - 1| (both 0 by construction).
    asymmetry: f64,
    diagonal_error: f64,
    #[serde(skip)]
    matrix: Vec<f64>,
}

fn write_matrix(path: &std::path::Path, values: &[f64], m: &[f64]) -> anyhow::Result<()> {
    let n = values.len();
    let mut s = String::from("isovalue");
    for v in values {
        s.push_str(&format!(",{v}"));
    }
    s.push('\n');
    for i in 0..n {
        s.push_str(&values[i].to_string());
        for j in 0..n {
            s.push_str(&format!(",{}", m[i * n + j]));
        }
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

fn finish(method: &'static str, rep: f64, sim: f64, matrix: Vec<f64>, values: &[f64], count: usize) -> anyhow::Result<Outcome> {
    let n = values.len();
    let idx = isosim::select_representatives(&matrix, n, count)?;
    let (asymmetry, diagonal_error) = isosim::asymmetry(&matrix, n);
    Ok(Outcome { method, representation_seconds: rep, similarity_seconds: sim, selected: idx.iter().map(|&i| values[i]).collect(), selected_index: idx, asymmetry, diagonal_error, matrix })
}

pub fn run(args: Args) -> CmdResult {
    let values = isosim::parse_isovalues(&args.isovalues)?;
    let n = values.len();
    anyhow::ensure!(args.select >= 1 && args.select <= n, "--select {} must be between 1 and the number of isovalues ({n})", args.select);
    anyhow::ensure!(args.importance.contains("{v}"), "--importance '{}' must contain {{v}} (the isovalue)", args.importance);
    let vol = crate::io::read_volume(&args.input, &args.read.read_options()?)?;
    let (lo, hi) = vol.range();
    if let Some(v) = values.iter().find(|&&v| v < lo as f64 || v > hi as f64) {
        anyhow::bail!("isovalue {v} is outside the data range {lo}..{hi} of {}", args.input.display());
    }
    let width = args.width.unwrap_or((values[n - 1] - values[0]) / (n - 1) as f64);
    anyhow::ensure!(width > 0.0 && width.is_finite(), "--width {width} must be positive");
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let out = |name: &str| args.output.join(name);
    let mut targets = vec![out("isosim.json"), out("similarity-idlat.csv"), out("similarity-idlat.png")];
    if !args.no_baseline {
        targets.extend([out("similarity-baseline.csv"), out("similarity-baseline.png")]);
    }
    super::cluster::check_outputs(&targets, args.force)?;

    let mut outcomes = Vec::new();
    let (reps, t_rep) = latent_representations(&args, &vol, &values, width)?;
    let t = std::time::Instant::now();
    let m = isosim::cosine_matrix(&reps, !args.no_centre)?;
    outcomes.push(finish("idlat", t_rep, t.elapsed().as_secs_f64(), m, &values, args.select)?);
    if !args.no_baseline {
        let t = std::time::Instant::now();
        let fields: Vec<isosim::BinnedField> = values.iter().map(|&v| isosim::BinnedField::new(&vol.data, vol.dims(), vol.info.spacing, v, args.bins)).collect::<Result<_, _>>()?;
        let t_rep = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let m = isosim::nmi_matrix(&fields);
        outcomes.push(finish("bruckner-moller", t_rep, t.elapsed().as_secs_f64(), m, &values, args.select)?);
    }
    for o in &outcomes {
        let (csv, png) = if o.method == "idlat" { ("similarity-idlat.csv", "similarity-idlat.png") } else { ("similarity-baseline.csv", "similarity-baseline.png") };
        write_matrix(&out(csv), &values, &o.matrix)?;
        let title = if o.method == "idlat" { "IDLat latents: cosine similarity" } else { "Bruckner & Möller: distance-field NMI" };
        crate::analysis::plot::heatmap(&out(png), title, &o.matrix, &values, &o.selected_index)?;
    }
    let j = serde_json::json!({
        "input": args.input, "dims": vol.dims(), "isovalues": values, "importance": args.importance, "width": width,
        "centred_cosine": !args.no_centre, "bins": args.bins, "methods": outcomes,
    });
    std::fs::write(out("isosim.json"), serde_json::to_string_pretty(&j)?)?;
    println!("{} isovalues {:.3}..{:.3} of {} ({:?}):", n, values[0], values[n - 1], args.input.display(), vol.dims());
    println!("{:<16} {:>12} {:>12}  selected isovalues", "method", "rep (s)", "sim (s)");
    for o in &outcomes {
        let sel: Vec<String> = o.selected.iter().map(|v| format!("{v:.2}")).collect();
        println!("{:<16} {:>12.3} {:>12.4}  {}", o.method, o.representation_seconds, o.similarity_seconds, sel.join(", "));
    }
    println!("→ {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// The concatenated latents of every neural block under each isovalue's
/// importance map, and the seconds this took (importance maps included).
#[cfg(feature = "torch")]
fn latent_representations(args: &Args, vol: &crate::volume::Volume, values: &[f64], width: f64) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    use crate::codec::blocks::Norm;
    use crate::codec::modelfile::{default_model_path, ModelFile};
    use crate::codec::pipeline::{BlockData, Codec, EncodeOptions};
    use rayon::prelude::*;
    let path = match &args.model {
        Some(p) => p.clone(),
        None => default_model_path().map_err(anyhow::Error::msg).context("no --model given and the shipped default model was not found")?,
    };
    let model = ModelFile::load(&path).map_err(anyhow::Error::msg).with_context(|| format!("model {}", path.display()))?;
    let codec = Codec::load(model, super::common::device(args.device)?).map_err(anyhow::Error::msg)?;
    let t = std::time::Instant::now();
    let (lo, hi) = vol.range();
    let norm = Norm::from_range(lo, hi);
    let ctx = crate::importance::Context::single(vol);
    let mut reps = Vec::with_capacity(values.len());
    let mut neural_ids: Option<Vec<usize>> = None;
    for &v in values {
        let spec_text = args.importance.replace("{v}", &v.to_string()).replace("{w}", &width.to_string());
        let spec = crate::importance::parse(&spec_text).map_err(|e| anyhow::anyhow!("--importance for isovalue {v}: {e}"))?;
        let imp = crate::importance::compute(&spec, &ctx)?;
        let mut blocks: Vec<(usize, BlockData)> = Vec::new();
        codec.encode_volume(&vol.data, vol.dims(), &imp, norm, EncodeOptions { batch: args.batch.max(1), ..Default::default() }, |id, d| {
            blocks.push((id, d));
            Ok::<_, anyhow::Error>(())
        })?;
        let ids: Vec<usize> = blocks.iter().filter(|(_, d)| d.streams().is_some()).map(|(id, _)| *id).collect();
        // Which blocks are neural depends on the data only; check it anyway.
        match &neural_ids {
            None => neural_ids = Some(ids),
            Some(prev) => anyhow::ensure!(*prev == ids, "blocks coded differently across isovalues"),
        }
        let lat: Vec<Vec<f32>> = blocks
            .par_iter()
            .filter_map(|(id, d)| d.streams().map(|s| (id, s)))
            .map(|(id, s)| codec.latents(s.z, s.y, s.levels).map(|l| args.units.of(&l)).map_err(|e| anyhow::anyhow!("block {id}: {e}")))
            .collect::<anyhow::Result<_>>()?;
        reps.push(lat.concat());
    }
    anyhow::ensure!(reps.first().is_some_and(|r| !r.is_empty()), "the volume has no neurally coded block (constant data?): no latents to compare");
    Ok((reps, t.elapsed().as_secs_f64()))
}

#[cfg(not(feature = "torch"))]
fn latent_representations(_: &Args, _: &crate::volume::Volume, _: &[f64], _: f64) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    anyhow::bail!("this build has no neural codec (built without the `torch` feature)")
}
