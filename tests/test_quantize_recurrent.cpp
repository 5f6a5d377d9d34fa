// quantize-weights on LSTM / GRU / RNN weights ("recurrent": true): W [D, G*H, I] and
// R [D, G*H, H] encoded along axis 2, so every row of every gate of every direction has its
// own scales; the biases stay float; the runtime reads the encoded weights (dequantized once
// when the plan is compiled) from memory and from a .epk, and the model's outputs stay close
// to the float model's.
#include <cmath>

#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "ir/encoding.h"
#include "op_model.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

// X [S, B, I] -> op (bidirectional, hidden H) -> Y, with W, R and B initializers. Gate 1's
// rows of W are 100x smaller than the others: with one scale per direction they would round
// to zero; per gate row they keep their precision.
Model recurrent_model(const std::string& op, int64_t S, int64_t B, int64_t I, int64_t H,
                      float scale = 0.3f) {
    const int64_t G = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1, D = 2;
    Model m;
    m.opset_imports.push_back({"", 14});
    std::vector<float> w = test::normal_values(static_cast<size_t>(D * G * H * I), 11, scale);
    for (int64_t d = 0; d < D; ++d)
        for (int64_t r = H; r < 2 * H && G > 1; ++r)
            for (int64_t c = 0; c < I; ++c)
                w[static_cast<size_t>((d * G * H + r) * I + c)] *= 0.01f;
    m.graph.initializers.push_back(make_f32_tensor("W", {D, G * H, I}, w));
    m.graph.initializers.push_back(make_f32_tensor(
        "R", {D, G * H, H}, test::normal_values(static_cast<size_t>(D * G * H * H), 12, scale)));
    m.graph.initializers.push_back(make_f32_tensor(
        "B", {D, 2 * G * H}, test::normal_values(static_cast<size_t>(D * 2 * G * H), 13, 0.3f)));
    m.graph.inputs.push_back(test::f32_value("X", {S, B, I}));
    m.graph.nodes.push_back(test::make_node(
        op, "rnn", {"X", "W", "R", "B"}, {"Y"},
        {test::int_attr("hidden_size", H), test::string_attr("direction", "bidirectional")}));
    m.graph.outputs.push_back(test::value("Y"));
    return m;
}

std::string reason_of(const PassResult& r, const std::string& name) {
    for (const auto& s : r.skipped)
        if (s.name == name) return s.reason;
    return "";
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape == b.shape);
    double worst = 0;
    for (size_t k = 0; k < a.values<float>().size(); ++k)
        worst = std::max(worst, std::abs(double{a.values<float>()[k]} - b.values<float>()[k]));
    return worst;
}

Tensor run(const Model& m, const Tensor& x, int threads = 1) {
    rt::Executor exec(m, rt::ExecOptions{threads});
    return exec.run({{"X", x}})[0].second;
}

}  // namespace

TEST_CASE("quantize-weights leaves recurrent weights float unless recurrent is set",
          "[quantize][recurrent]") {
    Model m = recurrent_model("LSTM", 4, 2, 32, 16);
    PassResult r = test::run_pass("quantize-weights", m,
                                  {{"bits", 8}, {"group_size", 0}, {"min_elements", 0}});
    CHECK(r.rewrites == 0);
    CHECK(reason_of(r, "W") ==
          "LSTM weight; recurrent weights stay float unless \"recurrent\": true");
    CHECK(reason_of(r, "R") ==
          "LSTM weight; recurrent weights stay float unless \"recurrent\": true");
    CHECK(reason_of(r, "B") == "bias of a LSTM (biases stay float)");
}

