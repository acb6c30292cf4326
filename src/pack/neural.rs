//! The neural profiles (`fast`, `paper`, or a model file): one process, volumes held whole.

use super::inputs::Resolved;
use super::{volume_meta, Event, Job, PackError, Profile, Progress, Report, Target, VolumeReport, LOSSLESS_BLOCK};
use crate::codec::blocks::Norm;
use crate::codec::engine::select_device;
use crate::codec::modelfile::{default_model_path, ModelFile};
use crate::codec::pipeline::{BlockData, Codec, EncodeOptions};
use crate::codec::rate::{search, subsample};
use crate::format::{block, BlockId, BlockKind, ContainerWriter, ModelRef, NeuralPayload};
use crate::volume::Region;

pub(super) fn run(job: &Job, progress: &mut dyn Progress) -> Result<Report, PackError> {
    let s = job.settings();
    let t0 = std::time::Instant::now();
    let ins = Resolved::resolve(job, progress)?;
    // Model: the shipped default is referenced by hash unless `embed_model`.
    let default_path = default_model_path().ok();
    let dev = select_device(s.device)?;
    // A lossless pack stores no neural block and needs no model.
    let (codec, model_bytes) = if s.lossless {
        (None, Vec::new())
    } else {
        let model_path = match (&s.model, s.profile) {
            (Some(p), _) => p.clone(),
            (None, Profile::Paper) => default_path
                .as_ref()
                .and_then(|d| d.parent())
                .map(|d| d.join("idlat-paper.safetensors"))
                .filter(|p| p.is_file())
                .ok_or_else(|| PackError::Invalid("the paper profile's model (idlat-paper.safetensors) was not found beside the default model".into()))?,
            (None, _) => default_path.clone().ok_or_else(|| PackError::Invalid("no --model given and the shipped default model was not found".into()))?,
        };
        let model_bytes = std::fs::read(&model_path).map_err(|source| PackError::ModelFile { what: format!("reading model {}", model_path.display()), source })?;
        let model = ModelFile::from_bytes(&model_bytes).map_err(|source| PackError::Model { what: format!("model {}", model_path.display()), source })?;
        (Some(Codec::load(model, dev)?), model_bytes)
    };
    let is_default = default_path.as_deref().and_then(|d| std::fs::read(d).ok()).is_some_and(|b| b == model_bytes);
    let embed = codec.is_some() && (s.embed_model || !is_default);
    let core = codec.as_ref().map_or(LOSSLESS_BLOCK, |c| c.core());
    let mut writer = ContainerWriter::create(job.out, job.overwrite)?;
    if let Some(c) = &codec {
        writer.set_model(ModelRef { hash: c.model.hash.clone(), profile: c.model.profile.name.clone(), embedded: embed }, embed.then_some(&model_bytes[..]));
    }
    // The neural rate search reads a PSNR target as wPSNR.
    let target = s.target.map(|t| match t {
        Target::Ratio(r) => crate::codec::rate::Target::Ratio(r),
        Target::Psnr(p) | Target::WPsnr(p) => crate::codec::rate::Target::WPsnr(p),
    });
    let mut done = Vec::new();
    for i in 0..ins.len() {
        let t = std::time::Instant::now();
        let (vol, mut imp) = ins.load(i)?;
        let (lo, hi) = vol.range();
        let norm = Norm::from_range(lo, hi);
        let dims = vol.dims();
        let grid = crate::format::BlockGrid::cubic(dims, core);
        let bound = job.bound(lo, hi)?;
        if bound.is_some() {
            writer.require(crate::format::Feature::ErrorBoundResidual);
        }
        let eopts = EncodeOptions { batch: s.batch, lossless: false, steer: s.steer };
        let mut scale = 1.0f32;
        if let (Some(target), Some(codec)) = (target, &codec) {
            let sample = subsample(grid.len(), 48);
            let choice = search(codec, &vol.data, dims, &imp, norm, eopts, target, &sample, bound.as_ref());
            scale = choice.scale;
            progress.event(Event::Scale { volume: &vol.info.name, scale: choice.scale, ratio: choice.est_ratio, wpsnr: choice.est_wpsnr, samples: sample.len(), met: choice.met });
            crate::importance::apply_scale(&mut imp, scale);
        }
        let mut meta = volume_meta(&vol.info, vol.range(), i, norm, [core; 3], codec.as_ref().map_or(0, |c| c.model.profile.halo_vox), &ins.spec);
        meta.codec.insert("importance_scale".into(), serde_json::json!(scale));
        if let Some(b) = &bound {
            meta.codec.insert("error_bound".into(), serde_json::to_value(b)?);
        }
        if let Some(c) = &codec {
            meta.codec.insert("profile".into(), serde_json::json!(c.model.profile.name));
        }
        let vid = writer.add_volume(meta)?;
        progress.begin(&vol.info.name, grid.len() as u64);
        let mut stored = 0u64;
        let mut sink = |id: usize, d: BlockData| -> Result<(), PackError> {
            let (kind, payload) = match d {
                BlockData::Constant(v) => (BlockKind::Constant, v.to_le_bytes().to_vec()),
                BlockData::Lossless(v) => (BlockKind::Lossless, block::lossless_payload(&v)),
                BlockData::Neural { z, y, levels, residual } => {
                    // write_block requires the features the payload uses.
                    match residual {
                        None => (BlockKind::Neural, NeuralPayload::encode(&[&z, &y, &levels])),
                        Some(r) => (BlockKind::Neural, NeuralPayload::encode(&[&z, &y, &levels, &r])),
                    }
                }
            };
            stored += payload.len() as u64 + crate::format::layout::ENTRY_LEN;
            writer.write_block(vid, BlockId(id as u64), kind, &payload)?;
            progress.advance(1);
            Ok(())
        };
        let mut bstats = crate::codec::bound::BlockStats::default();
        match (&codec, &bound) {
            (Some(c), Some(b)) => c.encode_volume_bounded(&vol.data, dims, &imp, norm, eopts, b, &mut bstats, sink)?,
            (Some(c), None) => c.encode_volume(&vol.data, dims, &imp, norm, eopts, sink)?,
            (None, _) => {
                for id in 0..grid.len() {
                    let (o, sz) = grid.extent(BlockId(id as u64));
                    sink(id, BlockData::Lossless(crate::format::grid::cut(&vol.data, dims, Region { origin: o, size: sz })))?;
                }
            }
        }
        progress.end();
        let v = VolumeReport { importance_scale: scale, bound, bounded: bstats.bounded, corrected: bstats.corrected, time: Some(t.elapsed()), ..VolumeReport::new(&vol.info, stored) };
        progress.event(Event::Volume(&v));
        done.push(v);
    }
    let stats = writer.finish()?;
    super::eval::report(job, &ins, done, stats, t0, codec.as_ref())
}
