// The Hessian preparation GPTQ and SparseGPT share (contract in hessian_factor.h).
#include "calibration/hessian_factor.h"

#include <cmath>

#include "ir/error.h"

namespace ep::calib {

namespace detail {

namespace {

// Upper Cholesky factor of (H + lambda I)^-1, or false when a factorisation fails.
bool inverse_cholesky(const MatrixD& h, double lambda, MatrixD& upper) {
    const auto n = h.rows();
    MatrixD damped = h;
    damped.diagonal().array() += lambda;
    Eigen::LLT<MatrixD> llt(damped);
    if (llt.info() != Eigen::Success) return false;
    MatrixD inv = llt.solve(MatrixD::Identity(n, n));
    inv = (inv + inv.transpose()) * 0.5;  // exact symmetry for the second factorisation
    Eigen::LLT<MatrixD> llt2(inv);
    if (llt2.info() != Eigen::Success) return false;
    upper = llt2.matrixU();
    for (Eigen::Index i = 0; i < n; ++i)
        if (!(upper(i, i) > 0.0) || !std::isfinite(upper(i, i))) return false;
    return upper.allFinite();
}

}  // namespace

int64_t prepare_hessian(MatrixD& h, MatrixD& w, const std::string& what, std::string_view solver) {
    if (!h.allFinite())
        throw InputError(cat(what, ": the calibration Hessian has non-finite values (the ",
                             "activations overflow); ", solver, " cannot process this tensor"));
    int64_t dead = 0;
    for (Eigen::Index i = 0; i < h.rows(); ++i)
        if (h(i, i) == 0.0) {
            h(i, i) = 1.0;
            w.col(i).setZero();
            ++dead;
        }
    return dead;
}

DampedFactor damped_inverse_cholesky(const MatrixD& h, double damp, const std::string& what,
                                     std::string_view solver, std::string_view advice) {
    DampedFactor f;
    const double mean_diag = h.diagonal().mean();
    for (int attempt = 0; attempt <= 3; ++attempt) {
        if (attempt > 0) {
            damp *= 10.0;
            ++f.retries;
        }
        if (inverse_cholesky(h, damp * mean_diag, f.upper)) {
            f.damp = damp;
            return f;
        }
    }
    throw InputError(cat(what, ": ", solver, ": the Cholesky factorisation of the damped ",
                         "Hessian failed even with damp = ", damp, " (", f.retries,
                         " retries, float64); the calibration activations for this weight are ",
                         "degenerate: ", advice));
}

}  // namespace detail

}  // namespace ep::calib
