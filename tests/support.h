// Helpers shared by the Catch2 tests: where real models are, temporary directories,
// running the edgepack binary and the Python oracles as subprocesses.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace ep::test {

// ../shared/models (absent on a user's fresh clone) and the registry model cache.
[[nodiscard]] std::filesystem::path shared_models();
[[nodiscard]] std::filesystem::path model_cache();
[[nodiscard]] std::filesystem::path source_dir();
[[nodiscard]] std::filesystem::path edgepack_binary();
[[nodiscard]] std::string python();  // the venv's interpreter with onnx, onnxruntime, ...

// A fresh directory under the build tree, removed when the object goes away.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const {
        return path_ / name;
    }

private:
    std::filesystem::path path_;
};

struct RunResult {
    int exit_code = -1;  // the process's exit status; 128+N when killed by signal N
    std::string out;
    std::string err;
};

// Runs argv (no shell) and captures stdout and stderr.
[[nodiscard]] RunResult run(const std::vector<std::string>& argv);
// Runs the edgepack binary with the given arguments.
[[nodiscard]] RunResult run_edgepack(const std::vector<std::string>& args);
// Runs a script from scripts/xcheck/ with the venv's Python.
[[nodiscard]] RunResult run_oracle(const std::string& script, const std::vector<std::string>& args);

void write_file(const std::filesystem::path& path, const std::string& bytes);
[[nodiscard]] std::string read_file(const std::filesystem::path& path);

}  // namespace ep::test

// Skips the rest of a test case when a real-model file is absent: ctest reports the
// test as skipped (its SKIP_REGULAR_EXPRESSION matches "SKIPPED:").
#define EP_REQUIRE_FILE_OR_SKIP(path)                                                  \
    do {                                                                               \
        if (!std::filesystem::exists(path)) {                                          \
            WARN("SKIPPED: " << (path).string()                                        \
                             << " is absent (see ../shared/models/README.md or run "   \
                                "scripts/fetch_models.sh)");                           \
            return;                                                                    \
        }                                                                              \
    } while (0)
