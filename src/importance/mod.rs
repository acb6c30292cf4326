//! Importance maps: per-voxel weights in [0, 1] that steer where bits go
//! (paper section 5.1.1, eq. 3 and 15-17). A map is described by a spec
//! (`spec.rs`, grammar in docs/IMPORTANCE.md) and computed over a volume.
//!
//! Invariant: every computed value is finite and in [0, 1].

pub mod edt;
pub mod spec;

pub use spec::{parse, Falloff, Spec, SpecError, ValueTest};

use crate::volume::Volume;
use rayon::prelude::*;

/// What a spec is evaluated against.
pub struct Context<'a> {
    pub volume: &'a Volume,
    /// Other volumes of the same pack, by name (for `of=NAME:…`).
    pub others: &'a [(&'a str, &'a Volume)],
    /// Position of this volume in its series (for `time:`).
    pub time_index: usize,
    pub time_count: usize,
    /// Where `volume` starts in the whole volume (voxels): a part of it (an MPI
    /// rank's slab, a streaming pack's tile, with the box `Spec::support` asks
    /// for), zeros for a whole volume.
    pub origin: [usize; 3],
    /// What the map over a part needs of the rest; `None`: `volume` is whole.
    pub whole: Option<&'a Whole>,
}

/// What a map over part of a volume needs to know of the whole volume, so that it
/// equals the whole map there (found by a pass over the parts: `maxima`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Whole {
    /// The finite value range (`Volume::range`), which `entropy` bins.
    pub range: (f32, f32),
    /// The maximum of each normalised leaf's raw value (`Spec::normalised`, in
    /// the spec's order), which `grad` and `var` divide by.
    pub maxima: Vec<f32>,
}

impl<'a> Context<'a> {
    pub fn single(volume: &'a Volume) -> Context<'a> {
        Context { volume, others: &[], time_index: 0, time_count: 1, origin: [0; 3], whole: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportanceError {
    #[error("of={0}: no volume of that name in this pack")]
    NoSuchVolume(String),
    #[error("of={name}: dims {got:?} differ from {want:?}")]
    DimsMismatch { name: String, got: [usize; 3], want: [usize; 3] },
    #[error("file:{path}: {msg}")]
    File { path: String, msg: String },
}

/// Multiplies by `s` and clamps into [0, 1] (rate control's global scale).
pub fn apply_scale(map: &mut [f32], s: f32) {
    map.par_iter_mut().for_each(|v| *v = (*v * s).clamp(0.0, 1.0));
}

/// Fraction of voxels above 0.5 and the mean.
pub fn summary(map: &[f32]) -> (f64, f64) {
    let n = map.len().max(1) as f64;
    let above = map.iter().filter(|&&v| v > 0.5).count() as f64 / n;
    let mean = map.iter().map(|&v| v as f64).sum::<f64>() / n;
    (above, mean)
}

fn clamp01(v: f64) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0) as f32
    }
}

fn map_values(vol: &Volume, f: impl Fn(f64) -> f64 + Sync) -> Vec<f32> {
    vol.data.par_iter().map(|&v| if v.is_finite() { clamp01(f(v as f64)) } else { 0.0 }).collect()
}

/// Voxel coordinates in voxel or world units.
fn coords(vol: &Volume, i: usize, world: bool, at: [usize; 3]) -> [f64; 3] {
    let [nx, ny, _] = vol.info.dims;
    let v = [(i % nx + at[0]) as f64, ((i / nx) % ny + at[1]) as f64, (i / (nx * ny) + at[2]) as f64];
    if world {
        [0, 1, 2].map(|a| vol.info.origin[a] + v[a] * vol.info.spacing[a])
    } else {
        v
    }
}

/// The largest value (0 for none; maps are never negative).
fn max_of(v: &[f32]) -> f32 {
    v.iter().cloned().fold(0f32, f32::max)
}

/// Normalises by `m`, the maximum over the whole volume (all-zero stays zero).
fn by_max(mut v: Vec<f32>, m: f32) -> Vec<f32> {
    if m > 0.0 {
        v.par_iter_mut().for_each(|x| *x /= m);
    }
    v
}

fn piecewise(points: &[(f64, f64)], x: f64) -> f64 {
    match points {
        [] => 0.0,
        [(_, y)] => *y,
        _ => {
            if x <= points[0].0 {
                return points[0].1;
            }
            for w in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                if x <= x1 {
                    return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
                }
            }
            points[points.len() - 1].1
        }
    }
}

