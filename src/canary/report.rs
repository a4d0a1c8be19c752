//! The judge's report: a terminal table, JSON, and a self-contained HTML page.

use std::fmt::Write as _;

use serde::Serialize;

use super::input::{Comparison, Skipped};
use super::judge::{ms, p_value, percent, thousands, Assessment, Judgement, Verdict};
use super::{Sketch, Tallies};

/// Everything a run found: the verdict, the endpoints, what was compared and what skipped.
/// Its JSON form is the `--format json` report (see the README).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `pass`, `fail` or `inconclusive`, with the summary, the endpoints and the settings.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Which versions were compared, and why.
    pub comparison: Option<Comparison>,
    /// Records read.
    pub records: u64,
    /// Records not counted, by reason.
    pub skipped: Skipped,
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table for a terminal, worst endpoint first.
    pub fn to_table(&self) -> String {
        let j = &self.judgement;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "verdict: {} ({})",
            j.verdict.name().to_uppercase(),
            j.summary
        );
        if let Some(c) = &self.comparison {
            let how = if c.automatic {
                "chosen automatically: "
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "compared by {}: baseline {}, canary {} ({how}{})",
                c.by.name(),
                c.baseline,
                c.canary,
                c.why
            );
        }
        let _ = writeln!(
            out,
            "{} tests, {:?} correction, alpha {}\n",
            j.tests, j.settings.correction, j.settings.alpha
        );
        let header = [
            "verdict",
            "endpoint",
            "base req",
            "base err",
            "base rate",
            "can req",
            "can err",
            "can rate",
            "base p50/p95/p99",
            "can p50/p95/p99",
            "p adj",
        ];
        let mut rows: Vec<[String; 11]> = vec![header.map(String::from)];
        let mut reasons: Vec<Vec<String>> = vec![Vec::new()];
        for a in core::iter::once(&j.overall).chain(&j.endpoints) {
            rows.push(row(a));
            reasons.push(if a.verdict == Verdict::Pass {
                Vec::new()
            } else {
                a.reasons.clone()
            });
        }
        let mut widths = [0usize; 11];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for (r, why) in rows.iter().zip(&reasons) {
            let mut line = String::new();
            for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                if i < 2 {
                    let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            for reason in why {
                let _ = writeln!(out, "{}  - {reason}", " ".repeat(widths[0]));
            }
        }
        out
    }
}

fn row(a: &Assessment) -> [String; 11] {
    let lat = |c: &super::judge::Counts| {
        c.latency_ms.map_or("-".into(), |q| {
            format!("{:.0}/{:.0}/{:.0}", q.p50, q.p95, q.p99)
        })
    };
    let p = a
        .latency
        .as_ref()
        .map_or(1.0, |l| l.p_adjusted)
        .min(a.errors.p_adjusted);
    [
        a.verdict.name().into(),
        a.endpoint.clone(),
        thousands(a.baseline.requests),
        thousands(a.baseline.errors),
        percent(a.baseline.error_rate),
        thousands(a.canary.requests),
        thousands(a.canary.errors),
        percent(a.canary.error_rate),
        lat(&a.baseline),
        lat(&a.canary),
        p_value(p),
    ]
}

/// At most this many endpoints get pictures in the HTML page (the worst ones).
const PICTURED: usize = 30;

