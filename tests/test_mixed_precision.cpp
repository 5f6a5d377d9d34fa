// Mixed precision under a budget (passes/mixed_precision.h, quantize-weights' budget /
// candidates / plan): the allocation on hand-made tables, and on stories260k with its
// self-sampled calibration tokens: the budget held to the byte, the same plan and bytes at 1
// and 2 threads, the measured curve, llama.cpp's Q4_K_M rule, and bad budgets / candidates
// refused with exit 2 naming the field.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "passes/mixed_precision.h"
#include "support.h"

using nlohmann::json;
namespace fs = std::filesystem;
namespace test = ep::test;

namespace {

fs::path stories() {
    return test::shared_models() / "stories260k" / "model.onnx";
}

fs::path calib_tokens() {
    return test::source_dir() / ".cache" / "data" / "stories260k-calib.npy";
}

// A recipe quantizing stories260k with `pass` (quantize-weights options), calibrated on 8
// of the set-up's calibration sequences, writing `out`.
json recipe_with(const json& pass, const fs::path& out) {
    json p = pass;
    p["pass"] = "quantize-weights";
    return {{"model", stories().string()},
            {"passes", json::array({p})},
            {"calibration", {{"data", calib_tokens().string()}, {"samples", 8}}},
            {"output", out.string()}};
}

struct Cost {
    double cost = 0.0;
    uint64_t bytes = 0;
};

Cost cost_of(const std::vector<std::vector<double>>& cost,
             const std::vector<std::vector<uint64_t>>& bytes, const std::vector<size_t>& plan) {
    Cost c;
    for (size_t i = 0; i < plan.size(); ++i) {
        c.cost += cost[i][plan[i]];
        c.bytes += bytes[i][plan[i]];
    }
    return c;
}

}  // namespace

TEST_CASE(
    "mixed precision: the allocation fits the budget and spends it where the error drops most",
    "[mixed]") {
    // Three tensors, two encodings each (100 or 200 bytes).
    const std::vector<std::vector<double>> cost{{10, 1}, {5, 4}, {8, 2}};
    const std::vector<std::vector<uint64_t>> bytes{{100, 200}, {100, 200}, {100, 200}};
    CHECK_FALSE(ep::mixed::allocate(cost, bytes, 299));
    auto at = [&](uint64_t budget) {
        auto a = ep::mixed::allocate(cost, bytes, budget);
        REQUIRE(a);
        CHECK(a->bytes <= budget);
        return a->option;
    };
    CHECK(at(300) == std::vector<size_t>{0, 0, 0});
    CHECK(at(399) == std::vector<size_t>{0, 0, 0});
    CHECK(at(400) == std::vector<size_t>{1, 0, 0});  // drop 9 for 100 bytes first
    CHECK(at(500) == std::vector<size_t>{1, 0, 1});  // then 6
    CHECK(at(600) == std::vector<size_t>{1, 1, 1});

    // Seeded random tables, three encodings per tensor: every budget is met, and the plan
    // is never worse than a uniform plan that fits.
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
        INFO("trial " << trial);
        const size_t n = 1 + rng() % 12;
        std::vector<std::vector<double>> c(n);
        std::vector<std::vector<uint64_t>> b(n);
        for (size_t i = 0; i < n; ++i) {
            const uint64_t w = 32 * (1 + rng() % 64);
            const double s = std::ldexp(1.0, -static_cast<int>(rng() % 20));
            for (uint64_t bits : {4, 6, 8}) {
                b[i].push_back(w * bits / 8 + w / 32 * 2);
                c[i].push_back(s * std::ldexp(1.0, -2 * static_cast<int>(bits)) *
                               (1.0 + static_cast<double>(rng() % 100) / 100.0));
            }
        }
        uint64_t lo = 0, hi = 0;
        for (size_t i = 0; i < n; ++i) {
            lo += b[i][0];
            hi += b[i][2];
        }
        const uint64_t budget = lo + rng() % (hi - lo + 1);
        auto a = ep::mixed::allocate(c, b, budget);
        REQUIRE(a);
        CHECK(a->bytes <= budget);
        const Cost got = cost_of(c, b, a->option);
        CHECK(got.bytes == a->bytes);
        for (size_t j = 0; j < 3; ++j) {
            const Cost uniform = cost_of(c, b, std::vector<size_t>(n, j));
            if (uniform.bytes <= budget) CHECK(got.cost <= uniform.cost);
        }
    }
}

