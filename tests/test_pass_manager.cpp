// The pass manager on tiny models built in C++: error prefixes, --verify-each, needs,
// --print-after, --time-passes and dry-run plans.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "ir/checked.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "passes/selector.h"
#include "support.h"

using namespace ep;
using namespace ep::test;

namespace {

// Test passes for the manager's hooks.
class ThrowingPass final : public Pass {
  public:
    std::string_view name() const override { return "thrower"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override { return "throws"; }
    std::vector<std::string> plan(const Model&) const override { return {"would throw"}; }
    PassResult run(Model&, PassContext&) override {
        throw InputError("tensor 'w': something is wrong");
    }
};

class BreakingPass final : public Pass {
  public:
    std::string_view name() const override { return "breaker"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override { return "renames an input"; }
    std::vector<std::string> plan(const Model&) const override { return {}; }
    PassResult run(Model& m, PassContext& ctx) override {
        threads_seen = ctx.threads;
        m.graph.nodes[0].inputs[0] = "nowhere";
        PassResult r;
        r.changed = true;
        r.rewrites = 1;
        return r;
    }
    int threads_seen = 0;
};

}  // namespace

TEST_CASE("the pass manager prefixes pass errors with the recipe path and pass name",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm;
    pm.add("passes[0]", create_pass("promote-constants"));
    pm.add("passes[1]", std::make_unique<ThrowingPass>());
    std::ostringstream log;
    try {
        (void)pm.run(model, {}, log);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK(std::string(e.what()) == "passes[1] (thrower): tensor 'w': something is wrong");
    }
}

TEST_CASE("pass manager: --verify-each names the pass that broke the graph, threads reach the pass",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm;
    auto breaker = std::make_unique<BreakingPass>();
    auto* raw = breaker.get();
    pm.add("passes[0]", std::move(breaker));
    PassManagerOptions opts;
    opts.verify_each = true;
    opts.context.threads = 3;
    std::ostringstream log;
    try {
        (void)pm.run(model, opts, log);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::Internal);
        CHECK_THAT(e.what(), Catch::StartsWith("after pass breaker: node conv: input 'nowhere' "
                                               "is not produced before it is used"));
    }
    CHECK(raw->threads_seen == 3);
    // Without the hook the same run goes through.
    Model again = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManager pm2;
    pm2.add("passes[0]", std::make_unique<BreakingPass>());
    CHECK(pm2.run(again, {}, log).size() == 1);
}

TEST_CASE("the pass manager checks needs, prints after a pass and times passes",
          "[passes][pass-manager]") {
    Model checkpoint;
    checkpoint.format = SourceFormat::Safetensors;
    checkpoint.graph.initializers.push_back(make_f32_tensor("w", {1}, std::vector<float>{1}));
    PassManager pm;
    pm.add("passes[0]", create_pass("promote-constants"));
    pm.add("passes[1]", create_pass("fold-batchnorm"));
    CHECK_THROWS_WITH(pm.check_needs(checkpoint, "model.safetensors"),
                      Catch::Contains("passes[0] (promote-constants): needs a graph of nodes, but "
                                      "model.safetensors is a safetensors checkpoint"));
    CHECK_THROWS_WITH(pm.check_print_after({"fold-batchnrom"}),
                      Catch::Contains("did you mean fold-batchnorm?"));
    pm.check_print_after({"fold-batchnorm", "passes[0]"});

    // configure() with defaults, as the recipe loader would.
    PassManager configured;
    for (const char* name : {"promote-constants", "fold-batchnorm"}) {
        auto p = create_pass(name);
        p->configure(nlohmann::json::object());
        configured.add(cat("passes[", configured.size(), "]"), std::move(p));
    }
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    PassManagerOptions opts;
    opts.print_after = {"fold-batchnorm"};
    std::ostringstream log;
    auto records = configured.run(model, opts, log);
    REQUIRE(records.size() == 2);
    CHECK(records[1].result.rewrites == 1);
    CHECK_THAT(log.str(), Catch::Contains("--- after passes[1] (fold-batchnorm) ---"));
    CHECK_THAT(log.str(), Catch::Contains("1 nodes, 2 initializers"));
    CHECK_THAT(log.str(), Catch::Contains("Conv(conv): x, w, b -> y"));
    auto table = format_time_table(records);
    CHECK_THAT(table, Catch::Contains("passes[1] fold-batchnorm"));
    CHECK_THAT(table, Catch::Contains("wall ms"));
    CHECK_THAT(table, Catch::Contains("total"));
    auto summary = format_summary(records);
    CHECK_THAT(summary, Catch::Contains("passes[1] fold-batchnorm: changed, 1 rewrite, 0 skipped"));
    CHECK_THAT(summary, Catch::Contains("passes[0] promote-constants: unchanged, 0 rewrites"));
}

TEST_CASE("a dry-run plan sees what earlier cleanup passes will do, on a copy",
          "[passes][pass-manager]") {
    Model model = conv_bn_model(2, 3, 1, 1, true, 1);
    // Store the weights as a Constant node, the way PP-OCR does.
    weights_as_constant(model, "w", "wc");
    auto before = fingerprint(model);

    PassManager pm;
    for (const char* name : {"promote-constants", "fold-batchnorm"}) {
        auto p = create_pass(name);
        p->configure(nlohmann::json::object());
        pm.add(cat("passes[", pm.size(), "]"), std::move(p));
    }
    auto lines = pm.plan(model);
    CHECK(fingerprint(model) == before);
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    CHECK_THAT(text, Catch::Contains("passes[0] promote-constants: "));
    CHECK_THAT(text, Catch::Contains("  promote 'w' (f32 [3, 2, 1, 1]) to an initializer"));
    CHECK_THAT(text, Catch::Contains("passes[1] fold-batchnorm: "));
    CHECK_THAT(text, Catch::Contains("  fold 'bn' into Conv 'conv' (3 channels)"));
}
