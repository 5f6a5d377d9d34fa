// The `.epkd` delta: rebuilds one `.epk` pack (the target) bit for bit from another (the
// base) and the bytes the base lacks. `edgepack diff BASE.epk TARGET.epk -o update.epkd`
// writes one; `edgepack apply BASE.epk update.epkd -o TARGET.epk` uses it.
//
// The delta is a list of records that tile the target file from its first byte to its last;
// each record says where its bytes come from: the delta's payload, a range of the base file,
// or zeros. `diff` makes them from the two packs' tensor tables: the target's header,
// manifest and checksum trailer go in the payload; each target tensor whose SHA-256 is the
// SHA-256 of any tensor of the base (under any name, at any offset) is a copy of the base's
// bytes, every other tensor goes in the payload; the alignment gaps are zeros. `apply` needs
// no JSON and no knowledge of the .epk layout: it checks the records, checks the base is
// the file the delta was made for (its whole-file SHA-256), writes the records in order and
// checks the result's whole-file SHA-256 before the file appears (OutputFile).
//
// Layout (all integers little-endian; offsets are absolute file offsets):
//
//   [0, 128)                         header (below)
//   [128, 128 + 24 x record_count)   records (below), in target order
//   [.., + payload_length)           payload: the delta-sourced bytes, in record order
//   [file_length - 32, file_length)  SHA-256 of bytes [0, file_length - 32)
//
// Header (128 bytes):
//   off size field
//   0   8    magic           89 45 50 44 0D 0A 1A 0A  ("\x89EPD\r\n\x1a\n", as .epk's)
//   8   4    format_version  u32, 1
//   12  4    header_size     u32, 128
//   16  32   base_sha256     SHA-256 of the whole base file (as `sha256sum` prints it)
//   48  8    base_length     u64, the base file's size
//   56  32   target_sha256   SHA-256 of the whole target file
//   88  8    target_length   u64, the target file's size: the sum of the record lengths,
//                            at least 96 (an .epk's header and checksum)
//   96  8    record_count    u64, at least 1
//   104 8    payload_length  u64, the sum of the delta records' lengths
//   112 16   reserved        zero
//
// Record (24 bytes):
//   0   4    kind            u32: 1 delta (bytes from the payload), 2 base (bytes from the
//                            base file), 3 zeros
//   4   4    reserved        u32, 0
//   8   8    source          u64: delta, the payload offset, which is the sum of the
//                            earlier delta records' lengths (the payload is read in
//                            order); base, the base file offset (source + length <=
//                            base_length); zeros, 0
//   16  8    length          u64, at least 1
//
// Reading checks, in this order, each failure an InputError "FILE: ..." naming the field:
// the size (at least 160 bytes); the SHA-256 trailer (a flipped byte anywhere is "checksum
// mismatch: the delta is corrupt or truncated"); magic, version, header size, reserved;
// the sections tile the file exactly; every record's kind, reserved, source and length;
// the sums. Applying then checks the base's size and SHA-256 (a delta made for another
// base names both digests), that the output's directory has room for target_length
// bytes, and the rebuilt file's SHA-256, before the output appears.
// This library needs only the IR and OpenSSL's libcrypto (no protobuf, no JSON).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ir/output_file.h"
#include "ir/progress.h"

namespace ep {

inline constexpr uint32_t kEpkDeltaFormatVersion = 1;
inline constexpr uint64_t kEpkDeltaHeaderBytes = 128;
inline constexpr uint64_t kEpkDeltaRecordBytes = 24;

enum class DeltaSource : uint32_t { Delta = 1, Base = 2, Zeros = 3 };

struct DeltaRecord {
    DeltaSource kind = DeltaSource::Delta;
    uint64_t source = 0;
    uint64_t length = 0;
};

// What `diff` found: the new pack's tensors, each reused from the base or carried.
struct EpkDeltaStats {
    std::string base_sha256, target_sha256;  // whole files, 64 hex digits
    uint64_t base_bytes = 0, target_bytes = 0, delta_bytes = 0;
    uint64_t tensors = 0;          // tensors of the target with bytes (string tensors excluded)
    uint64_t tensors_reused = 0;   // their bytes are copied from the base
    uint64_t tensors_renamed = 0;  // of those, found in the base under another name
    uint64_t bytes_reused = 0;     // tensor bytes copied from the base
    uint64_t bytes_changed = 0;    // tensor bytes carried in the delta
    uint64_t bytes_other = 0;      // header, manifest, trailer (and any non-zero padding)
    struct Changed {
        std::string name;
        uint64_t bytes = 0;
        bool in_base = false;  // a tensor of that name exists in the base
    };
    std::vector<Changed> changed;  // in the target's data order
};

// Reads both packs (each verified, tensor checksums included), plans the records and
// writes the delta to `out`. Throws InputError naming the file at fault.
EpkDeltaStats diff_epk(const std::filesystem::path& base, const std::filesystem::path& target,
                       ByteSink& out, Progress* progress = nullptr);
// The same, written atomically to `path`; with `dry_run` nothing is written (the size is
// still computed).
EpkDeltaStats diff_epk(const std::filesystem::path& base, const std::filesystem::path& target,
                       const std::filesystem::path& path, bool dry_run,
                       Progress* progress = nullptr);

// A delta's header and records, every field checked (see the first comment).
struct EpkDelta {
    std::string base_sha256, target_sha256;
    uint64_t base_length = 0, target_length = 0, payload_length = 0, file_length = 0;
    uint64_t payload_offset = 0;
    std::vector<DeltaRecord> records;
};
[[nodiscard]] EpkDelta read_epk_delta_header(const std::filesystem::path& delta);

struct EpkApplyStats {
    std::string target_sha256;
    uint64_t target_bytes = 0;
    uint64_t bytes_from_base = 0, bytes_from_delta = 0, bytes_zero = 0;
};

// Rebuilds the target from `base` and `delta` into `output` (atomically: OutputFile), after
// every check; with `dry_run` the target is rebuilt and its SHA-256 checked but nothing is
// written. `output` may be `base` itself (the base stays readable until the rename).
EpkApplyStats apply_epk_delta(const std::filesystem::path& base, const std::filesystem::path& delta,
                              const std::filesystem::path& output, bool dry_run,
                              Progress* progress = nullptr);

}  // namespace ep
