// The attention family (runtime-check/ops/ops_attention.cpp): GroupQueryAttention,
// RotaryEmbedding (com.microsoft and opset 23), SkipSimplifiedLayerNormalization,
// SimplifiedLayerNormalization and RMSNormalization against ONNX Runtime on the one-node
// cases of scripts/xcheck/op_cases.py --group attention (prefill and decode shapes, with and
// without past, head ratios 1 / 2 / 4, rotary, packed QKV, windows, softcap); a KV-cache
// decode step that equals the last row of a longer prefill; bit-identical results at 1, 2
// and 3 threads; the messages malformed nodes get.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "op_cases.h"
#include "op_model.h"
#include "support.h"

using namespace ep;
using Catch::Matchers::Contains;
using test::OneNode;

namespace {

Tensor i32_tensor(std::vector<int64_t> shape, std::vector<int32_t> v) {
    Tensor t;
    t.dtype = DType::I32;
    t.shape = std::move(shape);
    std::vector<std::byte> b(v.size() * sizeof(int32_t));
    std::memcpy(b.data(), v.data(), b.size());
    t.data = TensorData::owned(std::move(b));
    return t;
}

// cos / sin caches [positions, half] of the usual RoPE frequencies.
std::pair<Tensor, Tensor> rope_cache(int64_t positions, int64_t half) {
    std::vector<float> c(static_cast<size_t>(positions * half)), s(c.size());
    for (int64_t p = 0; p < positions; ++p)
        for (int64_t i = 0; i < half; ++i) {
            double angle = static_cast<double>(p) /
                           std::pow(10000.0, static_cast<double>(i) / static_cast<double>(half));
            c[static_cast<size_t>(p * half + i)] = static_cast<float>(std::cos(angle));
            s[static_cast<size_t>(p * half + i)] = static_cast<float>(std::sin(angle));
        }
    return {make_f32_tensor("", {positions, half}, c), make_f32_tensor("", {positions, half}, s)};
}

struct GqaShape {
    int64_t batch, seq, heads, kv_heads, head_size, past;
};

// A GroupQueryAttention node with rotary on `seq` new tokens after `past` cached ones.
OneNode gqa_node(const GqaShape& g, uint32_t seed) {
    OneNode spec;
    spec.op_type = "GroupQueryAttention";
    spec.domain = "com.microsoft";
    const int64_t total = g.past + g.seq;
    spec.feeds = {{"q", test::random_f32({g.batch, g.seq, g.heads * g.head_size}, seed)},
                  {"k", test::random_f32({g.batch, g.seq, g.kv_heads * g.head_size}, seed + 1)},
                  {"v", test::random_f32({g.batch, g.seq, g.kv_heads * g.head_size}, seed + 2)}};
    spec.inputs = {"q", "k", "v", "", ""};
    if (g.past > 0) {
        spec.feeds.emplace_back(
            "past_key", test::random_f32({g.batch, g.kv_heads, g.past, g.head_size}, seed + 3));
        spec.feeds.emplace_back(
            "past_value", test::random_f32({g.batch, g.kv_heads, g.past, g.head_size}, seed + 4));
        spec.inputs = {"q", "k", "v", "past_key", "past_value"};
    }
    spec.feeds.emplace_back(
        "seqlens_k", i32_tensor({g.batch}, std::vector<int32_t>(static_cast<size_t>(g.batch),
                                                                static_cast<int32_t>(total - 1))));
    spec.feeds.emplace_back("total", i32_tensor({}, {static_cast<int32_t>(total)}));
    auto [cos, sin] = rope_cache(total + 8, g.head_size / 2);
    spec.constants = {{"cos", cos}, {"sin", sin}};
    spec.inputs.insert(spec.inputs.end(), {"seqlens_k", "total", "cos", "sin"});
    spec.outputs = {"out", "present_key", "present_value"};
    spec.attributes = {test::int_attr("num_heads", g.heads),
                       test::int_attr("kv_num_heads", g.kv_heads), test::int_attr("do_rotary", 1)};
    return spec;
}

Tensor& feed(OneNode& spec, const std::string& name) {
    for (auto& [n, t] : spec.feeds)
        if (n == name) return t;
    FAIL("no feed " << name);
    return spec.feeds[0].second;
}

}  // namespace

TEST_CASE("the attention family matches ONNX Runtime on random shapes", "[attention][xcheck]") {
    CHECK(test::check_op_cases("attention") >= 29);
}

