//! Format-version policy (spec/FORMAT.md §9): the features a file may use beyond
//! format 1.0, the minor version that introduced each, and which of them a block
//! payload uses, read from its own bytes. A writer stamps the lowest minor whose
//! features the file uses, so files without them stay readable by older readers.

use super::block::{BlockKind, StreamTable, MAX_STREAMS};

/// A feature of the format beyond 1.0, in the order the minors introduced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Feature {
    /// 1.1: error-bound residual streams (§6.2).
    ErrorBoundResidual,
    /// 1.2: the interpolation mode of a residual stream (a negative step, §6.2).
    InterpolationResidual,
    /// 1.3: per-cell quantisation levels of a neural block (stream 2 longer than a byte, §6).
    CellLevels,
    /// 1.4: wavelet blocks (kind 4, §6.3).
    Wavelet,
    /// 1.5: the packet and tensor tile layouts (byte 1 of the tile stream, §6.3).
    WaveletLayouts,
    /// 1.6: a tile stream with fewer levels than `L_max` of its size (§6.3).
    WaveletFewerLevels,
    /// 1.7: tiles coded in slices (byte 2 of the tile stream, §6.3).
    WaveletSlices,
}

impl Feature {
    /// The minor version that introduced the feature.
    pub const fn minor(self) -> u16 {
        match self {
            Feature::ErrorBoundResidual => 1,
            Feature::InterpolationResidual => 2,
            Feature::CellLevels => 3,
            Feature::Wavelet => 4,
            Feature::WaveletLayouts => 5,
            Feature::WaveletFewerLevels => 6,
            Feature::WaveletSlices => 7,
        }
    }
}

/// The lowest minor version that has every feature of `fs` (0: plain 1.0).
pub fn minor_for(fs: impl IntoIterator<Item = Feature>) -> u16 {
    fs.into_iter().map(Feature::minor).max().unwrap_or(0)
}

/// Length of an axis of `n` samples after `levels` halvings (odd lengths keep the
/// extra sample in the low band; an axis shorter than 2 is not split).
pub fn low_len(n: usize, levels: usize) -> usize {
    (0..levels).fold(n, |m, _| if m >= 2 { m.div_ceil(2) } else { m })
}

/// Levels a wavelet tile of size `sz` gets (spec §6.3, `L_max` with `max` = 6): halve
/// while the largest edge's low band is at least 8, at most `max` times.
pub fn wavelet_levels(sz: [usize; 3], max: usize) -> usize {
    let e = *sz.iter().max().unwrap_or(&1);
    let mut l = 0;
    while l < max && low_len(e, l + 1) >= 4 && low_len(e, l) >= 8 {
        l += 1;
    }
    l
}

/// The most levels a tile stream declares without format 1.6 (spec §6.3).
pub const WAVELET_MAX_LEVELS: usize = 6;

/// Whether a residual stream (§6.2) uses the interpolation mode: its step, the first
/// f32, is negative. False for a stream too short to say (its decoder rejects it).
pub fn residual_interpolates(stream: &[u8]) -> bool {
    stream.get(..4).is_some_and(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_sign_negative())
}

/// The features a block payload of `kind` for a block of size `sz` uses, read from
/// its bytes (what the writer stamps). A payload whose tables do not parse reports
/// only what its kind implies: its reader fails it either way.
pub fn block_features(kind: BlockKind, payload: &[u8], sz: [usize; 3]) -> Vec<Feature> {
    let mut fs = Vec::new();
    let residual = |fs: &mut Vec<Feature>, r: &[u8]| {
        fs.push(Feature::ErrorBoundResidual);
        if residual_interpolates(r) {
            fs.push(Feature::InterpolationResidual);
        }
    };
    match kind {
        BlockKind::Constant | BlockKind::Raw | BlockKind::Lossless => {}
        BlockKind::Neural => {
            if let Ok(t) = StreamTable::parse(payload, 2, MAX_STREAMS) {
                if t.streams.get(2).is_some_and(|l| l.len() > 1) {
                    fs.push(Feature::CellLevels);
                }
                if let Some(r) = t.streams.get(3) {
                    residual(&mut fs, r);
                }
            }
        }
        BlockKind::Wavelet => {
            fs.push(Feature::Wavelet);
            if let Ok(t) = StreamTable::parse(payload, 1, 2) {
                let s = t.streams[0];
                if s.get(1).is_some_and(|&b| b != 0) {
                    fs.push(Feature::WaveletLayouts);
                }
                if s.first().is_some_and(|&l| (l as usize) < wavelet_levels(sz, WAVELET_MAX_LEVELS)) {
                    fs.push(Feature::WaveletFewerLevels);
                }
                if s.get(2).is_some_and(|&b| b != 0) {
                    fs.push(Feature::WaveletSlices);
                }
                if let Some(r) = t.streams.get(1) {
                    residual(&mut fs, r);
                }
            }
        }
    }
    fs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_read_from_the_payload_bytes() {
        let tile = |levels: u8, layout: u8, sliced: u8| vec![levels, layout, sliced, 0, 0, 0, 128, 59];
        let wave = |s: &[u8]| block_features(BlockKind::Wavelet, &StreamTable::encode(&[s]), [64, 64, 64]);
        assert_eq!(wavelet_levels([64, 64, 64], WAVELET_MAX_LEVELS), 4);
        assert_eq!(minor_for(wave(&tile(4, 0, 0))), 4);
        assert_eq!(minor_for(wave(&tile(4, 2, 0))), 5);
        assert_eq!(minor_for(wave(&tile(3, 0, 0))), 6);
        assert_eq!(minor_for(wave(&tile(4, 0, 1))), 7);
        let interp = (-0.5f32).to_le_bytes();
        let with_residual = block_features(BlockKind::Wavelet, &StreamTable::encode(&[&tile(4, 0, 0), &interp]), [64, 64, 64]);
        assert_eq!(with_residual, [Feature::Wavelet, Feature::ErrorBoundResidual, Feature::InterpolationResidual]);
        let neural = |levels: &[u8], r: Option<&[u8]>| {
            let mut s: Vec<&[u8]> = vec![&[1, 2], &[3], levels];
            s.extend(r);
            minor_for(block_features(BlockKind::Neural, &StreamTable::encode(&s), [16; 3]))
        };
        assert_eq!((neural(&[5], None), neural(&[5, 6], None), neural(&[5], Some(&0.5f32.to_le_bytes())), neural(&[5], Some(&interp))), (0, 3, 1, 2));
        assert_eq!(minor_for(block_features(BlockKind::Raw, &[0; 8], [2, 1, 1])), 0);
        // Unparsable: the kind's own feature only.
        assert_eq!(block_features(BlockKind::Wavelet, &[9], [4; 3]), [Feature::Wavelet]);
    }
}
