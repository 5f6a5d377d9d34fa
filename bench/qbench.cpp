// edgepack_qbench: micro-benchmarks of the quantized weight path (issue 4), not a test.
// Built only with -DEDGEPACK_BUILD_BENCH=ON; bench/qgemv.sh drives it and compares with
// ONNX Runtime. Each run prints one JSON object per line on stdout.
//
//   edgepack_qbench quantize [--rows R] [--cols C] [--reps N]
//       RTN int4g32 quantization of a seeded R x C f32 matrix (default 4096 x 4096), single
//       thread: the library's quantize_rtn on the stored matrix (its optimised path, "isa"),
//       the scalar reference quantize_rtn_reference (bytes compared with quantize_rtn's), and
//       quantize_tensor_rtn on the [C, R] MatMul weight encoded along axis 0 (what the
//       quantize-weights pass calls, transpose included). Reports weights/s (one thread).
//   edgepack_qbench gemv --k K --n N [--threads T] [--reps N] [--copies C] [--dump DIR]
//       Y[1, N] = x[1, K] * W^T with W int4g32 (stored N rows of K, the layout of a Gemm
//       transB weight and of MatMulNBits) through rt::qgemm_f32 (the executor's kernel,
//       float activations) and rt::qgemm_i8 (the int8-activation kernel of
//       --int8-activations, on a weight packed once beforehand), and a read-only pass (sum of
//       64-bit words, same thread count and parallel_for split) over a buffer of the same byte size
//       as the packed weight, each path timed over consecutive calls. --copies C cycles through C
//       copies of the weight (and of the read buffer) so that C x size exceeds the last-level
//       cache: the DRAM case; default 1 (the working set stays in L3 when it fits). --dump DIR
//       writes w.bin (packed blocks), x.bin (f32) and y.bin (edgepack's f32 output) for the ORT
//       side.
// Times are wall-clock per call (steady_clock); min and median over --reps after 3 warm-ups.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>

#include "bench/seeded.h"
#include "ir/encoding.h"
#include "ir/error.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/ops/op_context.h"
#include "runtime-check/ops/quant_matmul.h"

using namespace ep;
using ep::bench::seeded;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string mode;
    int64_t rows = 4096, cols = 4096, k = 4096, n = 4096;
    int threads = 1, reps = 0, copies = 1;
    std::string dump;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "error: %s\nusage: edgepack_qbench quantize [--rows R] [--cols C] [--reps N]\n"
                 "       edgepack_qbench gemv --k K --n N [--threads T] [--reps N] [--copies C] "
                 "[--dump DIR]\n",
                 why.c_str());
    std::exit(2);
}

Args parse(int argc, char** argv) {
    if (argc < 2) usage("missing mode");
    Args a;
    a.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string f = argv[i];
        if (i + 1 >= argc) usage(cat(f, " needs a value"));
        std::string v = argv[++i];
        auto num = [&] {
            try {
                return std::stoll(v);
            } catch (...) {
                usage(cat(f, ": expected an integer, got '", v, "'"));
            }
        };
        if (f == "--rows")
            a.rows = num();
        else if (f == "--cols")
            a.cols = num();
        else if (f == "--k")
            a.k = num();
        else if (f == "--n")
            a.n = num();
        else if (f == "--threads")
            a.threads = static_cast<int>(num());
        else if (f == "--reps")
            a.reps = static_cast<int>(num());
        else if (f == "--copies")
            a.copies = static_cast<int>(num());
        else if (f == "--dump")
            a.dump = v;
        else
            usage(cat("unknown option ", f));
    }
    if (a.rows <= 0 || a.cols <= 0 || a.k <= 0 || a.n <= 0 || a.threads <= 0 || a.copies <= 0 ||
        a.reps < 0)
        usage("sizes, --threads and --copies must be positive");
    return a;
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Stats {
    double min = 0, median = 0;
};
Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v.front(), v[v.size() / 2]};
}

void write_file(const std::string& path, const void* p, size_t size) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char*>(p), static_cast<std::streamsize>(size));
    if (!f) throw InputError(cat("cannot write ", path));
}

