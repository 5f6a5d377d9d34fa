// edgepack_sparse_bench: the sparse weight kernels (runtime-check/kernels/sparse_gemm.h)
// against the dense kernels in the same run (issue 12), not a test. Built only with
// -DEDGEPACK_BUILD_BENCH=ON; bench/sparse.sh builds and runs it.
//
//   edgepack_sparse_bench [--k K] [--n N] [--m M,M,...] [--threads T] [--reps R] [--copies C]
//                         [--forms f32,int8c,int4g32]
//
// For each form (plain f32 values, int8c or int4g32 codes) and each M (rows of A; 1 is the
// GEMV of decoding), Y[M, N] = A[M, K] x W with W a MatMul weight [K, N] (default 4096 x
// 4096) pruned by magnitude along K, run through the executor's kernels exactly as a MatMul
// node would call them:
//   dense    the dense weight: gemm_f32 on the [K, N] floats, or qgemm_encoded_f32 on the
//            dense codes (encoded along axis 0)
//   bitmask  the same weight 50% pruned (the smaller half of each row's |w|), stored bitmask
//   2:4      the 2 smaller of every 4 consecutive weights along K pruned, stored 2:4
// The sparse sides are compared with a dense side run on the same pruned weight: "same_bits"
// (expected for codes and for M > 4; the fused f32 GEMV of M <= 4 sums in 8 lanes where the
// dense [K, N] kernel sums k in order: "max_rel_diff" = max |y - y_dense| / max |y_dense|);
// the ratio is sparse time / dense time of the
// unpruned weight of the same form (both read the same number of columns; the pruned dense
// weight takes as long as the unpruned one). Each side runs its calls back to back (3
// warm-ups, then --reps timed calls cycling over --copies copies so the working set exceeds
// the last-level cache: the DRAM case of a model's weights); min and median per call of the
// wall-clock time and of the process CPU time (steadier on a busy machine: it does not count
// waiting for a CPU; the ratios use the medians).
// Weights are seeded normal values, not a real model's (the times do not depend on them).
// One JSON object per line on stdout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/seeded.h"
#include "ir/encoding.h"
#include "ir/error.h"
#include "ir/sparse.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/kernels/simd.h"

using namespace ep;
using ep::bench::seeded;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    int64_t k = 4096, n = 4096;
    std::vector<int64_t> ms{1, 8};
    std::vector<std::string> forms{"f32", "int8c", "int4g32"};
    int threads = 1, reps = 20, copies = 3;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "error: %s\nusage: edgepack_sparse_bench [--k K] [--n N] [--m M,M,...] "
                 "[--threads T] [--reps R] [--copies C] [--forms f32,int8c,int4g32]\n",
                 why.c_str());
    std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
    return out;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string f = argv[i];
        if (i + 1 >= argc) usage(cat(f, " needs a value"));
        std::string v = argv[++i];
        auto num = [&](const std::string& text) {
            try {
                return std::stoll(text);
            } catch (...) {
                usage(cat(f, ": expected an integer, got '", text, "'"));
            }
        };
        if (f == "--k")
            a.k = num(v);
        else if (f == "--n")
            a.n = num(v);
        else if (f == "--threads")
            a.threads = static_cast<int>(num(v));
        else if (f == "--reps")
            a.reps = static_cast<int>(num(v));
        else if (f == "--copies")
            a.copies = static_cast<int>(num(v));
        else if (f == "--forms")
            a.forms = split(v);
        else if (f == "--m") {
            a.ms.clear();
            for (const auto& m : split(v)) a.ms.push_back(num(m));
        } else
            usage(cat("unknown option ", f));
    }
    if (a.k <= 0 || a.n <= 0 || a.k % 64 || a.threads <= 0 || a.reps <= 0 || a.copies <= 0)
        usage("sizes (K a multiple of 64), --threads, --reps and --copies must be positive");
    for (int64_t m : a.ms)
        if (m <= 0) usage("--m values must be positive");
    return a;
}

// The [K, N] weight with, per output column j, the smaller half of |w| over K (bitmask) or
// the 2 smaller of every 4 along K (2:4) set to 0.
std::vector<float> pruned(std::vector<float> w, int64_t k, int64_t n, bool nm) {
    std::vector<float> col(static_cast<size_t>(k));
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < k; ++i)
            col[static_cast<size_t>(i)] = std::fabs(w[static_cast<size_t>(i * n + j)]);
        if (nm) {
            for (int64_t i0 = 0; i0 < k; i0 += 4) {
                int order[4] = {0, 1, 2, 3};
                std::stable_sort(order, order + 4, [&](int x, int y) {
                    return col[static_cast<size_t>(i0 + x)] < col[static_cast<size_t>(i0 + y)];
                });
                for (int t = 0; t < 2; ++t) w[static_cast<size_t>((i0 + order[t]) * n + j)] = 0.0f;
            }
            continue;
        }
        std::vector<float> sorted = col;
        std::nth_element(sorted.begin(), sorted.begin() + k / 2, sorted.end());
        const float cut = sorted[static_cast<size_t>(k / 2)];
        int64_t dropped = 0;
        for (int64_t i = 0; i < k && dropped < k / 2; ++i)
            if (col[static_cast<size_t>(i)] < cut) {
                w[static_cast<size_t>(i * n + j)] = 0.0f;
                ++dropped;
            }
        for (int64_t i = 0; i < k && dropped < k / 2; ++i)
            if (col[static_cast<size_t>(i)] == cut && w[static_cast<size_t>(i * n + j)] != 0.0f) {
                w[static_cast<size_t>(i * n + j)] = 0.0f;
                ++dropped;
            }
    }
    return w;
}

