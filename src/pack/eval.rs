//! A pack's report, and with evaluation what the full pack achieved, decoded as
//! any reader will (a quality target is only estimated on samples while packing).

use super::inputs::Resolved;
use super::{Job, PackError, Report, VolumeReport};

#[cfg(feature = "torch")]
pub(super) type Neural = crate::codec::pipeline::Codec;
#[cfg(not(feature = "torch"))]
pub(super) type Neural = ();

pub(super) fn report(job: &Job, ins: &Resolved, mut done: Vec<VolumeReport>, stats: crate::format::FinishStats, t0: std::time::Instant, codec: Option<&Neural>) -> Result<Report, PackError> {
    let time = t0.elapsed();
    let mut quality = None;
    if job.evaluates() {
        let c = crate::format::Container::open(job.out)?;
        let mut q = crate::metrics::Sums::default();
        for (i, v) in done.iter_mut().enumerate() {
            let (vol, mask) = ins.read(i)?;
            let imp = ins.map(i, &vol)?;
            let rec = decode(codec, &c, crate::format::VolumeId(i as u32))?;
            let sums = crate::metrics::sums(&vol.data, &rec, Some(&imp), mask.as_deref());
            v.quality = Some(sums.quality());
            q = q.merge(&sums);
            if let Some(b) = &v.bound {
                let mut scaled = imp;
                crate::importance::apply_scale(&mut scaled, v.importance_scale);
                v.bound_check = Some(crate::codec::bound::report(b, &vol.data, &rec, &scaled, mask.as_deref()));
            }
        }
        quality = Some(q.quality());
    }
    Ok(Report { volumes: done, file_bytes: stats.file_bytes, model_bytes: stats.model_bytes, time, quality, leader: true })
}

fn decode(codec: Option<&Neural>, c: &crate::format::Container, v: crate::format::VolumeId) -> Result<Vec<f32>, PackError> {
    #[cfg(feature = "torch")]
    if let Some(codec) = codec {
        return Ok(crate::codec::store::decode_volume(Some(codec), c, v, 16, |_, _| {})?);
    }
    let _ = codec;
    Ok(crate::codec::wavelet::decode_volume(c, v, |_, _| {})?)
}
