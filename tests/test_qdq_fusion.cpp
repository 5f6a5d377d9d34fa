// The runtime's int8 execution of QDQ models (runtime-check/qdq_fusion.h,
// kernels/igemm.h): the integer kernels against an int64 reference on awkward sizes, every
// instruction set giving the same bytes; the fused ops against the unfused reference
// (ConvInteger / MatMulInteger + the QLinear requantization; DequantizeLinear -> float op ->
// QuantizeLinear); and QDQ models written by onnxruntime.quantization.quantize_static
// (MNIST, PP-OCRv4 rec, calibrated on real images) against the unfused run, ONNX Runtime,
// and themselves at other thread counts.
//
// The kernel and op cases use seeded pseudo-random 8-bit codes (integers: the property
// tested is exact arithmetic, which real data would not exercise better); the model cases
// run real images.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "compressor/dataset.h"
#include "formats/model_io.h"
#include "op_model.h"
#include "pass_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/kernels/igemm.h"
#include "runtime-check/npy.h"
#include "runtime-check/ops/quant_common.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
    std::uniform_int_distribution<int> d(0, 255);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(d(rng));
    return v;
}

int32_t code(uint8_t b, bool is_signed) {
    return is_signed ? static_cast<int8_t>(b) : static_cast<int32_t>(b);
}

Tensor bytes_tensor(DType dt, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
    Tensor t;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(bytes.data()),
                               reinterpret_cast<const std::byte*>(bytes.data() + bytes.size())));
    return t;
}

template <typename T>
Tensor values_tensor(DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
    Tensor t;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                               reinterpret_cast<const std::byte*>(v.data() + v.size())));
    return t;
}

Tensor run_one(const test::OneNode& spec, int threads = 1) {
    rt::Executor exec(test::make_model(spec), {threads});
    rt::NamedTensors feeds;
    for (const auto& [name, t] : spec.feeds) feeds.emplace_back(name, t);
    return exec.run(feeds).at(0).second;
}

// y = saturate(round_half_even(float(acc) * mult) + zp): the QLinear requantization.
std::vector<uint8_t> requantize_ref(const std::vector<int32_t>& acc, int64_t len,
                                    const std::vector<float>& mult_per_row, int64_t rows_mod,
                                    bool is_signed, int32_t zp) {
    std::vector<uint8_t> out(acc.size());
    for (size_t i = 0; i < acc.size(); ++i) {
        const int64_t row = static_cast<int64_t>(i) / len;
        const float m = mult_per_row[static_cast<size_t>(row % rows_mod)];
        const int32_t q = rt::saturate_round(static_cast<float>(acc[i]) * m, zp,
                                             is_signed ? -128 : 0, is_signed ? 127 : 255);
        out[i] = static_cast<uint8_t>(q);
    }
    return out;
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
    auto b = t.data.bytes();
    return {reinterpret_cast<const uint8_t*>(b.data()),
            reinterpret_cast<const uint8_t*>(b.data() + b.size())};
}

}  // namespace

