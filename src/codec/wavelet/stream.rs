//! Tiles prepared again from their input for every pass (`Stream`): rate control
//! and coding of a volume that does not fit in memory. Only one group of tiles is
//! in memory at a time; what the passes need of the others stays small: each
//! tile's layout and the size proxy's histogram. Every pass prepares a
//! tile exactly as `prepare` does over the whole volume (the same samples, map and
//! layout), so the container is byte-identical to an in-memory pack.

use super::{code, prepare_part, tile, Coded, Layout, Part, Prepared, Tiles};
use crate::codec::blocks::Norm;
use crate::codec::bound::BoundSpec;
use crate::format::{BlockGrid, BlockId};
use rayon::prelude::*;

/// Tile `id`'s samples and importance (over `BlockGrid::region`), read from the input.
pub type Load<'a> = dyn Fn(usize) -> Result<(Vec<f32>, Vec<f32>), String> + Sync + 'a;

/// Most bytes per voxel one tile in flight holds: samples, map, normalised samples,
/// a bound's map and three transforms with their buffers (measured: about 30).
const BYTES_PER_VOXEL: usize = 48;
/// Memory the tiles in flight may take together (a group is at least one tile).
const BUDGET: usize = 1 << 30;

pub struct Stream<'a> {
    grid: BlockGrid,
    norm: Norm,
    bound: Option<BoundSpec>,
    load: &'a Load<'a>,
    /// Per tile: the layout the first pass chose.
    layouts: Vec<Layout>,
    /// The size proxy's counts over every tile.
    hist: Vec<u64>,
    bounded: bool,
    /// Tiles prepared at once (in parallel).
    group: usize,
}

impl<'a> Stream<'a> {
    /// The first pass: prepares every tile (in `layout`, or the best per tile) and
    /// keeps what later passes need. `done(n)`: n more tiles prepared.
    pub fn new(grid: BlockGrid, norm: Norm, bound: Option<BoundSpec>, layout: Option<Layout>, load: &'a Load<'a>, done: impl Fn(usize)) -> Result<Stream<'a>, String> {
        let voxels = grid.block.iter().product::<usize>().max(1);
        let group = (BUDGET / (BYTES_PER_VOXEL * voxels)).clamp(1, rayon::current_num_threads());
        let n = grid.len();
        let mut s = Stream { grid, norm, bound, load, layouts: vec![Layout::ALL[0]; n], hist: vec![0; tile::MAGNITUDE_BINS], bounded: false, group };
        let ids: Vec<usize> = (0..n).collect();
        for ch in ids.chunks(group) {
            let got: Vec<Prepared> = ch.par_iter().map(|&id| s.prepare(id, layout)).collect::<Result<_, _>>()?;
            for (&id, p) in ch.iter().zip(got) {
                if let Prepared::Coded { t, bound, .. } = &p {
                    s.layouts[id] = t.layout;
                    s.bounded |= bound.is_some();
                    s.hist = tile::add_counts(std::mem::take(&mut s.hist), tile::magnitudes(t));
                }
            }
            done(ch.len());
        }
        Ok(s)
    }

    fn prepare(&self, id: usize, layout: Option<Layout>) -> Result<Prepared, String> {
        let (data, imp) = (self.load)(id)?;
        let region = self.grid.region(BlockId(id as u64));
        if data.len() != region.len() || imp.len() != region.len() {
            return Err(format!("tile {id}: {} samples and {} importance values for {} voxels", data.len(), imp.len(), region.len()));
        }
        let part = Part { data: &data, imp: &imp, region, ids: id..id + 1 };
        let bound = self.bound.as_ref().map(|b| (b, imp.as_slice()));
        Ok(prepare_part(&part, &self.grid, self.norm, bound, layout).pop().expect("one tile"))
    }

    /// Tile `id` as the first pass prepared it.
    fn get(&self, id: usize) -> Result<Prepared, String> {
        self.prepare(id, Some(self.layouts[id]))
    }

    /// `f` on tiles `ids`, one group at a time, handing the results to `sink` in order.
    fn each<R: Send>(&self, ids: &[usize], f: impl Fn(usize, Prepared) -> Result<R, String> + Sync, mut sink: impl FnMut(usize, R) -> Result<(), String>) -> Result<(), String> {
        for ch in ids.chunks(self.group) {
            let got: Vec<R> = ch.par_iter().map(|&id| f(id, self.get(id)?)).collect::<Result<_, _>>()?;
            for (&id, r) in ch.iter().zip(got) {
                sink(id, r)?;
            }
        }
        Ok(())
    }

    /// The last pass: codes every tile at base step `step0`, handing each to `sink` in id order.
    pub fn code(&self, step0: f32, sink: impl FnMut(usize, Coded) -> Result<(), String>) -> Result<(), String> {
        let ids: Vec<usize> = (0..self.grid.len()).collect();
        let norm = self.norm;
        self.each(&ids, |_, p| code(&p, step0, norm), sink)
    }
}

