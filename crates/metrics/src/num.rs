//! Floating-point reductions in the order the reference implementations use, so that corpus means agree to the
//! last bits and not merely to 1e-12.

/// `numpy.sum` of a float64 array: numpy's pairwise summation (blocks of 8 partial sums up to 128 elements,
/// recursive halving above; `pairwise_sum_DOUBLE` in numpy's `loops_utils.h`).
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// `numpy.mean` of a float64 array (`np_sum(a) / n`); NaN for an empty slice, as numpy.
pub fn np_mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_exact_sums() {
        let a: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(np_sum(&a), 499_500.0);
        assert_eq!(np_mean(&[1.0, 2.0, 3.0]), 2.0);
        assert!(np_mean(&[]).is_nan());
    }
}