int run_quantize(const Args& a) {
    const Encoding e = *encoding_from_name("int4g32");
    const auto w = seeded(static_cast<size_t>(a.rows * a.cols), 1);
    const int reps = a.reps > 0 ? a.reps : 5;
    const double weights = static_cast<double>(a.rows) * static_cast<double>(a.cols);

    std::vector<double> t;
    size_t sink = 0;
    Stats s;
    // The library's quantize_rtn (optimised where the CPU allows) and the scalar reference.
    const bool equal =
        quantize_rtn(e, w, a.rows, a.cols) == quantize_rtn_reference(e, w, a.rows, a.cols);
    for (bool reference : {false, true}) {
        t.clear();
        for (int r = 0; r < reps + 1; ++r) {
            auto t0 = Clock::now();
            auto bytes = reference ? quantize_rtn_reference(e, w, a.rows, a.cols)
                                   : quantize_rtn(e, w, a.rows, a.cols);
            const double ms = ms_since(t0);
            sink += static_cast<size_t>(bytes[static_cast<size_t>(r) % bytes.size()]);
            if (r > 0) t.push_back(ms);
        }
        s = stats(t);
        std::printf(
            "{\"kind\": \"quantize\", \"path\": \"%s\", \"isa\": \"%s\", \"rows\": "
            "%lld, \"cols\": %lld, \"ms_min\": %.3f, \"ms_median\": %.3f, "
            "\"weights_per_s\": %.4g, \"bytes_equal_reference\": %s, \"sink\": %zu}\n",
            reference ? "quantize_rtn_reference" : "quantize_rtn",
            reference ? "scalar" : std::string(quantize_rtn_isa(e)).c_str(),
            static_cast<long long>(a.rows), static_cast<long long>(a.cols), s.min, s.median,
            weights / (s.median * 1e-3), equal ? "true" : "false", sink % 7);
    }

    // The pass path: a MatMul [K, N] weight (K = cols) encoded along axis 0.
    Encoding e0 = e;
    e0.axis = 0;
    std::vector<float> kn(w.size());
    for (int64_t r = 0; r < a.rows; ++r)
        for (int64_t c = 0; c < a.cols; ++c)
            kn[static_cast<size_t>(c * a.rows + r)] = w[static_cast<size_t>(r * a.cols + c)];
    Tensor tw = make_f32_tensor("w", {a.cols, a.rows}, kn);
    t.clear();
    for (int r = 0; r < reps + 1; ++r) {
        auto t0 = Clock::now();
        Tensor q = quantize_tensor_rtn(tw, e0);
        const double ms = ms_since(t0);
        sink += static_cast<size_t>(q.data.bytes()[0]);
        if (r > 0) t.push_back(ms);
    }
    s = stats(t);
    std::printf(
        "{\"kind\": \"quantize\", \"path\": \"quantize_tensor_rtn(axis 0)\", \"isa\": "
        "\"%s\", \"rows\": %lld, \"cols\": %lld, \"ms_min\": %.3f, \"ms_median\": %.3f, "
        "\"weights_per_s\": %.4g, \"sink\": %zu}\n",
        std::string(quantize_rtn_isa(e)).c_str(), static_cast<long long>(a.rows),
        static_cast<long long>(a.cols), s.min, s.median, weights / (s.median * 1e-3), sink % 7);
    return 0;
}

