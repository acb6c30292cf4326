//! Adaptive binary models over constriction's ANS coder.
//!
//! The wavelet coder binarises every symbol (significance, magnitude, sign)
//! and codes each decision under an adaptive probability that encoder and
//! decoder update identically. ANS is a stack, so the encoder first runs the
//! models forward, recording each decision with the probability it was coded
//! under, then pushes the record onto the coder in reverse; the decoder pops in
//! forward order and updates the same models as it goes.

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode, Encode};
use std::borrow::Borrow;
use std::num::NonZeroU32;

/// Probability precision of a decision (bits).
const PREC: usize = 16;
const ONE: u32 = 1 << PREC;
/// Probabilities stay in [FLOOR, ONE - FLOOR]: a certain-looking decision still costs
/// at most ~0.0014 bits, and a surprise at most 10 bits.
const FLOOR: u32 = 64;

/// A Bernoulli model with P(true) = p1 / 2^16 (both outcomes nonzero).
#[derive(Clone, Copy)]
struct Bin(u32);

impl EntropyModel<PREC> for Bin {
    type Symbol = bool;
    type Probability = u32;
}

impl EncoderModel<PREC> for Bin {
    #[inline]
    fn left_cumulative_and_probability(&self, symbol: impl Borrow<bool>) -> Option<(u32, NonZeroU32)> {
        let p0 = ONE - self.0;
        if *symbol.borrow() {
            Some((p0, NonZeroU32::new(self.0)?))
        } else {
            Some((0, NonZeroU32::new(p0)?))
        }
    }
}

impl DecoderModel<PREC> for Bin {
    #[inline]
    fn quantile_function(&self, q: u32) -> (bool, u32, NonZeroU32) {
        let p0 = ONE - self.0;
        // Both probabilities are >= FLOOR by construction, so the unwraps cannot fail.
        if q < p0 {
            (false, 0, NonZeroU32::new(p0).expect("p0 >= FLOOR"))
        } else {
            (true, p0, NonZeroU32::new(self.0).expect("p1 >= FLOOR"))
        }
    }
}

/// An adaptive binary context: the mean of a fast and a slow estimate of P(true),
/// the slow one warming up at rate 1/(n+1.5)-ish so a fresh context learns quickly.
#[derive(Clone, Copy)]
pub struct Ctx {
    fast: u16,
    slow: u16,
    n: u8,
}

impl Default for Ctx {
    fn default() -> Ctx {
        Ctx { fast: 1 << 15, slow: 1 << 15, n: 0 }
    }
}

const FAST: u32 = 4;
const SLOW: u32 = 7;

impl Ctx {
    #[inline]
    pub fn p1(&self) -> u32 {
        ((self.fast as u32 + self.slow as u32) >> 1).clamp(FLOOR, ONE - FLOOR)
    }

    #[inline]
    pub fn update(&mut self, bit: bool) {
        let s = (self.n as u32 + 1).min(SLOW);
        let f = s.min(FAST);
        let t: i32 = if bit { 65535 } else { 0 };
        self.fast = (self.fast as i32 + ((t - self.fast as i32) >> f)) as u16;
        self.slow = (self.slow as i32 + ((t - self.slow as i32) >> s)) as u16;
        self.n = self.n.saturating_add(1);
    }
}

/// Records decisions for a later reverse push (encoder side).
#[derive(Default)]
pub struct Writer {
    /// (p1 << 1) | bit per decision.
    rec: Vec<u32>,
}

impl Writer {
    #[inline]
    pub fn bit(&mut self, c: &mut Ctx, bit: bool) {
        self.rec.push((c.p1() << 1) | bit as u32);
        c.update(bit);
    }

    /// A decision at probability 1/2 (signs, mantissa bits).
    #[inline]
    pub fn raw(&mut self, bit: bool) {
        self.rec.push((1 << PREC) | bit as u32);
    }

    /// The ANS words of everything recorded.
    pub fn finish(self) -> Vec<u32> {
        let mut ans = DefaultAnsCoder::new();
        for &r in self.rec.iter().rev() {
            // Every recorded probability is in [FLOOR, ONE - FLOOR]: encoding cannot fail.
            ans.encode_symbol(r & 1 == 1, Bin(r >> 1)).expect("valid binary model");
        }
        ans.into_compressed().expect("Vec backend cannot fail")
    }
}

/// Pops decisions in coding order (decoder side).
pub struct Reader {
    ans: DefaultAnsCoder,
}

impl Reader {
    pub fn new(words: Vec<u32>) -> Result<Reader, String> {
        Ok(Reader { ans: DefaultAnsCoder::from_compressed(words).map_err(|_| "stream ends with a zero word".to_string())? })
    }

    #[inline]
    pub fn bit(&mut self, c: &mut Ctx) -> bool {
        // With a Vec backend, decoding past the end just reads zeros: a corrupt
        // stream yields garbage symbols (bounded by the callers) and fails `finish`.
        let b = self.ans.decode_symbol(Bin(c.p1())).unwrap_or(false);
        c.update(b);
        b
    }

    #[inline]
    pub fn raw(&mut self) -> bool {
        self.ans.decode_symbol(Bin(1 << 15)).unwrap_or(false)
    }

    /// A valid stream is exactly used up after its last symbol.
    pub fn finish(self) -> Result<(), String> {
        if self.ans.is_empty() {
            Ok(())
        } else {
            Err("data left after the last symbol".into())
        }
    }
}

/// Words ↔ little-endian bytes.
pub fn words_to_bytes(w: &[u32], out: &mut Vec<u8>) {
    out.extend(w.iter().flat_map(|x| x.to_le_bytes()));
}

pub fn bytes_to_words(b: &[u8]) -> Result<Vec<u32>, String> {
    if b.len() % 4 != 0 {
        return Err(format!("ANS stream of {} bytes is not whole words", b.len()));
    }
    Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_and_skewed_ones_are_cheap() {
        let mut w = Writer::default();
        let mut c = [Ctx::default(); 2];
        let bits: Vec<bool> = (0..20000).map(|i| i % 97 == 0).collect();
        for (i, &b) in bits.iter().enumerate() {
            w.bit(&mut c[i & 1], b);
            w.raw(i % 3 == 0);
        }
        for i in (0..12).rev() {
            w.raw((0xabcu32 >> i) & 1 == 1);
        }
        let words = w.finish();
        // 20000 raw bits + ~20000 * H(1/97) ≈ 1600 bits.
        assert!(words.len() * 32 < 20000 + 12 + 2600, "{} words", words.len());
        let mut r = Reader::new(words).unwrap();
        let mut c = [Ctx::default(); 2];
        for (i, &b) in bits.iter().enumerate() {
            assert_eq!(r.bit(&mut c[i & 1]), b);
            assert_eq!(r.raw(), i % 3 == 0);
        }
        assert_eq!((0..12).fold(0u32, |v, _| (v << 1) | r.raw() as u32), 0xabc);
        r.finish().unwrap();
    }
}
