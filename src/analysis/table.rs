//! The latent table: one row per block, `bx, by, bz` then the block's latents,
//! as `idlat latents` writes it (an (N, 3 + D) float32 .npy), plus the JSON
//! sidecar (`latents.json` beside `latents.npy`) that says which grid the
//! rows belong to, so a label volume can be laid over the data.
//!
//! A block's latents are `M × L³` values, channel-major (`[m][z][y][x]`); each
//! of the `L³` positions (a latent *cell*) summarises `stride³` voxels, so the
//! table can also be read at cell granularity: `L³` rows of `M` values per block.
//!
//! Rows come from a file, so nothing here trusts them: the shape, every
//! coordinate and every value are checked before use.

use super::{param, AnalysisError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Sidecar of a latent table: the grid and where the latents came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentsMeta {
    /// The container the latents were read from (as given on the command line).
    pub container: PathBuf,
    pub volume: String,
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    /// Block core edge per axis (voxels).
    pub block: [usize; 3],
    /// Latent channels M.
    pub channels: usize,
    /// Latent edge L per block (L³ positions per channel).
    pub latent_edge: usize,
    /// Extra columns after the M × L³ latents (hyper-latent symbols with `--z`).
    #[serde(default)]
    pub extra: usize,
    /// (min, max) of the volume's data.
    pub value_range: (f32, f32),
    /// Importance spec the container was packed with.
    #[serde(default)]
    pub importance: Option<String>,
    /// `step` (y_hat / quantisation step) or `value` (y_hat); absent in
    /// sidecars written before the choice existed (they hold `value`).
    #[serde(default)]
    pub units: Option<String>,
    /// Rows in the table and blocks in the grid (non-neural blocks have no row).
    pub rows: usize,
    pub blocks: usize,
}

impl LatentsMeta {
    /// `latents.npy` → `latents.json`.
    pub fn sidecar_path(table: &Path) -> PathBuf {
        table.with_extension("json")
    }

    pub fn read(path: &Path) -> Result<LatentsMeta, AnalysisError> {
        let inv = |msg: String| AnalysisError::Input { path: path.to_owned(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| inv(e.to_string()))?;
        let m: LatentsMeta = serde_json::from_str(&text).map_err(|e| inv(format!("not a latents sidecar: {e}")))?;
        if m.dims.contains(&0) || m.block.contains(&0) || m.channels == 0 || m.latent_edge == 0 {
            return Err(inv("zero dims, block, channels or latent edge".into()));
        }
        if m.block.iter().any(|&b| b % m.latent_edge != 0) {
            return Err(inv(format!("block {:?} is not a multiple of the latent edge {}", m.block, m.latent_edge)));
        }
        Ok(m)
    }

    /// Values per block row (without coordinates).
    pub fn row_width(&self) -> usize {
        self.channels * self.latent_edge.pow(3) + self.extra
    }
}

/// Which rows to analyse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unit {
    /// One vector per block (all of its latents), as in the paper.
    #[default]
    Block,
    /// One vector per latent position (M channels), `stride³` voxels each.
    Cell,
}

crate::choice::named!(Unit {
    Block => "block": "one vector per block (all of its latents), as in the paper",
    Cell => "cell": "one vector per latent position (M channels), stride³ voxels each",
});

/// Rows of latent vectors with their integer grid coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentTable {
    pub coords: Vec<[u32; 3]>,
    /// Values per row.
    pub dim: usize,
    /// `coords.len() × dim`, row-major.
    pub values: Vec<f32>,
}