// The read-only pass's buffer: 2 MiB aligned and advised to use huge pages, like the
// int8-activation kernel's packed weights (rt::pack_i4), so that the limit it measures is
// not lowered by 4 KiB pages (the hardware prefetchers stop at page boundaries).
class HugeBuffer {
  public:
    explicit HugeBuffer(size_t bytes) {
        constexpr size_t kHuge = size_t{2} << 20;
        size_ = std::max(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
        p_ = static_cast<uint64_t*>(std::aligned_alloc(kHuge, size_));
        if (!p_) throw std::bad_alloc();
        (void)madvise(p_, size_, MADV_HUGEPAGE);
        std::memset(p_, 0, size_);
    }
    HugeBuffer(HugeBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), size_(o.size_) {}
    HugeBuffer(const HugeBuffer&) = delete;
    HugeBuffer& operator=(const HugeBuffer&) = delete;
    HugeBuffer& operator=(HugeBuffer&&) = delete;
    ~HugeBuffer() { std::free(p_); }
    [[nodiscard]] uint64_t* data() const { return p_; }

  private:
    uint64_t* p_ = nullptr;
    size_t size_ = 0;
};

// Sum of the 64-bit words of buf (the read-only pass), split like the kernels split work.
uint64_t read_pass(const rt::ExecOptions& opt, const uint64_t* buf, int64_t words) {
    std::atomic<uint64_t> total{0};
    constexpr int64_t kChunk = 4096;  // words per parallel_for index
    const int64_t chunks = (words + kChunk - 1) / kChunk;
    rt::parallel_for(opt, chunks, 16, [&](int64_t b, int64_t e) {
        const uint64_t* p = buf + b * kChunk;
        const int64_t len = std::min(words, e * kChunk) - b * kChunk;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t i = 0;
        for (; i + 4 <= len; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        for (; i < len; ++i) s0 += p[i];
        total += s0 + s1 + s2 + s3;
    });
    return total.load();
}

int run_gemv(const Args& a) {
    Encoding e = *encoding_from_name("int4g32");
    e.axis = 1;  // logical [N, K] = stored: N rows of K
    const auto wf = seeded(static_cast<size_t>(a.n * a.k), 2);
    const auto x = seeded(static_cast<size_t>(a.k), 3);
    Tensor w0 = quantize_tensor_rtn(make_f32_tensor("w", {a.n, a.k}, wf), e);
    const auto wbytes = w0.data.bytes();
    const size_t bytes = wbytes.size();

    std::vector<Tensor> ws;
    std::vector<HugeBuffer> bufs;
    for (int c = 0; c < a.copies; ++c) {
        Tensor t = w0;
        t.data = TensorData::owned(std::vector<std::byte>(wbytes.begin(), wbytes.end()));
        ws.push_back(std::move(t));
        HugeBuffer b(bytes);
        std::memcpy(b.data(), wbytes.data(), bytes);
        bufs.push_back(std::move(b));
    }

    rt::ExecOptions opt;
    opt.threads = a.threads;
    Node node;
    node.name = "qbench";
    node.op_type = "Gemm";
    rt::OpContext ctx{node, {}, {}, opt};
    const rt::MatrixView xa{x.data(), 1, a.k, a.k, false};
    std::vector<float> y(static_cast<size_t>(a.n));

    // About 0.3 s of GEMV per side unless --reps is given.
    int reps = a.reps;
    if (reps == 0) {
        auto t0 = Clock::now();
        rt::qgemm_f32(ctx, xa, ws[0], a.n, y.data(), a.n);
        reps = std::clamp(static_cast<int>(300.0 / std::max(ms_since(t0), 1e-3)), 10, 2000);
    }
    // The int8-activation kernel (ExecOptions::int8_activations): packed once, like the
    // executor does at the first run; the timed call quantizes x and runs the kernel.
    std::vector<std::unique_ptr<rt::QPackI4>> packs;
    for (const auto& w : ws) packs.push_back(rt::pack_i4(w, "w"));
    std::vector<float> y8(static_cast<size_t>(a.n));
    std::vector<double> tg, tr, t8;
    uint64_t sink = 0;
    // Each path runs its calls back to back (3 warm-ups, then `reps` timed), as ONNX
    // Runtime's side does in qgemv_vs_ort.py: interleaving them call by call would make the
    // three 1-copy working sets (weight, read buffer, packed weight) evict each other from
    // the L3 that ORT's single weight keeps to itself. The script alternates whole rounds of
    // both sides, so both still see the same machine load.
    auto timed = [&](std::vector<double>& out, auto&& call) {
        for (int r = 0; r < reps + 3; ++r) {
            const size_t c = static_cast<size_t>(r) % ws.size();
            auto t0 = Clock::now();
            call(c);
            if (r >= 3) out.push_back(ms_since(t0));
        }
    };
    timed(tg, [&](size_t c) { rt::qgemm_f32(ctx, xa, ws[c], a.n, y.data(), a.n); });
    timed(tr, [&](size_t c) {
        sink += read_pass(opt, bufs[c].data(), static_cast<int64_t>(bytes / 8));
    });
    timed(t8, [&](size_t c) { rt::qgemm_i8(opt, *packs[c], x.data(), 1, a.k, y8.data(), a.n); });
    const Stats g = stats(tg), rd = stats(tr), g8 = stats(t8);
    // Accuracy of the int8-activation kernel: max |y8 - y| / max |y| (y: f32 kernel).
    double diff = 0, mag = 0;
    for (size_t i = 0; i < y.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(y8[i] - y[i])));
        mag = std::max(mag, static_cast<double>(std::fabs(y[i])));
    }
    const double gb = static_cast<double>(bytes) * 1e-9;
    std::printf(
        "{\"kind\": \"gemv\", \"k\": %lld, \"n\": %lld, \"threads\": %d, \"copies\": %d, "
        "\"bytes\": %zu, \"reps\": %d, \"gemv_ms_min\": %.4f, \"gemv_ms_median\": %.4f, "
        "\"read_ms_min\": %.4f, \"read_ms_median\": %.4f, \"gemv_gbs\": %.3f, "
        "\"read_gbs\": %.3f, \"q8_ms_min\": %.4f, \"q8_ms_median\": %.4f, "
        "\"q8_rel_diff\": %.3g, \"sink\": %llu}\n",
        static_cast<long long>(a.k), static_cast<long long>(a.n), a.threads, a.copies, bytes, reps,
        g.min, g.median, rd.min, rd.median, gb / (g.median * 1e-3), gb / (rd.median * 1e-3), g8.min,
        g8.median, diff / std::max(mag, 1e-30), static_cast<unsigned long long>(sink % 7));
    if (!a.dump.empty()) {
        write_file(a.dump + "/w.bin", wbytes.data(), bytes);
        write_file(a.dump + "/x.bin", x.data(), x.size() * sizeof(float));
        write_file(a.dump + "/y.bin", y.data(), y.size() * sizeof(float));
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        if (a.mode == "quantize") return run_quantize(a);
        if (a.mode == "gemv") return run_gemv(a);
        usage(cat("unknown mode '", a.mode, "'"));
    } catch (const InputError& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "internal error: %s\n", e.what());
        return 1;
    }
}
