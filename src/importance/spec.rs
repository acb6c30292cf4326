//! The importance spec language: parser (errors point at the offending
//! character) and canonical printer (`parse(s.to_string()) == s`).
//! Grammar reference: docs/IMPORTANCE.md.

use crate::volume::{Dims, Region};
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Falloff {
    Exp,
    Inv,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueTest {
    Above(f64),
    Below(f64),
    Range(f64, f64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Iso { value: f64, k: f64, falloff: Falloff, world: bool },
    Value(ValueTest),
    Near { value: f64, width: f64 },
    Tf(Vec<(f64, f64)>),
    Box { lo: [f64; 3], hi: [f64; 3], soft: f64, world: bool },
    Sphere { centre: [f64; 3], r: f64, soft: f64, world: bool },
    Grad,
    Var { w: usize },
    Entropy { w: usize, bins: usize },
    Uniform(f64),
    File(String),
    Time(Vec<(f64, f64)>),
    Of { volume: String, spec: Box<Spec> },
    Max(Vec<Spec>),
    Min(Vec<Spec>),
    Mul(Vec<Spec>),
    Mix(Vec<(f64, Spec)>),
    Scale(f64, Box<Spec>),
    Clamp(f64, f64, Box<Spec>),
}

impl Spec {
    /// The box of a volume of `dims` whose values fix this map over `r`: `r` itself
    /// for pointwise maps, grown by the stencil for `grad` (1 voxel) and `var` (w/2),
    /// snapped out to `entropy`'s w³ tiles, the bounding box for combinations (with
    /// `Whole` for what they need of the rest). `None` where any voxel may matter:
    /// the distance to an isosurface (the nearest crossing may lie anywhere:
    /// exp(-k d) stays above f32's resolution of 1 out to d = 16.6/k, 83 voxels at
    /// the default k, so a 256³ tile would need a 424³ box; fn=inv never falls
    /// below it), files and other volumes (read whole).
    pub fn support(&self, r: Region, dims: Dims) -> Option<Region> {
        let grow = |h: usize| {
            let lo = r.origin.map(|o| o.saturating_sub(h));
            Region { origin: lo, size: [0, 1, 2].map(|a| (r.origin[a] + r.size[a] + h).min(dims[a]) - lo[a]) }
        };
        match self {
            Spec::Value(_) | Spec::Near { .. } | Spec::Tf(_) | Spec::Box { .. } | Spec::Sphere { .. } | Spec::Uniform(_) | Spec::Time(_) => Some(r),
            Spec::Grad => Some(grow(1)),
            Spec::Var { w } => Some(grow(w / 2)),
            Spec::Entropy { w, .. } => {
                let lo = r.origin.map(|o| o / w * w);
                Some(Region { origin: lo, size: [0, 1, 2].map(|a| (r.origin[a] + r.size[a]).next_multiple_of(*w).min(dims[a]) - lo[a]) })
            }
            Spec::Iso { .. } | Spec::File(_) | Spec::Of { .. } => None,
            Spec::Max(v) | Spec::Min(v) | Spec::Mul(v) => v.iter().try_fold(r, |acc, s| Some(acc.union(s.support(r, dims)?))),
            Spec::Mix(v) => v.iter().try_fold(r, |acc, (_, s)| Some(acc.union(s.support(r, dims)?))),
            Spec::Scale(_, s) | Spec::Clamp(_, _, s) => s.support(r, dims),
        }
    }

    /// The leaves normalised by their maximum over the whole volume (`grad`,
    /// `var`), in the order `compute` meets them: what `Whole::maxima` holds.
    pub fn normalised(&self) -> Vec<&Spec> {
        fn walk<'a>(s: &'a Spec, out: &mut Vec<&'a Spec>) {
            match s {
                Spec::Grad | Spec::Var { .. } => out.push(s),
                Spec::Of { spec, .. } | Spec::Scale(_, spec) | Spec::Clamp(_, _, spec) => walk(spec, out),
                Spec::Max(v) | Spec::Min(v) | Spec::Mul(v) => v.iter().for_each(|s| walk(s, out)),
                Spec::Mix(v) => v.iter().for_each(|(_, s)| walk(s, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// A spec error: the message plus the byte position it refers to.
/// `pos` is always on a char boundary; `column` gives it in chars for the caret.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecError {
    pub spec: String,
    pub pos: usize,
    pub msg: String,
}

impl SpecError {
    /// The column (in chars, not bytes) that `pos` points at, so the caret sits
    /// under the right character when the spec contains non-ASCII text.
    pub fn column(&self) -> usize {
        let end = self.pos.min(self.spec.len());
        // `get` rather than slicing: a position inside a character must not panic here.
        self.spec.get(..end).map_or_else(|| self.spec.char_indices().take_while(|(i, _)| *i < end).count(), |p| p.chars().count())
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "importance spec: {}", self.msg)?;
        writeln!(f, "  {}", self.spec)?;
        write!(f, "  {}^", " ".repeat(self.column()))
    }
}

impl std::error::Error for SpecError {}

const TERMS: [&str; 12] = ["iso", "value", "near", "tf", "box", "sphere", "grad", "var", "entropy", "uniform", "file", "time"];
const FUNCS: [&str; 6] = ["max", "min", "mul", "mix", "scale", "clamp"];

/// `pos` is a byte offset that only ever moves by whole characters (`advance_while`,
/// `eat`, ASCII literals), so slicing at it cannot split a multi-byte character.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Nesting of `spec` calls (max(…), of=…), bounded by `MAX_DEPTH`.
    depth: usize,
}

/// Deepest nesting of combinators a spec may have. The parser and evaluator
/// recurse once per level; unbounded, `max(max(…` 10,000 deep overflowed the
/// stack. Real specs nest a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// One `key[=value]` option of a term, with where the key and the value start.
struct Opt {
    pos: usize,
    key: String,
    val: Option<String>,
    val_pos: usize,
}

type R<T> = Result<T, SpecError>;

impl<'a> Parser<'a> {
    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> R<T> {
        Err(SpecError { spec: self.s.to_string(), pos, msg: msg.into() })
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Moves past every character matching `keep`, a whole character at a time
    /// (paths and names may hold non-ASCII text), and returns what it passed.
    fn advance_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        let len: usize = self.rest().chars().take_while(|&c| keep(c)).map(char::len_utf8).sum();
        self.pos += len;
        &self.s[start..self.pos]
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(self.pos, format!("expected '{c}'"))
        }
    }

    fn ident(&mut self) -> &'a str {
        self.skip_ws();
        self.advance_while(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn number(&mut self) -> R<f64> {
        self.skip_ws();
        let start = self.pos;
        while self.rest().starts_with(|c: char| c.is_ascii_digit() || "+-.eE".contains(c)) {
            // A '.' followed by '.' is the range operator, not part of the number.
            if self.rest().starts_with("..") {
                break;
            }
            self.pos += 1;
        }
        let t = &self.s[start..self.pos];
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => self.err(start, if t.is_empty() { "expected a number".to_string() } else { format!("'{t}' is not a number") }),
        }
    }

    /// Does a new spec start at the current position (after a comma)?
    fn spec_starts_here(&self) -> bool {
        let r = self.rest().trim_start();
        let word: String = r.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let after = r[word.len()..].chars().next();
        // Options are `key=value` or bare words; anything shaped like a spec
        // (`word:`, `word(`, `grad`, `of=`, or a mix weight `0.5*`) belongs to the parent.
        let weight = r.find('*').is_some_and(|i| r[..i].parse::<f64>().is_ok());
        (!word.is_empty() && matches!(after, Some(':') | Some('('))) || (word == "grad" && matches!(after, None | Some(',') | Some(')'))) || r.starts_with("of=") || weight
    }

    /// Comma-separated options of a term until the term ends: `key=value` or bare words.
    fn options(&mut self) -> R<Vec<Opt>> {
        let mut out = Vec::new();
        while self.rest().trim_start().starts_with(',') {
            let save = self.pos;
            self.eat(',');
            if self.spec_starts_here() {
                self.pos = save;
                break;
            }
            self.skip_ws();
            let start = self.pos;
            let key = self.ident().to_string();
            if key.is_empty() {
                return self.err(start, "expected an option such as k=0.2 or world");
            }
            let (val, val_pos) = if self.eat('=') {
                self.skip_ws();
                let vs = self.pos;
                (Some(self.advance_while(|c| !",)".contains(c)).trim().to_string()), vs)
            } else {
                (None, self.pos)
            };
            out.push(Opt { pos: start, key, val, val_pos });
        }
        Ok(out)
    }

    fn num_opt(&self, o: &Opt) -> R<f64> {
        let key = &o.key;
        match o.val.as_deref().map(str::parse::<f64>) {
            Some(Ok(x)) if x.is_finite() => Ok(x),
            None => self.err(o.pos, format!("option '{key}' needs a number, e.g. {key}=0.5")),
            Some(_) => {
                // Point at the first character that cannot belong to a number
                // (`k=0.2é` points at the é), else at the start of the value.
                let text = self.s.get(o.val_pos..).unwrap_or("");
                let bad = text.char_indices().take_while(|(_, c)| !",)".contains(*c)).find(|(_, c)| !(c.is_ascii_digit() || "+-.eE ".contains(*c)));
                let at = o.val_pos + bad.map_or(0, |(i, _)| i);
                self.err(at, format!("option '{key}' needs a number, e.g. {key}=0.5"))
            }
        }
    }

    fn triple(&mut self) -> R<[f64; 3]> {
        let a = self.number()?;
        self.expect(',')?;
        let b = self.number()?;
        self.expect(',')?;
        let c = self.number()?;
        Ok([a, b, c])
    }

    fn pairs(&mut self) -> R<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            let x = self.number()?;
            self.expect('=')?;
            let y = self.number()?;
            if out.last().is_some_and(|&(px, _): &(f64, f64)| x <= px) {
                return self.err(at, "points must be in increasing order");
            }
            out.push((x, y));
            let save = self.pos;
            if !self.eat(',') {
                break;
            }
            if self.spec_starts_here() {
                self.pos = save;
                break;
            }
        }
        Ok(out)
    }

    fn spec(&mut self) -> R<Spec> {
        if self.depth >= MAX_DEPTH {
            return self.err(self.pos, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.depth += 1;
        let r = self.spec_inner();
        self.depth -= 1;
        r
    }

    fn spec_inner(&mut self) -> R<Spec> {
        self.skip_ws();
        let start = self.pos;
        if self.rest().starts_with("of=") {
            self.pos += 3;
            let ns = self.pos;
            let name = self.advance_while(|c| c != ':').to_string();
            if name.is_empty() || !self.eat(':') {
                return self.err(ns, "expected of=NAME:SPEC");
            }
            return Ok(Spec::Of { volume: name, spec: Box::new(self.spec()?) });
        }
        let word = self.ident();
        if word.is_empty() {
            return self.err(start, "expected an importance kind (iso, value, box, …) or max(…)");
        }
        if FUNCS.contains(&word) {
            self.expect('(')?;
            let spec = match word {
                "scale" | "clamp" => {
                    let a = self.number()?;
                    self.expect(',')?;
                    if word == "scale" {
                        Spec::Scale(a, Box::new(self.spec()?))
                    } else {
                        let b = self.number()?;
                        self.expect(',')?;
                        if b < a {
                            return self.err(start, "clamp(lo, hi, spec) needs lo <= hi");
                        }
                        Spec::Clamp(a, b, Box::new(self.spec()?))
                    }
                }
                "mix" => {
                    let mut items = Vec::new();
                    loop {
                        let w = self.number()?;
                        self.expect('*')?;
                        items.push((w, self.spec()?));
                        if !self.eat(',') {
                            break;
                        }
                    }
                    Spec::Mix(items)
                }
                _ => {
                    let mut items = vec![self.spec()?];
                    while self.eat(',') {
                        items.push(self.spec()?);
                    }
                    match word {
                        "max" => Spec::Max(items),
                        "min" => Spec::Min(items),
                        _ => Spec::Mul(items),
                    }
                }
            };
            self.expect(')')?;
            return Ok(spec);
        }
        if !TERMS.contains(&word) {
            return self.err(start, format!("unknown importance kind '{word}' (iso value near tf box sphere grad var entropy uniform file time, of=NAME:…, max min mul mix scale clamp)"));
        }
        if word == "grad" {
            return Ok(Spec::Grad);
        }
        self.expect(':')?;
        let spec = match word {
            "iso" => {
                let value = self.number()?;
                let (mut k, mut falloff, mut world) = (0.2, Falloff::Exp, false);
                for o in self.options()? {
                    match (o.key.as_str(), o.val.as_deref()) {
                        ("k", _) => k = self.num_opt(&o)?,
                        ("fn", Some("exp")) => falloff = Falloff::Exp,
                        ("fn", Some("inv")) => falloff = Falloff::Inv,
                        ("world", None) => world = true,
                        _ => return self.err(o.pos, format!("unknown iso option '{}' (k=, fn=exp|inv, world)", o.key)),
                    }
                }
                if k <= 0.0 {
                    return self.err(start, "iso: k must be positive");
                }
                Spec::Iso { value, k, falloff, world }
            }
            "value" => {
                if self.eat('>') {
                    Spec::Value(ValueTest::Above(self.number()?))
                } else if self.eat('<') {
                    Spec::Value(ValueTest::Below(self.number()?))
                } else {
                    let a = self.number()?;
                    if !self.rest().starts_with("..") {
                        return self.err(self.pos, "expected value:>T, value:<T or value:A..B");
                    }
                    self.pos += 2;
                    let b = self.number()?;
                    if b < a {
                        return self.err(start, "value:A..B needs A <= B");
                    }
                    Spec::Value(ValueTest::Range(a, b))
                }
            }
            "near" => {
                let value = self.number()?;
                let mut width = None;
                for o in self.options()? {
                    match o.key.as_str() {
                        "w" => width = Some(self.num_opt(&o)?),
                        _ => return self.err(o.pos, format!("unknown near option '{}' (w=)", o.key)),
                    }
                }
                let Some(width) = width.filter(|w| *w > 0.0) else { return self.err(start, "near needs a positive width: near:7,w=0.5") };
                Spec::Near { value, width }
            }
            "tf" => Spec::Tf(self.pairs()?),
            "time" => Spec::Time(self.pairs()?),
            "box" => {
                let lo = self.triple()?;
                self.expect(':')?;
                let hi = self.triple()?;
                let (mut soft, mut world) = (0.0, false);
                for o in self.options()? {
                    match o.key.as_str() {
                        "soft" => soft = self.num_opt(&o)?,
                        "world" => world = true,
                        _ => return self.err(o.pos, format!("unknown box option '{}' (soft=, world)", o.key)),
                    }
                }
                if (0..3).any(|a| hi[a] <= lo[a]) {
                    return self.err(start, "box:x0,y0,z0:x1,y1,z1 needs x0<x1, y0<y1, z0<z1 (half-open)");
                }
                Spec::Box { lo, hi, soft: soft.max(0.0), world }
            }
            "sphere" => {
                let centre = self.triple()?;
                let (mut r, mut soft, mut world) = (None, 0.0, false);
                for o in self.options()? {
                    match o.key.as_str() {
                        "r" => r = Some(self.num_opt(&o)?),
                        "soft" => soft = self.num_opt(&o)?,
                        "world" => world = true,
                        _ => return self.err(o.pos, format!("unknown sphere option '{}' (r=, soft=, world)", o.key)),
                    }
                }
                let Some(r) = r.filter(|r| *r > 0.0) else { return self.err(start, "sphere needs a positive radius: sphere:64,64,64,r=20") };
                Spec::Sphere { centre, r, soft: soft.max(0.0), world }
            }
            "var" | "entropy" => {
                let (mut w, mut bins) = (if word == "var" { 5 } else { 8 }, 32);
                // The first option follows the colon directly (var:w=5), the rest after commas.
                self.skip_ws();
                let p0 = self.pos;
                let mut opts = Vec::new();
                let k = self.ident().to_string();
                if !k.is_empty() {
                    if !self.eat('=') {
                        return self.err(p0, format!("expected {word}:w=N"));
                    }
                    let vs = self.pos;
                    let val = self.advance_while(|c| !",)".contains(c)).trim().to_string();
                    opts.push(Opt { pos: p0, key: k, val: Some(val), val_pos: vs });
                }
                opts.extend(self.options()?);
                for o in opts {
                    let n = self.num_opt(&o)?;
                    match o.key.as_str() {
                        "w" => w = n as usize,
                        "bins" if word == "entropy" => bins = n as usize,
                        _ => return self.err(o.pos, format!("unknown {word} option '{}'", o.key)),
                    }
                }
                if !(1..=64).contains(&w) || !(2..=1024).contains(&bins) {
                    return self.err(start, "window w must be 1..=64 and bins 2..=1024");
                }
                if word == "var" {
                    Spec::Var { w }
                } else {
                    Spec::Entropy { w, bins }
                }
            }
            "uniform" => {
                let v = self.number()?;
                if !(0.0..=1.0).contains(&v) {
                    return self.err(start, "uniform:V needs 0 <= V <= 1");
                }
                Spec::Uniform(v)
            }
            "file" => {
                let ps = self.pos;
                let path = self.advance_while(|c| !",)".contains(c)).trim().to_string();
                if path.is_empty() {
                    return self.err(ps, "file: needs a path");
                }
                Spec::File(path)
            }
            _ => unreachable!("every TERMS entry is handled"),
        };
        Ok(spec)
    }
}

/// Parses a spec; the whole input must be consumed.
pub fn parse(s: &str) -> Result<Spec, SpecError> {
    let mut p = Parser { s, pos: 0, depth: 0 };
    let spec = p.spec()?;
    p.skip_ws();
    if !p.rest().is_empty() {
        return p.err(p.pos, format!("unexpected '{}'", p.rest().chars().next().unwrap_or(' ')));
    }
    Ok(spec)
}

fn list<T>(f: &mut fmt::Formatter<'_>, items: &[T], each: impl Fn(&mut fmt::Formatter<'_>, &T) -> fmt::Result) -> fmt::Result {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ",")?;
        }
        each(f, it)?;
    }
    Ok(())
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let world = |w: &bool| if *w { ",world" } else { "" };
        match self {
            Spec::Iso { value, k, falloff, world: w } => {
                write!(f, "iso:{value},k={k}")?;
                if *falloff == Falloff::Inv {
                    write!(f, ",fn=inv")?;
                }
                write!(f, "{}", world(w))
            }
            Spec::Value(ValueTest::Above(t)) => write!(f, "value:>{t}"),
            Spec::Value(ValueTest::Below(t)) => write!(f, "value:<{t}"),
            Spec::Value(ValueTest::Range(a, b)) => write!(f, "value:{a}..{b}"),
            Spec::Near { value, width } => write!(f, "near:{value},w={width}"),
            Spec::Tf(p) => {
                write!(f, "tf:")?;
                list(f, p, |f, (x, y)| write!(f, "{x}={y}"))
            }
            Spec::Time(p) => {
                write!(f, "time:")?;
                list(f, p, |f, (x, y)| write!(f, "{x}={y}"))
            }
            Spec::Box { lo, hi, soft, world: w } => {
                write!(f, "box:{},{},{}:{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])?;
                if *soft > 0.0 {
                    write!(f, ",soft={soft}")?;
                }
                write!(f, "{}", world(w))
            }
            Spec::Sphere { centre: c, r, soft, world: w } => {
                write!(f, "sphere:{},{},{},r={r}", c[0], c[1], c[2])?;
                if *soft > 0.0 {
                    write!(f, ",soft={soft}")?;
                }
                write!(f, "{}", world(w))
            }
            Spec::Grad => write!(f, "grad"),
            Spec::Var { w } => write!(f, "var:w={w}"),
            Spec::Entropy { w, bins } => write!(f, "entropy:w={w},bins={bins}"),
            Spec::Uniform(v) => write!(f, "uniform:{v}"),
            Spec::File(p) => write!(f, "file:{p}"),
            Spec::Of { volume, spec } => write!(f, "of={volume}:{spec}"),
            Spec::Max(v) | Spec::Min(v) | Spec::Mul(v) => {
                let name = match self {
                    Spec::Max(_) => "max",
                    Spec::Min(_) => "min",
                    _ => "mul",
                };
                write!(f, "{name}(")?;
                list(f, v, |f, s| write!(f, "{s}"))?;
                write!(f, ")")
            }
            Spec::Mix(v) => {
                write!(f, "mix(")?;
                list(f, v, |f, (w, s)| write!(f, "{w}*{s}"))?;
                write!(f, ")")
            }
            Spec::Scale(s, inner) => write!(f, "scale({s},{inner})"),
            Spec::Clamp(a, b, inner) => write!(f, "clamp({a},{b},{inner})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The caret line of an error, without its two-space indent.
    fn caret_col(e: &SpecError) -> usize {
        let last = e.to_string().lines().last().unwrap_or_default().to_string();
        last.chars().count() - 3
    }

    #[test]
    fn deeply_nested_spec_is_refused_not_a_stack_overflow() {
        // 10,000 levels overflowed the stack; the cap gives an error instead.
        let deep = format!("{}uniform:1{}", "max(".repeat(10_000), ")".repeat(10_000));
        let e = parse(&deep).unwrap_err();
        assert!(e.msg.contains("nested more than 64 levels"), "{e}");
        let of = format!("{}uniform:1", "of=a:".repeat(10_000));
        assert!(parse(&of).unwrap_err().msg.contains("nested"));
        // Up to the cap still parses and prints back.
        let ok = format!("{}uniform:1{}", "max(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert_eq!(parse(&ok).unwrap().to_string(), ok);
    }

    #[test]
    fn non_ascii_file_path_parses() {
        assert_eq!(parse("file:carte_é.raw").unwrap(), Spec::File("carte_é.raw".into()));
        assert_eq!(parse("max(file:/données/κ.npy,grad)").unwrap(), Spec::Max(vec![Spec::File("/données/κ.npy".into()), Spec::Grad]));
        assert_eq!(parse("of=Pé:grad").unwrap(), Spec::Of { volume: "Pé".into(), spec: Box::new(Spec::Grad) });
    }

    #[test]
    fn non_ascii_in_a_number_points_at_that_character() {
        for (s, at) in [("iso:7,k=0.2é", "é"), ("box:0,0,0:10,10,10,soft=é", "é"), ("var:w=5é", "é"), ("iso:7é", "é"), ("max(grad,中)", "中")] {
            let e = parse(s).unwrap_err();
            let col = s.find(at).map(|b| s[..b].chars().count()).unwrap();
            assert_eq!(e.column(), col, "{s}: {e}");
            assert_eq!(caret_col(&e), col, "{s}: {e}");
            assert!(s.is_char_boundary(e.pos), "{s}");
        }
    }

    #[test]
    fn column_of_a_position_inside_a_character_does_not_panic() {
        let e = SpecError { spec: "é".into(), pos: 1, msg: String::new() };
        assert_eq!(e.column(), 1);
    }

    /// Characters that make spec-shaped strings, with multi-byte ones mixed in.
    fn spec_char() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'i', 's', 'o', 'v', 'a', 'l', 'u', 'e', 'f', 'n', 'w', 'r', 'd', 'g', 'k', 'x', 'm', 'b', ':', ',', '=', '(', ')', '*', '.', '>', '<', '-', '+', ' ', '0', '1', '7', 'é', 'ß', '中', '😀',
            '\u{301}',
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_string_parses_or_errs_without_panicking(s in any::<String>()) {
            if let Err(e) = parse(&s) {
                prop_assert!(s.is_char_boundary(e.pos));
                let _ = e.to_string();
            }
        }

        #[test]
        fn spec_shaped_strings_parse_or_err_without_panicking(
            prefix in prop::sample::select(vec!["", "iso:", "file:", "of=", "box:0,0,0:", "var:", "entropy:", "max(", "mix(0.5*", "tf:", "value:", "near:7,", "sphere:1,2,3,"]),
            body in prop::collection::vec(spec_char(), 0..24),
        ) {
            let s = format!("{prefix}{}", body.into_iter().collect::<String>());
            match parse(&s) {
                // Whatever parses must print back to something that parses the same.
                Ok(spec) => prop_assert_eq!(parse(&spec.to_string()).ok(), Some(spec)),
                Err(e) => {
                    prop_assert!(s.is_char_boundary(e.pos));
                    let _ = e.to_string();
                }
            }
        }
    }
}
