#include "output_file.h"

#include "output_batch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <system_error>

#include "error.h"
#include "tensor.h"

namespace ep {

void ByteSink::write_zeros(size_t n) {
    static constexpr std::array<std::byte, 4096> zeros{};
    while (n > 0) {
        size_t k = std::min(n, zeros.size());
        write(std::span<const std::byte>(zeros.data(), k));
        n -= k;
    }
}

void write_tensor_bytes(ByteSink& sink, const TensorData& data) {
    constexpr size_t kChunk = size_t{16} << 20;
    auto bytes = data.bytes();
    for (size_t done = 0; done < bytes.size(); done += kChunk) {
        size_t n = std::min(kChunk, bytes.size() - done);
        sink.write(bytes.subspan(done, n));
        if (data.is_view()) data.file()->release(data.file_offset() + done, n);
    }
}

void BufferSink::write(std::span<const std::byte> bytes) {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

namespace {

// Pending temporaries, removed by the signal handler. Fixed-size C strings so the
// handler only calls async-signal-safe functions.
constexpr size_t kMaxPending = 64;
constexpr size_t kMaxPath = 4096;
char g_pending[kMaxPending][kMaxPath];
std::atomic<bool> g_used[kMaxPending];
std::mutex g_register_mutex;

extern "C" void remove_temporaries_and_exit(int sig) {
    for (size_t i = 0; i < kMaxPending; ++i)
        if (g_used[i].load()) ::unlink(g_pending[i]);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

int register_temporary(const std::string& path) {
    std::lock_guard lock(g_register_mutex);
    static bool handlers = [] {
        ::signal(SIGINT, remove_temporaries_and_exit);
        ::signal(SIGTERM, remove_temporaries_and_exit);
        return true;
    }();
    (void)handlers;
    if (path.size() >= kMaxPath) return -1;
    for (size_t i = 0; i < kMaxPending; ++i) {
        if (!g_used[i].load()) {
            std::memcpy(g_pending[i], path.c_str(), path.size() + 1);
            g_used[i].store(true);
            return static_cast<int>(i);
        }
    }
    return -1;
}

void unregister_temporary(int slot) {
    if (slot >= 0) g_used[slot].store(false);
}

// The open OutputBatch's files (finished temporaries waiting for their rename).
struct Pending {
    std::filesystem::path temporary, destination;
    int slot;  // the signal handler's entry, kept until the rename
};
std::mutex g_batch_mutex;
bool g_batch_open = false;
std::vector<Pending> g_pending_renames;

std::string temporary_prefix(const std::filesystem::path& destination) {
    return "." + destination.filename().string() + ".edgepack-tmp-";
}

}  // namespace

void check_writable_dir(const std::filesystem::path& dir, const std::string& what) {
    namespace fs = std::filesystem;
    fs::path p = dir.empty() ? fs::path(".") : dir;
    for (;;) {
        std::error_code ec;
        auto status = fs::status(p, ec);
        if (fs::exists(status)) {
            if (!fs::is_directory(status))
                throw InputError(
                    cat(what, ": ", dir.string(), ": ", p.string(), " is a file, not a directory"));
            break;
        }
        if (!p.has_parent_path() || p.parent_path() == p) break;
        p = p.parent_path();
    }
    if (::access(p.c_str(), W_OK | X_OK) != 0)
        throw InputError(cat(what, ": ", dir.string(), ": cannot write into ", p.string(), ": ",
                             std::strerror(errno)));
}

void check_writable_file(const std::filesystem::path& file, const std::string& what) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec))
        throw InputError(cat(what, ": ", file.string(), " is a directory"));
    check_writable_dir(file.parent_path(), what);
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec))
        return std::filesystem::equivalent(a, b, ec);
    return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
}

size_t remove_stale_temporaries(const std::filesystem::path& destination) {
    auto dir = destination.parent_path();
    if (dir.empty()) dir = ".";
    const std::string prefix = temporary_prefix(destination);
    size_t removed = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        // PID-XXXXXX: a temporary of another name format is not ours to judge.
        size_t i = prefix.size(), end = name.find('-', i);
        if (end == std::string::npos || end == i || end - i > 9) continue;
        pid_t pid = 0;
        bool digits = true;
        for (size_t k = i; k < end; ++k) {
            digits = digits && name[k] >= '0' && name[k] <= '9';
            pid = pid * 10 + (name[k] - '0');
        }
        if (!digits || pid <= 0 || pid == ::getpid()) continue;
        if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // running (or not ours to ask)
        if (::unlink(it->path().c_str()) == 0) ++removed;
    }
    return removed;
}

