// The ONNX backend node test cases through the reference runtime: every case whose ops
// the runtime implements passes, except the documented exceptions. Debian's
// libonnx-testdata (ONNX 1.12) always; the ONNX v1.20.0 cases too when ../shared/conformance
// holds them (tests/conformance/exceptions-v1.20.txt). docs/conformance.md has the counts.
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

// Runs edgepack_conformance over `data` and returns its JSON results.
nlohmann::json run_conformance(const fs::path& data, const test::TempDir& dir, int threads) {
    auto json_path = dir / cat("results-", threads, ".json");
    auto r = test::run({EDGEPACK_CONFORMANCE, data.string(), "--json", json_path.string(),
                        "--threads", std::to_string(threads)});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::ifstream in(json_path);
    auto results = nlohmann::json::parse(in);
    results["summary"] = r.out.substr(r.out.find("conformance:"));
    return results;
}

void check_against_exceptions(const nlohmann::json& results, const fs::path& exceptions_file) {
    std::map<std::string, std::string> exceptions;
    std::ifstream ex(exceptions_file);
    REQUIRE(ex.good());
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
    INFO("counts: " << results["summary"].get<std::string>());
    CHECK(unexpected_failures == std::vector<std::string>{});
    CHECK(unexpected_passes == std::vector<std::string>{});
}

// The v1.20.0 cases unpacked once per test run into `dir` (never into the source tree).
fs::path unpack_v120(const test::TempDir& dir) {
    auto tgz = test::shared_models().parent_path() / "conformance/onnx-node-tests-v1.20.0.tgz";
    if (!fs::exists(tgz)) return {};
    auto r = test::run({"tar", "xzf", tgz.string(), "-C", dir.path().string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return dir / "node120";
}

}  // namespace

TEST_CASE("every ONNX backend node test of a supported op passes", "[conformance]") {
    fs::path data = "/usr/share/libonnx-testdata/data/node";
    EP_REQUIRE_FILE_OR_SKIP(data);
    test::TempDir dir;
    auto results = run_conformance(data, dir, 1);
    check_against_exceptions(results, test::source_dir() / "tests/conformance/exceptions.txt");
    // The suite must actually run: most cases are of supported ops.
    CHECK(results["passed"].get<int>() >= 550);
}

TEST_CASE("every ONNX v1.20.0 backend node test of a supported op passes", "[conformance]") {
    EP_REQUIRE_FILE_OR_SKIP(test::shared_models().parent_path() /
                            "conformance/onnx-node-tests-v1.20.0.tgz");
    test::TempDir dir;
    auto data = unpack_v120(dir);
    auto results = run_conformance(data, dir, 1);
    check_against_exceptions(results,
                             test::source_dir() / "tests/conformance/exceptions-v1.20.txt");
    // 1,551 after issue 19's ops; ONNX Runtime 1.31 passes 1,499 (docs/conformance.md).
    CHECK(results["passed"].get<int>() >= 1551);
}

// Every case that runs gives the same output bytes with one thread and with three.
TEST_CASE("the backend node tests give the same bits for any thread count", "[conformance]") {
    fs::path data = "/usr/share/libonnx-testdata/data/node";
    test::TempDir dir;
    if (auto v120 = unpack_v120(dir); !v120.empty()) data = v120;
    EP_REQUIRE_FILE_OR_SKIP(data);
    auto one = run_conformance(data, dir, 1);
    auto three = run_conformance(data, dir, 3);
    std::vector<std::string> differ;
    size_t compared = 0;
    for (const auto& [name, result] : one["cases"].items()) {
        if (!result.contains("digest") || !three["cases"][name].contains("digest")) continue;
        ++compared;
        if (result["digest"] != three["cases"][name]["digest"]) differ.push_back(name);
    }
    INFO("cases compared: " << compared);
    CHECK(differ == std::vector<std::string>{});
    CHECK(compared >= 550);
}
