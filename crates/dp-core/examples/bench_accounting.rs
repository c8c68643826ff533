//! Timing of the accountants, in process (release build): `make bench-accounting` runs it next to the
//! Python packages on the same inputs (python/bench/bench_accounting.py). Prints one JSON object per line:
//! {"case", "seconds" (median), "repeats", "value"}.

use std::time::Instant;

use dp_core::accounting::{
    calibrate_noise, AccountantKind, Accountants, Event, History, PrvAccountant, RdpAccountant, Sampling,
};

fn median_seconds<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = None;
    for _ in 0..repeats {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[repeats / 2], last.expect("repeats ≥ 1"))
}

fn report(case: &str, repeats: usize, seconds: f64, value: f64) {
    println!(r#"{{"case": "{case}", "seconds": {seconds:.6e}, "repeats": {repeats}, "value": {value}}}"#);
}

fn main() {
    let (sigma, q, delta) = (1.0, 0.01, 1e-5);
    for steps in [1u64, 1_000, 100_000] {
        let h = History::single(Event::poisson(sigma, q, steps).unwrap());
        let acc = RdpAccountant::default();
        let (s, e) = median_seconds(101, || acc.epsilon(&h, delta).unwrap().epsilon);
        report(&format!("rdp_epsilon T={steps}"), 101, s, e);
    }
    for steps in [1_000u64, 100_000] {
        let h = History::single(Event::poisson(sigma, q, steps).unwrap());
        let acc = PrvAccountant::new(0.01, None).unwrap();
        let (s, e) = median_seconds(3, || acc.epsilon(&h, delta).unwrap().upper);
        report(&format!("prv_epsilon T={steps} eps_error=0.01"), 3, s, e);
    }
    let accs = Accountants::default();
    let poisson = Sampling::Poisson { sample_rate: 0.04 };
    for kind in [AccountantKind::Rdp, AccountantKind::Prv] {
        let (s, c) = median_seconds(3, || calibrate_noise(kind, &accs, 8.0, 1e-5, poisson, 2250, 1e-3).unwrap());
        report(&format!("{}_calibrate eps=8 q=0.04 T=2250", kind.name()), 3, s, c.noise_multiplier);
    }
}