OutputFile::OutputFile(std::filesystem::path destination, OutputFileOptions options)
    : destination_(std::move(destination)), options_(options) {
    auto dir = destination_.parent_path();
    if (dir.empty()) dir = ".";
    (void)remove_stale_temporaries(destination_);
    std::string pattern =
        (dir / cat(temporary_prefix(destination_), ::getpid(), "-XXXXXX")).string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0)
        throw InputError(
            cat(destination_.string(), ": cannot create output: ", std::strerror(errno)));
    ::fchmod(fd_, static_cast<mode_t>(options_.permissions));
    temporary_ = pattern;
    slot_ = register_temporary(temporary_.string());
    buffer_.reserve(1 << 20);
}

OutputFile::~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temporary_.c_str());
    unregister_temporary(slot_);
}

void OutputFile::flush_buffer() {
    write_raw(buffer_.data(), buffer_.size());
    buffer_.clear();
}

void OutputFile::write_raw(const std::byte* p, size_t left) {
    while (left > 0) {
        ssize_t n = ::write(fd_, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw InternalError(
                cat(destination_.string(), ": write failed: ", std::strerror(errno)));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
}

void OutputFile::write(std::span<const std::byte> bytes) {
    if (committed_) throw InternalError(cat(destination_.string(), ": write after commit"));
    position_ += bytes.size();
    if (buffer_.size() + bytes.size() > buffer_.capacity()) flush_buffer();
    if (bytes.size() >= buffer_.capacity()) {  // large blocks bypass the buffer
        write_raw(bytes.data(), bytes.size());
        return;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

void OutputFile::commit() {
    if (committed_) throw InternalError(cat(destination_.string(), ": committed twice"));
    flush_buffer();
    if (::fsync(fd_) != 0)
        throw InternalError(cat(destination_.string(), ": fsync failed: ", std::strerror(errno)));
    ::close(fd_);
    fd_ = -1;
    if (!options_.replace) {
        // link() fails with EEXIST instead of replacing; the temporary is removed after.
        if (::link(temporary_.c_str(), destination_.c_str()) != 0) {
            int err = errno;
            if (err == EEXIST)
                throw InputError(cat(destination_.string(), ": already exists (not replaced)"));
            throw InternalError(cat(destination_.string(),
                                    ": cannot link output into place: ", std::strerror(err)));
        }
        ::unlink(temporary_.c_str());
        committed_ = true;
        return;
    }
    {
        std::lock_guard lock(g_batch_mutex);
        if (g_batch_open) {  // the batch renames it, or removes it
            g_pending_renames.push_back({temporary_, destination_, slot_});
            slot_ = -1;
            committed_ = true;
            return;
        }
    }
    if (::rename(temporary_.c_str(), destination_.c_str()) != 0)
        throw InternalError(cat(destination_.string(),
                                ": cannot rename output into place: ", std::strerror(errno)));
    committed_ = true;
}

OutputBatch::OutputBatch() {
    std::lock_guard lock(g_batch_mutex);
    if (g_batch_open) throw InternalError("an output batch is already open");
    g_batch_open = true;
}

OutputBatch::~OutputBatch() {
    std::lock_guard lock(g_batch_mutex);
    if (!g_batch_open) return;  // committed
    for (const auto& p : g_pending_renames) {
        ::unlink(p.temporary.c_str());
        unregister_temporary(p.slot);
    }
    g_pending_renames.clear();
    g_batch_open = false;
}

void OutputBatch::commit() {
    std::lock_guard lock(g_batch_mutex);
    while (!g_pending_renames.empty()) {
        const Pending& p = g_pending_renames.front();
        if (::rename(p.temporary.c_str(), p.destination.c_str()) != 0)
            throw InternalError(cat(p.destination.string(),
                                    ": cannot rename output into place: ", std::strerror(errno)));
        unregister_temporary(p.slot);
        g_pending_renames.erase(g_pending_renames.begin());
    }
    g_batch_open = false;  // later commits rename at once
}

}  // namespace ep
