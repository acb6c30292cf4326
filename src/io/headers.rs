//! MetaImage (.mhd/.mha), NRRD (.nrrd/.nhdr) and VTK XML image data (.vti):
//! readers, and the header builders the writers and the FUSE view share.

use super::raw::{decode_samples, read_exact_payload};
use super::{inv, os_err, IoError};
use crate::volume::{DType, Endian, Volume, VolumeInfo};
use base64::Engine;
use std::io::Read;
use std::path::Path;

fn floats<const N: usize>(path: &Path, key: &str, s: &str) -> Result<[f64; N], IoError> {
    let v: Vec<f64> = s.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| inv(path, format!("{key}: '{s}' is not a list of numbers")))?;
    if v.len() < N {
        return Err(inv(path, format!("{key}: expected {N} values, got '{s}'")));
    }
    let mut out = [0.0; N];
    out.copy_from_slice(&v[..N]);
    Ok(out)
}

/// Dims from 1-3 sizes (missing trailing axes are 1); anything else is an error.
fn dims_from(path: &Path, sizes: &[usize]) -> Result<[usize; 3], IoError> {
    if sizes.is_empty() || sizes.len() > 3 || sizes.contains(&0) {
        return Err(inv(path, format!("only scalar 1-3D images are supported (sizes {sizes:?})")));
    }
    let mut d = [1usize; 3];
    d[..sizes.len()].copy_from_slice(sizes);
    d.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).filter(|&n| n <= 1 << 36).ok_or_else(|| inv(path, format!("dims {d:?} are too large")))?;
    Ok(d)
}

pub(super) fn read_all_capped(path: &Path, r: impl Read, cap: usize) -> Result<Vec<u8>, IoError> {
    let mut v = Vec::new();
    r.take(cap as u64 + 1).read_to_end(&mut v).map_err(|e| os_err(path, e))?;
    Ok(v)
}

// ---------------------------------------------------------------- MetaImage

pub fn mhd_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "MET_FLOAT" => DType::F32,
        "MET_DOUBLE" => DType::F64,
        "MET_UCHAR" => DType::U8,
        "MET_CHAR" => DType::I8,
        "MET_USHORT" => DType::U16,
        "MET_SHORT" => DType::I16,
        "MET_UINT" => DType::U32,
        "MET_INT" => DType::I32,
        _ => return None,
    })
}

