// The files of one model run, shared by `edgepack run` and the device binary
// `edgepack-run`: inputs given as `NAME=FILE.npy` arguments, outputs written as
// DIR/NAME.npy (NAME made file-safe by safe_file_name).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "ir/progress.h"
#include "runtime-check/executor.h"

namespace ep {

// Characters outside [A-Za-z0-9._-] become '_' (how a run names its output files).
[[nodiscard]] std::string safe_file_name(const std::string& name);

// One feed per `NAME=FILE.npy` argument, read with read_npy. A malformed argument or file
// is an InputError naming it.
[[nodiscard]] rt::NamedTensors read_input_files(const std::vector<std::string>& specs);

// "logits: f32 [1, 10] -> OUT/logits.npy"
[[nodiscard]] std::string output_line(const std::string& name, const Tensor& tensor,
                                      const std::filesystem::path& path);

// Writes each output to DIR/NAME.npy (DIR created), all appearing together once every one
// is written (OutputBatch); two outputs with one file name are an InputError before any is
// written. `progress` (may be null) gets one output_line per file.
void write_output_files(const rt::NamedTensors& outputs, const std::filesystem::path& dir,
                        Progress* progress);

}  // namespace ep
