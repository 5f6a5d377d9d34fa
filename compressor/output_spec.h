// How `validate` compares one output, as a recipe (validate.outputs.NAME) or the command
// line (--output-kind NAME=KIND, --ctc-alphabet NAME=FILE) says it. An output nobody
// describes gets the kind rt::infer_output_kind finds (runtime-check/metrics.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "runtime-check/metrics.h"

namespace ep {

struct OutputSpec {
    std::string field;                   // where it was said, for messages: "validate.outputs.x"
    std::optional<rt::OutputKind> kind;  // empty: inferred
    std::optional<int64_t> axis;         // classes: the class axis (default: the last)
    double threshold = rt::kDefaultMapThreshold;  // map
    bool ctc = false;                // sequence: greedy CTC decoding (compressor/task_metrics.h)
    std::filesystem::path alphabet;  // with ctc: one symbol per line, class k = line k

    // The field that names the alphabet in messages: "validate.outputs.x.alphabet", or the
    // option itself ("--ctc-alphabet x").
    [[nodiscard]] std::string alphabet_field() const {
        return field.rfind("--", 0) == 0 ? field : field + ".alphabet";
    }
};

// By output name.
using OutputSpecs = std::map<std::string, OutputSpec>;

}  // namespace ep
