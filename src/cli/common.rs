//! Flags shared by several subcommands.

use clap::Args as ClapArgs;

/// How to read input volumes (raw bricks need these; self-describing formats ignore them).
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct InputArgs {
    /// Grid size of raw inputs, x fastest: `128x128x128`.
    #[arg(long)]
    pub dims: Option<String>,
    /// Element type of raw inputs: f32 f64 u8 i8 u16 i16 u32 i32.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Byte order of raw inputs: little or big.
    #[arg(long)]
    pub endian: Option<String>,
    /// Bytes to skip at the start of each raw input.
    #[arg(long, default_value_t = 0)]
    pub header_bytes: u64,
    /// Value marking missing voxels (e.g. 1e35 for land in Isabel).
    #[arg(long)]
    pub missing: Option<f64>,
}

/// Where the codec runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceArg {
    #[default]
    Auto,
    Cpu,
    Cuda,
}
