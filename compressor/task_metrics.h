// Task metrics of `validate` for CTC text recognisers: greedy decoding of both models'
// outputs, compared with each other and with text labels (docs/validate.md, "Task metrics").
//
// Output [..., T, C]: every position t of every sequence holds C class scores. Class 0 is
// the CTC blank, class k (1 <= k <= L) is line k of the alphabet file (L lines); when
// C = L + 2 the last class is a space (PaddleOCR's use_space_char); any other C is an error.
// Greedy decoding: the argmax at every position (the first on ties), repeats merged, blanks
// dropped, the symbols concatenated.
//
// Over all sequences of all samples, in order (label i belongs to sequence i):
//   line accuracy   percent of sequences whose decoded text equals the label, per model;
//                   drop = reference - candidate, in percentage points
//   CER             sum of Levenshtein distances (over Unicode code points) between decoded
//                   text and label / sum of the labels' code points, in percent, per model
//   line agreement  percent of sequences whose candidate text equals the reference's
//                   (needs no labels)
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/tensor.h"

namespace ep {

// The symbols of a CTC alphabet file: one per line (UTF-8; a final newline ends the last
// line, "\r\n" endings are accepted). InputError naming `field` and the file when it
// cannot be read, is not UTF-8 or is empty.
[[nodiscard]] std::vector<std::string> read_ctc_alphabet(const std::filesystem::path& file,
                                                         const std::string& field);

// Text labels: one UTF-8 line per sequence, in order (same line rules).
[[nodiscard]] std::vector<std::string> read_text_labels(const std::filesystem::path& file);

// Code points of valid UTF-8 (the readers above check it).
[[nodiscard]] std::u32string code_points(std::string_view utf8);

// Levenshtein distance: insertions, deletions and substitutions of one code point each.
[[nodiscard]] size_t levenshtein(std::u32string_view a, std::u32string_view b);

// Greedy CTC decoding of one sequence of T positions x C classes (row-major scores):
// the class indices left after merging repeats and dropping blanks (class 0).
[[nodiscard]] std::vector<int64_t> ctc_greedy_decode(std::span<const double> scores,
                                                     int64_t classes);

struct CtcMetrics {
    int64_t classes = 0;
    bool space_class = false;  // the last class is a space
    uint64_t sequences = 0;
    double line_agreement = 100;  // percent
    bool labelled = false;
    uint64_t label_characters = 0;
    double line_accuracy_reference = 0, line_accuracy_candidate = 0, line_accuracy_drop = 0;
    double cer_reference = 0, cer_candidate = 0;  // percent
    // The first few sequences where the candidate's text differs from the reference's.
    struct Line {
        uint64_t index = 0;
        std::string reference, candidate, label;  // label empty without labels
    };
    std::vector<Line> disagreements;
};

inline constexpr size_t kCtcDisagreementsKept = 5;

// Accumulates one output's decoding over samples.
class CtcScorer {
  public:
    // `field` names the alphabet in messages ("validate.outputs.x.alphabet").
    CtcScorer(std::string output, std::string field, std::vector<std::string> alphabet,
              std::filesystem::path alphabet_file);

    // Labels for every sequence, in order; they must outlive the scorer. `what` names them
    // in messages: "validate.labels (labels.txt)".
    void set_labels(const std::vector<std::string>* labels, std::string what);

    // One sample of both models. InputError when the class count does not fit the alphabet,
    // or the sequences outnumber the labels.
    void add(const Tensor& reference, const Tensor& candidate);

    // InputError when labels are set and their count is not the number of sequences.
    [[nodiscard]] CtcMetrics finish() const;

  private:
    std::string decode_text(std::span<const double> scores) const;

    std::string output_, field_;
    std::vector<std::string> alphabet_;
    std::filesystem::path alphabet_file_;
    const std::vector<std::string>* labels_ = nullptr;
    std::string labels_what_;
    int64_t classes_ = 0;
    uint64_t sequences_ = 0, agree_ = 0, exact_reference_ = 0, exact_candidate_ = 0;
    uint64_t label_chars_ = 0, edits_reference_ = 0, edits_candidate_ = 0;
    std::vector<CtcMetrics::Line> disagreements_;
};

}  // namespace ep