TEST_CASE("quantize-weights int8c on LSTM W and R: one scale per gate row",
          "[quantize][recurrent]") {
    const int64_t S = 6, B = 3, I = 32, H = 16;
    Model m = recurrent_model("LSTM", S, B, I, H);
    const Model before = m;
    PassResult r =
        test::run_pass("quantize-weights", m,
                       {{"bits", 8}, {"group_size", 0}, {"min_elements", 0}, {"recurrent", true}});
    CHECK(r.rewrites == 2);
    CHECK(reason_of(r, "B") == "bias of a LSTM (biases stay float)");
    for (const char* name : {"W", "R"}) {
        INFO(name);
        const Tensor& q = *m.graph.find_initializer(name);
        const Tensor& f = *before.graph.find_initializer(name);
        REQUIRE(q.is_encoded());
        CHECK(encoding_name(q.encoding) == "int8c");
        CHECK(q.encoding.axis == 2);
        CHECK(q.shape == f.shape);
        // Every stored row (direction x gate x hidden unit) within half its own step.
        auto dims = encoded_dims(q.encoding, q.shape, name);
        CHECK(dims.rows == 2 * 4 * H);
        std::vector<float> deq = q.to_floats();
        auto src = f.values<float>();
        for (int64_t row = 0; row < dims.rows; ++row) {
            float amax = 0, err = 0;
            for (int64_t c = 0; c < dims.cols; ++c) {
                auto k = static_cast<size_t>(row * dims.cols + c);
                amax = std::max(amax, std::abs(src[k]));
                err = std::max(err, std::abs(src[k] - deq[k]));
            }
            INFO("row " << row);
            CHECK(err <= amax / 127.0f * 0.5f * 1.001f);
        }
    }
    Tensor x = test::random_f32({S, B, I}, 21);
    Tensor want = run(before, x), got = run(m, x);
    CHECK(max_abs_diff(want, got) < 0.02);
    CHECK(test::same_bytes(got, run(m, x, 2)));
    CHECK(test::same_bytes(got, run(m, x, 3)));
}

TEST_CASE("quantize-weights int4g32 on GRU and RNN weights round-trips through a .epk",
          "[quantize][recurrent]") {
    for (const std::string op : {"GRU", "RNN"}) {
        INFO(op);
        const int64_t S = 5, B = 2, I = 64, H = 32;
        // Pre-activations spread over a few units: 4-bit weights keep the outputs close.
        Model m = recurrent_model(op, S, B, I, H, 0.1f);
        const Model before = m;
        PassResult r = test::run_pass(
            "quantize-weights", m,
            {{"bits", 4}, {"group_size", 32}, {"min_elements", 0}, {"recurrent", true}});
        CHECK(r.rewrites == 2);
        CHECK(encoding_name(m.graph.find_initializer("W")->encoding) == "int4g32");
        CHECK(m.graph.find_initializer("R")->encoding.axis == 2);
        test::TempDir dir;
        save_model(m, dir.path() / "q.epk");
        Model back = load_model(dir.path() / "q.epk");
        const Tensor& w = *back.graph.find_initializer("W");
        CHECK(w.encoding.axis == 2);
        CHECK(encoding_name(w.encoding) == "int4g32");
        Tensor x = test::random_f32({S, B, I}, 22);
        Tensor got = run(back, x);
        CHECK(test::same_bytes(got, run(m, x)));
        const double diff = max_abs_diff(run(before, x), got);
        INFO("outputs differ from the float model's by " << diff);
        CHECK(diff < 0.2);  // measured: RNN 0.14 (int4 through 5 tanh steps)
    }
}

TEST_CASE("a GRU keyword spotter shrinks with int8 recurrent weights and keeps its outputs",
          "[quantize][recurrent][xcheck]") {
    // scripts/xcheck/make_gru_kws.py: two GRU layers and a Gemm over log-mel features of a
    // synthesized signal (seeded weights, not a trained model).
    test::TempDir dir;
    auto r = test::run_oracle("make_gru_kws.py", {dir.path().string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const Model before = load_model(dir / "gru_kws.onnx");
    Model m = before;
    PassResult q =
        test::run_pass("quantize-weights", m,
                       {{"bits", 8}, {"group_size", 0}, {"min_elements", 0}, {"recurrent", true}});
    CHECK(q.rewrites == 5);  // gru1.W, gru1.R, gru2.W, gru2.R and the Gemm weight
    uint64_t float_bytes = 0, stored_bytes = 0;
    for (const auto& t : before.graph.initializers) float_bytes += t.data.size();
    for (const auto& t : m.graph.initializers) stored_bytes += t.data.size();
    INFO("initializer bytes " << float_bytes << " -> " << stored_bytes);
    CHECK(static_cast<double>(float_bytes) / static_cast<double>(stored_bytes) > 3.0);
    const Tensor features = read_npy(dir / "features.npy");
    rt::Executor f(before, rt::ExecOptions{1}), e(m, rt::ExecOptions{1});
    Tensor want = f.run({{"features", features}})[0].second;
    Tensor got = e.run({{"features", features}})[0].second;
    const double worst = max_abs_diff(want, got);
    INFO("keyword probabilities differ by " << worst);
    CHECK(worst < 5e-3);
}
