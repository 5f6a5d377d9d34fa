// Audio front ends: DFT, STFT, HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix.
// Values in double, stored in the output's dtype, as the ONNX reference (numpy's FFT in
// complex128). Each transform line is computed by one thread: the same bits for any
// thread count.
//
// DFT(x [..., L, ..., 1 | 2], dft_length?, axis? (opset 20 input; opset 17 attribute,
//   default 1; opset 20 default -2); inverse, onesided): along `axis`, the input (real,
//   or complex as (re, im) pairs in the last dimension) cut or zero-padded to n =
//   dft_length (default L, or 2 (L - 1) for an inverse onesided one);
//   forward X[k] = sum_j x[j] e^{-2 pi i jk / n}, onesided keeps k <= n / 2;
//   inverse x[j] = 1/n sum_k X[k] e^{2 pi i jk / n}; inverse onesided is numpy's irfft:
//   X[0 .. n/2] (cut or padded) extended by X[n - k] = conj(X[k]), the real part only
//   (last dimension 1).
// STFT(signal [B, L, 1 | 2], frame_step, window [W]?, frame_length?; onesided = 1):
//   frame_length = frame_length, else W, else L; F = 1 + (L - frame_length) / frame_step
//   frames; frame f is signal[f * frame_step + j] * window[j] (j < frame_length), its
//   DFT of length frame_length, onesided keeping k <= frame_length / 2:
//   [B, F, bins, 2].
// HannWindow / HammingWindow / BlackmanWindow(size; output_datatype = float, periodic =
//   1): N = size (periodic) or size - 1; w[n] = sin^2(pi n / N), 25/46 - 21/46 cos(2 pi n
//   / N), 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N).
// MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
//   upper_edge_hertz; output_datatype = float): [dft_length / 2 + 1, num_mel_bins]
//   triangles between mel points spaced evenly over [mel(lower), mel(upper)] (mel(f) =
//   2595 log10(1 + f / 700)), each point's spectrogram bin floor((dft_length + 1) f /
//   sample_rate), as the ONNX reference computes them.
//
// The FFT: iterative radix-2 for powers of two, Bluestein's chirp-z (through a
// power-of-two FFT) for any other length, so every length costs O(n log n); a real
// signal of even length runs as a complex FFT of half the length (the real-FFT split).
#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

using Complex = std::complex<double>;

// exp(-2 pi i k / n), with k reduced mod n first so large k keep their precision.
Complex unit_root(int64_t k, int64_t n) {
    k %= n;
    if (k < 0) k += n;
    const double a = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
    return {std::cos(a), std::sin(a)};
}

// An unnormalised DFT of one length, planned once and run on many lines.
class Fft {
  public:
    explicit Fft(int64_t n) : n_(n) {
        if (is_pow2(n)) {
            plan_pow2(n);
            return;
        }
        int64_t m = 1;
        while (m < 2 * n - 1) m *= 2;
        plan_pow2(m);
        chirp_.resize(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) {
            // exp(-pi i k^2 / n) = unit_root(k^2 mod 2n, 2n)
            const int64_t k2 = static_cast<int64_t>((static_cast<unsigned __int128>(k) * k) %
                                                    static_cast<unsigned __int128>(2 * n));
            chirp_[static_cast<size_t>(k)] = unit_root(k2, 2 * n);
        }
        chirp_fft_.assign(static_cast<size_t>(m), Complex{});
        chirp_fft_[0] = std::conj(chirp_[0]);
        for (int64_t k = 1; k < n; ++k)
            chirp_fft_[static_cast<size_t>(k)] = chirp_fft_[static_cast<size_t>(m - k)] =
                std::conj(chirp_[static_cast<size_t>(k)]);
        pow2(chirp_fft_.data(), false);
    }

    [[nodiscard]] int64_t size() const { return n_; }

    // In place on n values; `inverse` uses e^{+2 pi i jk / n} (no 1/n).
    void run(Complex* a, bool inverse, std::vector<Complex>& scratch) const {
        if (chirp_.empty()) {
            pow2(a, inverse);
            return;
        }
        // Inverse through conjugation: conj(DFT(conj(a))).
        const auto m = static_cast<int64_t>(chirp_fft_.size());
        scratch.assign(static_cast<size_t>(m), Complex{});
        for (int64_t k = 0; k < n_; ++k) {
            const Complex v = inverse ? std::conj(a[k]) : a[k];
            scratch[static_cast<size_t>(k)] = v * chirp_[static_cast<size_t>(k)];
        }
        pow2(scratch.data(), false);
        for (int64_t k = 0; k < m; ++k)
            scratch[static_cast<size_t>(k)] *= chirp_fft_[static_cast<size_t>(k)];
        pow2(scratch.data(), true);
        const double scale = 1.0 / static_cast<double>(m);
        for (int64_t k = 0; k < n_; ++k) {
            const Complex v =
                scratch[static_cast<size_t>(k)] * scale * chirp_[static_cast<size_t>(k)];
            a[k] = inverse ? std::conj(v) : v;
        }
    }

