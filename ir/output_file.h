// Writing outputs so that a failed or killed run never leaves a half-written file.
//
// OutputFile writes to a temporary file next to the destination and renames it over the
// destination on commit(); if it is destroyed uncommitted (an exception unwound past it),
// the temporary is removed. SIGINT/SIGTERM also remove pending temporaries.
// ByteSink is what serializers write to, so one serializer can fill a file or a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ep {

class TensorData;

class ByteSink {
  public:
    virtual ~ByteSink() = default;
    virtual void write(std::span<const std::byte> bytes) = 0;
    [[nodiscard]] virtual uint64_t position() const = 0;
    void write(std::string_view s) { write(std::as_bytes(std::span(s.data(), s.size()))); }
    void write_zeros(size_t n);
};

// Writes a tensor's bytes to `sink` in 16 MiB chunks; the pages of a memory-mapped view are
// released once written, so writing a model larger than memory keeps resident memory
// bounded. The writers of safetensors, GGUF and .epk share it.
void write_tensor_bytes(ByteSink& sink, const TensorData& data);

class BufferSink final : public ByteSink {
  public:
    void write(std::span<const std::byte> bytes) override;
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return buffer_.size(); }
    [[nodiscard]] std::vector<std::byte>& buffer() { return buffer_; }

  private:
    std::vector<std::byte> buffer_;
};

// How OutputFile creates its destination: the permission bits (set on the temporary before
// the first byte, so a secret is never readable by others), and whether commit() replaces
// an existing file (the default) or refuses it with an InputError naming the file (hard link
// into place: atomic, so two runs cannot both win; keygen's key files).
struct OutputFileOptions {
    unsigned permissions = 0644;
    bool replace = true;
};

class OutputFile final : public ByteSink {
  public:
    explicit OutputFile(std::filesystem::path destination, OutputFileOptions options = {});
    ~OutputFile() override;
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    void write(std::span<const std::byte> bytes) override;
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return position_; }
    // Flushes, syncs and renames the temporary over the destination (or, with
    // `replace = false`, links it into place and refuses an existing destination).
    void commit();
    [[nodiscard]] const std::filesystem::path& destination() const { return destination_; }

  private:
    void flush_buffer();
    void write_raw(const std::byte* p, size_t size);
    std::filesystem::path destination_;
    std::filesystem::path temporary_;
    OutputFileOptions options_;
    int fd_ = -1;
    uint64_t position_ = 0;
    std::vector<std::byte> buffer_;
    bool committed_ = false;
    int slot_ = -1;  // entry in the signal handler's list of temporaries
};

}  // namespace ep
