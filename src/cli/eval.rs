//! `idlat eval`: compare a container with the original data.

use super::common::{DeviceArg, InputArgs};
use super::CmdResult;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compare a container against the original data: ratio, PSNR, wPSNR, max error.
///
/// LSR = original bytes / stored bytes (payloads and index of that volume;
/// the model is excluded and its size reported separately). wMSE and wPSNR
/// follow the paper (eq. 13-14) with the importance map given here (default:
/// uniform, i.e. plain PSNR). Voxels marked missing (--missing) are left out.
/// The overall line sums squared errors and weights over every voxel of every
/// volume (PSNR over the value range of all volumes together); it is not an
/// average of per-volume PSNRs.
#[derive(clap::Args, Debug)]
pub struct Args {
    pub input: PathBuf,
    /// Original volumes, one per stored volume, in order (globs allowed).
    #[arg(long, required = true, num_args = 1..)]
    pub reference: Vec<String>,
    #[command(flatten)]
    pub read: InputArgs,
    /// Importance map for wMSE/wPSNR.
    #[arg(long, default_value = "uniform:1")]
    pub importance: String,
    /// Model file, if the container references one that is not installed.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    volume: String,
    original_bytes: u64,
    stored_bytes: u64,
    lsr: f64,
    #[serde(flatten)]
    quality: crate::metrics::Quality,
    decode_seconds: f64,
    /// The pack-time error bound checked against the pack-time importance map.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_bound: Option<crate::codec::bound::Report>,
}

/// The bound a volume was packed with, checked under the importance map the
/// packer used (its stored spec and rate-control scale).
fn bound_report(meta: &crate::format::VolumeMeta, orig: &crate::volume::Volume, rec: &[f32], valid: Option<&[bool]>, i: usize, n: usize) -> anyhow::Result<Option<crate::codec::bound::Report>> {
    let Some(b) = meta.codec.get("error_bound") else { return Ok(None) };
    let spec: crate::codec::bound::BoundSpec = serde_json::from_value(b.clone()).context("stored error bound")?;
    let text = meta.importance.as_deref().unwrap_or("uniform:0.5");
    let imp_spec = crate::importance::parse(text).map_err(|e| anyhow::anyhow!("stored importance spec: {e}"))?;
    let mut imp = crate::importance::compute(&imp_spec, &crate::importance::Context { volume: orig, others: &[], time_index: i, time_count: n, origin: [0; 3], whole: None })
        .with_context(|| format!("recomputing the pack-time importance map {text}"))?;
    if let Some(s) = meta.codec.get("importance_scale").and_then(|v| v.as_f64()) {
        crate::importance::apply_scale(&mut imp, s as f32);
    }
    Ok(Some(crate::codec::bound::report(&spec, &orig.data, rec, &imp, valid)))
}