TEST_CASE(
    "mixed precision on stories260k: the budget holds to the byte and 1 and 2 threads give the "
    "same plan and bytes",
    "[mixed][real]") {
    EP_REQUIRE_FILE_OR_SKIP(stories());
    REQUIRE(fs::exists(calib_tokens()));
    test::TempDir dir;
    const json pass = {{"method", "gptq"},
                       {"budget", {{"bits_per_weight", 5.0}}},
                       {"candidates", {"int4g32", "int8g32"}},
                       {"sensitivity_samples", 4},
                       {"curve_points", 4}};
    json reports[2];
    std::string packs[2];
    // One recipe (its hash is in the pack's provenance), run at 1 and 2 threads.
    const auto out = dir / "out.epk";
    test::write_file(dir / "recipe.json", recipe_with(pass, out).dump());
    for (int threads : {1, 2}) {
        INFO("threads " << threads);
        const auto rep = dir / ("r" + std::to_string(threads));
        auto r = test::run_edgepack({"compress", (dir / "recipe.json").string(), "--threads",
                                     std::to_string(threads), "--report-dir", rep.string()});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        CHECK_THAT(r.err, Catch::Contains("mixed precision: budget 5 bits per weight"));
        const json report = json::parse(test::read_file(rep / "report.json"));
        REQUIRE(report["passes"][0].contains("mixed_precision"));
        reports[threads - 1] = report["passes"][0]["mixed_precision"];
        // report.md shows the curve as a table, the chosen row marked.
        const std::string md = test::read_file(rep / "report.md");
        CHECK_THAT(md, Catch::Contains("| plan bytes | bits per weight | predicted | KL mean |"));
        CHECK_THAT(md, Catch::Contains("| chosen |"));
        packs[threads - 1] = test::read_file(out);
    }
    const json& m = reports[0];
    CHECK(m == reports[1]);
    CHECK(packs[0] == packs[1]);

    // 36 MatMul weights of stories260k; the budget is floor(5 * weights / 8) bytes.
    const uint64_t weights = m["weights"].get<uint64_t>();
    CHECK(m["tensors"].size() == 36);
    CHECK(m["budget_bytes"].get<uint64_t>() == weights * 5 / 8);
    uint64_t sum = 0, cheapest_upgrade = UINT64_MAX;
    size_t int8 = 0;
    for (const auto& t : m["tensors"]) {
        const auto b = t["bytes"].get<uint64_t>();
        sum += b;
        if (t["encoding"] == "int8g32")
            ++int8;
        else  // an int4g32 block is 18 bytes, an int8g32 block 34
            cheapest_upgrade = std::min(cheapest_upgrade, b / 18 * 16);
    }
    CHECK(sum == m["bytes"].get<uint64_t>());
    CHECK(sum <= m["budget_bytes"].get<uint64_t>());
    // The bytes left buy no further upgrade.
    CHECK(m["budget_bytes"].get<uint64_t>() - sum < cheapest_upgrade);
    CHECK(int8 > 0);
    CHECK(int8 < 36);

    // The curve: every point measured through the runtime; the chosen plan has a lower KL
    // than the all-int4g32 plan (the smallest point).
    const json& curve = m["curve"];
    REQUIRE(curve.size() >= 2);
    size_t chosen = 0;
    for (const auto& p : curve) chosen += p["chosen"].get<bool>() ? 1 : 0;
    CHECK(chosen == 1);
    const json& smallest = curve.front();
    for (const auto& p : curve)
        CHECK(p["bytes"].get<uint64_t>() >= smallest["bytes"].get<uint64_t>());
    for (const auto& p : curve)
        if (p["chosen"].get<bool>())
            CHECK(p["kl_mean"].get<double>() < smallest["kl_mean"].get<double>());
}

