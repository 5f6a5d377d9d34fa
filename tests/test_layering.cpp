// The layering check (scripts/check_layering.py): the source tree keeps to the layers, and
// the check does fail on an include that points up.
#include <filesystem>
#include <string>

#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

test::RunResult check_layering(const fs::path& root) {
    return test::run({"python3", (test::source_dir() / "scripts" / "check_layering.py").string(),
                      "--root", root.string()});
}

void plant(const fs::path& root, const std::string& file, const std::string& text) {
    fs::create_directories((root / file).parent_path());
    test::write_file(root / file, text);
}

}  // namespace

TEST_CASE("layering: every include of the source tree keeps to the layers", "[layering]") {
    auto r = check_layering(test::source_dir());
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("every include keeps to the layers"));
}

TEST_CASE("layering: an include that points up fails the check, naming file, line and rule",
          "[layering]") {
    test::TempDir dir;
    const fs::path root = dir.path();
    // Allowed: down the layers, beside the file, and headers outside our folders.
    plant(root, "ir/tensor.h", "#include <vector>\n#include \"dtype.h\"\n");
    plant(root, "ir/dtype.h", "#pragma once\n");
    plant(root, "runtime-check/ops/conv.cpp",
          "#include \"ir/tensor.h\"\n#include \"runtime-check/kernels/gemm.h\"\n");
    plant(root, "runtime-check/executor.cpp", "#include \"formats/epk.h\"\n");
    plant(root, "compressor/compress.cpp", "#include \"passes/pass.h\"\n#include \"catch.hpp\"\n");
    {
        auto r = check_layering(root);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
    }
    // Planted: four upward includes.
    plant(root, "ir/ir.h", "#pragma once\n\n#include \"compressor/recipe.h\"\n");
    plant(root, "runtime-check/kernels/gemm.h", "#include \"runtime-check/ops/op_context.h\"\n");
    plant(root, "formats/onnx_io.cpp", "// reads\n#include \"runtime-check/executor.h\"\n");
    plant(root, "runtime-check/metrics.cpp", "#include \"formats/onnx_io.h\"\n");
    auto r = check_layering(root);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("ir/ir.h:3: includes \"compressor/recipe.h\" (compressor/)"));
    CHECK_THAT(r.err, Catch::Contains("runtime-check/kernels/gemm.h:1: includes "
                                      "\"runtime-check/ops/op_context.h\""));
    CHECK_THAT(r.err,
               Catch::Contains("formats/onnx_io.cpp:2: includes \"runtime-check/executor.h\""));
    CHECK_THAT(r.err,
               Catch::Contains("runtime-check/metrics.cpp:1: includes \"formats/onnx_io.h\""));
    CHECK_THAT(r.err, Catch::Contains("4 upward include(s)"));
}
