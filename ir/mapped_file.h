// A read-only memory mapping of a whole file. Tensor data read from disk is a view into
// one of these; the view keeps the mapping alive through a shared_ptr.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

namespace ep {

class MappedFile {
  public:
    // Maps `path` read-only. Throws InputError naming the path if it cannot be opened.
    [[nodiscard]] static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

    // Tells the kernel the pages of [offset, offset+size) are not needed for now, so a
    // streaming pass over a large file keeps its resident memory bounded. The bytes stay
    // readable (they are paged in again on the next access).
    void release(size_t offset, size_t size) const;

  private:
    MappedFile() = default;
    std::filesystem::path path_;
    const std::byte* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace ep
