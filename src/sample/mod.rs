//! Deterministic synthetic stand-ins for the paper's datasets.
//! (Placeholder API until the generators land: every call errors.)

use crate::volume::{Dims, Volume};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vortex,
    Nyx,
    Isabel,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vortex" => Ok(Kind::Vortex),
            "nyx" => Ok(Kind::Nyx),
            "isabel" => Ok(Kind::Isabel),
            _ => Err(format!("unknown sample kind '{s}' (vortex, nyx, isabel)")),
        }
    }
}

pub fn generate(_kind: Kind, _dims: Dims, _seed: u64, _step: usize) -> Volume {
    unimplemented!("sample generators have not landed yet")
}
