//! Codec speed benchmark (run by tools/bench.sh): synthesis and analysis
//! throughput of each profile on this machine, in MB/s of f32 voxels, plus the
//! fast/paper ratio measured in the same run. Untrained weights unless a model
//! file per profile is given: speed does not depend on the weight values.

use idlat::codec::engine::{describe, select_device, DeviceChoice, Engine};
use idlat::codec::net;
use idlat::codec::profile::Profile;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let device = select_device(args.get(1).map(|s| s.parse().expect("device")).unwrap_or(DeviceChoice::Auto)).expect("device");
    let budget = 3.0; // seconds per measurement
    println!("device: {}", describe(device));
    let mut synth = BTreeMap::new();
    for p in [Profile::fast(), Profile::paper()] {
        let mf = net::untrained(&p, 1);
        let e = Engine::load(&mf, device).expect("load");
        let batch = (32768 / p.core.pow(3)).max(1) * 8; // same voxel count per batch for both
        let lw = p.latent_window();
        let win = vec![0.1f32; batch * p.m * lw * lw * lw];
        e.synthesise(&win, batch); // warm-up
        let t = Instant::now();
        let mut n = 0usize;
        while t.elapsed().as_secs_f64() < budget {
            e.synthesise(&win, batch);
            n += batch;
        }
        let s = t.elapsed().as_secs_f64();
        let mbs = (n * p.core.pow(3) * 4) as f64 / s / 1e6;
        let w = p.window();
        let x = vec![0.5f32; batch * w * w * w];
        let t = Instant::now();
        let mut na = 0usize;
        while t.elapsed().as_secs_f64() < budget {
            e.analyse(&x, &x, batch);
            na += batch;
        }
        let amb = (na * p.core.pow(3) * 4) as f64 / t.elapsed().as_secs_f64() / 1e6;
        println!("profile {:6} core {:2}^3  synthesis {:7.2} MB/s  analysis {:7.2} MB/s  (batch {batch})", p.name, p.core, mbs, amb);
        synth.insert(p.name.clone(), mbs);
    }
    println!("synthesis speed ratio fast/paper: {:.1}x", synth["fast"] / synth["paper"]);
}
