// The activation range file in `edgepack compress`: the recipe's calibration.ranges and
// --save-calibration FILE. Every bad case is exit 2 naming the field or flag, leaves no
// output, and --dry-run refuses it the same way.
#include <filesystem>

#include "calibration/ranges.h"
#include "compressor/pass_manager.h"
#include "ir/error.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

fs::path mnist() {
    return test::shared_models() / "mnist" / "mnist-cnn.onnx";
}

// A recipe that runs fold-batchnorm (a pass that reads no activation ranges) on MNIST.
std::string recipe(const std::string& calibration) {
    return cat(R"({"model": ")", mnist().string(),
               R"(", "passes": [{"pass": "fold-batchnorm"}], "output": "out.onnx")",
               calibration.empty() ? "" : cat(R"(, "calibration": )", calibration), "}");
}

const char* kGoodRanges = R"({"format": "edgepack.calibration/1", "calibrator": "minmax",
  "ranges": {"/relu/Relu_output_0": {"min": 0, "max": 3.5}}})";

// Runs compress (and its --dry-run) and expects exit 2 with `message` on stderr and no file
// in `dir` but the ones listed in `keep`.
void expect_exit2(const test::TempDir& dir, const std::vector<std::string>& extra,
                  const std::string& message, const std::vector<std::string>& keep) {
    for (bool dry : {false, true}) {
        std::vector<std::string> args = {"compress", (dir / "r.json").string()};
        args.insert(args.end(), extra.begin(), extra.end());
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO((dry ? "--dry-run: " : "") << r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(message));
        std::vector<std::string> left;
        for (const auto& e : fs::directory_iterator(dir.path()))
            left.push_back(e.path().filename().string());
        std::sort(left.begin(), left.end());
        std::vector<std::string> expected = keep;
        std::sort(expected.begin(), expected.end());
        CHECK(left == expected);
    }
}

// Needs calibration data but is content with activation ranges (as quantize-static).
class RangesPass final : public Pass {
  public:
    std::string_view name() const override { return "ranges-pass"; }
    PassKind kind() const override { return PassKind::Quantization; }
    std::string_view description() const override { return "test"; }
    uint32_t needs() const override {
        return kNeedsCalibrationData | kUsesActivationRanges | kNeedsGraph;
    }
    std::vector<std::string> plan(const Model&) const override { return {}; }
    PassResult run(Model&, PassContext&) override { return {}; }
};

}  // namespace

TEST_CASE("calibration.ranges: a missing, unreadable or wrong file is exit 2 naming the field",
          "[calibration][ranges][bad-input]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist());
    test::TempDir dir;
    const std::string r = (dir / "r.json").string();

    SECTION("missing") {
        test::write_file(dir / "r.json", recipe(R"({"ranges": "nope.json"})"));
        expect_exit2(dir, {},
                     cat("r.json: calibration.ranges: not found: ", (dir / "nope.json").string()),
                     {"r.json"});
    }
    SECTION("not JSON") {
        test::write_file(dir / "r.json", recipe(R"({"ranges": "c.json"})"));
        test::write_file(dir / "c.json", "{\"format\": ");
        expect_exit2(dir, {},
                     cat("calibration.ranges: ", (dir / "c.json").string(),
                         ": not valid JSON (expected an edgepack.calibration/1 file"),
                     {"r.json", "c.json"});
    }
    SECTION("a wrong field") {
        test::write_file(dir / "r.json", recipe(R"({"ranges": "c.json"})"));
        test::write_file(dir / "c.json", R"({"format": "edgepack.calibration/1",
            "calibrator": "minmax", "ranges": {"/relu/Relu_output_0": {"min": 0, "max": "big"}}})");
        expect_exit2(dir, {},
                     cat("calibration.ranges: ", (dir / "c.json").string(),
                         ": ranges./relu/Relu_output_0.max: expected a number"),
                     {"r.json", "c.json"});
    }
    SECTION("another format") {
        test::write_file(dir / "r.json", recipe(R"({"ranges": "c.json"})"));
        test::write_file(dir / "c.json", R"({"format": "edgepack.report/1"})");
        expect_exit2(dir, {},
                     cat((dir / "c.json").string(),
                         ": format: expected \"edgepack.calibration/1\", found "
                         "\"edgepack.report/1\""),
                     {"r.json", "c.json"});
    }
    SECTION("a good file no pass reads") {
        test::write_file(dir / "r.json", recipe(R"({"ranges": "c.json"})"));
        test::write_file(dir / "c.json", kGoodRanges);
        expect_exit2(dir, {},
                     "r.json: calibration.ranges: none of the recipe's passes reads activation "
                     "ranges (quantize-static does); remove it",
                     {"r.json", "c.json"});
    }
}

TEST_CASE(
    "compress --save-calibration: a path that cannot be written, or nothing to save, is exit 2",
    "[calibration][ranges][bad-input]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist());
    test::TempDir dir;
    test::write_file(dir / "r.json", recipe(""));
    fs::create_directories(dir / "sub");
    test::write_file(dir / "file.txt", "x");
    const std::string flag = "--save-calibration";

    SECTION("a directory") {
        expect_exit2(dir, {flag, (dir / "sub").string()},
                     cat(flag, " ", (dir / "sub").string(), ": is a directory"),
                     {"r.json", "sub", "file.txt"});
    }
    SECTION("below a file") {
        expect_exit2(dir, {flag, (dir / "file.txt" / "c.json").string()},
                     cat(flag, ": ", (dir / "file.txt").string(), ": ", (dir / "file.txt").string(),
                         " is a file, not a directory"),
                     {"r.json", "sub", "file.txt"});
    }
    SECTION("the output itself") {
        expect_exit2(
            dir, {flag, (dir / "out.onnx").string()},
            cat(flag, " ", (dir / "out.onnx").string(), ": is also an output of the recipe"),
            {"r.json", "sub", "file.txt"});
    }
    SECTION("no pass calibrates activation ranges") {
        expect_exit2(dir, {flag, (dir / "c.json").string()},
                     cat(flag, " ", (dir / "c.json").string(),
                         ": none of the recipe's passes calibrates activation ranges "
                         "(quantize-static does), so there is nothing to save"),
                     {"r.json", "sub", "file.txt"});
    }
}

TEST_CASE("calibration.ranges stands in for calibration data only for a pass that reads ranges",
          "[calibration][ranges]") {
    Model m;
    m.graph.nodes.emplace_back();
    PassManager manager;
    manager.add("passes[0]", std::make_unique<RangesPass>());
    CHECK(manager.uses_activation_ranges());
    PassResources ranges_only;
    ranges_only.calibration_data = true;    // the recipe has a calibration section ...
    ranges_only.calibration_random = true;  // ... without data ...
    ranges_only.calibration_ranges = true;  // ... but with ranges
    CHECK_NOTHROW(manager.check_needs(m, "m.onnx", ranges_only));
    PassResources random = ranges_only;
    random.calibration_ranges = false;
    CHECK_THROWS_WITH(manager.check_needs(m, "m.onnx", random),
                      Catch::StartsWith("passes[0] (ranges-pass): calibration.data: empty"));
    CHECK_THROWS_WITH(manager.check_needs(m, "m.onnx", PassResources{}),
                      Catch::StartsWith("passes[0] (ranges-pass): needs calibration data"));
}
