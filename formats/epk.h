// The packed edge file, `.epk`: one file holding a whole Model (graph and weights, with
// quantized encodings), laid out so a device can memory-map it and use every tensor in
// place, and sealed with a SHA-256 that the reader checks before it returns anything.
//
// Layout (all integers little-endian; offsets are absolute file offsets):
//
//   [0, 64)                        header (below)
//   [data_offset, +data_length)    tensor data; every tensor starts at a multiple of 64
//                                  from the file's start, the gaps are zero bytes
//   [manifest_offset, +length)     the manifest: UTF-8 JSON, compact, keys sorted
//   [file_length - 32, file_length) SHA-256 of bytes [0, file_length - 32)
//
// The data comes before the manifest so the writer makes one pass over the weights: the
// manifest's per-tensor SHA-256 strings have a fixed length, so every offset is known
// before the first tensor byte is written, and each tensor is read once (hashed and
// written together, pages of mapped sources released as they go).
//
// Header (64 bytes):
//   off size field
//   0   8    magic             89 45 50 4B 0D 0A 1A 0A  ("\x89EPK\r\n\x1a\n", as PNG: a
//                                                         text-mode copy breaks it)
//   8   2    format_version    u16, the major version, 1 (docs/epk.md "Format versions")
//   10  2    format_minor      u16, the minor version, 0 (a version-1.0 file's bytes 8..12
//                              are the u32 1 of the first files: they read as 1.0)
//   12  4    header_size       u32, 64
//   16  8    manifest_offset   u64, = data_offset + data_length
//   24  8    manifest_length   u64, >= 2, at most 1 GiB
//   32  8    data_offset       u64, = header_size (64)
//   40  8    data_length       u64, a multiple of 64
//   48  8    file_length       u64, = manifest_offset + manifest_length + 32 = file size
//   56  8    reserved          u64, 0 (a newer minor may use it: its readers ignore it)
//
// Manifest (a JSON object; every key below is required unless marked optional, and no
// other keys are allowed in a file of this reader's minor version or older, so a reader of
// version 1.0 understands all of a version-1.0 file):
//   "format": "edgepack.epk"       "format_version": 1 (the header's major version)
//   "provenance": {                 where the file came from (values "" when not known)
//       "edgepack_version": "0.1.0",   the writer's version
//       "source_file": "model.onnx",   base name of the model that was compressed
//       "source_sha256": "<64 hex>",   SHA-256 of that file's bytes (an ONNX model's
//                                      external data file is not included)
//       "recipe_file": "r.json", "recipe_sha256": "<64 hex>",   the recipe file's bytes
//       "recipe_overrides": ["passes.0.bits=4", ...] }         --set values, in order
//   "tensors": [ one entry per tensor, in data order:
//       {"name", "dtype" ("f32", names as dtype.h), "shape": [int...],
//        "offset": bytes from data_offset (a multiple of 64; increasing, no overlap),
//        "bytes": dtype x shape (or encoded_bytes for an encoded tensor),
//        "sha256": "<64 hex>" of the tensor's bytes,
//        "encoding" (optional): {"name": "int4g32" (encoding_name), "axis": 0 or 1}
//                    (dtype is then "f32", shape the logical shape: encoding.h); a sparse
//                    tensor ("int4g32+2:4", "bitmask": ir/sparse.h, whose first comment
//                    defines its bytes) adds "kept": the kept weights' count, and plain
//                    sparse floats keep their dtype (f32, f16, bf16),
//        "doc_string" (optional)}
//     string tensors have "strings": [bytes...] instead of offset/bytes/sha256 ]
//   "model": {
//       "source_format": "onnx" | "safetensors", "ir_version", "model_version": int,
//       "producer_name", "producer_version", "domain", "doc_string": string,
//       "opset_imports": [{"domain", "version"}], "metadata": [[key, value], ...] (order kept),
//       "graph": GRAPH, "functions": [FUNCTION], "training_info": [bytes] }
//   GRAPH: {"name", "doc_string", "inputs", "outputs", "value_info": [VALUE],
//           "initializers": [tensor index], "nodes": [NODE],
//           "sparse_initializers", "quantization_annotation": [bytes]}
//   VALUE: {"name", "doc_string", "type": null | {"tensor": bool, "elem": dtype,
//           "shape": null | [{"value": int} | {"param": string} | {}, each with an
//           optional "denotation"], "denotation", "opaque": bytes}}
//   NODE:  {"name", "op_type", "domain", "inputs", "outputs": [string], "doc_string",
//           "attributes": [ATTR]}
//   ATTR:  {"name", "type" ("float", "int", "string", "tensor", "graph", "sparse_tensor",
//           "type_proto", "floats", "ints", "strings", "tensors", "graphs",
//           "sparse_tensors", "type_protos", "undefined"), "ref_attr_name", "doc_string",
//           "f": FLOAT, "i": int, "s": bytes, "floats", "ints", "strings",
//           "tensors": [tensor index], "graphs": [GRAPH], "opaque": [bytes]}
//   FUNCTION: {"name", "domain", "inputs", "outputs", "attribute_names", "doc_string",
//           "attribute_defaults": [ATTR], "nodes": [NODE], "opset_imports"}
//   bytes: a JSON string when the bytes are valid UTF-8, else {"base64": "..."}.
//   FLOAT: a JSON number (the float's shortest round-trip decimal); NaN and infinities as
//          the string "0x" + 8 hex digits of the float's bits.
//   Every tensor of the model (initializers of every graph, tensors in node attributes and
//   function attribute defaults) is one entry of "tensors", referred to exactly once.
//
// Determinism: the same Model and provenance give the same bytes (no timestamps; keys
// sorted; arrays in the IR's order; padding zero).
//
// Format versions: the major version changes when a reader of the previous one would
// misread a file (a field's meaning or the layout changes); the minor version when a writer
// adds keys an older reader may skip without misreading anything. Every version starts with
// the magic and the two version fields and ends with the SHA-256 of the rest, checked first.
// A reader refuses a file of another major version, naming both versions (and when the
// checksum fails on a file whose header says a newer major, the message names it too). It
// reads a newer minor of its own major, skipping the manifest keys it does not know (listed
// in EpkInfo::skipped_fields) and the reserved header field; what it cannot skip (an unknown
// dtype or encoding name) is refused, naming the tensor. In a file of its own minor or
// older, an unknown key is an error.
//
// Reading (read_epk) checks, in this order, and throws InputError "FILE: ..." naming the
// field: the size (at least 96 bytes); the SHA-256 trailer over the whole file (a flipped
// byte anywhere is "checksum mismatch: the file is corrupt or truncated"); magic, major version,
// header size, reserved; the three sections tile the file as above; the manifest parses
// (nesting at most 512 levels) with every field of the right type; each tensor's dtype,
// encoding, shape (rank <= 64, no overflow), bytes == dtype x shape, offset alignment and
// range inside the data section, no overlap, and a sparse tensor's every field
// (check_sparse_bytes); every tensor index in range and used once.
// Tensors are views into the mapping (64-byte aligned, so typed spans are safe). Graph
// referential checks (values produced before use, ...) are left to verify(), as for ONNX.
// This library needs only the IR, nlohmann/json and OpenSSL's libcrypto (no protobuf).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "formats/streamed_tensor.h"
#include "ir/ir.h"
#include "ir/output_file.h"

