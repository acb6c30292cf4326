//! Volume names from file names, and natural sort of inputs.

use std::path::{Path, PathBuf};

/// Natural order: "vorts2" < "vorts10" (digit runs compare numerically).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (sx, sy) = (&x[..nx], &y[..ny]);
                let tx = sx.iter().skip_while(|&&c| c == b'0').count();
                let ty = sy.iter().skip_while(|&&c| c == b'0').count();
                let o = tx.cmp(&ty).then_with(|| sx[nx - tx..].cmp(&sy[ny - ty..])).then_with(|| nx.cmp(&ny));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

pub fn natural_sort(paths: &mut [PathBuf]) {
    paths.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
}

/// Stem without data extensions (`Pf01.bin.gz` → `Pf01`).
fn stem(p: &Path) -> String {
    let mut name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    for ext in [".gz", ".raw", ".bin", ".data", ".dat", ".npy", ".mhd", ".mha", ".nrrd", ".nhdr", ".vti"] {
        if name.to_ascii_lowercase().ends_with(ext) && name.len() > ext.len() {
            name.truncate(name.len() - ext.len());
        }
    }
    name
}

/// Safe, unique volume names from file names (HDF5/NetCDF inputs: file stem,
/// dataset and step, `sci::volume_stem`) (the container's name rule,
/// spec §4): only [A-Za-z0-9._-], no leading dot, never empty, at most
/// `MAX_NAME_LEN` bytes (longer stems are cut); duplicates get _2, _3, ….
pub fn volume_names(paths: &[PathBuf]) -> Vec<String> {
    use crate::format::layout::MAX_NAME_LEN;
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let stem = match super::sci::SciRef::parse(p) {
            Some(r) => super::sci::volume_stem(&r),
            None => stem(p),
        };
        let mut n: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        while n.starts_with('.') {
            n.remove(0);
        }
        if n.is_empty() {
            n = "volume".into();
        }
        // ASCII only by now, so any byte index is a character boundary.
        n.truncate(MAX_NAME_LEN);
        let base = n.clone();
        let mut k = 2;
        while out.contains(&n) {
            let suffix = format!("_{k}");
            n = format!("{}{suffix}", &base[..base.len().min(MAX_NAME_LEN - suffix.len())]);
            k += 1;
        }
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_and_names() {
        let mut v: Vec<PathBuf> = ["t10.raw", "t2.raw", "t1.raw", "t02b.raw"].iter().map(PathBuf::from).collect();
        natural_sort(&mut v);
        assert_eq!(v, ["t1.raw", "t2.raw", "t02b.raw", "t10.raw"].iter().map(PathBuf::from).collect::<Vec<_>>());
        let n = volume_names(&["a/x y.raw", "b/x y.raw", ".hidden.npy", "Pf01.bin.gz", "..raw"].iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(n, ["x_y", "x_y_2", "hidden", "Pf01", "volume"]);
    }

    #[test]
    fn long_stems_are_cut_to_the_name_cap() {
        let max = crate::format::layout::MAX_NAME_LEN;
        let long = format!("{}.raw", "s".repeat(251));
        let n = volume_names(&[PathBuf::from(&long), PathBuf::from(&long)]);
        assert_eq!(n[0], "s".repeat(max));
        assert_eq!(n[1].len(), max);
        assert!(n[1].ends_with("_2"));
        for name in &n {
            crate::format::meta::check_volume_name(name).unwrap();
        }
    }
}
