//! The paper's Table 2 baseline, measured (run by tools/bench.py).
//!
//! A baseline model (`idlat train --baseline`: same architecture, no importance
//! map, no quantisation, no rate loss) stores its latents as plain f32, so its
//! latent size ratio is fixed by the architecture: LSR = voxels / stored latents.
//! This decodes a volume the way a reader would (each block's own latent core,
//! the ring from its neighbours' cores, synthesis crops the core) and prints one
//! JSON line: PSNR, wPSNR under an optional importance map, LSR and seconds.
//!
//! Usage: idlat-bench-baseline MODEL.safetensors VOLUME.raw XxYxZ [MAP.raw]

use idlat::codec::blocks::{crop_core, extract_window, latent_window, scatter, Norm};
use idlat::codec::engine::{select_device, DeviceChoice, Engine};
use idlat::codec::modelfile::ModelFile;
use idlat::format::{BlockGrid, BlockId};
use idlat::io::{read_volume, ReadOptions};
use idlat::metrics::quality;
use idlat::volume::{parse_dims, value_range};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn run(args: &[String]) -> Result<String, String> {
    let [model, raw, dims, rest @ ..] = args else {
        return Err("usage: idlat-bench-baseline MODEL.safetensors VOLUME.raw XxYxZ [MAP.raw]".into());
    };
    // Raw f32 bricks of the given dims, read (and size-checked) as `pack` reads them.
    let opts = ReadOptions { dims: Some(parse_dims(dims)?), ..Default::default() };
    let read = |p: &str| read_volume(Path::new(p), &opts).map(|v| v.data).map_err(|e| e.to_string());
    let dims = opts.dims.expect("set above");
    let n = dims[0] * dims[1] * dims[2];
    let data = read(raw)?;
    let imp = rest.first().map(|m| read(m)).transpose()?;
    let mf = ModelFile::load(Path::new(model)).map_err(|e| e.to_string())?;
    if mf.meta.get("baseline").map(String::as_str) != Some("true") {
        return Err(format!("{model} is not a baseline model (train one with `idlat train --baseline`)"));
    }
    let engine = Engine::load(&mf, select_device(DeviceChoice::Auto)?)?;
    let p = mf.profile.clone();
    let t = Instant::now();
    let (lo, hi) = value_range(&data);
    let norm = Norm::from_range(lo, hi);
    let xn: Vec<f32> = data.iter().map(|&v| norm.forward(v)).collect();
    let g = BlockGrid::cubic(dims, p.core);
    let (counts, nb) = (g.counts(), g.len());
    let coords = |id: usize| g.coords(BlockId(id as u64));
    let (w, l, h, lw) = (p.window(), p.latent_core(), p.latent_halo, p.latent_window());
    let zero_imp = vec![0f32; w * w * w];
    // Analysis: unquantised latent cores, the only thing the baseline stores.
    let mut cores: Vec<Vec<f32>> = Vec::with_capacity(nb);
    for id in 0..nb {
        let start = coords(id).map(|c| (c * p.core) as isize - p.halo_vox as isize);
        let mut win = vec![0f32; w * w * w];
        extract_window(&xn, dims, start, w, &mut win);
        cores.push(engine.analyse(&win, &zero_imp, 1).0);
    }
    // Synthesis from stored cores, with the latent ring from neighbours.
    let mut rec = vec![0f32; n];
    let mut lwin = vec![0f32; p.m * lw * lw * lw];
    for id in 0..nb {
        let b = coords(id);
        latent_window(b, counts, p.m, l, h, |c| cores.get(g.id(c).0 as usize).map(Vec::as_slice), &mut lwin);
        let out = engine.synthesise(&lwin, 1);
        let (o, s) = g.extent(BlockId(id as u64));
        let block: Vec<f32> = crop_core(&out, p.core, s).into_iter().map(|v| norm.inverse(v)).collect();
        scatter(&mut rec, dims, o, s, &block);
    }
    let secs = t.elapsed().as_secs_f64();
    let q = quality(&data, &rec, imp.as_deref(), None);
    let lsr = n as f64 / (nb * p.m * l * l * l) as f64;
    Ok(format!("{{\"psnr\": {:.4}, \"wpsnr\": {:.4}, \"lsr\": {:.4}, \"seconds\": {:.3}, \"profile\": \"{}\"}}", q.psnr, q.wpsnr, lsr, secs, p.name))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idlat-bench-baseline: {e}");
            ExitCode::from(2)
        }
    }
}
