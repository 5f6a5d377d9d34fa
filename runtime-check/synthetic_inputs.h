// Seeded random inputs for a model, from its declared input types: for benchmarks and
// for validation without a dataset.
//   float inputs: uniform [0, 1); integer inputs: uniform [0, V) where V is the row count
//   of the embedding table the input indexes (a Gather on an initializer), else [0, 100);
//   bool: 0/1. Symbolic or unknown dimensions are 1 unless overridden by name. An input
//   over kMaxSyntheticInputBytes is refused (InputError) before it is allocated.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime-check/executor.h"

namespace ep::rt {

// The largest random input synthesized (1 GiB); a larger one is refused naming the input.
inline constexpr uint64_t kMaxSyntheticInputBytes = uint64_t{1} << 30;

using ShapeOverrides = std::map<std::string, std::vector<int64_t>>;

// Parses "NAME=1,3,48,320"; throws InputError naming the option on a malformed value.
void parse_shape_override(const std::string& spec, ShapeOverrides& overrides);

// Refuses (InputError naming the input, its shape, its bytes and what to do instead),
// before anything is allocated, a random input that would be over
// kMaxSyntheticInputBytes; synthetic_inputs
// checks each input so, and compress checks them all before writing anything.
void check_synthetic_inputs(const std::vector<ValueInfo>& inputs,
                            const ShapeOverrides& overrides = {});

// Rows of the initializer a Gather indexes with model input `input` along the Gather's axis
// (the vocabulary size of a token input), or 0 when no such Gather reads it.
[[nodiscard]] int64_t embedding_rows(const Model& model, const std::string& input);

[[nodiscard]] NamedTensors synthetic_inputs(const Executor& executor, uint64_t seed,
                                            const ShapeOverrides& overrides = {});

}  // namespace ep::rt
