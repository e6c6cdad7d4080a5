//! Progress for long commands. On a terminal: a progress bar. Without one (a batch job's log,
//! CI): a plain line — stage, done/total, rate, ETA — at most every
//! `REPDRIFT_PROGRESS_SECS` seconds (default 10), plus the first and the last, so a Slurm job
//! log shows where the job is and how long it has left.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Seconds between two plain progress lines (`REPDRIFT_PROGRESS_SECS`, default 10).
pub fn interval() -> Duration {
    std::env::var("REPDRIFT_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(10))
}

/// Whether progress goes to a terminal (bar) or to a log (lines).
pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// `1h02m`, `3m05s`, `12s`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let s = secs.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Plain progress lines for one stage.
pub struct Lines {
    stage: String,
    unit: &'static str,
    total: usize,
    done: usize,
    /// Done when this run started (resumed work does not count toward the rate).
    done_at_start: usize,
    t0: Instant,
    last: Option<Instant>,
    every: Duration,
}

impl Lines {
    pub fn new(stage: impl Into<String>, unit: &'static str) -> Self {
        Self {
            stage: stage.into(),
            unit,
            total: 0,
            done: 0,
            done_at_start: 0,
            t0: Instant::now(),
            last: None,
            every: interval(),
        }
    }

    /// `total` units to do, `done` of them already done (resumed).
    pub fn start(&mut self, total: usize, done: usize) {
        self.total = total;
        self.done = done;
        self.done_at_start = done;
        self.t0 = Instant::now();
        self.print("");
    }

    /// Seconds since `start`.
    pub fn elapsed_secs(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The line for the current state.
    pub fn line(&self, extra: &str) -> String {
        let secs = self.t0.elapsed().as_secs_f64();
        let new = self.done.saturating_sub(self.done_at_start);
        let rate = new as f64 / secs.max(1e-9);
        let eta = if new == 0 {
            "ETA ?".to_string()
        } else {
            format!(
                "ETA {}",
                duration(self.total.saturating_sub(self.done) as f64 / rate)
            )
        };
        let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        format!(
            "repdrift: {}: {}/{} {} ({pct:.0} %), {rate:.2} {}/s, {eta}, elapsed {}{extra}",
            self.stage,
            self.done,
            self.total,
            self.unit,
            self.unit,
            duration(secs)
        )
    }

    fn print(&mut self, extra: &str) {
        eprintln!("{}", self.line(extra));
        self.last = Some(Instant::now());
    }

    /// Now `done` units are done; print when the interval has passed (or at the end).
    pub fn set(&mut self, done: usize, extra: &str) {
        self.done = done;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.every);
        if due || done >= self.total {
            self.print(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(59.6), "1m00s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(duration(f64::INFINITY), "?");
    }

    #[test]
    fn a_line_names_stage_position_rate_and_eta() {
        let mut l = Lines::new("capture", "examples");
        l.total = 100;
        l.done_at_start = 20;
        l.done = 60;
        l.t0 = Instant::now() - Duration::from_secs(20);
        let s = l.line("512 tok/s");
        // 40 new examples in 20 s: 2/s; 40 left: 20 s.
        assert!(
            s.starts_with(
                "repdrift: capture: 60/100 examples (60 %), 2.00 examples/s, ETA 20s, elapsed 20s"
            ),
            "{s}"
        );
        assert!(s.ends_with(", 512 tok/s"), "{s}");
    }
}
