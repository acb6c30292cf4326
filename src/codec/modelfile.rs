//! Model files: safetensors with metadata (profile, normalisation policy,
//! training recipe, format tag). Read in pure Rust, so the entropy-coding half
//! of the codec (tables, hyper-decoder) never needs libtorch; the tch networks
//! copy their weights from the same tensors.
//!
//! The model's identity is the SHA-256 of the file bytes (`ModelFile::hash`);
//! containers reference or embed a model by it.

use super::profile::Profile;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const MODEL_FORMAT: &str = "idlat-model-1";
const META_KEY: &str = "idlat";
/// File name of the shipped default model in `models/`.
pub const DEFAULT_MODEL_FILE: &str = "idlat-fast.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    // In the message, not a `source`, so anyhow's `{:#}` does not print it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("model file is not valid safetensors: {0}")]
    Parse(String),
    #[error("model file lacks {0}")]
    Missing(String),
    #[error("model tensor {name}: {msg}")]
    Tensor { name: String, msg: String },
    #[error("no model found: looked for {0}; pass --model PATH or set IDLAT_MODEL_PATH")]
    NotFound(String),
}

#[derive(Clone, Debug)]
pub enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor { shape, data: Data::F32(data) }
    }
}

#[derive(Clone, Debug)]
pub struct ModelFile {
    pub profile: Profile,
    pub meta: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, Tensor>,
    /// SHA-256 (hex) of the serialised bytes.
    pub hash: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelFile {
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Parse(e.to_string()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Parse(e.to_string()))?;
        // All metadata sits in one key holding sorted JSON: safetensors keeps
        // metadata in a HashMap, so several keys would serialise in random order
        // and change the content hash.
        let raw = header.metadata().as_ref().and_then(|m| m.get(META_KEY)).ok_or(ModelError::Missing(format!("metadata key '{META_KEY}'")))?;
        let meta: BTreeMap<String, String> = serde_json::from_str(raw).map_err(|e| ModelError::Parse(format!("metadata: {e}")))?;
        if meta.get("format").map(String::as_str) != Some(MODEL_FORMAT) {
            return Err(ModelError::Missing(format!("format tag '{MODEL_FORMAT}'")));
        }
        let profile: Profile = serde_json::from_str(meta.get("profile").ok_or(ModelError::Missing("profile".into()))?).map_err(|e| ModelError::Parse(format!("profile: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => Data::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
                Dtype::I32 => Data::I32(raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
                d => return Err(ModelError::Tensor { name, msg: format!("unsupported dtype {d:?}") }),
            };
            tensors.insert(name, Tensor { shape, data });
        }
        Ok(ModelFile { profile, meta, tensors, hash: sha256_hex(bytes) })
    }

    pub fn load(path: &Path) -> Result<ModelFile, ModelError> {
        let bytes = std::fs::read(path).map_err(|err| ModelError::Io { path: path.to_owned(), err })?;
        ModelFile::from_bytes(&bytes)
    }

    /// Serialises (tensors sorted by name, so equal content gives equal bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta = self.meta.clone();
        meta.insert("format".into(), MODEL_FORMAT.into());
        meta.insert("profile".into(), serde_json::to_string(&self.profile).expect("profile serialises"));
        let meta: HashMap<String, String> = [(META_KEY.to_string(), serde_json::to_string(&meta).expect("metadata serialises"))].into();
        let bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let (dt, bytes) = match &t.data {
                    Data::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    Data::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                };
                (n.clone(), dt, t.shape.clone(), bytes)
            })
            .collect();
        let views: Vec<(String, TensorView)> = bufs.iter().map(|(n, dt, s, b)| (n.clone(), TensorView::new(*dt, s.clone(), b).expect("shape matches data"))).collect();
        safetensors::serialize(views, Some(meta)).expect("serialising in memory cannot fail")
    }

    pub fn save(&self, path: &Path) -> Result<String, ModelError> {
        let bytes = self.to_bytes();
        let tmp = path.with_extension("safetensors.tmp");
        std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|err| ModelError::Io { path: path.to_owned(), err })?;
        Ok(sha256_hex(&bytes))
    }

    pub fn f32s(&self, name: &str, len: usize) -> Result<&[f32], ModelError> {
        match self.tensors.get(name) {
            Some(Tensor { data: Data::F32(v), .. }) if v.len() == len => Ok(v),
            Some(t) => Err(ModelError::Tensor { name: name.into(), msg: format!("expected {len} f32, shape {:?}", t.shape) }),
            None => Err(ModelError::Missing(format!("tensor {name}"))),
        }
    }

    pub fn i32s(&self, name: &str, len: usize) -> Result<&[i32], ModelError> {
        match self.tensors.get(name) {
            Some(Tensor { data: Data::I32(v), .. }) if v.len() == len => Ok(v),
            Some(t) => Err(ModelError::Tensor { name: name.into(), msg: format!("expected {len} i32, shape {:?}", t.shape) }),
            None => Err(ModelError::Missing(format!("tensor {name}"))),
        }
    }
}

/// Directories searched for a model referenced by hash or for the default:
/// `IDLAT_MODEL_PATH` (colon-separated), the `models/` directory beside the
/// executable's install prefix, and the source tree's `models/`.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(p) = std::env::var("IDLAT_MODEL_PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/release/idlat -> repo/models ; prefix/bin/idlat -> prefix/share/idlat/models
        for up in exe.ancestors().skip(1).take(3) {
            dirs.push(up.join("models"));
            dirs.push(up.join("share/idlat/models"));
        }
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// The shipped default model's path.
pub fn default_model_path() -> Result<PathBuf, ModelError> {
    let dirs = model_dirs();
    dirs.iter().map(|d| d.join(DEFAULT_MODEL_FILE)).find(|p| p.is_file()).ok_or_else(|| ModelError::NotFound(format!("{DEFAULT_MODEL_FILE} in {dirs:?}")))
}

/// Finds a model file whose content hash is `hash` in the model directories.
pub fn find_by_hash(hash: &str) -> Option<(PathBuf, Vec<u8>)> {
    for d in model_dirs() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("safetensors") {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&p) {
                if sha256_hex(&bytes) == hash {
                    return Some((p, bytes));
                }
            }
        }
    }
    None
}
