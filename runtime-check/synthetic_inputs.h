// Seeded random inputs for a model, from its declared input types: for benchmarks and
// for validation without a dataset.
//   float inputs: uniform [0, 1); integer inputs: uniform [0, V) where V is the row count
//   of the embedding table the input indexes (a Gather on an initializer), else [0, 100);
//   bool: 0/1. Symbolic or unknown dimensions are 1 unless overridden by name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime-check/executor.h"

namespace ep::rt {

using ShapeOverrides = std::map<std::string, std::vector<int64_t>>;

// Parses "NAME=1,3,48,320"; throws InputError naming the option on a malformed value.
void parse_shape_override(const std::string& spec, ShapeOverrides& overrides);

[[nodiscard]] NamedTensors synthetic_inputs(const Executor& executor, uint64_t seed,
                                            const ShapeOverrides& overrides = {});

}  // namespace ep::rt