// The weight in `form` (f32: plain; else quantized along axis 0), dense or stored sparse.
Tensor weight(const std::vector<float>& w, int64_t k, int64_t n, const std::string& form,
              const char* layout) {
    Tensor t = make_f32_tensor("w", {k, n}, w);
    Encoding e;
    e.axis = 0;
    if (form != "f32") {
        e = *encoding_from_name(form);
        e.axis = 0;
        t = quantize_tensor_rtn(t, e);
    }
    if (!layout) return t;
    const bool nm = std::string(layout) == "2:4";
    const Sparsity s = nm ? Sparsity{SparseLayout::NM, 2, 4, 0} : Sparsity{SparseLayout::Bitmask};
    return sparsify_tensor(t, s, nonzero_mask(make_f32_tensor("w", {k, n}, w), e), 0);
}

struct Stats {
    double min = 0, median = 0;          // wall-clock ms per call
    double cpu_min = 0, cpu_median = 0;  // process CPU ms per call (all threads)
};

double cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

// Y = A x W through the kernel a MatMul node runs for this weight.
void multiply(const rt::ExecOptions& opt, const rt::MatrixView& a, const Tensor& w, float* y) {
    const int64_t n = w.shape[1];
    if (w.is_encoded())
        rt::qgemm_encoded_f32(opt, nullptr, a, w, y, n);
    else
        rt::gemm_f32(opt, a, rt::MatrixView{w.values<float>().data(), a.cols, n, n, false}, y, n,
                     false);
}

Stats time_side(const Args& args, const std::vector<Tensor>& copies, const rt::MatrixView& a,
                std::vector<float>& y) {
    rt::ExecOptions opt;
    opt.threads = args.threads;
    std::vector<double> t, c;
    for (int r = 0; r < args.reps + 3; ++r) {
        const auto& w = copies[static_cast<size_t>(r) % copies.size()];
        const double c0 = cpu_ms();
        auto t0 = Clock::now();
        multiply(opt, a, w, y.data());
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (r >= 3) {
            t.push_back(ms);
            c.push_back(cpu_ms() - c0);
        }
    }
    std::sort(t.begin(), t.end());
    std::sort(c.begin(), c.end());
    return {t.front(), t[t.size() / 2], c.front(), c[c.size() / 2]};
}

std::vector<Tensor> copies_of(const Tensor& w, int copies) {
    std::vector<Tensor> out;
    for (int c = 0; c < copies; ++c) {
        Tensor t = w;
        auto b = w.data.bytes();
        t.data = TensorData::owned(std::vector<std::byte>(b.begin(), b.end()));
        out.push_back(std::move(t));
    }
    return out;
}

int run(const Args& args) {
    const auto w = seeded(static_cast<size_t>(args.k * args.n), 1);
    const auto w_half = pruned(w, args.k, args.n, false);
    const auto w_24 = pruned(w, args.k, args.n, true);
    const int64_t max_m = *std::max_element(args.ms.begin(), args.ms.end());
    const auto x = seeded(static_cast<size_t>(max_m * args.k), 2);
    for (const auto& form : args.forms) {
        const auto dense = copies_of(weight(w, args.k, args.n, form, nullptr), args.copies);
        struct Side {
            const char* layout;
            std::vector<Tensor> sparse, dense_pruned;
        };
        std::vector<Side> sides;
        for (const char* layout : {"bitmask", "2:4"}) {
            const auto& wp = std::string(layout) == "2:4" ? w_24 : w_half;
            sides.push_back({layout,
                             copies_of(weight(wp, args.k, args.n, form, layout), args.copies),
                             copies_of(weight(wp, args.k, args.n, form, nullptr), 1)});
        }
        for (int64_t m : args.ms) {
            const rt::MatrixView a{x.data(), m, args.k, args.k, false};
            std::vector<float> y(static_cast<size_t>(m * args.n)), yd(y.size());
            const Stats d = time_side(args, dense, a, y);
            for (auto& side : sides) {
                const Stats s = time_side(args, side.sparse, a, y);
                rt::ExecOptions one;
                multiply(one, a, side.dense_pruned[0], yd.data());
                const bool same = std::memcmp(y.data(), yd.data(), y.size() * 4) == 0;
                double diff = 0, mag = 0;
                for (size_t i = 0; i < y.size(); ++i) {
                    diff = std::max(diff, std::fabs(static_cast<double>(y[i]) - yd[i]));
                    mag = std::max(mag, std::fabs(static_cast<double>(yd[i])));
                }
                std::printf(
                    "{\"form\": \"%s\", \"layout\": \"%s\", \"m\": %lld, \"k\": %lld, \"n\": %lld, "
                    "\"threads\": %d, \"isa\": \"%s\", \"dense_bytes\": %zu, \"sparse_bytes\": "
                    "%zu, "
                    "\"dense_ms_min\": %.4f, \"dense_ms_median\": %.4f, \"sparse_ms_min\": %.4f, "
                    "\"sparse_ms_median\": %.4f, \"dense_cpu_ms_median\": %.4f, "
                    "\"sparse_cpu_ms_median\": %.4f, \"ratio_median\": %.3f, "
                    "\"cpu_ratio_median\": %.3f, \"same_bits\": %s, \"max_rel_diff\": %.3g}\n",
                    form.c_str(), side.layout, static_cast<long long>(m),
                    static_cast<long long>(args.k), static_cast<long long>(args.n), args.threads,
                    rt::simd_kernels().name, dense[0].data.size(), side.sparse[0].data.size(),
                    d.min, d.median, s.min, s.median, d.cpu_median, s.cpu_median,
                    s.median / d.median, s.cpu_median / d.cpu_median, same ? "true" : "false",
                    diff / std::max(mag, 1e-30));
                std::fflush(stdout);
            }
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const InputError& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "internal error: %s\n", e.what());
        return 1;
    }
}