TEST_CASE("GroupQueryAttention gives the same bytes at 1, 2 and 3 threads", "[attention]") {
    for (const GqaShape& g : {GqaShape{2, 33, 8, 2, 32, 0}, GqaShape{3, 1, 8, 4, 32, 40}}) {
        INFO("batch " << g.batch << " sequence " << g.seq << " past " << g.past);
        Tensor y = test::run_threads(gqa_node(g, 3));
        CHECK(y.shape == std::vector<int64_t>{g.batch, g.seq, g.heads * g.head_size});
    }
}

TEST_CASE("a GroupQueryAttention decode step on the KV cache equals a longer prefill",
          "[attention]") {
    // Prefill 6 tokens, then decode token 7 with present_* as past_*: its output is the
    // last row of a 7-token prefill, and the new present the 7-token prefill's.
    const GqaShape full{2, 7, 4, 2, 16, 0};
    OneNode whole = gqa_node(full, 11);
    std::vector<Tensor> want = test::run_node(whole, 1);

    auto rows = [](const Tensor& t, int64_t from, int64_t to) {  // [B, S, D] rows [from, to)
        const int64_t b = t.shape[0], s = t.shape[1], d = t.shape[2];
        std::vector<float> v;
        auto x = t.values<float>();
        for (int64_t i = 0; i < b; ++i)
            v.insert(v.end(), x.begin() + (i * s + from) * d, x.begin() + (i * s + to) * d);
        return make_f32_tensor("", {b, to - from, d}, v);
    };
    OneNode prefill = gqa_node({2, 6, 4, 2, 16, 0}, 11);
    for (const char* name : {"q", "k", "v"}) feed(prefill, name) = rows(feed(whole, name), 0, 6);
    std::vector<Tensor> first = test::run_node(prefill, 1);

    OneNode decode = gqa_node({2, 1, 4, 2, 16, 6}, 11);
    for (const char* name : {"q", "k", "v"}) feed(decode, name) = rows(feed(whole, name), 6, 7);
    feed(decode, "past_key") = first[1];
    feed(decode, "past_value") = first[2];
    std::vector<Tensor> step = test::run_node(decode, 1);

    Tensor last = rows(want[0], 6, 7);
    REQUIRE(step[0].shape == last.shape);
    double worst = 0;
    for (size_t i = 0; i < last.values<float>().size(); ++i)
        worst = std::max(worst, static_cast<double>(std::abs(step[0].values<float>()[i] -
                                                             last.values<float>()[i])));
    CHECK(worst < 1e-5);
    CHECK(test::same_bytes(step[1], want[1]));
    CHECK(test::same_bytes(step[2], want[2]));
}

TEST_CASE("malformed attention nodes are refused naming what is wrong", "[attention]") {
    OneNode heads = gqa_node({1, 3, 4, 2, 16, 0}, 1);
    heads.attributes[1] = test::int_attr("kv_num_heads", 3);
    CHECK_THAT(test::error_of(heads), Contains("must be a positive multiple of kv_num_heads"));

    OneNode lens = gqa_node({1, 1, 4, 2, 16, 5}, 1);
    feed(lens, "seqlens_k") = i32_tensor({1}, {9});
    CHECK_THAT(test::error_of(lens), Contains("seqlens_k[0] = 9 does not fit"));

    OneNode past = gqa_node({1, 1, 4, 2, 16, 5}, 1);
    feed(past, "past_key") = test::random_f32({1, 4, 5, 16}, 2);
    CHECK_THAT(test::error_of(past),
               Contains("past_key / past_value must be [1, 2, past_length, 16]"));

    OneNode rope = gqa_node({1, 3, 4, 2, 16, 0}, 1);
    rope.constants[0].second = test::random_f32({2, 8}, 3);
    rope.constants[1].second = test::random_f32({2, 8}, 4);
    CHECK_THAT(test::error_of(rope), Contains("outside the cos / sin caches' 2 rows"));

    OneNode norm;
    norm.op_type = "SkipSimplifiedLayerNormalization";
    norm.domain = "com.microsoft";
    norm.feeds = {{"x", test::random_f32({2, 3, 8}, 1)}, {"skip", test::random_f32({2, 3, 7}, 2)}};
    norm.constants = {{"gamma", test::random_f32({8}, 3)}};
    norm.inputs = {"x", "skip", "gamma"};
    CHECK_THAT(test::error_of(norm), Contains("skip must have input's shape"));
}