pub fn read_mhd(path: &Path) -> Result<Volume, IoError> {
    let bytes = std::fs::read(path).map_err(|e| os_err(path, e))?;
    let mut info = VolumeInfo::new("", [1, 1, 1]);
    let (mut dims, mut dtype, mut file, mut header_size, mut compressed, mut ndims) = (None, None, None, 0u64, false, 3usize);
    let mut at = 0usize;
    // Header lines until ElementDataFile (the last key; .mha data follows it).
    while at < bytes.len() {
        let end = bytes[at..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| at + p);
        let line = String::from_utf8_lossy(&bytes[at..end]).trim().to_string();
        at = (end + 1).min(bytes.len());
        let Some((k, v)) = line.split_once('=') else { continue };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "NDims" => ndims = v.parse().map_err(|_| inv(path, format!("NDims '{v}'")))?,
            "DimSize" => {
                let s: Vec<usize> = v.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| inv(path, format!("DimSize '{v}'")))?;
                dims = Some(dims_from(path, &s)?);
            }
            "ElementType" => dtype = Some(mhd_dtype(v).ok_or_else(|| inv(path, format!("unsupported ElementType {v}")))?),
            "ElementSpacing" | "ElementSize" => info.spacing = floats::<3>(path, k, &format!("{v} 1 1"))?,
            "Offset" | "Position" | "Origin" => info.origin = floats::<3>(path, k, &format!("{v} 0 0"))?,
            "BinaryDataByteOrderMSB" | "ElementByteOrderMSB" => info.endian = if v.eq_ignore_ascii_case("true") { Endian::Big } else { Endian::Little },
            "HeaderSize" => header_size = v.parse().map_err(|_| inv(path, format!("HeaderSize '{v}'")))?,
            "CompressedData" => compressed = v.eq_ignore_ascii_case("true"),
            "ElementNumberOfChannels" if v != "1" => return Err(inv(path, "only scalar images are supported (ElementNumberOfChannels != 1)")),
            "ElementDataFile" => {
                file = Some(v.to_string());
                break;
            }
            _ => {}
        }
    }
    let _ = ndims;
    let dims = dims.ok_or_else(|| inv(path, "no DimSize"))?;
    let dtype = dtype.ok_or_else(|| inv(path, "no ElementType"))?;
    let file = file.ok_or_else(|| inv(path, "no ElementDataFile"))?;
    let n = dims.iter().product::<usize>();
    let len = (n * dtype.size()) as u64;
    if file.eq_ignore_ascii_case("LIST") || file.contains('%') {
        // LIST (one file per slice, named on the lines that follow) and printf-style
        // patterns split the data over many files; read as one name they gave "No such file".
        return Err(inv(path, format!("ElementDataFile = {file}: multi-file MetaImage data (LIST or a %d pattern) is not supported; write the volume as one data file or LOCAL")));
    }
    let data = if file == "LOCAL" {
        let rest = &bytes[at..];
        let rest = rest.get(header_size as usize..).ok_or_else(|| inv(path, "HeaderSize past the end"))?;
        if compressed {
            let v = read_all_capped(path, flate2::read::ZlibDecoder::new(rest), len as usize)?;
            if v.len() as u64 != len {
                return Err(inv(path, format!("compressed data holds {} bytes, expected {len}", v.len())));
            }
            v
        } else {
            if rest.len() as u64 != len {
                return Err(inv(path, format!("inline data has {} bytes, expected {len}", rest.len())));
            }
            rest.to_vec()
        }
    } else {
        let dp = path.parent().unwrap_or(Path::new(".")).join(&file);
        if compressed {
            let f = std::fs::File::open(&dp).map_err(|e| os_err(&dp, e))?;
            let v = read_all_capped(&dp, flate2::read::ZlibDecoder::new(std::io::BufReader::new(f)), len as usize)?;
            if v.len() as u64 != len {
                return Err(inv(&dp, format!("compressed data holds {} bytes, expected {len}", v.len())));
            }
            v
        } else {
            read_exact_payload(&dp, header_size, len, false)?
        }
    };
    info.dims = dims;
    info.dtype = dtype;
    Ok(Volume::new(info.clone(), decode_samples(&data, dtype, info.endian)))
}

/// MetaImage header for little-endian f32 data in `data_file`.
/// `ElementDataFile` must be the last line: ParaView stops parsing there.
pub fn mhd_text(info: &VolumeInfo, data_file: &str) -> String {
    let [nx, ny, nz] = info.dims;
    let (s, o) = (info.spacing, info.origin);
    format!(
        "ObjectType = Image\nNDims = 3\nDimSize = {nx} {ny} {nz}\nElementSpacing = {} {} {}\nOffset = {} {} {}\n\
         ElementType = MET_FLOAT\nBinaryData = True\nBinaryDataByteOrderMSB = False\nElementDataFile = {data_file}\n",
        s[0], s[1], s[2], o[0], o[1], o[2]
    )
}

// ---------------------------------------------------------------- NRRD

fn nrrd_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "float" => DType::F32,
        "double" => DType::F64,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => DType::U8,
        "signed char" | "int8" | "int8_t" => DType::I8,
        "ushort" | "unsigned short" | "uint16" | "uint16_t" | "unsigned short int" => DType::U16,
        "short" | "signed short" | "int16" | "int16_t" | "short int" => DType::I16,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => DType::U32,
        "int" | "signed int" | "int32" | "int32_t" => DType::I32,
        _ => return None,
    })
}

