//! The canary judge: is a new version of a service (the canary) as good as the one in
//! production (the baseline), endpoint by endpoint?
//!
//! The judge works on [`Tallies`]: for each endpoint and each of the two versions, the number
//! of requests, the number of errors and a [`Sketch`] of the durations. Where they come from
//! does not matter to it.
//!
//! * [`sketch`]: the streaming quantile sketch (DDSketch) that holds durations.
//! * [`tally`]: the per-(version, endpoint) counts the judge reads.
//! * [`stats`]: the tests, as SciPy computes them.
//! * [`judge`](mod@judge): the verdict per endpoint and for the release.
//!
//! Not in the Fluent Bit module: it needs `std` and the `canary` feature, which is on by
//! default for the command line.

pub mod input;
pub mod judge;
pub mod report;
pub mod sketch;
pub mod stats;
pub mod tally;

pub use judge::{judge, Assessment, Correction, Judgement, Settings, Verdict};
pub use sketch::Sketch;
pub use tally::{Pair, Side, Tallies, Tally};
