// Comparison metrics (runtime-check/metrics.h) against numbers worked out by hand.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime-check/metrics.h"
#include "support.h"

using namespace ep;

namespace {

const rt::ComparisonSpec kClasses{rt::OutputKind::Classes};

Tensor f32(std::vector<int64_t> shape, std::vector<float> v) {
    return make_f32_tensor("t", std::move(shape), v);
}

// Compared as classes along the last axis, or (classes = false) for the errors only.
rt::TensorMetrics compare(const Tensor& a, const Tensor& b, bool classes = true) {
    rt::TensorComparator c("out", classes ? std::optional(kClasses) : std::nullopt);
    c.add(a, b);
    return c.finish();
}

}  // namespace

TEST_CASE("error, cosine and SQNR of a vector pair", "[metrics]") {
    // r = [1 2 3 4], c = [1 2 3 5]: |d| = [0 0 0 1]; sum r^2 = 30, sum c^2 = 39, sum rc = 34.
    auto m = compare(f32({4}, {1, 2, 3, 4}), f32({4}, {1, 2, 3, 5}), false);
    CHECK(m.max_abs_error == 1.0);
    CHECK(m.mean_abs_error == 0.25);
    CHECK(m.cosine_similarity == Approx(34.0 / std::sqrt(30.0 * 39.0)).epsilon(1e-14));
    CHECK(m.sqnr_db == Approx(10.0 * std::log10(30.0)).epsilon(1e-14));  // 14.7712 dB
    CHECK(m.elements == 4);
    CHECK_FALSE(m.classes);  // errors only

    auto same = compare(f32({2, 2}, {1, -2, 3, 4}), f32({2, 2}, {1, -2, 3, 4}));
    CHECK(same.max_abs_error == 0.0);
    CHECK(same.cosine_similarity == 1.0);
    CHECK(std::isinf(same.sqnr_db));
    CHECK(same.sqnr_db > 0);
    REQUIRE(same.classes);
    CHECK(same.classes->kl.mean.value == 0.0);
    CHECK(same.classes->kl.max == 0.0);
    CHECK(same.classes->same_top1.value == 100.0);

    auto zeros = compare(f32({3}, {0, 0, 0}), f32({3}, {0, 0, 0}), false);
    CHECK(zeros.cosine_similarity == 1.0);
    auto one_zero = compare(f32({3}, {0, 0, 0}), f32({3}, {1, 0, 0}), false);
    CHECK(one_zero.cosine_similarity == 0.0);
    CHECK(std::isinf(one_zero.sqnr_db));
    CHECK(one_zero.sqnr_db < 0);  // no signal, some noise
}

TEST_CASE("KL of softmax(logits) and of already-normalized probabilities", "[metrics]") {
    // P = softmax([0, 0]) = [1/2, 1/2]; Q = softmax([0, ln 3]) = [1/4, 3/4].
    // KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3) = 0.1438410362
    double expected = 0.5 * std::log(4.0 / 3.0);
    auto logits = compare(f32({1, 2}, {0, 0}), f32({1, 2}, {0, static_cast<float>(std::log(3.0))}));
    REQUIRE(logits.classes);
    CHECK(logits.classes->input == rt::ClassInput::Logits);
    CHECK(logits.classes->kl.mean.value == Approx(expected).epsilon(1e-6));

    auto probs = compare(f32({1, 2}, {0.5f, 0.5f}), f32({1, 2}, {0.25f, 0.75f}));
    REQUIRE(probs.classes);
    CHECK(probs.classes->input == rt::ClassInput::Probabilities);
    CHECK(probs.classes->kl.mean.value == Approx(expected).epsilon(1e-12));

    // A zero candidate probability is clamped at epsilon: 1 * ln(1 / 1e-10) = 23.02585.
    auto clamped = compare(f32({1, 2}, {1.0f, 0.0f}), f32({1, 2}, {0.0f, 1.0f}));
    REQUIRE(clamped.classes);
    CHECK(clamped.classes->input == rt::ClassInput::Probabilities);
    CHECK(clamped.classes->kl.max == Approx(-std::log(1e-10)).epsilon(1e-9));

    // A candidate logit of -inf where the reference has mass: KL is infinite.
    std::vector<double> p{0, 0}, q{0, -std::numeric_limits<double>::infinity()};
    CHECK(std::isinf(rt::kl_from_logits(p, q)));
    // Reference mass of zero (-inf logit) contributes nothing.
    CHECK(rt::kl_from_logits(q, q) == 0.0);
}

