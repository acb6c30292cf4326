//! Enumerations chosen by name (CLI flags, stored settings) without the library
//! depending on clap: each lists its values with a name and a help line, and
//! `cli` turns that list into a flag parser.

/// A closed set of named values.
pub trait Choice: Copy + PartialEq + Send + Sync + 'static {
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];
    /// The value's name, as a flag takes it.
    fn name(self) -> &'static str;
    /// One line of help for the value.
    fn help(self) -> &'static str {
        ""
    }
    /// The value named `s`, or an error listing the names.
    fn from_name(s: &str) -> Result<Self, String> {
        Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| format!("unknown value '{s}' (expected {})", Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")))
    }
}

/// Implements `Choice`, `FromStr` and `Display` for an enum from one table:
/// `named!(Unit { Block => "block": "help line", Cell => "cell" })`.
macro_rules! named {
    ($t:ident { $($v:ident => $name:literal $(: $help:literal)?),+ $(,)? }) => {
        impl $crate::choice::Choice for $t {
            const ALL: &'static [$t] = &[$($t::$v),+];
            fn name(self) -> &'static str {
                match self {
                    $($t::$v => $name),+
                }
            }
            fn help(self) -> &'static str {
                match self {
                    $($t::$v => $crate::choice::named!(@help $($help)?)),+
                }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t as $crate::choice::Choice>::from_name(s)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }
    };
    (@help) => {
        ""
    };
    (@help $h:literal) => {
        $h
    };
}
pub(crate) use named;
