//! Phase 3 of clipping: the clipping factors c_i from the squared norms, by style (Li et al. 2022,
//! Sec. 4: c_i = min(1, C/(‖g_i‖ + γ)); per-layer groups with C/√L; Bu et al. 2023's automatic
//! c_i = C/(‖g_i‖ + γ)). The same for every mode: `naive` supplies its per-layer norms like the others.

use tch::Tensor;

use super::norms::SquaredNorms;
use super::ClipStyle;

/// The factors of one batch.
pub(crate) struct ClipFactors {
    /// One `[B]` per active record: the factor applied to that record's per-example gradients.
    pub per_record: Vec<Tensor>,
    /// What is reported: `[B]` (flat, automatic) or the per-record rows stacked, `[L, B]` (per-layer).
    pub reported: Tensor,
}

impl ClipFactors {
    /// Factors for threshold `c` (C) and stability constant `gamma` (γ).
    pub fn compute(style: ClipStyle, c: f64, gamma: f64, sq: &SquaredNorms) -> Self {
        match style {
            ClipStyle::Flat => Self::shared((c / (sq.norms() + gamma)).clamp_max(1.0), sq),
            ClipStyle::Automatic => Self::shared(c / (sq.norms() + gamma), sq),
            ClipStyle::PerLayer => {
                // L groups with C_g = C/√L, so that Σ_g C_g² = C² (the sensitivity stays C).
                let c_layer = c / (sq.per_layer.len() as f64).sqrt();
                let per_record: Vec<Tensor> =
                    sq.per_layer.iter().map(|s| (c_layer / (s.clamp_min(0.0).sqrt() + gamma)).clamp_max(1.0)).collect();
                let reported = Tensor::stack(&per_record, 0);
                Self { per_record, reported }
            }
        }
    }

    /// One factor vector `[B]` for every record.
    fn shared(f: Tensor, sq: &SquaredNorms) -> Self {
        Self { per_record: sq.per_layer.iter().map(|_| f.shallow_clone()).collect(), reported: f }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn squared(total: &[f64], per_layer: &[&[f64]]) -> SquaredNorms {
        SquaredNorms {
            total: Tensor::from_slice(total),
            per_layer: per_layer.iter().map(|l| Tensor::from_slice(l)).collect(),
            per_example: None,
        }
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).flatten(0, -1)).unwrap()
    }

    #[test]
    fn flat_factors_are_min_of_one_and_c_over_norm() {
        // Norms 0.5, 2 and 4 against C = 1: factors 1, 1/2, 1/4 (γ = 0).
        let sq = squared(&[0.25, 4.0, 16.0], &[&[0.25, 4.0, 16.0], &[0.0, 0.0, 0.0]]);
        let f = ClipFactors::compute(ClipStyle::Flat, 1.0, 0.0, &sq);
        assert_eq!(values(&f.reported), vec![1.0, 0.5, 0.25]);
        assert_eq!(f.per_record.len(), 2);
        assert_eq!(values(&f.per_record[1]), vec![1.0, 0.5, 0.25]);
        assert_eq!(f.reported.size(), [3]);
    }

    #[test]
    fn automatic_factors_are_not_capped_at_one() {
        let sq = squared(&[0.25, 4.0], &[&[0.25, 4.0]]);
        let f = ClipFactors::compute(ClipStyle::Automatic, 1.0, 0.5, &sq);
        assert_eq!(values(&f.reported), vec![1.0, 0.4]); // C/(‖g‖ + γ) = 1/1, 1/2.5
    }

    #[test]
    fn per_layer_factors_use_c_over_root_l_per_record() {
        // Two layers: C_g = 2/√2 = √2. Layer norms 1 and 2√2: factors 1 and 1/2.
        let sq = squared(&[9.0], &[&[1.0], &[8.0]]);
        let f = ClipFactors::compute(ClipStyle::PerLayer, 2.0, 0.0, &sq);
        assert_eq!(f.reported.size(), [2, 1]);
        let got = values(&f.reported);
        assert!((got[0] - 1.0).abs() < 1e-15 && (got[1] - 0.5).abs() < 1e-15, "{got:?}");
    }

    #[test]
    fn infinite_c_leaves_every_gradient_whole() {
        let sq = squared(&[1e6, 0.0], &[&[1e6, 0.0]]);
        let f = ClipFactors::compute(ClipStyle::Flat, f64::INFINITY, 1e-6, &sq);
        assert_eq!(values(&f.reported), vec![1.0, 1.0]);
    }
}