  private:
    static bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

    void plan_pow2(int64_t m) {
        m_ = m;
        twiddle_.resize(static_cast<size_t>(m / 2));
        for (int64_t k = 0; k < m / 2; ++k) twiddle_[static_cast<size_t>(k)] = unit_root(k, m);
        bitrev_.resize(static_cast<size_t>(m));
        int bits = 0;
        while ((int64_t{1} << bits) < m) ++bits;
        for (int64_t i = 0; i < m; ++i) {
            int64_t r = 0;
            for (int b = 0; b < bits; ++b)
                if (i & (int64_t{1} << b)) r |= int64_t{1} << (bits - 1 - b);
            bitrev_[static_cast<size_t>(i)] = r;
        }
    }

    // Radix-2 decimation in time over m_ values.
    void pow2(Complex* a, bool inverse) const {
        for (int64_t i = 0; i < m_; ++i) {
            const int64_t r = bitrev_[static_cast<size_t>(i)];
            if (i < r) std::swap(a[i], a[r]);
        }
        for (int64_t len = 2; len <= m_; len *= 2) {
            const int64_t half = len / 2, step = m_ / len;
            for (int64_t s = 0; s < m_; s += len)
                for (int64_t j = 0; j < half; ++j) {
                    Complex w = twiddle_[static_cast<size_t>(j * step)];
                    if (inverse) w = std::conj(w);
                    const Complex t = w * a[s + j + half];
                    a[s + j + half] = a[s + j] - t;
                    a[s + j] += t;
                }
        }
    }

    int64_t n_ = 0, m_ = 0;
    std::vector<Complex> twiddle_;
    std::vector<int64_t> bitrev_;
    std::vector<Complex> chirp_, chirp_fft_;  // Bluestein only
};

// The DFT of a real signal of even length n through a complex FFT of length n / 2:
// z[j] = x[2j] + i x[2j + 1], Z = FFT(z), X[k] = (Z[k] + conj(Z[h - k])) / 2
// - i e^{-2 pi i k / n} (Z[k] - conj(Z[h - k])) / 2 for k <= h = n / 2.
class RealFft {
  public:
    explicit RealFft(int64_t n) : n_(n), half_(n / 2) {
        roots_.resize(static_cast<size_t>(half_ + 1));
        for (int64_t k = 0; k <= half_; ++k) roots_[static_cast<size_t>(k)] = unit_root(k, n);
    }
    // x: n reals; out: bins k = 0 .. n / 2.
    void run(const double* x, Complex* out, std::vector<Complex>& z,
             std::vector<Complex>& scratch) const {
        z.resize(static_cast<size_t>(half_));
        for (int64_t j = 0; j < half_; ++j) z[static_cast<size_t>(j)] = {x[2 * j], x[2 * j + 1]};
        half_fft_.run(z.data(), false, scratch);
        for (int64_t k = 0; k <= half_; ++k) {
            const Complex zk = z[static_cast<size_t>(k % half_)];
            const Complex zc = std::conj(z[static_cast<size_t>((half_ - k) % half_)]);
            const Complex even = (zk + zc) * 0.5;
            const Complex odd = (zk - zc) * Complex{0.0, -0.5};
            out[k] = even + roots_[static_cast<size_t>(k)] * odd;
        }
    }

  private:
    int64_t n_, half_;
    Fft half_fft_{half_};
    std::vector<Complex> roots_;
};

void check_float(const OpContext& c, const Tensor& t, const char* what) {
    if (!is_float(t.dtype)) c.fail(cat(what, " must be float, found ", dtype_name(t.dtype)));
}