pub fn read_nrrd(path: &Path) -> Result<Volume, IoError> {
    let bytes = std::fs::read(path).map_err(|e| os_err(path, e))?;
    if !bytes.starts_with(b"NRRD000") {
        return Err(inv(path, "not a NRRD file (no NRRD000x magic)"));
    }
    let mut info = VolumeInfo::new("", [1, 1, 1]);
    let (mut dims, mut dtype, mut file, mut enc, mut skip, mut lskip) = (None, None, None, "raw".to_string(), 0u64, 0usize);
    let mut at = 0usize;
    let mut first = true;
    // A detached header may simply stop after its last field (teem and pynrrd
    // write `data file: X` as the final line, with or without a newline);
    // only attached data needs the blank line that separates it from the header.
    let mut at_eof = false;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let (raw_line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..p], at + p + 1),
            None => {
                at_eof = true;
                (rest, bytes.len())
            }
        };
        let line = String::from_utf8_lossy(raw_line).trim_end_matches('\r').to_string();
        at = next;
        if first {
            first = false;
            if at_eof {
                break;
            }
            continue;
        }
        if line.is_empty() {
            break;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim_start_matches('=').trim();
        match k.trim() {
            "type" => dtype = Some(nrrd_dtype(v).ok_or_else(|| inv(path, format!("unsupported type '{v}'")))?),
            "sizes" => {
                let s: Vec<usize> = v.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| inv(path, format!("sizes '{v}'")))?;
                dims = Some(dims_from(path, &s)?);
            }
            "dimension" if v.parse::<usize>().map_or(true, |d| d > 3) => return Err(inv(path, format!("dimension {v}: only scalar 1-3D images are supported"))),
            "endian" => info.endian = if v == "big" { Endian::Big } else { Endian::Little },
            "encoding" => enc = v.to_string(),
            "spacings" => info.spacing = floats::<3>(path, "spacings", &format!("{v} 1 1"))?,
            "space directions" => {
                let vecs: Vec<&str> = v.split(')').filter(|s| s.contains('(')).collect();
                for (a, s) in vecs.iter().take(3).enumerate() {
                    let nums = s.trim().trim_start_matches('(').replace(',', " ");
                    let d = floats::<3>(path, "space directions", &nums)?;
                    info.spacing[a] = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                }
            }
            "space origin" => info.origin = floats::<3>(path, "space origin", &v.trim_matches(|c| c == '(' || c == ')').replace(',', " "))?,
            "data file" | "datafile" => file = Some(v.to_string()),
            "byte skip" | "byteskip" => skip = v.parse().map_err(|_| inv(path, format!("byte skip '{v}' (only non-negative values supported)")))?,
            "line skip" | "lineskip" => lskip = v.parse().map_err(|_| inv(path, format!("line skip '{v}'")))?,
            _ => {}
        }
        if at_eof {
            break;
        }
    }
    if at_eof && file.is_none() {
        return Err(inv(path, "header does not end with a blank line (attached data must follow one; a detached header needs a 'data file:' field)"));
    }
    let dims = dims.ok_or_else(|| inv(path, "no sizes"))?;
    let dtype = dtype.ok_or_else(|| inv(path, "no type"))?;
    let len = (dims.iter().product::<usize>() * dtype.size()) as u64;
    let gz = match enc.as_str() {
        "raw" => false,
        "gzip" | "gz" => true,
        e => return Err(inv(path, format!("unsupported encoding '{e}' (raw and gzip are)"))),
    };
    let data = match file {
        Some(f) => {
            let dp = path.parent().unwrap_or(Path::new(".")).join(f);
            if lskip > 0 {
                return Err(inv(path, "line skip with a detached data file is not supported"));
            }
            if gz {
                let f = std::fs::File::open(&dp).map_err(|e| os_err(&dp, e))?;
                let v = read_all_capped(&dp, flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)), (len + skip) as usize)?;
                v.get(skip as usize..).filter(|d| d.len() as u64 == len).map(<[u8]>::to_vec).ok_or_else(|| inv(&dp, format!("decompressed data is not {len} bytes")))?
            } else {
                read_exact_payload(&dp, skip, len, false)?
            }
        }
        None => {
            let rest = &bytes[at..];
            let rest = if gz { read_all_capped(path, flate2::read::MultiGzDecoder::new(rest), (len + skip) as usize)? } else { rest.to_vec() };
            rest.get(skip as usize..).filter(|d| d.len() as u64 == len).map(<[u8]>::to_vec).ok_or_else(|| inv(path, format!("data is not {len} bytes")))?
        }
    };
    info.dims = dims;
    info.dtype = dtype;
    Ok(Volume::new(info.clone(), decode_samples(&data, dtype, info.endian)))
}

/// Detached NRRD header for little-endian f32 `data_file`. `type: float` (ParaView
/// rejects `float32`); spacing and origin through space directions/origin so the
/// origin survives.
pub fn nhdr_text(info: &VolumeInfo, data_file: &str) -> String {
    let [nx, ny, nz] = info.dims;
    let (s, o) = (info.spacing, info.origin);
    format!(
        "NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: {nx} {ny} {nz}\n\
         space directions: ({},0,0) (0,{},0) (0,0,{})\nspace origin: ({},{},{})\nendian: little\nencoding: raw\ndata file: {data_file}\n\n",
        s[0], s[1], s[2], o[0], o[1], o[2]
    )
}