/// Local mean and variance over a (2r+1)^3 window (clipped at the edges), by separable box sums.
fn local_variance(vol: &Volume, w: usize) -> Vec<f32> {
    let [nx, ny, nz] = vol.info.dims;
    let r = (w / 2) as isize;
    let src: Vec<f64> = vol.data.iter().map(|&v| if v.is_finite() { v as f64 } else { 0.0 }).collect();
    let box_pass = |a: &[f64], axis: usize| -> Vec<f64> {
        let dims = [nx, ny, nz];
        let stride = [1, nx, nx * ny][axis];
        let n = dims[axis] as isize;
        (0..a.len())
            .into_par_iter()
            .map(|i| {
                let c = ((i / stride) % dims[axis]) as isize;
                let (lo, hi) = ((c - r).max(0), (c + r).min(n - 1));
                let base = i as isize - c * stride as isize;
                (lo..=hi).map(|k| a[(base + k * stride as isize) as usize]).sum::<f64>() / (hi - lo + 1) as f64
            })
            .collect()
    };
    let sq: Vec<f64> = src.iter().map(|v| v * v).collect();
    let (mut m, mut m2) = (src, sq);
    for axis in 0..3 {
        m = box_pass(&m, axis);
        m2 = box_pass(&m2, axis);
    }
    m.iter().zip(&m2).map(|(a, b)| (b - a * a).max(0.0) as f32).collect()
}

/// Shannon entropy of the value histogram (bins over `range`, the whole
/// volume's) in non-overlapping w^3 tiles of the whole volume, / log2(bins);
/// `at`: where `vol` starts in it, so a part holding whole tiles gets their values.
fn local_entropy(vol: &Volume, w: usize, bins: usize, (lo, hi): (f32, f32), at: [usize; 3]) -> Vec<f32> {
    let [nx, ny, nz] = vol.info.dims;
    let span = (hi - lo).max(f32::MIN_POSITIVE) as f64;
    // Tile t of axis a covers the part's voxels [first(a, t), first(a, t + 1)).
    let first = |a: usize, t: usize| ((at[a] / w + t) * w).saturating_sub(at[a]).min(vol.info.dims[a]);
    let t = [0, 1, 2].map(|a| (at[a] + vol.info.dims[a]).div_ceil(w) - at[a] / w);
    let tiles: Vec<f32> = (0..t[0] * t[1] * t[2])
        .into_par_iter()
        .map(|ti| {
            let (tx, ty, tz) = (ti % t[0], (ti / t[0]) % t[1], ti / (t[0] * t[1]));
            let mut h = vec![0u32; bins];
            let mut n = 0u32;
            for z in first(2, tz)..first(2, tz + 1) {
                for y in first(1, ty)..first(1, ty + 1) {
                    for x in first(0, tx)..first(0, tx + 1) {
                        let v = vol.data[(z * ny + y) * nx + x];
                        if v.is_finite() {
                            let b = (((v - lo) as f64 / span) * bins as f64) as usize;
                            h[b.min(bins - 1)] += 1;
                            n += 1;
                        }
                    }
                }
            }
            let e: f64 = h
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = c as f64 / n as f64;
                    -p * p.log2()
                })
                .sum();
            (e / (bins as f64).log2()) as f32
        })
        .collect();
    let tile = |a: usize, v: usize| (v + at[a]) / w - at[a] / w;
    (0..nx * ny * nz)
        .map(|i| {
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            tiles[(tile(2, z) * t[1] + tile(1, y)) * t[0] + tile(0, x)]
        })
        .collect()
}

