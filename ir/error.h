// Errors are answers: every failure edgepack reports is an ep::Error carrying the
// exit code a CI system sees and a message naming the file, tensor or field at fault.
//
//   exit 0  success
//   exit 1  a gate failed        (GateFailure)
//   exit 2  bad input or usage   (InputError)
//   exit 3  internal error       (InternalError, or any other exception)
//
// Context is added on the way out: `with_context("model.onnx", [&]{ ... })` prefixes
// any ep::Error thrown inside with "model.onnx: ". One `try` in main maps to exit codes.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ep {

enum class ExitCode : int { Ok = 0, GateFailed = 1, BadInput = 2, Internal = 3 };

class Error : public std::runtime_error {
  public:
    Error(ExitCode code, std::string message)
        : std::runtime_error(std::move(message)), code_(code) {}
    [[nodiscard]] ExitCode code() const { return code_; }

  private:
    ExitCode code_;
};

// Bad input: malformed files, unknown recipe keys, missing files, hostile offsets.
class InputError : public Error {
  public:
    explicit InputError(std::string message) : Error(ExitCode::BadInput, std::move(message)) {}
};

// A gate a recipe set did not hold.
class GateFailure : public Error {
  public:
    explicit GateFailure(std::string message) : Error(ExitCode::GateFailed, std::move(message)) {}
};

// A bug in edgepack or a failure of the machine (disk full, out of memory).
class InternalError : public Error {
  public:
    explicit InternalError(std::string message) : Error(ExitCode::Internal, std::move(message)) {}
};

// Concatenates anything streamable: cat("tensor ", name, " has ", n, " bytes").
template <typename... Args>
[[nodiscard]] std::string cat(Args&&... args) {
    std::ostringstream out;
    (out << ... << std::forward<Args>(args));
    return out.str();
}

// Re-throws an ep::Error thrown by fn with "context: " in front of its message,
// keeping its exit code.
template <typename Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
    try {
        return std::forward<Fn>(fn)();
    } catch (const Error& e) {
        throw Error(e.code(), context + ": " + e.what());
    }
}

}  // namespace ep
