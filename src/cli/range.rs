//! Value parsers for numeric flags: each refuses, at parse time, a value outside the flag's
//! meaning (NaN, infinity, an IoU of 1.5, a batch of 0 or of 10^9), and says the valid range.

fn real(s: &str, lo: f64, hi: f64, lo_open: bool, hi_open: bool) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    let above = if lo_open { v > lo } else { v >= lo };
    let below = if hi_open { v < hi } else { v <= hi };
    if v.is_finite() && above && below {
        Ok(v)
    } else {
        Err(format!(
            "{v} is outside {}{lo}, {hi}{}",
            if lo_open { "(" } else { "[" },
            if hi_open { ")" } else { "]" }
        ))
    }
}

fn int(s: &str, lo: u64, hi: u64) -> Result<usize, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if (lo..=hi).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("{v} is outside [{lo}, {hi}]"))
    }
}

/// A score threshold: [0, 1].
pub fn score(s: &str) -> Result<f32, String> {
    real(s, 0.0, 1.0, false, false).map(|v| v as f32)
}
/// A score threshold as f64: [0, 1].
pub fn score64(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1.0, false, false)
}
/// An IoU threshold: (0, 1].
pub fn iou(s: &str) -> Result<f32, String> {
    real(s, 0.0, 1.0, true, false).map(|v| v as f32)
}
/// An IoU threshold as f64: (0, 1].
pub fn iou64(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1.0, true, false)
}
/// Crops in one forward pass: [1, 65536].
pub fn batch(s: &str) -> Result<usize, String> {
    int(s, 1, 65_536)
}
/// Crops or regions in one pass, for tensor sizes: [1, 65536].
pub fn batch_i64(s: &str) -> Result<i64, String> {
    int(s, 1, 65_536).map(|v| v as i64)
}
/// An image's pixel budget: [1, 2^40].
pub fn pixels(s: &str) -> Result<u64, String> {
    int(s, 1, 1 << 40).map(|v| v as u64)
}
/// Threads or workers: [1, 1024].
pub fn threads(s: &str) -> Result<usize, String> {
    int(s, 1, 1024)
}
/// A count of boxes, steps or images: [1, 10^9].
pub fn count(s: &str) -> Result<usize, String> {
    int(s, 1, 1_000_000_000)
}
/// A count that may be zero: [0, 10^9].
pub fn count0(s: &str) -> Result<usize, String> {
    int(s, 0, 1_000_000_000)
}
/// Sizes of generated benchmark data, which is held in memory: [1, 10^7].
pub fn synthetic(s: &str) -> Result<usize, String> {
    int(s, 1, 10_000_000)
}
/// The same, where zero means none: [0, 10^7].
pub fn synthetic0(s: &str) -> Result<usize, String> {
    int(s, 0, 10_000_000)
}
/// Networks in an ensemble, 0 for none: [0, 64].
pub fn networks(s: &str) -> Result<usize, String> {
    int(s, 0, 64)
}
/// Members of a trained ensemble: [1, 64].
pub fn members(s: &str) -> Result<usize, String> {
    int(s, 1, 64)
}
/// Classifier outputs: [1, 100000] (ImageNet-21k fits; 10^11 would not fit in memory).
pub fn classes(s: &str) -> Result<i64, String> {
    int(s, 1, 100_000).map(|v| v as i64)
}
/// A network's input side in pixels: [32, 1024].
pub fn input_size(s: &str) -> Result<i64, String> {
    int(s, 32, 1024).map(|v| v as i64)
}
/// A width multiplier: (0, 4].
pub fn width(s: &str) -> Result<f64, String> {
    real(s, 0.0, 4.0, true, false)
}
/// A learning rate: (0, 10].
pub fn lr(s: &str) -> Result<f64, String> {
    real(s, 0.0, 10.0, true, false)
}
/// Momentum or weight decay: [0, 1).
pub fn fraction(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1.0, false, true)
}
/// A decay factor or an average's decay: (0, 1].
pub fn decay(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1.0, true, false)
}
/// The image width selective search works at: [32, 4096] pixels.
pub fn proposal_width(s: &str) -> Result<usize, String> {
    int(s, 32, 4096)
}
/// Felzenszwalb's scale k: (0, 10^4].
pub fn scale(s: &str) -> Result<f32, String> {
    real(s, 0.0, 1e4, true, false).map(|v| v as f32)
}
/// A positive finite amount (epochs, a loss weight, a scale): (0, 10^6].
pub fn positive(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1e6, true, false)
}
/// A non-negative finite amount: [0, 10^6].
pub fn non_negative(s: &str) -> Result<f64, String> {
    real(s, 0.0, 1e6, false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_what_cannot_be_meant() {
        assert_eq!(iou("0.3"), Ok(0.3));
        assert!(iou("1.5").unwrap_err().contains("outside (0, 1]"));
        assert!(iou("NaN").is_err() && iou("0").is_err() && iou("inf").is_err());
        assert!(score("NaN").is_err() && score("0").is_ok());
        assert!(batch("0").is_err() && batch("1000000").is_err() && batch("256").is_ok());
        assert!(batch("18446744073709551615").is_err());
        assert!(threads("100000").unwrap_err().contains("[1, 1024]"));
        assert!(fraction("-0.1").is_err() && fraction("0.9").is_ok());
        assert!(decay("2").is_err() && decay("0.999").is_ok());
        assert!(lr("NaN").is_err() && lr("0.01").is_ok());
        assert!(classes("100000000000").is_err());
        assert!(input_size("4096").is_err() && width("8").is_err());
    }
}
