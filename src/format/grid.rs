//! Block geometry of a volume: ids, extents, and copies between a volume
//! buffer and blocks. Volumes of any dims; edge blocks are clipped.
//! Block ids run x fastest: id = (bz * nby + by) * nbx + bx.

use super::BlockId;
use crate::volume::Dims;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockGrid {
    pub dims: Dims,
    pub block: [usize; 3],
}

impl BlockGrid {
    pub fn new(dims: Dims, block: [usize; 3]) -> BlockGrid {
        BlockGrid { dims, block }
    }

    pub fn cubic(dims: Dims, edge: usize) -> BlockGrid {
        BlockGrid { dims, block: [edge; 3] }
    }

    pub fn counts(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.dims[a].div_ceil(self.block[a].max(1)))
    }

    pub fn len(&self) -> usize {
        let c = self.counts();
        c[0] * c[1] * c[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn coords(&self, id: BlockId) -> [usize; 3] {
        let c = self.counts();
        let i = id.0 as usize;
        [i % c[0], (i / c[0]) % c[1], i / (c[0] * c[1])]
    }

    pub fn id(&self, b: [usize; 3]) -> BlockId {
        let c = self.counts();
        BlockId(((b[2] * c[1] + b[1]) * c[0] + b[0]) as u64)
    }

    /// (voxel origin, clipped size) of a block.
    pub fn extent(&self, id: BlockId) -> ([usize; 3], [usize; 3]) {
        let b = self.coords(id);
        let o = [0, 1, 2].map(|a| b[a] * self.block[a]);
        (o, [0, 1, 2].map(|a| self.block[a].min(self.dims[a] - o[a])))
    }

    /// The planes (z range) that the blocks of the contiguous ids `ids` cover (every x
    /// and y of them: a slab); empty for no blocks.
    pub fn planes(&self, ids: std::ops::Range<usize>) -> std::ops::Range<usize> {
        if ids.is_empty() {
            return 0..0;
        }
        let (o, s) = self.extent(BlockId(ids.end as u64 - 1));
        self.extent(BlockId(ids.start as u64)).0[2]..o[2] + s[2]
    }

    /// A block's voxels as a region of the volume.
    pub fn region(&self, id: BlockId) -> crate::volume::Region {
        let (origin, size) = self.extent(id);
        crate::volume::Region { origin, size }
    }

    pub fn voxels(&self, id: BlockId) -> usize {
        let (_, s) = self.extent(id);
        s[0] * s[1] * s[2]
    }

    /// Blocks touched by the linear voxel range [first, end) (x fastest), in id order.
    /// Cost is O(z planes × block rows), independent of the number of voxels.
    pub fn blocks_in_voxel_range(&self, first: u64, end: u64) -> Vec<BlockId> {
        let [nx, ny, nz] = self.dims;
        let end = end.min((nx * ny * nz) as u64);
        if first >= end {
            return Vec::new();
        }
        let c = self.counts();
        let [bxs, bys, bzs] = self.block;
        let mut out = Vec::new();
        let add_row_span = |r: u64, x0: usize, x1: usize, out: &mut Vec<BlockId>| {
            let (y, z) = ((r % ny as u64) as usize, (r / ny as u64) as usize);
            for bx in x0 / bxs..=x1 / bxs {
                out.push(self.id([bx, y / bys, z / bzs]));
            }
        };
        let (r0, r1) = (first / nx as u64, (end - 1) / nx as u64);
        let (x0, x1) = ((first % nx as u64) as usize, ((end - 1) % nx as u64) as usize);
        if r0 == r1 {
            add_row_span(r0, x0, x1, &mut out);
        } else {
            add_row_span(r0, x0, nx - 1, &mut out);
            add_row_span(r1, 0, x1, &mut out);
            if r1 > r0 + 1 {
                // Full rows r0+1 ..= r1-1, plane by plane.
                let (ra, rb) = (r0 + 1, r1 - 1);
                let (za, zb) = ((ra / ny as u64) as usize, (rb / ny as u64) as usize);
                for z in za..=zb {
                    let ya = if z == za { (ra % ny as u64) as usize } else { 0 };
                    let yb = if z == zb { (rb % ny as u64) as usize } else { ny - 1 };
                    for by in ya / bys..=yb / bys {
                        for bx in 0..c[0] {
                            out.push(self.id([bx, by, z / bzs]));
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The box `r` of a volume of `dims` (x fastest), as a new buffer (`gather`).
pub fn cut(vol: &[f32], dims: Dims, r: crate::volume::Region) -> Vec<f32> {
    let mut out = vec![0f32; r.len()];
    gather(vol, dims, r.origin, r.size, &mut out);
    out
}

/// Copies the clipped block at `origin` (`size`) out of a volume (x fastest).
pub fn gather(vol: &[f32], dims: Dims, origin: [usize; 3], size: [usize; 3], out: &mut [f32]) {
    let [nx, ny, _] = dims;
    for z in 0..size[2] {
        for y in 0..size[1] {
            let s = ((origin[2] + z) * ny + origin[1] + y) * nx + origin[0];
            let d = (z * size[1] + y) * size[0];
            out[d..d + size[0]].copy_from_slice(&vol[s..s + size[0]]);
        }
    }
}

/// Writes a clipped block (x fastest, `size`) into the volume buffer at `origin`.
pub fn scatter(vol: &mut [f32], dims: Dims, origin: [usize; 3], size: [usize; 3], block: &[f32]) {
    let [nx, ny, _] = dims;
    for z in 0..size[2] {
        for y in 0..size[1] {
            let d = ((origin[2] + z) * ny + origin[1] + y) * nx + origin[0];
            let s = (z * size[1] + y) * size[0];
            vol[d..d + size[0]].copy_from_slice(&block[s..s + size[0]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(g: &BlockGrid, first: u64, end: u64) -> Vec<BlockId> {
        let [nx, ny, _] = g.dims;
        let mut v: Vec<BlockId> = (first..end)
            .map(|i| {
                let i = i as usize;
                let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
                g.id([x / g.block[0], y / g.block[1], z / g.block[2]])
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    proptest! {
        #[test]
        fn voxel_range_matches_brute_force(nx in 1usize..20, ny in 1usize..12, nz in 1usize..9, b in 1usize..6, a in 0u64..2000, len in 0u64..600) {
            let g = BlockGrid::cubic([nx, ny, nz], b);
            let total = (nx * ny * nz) as u64;
            let first = a % total.max(1);
            let end = (first + len).min(total);
            prop_assert_eq!(g.blocks_in_voxel_range(first, end), brute(&g, first, end));
        }

        #[test]
        fn gather_scatter_round_trip(nx in 1usize..20, ny in 1usize..12, nz in 1usize..9, b in 1usize..7) {
            let g = BlockGrid::cubic([nx, ny, nz], b);
            let vol: Vec<f32> = (0..nx * ny * nz).map(|i| i as f32).collect();
            let mut out = vec![-1f32; vol.len()];
            for id in 0..g.len() as u64 {
                let (o, s) = g.extent(BlockId(id));
                let mut blk = vec![0f32; s[0] * s[1] * s[2]];
                gather(&vol, g.dims, o, s, &mut blk);
                scatter(&mut out, g.dims, o, s, &blk);
            }
            prop_assert_eq!(out, vol);
        }
    }
}
