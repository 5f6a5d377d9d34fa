// `edgepack inspect`: what a model file holds, as a JSON object with a stable, versioned
// schema (docs/inspect.md) and as text for a terminal. The text is rendered from the JSON,
// so both always say the same thing.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/epk.h"
#include "formats/gguf.h"
#include "ir/ir.h"

namespace ep {

inline constexpr const char* kInspectSchema = "edgepack.inspect/1";

struct InspectOptions {
    bool tensors = false;  // one entry per tensor (name, dtype, shape, bytes, zero fraction,
                           // encoding, bits per weight)
    size_t largest = 10;   // how many of the largest tensors to list
};

// `epk`: the header and provenance of a .epk file the model was read from (read_epk);
// the report then has format "epk" and an "epk" object (docs/inspect.md). `gguf`: the parsed
// GGUF file the model was read from (read_gguf_file): format "gguf" and a "gguf" object
// (version, alignment, typed metadata with long arrays cut, every tensor's ggml type).
[[nodiscard]] nlohmann::json inspect_model(const Model& model, const std::filesystem::path& file,
                                           const InspectOptions& options = {},
                                           const EpkInfo* epk = nullptr,
                                           const GgufFile* gguf = nullptr);
[[nodiscard]] std::string render_inspect_text(const nlohmann::json& report);
// "512 B", "1.50 KiB", "3.25 MiB": sizes as inspect prints them.
[[nodiscard]] std::string human_bytes(uint64_t bytes);

}  // namespace ep
