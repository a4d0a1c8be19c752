//! A DDSketch: a streaming quantile sketch with relative accuracy, Datadog's own
//! (Masson, Rim, Lee: "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
//! Relative-Error Guarantees", VLDB 2019).
//!
//! A value `x > 0` falls in bucket `i = ceil(ln x / ln γ)` with `γ = (1 + α) / (1 − α)`; the
//! bucket's representative `2γ^i / (γ + 1)` is within `α` of every value in it. Every sketch
//! uses the same `α` ([`Sketch::RELATIVE_ACCURACY`]), so the buckets of any two sketches line
//! up: sketches merge exactly, and the rank test compares two sketches bucket by bucket.

/// A latency distribution in bounded memory: counts per logarithmic bucket.
///
/// Memory grows with the spread of the values (about 115 buckets per factor of 10 at 1 %),
/// never with their number: one to four kilobytes for request durations.
///
/// ```
/// use envoy_dd::canary::Sketch;
///
/// let mut s = Sketch::new();
/// for ms in 1..=100 {
///     s.add(ms as f64 * 1e6); // durations in nanoseconds
/// }
/// let p95 = s.quantile(0.95).unwrap();
/// assert!((p95 / 95e6 - 1.0).abs() <= 0.02);
/// assert_eq!(s.count(), 100);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sketch {
    /// Index of `bins[0]`.
    offset: i32,
    bins: Vec<u64>,
    /// Values below [`Sketch::MIN_VALUE`] (zero durations: Envoy logs whole milliseconds).
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

/// `1 / ln γ` for α = 1 %.
const INV_LN_GAMMA: f64 = 1.0 / LN_GAMMA;
/// `ln γ = ln((1 + α) / (1 − α))` for α = 1 %: `ln(1.01 / 0.99)`.
const LN_GAMMA: f64 = 0.020_000_666_706_669_5;

impl Sketch {
    /// The relative accuracy of every quantile: the value returned for a quantile is within
    /// this fraction of a value of that rank.
    pub const RELATIVE_ACCURACY: f64 = 0.01;
    /// Values below this are counted as zero.
    pub const MIN_VALUE: f64 = 1.0;

    /// An empty sketch.
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds one value. Negative values and NaN count as zero.
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Adds `n` values equal to `value`: the way to load a histogram (a bucket's midpoint and
    /// count) into a sketch.
    pub fn add_n(&mut self, value: f64, n: u64) {
        if n == 0 {
            return;
        }
        let value = if value >= 0.0 { value } else { 0.0 };
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += n;
        self.sum += value * n as f64;
        if value < Self::MIN_VALUE {
            self.zeros += n;
            return;
        }
        let index = bucket_of(value);
        *self.bin_mut(index) += n;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        self.zeros += other.zeros;
        for (i, &n) in other.bins.iter().enumerate() {
            if n > 0 {
                *self.bin_mut(other.offset + i as i32) += n;
            }
        }
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean of the values added, exactly (`None` when empty).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The smallest and largest values added, exactly.
    pub fn min_max(&self) -> Option<(f64, f64)> {
        (self.count > 0).then_some((self.min, self.max))
    }

    /// The value at quantile `q` (0 to 1), within [`Sketch::RELATIVE_ACCURACY`] of a value of
    /// that rank (the lower median, as DDSketch defines it); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64) as u64;
        let mut seen = self.zeros;
        if rank < seen {
            return Some(self.min.clamp(0.0, Self::MIN_VALUE));
        }
        for (i, &n) in self.bins.iter().enumerate() {
            seen += n;
            if rank < seen {
                let value = representative(self.offset + i as i32);
                return Some(value.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The non-empty buckets in increasing order of value: `(bucket, count)`, where the bucket
    /// of values counted as zero comes first as `None`. Two sketches' buckets are comparable
    /// (same bucket, same values), which the rank test relies on.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<i32>, u64)> + '_ {
        let zeros = (self.zeros > 0).then_some((None, self.zeros));
        let bins = self.bins.iter().enumerate().filter(|(_, &n)| n > 0);
        zeros
            .into_iter()
            .chain(bins.map(move |(i, &n)| (Some(self.offset + i as i32), n)))
    }

    /// The value a bucket stands for (see [`Sketch::buckets`]).
    pub fn bucket_value(bucket: Option<i32>) -> f64 {
        bucket.map_or(0.0, representative)
    }

    fn bin_mut(&mut self, index: i32) -> &mut u64 {
        if self.bins.is_empty() {
            self.offset = index;
            self.bins.push(0);
        } else if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.bins.splice(0..0, core::iter::repeat_n(0, grow));
            self.offset = index;
        } else if index - self.offset >= self.bins.len() as i32 {
            self.bins.resize((index - self.offset) as usize + 1, 0);
        }
        &mut self.bins[(index - self.offset) as usize]
    }
}

/// The bucket of a value of at least [`Sketch::MIN_VALUE`].
fn bucket_of(value: f64) -> i32 {
    (value.ln() * INV_LN_GAMMA).ceil() as i32
}

/// The value within α of every value of bucket `index`: `2γ^i / (γ + 1)`.
fn representative(index: i32) -> f64 {
    let gamma = LN_GAMMA.exp();
    2.0 * (index as f64 * LN_GAMMA).exp() / (gamma + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_is_that_of_one_percent() {
        let a = Sketch::RELATIVE_ACCURACY;
        assert!((((1.0 + a) / (1.0 - a)).ln() / LN_GAMMA - 1.0).abs() < 1e-13);
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let mut s = Sketch::new();
        let mut values: Vec<f64> = (0..10_000u64)
            .map(|i| 1e3 * (1.0 + (i * 7919 % 10_007) as f64).powf(1.7))
            .collect();
        for &v in &values {
            s.add(v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let exact = values[(q * (values.len() - 1) as f64) as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got / exact - 1.0).abs() <= 0.01 + 1e-12,
                "q {q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merging_is_adding() {
        let (mut a, mut b, mut both) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 0..1000 {
            let v = (i * 37 % 1000) as f64 * 1e5;
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            both.add(v);
        }
        a.merge(&b);
        assert_eq!(
            a.buckets().collect::<Vec<_>>(),
            both.buckets().collect::<Vec<_>>()
        );
        assert_eq!(a.count(), 1000);
        assert_eq!(a.quantile(0.5), both.quantile(0.5));
    }

    #[test]
    fn zeros_and_histograms() {
        let mut s = Sketch::new();
        s.add_n(0.0, 5);
        s.add_n(2e6, 5);
        s.add(-1.0);
        assert_eq!(s.count(), 11);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.buckets().next(), Some((None, 6)));
        assert!((s.quantile(1.0).unwrap() / 2e6 - 1.0).abs() <= 0.01);
        assert_eq!(Sketch::new().quantile(0.5), None);
    }
}