TEST_CASE("KL statistics follow llama.cpp: mean +/- standard error, interpolated percentiles",
          "[metrics]") {
    std::vector<double> v{1, 2, 3, 4};
    auto e = rt::mean_and_uncertainty(v);
    CHECK(e.value == 2.5);
    // population variance 1.25, standard error sqrt(1.25 / 3)
    CHECK(e.uncertainty == Approx(std::sqrt(1.25 / 3.0)).epsilon(1e-14));
    CHECK(rt::percentile(v, 0.5) == 2.5);
    CHECK(rt::percentile(v, 0.99) == Approx(3.97).epsilon(1e-14));  // 0.99 * 3 = 2.97
    CHECK(rt::percentile(v, 0.0) == 1.0);
    CHECK(rt::percentile(v, 1.0) == 4.0);
    std::vector<double> odd{5, 1, 3};
    std::sort(odd.begin(), odd.end());
    CHECK(rt::percentile(odd, 0.5) == 3.0);
    std::vector<double> single{7};
    CHECK(rt::mean_and_uncertainty(single).uncertainty == 0.0);

    // Rows with KL 0, 0, 0.5 ln(4/3) (as above): mean a third of it.
    float l3 = static_cast<float>(std::log(3.0));
    auto m = compare(f32({3, 2}, {0, 0, 1, 2, 0, 0}), f32({3, 2}, {0, 0, 1, 2, 0, l3}));
    REQUIRE(m.classes);
    double k = 0.5 * std::log(4.0 / 3.0);
    CHECK(m.classes->rows == 3);
    CHECK(m.classes->kl.mean.value == Approx(k / 3).epsilon(1e-6));
    CHECK(m.classes->kl.median == 0.0);
    CHECK(m.classes->kl.max == Approx(k).epsilon(1e-6));
    CHECK(m.classes->kl.p99 == Approx(0.98 * k).epsilon(1e-6));  // 0.99 * 2 = 1.98
}

TEST_CASE("same top-1, top-5 agreement and accuracy against labels", "[metrics]") {
    // argmax: reference rows -> 0, 2, 1; candidate rows -> 0, 0, 1.
    Tensor ref = f32({3, 3}, {3, 2, 1, 1, 2, 3, 1, 3, 2});
    Tensor cand = f32({3, 3}, {3, 2, 1, 3, 2, 1, 1, 3, 2});
    std::vector<int64_t> labels{0, 2, 1};
    rt::TensorComparator c("probs", kClasses);
    c.set_labels(labels, "labels.npy");
    c.add(ref, cand);
    auto m = c.finish();
    REQUIRE(m.classes);
    CHECK(m.classes->same_top1.value == Approx(200.0 / 3));
    // sqrt(p (1 - p) / (n - 1)) = sqrt((2/9) / 2) = 1/3
    CHECK(m.classes->same_top1.uncertainty == Approx(100.0 / 3));
    CHECK(m.classes->top_k == 3);
    CHECK(m.classes->topk_agreement == 100.0);  // k = 3 classes: the sets always agree
    REQUIRE(m.classes->labelled);
    CHECK(m.classes->accuracy_reference == 100.0);
    CHECK(m.classes->accuracy_candidate == Approx(200.0 / 3));
    CHECK(m.classes->accuracy_drop == Approx(100.0 / 3));

    // Six classes: top-5 of the reference {0,1,2,3,4}, of the candidate {5,4,3,2,1}: 4 of 5.
    auto six = compare(f32({1, 6}, {6, 5, 4, 3, 2, 1}), f32({1, 6}, {1, 2, 3, 4, 5, 6}));
    REQUIRE(six.classes);
    CHECK(six.classes->top_k == 5);
    CHECK(six.classes->topk_agreement == Approx(80.0));
    CHECK(six.classes->same_top1.value == 0.0);

    auto ties = rt::top_k(std::vector<double>{1, 3, 3, 0}, 2);
    CHECK(ties == std::vector<int64_t>{1, 2});
    CHECK(rt::argmax(std::vector<double>{std::nan(""), 2, 5, 5}) == 2);
}

