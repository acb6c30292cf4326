//! `idlat cluster`: cluster the latent vectors of `idlat latents` (paper
//! section 5.4) and lay the labels over the volume for ParaView.

use super::CmdResult;
use crate::analysis::cluster::{self, Affinity, Method};
use crate::analysis::table::{self, LatentTable, LatentsMeta, Unit};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Cluster per-block latent vectors (from `idlat latents`) without decoding any voxel.
///
/// Reads LATENTS.npy and its sidecar LATENTS.json (both written by `idlat
/// latents`; the sidecar names the grid and the container). Writes into DIR:
///   labels.csv          one row per vector: ux,uy,uz,label (unit coordinates)
///   labels.raw/.mhd     full-resolution label volume (f32, -1 where a block has
///                       no latents: constant or lossless); open it in ParaView
///   dendrogram.json     merges (scipy convention: cluster n+s is made by merge s)
///   dendrogram.png      the top of the tree, coloured by the k-cut
///   summary.json        method, k, cluster sizes
///   cluster-C.vti       with --select C: the decoded data of cluster C's blocks,
///                       the volume minimum elsewhere (needs the container)
///
/// Example:
///   idlat latents vortex.idl -o lat.npy
///   idlat cluster lat.npy --method ward --k 4 -o clusters --select 0
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Latent table from `idlat latents` (.npy).
    pub input: PathBuf,
    /// Output directory (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Clustering method: hierarchical linkage (kodama) or spectral.
    #[arg(long, value_parser = super::common::choice::<Method>(), default_value_t = Method::Ward)]
    pub method: Method,
    /// Number of clusters.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Vectors to cluster: whole blocks (the paper) or latent cells (stride³ voxels each).
    #[arg(long, value_parser = super::common::choice::<Unit>(), default_value_t = Unit::Block)]
    pub unit: Unit,
    /// Affinity of spectral clustering.
    #[arg(long, value_parser = super::common::choice::<Affinity>(), default_value_t = Affinity::Gauss)]
    pub affinity: Affinity,
    /// Seed of spectral clustering's k-means.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Grid sidecar (default: INPUT with extension .json).
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// The container the latents came from (default: the one the sidecar names);
    /// used by --select to decode the selected blocks.
    #[arg(long)]
    pub container: Option<PathBuf>,
    /// Also write cluster C's blocks as DIR/cluster-C.vti.
    #[arg(long)]
    pub select: Option<usize>,
    /// Model file for --select (default: the container's, found by hash).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

