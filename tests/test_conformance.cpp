// The ONNX backend node test cases (Debian libonnx-testdata) through the reference
// runtime: every case whose ops the runtime implements passes, except the documented
// exceptions in tests/conformance/exceptions.txt.
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support.h"

using namespace ep;

TEST_CASE("every ONNX backend node test of a supported op passes", "[conformance]") {
    std::filesystem::path data = "/usr/share/libonnx-testdata/data/node";
    EP_REQUIRE_FILE_OR_SKIP(data);
    test::TempDir dir;
    auto r =
        test::run({EDGEPACK_CONFORMANCE, data.string(), "--json", (dir / "results.json").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::ifstream in(dir / "results.json");
    auto results = nlohmann::json::parse(in);

    std::map<std::string, std::string> exceptions;
    std::ifstream ex(test::source_dir() / "tests/conformance/exceptions.txt");
    std::string line;
    while (std::getline(ex, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto space = line.find(' ');
        exceptions[line.substr(0, space)] =
            space == std::string::npos ? "" : line.substr(space + 1);
    }

    std::vector<std::string> unexpected_failures, unexpected_passes;
    for (const auto& [name, result] : results["cases"].items()) {
        bool listed = exceptions.count(name) > 0;
        if (result["result"] == "failed" && !listed)
            unexpected_failures.push_back(name + ": " + result.value("reason", ""));
        if (result["result"] == "passed" && listed) unexpected_passes.push_back(name);
    }
    INFO("counts: " << r.out.substr(r.out.find("conformance:")));
    CHECK(unexpected_failures == std::vector<std::string>{});
    CHECK(unexpected_passes == std::vector<std::string>{});
    // The suite must actually run: most cases are of supported ops.
    CHECK(results["passed"].get<int>() >= 550);
}
