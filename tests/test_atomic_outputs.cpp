// Atomic outputs (issue 14, item 6): every file edgepack writes appears whole or not at all
// (ir/output_file.h, ir/output_batch.h). OutputBatch makes a run's outputs appear together; a
// temporary left by a killed run is named `.NAME.edgepack-tmp-PID-XXXXXX` and removed by the next
// write of NAME; `edgepack compress` killed with SIGKILL in the middle of writing leaves no output.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/error.h"
#include "ir/output_batch.h"
#include "ir/output_file.h"
#include "onnx_proto.h"
#include "support.h"

extern char** environ;

using namespace ep;
namespace fs = std::filesystem;

namespace {

// The names in `dir` holding `part`, sorted.
std::vector<std::string> names_with(const fs::path& dir, const std::string& part) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.find(part) != std::string::npos) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

void write_text(const fs::path& path, const std::string& text) {
    OutputFile out(path);
    out.write(text);
    out.commit();
}

// A process id that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    waitpid(pid, &status, 0);
    return pid;
}

}  // namespace

TEST_CASE("output batch: files appear together on commit, and none without it", "[atomic]") {
    test::TempDir dir;
    SECTION("committed") {
        OutputBatch batch;
        write_text(dir / "a.bin", "first");
        write_text(dir / "b.bin", "second");
        // Written and synced, not yet in place: only the two temporaries exist.
        CHECK_FALSE(fs::exists(dir / "a.bin"));
        CHECK_FALSE(fs::exists(dir / "b.bin"));
        CHECK(names_with(dir.path(), ".edgepack-tmp-").size() == 2);
        batch.commit();
        CHECK(test::read_file(dir / "a.bin") == "first");
        CHECK(test::read_file(dir / "b.bin") == "second");
        CHECK(names_with(dir.path(), ".edgepack-tmp-").empty());
    }
    SECTION("a batch that ends uncommitted (a failure) leaves the earlier files as they were") {
        test::write_file(dir / "a.bin", "from an earlier run");
        try {
            OutputBatch batch;
            write_text(dir / "a.bin", "new");
            write_text(dir / "b.bin", "new");
            throw InputError("a later stage failed");
        } catch (const InputError&) {
        }
        CHECK(test::read_file(dir / "a.bin") == "from an earlier run");
        CHECK_FALSE(fs::exists(dir / "b.bin"));
        CHECK(names_with(dir.path(), ".edgepack-tmp-").empty());
    }
    SECTION("one batch at a time") {
        OutputBatch batch;
        CHECK_THROWS_AS(OutputBatch(), InternalError);
    }
}

TEST_CASE("output file: a killed run's temporary is removed by the next write of that name",
          "[atomic]") {
    test::TempDir dir;
    const std::string dead = cat(".m.epk.edgepack-tmp-", dead_pid(), "-Ab12Cd");
    const std::string alive = cat(".m.epk.edgepack-tmp-", getpid(), "-Ef34Gh");  // this run's
    const std::string other_name = cat(".n.epk.edgepack-tmp-", dead_pid(), "-Ij56Kl");
    for (const auto& n : {dead, alive, other_name}) test::write_file(dir / n, "partial");
    write_text(dir / "m.epk", "whole");
    CHECK(test::read_file(dir / "m.epk") == "whole");
    // The dead run's temporary of m.epk is gone; a live process's, and another name's, stay.
    CHECK(names_with(dir.path(), ".edgepack-tmp-") == std::vector<std::string>{alive, other_name});
}

