//! Raw bricks: any numeric type, either byte order, optional header bytes,
//! optionally gzip-compressed. The expected size is known from dims × type,
//! so a file of any other size is an error naming both numbers, and a `.gz`
//! is never inflated past expected + 1 bytes.

use super::{os_err, IoError};
use crate::volume::{DType, Endian};
use std::io::Read;
use std::path::Path;

/// Converts `bytes` (exactly `n` elements of `dtype` in `endian`) to f32.
pub fn decode_samples(bytes: &[u8], dtype: DType, endian: Endian) -> Vec<f32> {
    let s = dtype.size();
    let big = endian == Endian::Big;
    bytes
        .chunks_exact(s)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..s].copy_from_slice(c);
            if big {
                b[..s].reverse();
            }
            match dtype {
                DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                DType::F64 => f64::from_le_bytes(b) as f32,
                DType::U8 => b[0] as f32,
                DType::I8 => b[0] as i8 as f32,
                DType::U16 => u16::from_le_bytes([b[0], b[1]]) as f32,
                DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
                DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
                DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            }
        })
        .collect()
}

/// A sample as an integer type's value: rounded, clamped to [lo, hi], 0 when not finite.
pub(crate) fn to_int(x: f32, lo: f64, hi: f64) -> f64 {
    if x.is_finite() {
        (x as f64).round().clamp(lo, hi)
    } else {
        0.0
    }
}

/// Writes f32 samples as `dtype` little-endian, encoding a piece at a time: a copy of
/// the whole volume would be one more buffer of its size to fault in.
pub fn write_samples(w: &mut impl std::io::Write, v: &[f32], dtype: DType) -> std::io::Result<()> {
    for piece in v.chunks(1 << 16) {
        w.write_all(&encode_samples(piece, dtype))?;
    }
    Ok(())
}

/// Encodes f32 samples as `dtype` little-endian (rounding and clamping integers).
fn encode_samples(v: &[f32], dtype: DType) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * dtype.size());
    for &x in v {
        let r = |lo: f64, hi: f64| to_int(x, lo, hi);
        match dtype {
            DType::F32 => out.extend_from_slice(&x.to_le_bytes()),
            DType::F64 => out.extend_from_slice(&(x as f64).to_le_bytes()),
            DType::U8 => out.push(r(0.0, 255.0) as u8),
            DType::I8 => out.push(r(-128.0, 127.0) as i8 as u8),
            DType::U16 => out.extend_from_slice(&(r(0.0, 65535.0) as u16).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(r(-32768.0, 32767.0) as i16).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&(r(0.0, u32::MAX as f64) as u32).to_le_bytes()),
            DType::I32 => out.extend_from_slice(&(r(i32::MIN as f64, i32::MAX as f64) as i32).to_le_bytes()),
        }
    }
    out
}

/// Reads `len` bytes after skipping `skip`, from a plain or gzip file; the
/// file must hold exactly that much (plus the skipped header).
pub fn read_exact_payload(path: &Path, skip: u64, len: u64, gz: bool) -> Result<Vec<u8>, IoError> {
    let inv = |msg: String| IoError::Invalid { path: path.to_owned(), msg };
    let file = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let want = skip.checked_add(len).ok_or_else(|| inv("size overflows".into()))?;
    if !gz {
        expect_len(path, &file, skip, want)?;
    }
    let mut r: Box<dyn Read> = if gz { Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))) } else { Box::new(std::io::BufReader::new(file)) };
    if skip > 0 {
        let n = std::io::copy(&mut (&mut r).take(skip), &mut std::io::sink()).map_err(|e| os_err(path, e))?;
        if n != skip {
            return Err(inv(format!("file ends inside the {skip}-byte header")));
        }
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize).map_err(|_| inv(format!("cannot allocate {len} bytes")))?;
    (&mut r).take(len + 1).read_to_end(&mut buf).map_err(|e| os_err(path, e))?;
    if buf.len() as u64 != len {
        let what = if gz { "decompressed data" } else { "data" };
        return Err(inv(if (buf.len() as u64) < len {
            format!("{what} has {} bytes but dims × type size = {len}", buf.len() + skip as usize)
        } else {
            format!("{what} is longer than dims × type size = {len}")
        }));
    }
    Ok(buf)
}

/// The bytes of `r` (x fastest) in an uncompressed file that holds `skip` header
/// bytes plus exactly the samples of `dims`, `size` bytes each (checked, as
/// `read_exact_payload` does). A slab is one read; a box reads each plane's rows as
/// one span when that reads at most 4x the box's bytes, else row by row.
pub fn read_region(path: &Path, skip: u64, dims: crate::volume::Dims, size: usize, r: crate::volume::Region) -> Result<Vec<u8>, IoError> {
    use std::os::unix::fs::FileExt;
    let inv = |msg: String| IoError::Invalid { path: path.to_owned(), msg };
    let file = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let total = dims.iter().try_fold(size as u64, |a, &d| a.checked_mul(d as u64));
    let want = total.and_then(|t| t.checked_add(skip)).ok_or_else(|| inv("size overflows".into()))?;
    expect_len(path, &file, skip, want)?;
    if !r.within(dims) {
        return Err(inv(format!("region at {:?} of size {:?} lies outside the {:?} volume", r.origin, r.size, dims)));
    }
    let len = r.len() * size;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| inv(format!("cannot allocate {len} bytes")))?;
    buf.resize(len, 0);
    let read = |at: u64, out: &mut [u8]| file.read_exact_at(out, skip + at).map_err(|e| os_err(path, e));
    let [nx, ny, _] = dims;
    let [x0, y0, z0] = r.origin;
    let [sx, sy, sz] = r.size;
    if len == 0 {
        return Ok(buf);
    }
    if r.is_slab(dims) {
        read((z0 * nx * ny * size) as u64, &mut buf)?;
        return Ok(buf);
    }
    let row = sx * size;
    let span = ((sy - 1) * nx + sx) * size;
    let mut tmp = Vec::new();
    for z in 0..sz {
        let first = (((z0 + z) * ny + y0) * nx + x0) * size;
        let out = &mut buf[z * sy * row..(z + 1) * sy * row];
        if span <= 4 * sy * row {
            tmp.resize(span, 0);
            read(first as u64, &mut tmp)?;
            for (y, o) in out.chunks_exact_mut(row).enumerate() {
                o.copy_from_slice(&tmp[y * nx * size..y * nx * size + row]);
            }
        } else {
            for (y, o) in out.chunks_exact_mut(row).enumerate() {
                read((first + y * nx * size) as u64, o)?;
            }
        }
    }
    Ok(buf)
}

/// A raw file must hold exactly its header (`skip`) and data: `want` bytes in all.
fn expect_len(path: &Path, file: &std::fs::File, skip: u64, want: u64) -> Result<(), IoError> {
    let have = file.metadata().map_err(|e| os_err(path, e))?.len();
    if have != want {
        return Err(IoError::Invalid { path: path.to_owned(), msg: format!("file has {have} bytes but dims × type size{} = {want}", if skip > 0 { " + header bytes" } else { "" }) });
    }
    Ok(())
}
