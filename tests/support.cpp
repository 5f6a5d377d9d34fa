#define CATCH_CONFIG_RUNNER
#include "support.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace ep::test {

namespace {

// Which test cases marked themselves skipped (mark_skipped), counted per test case.
struct SkipCount {
    bool current = false;
    int cases_run = 0;
    int cases_skipped = 0;
};
SkipCount& skip_count() {
    static SkipCount count;
    return count;
}

class SkipListener : public Catch::TestEventListenerBase {
  public:
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        TestEventListenerBase::testCaseStarting(info);
        skip_count().current = false;
    }
    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        ++skip_count().cases_run;
        if (skip_count().current) ++skip_count().cases_skipped;
        TestEventListenerBase::testCaseEnded(stats);
    }
};
CATCH_REGISTER_LISTENER(SkipListener)

}  // namespace

void mark_skipped(const std::string& reason) {
    WARN("SKIPPED: " << reason);
    skip_count().current = true;
}

std::filesystem::path shared_models() {
    return EDGEPACK_SHARED_MODELS;
}
std::filesystem::path model_cache() {
    return EDGEPACK_MODEL_CACHE;
}
std::filesystem::path source_dir() {
    return EDGEPACK_SOURCE_DIR;
}
std::filesystem::path edgepack_binary() {
    return EDGEPACK_BINARY;
}
std::string python() {
    return EDGEPACK_PYTHON;
}

TempDir::TempDir() {
    std::random_device rd;
    auto base = std::filesystem::path(EDGEPACK_TEST_TMP);
    std::filesystem::create_directories(base);
    for (;;) {
        path_ = base / ("t" + std::to_string(rd()));
        if (std::filesystem::create_directory(path_)) break;
    }
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

RunResult run(const std::vector<std::string>& argv) {
    int out_pipe[2], err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        throw std::runtime_error("cannot start " + argv[0]);
    }
    RunResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
            }
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

RunResult run_edgepack(const std::vector<std::string>& args) {
    std::vector<std::string> argv{edgepack_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

RunResult run_oracle(const std::string& script, const std::vector<std::string>& args) {
    std::vector<std::string> argv{python(), (source_dir() / "scripts/xcheck" / script).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    if (r.exit_code != 0) {
        INFO("oracle " << script << " failed:\n" << r.err);
    }
    return r;
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace ep::test

// Catch's own main, except that a run in which every test case marked itself skipped and
// nothing failed exits with kSkipExitCode (CTest: Skipped). A run that failed exits with
// Catch's failure count, whatever was skipped; a run with some cases skipped and the
// others passed exits 0 (each case has its own CTest entry, where the skip shows).
int main(int argc, char* argv[]) {
    const int failures = Catch::Session().run(argc, argv);
    const auto& count = ep::test::skip_count();
    if (failures == 0 && count.cases_run > 0 && count.cases_skipped == count.cases_run)
        return ep::test::kSkipExitCode;
    return failures;
}