TEST_CASE("samples accumulate in order, labels span all of them", "[metrics]") {
    std::vector<int64_t> labels{1, 0, 0};
    rt::TensorComparator c("y", kClasses);
    c.set_labels(labels, "labels.npy");
    c.add(f32({2, 2}, {0, 1, 1, 0}), f32({2, 2}, {0, 1, 0, 1}));  // rows: ref 1,0 cand 1,1
    c.add(f32({1, 2}, {1, 0}), f32({1, 2}, {1, 0}));              // row:  ref 0   cand 0
    auto m = c.finish();
    CHECK(m.samples == 2);
    CHECK(m.shape == std::vector<int64_t>{2, 2});
    REQUIRE(m.classes);
    CHECK(m.classes->rows == 3);
    REQUIRE(m.classes->labelled);
    CHECK(m.classes->accuracy_reference == 100.0);
    CHECK(m.classes->accuracy_candidate == Approx(200.0 / 3));

    // Labels that do not cover the rows exactly: no accuracy.
    std::vector<int64_t> short_labels{1};
    rt::TensorComparator d("y", kClasses);
    d.set_labels(short_labels, "labels.npy");
    d.add(f32({2, 2}, {0, 1, 1, 0}), f32({2, 2}, {0, 1, 1, 0}));
    CHECK_FALSE(d.finish().classes->labelled);
}

TEST_CASE("comparison errors name the tensor, non-finite values are counted", "[metrics]") {
    rt::TensorComparator c("logits", kClasses);
    try {
        c.add(f32({2, 3}, {0, 0, 0, 0, 0, 0}), f32({3, 2}, {0, 0, 0, 0, 0, 0}));
        FAIL("expected an error");
    } catch (const InputError& e) {
        CHECK_THAT(e.what(), Catch::Contains("tensor 'logits'"));
        CHECK_THAT(e.what(), Catch::Contains("[2, 3]"));
    }

    std::vector<int64_t> bad{7};
    rt::TensorComparator l("logits", kClasses);
    l.set_labels(bad, "labels.npy");
    CHECK_THROWS_WITH(l.add(f32({1, 2}, {0, 1}), f32({1, 2}, {0, 1})),
                      Catch::Contains("labels.npy: label 0 is 7"));

    float nan = std::numeric_limits<float>::quiet_NaN();
    auto m = compare(f32({3}, {1, nan, 2}), f32({3}, {1, 5, 2}), false);
    CHECK(m.nonfinite_mismatches == 1);
    CHECK(std::isinf(m.max_abs_error));
    auto same_nan = compare(f32({2}, {nan, 2}), f32({2}, {nan, 2}), false);
    CHECK(same_nan.nonfinite_mismatches == 0);
    CHECK(std::isinf(same_nan.sqnr_db));

    Tensor ints;
    ints.dtype = DType::I64;
    ints.shape = {2};
    std::vector<std::byte> bytes(16);
    int64_t v[2] = {3, -4};
    std::memcpy(bytes.data(), v, 16);
    ints.data = TensorData::owned(bytes);
    auto d = rt::tensor_as_doubles(ints, "ints");
    CHECK(d == std::vector<double>{3, -4});
}