TEST_CASE("igemm: every instruction set gives the bytes of the int64 reference", "[qdq][igemm]") {
    const int64_t rows = GENERATE(1, 7, 8, 9, 33);
    const int64_t k = GENERATE(1, 3, 4, 5, 64, 131);
    const int64_t cols = GENERATE(1, 16, 17, 33, 70);
    INFO("rows " << rows << " k " << k << " cols " << cols);
    std::mt19937 rng(static_cast<uint32_t>(rows * 1000003 + k * 1009 + cols));
    for (int variant = 0; variant < 4; ++variant) {
        const bool x_signed = variant & 1, w_signed = variant & 2;
        INFO("x " << (x_signed ? "int8" : "uint8") << ", w " << (w_signed ? "int8" : "uint8"));
        auto x = random_bytes(rng, static_cast<size_t>(k * cols));  // [k][cols]
        auto w = random_bytes(rng, static_cast<size_t>(rows * k));  // [rows][k]
        std::uniform_int_distribution<int> zd(x_signed ? -128 : 0, x_signed ? 127 : 255);
        std::uniform_int_distribution<int> wzd(w_signed ? -128 : 0, w_signed ? 127 : 255);
        const int32_t xz = zd(rng);
        // Symmetric weights (zero point 0) and asymmetric ones.
        std::vector<int32_t> wz(static_cast<size_t>(rows));
        for (auto& z : wz) z = variant == 2 ? 0 : wzd(rng);
        std::vector<int32_t> bias(static_cast<size_t>(rows));
        std::vector<float> mult(static_cast<size_t>(rows));
        std::uniform_real_distribution<float> md(1e-5f, 2e-3f);
        for (int64_t r = 0; r < rows; ++r) {
            bias[static_cast<size_t>(r)] = static_cast<int32_t>(rng() % 20001) - 10000;
            mult[static_cast<size_t>(r)] = md(rng);
        }
        std::vector<int32_t> acc(static_cast<size_t>(rows * cols));
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                int64_t s = bias[static_cast<size_t>(r)];
                for (int64_t kk = 0; kk < k; ++kk)
                    s += static_cast<int64_t>(
                             code(x[static_cast<size_t>(kk * cols + c)], x_signed) - xz) *
                         (code(w[static_cast<size_t>(r * k + kk)], w_signed) -
                          wz[static_cast<size_t>(r)]);
                acc[static_cast<size_t>(r * cols + c)] = static_cast<int32_t>(s);
            }
        const int32_t yz = 3;
        auto want = requantize_ref(acc, cols, mult, rows, x_signed, yz);
        rt::IgemmWeights wp = rt::igemm_prepare_weights(w.data(), w_signed, rows, k, k, 1, wz);
        rt::IgemmActivation a{x.data(), x_signed, cols, cols, 1, xz};
        for (rt::IgemmIsa isa : rt::igemm_available_isas())
            for (int threads : {1, 2, 3}) {
                INFO("isa " << rt::igemm_isa_name(isa) << ", threads " << threads);
                std::vector<uint8_t> got(static_cast<size_t>(rows * cols), 0xAA);
                rt::IgemmOutput o{got.data(), x_signed, cols, 1, yz};
                rt::igemm_requantize({threads}, wp, a, bias.data(), mult.data(), o, isa);
                REQUIRE(got == want);
            }
    }
}