/// Loads a latent table, its sidecar and the vectors of `unit`.
pub fn load(input: &Path, meta: Option<&Path>, unit: Unit) -> anyhow::Result<(LatentsMeta, LatentTable)> {
    let table = LatentTable::read_npy(input)?;
    let mp = meta.map(Path::to_owned).unwrap_or_else(|| LatentsMeta::sidecar_path(input));
    if !mp.exists() {
        bail!(
            "{}: no grid sidecar; write the table with `idlat latents` (it writes {} beside it) or pass --meta",
            mp.display(),
            mp.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
    }
    let meta = LatentsMeta::read(&mp)?;
    let units = table.units(&meta, unit).with_context(|| format!("{} with {}", input.display(), mp.display()))?;
    Ok((meta, units))
}

/// Refuses to overwrite `paths` without --force, and special files (FIFOs,
/// devices, directories) even with it.
pub fn check_outputs(paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
    for p in paths {
        crate::io::atomic::check_target(p, force)?;
    }
    Ok(())
}

pub fn run(args: Args) -> CmdResult {
    let t0 = std::time::Instant::now();
    let (meta, units) = load(&args.input, args.meta.as_deref(), args.unit)?;
    let n = units.len();
    anyhow::ensure!(args.k >= 1 && args.k <= n, "--k {} must be between 1 and the number of vectors ({n} {}s)", args.k, args.unit);
    if let Some(c) = args.select {
        anyhow::ensure!(c < args.k, "--select {c}: clusters are numbered 0 to {}", args.k - 1);
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let out = |name: &str| args.output.join(name);
    let hier = args.method != Method::Spectral;
    let mut targets = vec![out("labels.csv"), out("labels.raw"), out("labels.mhd"), out("summary.json")];
    if hier {
        targets.extend([out("dendrogram.json"), out("dendrogram.png")]);
    }
    if let Some(c) = args.select {
        targets.push(out(&format!("cluster-{c}.vti")));
    }
    check_outputs(&targets, args.force)?;

    let (labels, den) = if hier {
        let den = cluster::hierarchical(&units.values, n, units.dim, args.method)?;
        (den.cut(args.k)?, Some(den))
    } else {
        (cluster::spectral(&units.values, n, units.dim, args.k, args.affinity, args.seed)?, None)
    };
    let elapsed = t0.elapsed().as_secs_f64();

    let mut csv = String::from("ux,uy,uz,label\n");
    for (c, l) in units.coords.iter().zip(&labels) {
        csv.push_str(&format!("{},{},{},{l}\n", c[0], c[1], c[2]));
    }
    std::fs::write(out("labels.csv"), csv)?;
    let lv: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let mut info = crate::volume::VolumeInfo::new("labels", meta.dims);
    info.spacing = meta.spacing;
    info.origin = meta.origin;
    let vol = crate::volume::Volume::new(info, table::paint(&meta, args.unit, &units.coords, &lv, -1.0));
    crate::io::write_raw_mhd(&out("labels.raw"), &vol)?;
    let mut sizes = vec![0usize; args.k];
    for &l in &labels {
        sizes[l] += 1;
    }
    if let Some(den) = &den {
        let j = serde_json::json!({ "method": args.method, "unit": args.unit.to_string(), "n": den.n, "merges": den.merges });
        std::fs::write(out("dendrogram.json"), serde_json::to_string(&j)?)?;
        crate::analysis::plot::dendrogram(&out("dendrogram.png"), &format!("{:?} linkage, {} {}s, k = {}", args.method, n, args.unit, args.k), den, &labels, 30.min(n - 1))?;
    }
    let summary = serde_json::json!({
        "input": args.input, "volume": meta.volume, "method": args.method, "k": args.k,
        "unit": args.unit.to_string(), "vectors": n, "dim": units.dim, "sizes": sizes, "seconds": elapsed,
    });
    std::fs::write(out("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    println!("{n} {}s of {} latents, {:?}: {} clusters of sizes {sizes:?} in {elapsed:.3} s → {}", args.unit, units.dim, args.method, args.k, args.output.display());
    if let Some(c) = args.select {
        let path = out(&format!("cluster-{c}.vti"));
        let members: Vec<[u32; 3]> = units.coords.iter().zip(&labels).filter(|(_, &l)| l == c).map(|(p, _)| *p).collect();
        write_selection(&args, &meta, &members, &path)?;
        println!("cluster {c}: {} {}s → {}", members.len(), args.unit, path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Decodes the blocks holding `members` and writes their voxels (the volume
/// minimum elsewhere, so isosurfaces and renderings show the cluster only).
fn write_selection(args: &Args, meta: &LatentsMeta, members: &[[u32; 3]], path: &Path) -> anyhow::Result<()> {
    let cpath = args.container.clone().unwrap_or_else(|| meta.container.clone());
    let c = std::sync::Arc::new(
        crate::format::Container::open(&cpath).with_context(|| format!("--select decodes the cluster's blocks from the container (pass --container if {} moved)", cpath.display()))?,
    );
    let v = c.find_volume(&meta.volume).with_context(|| format!("{}: no volume '{}'", cpath.display(), meta.volume))?;
    let vm = c.volume(v)?;
    // The latents' blocks are the container's (neural) or tile the container's (wavelet
    // tiles over 64³ have several analysis blocks each).
    let fits = (0..3).all(|a| vm.block[a] % meta.block[a] == 0);
    anyhow::ensure!(
        vm.info.dims == meta.dims && fits,
        "{}: volume '{}' has dims {:?} and blocks {:?}, the latents say {:?} and {:?}",
        cpath.display(),
        meta.volume,
        vm.info.dims,
        vm.block,
        meta.dims,
        meta.block
    );
    let grid = c.grid(v)?;
    let edge = table::unit_edge(meta, args.unit);
    let mut ids: Vec<usize> = members.iter().map(|m| grid.id([0, 1, 2].map(|a| m[a] as usize * edge[a] / vm.block[a])).0 as usize).collect();
    ids.sort_unstable();
    ids.dedup();
    let reader = super::common::reader(&c, args.model.as_deref(), super::common::DeviceArg::Auto, super::common::DECODE_BATCH)?;
    let ids: Vec<crate::format::BlockId> = ids.into_iter().map(|b| crate::format::BlockId(b as u64)).collect();
    let mut full = vec![meta.value_range.0; meta.dims.iter().product()];
    for piece in ids.chunks(crate::reader::PIECE_BLOCKS) {
        for (&id, b) in piece.iter().zip(reader.volume_by_id(v)?.read_blocks(piece)?) {
            let (o, s) = grid.extent(id);
            crate::format::grid::scatter(&mut full, meta.dims, o, s, &b);
        }
    }
    // Keep only the members' voxels (cells are smaller than the decoded blocks).
    let mask = table::paint(meta, args.unit, members, &vec![1.0; members.len()], 0.0);
    for (x, m) in full.iter_mut().zip(&mask) {
        if *m == 0.0 {
            *x = meta.value_range.0;
        }
    }
    let mut info = vm.info.clone();
    info.name = format!("cluster{}", args.select.unwrap_or(0));
    crate::io::write_volume(path, &crate::volume::Volume::new(info, full), None, true)?;
    Ok(())
}
