//! A one-line progress bar on standard error, redrawn in place with `\r`.
//!
//! Plain text only (no terminal escape codes): a shorter line is padded with spaces to cover
//! the previous one. The bar is kept under 80 columns so it never wraps.

use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Redraw at most this often.
const INTERVAL: Duration = Duration::from_millis(200);
/// Look at the clock once per this many input bytes, not once per line.
const CHECK_EVERY: u64 = 256 * 1024;
/// Width of the bar between the brackets.
const BAR: usize = 16;

/// Progress through the input, shown on standard error when enabled.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    /// Total input size, when every input is a regular file.
    total: Option<u64>,
    /// Bytes read so far.
    done: u64,
    /// Lines read so far.
    lines: u64,
    /// `done` at which to look at the clock next.
    next_check: u64,
    started: Instant,
    /// When the bar was last drawn; `None` before the first draw.
    drawn_at: Option<Instant>,
    /// Length of the line on screen, to erase it.
    drawn_len: usize,
}

impl Progress {
    /// A progress bar for `total` bytes (unknown: `None`) that draws only when `enabled`.
    pub fn new(enabled: bool, total: Option<u64>) -> Self {
        Progress {
            enabled,
            total,
            done: 0,
            lines: 0,
            next_check: CHECK_EVERY,
            started: Instant::now(),
            drawn_at: None,
            drawn_len: 0,
        }
    }

    /// Counts one line of `bytes` bytes, redrawing now and then. Cheap when nothing is due.
    #[inline]
    pub fn advance(&mut self, bytes: usize) {
        self.done += bytes as u64;
        self.lines += 1;
        if self.enabled && self.done >= self.next_check {
            self.next_check = self.done + CHECK_EVERY;
            let now = Instant::now();
            // The first draw waits one interval too, so quick runs show no bar at all.
            if now.duration_since(self.drawn_at.unwrap_or(self.started)) >= INTERVAL {
                self.draw(now);
            }
        }
    }

    /// Erases the bar so that a message can be printed; the next redraw brings it back.
    pub fn clear(&mut self) {
        if self.drawn_len > 0 {
            let _ = write!(io::stderr().lock(), "\r{:1$}\r", "", self.drawn_len);
            self.drawn_len = 0;
        }
    }

    fn draw(&mut self, now: Instant) {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let rate = self.done as f64 / seconds.max(1e-3);
        let mut line = String::with_capacity(80);
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let fraction = (self.done as f64 / total as f64).min(1.0);
            let filled = (fraction * BAR as f64) as usize;
            line.push_str(&format!(
                "[{:#<filled$}{:-<rest$}] {:>3.0}% ",
                "",
                "",
                fraction * 100.0,
                rest = BAR - filled
            ));
            line.push_str(&format!(
                "{} of {}",
                size(self.done as f64),
                size(total as f64)
            ));
        } else {
            line.push_str(&size(self.done as f64));
        }
        line.push_str(&format!(", {}/s, {} lines", size(rate), self.lines));
        let pad = self.drawn_len.saturating_sub(line.len());
        let _ = write!(io::stderr().lock(), "\r{line}{:pad$}", "");
        self.drawn_len = line.len();
        self.drawn_at = Some(now);
    }
}

impl Drop for Progress {
    /// Leaves the terminal line clean, whichever way the run ends.
    fn drop(&mut self) {
        self.clear();
    }
}

/// `512 B`, `12.3 KiB`, `1.5 GiB`.
fn size(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(512.0), "512 B");
        assert_eq!(size(1536.0), "1.5 KiB");
        assert_eq!(size(9.0 * 1024.0 * 1024.0), "9.0 MiB");
        assert_eq!(size(3.0 * 1024f64.powi(5)), "3072.0 TiB");
    }
}
