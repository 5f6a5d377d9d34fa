// What every harness shares: the fuzzer's bytes become a file that the reader opens by name,
// as `edgepack` opens a user's file, and the one rule of the harnesses: InputError (exit 2)
// is the expected answer to hostile bytes; any other exception, a crash or a sanitizer
// report is a finding.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <system_error>

#include "ir/error.h"

namespace ep::fuzz {

// A private directory (in /dev/shm when there is one: the file is rewritten per input),
// removed when the process exits normally.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        std::error_code ec;
        std::string base = std::filesystem::is_directory("/dev/shm", ec)
                               ? std::string("/dev/shm")
                               : std::filesystem::temp_directory_path().string();
        std::string pattern = base + "/edgepack-fuzz-XXXXXX";
        if (!mkdtemp(pattern.data())) {
            std::perror("edgepack fuzz: mkdtemp");
            std::abort();
        }
        static std::filesystem::path made = pattern;
        std::atexit([] {
            std::error_code ignored;
            std::filesystem::remove_all(made, ignored);
        });
        return made;
    }();
    return dir;
}

// Writes the bytes to `name` in the scratch directory and returns its path.
inline std::filesystem::path input_file(std::span<const uint8_t> bytes, const std::string& name) {
    std::filesystem::path path = scratch_dir() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.close();
    if (!out) {
        std::perror("edgepack fuzz: writing the input file");
        std::abort();
    }
    return path;
}

// The bytes of "weights.bin" beside fuzz_onnx's model (external data): 0, 1, ..., 63.
inline constexpr auto kExternalWeights = [] {
    std::array<uint8_t, 64> bytes{};
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
    return bytes;
}();

// Runs the reader. Bad input (an ep::Error with exit code 2: an InputError, or one that
// with_context re-threw with the file's name) is a normal outcome; anything else aborts
// with its message, so libFuzzer keeps the input as a crash.
template <class Read>
void expect_ok_or_input_error(Read&& read) {
    try {
        read();
    } catch (const Error& e) {
        if (e.code() != ExitCode::BadInput) {
            std::fprintf(stderr, "edgepack fuzz: exit code %d, not 2: %s\n",
                         static_cast<int>(e.code()), e.what());
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "edgepack fuzz: not an InputError: %s\n", e.what());
        std::abort();
    }
}

}  // namespace ep::fuzz
