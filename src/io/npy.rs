//! NumPy .npy (through npyz): all eight dtypes, both byte orders, C and
//! Fortran order; 1-3D arrays (shape (nz, ny, nx) in C order, x fastest).

use super::{os_err, IoError};
use crate::volume::{DType, Volume, VolumeInfo};
use npyz::{TypeChar, WriterBuilder};
use std::path::Path;

pub fn read_npy(path: &Path) -> Result<Volume, IoError> {
    let f = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let file_len = f.metadata().map_err(|e| os_err(path, e))?.len();
    parse_npy(path, std::io::BufReader::new(f), file_len)
}

/// A gzip-compressed .npy (`NAME.npy.gz`). It is inflated into memory first so
/// the shape can be checked against the real data length before `npyz`
/// allocates for it, as for a plain file; the inflated bytes are no larger than
/// the volume itself.
pub fn read_npy_gz(path: &Path) -> Result<Volume, IoError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f))
        .read_to_end(&mut bytes)
        .map_err(|e| IoError::Invalid { path: path.to_owned(), msg: format!("not valid gzip: {e}") })?;
    let len = bytes.len() as u64;
    parse_npy(path, std::io::Cursor::new(bytes), len)
}

/// Parses .npy bytes from `r`; `avail` is how many bytes the stream holds.
fn parse_npy(path: &Path, r: impl std::io::Read, avail: u64) -> Result<Volume, IoError> {
    let inv = |msg: String| IoError::Invalid { path: path.to_owned(), msg };
    let file_len = avail;
    let npy = npyz::NpyFile::new(r).map_err(|e| inv(format!("not a valid .npy: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    if shape.is_empty() || shape.len() > 3 || shape.contains(&0) {
        return Err(inv(format!("only scalar 1-3D arrays are supported (shape {shape:?})")));
    }
    let npyz::DType::Plain(ts) = npy.dtype() else { return Err(inv("structured dtypes are not supported".into())) };
    let dtype = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        (TypeChar::Uint, 1) => DType::U8,
        (TypeChar::Int, 1) => DType::I8,
        (TypeChar::Uint, 2) => DType::U16,
        (TypeChar::Int, 2) => DType::I16,
        (TypeChar::Uint, 4) => DType::U32,
        (TypeChar::Int, 4) => DType::I32,
        _ => return Err(inv(format!("unsupported dtype {ts}"))),
    };
    // Checked: the shape comes from the file and may be absurd.
    let n = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s)).ok_or_else(|| inv(format!("shape {shape:?} overflows")))?;
    let need = (n as u64).saturating_mul(dtype.size() as u64);
    if need > file_len {
        return Err(inv(format!("shape {shape:?} needs {need} bytes but the file has {file_len}")));
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let conv = |e: std::io::Error| inv(format!("reading data: {e}"));
    let data: Vec<f32> = match dtype {
        DType::F32 => npy.into_vec::<f32>().map_err(conv)?,
        DType::F64 => npy.into_vec::<f64>().map_err(conv)?.into_iter().map(|v| v as f32).collect(),
        DType::U8 => npy.into_vec::<u8>().map_err(conv)?.into_iter().map(f32::from).collect(),
        DType::I8 => npy.into_vec::<i8>().map_err(conv)?.into_iter().map(f32::from).collect(),
        DType::U16 => npy.into_vec::<u16>().map_err(conv)?.into_iter().map(f32::from).collect(),
        DType::I16 => npy.into_vec::<i16>().map_err(conv)?.into_iter().map(f32::from).collect(),
        DType::U32 => npy.into_vec::<u32>().map_err(conv)?.into_iter().map(|v| v as f32).collect(),
        DType::I32 => npy.into_vec::<i32>().map_err(conv)?.into_iter().map(|v| v as f32).collect(),
    };
    if data.len() != n {
        return Err(inv(format!("{} values for shape {shape:?}", data.len())));
    }
    // C order (nz, ny, nx) has x fastest; Fortran order (nx, ny, nz) too.
    let mut dims = [1usize; 3];
    for (a, &s) in shape.iter().rev().enumerate() {
        dims[a] = s;
    }
    if fortran {
        for (a, &s) in shape.iter().enumerate() {
            dims[a] = s;
        }
    }
    let mut info = VolumeInfo::new("", dims);
    info.dtype = dtype;
    info.endian = if ts.endianness() == npyz::Endianness::Big { crate::volume::Endian::Big } else { crate::volume::Endian::Little };
    Ok(Volume::new(info, data))
}

/// Writes C-order f32 with shape (nz, ny, nx), atomically (see `atomic`).
pub fn write_npy(path: &Path, vol: &Volume) -> Result<(), IoError> {
    let mut staged = super::atomic::Staged::new();
    staged.write(path, |w| write_npy_to(w, vol))?;
    staged.commit().map(|_| ())
}

/// Writes a volume as .npy (C-order f32, shape (nz, ny, nx)) to `w`.
pub fn write_npy_to(w: &mut impl std::io::Write, vol: &Volume) -> std::io::Result<()> {
    let [nx, ny, nz] = vol.info.dims;
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&[nz as u64, ny as u64, nx as u64]).writer(w).begin_nd()?;
    w.extend(vol.data.iter().copied())?;
    w.finish()
}