impl Tiles for Stream<'_> {
    fn sum(&self, n: usize, f: &(dyn Fn(&Prepared) -> Result<Vec<u64>, String> + Sync)) -> Result<Vec<u64>, String> {
        let ids: Vec<usize> = (0..self.grid.len()).collect();
        let mut acc = vec![0; n];
        self.each(
            &ids,
            |_, p| f(&p),
            |_, v| {
                acc = tile::add_counts(std::mem::take(&mut acc), v);
                Ok(())
            },
        )?;
        Ok(acc)
    }

    fn bounded(&self) -> bool {
        self.bounded
    }

    fn all(&self) -> Option<&[Prepared]> {
        None
    }

    fn magnitudes(&self) -> Result<Vec<u64>, String> {
        Ok(self.hist.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{code_all, prepare, search, Searched, Target};
    use super::*;

    /// Streaming gives what the in-memory path gives: the same step from a ratio search
    /// (its proxy included), the same bytes.
    #[test]
    fn a_stream_codes_what_memory_codes() {
        let dims = [40, 36, 30];
        let n = dims.iter().product::<usize>();
        let data: Vec<f32> = (0..n).map(|i| ((i % 40) as f32 * 0.37).sin() * 3.0 + ((i / 1440) as f32 * 0.21).cos() + ((i / 40 % 36) as f32 * 0.13).sin() * (i % 7) as f32 * 0.1).collect();
        let imp: Vec<f32> = (0..n).map(|i| if i % 40 < 12 { 1.0 } else { 0.2 }).collect();
        let g = BlockGrid::cubic(dims, 16);
        let (lo, hi) = crate::volume::value_range(&data);
        let norm = Norm::from_range(lo, hi);
        for bound in [None, Some(BoundSpec { abs: 0.05, min_importance: 0.5, graded: false, max: None })] {
            let ps = prepare(&data, &imp, &g, norm, bound.as_ref().map(|b| (b, imp.as_slice())), None);
            let load = |id: usize| {
                let (o, sz) = g.extent(BlockId(id as u64));
                let mut d = vec![0f32; sz.iter().product()];
                let mut w = d.clone();
                crate::format::grid::gather(&data, dims, o, sz, &mut d);
                crate::format::grid::gather(&imp, dims, o, sz, &mut w);
                Ok((d, w))
            };
            let s = Stream::new(g, norm, bound, None, &load, |_| {}).unwrap();
            let find = |t: &dyn Fn() -> Result<super::super::Choice, String>| t().unwrap().step;
            let a = find(&|| search(&ps[..], &Searched { grid: &g, norm, data: &data, imp: &imp, valid: None, overhead: 0 }, Target::Ratio(40.0), &crate::dist::Local));
            let b = find(&|| search(&s, &Searched { grid: &g, norm, data: &[], imp: &[], valid: None, overhead: 0 }, Target::Ratio(40.0), &crate::dist::Local));
            assert_eq!(a.to_bits(), b.to_bits(), "bound {bound:?}");
            let want: Vec<Vec<u8>> = code_all(&ps, a, norm).unwrap().into_iter().map(|c| c.payload).collect();
            let mut got = Vec::new();
            s.code(b, |id, c| {
                assert_eq!(id, got.len());
                got.push(c.payload);
                Ok(())
            })
            .unwrap();
            assert!(want == got, "payloads differ (bound {bound:?})");
        }
    }
}