fn gradient(vol: &Volume) -> Vec<f32> {
    let [nx, ny, nz] = vol.info.dims;
    let d = &vol.data;
    let at = |x: usize, y: usize, z: usize| {
        let v = d[(z * ny + y) * nx + x];
        if v.is_finite() {
            v as f64
        } else {
            0.0
        }
    };
    let sp = vol.info.spacing;
    let g: Vec<f32> = (0..d.len())
        .into_par_iter()
        .map(|i| {
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            let diff = |lo: f64, hi: f64, n: usize| if n > 0 { (hi - lo) / n as f64 } else { 0.0 };
            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(nx - 1));
            let (y0, y1) = (y.saturating_sub(1), (y + 1).min(ny - 1));
            let (z0, z1) = (z.saturating_sub(1), (z + 1).min(nz - 1));
            let gx = diff(at(x0, y, z), at(x1, y, z), x1 - x0) / sp[0];
            let gy = diff(at(x, y0, z), at(x, y1, z), y1 - y0) / sp[1];
            let gz = diff(at(x, y, z0), at(x, y, z1), z1 - z0) / sp[2];
            (gx * gx + gy * gy + gz * gz).sqrt() as f32
        })
        .collect();
    g
}

/// Distance from the box (0 inside), per axis in the chosen units.
fn box_distance(p: [f64; 3], lo: [f64; 3], hi: [f64; 3], world: bool, spacing: [f64; 3]) -> f64 {
    // Voxel centres at integer coordinates; half-open [lo, hi) means lo <= p <= hi-1 in voxel units.
    let hi_in = if world { hi } else { [hi[0] - 1.0, hi[1] - 1.0, hi[2] - 1.0] };
    let _ = spacing;
    let d2: f64 = (0..3)
        .map(|a| {
            let d = if p[a] < lo[a] {
                lo[a] - p[a]
            } else if p[a] > hi_in[a] {
                p[a] - hi_in[a]
            } else {
                0.0
            };
            d * d
        })
        .sum();
    d2.sqrt()
}

/// Inside = 1; with `soft` > 0, outside decays as exp(-d / soft), else 0.
fn soft_edge(d: f64, soft: f64) -> f64 {
    if d <= 0.0 {
        1.0
    } else if soft > 0.0 {
        (-d / soft).exp()
    } else {
        0.0
    }
}

/// Computes a map; values are finite and in [0, 1], length = voxels.
pub fn compute(spec: &Spec, ctx: &Context) -> Result<Vec<f32>, ImportanceError> {
    eval(spec, ctx, &mut 0)
}

/// The raw value of a normalised leaf (`grad`, `var`) before it is divided by its maximum.
fn raw(spec: &Spec, vol: &Volume) -> Vec<f32> {
    match spec {
        Spec::Grad => gradient(vol),
        Spec::Var { w } => local_variance(vol, *w),
        _ => unreachable!("only grad and var are normalised"),
    }
}

/// The maximum of every normalised leaf's raw value (`Spec::normalised`, in order)
/// over `keep` (a box of `ctx.volume`, where the part's values are exact: its
/// region without the support around it), for `Whole::maxima`: the largest over all
/// parts is the whole volume's. Leaves under `of=` are not reached (not regional).
pub fn maxima(spec: &Spec, ctx: &Context, keep: crate::volume::Region) -> Vec<f32> {
    spec.normalised().into_iter().map(|leaf| max_of(&crate::format::grid::cut(&raw(leaf, ctx.volume), ctx.volume.info.dims, keep))).collect()
}

