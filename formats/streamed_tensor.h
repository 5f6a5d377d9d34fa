// Tensors whose bytes a writer takes from a callback instead of from the Model: the
// streaming compressor (compressor/stream_compress.h) has a pass compute each such tensor
// (Pass::plan_streaming, e.g. quantize it) while the file is written, chunk by chunk, so
// neither the whole output nor a whole float copy of a tensor is ever in memory.
//
// A writer given a StreamedTensors map writes the model as usual, except that a tensor
// found in the map (by address: keys point into the Model being written) is described by
// the replacement's `header` (name, dtype, shape, encoding, doc string; its data is not
// read) and its bytes are whatever `write` produces. The file is then byte for byte the
// file the writer would produce for the model with `header` + those bytes in its place.
// `write` must produce exactly `bytes` bytes (the writer checks: an InternalError
// otherwise); it may throw, and the writer's OutputFile then leaves no file behind.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>

#include "ir/output_file.h"
#include "ir/tensor.h"

namespace ep {

struct StreamedTensor {
    Tensor header;       // what the file says about the tensor; header.data is ignored
    uint64_t bytes = 0;  // exactly what `write` produces; = header.expected_bytes()
    std::function<void(ByteSink&)> write;
};

using StreamedTensors = std::unordered_map<const Tensor*, StreamedTensor>;

// Counts what a StreamedTensor's writer produced, so the writer can check it.
class CountingSink final : public ByteSink {
  public:
    explicit CountingSink(ByteSink& inner) : inner_(inner) {}
    void write(std::span<const std::byte> bytes) override {
        inner_.write(bytes);
        count_ += bytes.size();
    }
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return inner_.position(); }
    [[nodiscard]] uint64_t count() const { return count_; }

  private:
    ByteSink& inner_;
    uint64_t count_ = 0;
};

// Runs `s.write` into `sink` and checks the byte count (InternalError naming the tensor).
inline void write_streamed(const StreamedTensor& s, ByteSink& sink) {
    CountingSink counted(sink);
    s.write(counted);
    if (counted.count() != s.bytes)
        throw InternalError(cat("tensor '", s.header.name, "': the streamed writer produced ",
                                counted.count(), " bytes, the file's header says ", s.bytes));
}

}  // namespace ep
