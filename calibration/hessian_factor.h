// The Hessian preparation GPTQ and SparseGPT share (solvers.h), internal to calibration/:
// both read the same 2/n X^T X, give dead columns (H[c][c] == 0) a unit diagonal and a zero
// weight column, and factor the damped inverse with the same retry rule, so a weight that
// fails one fails the other with the same message.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <string>
#include <string_view>

namespace ep::calib::detail {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// Refuses a non-finite Hessian (InputError naming `what` and `solver`), then handles dead
// columns: H[c][c] = 1 and w[:, c] = 0 (w is rows x cols, columns along the reduction
// axis). Returns how many columns were dead.
[[nodiscard]] int64_t prepare_hessian(MatrixD& h, MatrixD& w, const std::string& what,
                                      std::string_view solver);

struct DampedFactor {
    MatrixD upper;      // upper Cholesky factor of (H + damp mean(diag H) I)^-1
    double damp = 0.0;  // the relative damping finally used
    int retries = 0;    // how many times damping was multiplied by 10
};

// Factors with damping `damp` (relative to mean(diag H)); on failure the damping is
// multiplied by 10, up to 3 times, then InputError naming `what` and `solver`, with
// `advice` (what the user can do) at the end. Double precision, one thread.
[[nodiscard]] DampedFactor damped_inverse_cholesky(const MatrixD& h, double damp,
                                                   const std::string& what, std::string_view solver,
                                                   std::string_view advice);

}  // namespace ep::calib::detail