int64_t scalar_int(const OpContext& c, int index, const char* what) {
    const Tensor& t = c.input(index);
    if (t.element_count() != 1)
        c.fail(cat(what, " must be a scalar, found ", shape_string(t.shape)));
    if (t.dtype == DType::I64) return t.values<int64_t>()[0];
    if (t.dtype == DType::I32) return t.values<int32_t>()[0];
    c.fail(cat(what, " must be int32 or int64, found ", dtype_name(t.dtype)));
}

DType output_float_dtype(const OpContext& c) {
    const int64_t code = c.node.attr_int("output_datatype", 1);
    auto dt = dtype_from_onnx(static_cast<int>(code));
    if (!dt ||
        (!is_float(*dt) && traits(*dt).kind != DTypeKind::SignedInt &&
         traits(*dt).kind != DTypeKind::UnsignedInt) ||
        traits(*dt).bits < 8)
        c.fail(cat("output_datatype ", code, " is not a supported numeric type"));
    return *dt;
}

// Stores v (a float or integer output type) at element i.
void store_number(const OpContext& c, Tensor& y, int64_t i, double v) {
    if (is_float(y.dtype)) return store_double(y, i, v);
    dispatch_numeric(c, y.dtype, [&](auto tag) {
        y.mutable_values<decltype(tag)>()[static_cast<size_t>(i)] = static_cast<decltype(tag)>(v);
    });
}

}  // namespace

