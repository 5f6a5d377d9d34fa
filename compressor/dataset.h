// Samples for a model's inputs: what `edgepack run --data`, `edgepack validate` and
// (later) calibration feed the runtime. One sample is one run of the model; a sample may
// hold a whole batch (an .npz of [1000, 1, 28, 28] is one sample of 1000 rows).
//
// Sources, chosen from what `--data DIR` holds (checked in this order):
//   1. `*.npz` files in DIR: one sample per file, in sorted file-name order; each member
//      `KEY.npy` (stored or deflated, as numpy.savez / savez_compressed write them) is the
//      input named KEY. Other files in DIR (labels.npy, README) are ignored.
//   2. DIR itself holds inputs: `NAME.npy` files named after the model's inputs (names made
//      file-safe as `edgepack run` does for outputs) or ONNX test data `input_0.pb`,
//      `input_1.pb`, ... (TensorProto; matched by the proto's name when it names an input,
//      else by position among the model's inputs): one sample.
//   3. Sub-directories of DIR, in sorted name order, each holding inputs as in 2 (an ONNX
//      test case's `test_data_set_0/`, ..., or the `sample_K/` folders `edgepack run`
//      writes): one sample each.
//   4. `--data FILE.npy` (a file, not a directory): token-id sequences for a language model
//      with exactly one input of rank 2 ([1, T], int64): an [S, T] int64 array is S samples,
//      sample s being row s as [1, T]. T must match the input's fixed length, if any.
// Without DIR, `samples` seeded random samples come from rt::synthetic_inputs: sample k
// uses seed `seed + k` (so sample 0 equals what `edgepack bench --seed S` feeds).
//
// Every tensor is checked against the model's declared input (dtype, rank, fixed
// dimensions) and every input must be present; a mismatch, a bad zip or a member that is
// not a valid .npy is an InputError naming the file and the member.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime-check/executor.h"
#include "runtime-check/run_files.h"  // safe_file_name: how DIR/NAME.npy is named
#include "runtime-check/synthetic_inputs.h"

namespace ep {

struct DataSource {
    std::filesystem::path data;  // --data DIR; empty: random samples
    uint64_t samples = 1;        // --samples N (random only)
    uint64_t seed = 0;           // --seed S (random only)
    rt::ShapeOverrides shapes;   // --shape NAME=D0,D1,... (random only)
};

enum class DataKind : uint8_t { Npz, InputFolder, SampleFolders, Random, TokenSequences };

class Dataset {
  public:
    // Lists the samples (reads no tensor yet). `model` must outlive the dataset.
    Dataset(const rt::Executor& model, DataSource source);
    // The same from the model's inputs alone (rt::graph_feeds), to check data before
    // anything runs: load() reads and checks every kind of sample except random ones,
    // which need the executor (rt::synthetic_inputs; InternalError here).
    Dataset(std::vector<ValueInfo> feeds, DataSource source);

    [[nodiscard]] size_t size() const { return count_; }
    [[nodiscard]] DataKind kind() const { return kind_; }
    // Where sample i comes from: "batch_03.npz", "test_data_set_0", "random (seed 5)".
    [[nodiscard]] std::string sample_name(size_t i) const;
    // One line for reports: "10 .npz files in data/", "4 random samples (seed 1)".
    [[nodiscard]] std::string describe() const;
    [[nodiscard]] const DataSource& source() const { return source_; }

    // Reads sample i and checks it against the model's inputs.
    [[nodiscard]] rt::NamedTensors load(size_t i) const;

  private:
    rt::NamedTensors load_folder(const std::filesystem::path& dir) const;
    void open_tokens();
    void check_sample(rt::NamedTensors& sample, const std::string& where) const;

    std::vector<ValueInfo> feeds_;         // what a sample must hold
    const rt::Executor* model_ = nullptr;  // null: checking only (no random samples)
    DataSource source_;
    DataKind kind_ = DataKind::Random;
    std::vector<std::filesystem::path> entries_;  // files or folders, sorted
    Tensor tokens_;                               // TokenSequences: the [S, T] array
    size_t count_ = 0;
};

// The members of an .npz file as tensors named by their keys, in archive order.
// Throws InputError naming the file (and member) for a bad zip, a member that is not
// `KEY.npy`, a duplicate key, or a malformed .npy.
[[nodiscard]] rt::NamedTensors read_npz(const std::filesystem::path& path);

}  // namespace ep
