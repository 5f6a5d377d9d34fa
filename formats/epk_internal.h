// Pieces of the .epk code that the .epkd delta code (epk_delta.cpp) shares; edgepack_epk
// only. The delta works from the tensor table as the file stores it (offsets and SHA-256
// of each tensor's bytes), which the Model read_epk returns does not keep.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "formats/epk.h"
#include "ir/mapped_file.h"
#include "ir/output_file.h"

namespace ep {

// One entry of the tensor table (string tensors have none).
struct EpkTableEntry {
    std::string name;
    uint64_t offset = 0;  // absolute file offset (data_offset + the table's offset)
    uint64_t bytes = 0;
    std::string sha256;  // 64 hex digits, verified against the bytes
};

struct EpkTable {
    EpkInfo info;
    std::vector<EpkTableEntry> tensors;  // in data order (offsets increase)
};

// read_epk's every check, each tensor's SHA-256 included, keeping the table.
[[nodiscard]] EpkTable read_epk_table(const std::filesystem::path& path);

// SHA-256 of a sealed file's bytes before its 32-byte trailer (the whole file when it is
// shorter), streamed with the pages released as it goes; the caller compares the trailer.
[[nodiscard]] std::array<std::byte, 32> sha256_before_trailer(const MappedFile& file);

// Forwards to a sink and hashes everything written.
class HashingSink final : public ByteSink {
  public:
    explicit HashingSink(ByteSink& inner) : inner_(inner) {}
    void write(std::span<const std::byte> bytes) override {
        sha_.update(bytes);
        inner_.write(bytes);
    }
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return inner_.position(); }
    [[nodiscard]] std::array<std::byte, 32> finish() { return sha_.finish(); }

  private:
    ByteSink& inner_;
    Sha256 sha_;
};

// Little-endian integers of `n` bytes (n <= 8), as the .epk and .epkd headers store them.
void put_le(std::byte* p, uint64_t v, int n);
[[nodiscard]] uint64_t get_le(const std::byte* p, int n);

}  // namespace ep