namespace {

Tensor token_ids(std::vector<int64_t> shape, const std::vector<int64_t>& ids) {
    Tensor t;
    t.name = "input_ids";
    t.dtype = DType::I64;
    t.shape = std::move(shape);
    std::vector<std::byte> bytes(ids.size() * sizeof(int64_t));
    std::memcpy(bytes.data(), ids.data(), bytes.size());
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

}  // namespace

TEST_CASE("perplexity scores the second half of every window, as llama-perplexity",
          "[metrics][perplexity]") {
    // Two windows of T = 4 over V = 2: first = 2, so only position 2 is scored (it predicts
    // token 3). Logits [0, ln 3] give p = [1/4, 3/4]; positions 0, 1 and 3 hold logits that
    // would make any score huge if they were read.
    const float l3 = static_cast<float>(std::log(3.0));
    std::vector<float> logits{-50, 50, -50, 50, 0, l3, -50, 50,   // window 0
                              -50, 50, -50, 50, 0, l3, -50, 50};  // window 1
    // Window 0 ends in token 1, window 1 in token 0.
    const Tensor tokens = token_ids({2, 4}, {0, 0, 0, 1, 1, 1, 1, 0});
    rt::PerplexityScorer scorer("'logits'");
    scorer.add(f32({2, 4, 2}, logits), tokens);
    auto s = scorer.finish();
    const double a = std::log(4.0 / 3.0), b = std::log(4.0);  // -log 3/4, -log 1/4
    CHECK(s.windows == 2);
    CHECK(s.tokens == 2);
    CHECK(s.context == 4);
    CHECK(s.nll_mean == Approx((a + b) / 2).epsilon(1e-6));
    CHECK(s.perplexity == Approx(std::sqrt(16.0 / 3.0)).epsilon(1e-6));  // 2.3094
    // sqrt(var / (n - 1)) with var = ((b - a) / 2)^2, n = 2: ppl * ln 3 / 2.
    CHECK(s.perplexity_uncertainty == Approx(s.perplexity * std::log(3.0) / 2).epsilon(1e-6));

    // T = 5: first = 2, positions 2 and 3 scored (T - 1 - T/2 = 2 tokens per window).
    rt::PerplexityScorer five("'logits'");
    std::vector<float> flat(10, 0.0f);  // uniform over 2: every nll is ln 2
    five.add(f32({1, 5, 2}, flat), token_ids({1, 5}, {0, 1, 0, 1, 1}));
    auto f = five.finish();
    CHECK(f.tokens == 2);
    CHECK(f.perplexity == Approx(2.0).epsilon(1e-12));
    CHECK(f.perplexity_uncertainty == 0.0);

    // A token outside the vocabulary names the output, the window and the position.
    const Tensor bad = token_ids({1, 4}, {0, 1, 0, 7});
    rt::PerplexityScorer out_of_range("'logits' of the candidate");
    CHECK_THROWS_WITH(out_of_range.add(f32({1, 4, 2}, std::vector<float>(8, 0.0f)), bad),
                      Catch::Contains("'logits' of the candidate") && Catch::Contains("token 7") &&
                          Catch::Contains("position 3"));
    // Logits that do not line up with the tokens.
    CHECK_THROWS_WITH(out_of_range.add(f32({1, 3, 2}, std::vector<float>(6, 0.0f)), bad),
                      Catch::Contains("logits [1, 3, 2] for tokens [1, 4]"));
    // A NaN in a scored row: infinite perplexity, never a silent number.
    rt::PerplexityScorer nan("'logits'");
    std::vector<float> with_nan(8, 0.0f);
    with_nan[4] = std::numeric_limits<float>::quiet_NaN();
    nan.add(f32({1, 4, 2}, with_nan), token_ids({1, 4}, {0, 0, 0, 1}));
    CHECK(std::isinf(nan.finish().perplexity));
}