pub fn run(args: Args) -> CmdResult {
    let c = std::sync::Arc::new(crate::format::Container::open(&args.input)?);
    #[cfg(feature = "torch")]
    super::common::passive_openmp_for(&c);
    let refs = crate::io::expand_inputs(&args.reference)?;
    let vols: Vec<_> = c.volumes().map(|(v, _)| v).collect();
    anyhow::ensure!(refs.len() == vols.len(), "{} reference files for {} stored volumes", refs.len(), vols.len());
    let spec = crate::importance::parse(&args.importance).map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = args.read.read_options()?;
    let reader = super::common::reader(&c, args.model.as_deref(), args.device, super::common::DECODE_BATCH)?;
    let one = |i: usize| -> anyhow::Result<(Row, crate::metrics::Sums)> {
        let (v, path) = (vols[i], &refs[i]);
        let meta = c.volume(v)?;
        let mut o = opts.clone();
        if o.missing.is_none() {
            o.missing = meta.info.missing;
        }
        let (orig, mask) = crate::io::read_volume_with_mask(path, &o).with_context(|| format!("reference {}", path.display()))?;
        anyhow::ensure!(orig.info.dims == meta.info.dims, "{}: dims {:?} differ from stored {:?}", path.display(), orig.info.dims, meta.info.dims);
        let ctx = crate::importance::Context { volume: &orig, others: &[], time_index: i, time_count: vols.len(), origin: [0; 3], whole: None };
        let imp = crate::importance::compute(&spec, &ctx)?;
        let t = std::time::Instant::now();
        let rec = reader.volume_by_id(v)?.read_all(|_, _| {})?.data;
        let decode_seconds = t.elapsed().as_secs_f64();
        let stored = c.volume_stored_bytes(v)?;
        let original = (orig.data.len() * meta.info.dtype.size()) as u64;
        let error_bound = bound_report(meta, &orig, &rec, mask.as_deref(), i, vols.len())?;
        let sums = crate::metrics::sums(&orig.data, &rec, Some(&imp), mask.as_deref());
        Ok((Row { volume: meta.info.name.clone(), original_bytes: original, stored_bytes: stored, lsr: original as f64 / stored as f64, quality: sums.quality(), decode_seconds, error_bound }, sums))
    };
    // Across MPI ranks each takes a run of volumes; rank 0 prints them all, the
    // overall sums merged in volume order (the figures one process prints).
    let Some((rows, total)) = volumes_over_ranks(vols.len(), one)? else { return Ok(ExitCode::SUCCESS) };
    let model_bytes = c.model_section_len();
    let (o, s): (u64, u64) = rows.iter().fold((0, 0), |a, r| (a.0 + r.original_bytes, a.1 + r.stored_bytes));
    let overall = total.quality();
    if args.json {
        let overall = serde_json::json!({
            "original_bytes": o,
            "stored_bytes": s,
            "lsr": o as f64 / s as f64,
            "lsr_with_model": o as f64 / (s + model_bytes) as f64,
            "voxels": overall.voxels,
            "value_range": overall.value_range,
            "mse": overall.mse,
            "psnr": overall.psnr,
            "wmse": overall.wmse,
            "wpsnr": overall.wpsnr,
            "max_abs_error": overall.max_abs_error,
        });
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "importance": spec.to_string(), "model_section_bytes": model_bytes, "volumes": rows, "overall": overall }))?);
    } else {
        println!("{:<20} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12}", "volume", "LSR", "PSNR", "wPSNR", "wMSE", "max|err|", "decode s");
        for r in &rows {
            println!("{:<20} {:>10.1} {:>9.2} {:>9.2} {:>9.3e} {:>12.4e} {:>12.2}", r.volume, r.lsr, r.quality.psnr, r.quality.wpsnr, r.quality.wmse, r.quality.max_abs_error, r.decode_seconds);
            if let Some(b) = &r.error_bound {
                println!(
                    "{:<20} error bound {:.4e}{}: {} bounded voxels, {:.3}% within, max error there {:.4e} ({:.3} of the bound)",
                    "",
                    b.bound,
                    if b.graded { " (graded)" } else { "" },
                    b.bounded_voxels,
                    b.share_within_pct,
                    b.max_error_bounded,
                    b.worst_fraction_of_bound
                );
            }
        }
        println!("{:<20} {:>10.1} {:>9.2} {:>9.2} {:>9.3e} {:>12.4e}", "overall", o as f64 / s as f64, overall.psnr, overall.wpsnr, overall.wmse, overall.max_abs_error);
        println!("overall LSR {:.1} (model excluded; with the {} embedded model bytes: {:.1}); importance {}", o as f64 / s as f64, model_bytes, o as f64 / (s + model_bytes) as f64, spec);
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates every volume (`one(i)`) in one process, or under MPI a contiguous run
/// of them per rank, gathered on rank 0; `None` on the other ranks. Returns the rows
/// in volume order and their sums merged in that order.
fn volumes_over_ranks(n: usize, one: impl Fn(usize) -> anyhow::Result<(Row, crate::metrics::Sums)>) -> anyhow::Result<Option<(Vec<Row>, crate::metrics::Sums)>> {
    let merge = |all: Vec<(Row, crate::metrics::Sums)>| {
        let total = all.iter().fold(crate::metrics::Sums::default(), |t, (_, s)| t.merge(s));
        (all.into_iter().map(|(r, _)| r).collect(), total)
    };
    if crate::dist::launched_ranks().is_none() {
        return Ok(Some(merge((0..n).map(one).collect::<anyhow::Result<_>>()?)));
    }
    #[cfg(not(feature = "mpi"))]
    return Err(crate::dist::no_mpi().into());
    #[cfg(feature = "mpi")]
    {
        let world = crate::dist::World::init().map_err(anyhow::Error::msg)?;
        let mine: anyhow::Result<Vec<(Row, crate::metrics::Sums)>> = crate::dist::share(n, world.rank(), world.size()).map(&one).collect();
        let mine = world.agree(mine.map_err(|e| format!("{e:#}")))?;
        let all = world.all_gather_bytes(&serde_json::to_vec(&mine)?);
        if world.rank() != 0 {
            return Ok(None);
        }
        let rows: Vec<Vec<(Row, crate::metrics::Sums)>> = all.iter().map(|b| serde_json::from_slice(b)).collect::<Result<_, _>>()?;
        Ok(Some(merge(rows.into_iter().flatten().collect())))
    }
}