// ---------------------------------------------------------------- VTK XML image data

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(&tag[i..j])
}

fn find_tag<'a>(text: &'a str, name: &str) -> Option<(usize, &'a str)> {
    let i = text.find(&format!("<{name}"))?;
    let j = text[i..].find('>')? + i;
    Some((i, &text[i..=j]))
}

fn vti_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "Float32" => DType::F32,
        "Float64" => DType::F64,
        "UInt8" => DType::U8,
        "Int8" => DType::I8,
        "UInt16" => DType::U16,
        "Int16" => DType::I16,
        "UInt32" => DType::U32,
        "Int32" => DType::I32,
        _ => return None,
    })
}

pub fn read_vti(path: &Path) -> Result<Volume, IoError> {
    let bytes = std::fs::read(path).map_err(|e| os_err(path, e))?;
    // XML part: everything before the raw appended data, if any.
    let xml_end = bytes.windows(13).position(|w| w == b"<AppendedData").unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..xml_end]).to_string();
    let (_, root) = find_tag(&text, "VTKFile").ok_or_else(|| inv(path, "no <VTKFile> element"))?;
    if attr(root, "type") != Some("ImageData") {
        return Err(inv(path, "not an ImageData .vti"));
    }
    let endian = if attr(root, "byte_order") == Some("BigEndian") { Endian::Big } else { Endian::Little };
    let header64 = attr(root, "header_type") == Some("UInt64");
    let zlib = match attr(root, "compressor") {
        None => false,
        Some("vtkZLibDataCompressor") => true,
        Some(c) => return Err(inv(path, format!("unsupported compressor {c}"))),
    };
    let (_, img) = find_tag(&text, "ImageData").ok_or_else(|| inv(path, "no <ImageData>"))?;
    let ext: Vec<i64> = attr(img, "WholeExtent").unwrap_or("").split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| inv(path, "bad WholeExtent"))?;
    if ext.len() != 6 || (0..3).any(|a| ext[2 * a + 1] < ext[2 * a]) {
        return Err(inv(path, "WholeExtent needs six values x0 x1 y0 y1 z0 z1"));
    }
    let dims = dims_from(path, &[(ext[1] - ext[0] + 1) as usize, (ext[3] - ext[2] + 1) as usize, (ext[5] - ext[4] + 1) as usize])?;
    let mut info = VolumeInfo::new("", dims);
    if let Some(o) = attr(img, "Origin") {
        info.origin = floats::<3>(path, "Origin", o)?;
    }
    if let Some(s) = attr(img, "Spacing") {
        info.spacing = floats::<3>(path, "Spacing", s)?;
    }
    for a in 0..3 {
        info.origin[a] += ext[2 * a] as f64 * info.spacing[a];
    }
    let (pd_at, pd) = find_tag(&text, "PointData").ok_or_else(|| inv(path, "no <PointData>"))?;
    let want = attr(pd, "Scalars").map(str::to_string);
    // Choose the named scalars array, else the first.
    let mut search = &text[pd_at..];
    let mut chosen = None;
    while let Some((i, tag)) = find_tag(search, "DataArray") {
        let body_start = i + tag.len();
        if chosen.is_none() || want.as_deref().is_some_and(|w| attr(tag, "Name") == Some(w)) {
            chosen = Some((tag.to_string(), search[body_start..].split("</DataArray>").next().unwrap_or("").to_string()));
            if want.as_deref().is_none_or(|w| attr(tag, "Name") == Some(w)) {
                break;
            }
        }
        search = &search[body_start..];
    }
    let (tag, body) = chosen.ok_or_else(|| inv(path, "no <DataArray> in <PointData>"))?;
    if attr(&tag, "NumberOfComponents").is_some_and(|c| c != "1") {
        return Err(inv(path, "only scalar arrays are supported (NumberOfComponents != 1)"));
    }
    let dtype = vti_dtype(attr(&tag, "type").unwrap_or("")).ok_or_else(|| inv(path, format!("unsupported DataArray type {:?}", attr(&tag, "type"))))?;
    let n = dims.iter().product::<usize>();
    let len = n * dtype.size();
    let hsize = if header64 { 8 } else { 4 };
    let uint = |b: &[u8]| -> u64 {
        let mut a = [0u8; 8];
        a[..hsize].copy_from_slice(&b[..hsize]);
        if endian == Endian::Big {
            a[..hsize].reverse();
        }
        u64::from_le_bytes(a)
    };
    // Decodes one binary block (header + data) into `len` raw bytes.
    let decode_block = |blob: &[u8]| -> Result<Vec<u8>, IoError> {
        if !zlib {
            let sz = uint(blob.get(..hsize).ok_or_else(|| inv(path, "data array header truncated"))?) as usize;
            let d = blob.get(hsize..hsize + sz).ok_or_else(|| inv(path, "data array shorter than its header says"))?;
            if sz != len {
                return Err(inv(path, format!("data array holds {sz} bytes, expected {len}")));
            }
            return Ok(d.to_vec());
        }
        let h = |i: usize| blob.get(i * hsize..(i + 1) * hsize).map(uint).ok_or_else(|| inv(path, "compressed header truncated"));
        let nb = h(0)? as usize;
        if nb > len + 1 {
            return Err(inv(path, "implausible compressed block count"));
        }
        let mut at = (3 + nb) * hsize;
        let mut out = Vec::with_capacity(len);
        for b in 0..nb {
            let cs = h(3 + b)? as usize;
            let chunk = blob.get(at..at + cs).ok_or_else(|| inv(path, "compressed block past the end"))?;
            out.extend(read_all_capped(path, flate2::read::ZlibDecoder::new(chunk), len - out.len())?);
            at += cs;
        }
        if out.len() != len {
            return Err(inv(path, format!("decompressed {} bytes, expected {len}", out.len())));
        }
        Ok(out)
    };
    let raw = match attr(&tag, "format").unwrap_or("ascii") {
        "ascii" => {
            let v: Vec<f64> = body.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| inv(path, "ascii data is not numeric"))?;
            if v.len() != n {
                return Err(inv(path, format!("{} ascii values, expected {n}", v.len())));
            }
            info.dims = dims;
            info.dtype = dtype;
            return Ok(Volume::new(info, v.iter().map(|&x| x as f32).collect()));
        }
        "binary" => {
            let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            if zlib {
                // Header and data are encoded separately.
                let nb_hdr = base64::engine::general_purpose::STANDARD.decode(&b64[..b64.len().min(hsize.div_ceil(3) * 4)]).unwrap_or_default();
                let nb = if nb_hdr.len() >= hsize { uint(&nb_hdr) as usize } else { 0 };
                let hlen = (3 + nb) * hsize;
                let henc = hlen.div_ceil(3) * 4;
                let hdr = base64::engine::general_purpose::STANDARD.decode(b64.get(..henc).ok_or_else(|| inv(path, "base64 header truncated"))?).map_err(|e| inv(path, format!("base64: {e}")))?;
                let data = base64::engine::general_purpose::STANDARD.decode(&b64[henc..]).map_err(|e| inv(path, format!("base64: {e}")))?;
                let mut blob = hdr[..hlen.min(hdr.len())].to_vec();
                blob.extend(data);
                decode_block(&blob)?
            } else {
                let blob = base64::engine::general_purpose::STANDARD.decode(&b64).map_err(|e| inv(path, format!("base64: {e}")))?;
                decode_block(&blob)?
            }
        }
        "appended" => {
            let off: usize = attr(&tag, "offset").unwrap_or("0").parse().map_err(|_| inv(path, "bad offset"))?;
            let app = &bytes[xml_end..];
            let us = app.iter().position(|&b| b == b'_').ok_or_else(|| inv(path, "no '_' marker in <AppendedData>"))?;
            let (_, app_tag) = find_tag(&String::from_utf8_lossy(&app[..us]), "AppendedData").map(|(i, t)| (i, t.to_string())).ok_or_else(|| inv(path, "no <AppendedData> element"))?;
            let start = app.get(us + 1 + off..).ok_or_else(|| inv(path, "offset past the end"))?;
            match attr(&app_tag, "encoding").unwrap_or("raw") {
                "raw" => decode_block(start)?,
                // VTK's default (vtkXMLImageDataWriter): the offset counts base64 characters.
                "base64" => decode_block(&appended_base64(path, start, hsize, zlib, &uint)?)?,
                e => return Err(inv(path, format!("unsupported AppendedData encoding {e}"))),
            }
        }
        f => return Err(inv(path, format!("unsupported DataArray format {f}"))),
    };
    info.dims = dims;
    info.dtype = dtype;
    info.endian = endian;
    Ok(Volume::new(info.clone(), decode_samples(&raw, dtype, endian)))
}