/// The report as a self-contained HTML page: the table, and for each endpoint (the worst
/// first) its error rates with 95 % confidence intervals and the two latency distributions,
/// as inline SVG. Nothing is loaded from the network.
pub fn html(report: &Report, tallies: &Tallies) -> String {
    let j = &report.judgement;
    let mut out = String::new();
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>envoy-dd canary: ",
    );
    out.push_str(j.verdict.name());
    out.push_str("</title><style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}.fail{color:#b00020;font-weight:bold}.inconclusive{color:#a06000}.pass{color:#1b7f3b}section{margin:1.5em 0}ul{margin:.2em 0}svg text{font:11px system-ui,sans-serif}</style></head><body>\n");
    let _ = writeln!(
        out,
        "<h1>Canary verdict: <span class=\"{0}\">{0}</span></h1><p>{1}</p>",
        j.verdict.name(),
        esc(&j.summary)
    );
    if let Some(c) = &report.comparison {
        let _ = writeln!(
            out,
            "<p>Compared by <b>{}</b>: baseline <b>{}</b>, canary <b>{}</b> ({}).</p>",
            c.by.name(),
            esc(&c.baseline),
            esc(&c.canary),
            esc(&c.why)
        );
    }
    let _ = writeln!(
        out,
        "<p>{} records read, {} skipped; {} tests, {:?} correction at alpha {}.</p>",
        report.records,
        report.skipped.total(),
        j.tests,
        j.settings.correction,
        j.settings.alpha
    );
    out.push_str("<table><tr><th>verdict</th><th>endpoint</th><th>baseline requests</th><th>errors</th><th>rate</th><th>canary requests</th><th>errors</th><th>rate</th><th>baseline p50/p95/p99 ms</th><th>canary p50/p95/p99 ms</th><th>adjusted p</th></tr>\n");
    for a in core::iter::once(&j.overall).chain(&j.endpoints) {
        let cells = row(a);
        let _ = write!(
            out,
            "<tr><td class=\"{}\">{}</td>",
            a.verdict.name(),
            a.verdict.name()
        );
        for cell in &cells[1..] {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    let total = tallies.total();
    for a in core::iter::once(&j.overall)
        .chain(&j.endpoints)
        .take(PICTURED + 1)
    {
        let pair = if a.endpoint == super::judge::OVERALL {
            Some(&total)
        } else {
            tallies.get(&a.endpoint)
        };
        let Some(pair) = pair else { continue };
        let _ = writeln!(
            out,
            "<section><h2><span class=\"{0}\">{0}</span> {1}</h2><ul>",
            a.verdict.name(),
            esc(&a.endpoint)
        );
        for reason in &a.reasons {
            let _ = writeln!(out, "<li>{}</li>", esc(reason));
        }
        out.push_str("</ul>");
        error_bars(&mut out, a);
        latency_curves(&mut out, &pair.baseline.latency, &pair.canary.latency);
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

const BASELINE_COLOUR: &str = "#4464ad";
const CANARY_COLOUR: &str = "#e07a10";

/// Each version's error rate with its 95 % Wilson interval, and the allowed rate.
fn error_bars(out: &mut String, a: &Assessment) {
    let bars = [
        ("baseline", &a.baseline, BASELINE_COLOUR),
        ("canary", &a.canary, CANARY_COLOUR),
    ];
    let intervals = bars.map(|(_, c, _)| wilson(c.errors, c.requests));
    let top = intervals
        .iter()
        .map(|i| i.1)
        .fold(a.errors.allowed_rate, f64::max)
        .max(1e-4)
        * 1.1;
    let (w, left) = (520.0, 80.0);
    let x = |r: f64| left + (w - left - 20.0) * r / top;
    let _ = write!(out, "<svg width=\"{w}\" height=\"86\" role=\"img\" aria-label=\"error rates\"><text x=\"0\" y=\"12\">error rate (95 % interval)</text>");
    for (i, ((name, c, colour), (lo, hi))) in bars.iter().zip(intervals).enumerate() {
        let y = 24.0 + i as f64 * 22.0;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{:.0}\">{name}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"14\" fill=\"{colour}\" opacity=\"0.7\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" stroke=\"#000\"/><text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            y + 11.0,
            x(c.error_rate) - left,
            x(lo),
            x(hi),
            y + 7.0,
            y + 7.0,
            x(hi) + 4.0,
            y + 11.0,
            esc(&percent(c.error_rate)),
        );
    }
    let ax = x(a.errors.allowed_rate);
    let _ = writeln!(out, "<line x1=\"{ax:.1}\" x2=\"{ax:.1}\" y1=\"20\" y2=\"68\" stroke=\"#b00020\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"82\" fill=\"#b00020\">allowed {}</text></svg>", (ax - 30.0).max(left), esc(&percent(a.errors.allowed_rate)));
}

/// The 95 % Wilson score interval of a proportion.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n) = (1.959_963_984_540_054, n as f64);
    let p = successes as f64 / n;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The two latency distributions as cumulative curves on a logarithmic time axis.
fn latency_curves(out: &mut String, baseline: &Sketch, canary: &Sketch) {
    let range = [baseline, canary].iter().filter_map(|s| s.min_max()).fold(
        None,
        |acc: Option<(f64, f64)>, (lo, hi)| {
            Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
        },
    );
    let Some((lo, hi)) = range else { return };
    let (lo, hi) = (
        (lo.max(1e5)).log10(),
        (hi.max(1e5) * 1.05).log10().max(lo.max(1e5).log10() + 0.5),
    );
    let (w, h, left, bottom) = (520.0, 180.0, 40.0, 150.0);
    let x = |ns: f64| {
        left + (w - left - 10.0) * ((ns.max(1e5).log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
    };
    let y = |f: f64| bottom - (bottom - 20.0) * f;
    let _ = write!(out, "<svg width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"latency distributions\"><text x=\"0\" y=\"12\">share of requests at most this long (ms, log scale)</text><line x1=\"{left}\" x2=\"{:.0}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"#888\"/>", w - 10.0);
    for f in [0.5, 0.95, 1.0] {
        let _ = write!(out, "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"0\" y=\"{:.1}\">{}</text>", w - 10.0, y(f), y(f), y(f) + 4.0, f);
    }
    let mut tick = 10f64.powf(lo.floor());
    while tick.log10() <= hi {
        if tick.log10() >= lo {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
                x(tick) - 8.0,
                bottom + 14.0,
                esc(&ms(tick / 1e6))
            );
        }
        tick *= 10.0;
    }
    for (sketch, colour, name, at) in [
        (baseline, BASELINE_COLOUR, "baseline", 0.0),
        (canary, CANARY_COLOUR, "canary", 90.0),
    ] {
        let n = sketch.count();
        if n == 0 {
            continue;
        }
        let mut seen = 0u64;
        let mut points = format!("{left:.1},{:.1}", y(0.0));
        for (bucket, count) in sketch.buckets() {
            let px = x(Sketch::bucket_value(bucket));
            let _ = write!(points, " {px:.1},{:.1}", y(seen as f64 / n as f64));
            seen += count;
            let _ = write!(points, " {px:.1},{:.1}", y(seen as f64 / n as f64));
        }
        let _ = write!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/><rect x=\"{:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"{:.0}\">{name}</text>", left + 10.0 + at, h - 12.0, left + 24.0 + at, h - 3.0);
    }
    out.push_str("</svg>\n");
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval() {
        let (lo, hi) = wilson(11, 36);
        assert!(
            (lo - 0.180_04).abs() < 1e-5 && (hi - 0.468_56).abs() < 1e-5,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn html_escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
