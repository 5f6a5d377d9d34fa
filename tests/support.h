// Helpers shared by the Catch2 tests: where real models are, temporary directories,
// running the edgepack binary and the Python oracles as subprocesses.
#pragma once

#include <filesystem>
#include <sstream>
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

// Marks the running test case as skipped, and prints "SKIPPED: <reason>" so the log says
// why. The test binary (support.cpp's main) exits with kSkipExitCode when every test case
// it ran was marked and nothing failed, and CTest reads that code as Skipped
// (SKIP_RETURN_CODE in tests/CMakeLists.txt); a failure anywhere in the case, before or
// after the mark, still exits non-zero and reads Failed.
namespace ep::test {
inline constexpr int kSkipExitCode = 77;
void mark_skipped(const std::string& reason);
}  // namespace ep::test

// Skips the rest of a test case: marks it skipped and returns (see EP_REQUIRE_FILE_OR_SKIP
// for SECTIONs).
// `reason` is streamed, as in INFO.
#define EP_SKIP(reason)                                  \
    do {                                                 \
        std::ostringstream ep_skip_reason_;              \
        ep_skip_reason_ << reason;                       \
        ::ep::test::mark_skipped(ep_skip_reason_.str()); \
        return;                                          \
    } while (0)

// Skips the rest of a test case when a real-model file is absent. Not inside a SECTION that
// has later siblings: Catch finds sections as the code reaches them, so a return there
// ends the test case before the later ones are seen (use EP_REQUIRE_FILE_OR_CONTINUE).
#define EP_REQUIRE_FILE_OR_SKIP(path)                                                       \
    do {                                                                                    \
        if (!std::filesystem::exists(path)) {                                               \
            EP_SKIP((path).string() << " is absent (see ../shared/models/README.md or run " \
                                       "scripts/fetch_models.sh)");                         \
        }                                                                                   \
    } while (0)

// In a loop with one DYNAMIC_SECTION per iteration: when `path` is absent, marks the test
// case skipped and goes on with the next iteration (its section is still seen and run).
#define EP_REQUIRE_FILE_OR_CONTINUE(path)                                       \
    if (!std::filesystem::exists(path)) {                                       \
        std::ostringstream ep_skip_reason_;                                     \
        ep_skip_reason_ << (path).string()                                      \
                        << " is absent (see ../shared/models/README.md or run " \
                           "scripts/fetch_models.sh)";                          \
        ::ep::test::mark_skipped(ep_skip_reason_.str());                        \
        continue;                                                               \
    }