TEST_CASE(
    "mixed precision: plan q4_k_m gives attn_v, ffn_down of use_more_bits layers and the output "
    "the second encoding",
    "[mixed][real]") {
    EP_REQUIRE_FILE_OR_SKIP(stories());
    test::TempDir dir;
    const json pass = {{"plan", "q4_k_m"}, {"candidates", {"int4g32", "int8g32"}}};
    test::write_file(dir / "recipe.json", recipe_with(pass, dir / "out.epk").dump());
    auto r = test::run_edgepack({"compress", (dir / "recipe.json").string(), "--dry-run"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    // The plan's line for a tensor: "[i/36] NAME [shape] f32 -> ENCODING, ...".
    const std::string text = r.out + r.err;
    auto encoding_of = [&](const std::string& name) {
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            const auto at = line.find("] " + name + " [");
            if (at == std::string::npos) continue;
            const auto arrow = line.find("-> ", at);
            return line.substr(arrow + 3, line.find(',', arrow) - arrow - 3);
        }
        return std::string("(no plan line)");
    };
    // 5 layers: use_more_bits holds for layers 2 and 4 (i >= 7n/8 = 4, (i - n/8) % 3 == 2).
    for (const char* name : {"layers.2.attention.wv.weight_T", "layers.4.attention.wv.weight_T",
                             "layers.2.feed_forward.w2.weight_T",
                             "layers.4.feed_forward.w2.weight_T", "output.weight_T"})
        CHECK(encoding_of(name) == "int8g32");
    for (const char* name : {"layers.0.attention.wv.weight_T", "layers.3.feed_forward.w2.weight_T",
                             "layers.4.attention.wq.weight_T", "layers.2.feed_forward.w1.weight_T"})
        CHECK(encoding_of(name) == "int4g32");
}

TEST_CASE("mixed precision: a bad budget or candidate is exit 2 naming the field, dry run or not",
          "[mixed][real]") {
    EP_REQUIRE_FILE_OR_SKIP(stories());
    struct Case {
        json pass;
        std::string message;
    };
    const json two = {"int4g32", "int8g32"};
    const std::vector<Case> cases{
        {{{"budget", {{"bits_per_weight", 3.0}}}, {"candidates", two}},
         "budget.bits_per_weight: 3 bits per weight"},
        {{{"budget", {{"bits", 4}}}, {"candidates", two}}, "budget.bits: unknown entry"},
        {{{"budget", 4.5}, {"candidates", two}}, "budget: expected one entry"},
        {{{"budget", {{"max_bytes", 10}}}, {"candidates", two}}, "budget.max_bytes: 10 bytes"},
        {{{"budget", {{"bits_per_weight", 5}}}, {"candidates", {"int4g32", "int5g32"}}},
         "candidates[1]: 'int5g32' is not an encoding"},
        {{{"budget", {{"bits_per_weight", 5}}}, {"candidates", {"int4g32"}}},
         "candidates: a budget needs at least two encodings"},
        {{{"candidates", two}}, "candidates: apply with a budget or a plan"},
        {{{"plan", "q4_k_m"}, {"budget", {{"bits_per_weight", 5}}}, {"candidates", two}},
         "plan: a named plan and a budget exclude each other"},
    };
    for (const auto& c : cases) {
        for (bool dry : {true, false}) {
            INFO(c.pass.dump() << (dry ? " --dry-run" : ""));
            test::TempDir dir;
            test::write_file(dir / "recipe.json", recipe_with(c.pass, dir / "out.epk").dump());
            std::vector<std::string> args{"compress", (dir / "recipe.json").string()};
            if (dry) args.push_back("--dry-run");
            auto r = test::run_edgepack(args);
            INFO(r.err);
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains(c.message));
            CHECK_FALSE(fs::exists(dir / "out.epk"));
        }
    }
    // kl sensitivity needs calibration data.
    test::TempDir dir;
    json recipe =
        recipe_with({{"budget", {{"bits_per_weight", 5}}}, {"candidates", two}}, dir / "out.epk");
    recipe.erase("calibration");
    test::write_file(dir / "recipe.json", recipe.dump());
    auto r = test::run_edgepack({"compress", (dir / "recipe.json").string(), "--dry-run"});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("needs calibration data"));
}