TEST_CASE("QLinearConv (the fused Conv) gives ConvInteger's sums requantized, byte for byte",
          "[qdq][qlinearconv][kernels]") {
    struct Case {
        const char* what;
        int64_t n, c_in, c_out, group, h, w, kh, kw, stride, pad, dilation;
    };
    const Case cases[] = {
        {"pointwise", 1, 19, 33, 1, 5, 7, 1, 1, 1, 0, 1},
        {"3x3 pad 1", 2, 5, 9, 1, 9, 11, 3, 3, 1, 1, 1},
        {"3x3 stride 2", 1, 8, 17, 1, 12, 13, 3, 3, 2, 1, 1},
        {"depthwise 3x3", 1, 12, 12, 12, 10, 17, 3, 3, 1, 1, 1},
        {"depthwise 5x5 stride 2", 2, 7, 7, 7, 11, 40, 5, 5, 2, 2, 1},
        {"depthwise dilated", 1, 4, 4, 4, 9, 9, 3, 3, 1, 2, 2},
        {"grouped", 1, 8, 12, 4, 6, 6, 3, 3, 1, 1, 1},
        {"1x1 stride 2", 1, 16, 24, 1, 8, 8, 1, 1, 2, 0, 1},
    };
    for (const auto& cs : cases)
        for (int variant = 0; variant < 3; ++variant) {
            // 0: u8 x / s8 w symmetric; 1: s8 x / s8 w; 2: u8 x / u8 w with zero points.
            const bool x_signed = variant == 1, w_signed = variant != 2;
            INFO(cs.what << ", variant " << variant);
            std::mt19937 rng(static_cast<uint32_t>(variant * 7919 + cs.c_out * 31 + cs.h));
            const int64_t cin_g = cs.c_in / cs.group;
            auto xb = random_bytes(rng, static_cast<size_t>(cs.n * cs.c_in * cs.h * cs.w));
            auto wb = random_bytes(rng, static_cast<size_t>(cs.c_out * cin_g * cs.kh * cs.kw));
            const DType xdt = x_signed ? DType::I8 : DType::U8;
            const DType wdt = w_signed ? DType::I8 : DType::U8;
            const uint8_t xz = x_signed ? static_cast<uint8_t>(-5) : 131;
            std::vector<uint8_t> wz(static_cast<size_t>(cs.c_out));
            for (auto& z : wz) z = variant == 2 ? static_cast<uint8_t>(120 + rng() % 16) : 0;
            std::vector<float> ws(static_cast<size_t>(cs.c_out));
            std::vector<int32_t> bias(static_cast<size_t>(cs.c_out));
            for (size_t o = 0; o < ws.size(); ++o) {
                ws[o] = 0.001f * static_cast<float>(1 + rng() % 50);
                bias[o] = static_cast<int32_t>(rng() % 4001) - 2000;
            }
            const float x_scale = 0.02f, y_scale = 0.05f;
            const uint8_t yz = x_signed ? 0 : 128;
            std::vector<Attribute> attrs{test::ints_attr("kernel_shape", {cs.kh, cs.kw}),
                                         test::ints_attr("strides", {cs.stride, cs.stride}),
                                         test::ints_attr("pads", {cs.pad, cs.pad, cs.pad, cs.pad}),
                                         test::ints_attr("dilations", {cs.dilation, cs.dilation}),
                                         test::int_attr("group", cs.group)};
            Tensor x = bytes_tensor(xdt, {cs.n, cs.c_in, cs.h, cs.w}, xb);
            Tensor w = bytes_tensor(wdt, {cs.c_out, cin_g, cs.kh, cs.kw}, wb);
            test::OneNode integer{"ConvInteger"};
            integer.opset = 13;
            integer.feeds = {{"x", x}};
            integer.constants = {{"w", w},
                                 {"xz", bytes_tensor(xdt, {}, {xz})},
                                 {"wz", bytes_tensor(wdt, {cs.c_out}, wz)}};
            integer.inputs = {"x", "w", "xz", "wz"};
            integer.attributes = attrs;
            Tensor sums = run_one(integer);
            const int64_t pixels = sums.shape[2] * sums.shape[3];
            std::vector<int32_t> acc(sums.values<int32_t>().begin(), sums.values<int32_t>().end());
            for (size_t i = 0; i < acc.size(); ++i)
                acc[i] += bias[static_cast<size_t>(static_cast<int64_t>(i) / pixels % cs.c_out)];
            std::vector<float> mult(ws.size());
            for (size_t o = 0; o < ws.size(); ++o) mult[o] = x_scale * ws[o] / y_scale;
            auto want = requantize_ref(acc, pixels, mult, cs.c_out, x_signed, code(yz, x_signed));

            test::OneNode q{"QLinearConv"};
            q.opset = 13;
            q.feeds = {{"x", x}};
            q.constants = {{"xs", values_tensor<float>(DType::F32, {}, {x_scale})},
                           {"xz", bytes_tensor(xdt, {}, {xz})},
                           {"w", w},
                           {"ws", values_tensor<float>(DType::F32, {cs.c_out}, ws)},
                           {"wz", bytes_tensor(wdt, {cs.c_out}, wz)},
                           {"ys", values_tensor<float>(DType::F32, {}, {y_scale})},
                           {"yz", bytes_tensor(xdt, {}, {yz})},
                           {"b", values_tensor<int32_t>(DType::I32, {cs.c_out}, bias)}};
            q.inputs = {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"};
            q.attributes = attrs;
            for (int threads : {1, 2, 3}) {
                INFO("threads " << threads);
                REQUIRE(bytes_of(run_one(q, threads)) == want);
            }
        }
}

TEST_CASE("QLinearMatMul and QGemm (the fused MatMul / Gemm) give the integer sums requantized",
          "[qdq][qlinearmatmul][kernels]") {
    const int64_t m = GENERATE(1, 5, 40);
    const int64_t k = GENERATE(3, 32, 120);
    const int64_t n = GENERATE(1, 17, 64);
    INFO("m " << m << " k " << k << " n " << n);
    std::mt19937 rng(static_cast<uint32_t>(m * 10007 + k * 101 + n));
    auto ab = random_bytes(rng, static_cast<size_t>(m * k));
    auto bb = random_bytes(rng, static_cast<size_t>(k * n));
    std::vector<float> bs(static_cast<size_t>(n));
    for (auto& s : bs) s = 0.001f * static_cast<float>(1 + rng() % 40);
    const float as = 0.03f, ys = 0.07f;
    const uint8_t az = 120, yz = 127;
    std::vector<uint8_t> bz(static_cast<size_t>(n), 0);
    Tensor a = bytes_tensor(DType::U8, {m, k}, ab);
    Tensor b = bytes_tensor(DType::I8, {k, n}, bb);
    std::vector<int32_t> acc(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            int64_t s = 0;
            for (int64_t kk = 0; kk < k; ++kk)
                s += static_cast<int64_t>(ab[static_cast<size_t>(i * k + kk)] - az) *
                     static_cast<int8_t>(bb[static_cast<size_t>(kk * n + j)]);
            acc[static_cast<size_t>(i * n + j)] = static_cast<int32_t>(s);
        }
    // Per row of the transposed product: the multiplier depends on the column j.
    std::vector<uint8_t> want(acc.size());
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            want[static_cast<size_t>(i * n + j)] = static_cast<uint8_t>(
                rt::saturate_round(static_cast<float>(acc[static_cast<size_t>(i * n + j)]) *
                                       (as * bs[static_cast<size_t>(j)] / ys),
                                   yz, 0, 255));
    test::OneNode mm{"QLinearMatMul"};
    mm.opset = 13;
    mm.feeds = {{"a", a}};
    mm.constants = {{"as", values_tensor<float>(DType::F32, {}, {as})},
                    {"az", bytes_tensor(DType::U8, {}, {az})},
                    {"b", b},
                    {"bs", values_tensor<float>(DType::F32, {n}, bs)},
                    {"bz", bytes_tensor(DType::I8, {n}, bz)},
                    {"ys", values_tensor<float>(DType::F32, {}, {ys})},
                    {"yz", bytes_tensor(DType::U8, {}, {yz})}};
    mm.inputs = {"a", "as", "az", "b", "bs", "bz", "ys", "yz"};
    CHECK(bytes_of(run_one(mm, 1)) == want);
    CHECK(bytes_of(run_one(mm, 3)) == want);

    // QGemm with B stored transposed ([n, k]) and an int32 bias.
    std::vector<uint8_t> bt(static_cast<size_t>(n * k));
    for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t j = 0; j < n; ++j)
            bt[static_cast<size_t>(j * k + kk)] = bb[static_cast<size_t>(kk * n + j)];
    std::vector<int32_t> bias(static_cast<size_t>(n));
    for (auto& v : bias) v = static_cast<int32_t>(rng() % 3001) - 1500;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            want[static_cast<size_t>(i * n + j)] = static_cast<uint8_t>(
                rt::saturate_round(static_cast<float>(acc[static_cast<size_t>(i * n + j)] +
                                                      bias[static_cast<size_t>(j)]) *
                                       (1.0f * as * bs[static_cast<size_t>(j)] / ys),
                                   yz, 0, 255));
    test::OneNode g{"QGemm", "com.microsoft"};
    g.opset = 13;
    g.feeds = {{"a", a}};
    g.constants = mm.constants;
    g.constants[2].second = bytes_tensor(DType::I8, {n, k}, bt);
    g.constants.push_back({"c", values_tensor<int32_t>(DType::I32, {n}, bias)});
    g.inputs = {"a", "as", "az", "b", "bs", "bz", "c", "ys", "yz"};
    g.attributes = {test::int_attr("transB", 1)};
    CHECK(bytes_of(run_one(g, 1)) == want);
    CHECK(bytes_of(run_one(g, 2)) == want);
}

