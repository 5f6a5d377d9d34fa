#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "error.h"

namespace ep {

void ByteSink::write_zeros(size_t n) {
    static constexpr std::array<std::byte, 4096> zeros{};
    while (n > 0) {
        size_t k = std::min(n, zeros.size());
        write(std::span<const std::byte>(zeros.data(), k));
        n -= k;
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

}  // namespace

OutputFile::OutputFile(std::filesystem::path destination, OutputFileOptions options)
    : destination_(std::move(destination)), options_(options) {
    auto dir = destination_.parent_path();
    if (dir.empty()) dir = ".";
    std::string pattern =
        (dir / ("." + destination_.filename().string() + ".edgepack-tmp-XXXXXX")).string();
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
    if (::rename(temporary_.c_str(), destination_.c_str()) != 0)
        throw InternalError(cat(destination_.string(),
                                ": cannot rename output into place: ", std::strerror(errno)));
    committed_ = true;
}

}  // namespace ep
