//! `dpft bench --max-batch`: the largest batch whose training step fits in a memory limit (the paper's
//! maximum-batch-size comparison, Li et al. 2022, Sec. 4 and Fig. 4).
//!
//! Each candidate batch size runs in its own `dpft bench` process (one warm-up step and one timed step,
//! so that the optimizer's state exists when the peak is taken): a process's high-water mark only grows,
//! so trials cannot share one. On the CPU a watchdog polls the child's resident set every 20 ms and stops
//! it as soon as it passes the limit, so a candidate far too large costs little and never endangers the
//! machine; a child that runs out of memory (libtorch's allocation error, CUDA out of memory) also counts
//! as "does not fit". Any other failure stops the search with the child's error.
//!
//! Search: 1, 2, 4, … until a size does not fit (or `cap` is reached), then bisection between the last
//! size that fit and the first that did not. The result is exact for a peak that grows with the batch.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::memory::proc_status_bytes;

/// One candidate batch size.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// Batch size tried.
    pub batch_size: i64,
    /// Whether its step ran within the limit.
    pub fits: bool,
    /// Peak memory the child reported (or the resident size at which the watchdog stopped it).
    pub peak_mem_bytes: Option<u64>,
    /// The child's median step time, when it finished.
    pub median_step_s: Option<f64>,
    /// Why it did not fit.
    pub reason: Option<String>,
}

/// Runs one trial: `exe bench <args> --batch-size b`, which must print the JSON report on stdout.
fn trial(exe: &Path, args: &[String], batch: i64, limit: u64, watch_rss: bool) -> Result<Trial> {
    let mut child = Command::new(exe)
        .args(args)
        .args(["--batch-size", &batch.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    // Drain stdout/stderr on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut stopped_at = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if watch_rss {
            if let Some(rss) = proc_status_bytes(child.id(), "VmRSS:").filter(|&r| r > limit) {
                let _ = child.kill();
                stopped_at = Some(rss);
                break child.wait()?;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if let Some(rss) = stopped_at {
        return Ok(Trial {
            batch_size: batch,
            fits: false,
            peak_mem_bytes: Some(rss),
            median_step_s: None,
            reason: Some(format!("stopped at {} resident, above the limit", human_bytes(rss))),
        });
    }
    if !status.success() {
        let lower = stderr.to_lowercase();
        if lower.contains("out of memory") || lower.contains("can't allocate memory") || lower.contains("bad_alloc") {
            return Ok(Trial {
                batch_size: batch,
                fits: false,
                peak_mem_bytes: None,
                median_step_s: None,
                reason: Some("ran out of memory".into()),
            });
        }
        if status.code() == Some(2) {
            // The child refused its input (model, sequence length, …): the same input error for the search.
            bail!(crate::exit::BadInput(format!(
                "the trial with batch size {batch} refused its input: {}",
                stderr.trim()
            )));
        }
        bail!("the trial with batch size {batch} failed ({status}): {}", stderr.trim());
    }
    let report: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("reading the report of the trial with batch size {batch}: {stdout:?}"))?;
    let peak = report["peak_mem_bytes"].as_u64();
    let Some(p) = peak else {
        bail!("the trial with batch size {batch} could not measure its peak memory on this platform")
    };
    Ok(Trial {
        batch_size: batch,
        fits: p <= limit,
        peak_mem_bytes: peak,
        median_step_s: report["median_step_s"].as_f64(),
        reason: (p > limit).then(|| format!("peak {} above the limit", human_bytes(p))),
    })
}

/// The largest batch size in 1..=`cap` whose step fits in `limit` bytes (0 if not even 1 fits), with
/// every trial made. `args` are the `dpft bench` arguments of a single timing run without the batch
/// size; `on_trial` is told each trial as it ends (progress).
pub fn search(
    exe: &Path,
    args: &[String],
    limit: u64,
    cap: i64,
    watch_rss: bool,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<(i64, Vec<Trial>)> {
    search_with(cap, &mut |b| {
        let t = trial(exe, args, b, limit, watch_rss)?;
        on_trial(&t);
        Ok(t)
    })
}

/// The search itself, over any way of running a trial.
fn search_with(cap: i64, run_trial: &mut dyn FnMut(i64) -> Result<Trial>) -> Result<(i64, Vec<Trial>)> {
    let mut trials = Vec::new();
    let mut run = |b: i64, trials: &mut Vec<Trial>| -> Result<bool> {
        let t = run_trial(b)?;
        let fits = t.fits;
        trials.push(t);
        Ok(fits)
    };
    let (mut good, mut bad) = (0i64, None);
    let mut b = 1i64;
    while b <= cap {
        if run(b, &mut trials)? {
            good = b;
            b *= 2;
        } else {
            bad = Some(b);
            break;
        }
    }
    if bad.is_none() && good < cap {
        // Doubling stepped over the cap: try the cap itself.
        if run(cap, &mut trials)? {
            return Ok((cap, trials));
        }
        bad = Some(cap);
    }
    if let Some(mut hi) = bad {
        let mut lo = good;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if run(mid, &mut trials)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        good = lo;
    }
    Ok((good, trials))
}

/// `1.5 GiB`-style rendering of a byte count.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{x:.2} {}", units[u])
    }
}

/// Parses a byte count: a plain integer, or a number with a unit K/M/G/T (powers of 1024; `KiB`, `KB`,
/// `k`… accepted the same way).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a byte count (e.g. 8G, 512MiB, 1073741824)"))?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use K, M, G or T, powers of 1024)")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("`{s}`: the memory limit must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_binary_units() {
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_bytes("8G"), Ok(8 << 30));
        assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("512mb"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5K"), Ok(1536));
        assert!(parse_bytes("8X").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("lots").unwrap_err().contains("not a byte count"));
        assert!(parse_bytes("0").is_err());
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
    }

    fn fake(b: i64, largest: i64) -> Result<Trial> {
        Ok(Trial {
            batch_size: b,
            fits: b <= largest,
            peak_mem_bytes: Some(b as u64),
            median_step_s: None,
            reason: None,
        })
    }

    #[test]
    fn the_search_finds_the_exact_largest_batch() {
        for largest in [0, 1, 2, 3, 5, 8, 13, 64, 100, 127] {
            let (found, trials) = search_with(1000, &mut |b| fake(b, largest)).unwrap();
            assert_eq!(found, largest);
            // Doubling then bisection: about 2·log2 trials, never the same size twice.
            let mut sizes: Vec<i64> = trials.iter().map(|t| t.batch_size).collect();
            assert!(sizes.len() <= 2 * 11, "{sizes:?}");
            sizes.sort();
            sizes.dedup();
            assert_eq!(sizes.len(), trials.len());
        }
        // Everything fits: the cap itself is the answer.
        assert_eq!(search_with(100, &mut |b| fake(b, 10_000)).unwrap().0, 100);
        assert_eq!(search_with(64, &mut |b| fake(b, 10_000)).unwrap().0, 64);
        // A trial that fails for another reason stops the search.
        assert!(search_with(100, &mut |b| if b < 4 { fake(b, 100) } else { bail!("broken") }).is_err());
    }
}