impl LatentTable {
    pub fn len(&self) -> usize {
        self.coords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Reads an (N, 3 + D) .npy (f32 or f64): coordinates then values.
    pub fn read_npy(path: &Path) -> Result<LatentTable, AnalysisError> {
        let inv = |msg: String| AnalysisError::Input { path: path.to_owned(), msg };
        let f = std::fs::File::open(path).map_err(|e| inv(e.to_string()))?;
        let file_len = f.metadata().map_err(|e| inv(e.to_string()))?.len();
        let npy = npyz::NpyFile::new(std::io::BufReader::new(f)).map_err(|e| inv(format!("not a valid .npy: {e}")))?;
        let shape = npy.shape().to_vec();
        let [n, w] = shape[..] else {
            return Err(inv(format!("expected a 2-D (blocks, 3 + latents) array as `idlat latents` writes, got shape {shape:?}")));
        };
        if n == 0 || w < 4 {
            return Err(inv(format!("shape {shape:?}: need at least one row of 3 coordinates plus latents")));
        }
        if npy.order() == npyz::Order::Fortran {
            return Err(inv("Fortran-ordered arrays are not supported (save with C order)".into()));
        }
        let npyz::DType::Plain(ts) = npy.dtype() else { return Err(inv("structured dtypes are not supported".into())) };
        let size = ts.size_field();
        let need = n.checked_mul(w).and_then(|c| c.checked_mul(size)).ok_or_else(|| inv(format!("shape {shape:?} overflows")))?;
        if need > file_len {
            return Err(inv(format!("shape {shape:?} needs {need} bytes but the file has {file_len}")));
        }
        let conv = |e: std::io::Error| inv(format!("reading data: {e}"));
        let flat: Vec<f32> = match (ts.type_char(), size) {
            (npyz::TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(conv)?,
            (npyz::TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(conv)?.into_iter().map(|v| v as f32).collect(),
            _ => return Err(inv(format!("dtype {ts}: expected float32 or float64"))),
        };
        let (n, w) = (n as usize, w as usize);
        let mut coords = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n * (w - 3));
        for (i, r) in flat.chunks_exact(w).enumerate() {
            let mut c = [0u32; 3];
            for a in 0..3 {
                let v = r[a];
                if !(v >= 0.0 && v.fract() == 0.0 && v < 1e7) {
                    return Err(inv(format!("row {i}: block coordinate {v} is not a non-negative integer (is this an `idlat latents` table?)")));
                }
                c[a] = v as u32;
            }
            if let Some(j) = r[3..].iter().position(|v| !v.is_finite()) {
                return Err(inv(format!("row {i}: latent {j} is not finite")));
            }
            coords.push(c);
            values.extend_from_slice(&r[3..]);
        }
        Ok(LatentTable { coords, dim: w - 3, values })
    }

    /// Checks the table against its grid and returns the rows of `unit`,
    /// with coordinates in units (blocks or cells); `--z` columns are dropped.
    pub fn units(&self, meta: &LatentsMeta, unit: Unit) -> Result<LatentTable, AnalysisError> {
        if self.dim != meta.row_width() {
            return Err(param(format!(
                "the table has {} latents per row but its grid says {} ({} channels × {}³{}): table and sidecar do not belong together",
                self.dim,
                meta.row_width(),
                meta.channels,
                meta.latent_edge,
                if meta.extra > 0 { format!(" + {}", meta.extra) } else { String::new() }
            )));
        }
        let counts = [0, 1, 2].map(|a| meta.dims[a].div_ceil(meta.block[a]));
        for (i, c) in self.coords.iter().enumerate() {
            if (0..3).any(|a| c[a] as usize >= counts[a]) {
                return Err(param(format!("row {i}: block {c:?} is outside the {counts:?} block grid of {:?}", meta.dims)));
            }
        }
        let (m, l) = (meta.channels, meta.latent_edge);
        let nl = l * l * l;
        match unit {
            Unit::Block => {
                let dim = m * nl;
                let values = self.values.chunks_exact(self.dim).flat_map(|r| r[..dim].iter().copied()).collect();
                Ok(LatentTable { coords: self.coords.clone(), dim, values })
            }
            Unit::Cell => {
                let mut coords = Vec::with_capacity(self.len() * nl);
                let mut values = Vec::with_capacity(self.len() * nl * m);
                for (i, b) in self.coords.iter().enumerate() {
                    let r = self.row(i);
                    for p in 0..nl {
                        let (x, y, z) = (p % l, (p / l) % l, p / (l * l));
                        coords.push([b[0] * l as u32 + x as u32, b[1] * l as u32 + y as u32, b[2] * l as u32 + z as u32]);
                        values.extend((0..m).map(|c| r[c * nl + p]));
                    }
                }
                Ok(LatentTable { coords, dim: m, values })
            }
        }
    }
}

/// Edge of one unit in voxels, per axis.
pub fn unit_edge(meta: &LatentsMeta, unit: Unit) -> [usize; 3] {
    match unit {
        Unit::Block => meta.block,
        Unit::Cell => meta.block.map(|b| b / meta.latent_edge),
    }
}

/// A full-resolution volume holding `value[i]` over the voxels of unit `coords[i]`
/// and `fill` elsewhere (units without a row: constant or lossless blocks).
pub fn paint(meta: &LatentsMeta, unit: Unit, coords: &[[u32; 3]], value: &[f32], fill: f32) -> Vec<f32> {
    let [nx, ny, nz] = meta.dims;
    let e = unit_edge(meta, unit);
    let mut out = vec![fill; nx * ny * nz];
    for (c, &v) in coords.iter().zip(value) {
        let lo = [0, 1, 2].map(|a| (c[a] as usize * e[a]).min(meta.dims[a]));
        let hi = [0, 1, 2].map(|a| ((c[a] as usize + 1) * e[a]).min(meta.dims[a]));
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                out[(z * ny + y) * nx + lo[0]..(z * ny + y) * nx + hi[0]].fill(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> LatentsMeta {
        LatentsMeta {
            container: "v.idl".into(),
            volume: "v".into(),
            dims: [6, 4, 4],
            spacing: [1.0; 3],
            origin: [0.0; 3],
            block: [4, 4, 4],
            channels: 2,
            latent_edge: 2,
            extra: 0,
            value_range: (0.0, 1.0),
            importance: None,
            units: None,
            rows: 2,
            blocks: 2,
        }
    }

    fn write(path: &Path, shape: &[u64], data: &[f32]) {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(path).unwrap();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(f).begin_nd().unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn reads_rows_and_splits_cells() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.npy");
        let mut data = vec![0f32, 0.0, 0.0];
        data.extend((0..16).map(|v| v as f32));
        data.extend([1.0, 0.0, 0.0]);
        data.extend((0..16).map(|v| 100.0 + v as f32));
        write(&p, &[2, 19], &data);
        let t = LatentTable::read_npy(&p).unwrap();
        assert_eq!((t.len(), t.dim), (2, 16));
        let cells = t.units(&meta(), Unit::Cell).unwrap();
        assert_eq!((cells.len(), cells.dim), (16, 2));
        // Cell (1, 0, 0) of block 0: channel 0 at position 1, channel 1 at 8 + 1.
        assert_eq!(cells.coords[1], [1, 0, 0]);
        assert_eq!(cells.row(1), &[1.0, 9.0]);
        // Block 1 starts at cell x = 2.
        assert_eq!(cells.coords[8], [2, 0, 0]);
        let v = paint(&meta(), Unit::Block, &t.coords, &[5.0, 7.0], -1.0);
        assert_eq!((v[0], v[3], v[4], v[5]), (5.0, 5.0, 7.0, 7.0));
    }

    #[test]
    fn rejects_bad_tables() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.npy");
        write(&p, &[2, 3], &[0.0; 6]);
        assert!(LatentTable::read_npy(&p).unwrap_err().to_string().contains("at least one row"));
        write(&p, &[8], &[0.0; 8]);
        assert!(LatentTable::read_npy(&p).unwrap_err().to_string().contains("2-D"));
        write(&p, &[1, 5], &[0.5, 0.0, 0.0, 1.0, 2.0]);
        assert!(LatentTable::read_npy(&p).unwrap_err().to_string().contains("not a non-negative integer"));
        write(&p, &[1, 5], &[0.0, 0.0, 0.0, f32::NAN, 2.0]);
        assert!(LatentTable::read_npy(&p).unwrap_err().to_string().contains("not finite"));
        std::fs::write(&p, b"junk").unwrap();
        assert!(LatentTable::read_npy(&p).unwrap_err().to_string().contains("not a valid .npy"));
        // Wrong width for the grid, and a block outside it.
        write(&p, &[1, 5], &[0.0, 0.0, 0.0, 1.0, 2.0]);
        let t = LatentTable::read_npy(&p).unwrap();
        assert!(t.units(&meta(), Unit::Block).unwrap_err().to_string().contains("do not belong together"));
        let mut row = vec![5.0f32, 0.0, 0.0];
        row.extend([0.0; 16]);
        write(&p, &[1, 19], &row);
        let t = LatentTable::read_npy(&p).unwrap();
        assert!(t.units(&meta(), Unit::Block).unwrap_err().to_string().contains("outside"));
    }
}