namespace {

struct QdqRun {
    std::vector<float> fused, unfused;
    size_t fused_ops = 0;
};

std::vector<float> floats_of(const Tensor& t) {
    return {t.values<float>().begin(), t.values<float>().end()};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
    return d;
}

// Row-wise argmax agreement of two [..., classes] outputs.
double argmax_agreement(const std::vector<float>& a, const std::vector<float>& b, int64_t classes) {
    const size_t rows = a.size() / static_cast<size_t>(classes);
    size_t same = 0;
    for (size_t r = 0; r < rows; ++r) {
        auto ra = a.begin() + static_cast<int64_t>(r) * classes;
        auto rb = b.begin() + static_cast<int64_t>(r) * classes;
        same += std::max_element(ra, ra + classes) - ra == std::max_element(rb, rb + classes) - rb;
    }
    return static_cast<double>(same) / static_cast<double>(rows);
}

// Makes the QDQ model with ONNX Runtime's quantize_static (scripts/xcheck/ort_qdq_model.py).
fs::path make_qdq(const test::TempDir& dir, const fs::path& model, const fs::path& calib,
                  int samples) {
    const fs::path out = dir / "qdq.onnx";
    auto r = test::run_oracle("ort_qdq_model.py",
                              {model.string(), calib.string(), out.string(), "--per-channel",
                               "--samples", std::to_string(samples)});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return out;
}

// ONNX Runtime's output on `input` (.npy), with its graph optimizations (the QDQ patterns
// run as its QLinear ops) when `optimize`, else as written (float ops between Q and DQ).
std::vector<float> ort_output(const test::TempDir& dir, const fs::path& model,
                              const std::string& input_name, const fs::path& input, bool optimize,
                              const std::string& tag) {
    const fs::path out = dir / tag;
    std::vector<std::string> args{model.string(), "--input", input_name + "=" + input.string(),
                                  "--out", out.string()};
    if (optimize) args.push_back("--optimize");
    auto r = test::run_oracle("ort_run.py", args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    for (const auto& e : fs::directory_iterator(out)) return floats_of(read_npy(e.path()));
    FAIL("ort_run.py wrote no output");
    return {};
}

}  // namespace

TEST_CASE("MNIST QDQ (ORT quantize_static): fused int8 run against unfused, ORT and thread counts",
          "[qdq][model][mnist]") {
    const fs::path model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    const fs::path data = test::source_dir() / ".cache" / "data" / "mnist-test";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(data / "batch_00.npz");
    test::TempDir dir;
    const fs::path qdq = make_qdq(dir, model, data, 64);
    rt::NamedTensors feeds = read_npz(data / "batch_00.npz");  // 1000 real test images
    Tensor images = feeds.at(0).second;
    Model m = load_model(qdq);
    rt::Executor fused(m, {1});
    rt::ExecOptions plain{1};
    plain.fuse_qdq = false;
    rt::Executor unfused(m, plain);
    rt::Executor float_model(load_model(model), {1});
    CHECK(fused.fused_qdq_ops() >= 4);  // 2 Conv, 2 Gemm (+ Reshape)
    CHECK(unfused.fused_qdq_ops() == 0);
    auto yf = floats_of(fused.run(feeds).at(0).second);
    auto yu = floats_of(unfused.run(feeds).at(0).second);
    auto y32 = floats_of(float_model.run(feeds).at(0).second);
    for (int threads : {2, 3}) {
        rt::Executor other(m, {threads});
        CHECK(floats_of(other.run(feeds).at(0).second) == yf);
    }
    const double agree_unfused = argmax_agreement(yf, yu, 10);
    const double agree_float = argmax_agreement(yf, y32, 10);
    const fs::path npy = dir / "input.npy";
    write_npy(images, npy);
    auto ort = ort_output(dir, qdq, "input", npy, true, "ort");
    const double diff_ort = max_abs_diff(yf, ort), diff_unfused = max_abs_diff(yf, yu);
    double max_logit = 0;
    for (float v : yu) max_logit = std::max(max_logit, std::fabs(double(v)));
    WARN("MNIST QDQ, 1000 images: fused vs unfused max |diff| "
         << diff_unfused << " (max |logit| " << max_logit << "), top-1 agreement " << agree_unfused
         << "; vs float model " << agree_float << "; vs ORT (optimized) max |diff| " << diff_ort);
    CHECK(agree_unfused >= 0.995);
    CHECK(agree_float >= 0.99);
    CHECK(argmax_agreement(yf, ort, 10) >= 0.995);
}

TEST_CASE(
    "PP-OCRv4 rec QDQ (ORT quantize_static): fused int8 run against unfused, ORT and thread "
    "counts",
    "[qdq][model][ppocr]") {
    const fs::path model = test::model_cache() / "ppocr" / "ch_PP-OCRv4_rec_infer.onnx";
    const fs::path calib = test::source_dir() / ".cache" / "data" / "ppocr-rec-calib";
    const fs::path eval = test::source_dir() / ".cache" / "data" / "ppocr-rec-eval";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(calib / "00000.npz");
    EP_REQUIRE_FILE_OR_SKIP(eval / "00000.npz");
    test::TempDir dir;
    const fs::path qdq = make_qdq(dir, model, calib, 4);
    Model m = load_model(qdq);
    rt::Executor fused(m, {1});
    rt::ExecOptions plain{1};
    plain.fuse_qdq = false;
    rt::Executor unfused(m, plain);
    CHECK(fused.fused_qdq_ops() > 40);
    rt::NamedTensors feeds = read_npz(eval / "00000.npz");  // one rendered text line
    const int64_t classes = fused.outputs().empty() ? 0 : 6625;
    auto yf = floats_of(fused.run(feeds).at(0).second);
    auto yu = floats_of(unfused.run(feeds).at(0).second);
    rt::Executor two(m, {2});
    CHECK(floats_of(two.run(feeds).at(0).second) == yf);
    // A second run reads the weights prepared by the first (the executor's cache).
    CHECK(floats_of(fused.run(feeds).at(0).second) == yf);
    const fs::path npy = dir / "x.npy";
    write_npy(feeds.at(0).second, npy);
    // The AVX2 and portable kernels give the same bytes (a fresh process per table:
    // EDGEPACK_ISA is read once).
    for (const char* isa : {"avx2", "baseline"}) {
        INFO("EDGEPACK_ISA=" << isa);
        const fs::path out = dir / isa;
        auto r = test::run({"/usr/bin/env", std::string("EDGEPACK_ISA=") + isa,
                            test::edgepack_binary().string(), "run", qdq.string(), "--input",
                            "x=" + npy.string(), "--out", out.string(), "--quiet"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        for (const auto& e : fs::directory_iterator(out))
            CHECK(floats_of(read_npy(e.path())) == yf);
    }
    auto ort = ort_output(dir, qdq, "x", npy, true, "ort");
    const double diff_unfused = max_abs_diff(yf, yu), diff_ort = max_abs_diff(yf, ort);
    const double agree_unfused = argmax_agreement(yf, yu, classes);
    const double agree_ort = argmax_agreement(yf, ort, classes);
    WARN("PP-OCRv4 rec QDQ, one line: fused vs unfused max |diff| "
         << diff_unfused << ", per-step argmax agreement " << agree_unfused
         << "; vs ORT (optimized) max |diff| " << diff_ort << ", agreement " << agree_ort);
    CHECK(agree_unfused >= 0.9);
    CHECK(agree_ort >= 0.9);
}

namespace {

Tensor scalar_f32(float v) {
    return values_tensor<float>(DType::F32, {}, {v});
}
Tensor scalar_u8(uint8_t v) {
    return bytes_tensor(DType::U8, {}, {v});
}

}  // namespace

TEST_CASE(
    "elementwise and data-movement QDQ patterns give the unfused bytes, and fetching a "
    "fused value runs the unfused plan",
    "[qdq][fusion][kernels]") {
    // x -> Q -> DQ -> Mul(DQ(per-channel codes)) -> Q -> DQ -> Div(6.0) -> Q -> DQ ->
    // Add(DQ(xq)) -> Q -> DQ -> Transpose -> Q (same scale) -> DQ -> y; plus a QDQ Conv whose
    // float output is also a graph output (not fused).
    Model m;
    m.opset_imports.push_back({"", 13});
    Graph& g = m.graph;
    g.inputs.push_back(test::f32_value("x", {1, 4, 64, 100}));
    auto init = [&](std::string name, Tensor t) {
        t.name = std::move(name);
        g.initializers.push_back(std::move(t));
    };
    init("s_x", scalar_f32(0.02f));
    init("z_x", scalar_u8(128));
    init("c_q", bytes_tensor(DType::U8, {1, 4, 1, 1}, {10, 200, 128, 77}));
    init("s_c", scalar_f32(0.01f));
    init("z_c", scalar_u8(100));
    init("s_m", scalar_f32(0.015f));
    init("z_m", scalar_u8(120));
    init("six", scalar_f32(6.0f));
    init("s_d", scalar_f32(0.004f));
    init("z_d", scalar_u8(110));
    init("s_a", scalar_f32(0.03f));
    init("z_a", scalar_u8(126));
    auto add = [&](std::string op, std::string name, std::vector<std::string> in,
                   std::vector<std::string> out, std::vector<Attribute> attrs = {}) {
        Node n;
        n.op_type = std::move(op);
        n.name = std::move(name);
        n.inputs = std::move(in);
        n.outputs = std::move(out);
        n.attributes = std::move(attrs);
        g.nodes.push_back(std::move(n));
    };
    add("QuantizeLinear", "q_x", {"x", "s_x", "z_x"}, {"xq"});
    add("DequantizeLinear", "dq_x", {"xq", "s_x", "z_x"}, {"xd"});
    add("DequantizeLinear", "dq_c", {"c_q", "s_c", "z_c"}, {"cd"});
    add("Mul", "mul", {"xd", "cd"}, {"m"});
    add("QuantizeLinear", "q_m", {"m", "s_m", "z_m"}, {"mq"});
    add("DequantizeLinear", "dq_m", {"mq", "s_m", "z_m"}, {"md"});
    add("Div", "div", {"md", "six"}, {"d"});
    add("QuantizeLinear", "q_d", {"d", "s_d", "z_d"}, {"dq"});
    add("DequantizeLinear", "dq_d", {"dq", "s_d", "z_d"}, {"dd"});
    add("DequantizeLinear", "dq_x2", {"xq", "s_x", "z_x"}, {"xd2"});
    add("Add", "add", {"dd", "xd2"}, {"a"});
    add("QuantizeLinear", "q_a", {"a", "s_a", "z_a"}, {"aq"});
    add("DequantizeLinear", "dq_a", {"aq", "s_a", "z_a"}, {"ad"});
    add("Transpose", "transpose", {"ad"}, {"t"}, {test::ints_attr("perm", {0, 2, 3, 1})});
    add("QuantizeLinear", "q_t", {"t", "s_a", "z_a"}, {"tq"});
    add("DequantizeLinear", "dq_t", {"tq", "s_a", "z_a"}, {"y"});
    // A Conv whose float output is a graph output: it stays as written.
    std::vector<uint8_t> wb(4 * 4);
    for (size_t i = 0; i < wb.size(); ++i) wb[i] = static_cast<uint8_t>(i * 37 % 255);
    init("w_q", bytes_tensor(DType::I8, {4, 4, 1, 1}, wb));
    init("s_w", scalar_f32(0.005f));
    init("z_w", bytes_tensor(DType::I8, {}, {0}));
    add("DequantizeLinear", "dq_w", {"w_q", "s_w", "z_w"}, {"wd"});
    add("Conv", "conv", {"xd", "wd"}, {"conv_out"});
    add("QuantizeLinear", "q_conv", {"conv_out", "s_a", "z_a"}, {"cq"});
    add("DequantizeLinear", "dq_conv", {"cq", "s_a", "z_a"}, {"y2"});
    g.outputs = {test::value("y"), test::value("y2"), test::value("conv_out")};

    Tensor x =
        values_tensor<float>(DType::F32, {1, 4, 64, 100}, test::normal_values(25600, 7, 1.5f));
    rt::NamedTensors feeds{{"x", x}};
    rt::Executor fused(m, {1});
    rt::ExecOptions plain{1};
    plain.fuse_qdq = false;
    rt::Executor unfused(m, plain);
    CHECK(fused.fused_qdq_ops() == 4);  // Mul, Div, Add, Transpose; not the Conv
    auto yf = fused.run(feeds);
    auto yu = unfused.run(feeds);
    REQUIRE(yf.size() == 3);
    for (size_t i = 0; i < yf.size(); ++i) {
        INFO(yf[i].first);
        CHECK(bytes_of(yf[i].second) == bytes_of(yu[i].second));
    }
    // The Mul's float output exists only in the unfused plan: fetching it runs that plan.
    auto with_m = fused.run(feeds, {"m"});
    REQUIRE(with_m.size() == 4);
    CHECK(with_m[3].first == "m");
    CHECK(bytes_of(with_m[3].second) == bytes_of(unfused.run(feeds, {"m"})[3].second));
    CHECK(bytes_of(with_m[0].second) == bytes_of(yu[0].second));
    rt::Executor three(m, {3});
    CHECK(bytes_of(three.run(feeds)[0].second) == bytes_of(yu[0].second));
}
