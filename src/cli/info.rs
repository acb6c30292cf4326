//! `idlat info`.

use super::CmdResult;
use crate::format::{BlockId, BlockKind, Container};
use std::path::PathBuf;
use std::process::ExitCode;

/// Describe a container: volumes, blocks, model, sizes (--json for machines).
///
/// On an HDF5 or NetCDF file, lists its datasets/variables with shape and type,
/// and which are volumes (3-D) or time series (4-D, time first) that pack reads
/// as FILE:NAME.
///
/// `--device` prints which compute device decoding would use (no file needed).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container file, or an HDF5/NetCDF file to list.
    #[arg(required_unless_present = "device")]
    pub input: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
    /// Print the compute device decoding would use.
    #[arg(long)]
    pub device: bool,
}

pub fn run(args: Args) -> CmdResult {
    if args.device {
        println!("device: {}", crate::codec::device_description());
        if args.input.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let path = args.input.expect("clap requires it");
    if let Some(kind) = crate::io::sci::detect(&path) {
        return list_sci(&path, kind, args.json);
    }
    let c = Container::open(&path)?;
    let m = c.meta();
    let mut vols = Vec::new();
    for (v, vm) in c.volumes() {
        let mut kinds = [0u64; 5];
        for b in 0..vm.block_count {
            if let Some(k) = c.entry(v, BlockId(b)).ok().and_then(|e| BlockKind::from_u8(e.kind)) {
                kinds[k as usize] += 1;
            }
        }
        let stored = c.volume_stored_bytes(v)?;
        let voxels: u64 = vm.info.dims.iter().map(|&d| d as u64).product();
        vols.push(serde_json::json!({
            "name": vm.info.name, "dims": vm.info.dims, "dtype": vm.info.dtype, "endian": vm.info.endian,
            "spacing": vm.info.spacing, "origin": vm.info.origin, "missing": vm.info.missing,
            "value_range": vm.value_range, "block": vm.block, "blocks": vm.block_count,
            "kinds": {"constant": kinds[0], "raw": kinds[1], "lossless": kinds[2], "neural": kinds[3], "wavelet": kinds[4]},
            "stored_bytes": stored, "ratio_vs_f32": (voxels * 4) as f64 / stored as f64,
            "ratio_vs_original": (voxels * vm.info.dtype.size() as u64) as f64 / stored as f64,
            "importance": vm.importance, "codec": vm.codec,
        }));
    }
    let out = serde_json::json!({
        "file": path.display().to_string(), "file_bytes": c.file_len(), "format_version": format!("1.{}", c.minor_version()),
        "writer": m.writer, "model": {"hash": m.model.hash, "profile": m.model.profile, "embedded": m.model.embedded, "section_bytes": c.model_section_len()},
        "attributes": m.attributes, "volumes": vols,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: idlat container v1.{} ({} bytes, written by {})", path.display(), c.minor_version(), c.file_len(), m.writer);
    println!(
        "model: {} profile {} ({})",
        if m.model.hash.is_empty() { "none" } else { &m.model.hash },
        m.model.profile,
        if m.model.embedded { format!("embedded, {} bytes", c.model_section_len()) } else { "referenced by hash".into() }
    );
    for v in &vols {
        println!(
            "  {}: {}x{}x{} {} spacing {} origin {}, blocks {} ({}), stored {} bytes, ratio {:.1} vs f32, {:.1} vs original{}",
            v["name"].as_str().unwrap_or(""),
            v["dims"][0],
            v["dims"][1],
            v["dims"][2],
            v["dtype"].as_str().unwrap_or(""),
            v["spacing"],
            v["origin"],
            v["blocks"],
            v["kinds"],
            v["stored_bytes"],
            v["ratio_vs_f32"].as_f64().unwrap_or(0.0),
            v["ratio_vs_original"].as_f64().unwrap_or(0.0),
            v["importance"].as_str().map(|s| format!(", importance {s}")).unwrap_or_default()
        );
        if let Some(b) = v["codec"].get("error_bound") {
            let graded = b["graded"].as_bool().unwrap_or(false);
            println!(
                "    error bound: |x - x̂| <= {}{}",
                b["abs"].as_f64().unwrap_or(f64::NAN) as f32,
                if graded {
                    format!(" / importance (graded), capped at {}", b["max"].as_f64().map_or("none".into(), |m| (m as f32).to_string()))
                } else {
                    format!(" where importance >= {}", b["min_importance"].as_f64().unwrap_or(f64::NAN) as f32)
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The datasets/variables of an HDF5 or NetCDF file, and what pack makes of each.
fn list_sci(path: &std::path::Path, kind: crate::io::sci::Kind, json: bool) -> CmdResult {
    use crate::io::sci::Shape;
    let entries = crate::io::sci::list(path, kind)?;
    if json {
        let items: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "shape": e.shape, "dim_names": e.dim_names, "dtype": e.dtype,
                    "volume_dims": e.dims(),
                    "steps": match e.shape_kind { Ok(Shape::Series(n)) => Some(n), _ => None },
                    "readable": e.shape_kind.is_ok(),
                    "reason": e.shape_kind.as_ref().err(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"file": path.display().to_string(), "format": kind.name(), "datasets": items}))?);
        return Ok(ExitCode::SUCCESS);
    }
    let ok = entries.iter().filter(|e| e.shape_kind.is_ok()).count();
    let what = if kind == crate::io::sci::Kind::Hdf5 { "dataset" } else { "variable" };
    println!("{}: {} file, {} {what}{} ({ok} readable as volumes: pack {}:NAME)", path.display(), kind.name(), entries.len(), if entries.len() == 1 { "" } else { "s" }, path.display());
    for e in &entries {
        println!("  {}", e.describe());
    }
    Ok(ExitCode::SUCCESS)
}
