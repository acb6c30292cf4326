//! NumPy .npy (through npyz): all eight dtypes, both byte orders, C and
//! Fortran order; 1-3D arrays (shape (nz, ny, nx) in C order, x fastest).

use super::{inv, os_err, IoError};
use crate::volume::{DType, Volume, VolumeInfo};
use npyz::{TypeChar, WriterBuilder};
use std::path::Path;

pub fn read_npy(path: &Path) -> Result<Volume, IoError> {
    let f = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let file_len = f.metadata().map_err(|e| os_err(path, e))?.len();
    let mut r = std::io::BufReader::new(f);
    let header = read_header(path, &mut r, Some(file_len))?;
    parse_npy(path, header, r, file_len)
}

/// A gzip-compressed .npy (`NAME.npy.gz`). The header is inflated and checked
/// first; the data are then inflated up to what the header's shape needs, so a
/// decompression bomb cannot allocate past the volume it declares.
pub fn read_npy_gz(path: &Path) -> Result<Volume, IoError> {
    let f = std::fs::File::open(path).map_err(|e| os_err(path, e))?;
    let mut r = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
    let header = read_header(path, &mut r, None)?;
    let need = data_bytes(path, &open(path, &header[..])?)?;
    let data = super::headers::read_all_capped(path, r, need as usize)?;
    let avail = (header.len() + data.len()) as u64;
    parse_npy(path, header, std::io::Cursor::new(data), avail)
}

/// numpy itself refuses headers past 10 000 bytes unless told otherwise.
const MAX_HEADER: u64 = 1 << 16;

/// Reads the magic, version, length field and header text, refusing a header
/// longer than the stream (`avail`) or than `MAX_HEADER` before allocating it
/// (the length field is u32 in versions 2 and 3).
fn read_header(path: &Path, r: &mut impl std::io::Read, avail: Option<u64>) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let inv = |msg: String| inv(path, msg);
    let mut head = vec![0u8; 10];
    r.read_exact(&mut head).map_err(|_| inv("not a valid .npy: shorter than its magic and header length".into()))?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(inv("not a valid .npy: bad magic".into()));
    }
    let (fixed, hlen) = match head[6] {
        1 => (10u64, u16::from_le_bytes([head[8], head[9]]) as u64),
        2 | 3 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| inv("not a valid .npy: truncated header length".into()))?;
            head.extend_from_slice(&b);
            (12, u32::from_le_bytes([head[8], head[9], b[0], b[1]]) as u64)
        }
        v => return Err(inv(format!("not a valid .npy: unknown format version {v}"))),
    };
    if hlen > MAX_HEADER || avail.is_some_and(|a| fixed + hlen > a) {
        return Err(inv(format!("not a valid .npy: header of {hlen} bytes is longer than the file or than {MAX_HEADER}")));
    }
    let mut text = Vec::new();
    r.take(hlen).read_to_end(&mut text).map_err(|e| os_err(path, e))?;
    if text.len() as u64 != hlen {
        return Err(inv("not a valid .npy: truncated header".into()));
    }
    // The header is a Python literal: a number of thousands of digits keeps its parser
    // busy for minutes with big-integer arithmetic, and deep nesting runs its stack out
    // (found by fuzzing). Valid headers have numbers of at most 20 digits (u64) and
    // nest 2 deep.
    let (mut run, mut depth) = (0usize, 0i64);
    for &c in &text {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run > 20 {
            return Err(inv("not a valid .npy: header holds a number longer than 20 digits".into()));
        }
        depth += match c {
            b'(' | b'[' | b'{' => 1,
            b')' | b']' | b'}' => -1,
            _ => 0,
        };
        if depth > 8 {
            return Err(inv("not a valid .npy: header nests deeper than 8".into()));
        }
    }
    head.extend_from_slice(&text);
    Ok(head)
}

fn open<R: std::io::Read>(path: &Path, r: R) -> Result<npyz::NpyFile<R>, IoError> {
    npyz::NpyFile::new(r).map_err(|e| inv(path, format!("not a valid .npy: {e}")))
}

/// Bytes of data the header's shape and dtype declare (checked: the shape
/// comes from the file and may be absurd).
fn data_bytes<R: std::io::Read>(path: &Path, npy: &npyz::NpyFile<R>) -> Result<u64, IoError> {
    let n = npy.shape().iter().try_fold(1u64, |a, &s| a.checked_mul(s));
    let size = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.size_field(),
        _ => 1,
    };
    n.and_then(|n| n.checked_mul(size)).ok_or_else(|| inv(path, format!("shape {:?} overflows", npy.shape())))
}

/// Parses .npy data after its checked `header`; `avail` is how many bytes the
/// whole stream holds.
fn parse_npy(path: &Path, header: Vec<u8>, rest: impl std::io::Read, avail: u64) -> Result<Volume, IoError> {
    use std::io::Read;
    let inv = |msg: String| inv(path, msg);
    let hlen = header.len() as u64;
    let npy = open(path, std::io::Cursor::new(header).chain(rest))?;
    let file_len = avail.saturating_sub(hlen);
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
    let need = data_bytes(path, &npy)?;
    if need > file_len {
        return Err(inv(format!("shape {shape:?} needs {need} bytes of data but the file has {file_len}")));
    }
    let n = usize::try_from(need / dtype.size() as u64).map_err(|_| inv(format!("shape {shape:?} is too large")))?;
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