/// One array of base64-encoded appended data, decoded into the binary block
/// (header + data) that `decode_block` reads. VTK encodes an uncompressed
/// array's header and data as one base64 stream, a compressed array's header
/// (block count, sizes, compressed sizes) and its data as two; arrays follow
/// each other, so exactly the array's characters are decoded.
fn appended_base64(path: &Path, text: &[u8], hsize: usize, zlib: bool, uint: &dyn Fn(&[u8]) -> u64) -> Result<Vec<u8>, IoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    // Skips whitespace VTK never writes but an editor might have added.
    let chars: Vec<u8> = text.iter().copied().take_while(|&c| c != b'<').filter(|c| !c.is_ascii_whitespace()).collect();
    let take = |from: usize, bytes: usize| -> Result<Vec<u8>, IoError> {
        let n = bytes.div_ceil(3) * 4;
        let s = chars.get(from..from + n).ok_or_else(|| inv(path, "base64 appended data ends early"))?;
        b64.decode(s).map_err(|e| inv(path, format!("base64: {e}")))
    };
    if !zlib {
        // The header's first characters give its size, then the whole stream is decoded.
        let head = take(0, hsize)?;
        let size = uint(head.get(..hsize).ok_or_else(|| inv(path, "data array header truncated"))?);
        let total = (hsize as u64).checked_add(size).filter(|&t| t <= chars.len() as u64).ok_or_else(|| inv(path, "data array longer than the file"))?;
        return take(0, total as usize);
    }
    let nb = uint(take(0, hsize)?.get(..hsize).ok_or_else(|| inv(path, "compressed header truncated"))?);
    let hlen = nb.checked_add(3).and_then(|n| n.checked_mul(hsize as u64)).filter(|&h| h <= chars.len() as u64).ok_or_else(|| inv(path, "implausible compressed block count"))? as usize;
    let mut blob = take(0, hlen)?;
    blob.truncate(hlen);
    let mut csum = 0u64;
    for b in 0..nb as usize {
        csum = csum.saturating_add(uint(&blob[(3 + b) * hsize..(4 + b) * hsize]));
    }
    if csum > chars.len() as u64 {
        return Err(inv(path, "compressed sizes exceed the file"));
    }
    blob.extend(take(hlen.div_ceil(3) * 4, csum as usize)?);
    Ok(blob)
}

