//! `idlat tsne`: 2-D t-SNE projection of latent vectors, coloured by cluster
//! (the paper's latent space view, section 5.4 and Fig. 9).

use super::cluster::{check_outputs, load};
use super::CmdResult;
use crate::analysis::cluster::{self, Affinity, Method};
use crate::analysis::table::Unit;
use crate::analysis::tsne::{self, TsneOptions};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Project latent vectors (from `idlat latents`) to 2-D with t-SNE; scatter plot by cluster.
///
/// Colours come from --labels (a labels.csv or the output directory of `idlat
/// cluster`, same --unit) or, without it, from clustering here with --method/--k.
/// Writes OUTPUT.csv (ux,uy,uz,label,x,y) and, with --png, the scatter plot.
/// The projection is reproducible for a --seed.
///
/// Example:
///   idlat latents vortex.idl -o lat.npy
///   idlat cluster lat.npy --k 4 -o clusters
///   idlat tsne lat.npy --labels clusters -o tsne.csv --png tsne.png
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Latent table from `idlat latents` (.npy).
    pub input: PathBuf,
    /// Projection as CSV: ux,uy,uz (block or cell coordinates), label, x, y.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Scatter plot (PNG).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Vectors to project: whole blocks (the paper) or latent cells.
    #[arg(long, value_parser = super::common::choice::<Unit>(), default_value_t = Unit::Block)]
    pub unit: Unit,
    /// Cluster labels: labels.csv of `idlat cluster`, or its output directory.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Without --labels: clustering method for the colours.
    #[arg(long, value_parser = super::common::choice::<Method>(), default_value_t = Method::Ward)]
    pub method: Method,
    /// Without --labels: number of clusters.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// t-SNE perplexity (lowered to (N - 1) / 3 for few vectors).
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f32,
    /// Optimisation iterations.
    #[arg(long, default_value_t = 1000)]
    pub epochs: usize,
    /// Seed of the initial layout (the projection is reproducible for a seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Grid sidecar (default: INPUT with extension .json).
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

/// Reads labels.csv (ux,uy,uz,label) and matches it row by row to `coords`.
fn read_labels(path: &std::path::Path, coords: &[[u32; 3]]) -> anyhow::Result<Vec<usize>> {
    let p = if path.is_dir() { path.join("labels.csv") } else { path.to_owned() };
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading labels {}", p.display()))?;
    let mut labels = Vec::with_capacity(coords.len());
    for (i, line) in text.lines().skip(1).filter(|l| !l.trim().is_empty()).enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Option<Vec<u64>> = f.iter().map(|v| v.parse().ok()).collect();
        let Some(v) = parsed.filter(|v| v.len() == 4) else { anyhow::bail!("{} line {}: expected ux,uy,uz,label", p.display(), i + 2) };
        let want = coords.get(i).with_context(|| format!("{}: more rows than the latent table has vectors ({})", p.display(), coords.len()))?;
        anyhow::ensure!(
            v[..3] == [want[0] as u64, want[1] as u64, want[2] as u64],
            "{} line {}: unit ({},{},{}) but the table's row {i} is {want:?} (labels from another table or --unit?)",
            p.display(),
            i + 2,
            v[0],
            v[1],
            v[2]
        );
        anyhow::ensure!(v[3] < 1000, "{} line {}: label {} is implausibly large", p.display(), i + 2, v[3]);
        labels.push(v[3] as usize);
    }
    anyhow::ensure!(labels.len() == coords.len(), "{}: {} labels for {} vectors", p.display(), labels.len(), coords.len());
    Ok(labels)
}

pub fn run(args: Args) -> CmdResult {
    let t0 = std::time::Instant::now();
    let mut targets = vec![args.output.clone()];
    targets.extend(args.png.clone());
    check_outputs(&targets, args.force)?;
    let (_, units) = load(&args.input, args.meta.as_deref(), args.unit)?;
    let n = units.len();
    let labels = match &args.labels {
        Some(p) => read_labels(p, &units.coords)?,
        None => {
            anyhow::ensure!(args.k >= 1 && args.k <= n, "--k {} must be between 1 and the number of vectors ({n})", args.k);
            match args.method {
                Method::Spectral => cluster::spectral(&units.values, n, units.dim, args.k, Affinity::Gauss, args.seed)?,
                m => cluster::hierarchical(&units.values, n, units.dim, m)?.cut(args.k)?,
            }
        }
    };
    let opts = TsneOptions { perplexity: args.perplexity, epochs: args.epochs, seed: args.seed };
    let used = tsne::usable_perplexity(args.perplexity, n);
    if used < args.perplexity {
        eprintln!("perplexity lowered to {used:.1} for {n} vectors");
    }
    let emb = tsne::project(&units.values, n, units.dim, opts)?;
    let mut csv = String::from("ux,uy,uz,label,x,y\n");
    for ((c, l), p) in units.coords.iter().zip(&labels).zip(&emb) {
        csv.push_str(&format!("{},{},{},{l},{},{}\n", c[0], c[1], c[2], p[0], p[1]));
    }
    std::fs::write(&args.output, csv).with_context(|| format!("writing {}", args.output.display()))?;
    if let Some(png) = &args.png {
        let title = format!("t-SNE of {n} {} latent vectors", args.unit);
        crate::analysis::plot::scatter(png, &title, &emb, &labels)?;
    }
    println!("{}: {n} vectors projected in {:.2} s{}", args.output.display(), t0.elapsed().as_secs_f64(), args.png.as_ref().map_or(String::new(), |p| format!(", plot {}", p.display())));
    Ok(ExitCode::SUCCESS)
}