namespace ep {

inline constexpr uint16_t kEpkFormatVersion = 1;  // the major version
inline constexpr uint16_t kEpkFormatMinor = 0;
inline constexpr uint64_t kEpkHeaderBytes = 64;
inline constexpr uint64_t kEpkAlignment = 64;
inline constexpr uint64_t kEpkChecksumBytes = 32;
inline constexpr uint64_t kEpkMaxManifestBytes = uint64_t{1} << 30;

struct EpkProvenance {
    std::string edgepack_version;  // set by the writer (this build's version)
    std::string source_file;
    std::string source_sha256;  // 64 lowercase hex digits, or empty when not known
    std::string recipe_file;
    std::string recipe_sha256;
    std::vector<std::string> recipe_overrides;
};

struct EpkWriteOptions {
    EpkProvenance provenance;  // edgepack_version is filled in by the writer
    // Streaming (streamed_tensor.h): tensors of the model whose bytes a callback produces
    // while the file is written; the file is the same as for the model with them in place.
    const StreamedTensors* streamed = nullptr;
};

struct EpkInfo {
    uint32_t format_version = 0;  // the major version
    uint32_t format_minor = 0;
    // Manifest keys of a newer minor version this reader skipped ("tensors[0] ('w'):
    // 'stats'"); always empty for a file of this reader's minor or older.
    std::vector<std::string> skipped_fields;
    uint64_t file_length = 0;
    uint64_t manifest_offset = 0, manifest_length = 0;
    uint64_t data_offset = 0, data_length = 0;
    std::string sha256;  // the whole-file checksum, verified
    bool tensor_checksums_verified = false;
    EpkProvenance provenance;
};

struct EpkFile {
    Model model;
    EpkInfo info;
};

struct EpkReadOptions {
    // Also recompute each tensor's SHA-256 (the whole-file checksum is always verified).
    bool verify_tensor_checksums = false;
};

[[nodiscard]] EpkFile read_epk(const std::filesystem::path& path,
                               const EpkReadOptions& options = {});

// Serializes to any sink (a file or a buffer); throws InputError naming the tensor or
// field that cannot be stored (names and doc strings must be UTF-8).
void write_epk(const Model& model, ByteSink& sink, const EpkWriteOptions& options = {});
// Atomic (OutputFile): the file appears only when complete.
void write_epk(const Model& model, const std::filesystem::path& path,
               const EpkWriteOptions& options = {});

// True when `head` starts with the .epk magic.
[[nodiscard]] bool has_epk_magic(std::span<const std::byte> head);

// SHA-256 (OpenSSL EVP).
class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::span<const std::byte> bytes);
    [[nodiscard]] std::array<std::byte, 32> finish();

  private:
    void* ctx_;  // EVP_MD_CTX
};
[[nodiscard]] std::string hex(std::span<const std::byte> bytes);
// SHA-256 of a file's bytes, streamed through a mapping whose pages are released as it goes.
[[nodiscard]] std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace ep