/// A .vti whose appended raw payload (UInt64 length, then f32 LE data) sits
/// between the returned prefix and suffix; a FUSE view can serve it without copying.
pub fn vti_parts(info: &VolumeInfo, name: &str) -> (String, String) {
    let [nx, ny, nz] = info.dims;
    let (s, o) = (info.spacing, info.origin);
    let prefix = format!(
        "<?xml version=\"1.0\"?>\n<VTKFile type=\"ImageData\" version=\"1.0\" byte_order=\"LittleEndian\" header_type=\"UInt64\">\n\
  <ImageData WholeExtent=\"0 {} 0 {} 0 {}\" Origin=\"{} {} {}\" Spacing=\"{} {} {}\">\n\
    <Piece Extent=\"0 {} 0 {} 0 {}\">\n      <PointData Scalars=\"{name}\">\n\
        <DataArray type=\"Float32\" Name=\"{name}\" format=\"appended\" offset=\"0\"/>\n      </PointData>\n\
      <CellData/>\n    </Piece>\n  </ImageData>\n  <AppendedData encoding=\"raw\">\n   _",
        nx - 1,
        ny - 1,
        nz - 1,
        o[0],
        o[1],
        o[2],
        s[0],
        s[1],
        s[2],
        nx - 1,
        ny - 1,
        nz - 1
    );
    let mut prefix = prefix;
    prefix.push_str("");
    (prefix, "\n  </AppendedData>\n</VTKFile>\n".to_string())
}
