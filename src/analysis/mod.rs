//! Latent-space analysis (paper sections 5.4 and 6.4): what the stored
//! latents say about the data, without decoding a voxel.
//!
//! - `table`: the latent table `idlat latents` writes (.npy plus a JSON
//!   sidecar with the grid), split into blocks or latent cells.
//! - `cluster`: hierarchical clustering (kodama) and spectral clustering
//!   (normalised affinity eigenvectors, then seeded k-means), cluster purity.
//! - `tsne`: 2-D t-SNE projection (bhtsne) with a seeded start.
//! - `isosim`: isosurface similarity maps, from latents (cosine) and from
//!   distance fields (Bruckner and Möller's normalised mutual information),
//!   and their selection of representative isovalues.
//! - `plot`: PNG scatter plots, heat maps and dendrograms (plotters, with a
//!   font compiled in so no system font library is needed).
//!
//! Everything here is pure Rust and deterministic: the same inputs and seed
//! give the same labels, embeddings and selections on any machine (reductions
//! run in a fixed order; random starts come from a seeded ChaCha stream).
//! Computing latents (`idlat isosim`) needs the codec and lives in `cli`.

pub mod cluster;
pub mod isosim;
pub mod plot;
pub mod table;
pub mod tsne;

/// Errors of the analysis layer; each says which input or parameter is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{path}: {msg}")]
    Input { path: std::path::PathBuf, msg: String },
    #[error("{0}")]
    Param(String),
    #[error("plot {path}: {msg}")]
    Plot { path: std::path::PathBuf, msg: String },
}

pub(crate) fn param(msg: impl Into<String>) -> AnalysisError {
    AnalysisError::Param(msg.into())
}