TEST_CASE("compress killed with SIGKILL while writing leaves no output, and a re-run cleans up",
          "[atomic][real]") {
    // MiniLM (69 MB of weights) written as .epk then .onnx: the kill lands while the .onnx
    // is being written, after the .epk is complete (held back by the run's OutputBatch).
    const fs::path model = test::model_cache() / "minilm" / "paraphrase-MiniLM-L3-v2.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    nlohmann::json recipe = {{"model", model.string()},
                             {"passes", nlohmann::json::array()},
                             {"output", {"m.epk", "m.onnx"}}};
    test::write_file(dir / "r.json", recipe.dump());
    const std::vector<std::string> outputs = {"m.epk", "m.onnx", "m.onnx.data", "report.json"};

    std::string binary = test::edgepack_binary().string(), recipe_path = (dir / "r.json").string();
    std::vector<char*> argv = {binary.data(), const_cast<char*>("compress"), recipe_path.data(),
                               const_cast<char*>("--quiet"), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);

    // Poll the folder for the .onnx temporary, then kill.
    bool seen = false;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!seen && std::chrono::steady_clock::now() < deadline) {
        seen = !names_with(dir.path(), ".m.onnx.edgepack-tmp-").empty();
        if (!seen && waitpid(pid, &status, WNOHANG) == pid) break;  // ended before we saw it
    }
    if (seen) {
        kill(pid, SIGKILL);
        REQUIRE(waitpid(pid, &status, 0) == pid);
    }
    REQUIRE(seen);
    CHECK(WIFSIGNALED(status));
    for (const auto& o : outputs) {
        INFO(o);
        CHECK_FALSE(fs::exists(dir / o));
    }
    // What is left: the temporaries, dot-files named after the output and the killed PID.
    const auto left = names_with(dir.path(), ".edgepack-tmp-");
    REQUIRE_FALSE(left.empty());
    for (const auto& name : left) {
        INFO(name);
        CHECK(name.find(cat(".edgepack-tmp-", pid, "-")) != std::string::npos);
        CHECK((name.rfind(".m.epk.", 0) == 0 || name.rfind(".m.onnx", 0) == 0));
    }

    auto r = test::run_edgepack({"compress", recipe_path, "--quiet"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(fs::exists(dir / "m.epk"));
    CHECK(fs::exists(dir / "m.onnx"));
    CHECK(fs::exists(dir / "report.json"));
    CHECK(names_with(dir.path(), ".edgepack-tmp-").empty());
}

TEST_CASE("run and validate check where they write before the model runs", "[atomic][cli]") {
    // x [2, 3] -> Identity -> "a/b" and -> Identity -> "a_b": both would be a_b.npy.
    test::TempDir dir;
    auto m = test::empty_model("two");
    auto& g = *m.mutable_graph();
    test::add_value(g.mutable_input(), "x", {2, 3});
    test::add_node(g, "Identity", "i1", {"x"}, {"a/b"});
    test::add_node(g, "Identity", "i2", {"x"}, {"a_b"});
    test::add_value(g.mutable_output(), "a/b", {2, 3});
    test::add_value(g.mutable_output(), "a_b", {2, 3});
    const std::string model = test::write_model(dir, m).string();
    test::write_file(dir / "blocker", "a regular file");

    SECTION("run: two outputs that would share a file") {
        auto r = test::run_edgepack(
            {"run", model, "--samples", "1", "--out", (dir / "o").string(), "--quiet"});
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(cat("outputs 'a/b' and 'a_b' would both be written to ",
                                              (dir / "o" / "sample_0" / "a_b.npy").string())));
        CHECK_FALSE(fs::exists(dir / "o"));
    }
    SECTION("run: --out under a regular file") {
        auto r = test::run_edgepack(
            {"run", model, "--samples", "1", "--out", (dir / "blocker" / "o").string()});
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("--out: "));
        CHECK_THAT(r.err, Catch::Contains("blocker is a file, not a directory"));
    }
    SECTION("validate: --json onto the reference model, or onto a directory") {
        const std::string before = test::read_file(model);
        auto r = test::run_edgepack({"validate", "--reference", model, "--candidate", model,
                                     "--samples", "1", "--json", model, "--quiet"});
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(cat("--json ", model, ": would overwrite ", model,
                                              ", an input of the validation")));
        CHECK(test::read_file(model) == before);
        auto d = test::run_edgepack({"validate", "--reference", model, "--candidate", model,
                                     "--samples", "1", "--json", dir.path().string(), "--quiet"});
        INFO(d.err);
        CHECK(d.exit_code == 2);
        CHECK_THAT(d.err, Catch::Contains(cat("--json: ", dir.path().string(), " is a directory")));
    }
}