/// `compute`; `leaf`: how many normalised leaves came before `spec`.
fn eval(spec: &Spec, ctx: &Context, leaf: &mut usize) -> Result<Vec<f32>, ImportanceError> {
    let vol = ctx.volume;
    let n = vol.data.len();
    Ok(match spec {
        Spec::Iso { value, k, falloff, world } => {
            let spacing = if *world { vol.info.spacing } else { [1.0; 3] };
            let dist = edt::iso_distance(&vol.data, vol.info.dims, spacing, *value);
            dist.par_iter()
                .map(|&d| {
                    match falloff {
                        // No surface at all: infinite distance, importance 0.
                        _ if !d.is_finite() => 0.0,
                        Falloff::Exp => clamp01((-k * d).exp()),
                        Falloff::Inv => clamp01(1.0 / (1.0 + k * d)),
                    }
                })
                .collect()
        }
        Spec::Value(t) => match *t {
            ValueTest::Above(a) => map_values(vol, |v| (v > a) as u8 as f64),
            ValueTest::Below(a) => map_values(vol, |v| (v < a) as u8 as f64),
            ValueTest::Range(a, b) => map_values(vol, |v| (v >= a && v <= b) as u8 as f64),
        },
        Spec::Near { value, width } => map_values(vol, |v| (-((v - value) / width).powi(2)).exp()),
        Spec::Tf(points) => map_values(vol, |v| piecewise(points, v)),
        Spec::Box { lo, hi, soft, world } => (0..n).into_par_iter().map(|i| clamp01(soft_edge(box_distance(coords(vol, i, *world, ctx.origin), *lo, *hi, *world, vol.info.spacing), *soft))).collect(),
        Spec::Sphere { centre, r, soft, world } => (0..n)
            .into_par_iter()
            .map(|i| {
                let p = coords(vol, i, *world, ctx.origin);
                let d = (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum::<f64>().sqrt() - r;
                clamp01(soft_edge(d, *soft))
            })
            .collect(),
        Spec::Grad | Spec::Var { .. } => {
            let m = raw(spec, vol);
            let max = ctx.whole.map_or_else(|| max_of(&m), |w| w.maxima[*leaf]);
            *leaf += 1;
            by_max(m, max)
        }
        Spec::Entropy { w, bins } => local_entropy(vol, *w, *bins, ctx.whole.map_or_else(|| vol.range(), |w| w.range), ctx.origin),
        Spec::Uniform(v) => vec![*v as f32; n],
        Spec::Time(points) => {
            let t = ctx.time_index as f64;
            vec![clamp01(piecewise(points, t)); n]
        }
        Spec::File(path) => {
            // Kept as stored: a NaN must be reported, not filled in.
            let opts = crate::io::ReadOptions { dims: Some(vol.info.dims), nonfinite: crate::io::NonFinite::Keep, ..Default::default() };
            let m = crate::io::read_volume(std::path::Path::new(path), &opts).map_err(|e| ImportanceError::File { path: path.clone(), msg: e.to_string() })?;
            if m.info.dims != vol.info.dims {
                return Err(ImportanceError::File { path: path.clone(), msg: format!("dims {:?} differ from the volume's {:?}", m.info.dims, vol.info.dims) });
            }
            // A map is importance in [0, 1], as every other kind (uniform:2 is an
            // error too); anything else is a wrong file, not something to clamp.
            let bad = |v: &f32| !(0.0..=1.0).contains(v);
            if let Some(first) = m.data.iter().position(bad) {
                let count = m.data.iter().filter(|v| bad(v)).count();
                return Err(ImportanceError::File {
                    path: path.clone(),
                    msg: format!(
                        "{count} value{} outside [0, 1] (NaN counts), the first {} at index {first}; an importance map must lie in [0, 1]",
                        if count == 1 { " is" } else { "s are" },
                        m.data[first]
                    ),
                });
            }
            m.data
        }
        Spec::Of { volume, spec } => {
            let other = ctx.others.iter().find(|(name, _)| name == volume).ok_or_else(|| ImportanceError::NoSuchVolume(volume.clone()))?.1;
            if other.info.dims != vol.info.dims {
                return Err(ImportanceError::DimsMismatch { name: volume.clone(), got: other.info.dims, want: vol.info.dims });
            }
            eval(spec, &Context { volume: other, ..*ctx }, leaf)?
        }
        Spec::Max(v) | Spec::Min(v) | Spec::Mul(v) => {
            let mut acc = eval(&v[0], ctx, leaf)?;
            for s in &v[1..] {
                let m = eval(s, ctx, leaf)?;
                acc.par_iter_mut().zip(&m).for_each(|(a, &b)| {
                    *a = match spec {
                        Spec::Max(_) => a.max(b),
                        Spec::Min(_) => a.min(b),
                        _ => *a * b,
                    }
                });
            }
            acc
        }
        Spec::Mix(items) => {
            let mut acc = vec![0f32; n];
            for (w, s) in items {
                let m = eval(s, ctx, leaf)?;
                acc.par_iter_mut().zip(&m).for_each(|(a, &b)| *a += *w as f32 * b);
            }
            acc.iter().map(|&v| clamp01(v as f64)).collect()
        }
        Spec::Scale(s, inner) => {
            let mut m = eval(inner, ctx, leaf)?;
            apply_scale(&mut m, *s as f32);
            m
        }
        Spec::Clamp(lo, hi, inner) => eval(inner, ctx, leaf)?.iter().map(|&v| clamp01((v as f64).clamp(*lo, *hi))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeInfo;

    fn vol(dims: [usize; 3], mut f: impl FnMut(usize, usize, usize) -> f32) -> Volume {
        let mut d = Vec::new();
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    d.push(f(x, y, z));
                }
            }
        }
        Volume::new(VolumeInfo::new("v", dims), d)
    }

    fn eval(s: &str, v: &Volume) -> Vec<f32> {
        compute(&parse(s).unwrap(), &Context::single(v)).unwrap()
    }

    #[test]
    fn round_trip_canonical_strings() {
        for s in [
            "iso:7",
            "iso:5,k=0.5,fn=inv,world",
            "value:>10.2",
            "value:<3",
            "value:4..6",
            "near:7,w=0.5",
            "tf:0=0,5=0.2,8=1",
            "box:200,180,0:264,244,96",
            "box:0,0,0:4,4,4,soft=2,world",
            "sphere:64,64,64,r=20",
            "grad",
            "var:w=5",
            "entropy:w=8",
            "uniform:0.9",
            "file:map.raw",
            "time:0=1,10=0.2",
            "of=OH:value:>0.1",
            "max(iso:7,value:>10)",
            "min(grad,uniform:0.5)",
            "mul(box:1,2,3:4,5,6,sphere:1,2,3,r=4)",
            "mix(0.5*iso:7,0.5*grad)",
            "scale(0.5,iso:7)",
            "clamp(0.2,0.8,grad)",
        ] {
            let p = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            let c = p.to_string();
            assert_eq!(parse(&c).unwrap(), p, "{s} -> {c}");
        }
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("max(iso:7,bogus:3)").unwrap_err();
        assert_eq!(e.pos, 10, "{e}");
        assert!(e.to_string().contains("unknown importance kind 'bogus'"));
        assert!(e.to_string().ends_with(&format!("  {}^", " ".repeat(10))));
        for bad in ["", "iso:", "iso:x", "value:5", "near:3", "sphere:1,2,3", "box:0,0,0:0,1,1", "uniform:2", "max(iso:7", "iso:7)", "tf:5=0,1=1", "iso:7,k=-1"] {
            assert!(parse(bad).is_err(), "'{bad}' should be rejected");
        }
    }

    #[test]
    fn iso_distance_matches_brute_force_on_random_volumes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..20 {
            let dims = [rng.random_range(2..9), rng.random_range(2..8), rng.random_range(1..6)];
            let v = vol(dims, |_, _, _| rng.random::<f32>());
            let m = eval("iso:0.5,k=1", &v);
            // Brute force: distance to the nearest linearly interpolated crossing point.
            let mut cross = Vec::new();
            for p in 0..v.data.len() {
                let pc = coords(&v, p, false, [0; 3]);
                for (axis, step) in [(0, 1), (1, dims[0]), (2, dims[0] * dims[1])] {
                    if pc[axis] as usize + 1 >= dims[axis] {
                        continue;
                    }
                    let (a, b) = (v.data[p] as f64, v.data[p + step] as f64);
                    if (a - 0.5) * (b - 0.5) > 0.0 || a == b {
                        continue;
                    }
                    let mut c = pc;
                    c[axis] += (0.5 - a) / (b - a);
                    cross.push(c);
                }
            }
            for p in 0..v.data.len() {
                let pc = coords(&v, p, false, [0; 3]);
                let best = cross.iter().map(|c| (0..3).map(|a| (pc[a] - c[a]).powi(2)).sum::<f64>().sqrt()).fold(f64::INFINITY, f64::min);
                let got = if m[p] > 0.0 { -(m[p] as f64).ln() } else { f64::INFINITY };
                if best.is_infinite() {
                    assert_eq!(m[p], 0.0);
                    continue;
                }
                // Exact distance; the tolerance only covers the f32 map and ln.
                assert!((got - best).abs() <= 1e-5 * (1.0 + best), "{dims:?} voxel {p}: {got} vs {best}");
            }
        }
    }

    #[test]
    fn kinds_have_the_documented_meaning() {
        let v = vol([10, 4, 4], |x, _, _| x as f32);
        let above = eval("value:>4.5", &v);
        assert_eq!(above[4], 0.0);
        assert_eq!(above[5], 1.0);
        let band = eval("value:3..5", &v);
        assert_eq!((band[2], band[3], band[5], band[6]), (0.0, 1.0, 1.0, 0.0));
        let tf = eval("tf:0=0,5=0.5,10=1", &v);
        assert!((tf[2] - 0.2).abs() < 1e-6 && (tf[7] - 0.7).abs() < 1e-6);
        let near = eval("near:3,w=1", &v);
        assert_eq!(near[3], 1.0);
        assert!((near[4] - (-1f32).exp()).abs() < 1e-6);
        let b = eval("box:2,0,0:4,4,4", &v);
        assert_eq!((b[1], b[2], b[3], b[4]), (0.0, 1.0, 1.0, 0.0));
        let s = eval("sphere:0,0,0,r=2.5", &v);
        assert_eq!((s[2], s[3]), (1.0, 0.0));
        let iso = eval("iso:4.5", &v);
        assert!((iso[4] - (-0.1f32).exp()).abs() < 1e-6, "{}", iso[4]);
        let g = eval("grad", &v);
        assert!(g.iter().all(|&x| (x - 1.0).abs() < 1e-6), "{:?}", &g[..12]);
        assert!(eval("mul(value:>4.5,uniform:0.5)", &v)[7] == 0.5);
        assert!(eval("mix(0.3*uniform:1,0.3*uniform:1)", &v)[0] - 0.6 < 1e-6);
        assert_eq!(eval("scale(3,uniform:0.5)", &v)[0], 1.0);
        assert_eq!(eval("clamp(0.2,0.4,uniform:0.9)", &v)[0], 0.4);
        // Constant volume: no isosurface, importance 0 everywhere.
        let c = vol([4, 4, 4], |_, _, _| 1.0);
        assert!(eval("iso:0.5", &c).iter().all(|&x| x == 0.0));
        for s in ["var:w=3", "entropy:w=4", "grad"] {
            assert!(eval(s, &v).iter().all(|x| (0.0..=1.0).contains(x)), "{s}");
        }
    }

    #[test]
    fn remaining_kinds_options_and_combinators() {
        let mut v = vol([10, 4, 4], |x, _, _| x as f32);
        assert_eq!(eval("value:<4.5", &v)[4..6], [1.0, 0.0]);
        // fn=inv: 1 / (1 + k d); iso 4.5 crosses between x = 4 and 5, d = 0.5 at x = 4.
        assert!((eval("iso:4.5,k=1,fn=inv", &v)[4] - 1.0 / 1.5).abs() < 1e-6);
        // world: spacing 2 along x doubles the distance; a world box is in coordinates.
        v.info.spacing = [2.0, 1.0, 1.0];
        v.info.origin = [10.0, 0.0, 0.0];
        assert!((eval("iso:4.5,k=1,world", &v)[4] - (-1f32).exp()).abs() < 1e-6);
        let wb = eval("box:13,0,0:17,4,4,world", &v);
        assert_eq!(wb[1..4], [0.0, 1.0, 1.0], "x = 2, 3 are at 14, 16");
        // soft edges decay as exp(-d / S) outside the box and stay 1 inside.
        let soft = eval("box:0,0,0:3,4,4,soft=2", &v);
        assert_eq!(soft[2], 1.0);
        assert!(soft[4] > 0.0 && soft[4] < soft[3] && soft[3] < 1.0, "{:?}", &soft[..6]);
        let sphere = eval("sphere:0,0,0,r=2,soft=1", &v);
        assert!(sphere[1] == 1.0 && sphere[3] > 0.0 && sphere[3] < 1.0);
        // max / min pick per voxel.
        let mx = eval("max(value:>7.5,value:<1.5)", &v);
        assert_eq!((mx[0], mx[4], mx[9]), (1.0, 0.0, 1.0));
        let mn = eval("min(value:>2.5,value:<6.5)", &v);
        assert_eq!((mn[2], mn[4], mn[7]), (0.0, 1.0, 0.0));
        // var and entropy are zero where the window is constant and highest where it varies.
        let step = vol([12, 4, 4], |x, _, _| if x < 6 { 0.0 } else { 1.0 });
        let var = eval("var:w=3", &step);
        assert_eq!(var[0], 0.0);
        assert_eq!(var[5].max(var[6]), 1.0);
        let ent = eval("entropy:w=4", &step);
        assert_eq!(ent[0], 0.0);
        assert!(ent[5] > 0.0, "the tile across the step has two values");
        // file: a map of the same dims, clamped to [0, 1]; a wrong size is an error.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.raw");
        let n = v.data.len();
        let vals: Vec<f32> = (0..n).map(|i| i as f32 / (n - 1) as f32).collect();
        std::fs::write(&path, vals.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let f = eval(&format!("file:{}", path.display()), &v);
        assert_eq!(f, vals, "a map in [0, 1] is used as stored");
        std::fs::write(&path, [0u8; 12]).unwrap();
        assert!(compute(&parse(&format!("file:{}", path.display())).unwrap(), &Context::single(&v)).is_err());
    }

    #[test]
    fn file_map_with_nan_or_values_outside_unit_range_is_refused() {
        let v = vol([4, 4, 2], |x, _, _| x as f32);
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.raw");
        for (bad, what) in [(f32::NAN, "NaN"), (1.5, "1.5"), (-0.25, "-0.25"), (f32::INFINITY, "inf")] {
            let mut vals = vec![0.5f32; v.data.len()];
            vals[7] = bad;
            vals[9] = bad;
            std::fs::write(&path, vals.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
            let e = compute(&parse(&format!("file:{}", path.display())).unwrap(), &Context::single(&v)).unwrap_err().to_string();
            assert!(e.contains("2 values are outside [0, 1]") && e.contains(&format!("first {what} at index 7")), "{what}: {e}");
        }
    }

    #[test]
    fn time_and_other_volumes() {
        let a = vol([4, 4, 4], |x, _, _| x as f32);
        let b = vol([4, 4, 4], |_, y, _| y as f32);
        let others = [("B", &b)];
        let ctx = Context { volume: &a, others: &others, time_index: 5, time_count: 11, origin: [0; 3], whole: None };
        let m = compute(&parse("of=B:value:>1.5").unwrap(), &ctx).unwrap();
        assert_eq!((m[4], m[8]), (0.0, 1.0)); // y = 1 and y = 2
        let t = compute(&parse("time:0=1,10=0").unwrap(), &ctx).unwrap();
        assert!((t[0] - 0.5).abs() < 1e-6);
        assert!(compute(&parse("of=C:grad").unwrap(), &ctx).is_err());
    }

    #[test]
    fn maps_on_a_part_with_its_support_equal_the_whole_maps_there() {
        use crate::volume::Region;
        let mut a = vol([11, 7, 13], |x, y, z| ((x * 3 + y + z * z) as f32 * 0.1).sin() * (1.0 + x as f32 * 0.3));
        a.info.spacing = [0.5, 1.5, 2.0];
        a.info.origin = [1.0, -2.0, 3.0];
        let dims = a.info.dims;
        let cut = |r: Region| Volume::new(crate::volume::VolumeInfo { dims: r.size, ..a.info.clone() }, crate::format::grid::cut(&a.data, dims, r));
        // Slabs (an MPI rank's planes) and boxes (a streaming pack's tiles), off the tile grids too.
        let regions = [([0, 0, 0], [11, 7, 13]), ([0, 0, 2], [11, 7, 3]), ([0, 0, 12], [11, 7, 1]), ([1, 2, 3], [3, 2, 4]), ([4, 0, 5], [7, 7, 8]), ([10, 6, 0], [1, 1, 13])];
        // The parts whose maxima make the whole's: slabs of 4 planes.
        let slabs: Vec<Region> = (0..dims[2]).step_by(4).map(|z| Region::planes(dims, z..(z + 4).min(dims[2]))).collect();
        for text in [
            "box:1,1,2:3,3,6,soft=1.5",
            "sphere:2,2,5,r=2.5,world",
            "max(value:>0.3,box:0,0,7:4,3,8)",
            "grad",
            "var:w=5",
            "entropy:w=4,bins=8",
            "mix(0.5*grad,0.3*entropy:w=3,0.2*var:w=3)",
            "mul(grad,scale(2,var:w=2))",
            "iso:0.3",
        ] {
            let spec = parse(text).unwrap();
            let whole = compute(&spec, &Context::single(&a)).unwrap();
            let Some(_) = spec.support(Region::whole(dims), dims) else {
                // Needs the whole volume: the map over a slab alone must differ, or the test tells nothing.
                let s = Region::planes(dims, 2..5);
                let mut there = vec![0f32; s.len()];
                crate::format::grid::gather(&whole, dims, s.origin, s.size, &mut there);
                assert!(compute(&spec, &Context { origin: s.origin, ..Context::single(&cut(s)) }).unwrap() != there, "{text}");
                continue;
            };
            let mut most = vec![0f32; spec.normalised().len()];
            for &s in &slabs {
                let sup = spec.support(s, dims).unwrap();
                let keep = Region { origin: [0, 1, 2].map(|k| s.origin[k] - sup.origin[k]), size: s.size };
                let part = cut(sup);
                for (m, p) in most.iter_mut().zip(maxima(&spec, &Context { origin: sup.origin, ..Context::single(&part) }, keep)) {
                    *m = m.max(p);
                }
            }
            let w = Whole { range: a.range(), maxima: most };
            for (origin, size) in regions {
                let r = Region { origin, size };
                let sup = spec.support(r, dims).unwrap();
                assert!(sup.within(dims) && sup.union(r) == sup, "{text}: support {sup:?} of {r:?}");
                let m = compute(&spec, &Context { origin: sup.origin, whole: Some(&w), ..Context::single(&cut(sup)) }).unwrap();
                let (mut got, mut there) = (vec![0f32; r.len()], vec![0f32; r.len()]);
                crate::format::grid::gather(&m, sup.size, [0, 1, 2].map(|k| origin[k] - sup.origin[k]), size, &mut got);
                crate::format::grid::gather(&whole, dims, origin, size, &mut there);
                assert!(got == there, "{text}: region {r:?}");
                // The support is needed: the region alone differs (a pointwise map's support is the region).
                if sup == r {
                    continue;
                }
                let alone = compute(&spec, &Context { origin, whole: Some(&w), ..Context::single(&cut(r)) }).unwrap();
                if r.size == [11, 7, 3] {
                    assert!(alone != there, "{text}: a slab alone matched, the test needs a case that tells them apart");
                }
            }
        }
    }
}