void op_dft(OpContext& c) {
    const Tensor& x = c.input(0);
    check_float(c, x, "input");
    const auto rank = static_cast<int64_t>(x.shape.size());
    if (rank < 2 || (x.shape.back() != 1 && x.shape.back() != 2))
        c.fail(cat("input must end in a dimension of 1 (real) or 2 (complex), found ",
                   shape_string(x.shape)));
    const bool complex_in = x.shape.back() == 2;
    const bool inverse = c.node.attr_int("inverse", 0) != 0;
    const bool onesided = c.node.attr_int("onesided", 0) != 0;
    int64_t axis = c.opset >= 20 ? (c.has_input(2) ? scalar_int(c, 2, "axis") : -2)
                                 : c.node.attr_int("axis", 1);
    if (axis < -rank || axis >= rank)
        c.fail(cat("axis ", axis, " is out of range for rank ", rank));
    if (axis < 0) axis += rank;
    if (axis == rank - 1) c.fail("axis must not be the last (real / imaginary) dimension");
    if (inverse && onesided && !complex_in)
        c.fail("an inverse onesided DFT needs a complex input (last dimension 2)");
    const int64_t length = x.shape[static_cast<size_t>(axis)];
    int64_t n = inverse && onesided ? 2 * (length - 1) : length;
    if (c.has_input(1)) n = scalar_int(c, 1, "dft_length");
    if (n < 1) c.fail(cat("dft_length ", n, " must be at least 1"));

    // Lines: every index of the dimensions other than `axis` and the last.
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank - 1; ++d) inner *= x.shape[static_cast<size_t>(d)];
    const int64_t in_parts = x.shape.back();
    const int64_t out_len = inverse ? n : (onesided ? n / 2 + 1 : n);
    const int64_t out_parts = inverse && onesided ? 1 : 2;
    std::vector<int64_t> out_shape = x.shape;
    out_shape[static_cast<size_t>(axis)] = out_len;
    out_shape.back() = out_parts;
    Tensor y = make_tensor(x.dtype, out_shape);
    const Fft fft(n);
    // Inverse onesided input: the first n / 2 + 1 bins (cut or zero-padded).
    const int64_t in_used = inverse && onesided ? std::min(length, n / 2 + 1) : std::min(length, n);
    parallel_for(c.options, outer * inner, 1, [&](int64_t b, int64_t e) {
        std::vector<Complex> line(static_cast<size_t>(n)), scratch;
        for (int64_t li = b; li < e; ++li) {
            const int64_t o = li / inner, in = li % inner;
            auto in_index = [&](int64_t j, int64_t part) {
                return ((o * length + j) * inner + in) * in_parts + part;
            };
            std::fill(line.begin(), line.end(), Complex{});
            for (int64_t j = 0; j < in_used; ++j)
                line[static_cast<size_t>(j)] = {load_double(x, in_index(j, 0)),
                                                complex_in ? load_double(x, in_index(j, 1)) : 0.0};
            if (inverse && onesided)  // Hermitian extension (numpy's irfft)
                for (int64_t k = n / 2 + 1; k < n; ++k)
                    line[static_cast<size_t>(k)] = std::conj(line[static_cast<size_t>(n - k)]);
            fft.run(line.data(), inverse, scratch);
            const double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
            for (int64_t k = 0; k < out_len; ++k) {
                const int64_t out = ((o * out_len + k) * inner + in) * out_parts;
                store_double(y, out, line[static_cast<size_t>(k)].real() * scale);
                if (out_parts == 2)
                    store_double(y, out + 1, line[static_cast<size_t>(k)].imag() * scale);
            }
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_stft(OpContext& c) {
    const Tensor& x = c.input(0);
    check_float(c, x, "signal");
    if (x.shape.size() != 3 || (x.shape[2] != 1 && x.shape[2] != 2))
        c.fail(cat("signal must be [batch, length, 1 | 2], found ", shape_string(x.shape)));
    const int64_t batch = x.shape[0], length = x.shape[1], parts = x.shape[2];
    const int64_t step = scalar_int(c, 1, "frame_step");
    if (step < 1) c.fail(cat("frame_step ", step, " must be at least 1"));
    const Tensor* window = c.has_input(2) ? c.inputs[2] : nullptr;
    if (window) {
        check_float(c, *window, "window");
        if (window->shape.size() != 1)
            c.fail(cat("window must be 1-D, found ", shape_string(window->shape)));
    }
    int64_t n = window ? window->shape[0] : length;
    if (c.has_input(3)) n = scalar_int(c, 3, "frame_length");
    if (n < 1 || n > length)
        c.fail(cat("frame_length ", n, " must be in [1, ", length, "] (the signal length)"));
    const int64_t window_size = window ? window->shape[0] : n;
    const bool onesided = c.node.attr_int("onesided", 1) != 0;
    const int64_t frames = 1 + (length - n) / step;
    const int64_t bins = onesided ? n / 2 + 1 : n;
    std::vector<double> w(static_cast<size_t>(n), 0.0);
    for (int64_t j = 0; j < n && j < window_size; ++j)
        w[static_cast<size_t>(j)] = window ? load_double(*window, j) : 1.0;
    Tensor y = make_tensor(x.dtype, {batch, frames, bins, 2});
    const bool real_split = parts == 1 && n % 2 == 0;
    const Fft fft(real_split ? 1 : n);
    const RealFft rfft(real_split ? n : 2);
    parallel_for(c.options, batch * frames, 1, [&](int64_t b, int64_t e) {
        std::vector<Complex> line(static_cast<size_t>(n)), z, scratch;
        std::vector<double> real(static_cast<size_t>(n));
        for (int64_t fi = b; fi < e; ++fi) {
            const int64_t bt = fi / frames, f = fi % frames;
            auto at = [&](int64_t j, int64_t part) {
                const int64_t t = f * step + j;
                return t < length ? load_double(x, (bt * length + t) * parts + part) : 0.0;
            };
            if (real_split) {
                for (int64_t j = 0; j < n; ++j)
                    real[static_cast<size_t>(j)] = at(j, 0) * w[static_cast<size_t>(j)];
                rfft.run(real.data(), line.data(), z, scratch);
                for (int64_t k = n / 2 + 1; k < bins; ++k)  // two-sided: the conjugate half
                    line[static_cast<size_t>(k)] = std::conj(line[static_cast<size_t>(n - k)]);
            } else {
                for (int64_t j = 0; j < n; ++j)
                    line[static_cast<size_t>(j)] =
                        Complex{at(j, 0), parts == 2 ? at(j, 1) : 0.0} * w[static_cast<size_t>(j)];
                fft.run(line.data(), false, scratch);
            }
            for (int64_t k = 0; k < bins; ++k) {
                const int64_t out = (fi * bins + k) * 2;
                store_double(y, out, line[static_cast<size_t>(k)].real());
                store_double(y, out + 1, line[static_cast<size_t>(k)].imag());
            }
        }
    });
    c.outputs.push_back(std::move(y));
}

namespace {

template <typename Fn>
void window_op(OpContext& c, Fn&& w_of) {
    const int64_t size = scalar_int(c, 0, "size");
    if (size < 0) c.fail(cat("size ", size, " must not be negative"));
    const bool periodic = c.node.attr_int("periodic", 1) != 0;
    const DType dt = output_float_dtype(c);
    const double big_n = static_cast<double>(periodic ? size : size - 1);
    Tensor y = make_tensor(dt, {size});
    for (int64_t i = 0; i < size; ++i) store_number(c, y, i, w_of(static_cast<double>(i), big_n));
    c.outputs.push_back(std::move(y));
}

}  // namespace

void op_hann_window(OpContext& c) {
    window_op(c, [](double i, double n) {
        const double s = std::sin(i * std::numbers::pi / n);
        return s * s;
    });
}

void op_hamming_window(OpContext& c) {
    window_op(c, [](double i, double n) {
        const double alpha = 25.0 / 46.0;
        return alpha - std::cos(i * std::numbers::pi * 2 / n) * (1 - alpha);
    });
}

void op_blackman_window(OpContext& c) {
    window_op(c, [](double i, double n) {
        return std::cos(i * std::numbers::pi * 2 / n) * -0.5 +
               std::cos(i * std::numbers::pi * 4 / n) * 0.08 + 0.42;
    });
}

namespace {

// numpy's floor_divide for doubles (npy_divmod), so bin edges land where the reference's do.
double floor_divide(double a, double b) {
    const double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
    if (div == 0.0) return std::copysign(0.0, a / b);
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    return floordiv;
}

}  // namespace

void op_mel_weight_matrix(OpContext& c) {
    const int64_t mel_bins = scalar_int(c, 0, "num_mel_bins");
    const int64_t dft_length = scalar_int(c, 1, "dft_length");
    const int64_t sample_rate = scalar_int(c, 2, "sample_rate");
    for (int i : {3, 4}) {
        check_float(c, c.input(i), i == 3 ? "lower_edge_hertz" : "upper_edge_hertz");
        if (c.input(i).element_count() != 1)
            c.fail(cat(i == 3 ? "lower_edge_hertz" : "upper_edge_hertz", " must be a scalar"));
    }
    if (mel_bins < 1 || dft_length < 1 || sample_rate < 1)
        c.fail(cat("num_mel_bins ", mel_bins, ", dft_length ", dft_length, " and sample_rate ",
                   sample_rate, " must be positive"));
    const double lower = load_double(c.input(3), 0), upper = load_double(c.input(4), 0);
    const int64_t spectrogram_bins = dft_length / 2 + 1;
    // The reference computes 2595 * log1p(f / 700) in the edges' dtype (float32 scalars),
    // then divides by log(10) in double.
    auto mel = [&](double f) {
        if (c.input(3).dtype == DType::F64) return 2595.0 * std::log1p(f / 700.0) / std::log(10.0);
        const float m = 2595.0f * std::log1p(static_cast<float>(f) / 700.0f);
        return static_cast<double>(m) / std::log(10.0);
    };
    const double low_mel = mel(lower), high_mel = mel(upper);
    const double mel_step = (high_mel - low_mel) / static_cast<double>(mel_bins + 2);
    std::vector<int64_t> points(static_cast<size_t>(mel_bins + 2));
    for (int64_t i = 0; i < mel_bins + 2; ++i) {
        const double m = static_cast<double>(i) * mel_step + low_mel;
        const double hz = 700.0 * std::expm1(m / 2595.0 * std::log(10.0));
        const double bin = floor_divide(static_cast<double>(dft_length + 1) * hz,
                                        static_cast<double>(sample_rate));
        points[static_cast<size_t>(i)] = static_cast<int64_t>(bin);
    }
    std::vector<double> w(static_cast<size_t>(spectrogram_bins * mel_bins), 0.0);
    auto set = [&](int64_t j, int64_t i, double v) {
        if (j < 0 || j >= spectrogram_bins)
            c.fail(cat("mel point bin ", j, " is outside the ", spectrogram_bins,
                       " spectrogram bins (check the edges against sample_rate / 2)"));
        w[static_cast<size_t>(j * mel_bins + i)] = v;
    };
    for (int64_t i = 0; i < mel_bins; ++i) {
        const int64_t left = points[static_cast<size_t>(i)],
                      center = points[static_cast<size_t>(i + 1)],
                      right = points[static_cast<size_t>(i + 2)];
        if (center == left)
            set(center, i, 1.0);
        else
            for (int64_t j = left; j <= center; ++j)
                set(j, i, static_cast<double>(j - left) / static_cast<double>(center - left));
        if (right > center)
            for (int64_t j = center; j < right; ++j)
                set(j, i, static_cast<double>(right - j) / static_cast<double>(right - center));
    }
    Tensor y = make_tensor(output_float_dtype(c), {spectrogram_bins, mel_bins});
    for (int64_t k = 0; k < spectrogram_bins * mel_bins; ++k)
        store_number(c, y, k, w[static_cast<size_t>(k)]);
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
