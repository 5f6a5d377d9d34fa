// The pass registry and the tensor selector (glob include / exclude) every pass takes.
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

TEST_CASE("glob patterns match whole names with *, ?, classes", "[passes][selector]") {
    CHECK(glob_match("*", ""));
    CHECK(glob_match("*.weight", "layers.0.weight"));
    CHECK_FALSE(glob_match("*.weight", "layers.0.weight.scale"));
    CHECK(glob_match("layers.[0-3].*", "layers.2.q"));
    CHECK_FALSE(glob_match("layers.[0-3].*", "layers.4.q"));
    CHECK(glob_match("layers.[!0-3].*", "layers.4.q"));
    CHECK(glob_match("a?c", "abc"));
    CHECK_FALSE(glob_match("a?c", "ac"));
    CHECK(glob_match("a[b", "a[b"));  // unclosed class: literal '['
    CHECK(glob_match("*embed*", "model.embed_tokens"));
    // Hostile: many stars against a long near-miss stays fast (no exponential backtracking).
    std::string pattern, name(5000, 'a');
    for (int i = 0; i < 200; ++i) pattern += "a*";
    pattern += "b";
    CHECK_FALSE(glob_match(pattern, name));

    Selector s =
        Selector::from_options({{"include", {"*.weight", "head*"}}, {"exclude", {"*embed*"}}});
    CHECK(s.selects("l0.weight"));
    CHECK(s.selects("head.bias"));
    CHECK_FALSE(s.selects("embed.weight"));
    CHECK_FALSE(s.selects("l0.bias"));
    CHECK(Selector().selects("anything"));
}

TEST_CASE("the registry lists every pass once and their defaults validate", "[passes]") {
    auto names = pass_names();
    REQUIRE(names.size() >= 2);
    for (auto n : names) {
        INFO(n);
        auto p = create_pass(n);
        REQUIRE(p != nullptr);
        CHECK(p->name() == n);
        CHECK(std::count(names.begin(), names.end(), n) == 1);
        CHECK_FALSE(p->description().empty());
    }
    CHECK(create_pass("no-such-pass") == nullptr);
    CHECK(pass_kind_name(PassKind::Cleanup) == "cleanup");
}
