// CTC task metrics (contract in task_metrics.h). Everything is counted in integers in
// sample and sequence order, so results do not depend on thread counts.
#include "compressor/task_metrics.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "ir/error.h"
#include "ir/utf8.h"
#include "runtime-check/metrics.h"

namespace ep {
namespace fs = std::filesystem;

namespace {

// The lines of a UTF-8 text file: split at '\n', a final newline ends the last line, a
// '\r' before a '\n' and a leading byte-order mark are dropped.
std::vector<std::string> read_lines(const fs::path& file, const std::string& what) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(cat(what, ": cannot read ", file.string()));
    std::ostringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.erase(0, 3);
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < s.size()) {
        size_t end = s.find('\n', start);
        if (end == std::string::npos) end = s.size();
        std::string line = s.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (size_t bad = invalid_utf8_offset(line); bad != std::string::npos)
            throw InputError(cat(what, ": ", file.string(), ": line ", lines.size() + 1,
                                 " is not valid UTF-8 (byte ", bad + 1, ")"));
        lines.push_back(std::move(line));
        start = end + 1;
    }
    return lines;
}

}  // namespace

std::vector<std::string> read_ctc_alphabet(const fs::path& file, const std::string& field) {
    auto lines = read_lines(file, field);
    if (lines.empty()) throw InputError(cat(field, ": ", file.string(), " holds no symbols"));
    return lines;
}

std::vector<std::string> read_text_labels(const fs::path& file) {
    auto lines = read_lines(file, file.string());
    if (lines.empty()) throw InputError(cat(file.string(), ": holds no labels"));
    return lines;
}

std::u32string code_points(std::string_view s) {
    std::u32string out;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; k < len && i + k < s.size(); ++k) v = (v << 6) | (p[i + k] & 0x3F);
        out.push_back(v);
        i += len;
    }
    return out;
}

size_t levenshtein(std::u32string_view a, std::u32string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::vector<int64_t> ctc_greedy_decode(std::span<const double> scores, int64_t classes) {
    std::vector<int64_t> out;
    auto c = static_cast<size_t>(classes);
    int64_t previous = -1;
    for (size_t t = 0; t + c <= scores.size(); t += c) {
        int64_t k = rt::argmax(scores.subspan(t, c));
        if (k != previous && k != 0) out.push_back(k);
        previous = k;
    }
    return out;
}

CtcScorer::CtcScorer(std::string output, std::string field, std::vector<std::string> alphabet,
                     fs::path alphabet_file)
    : output_(std::move(output)),
      field_(std::move(field)),
      alphabet_(std::move(alphabet)),
      alphabet_file_(std::move(alphabet_file)) {}

void CtcScorer::set_labels(const std::vector<std::string>* labels, std::string what) {
    labels_ = labels;
    labels_what_ = std::move(what);
}

std::string CtcScorer::decode_text(std::span<const double> scores) const {
    std::string text;
    for (int64_t k : ctc_greedy_decode(scores, classes_)) {
        auto i = static_cast<size_t>(k);
        text += i <= alphabet_.size() ? alphabet_[i - 1] : std::string(" ");
    }
    return text;
}

void CtcScorer::add(const Tensor& reference, const Tensor& candidate) {
    const std::string what = cat("output '", output_, "'");
    if (reference.shape.size() < 2)
        throw InputError(cat(field_, ": CTC decoding needs [..., positions, classes], '", output_,
                             "' is ", shape_string(reference.shape)));
    const int64_t classes = reference.shape.back();
    const auto symbols = static_cast<int64_t>(alphabet_.size());
    if (classes != symbols + 1 && classes != symbols + 2)
        throw InputError(cat(field_, ": ", alphabet_file_.string(), " has ", symbols,
                             " symbols, so CTC needs ", symbols + 1,
                             " classes (blank + symbols) or ", symbols + 2,
                             " (with a space), but '", output_, "' has ", classes));
    classes_ = classes;
    auto ref = rt::tensor_as_doubles(reference, cat(what, " of the reference"));
    auto cand = rt::tensor_as_doubles(candidate, cat(what, " of the candidate"));
    const size_t length = static_cast<size_t>(reference.shape[reference.shape.size() - 2]) *
                          static_cast<size_t>(classes);
    for (size_t s = 0; length > 0 && s + length <= ref.size(); s += length) {
        std::string r = decode_text(std::span<const double>(ref).subspan(s, length));
        std::string c = decode_text(std::span<const double>(cand).subspan(s, length));
        const uint64_t index = sequences_++;
        const bool agree = r == c;
        agree_ += agree;
        std::string label;
        if (labels_) {
            if (index >= labels_->size())
                throw InputError(cat(labels_what_, ": ", labels_->size(), " lines, but '", output_,
                                     "' gives more sequences than that"));
            label = (*labels_)[index];
            auto l = code_points(label), rc = code_points(r), cc = code_points(c);
            label_chars_ += l.size();
            edits_reference_ += levenshtein(rc, l);
            edits_candidate_ += levenshtein(cc, l);
            exact_reference_ += r == label;
            exact_candidate_ += c == label;
        }
        if (!agree && disagreements_.size() < kCtcDisagreementsKept)
            disagreements_.push_back({index, r, c, label});
    }
}

CtcMetrics CtcScorer::finish() const {
    CtcMetrics m;
    m.classes = classes_;
    m.space_class = classes_ == static_cast<int64_t>(alphabet_.size()) + 2;
    m.sequences = sequences_;
    const double n = static_cast<double>(sequences_);
    if (sequences_ > 0) m.line_agreement = 100.0 * static_cast<double>(agree_) / n;
    m.disagreements = disagreements_;
    if (!labels_) return m;
    if (labels_->size() != sequences_)
        throw InputError(cat(labels_what_, ": ", labels_->size(), " lines, but '", output_,
                             "' gave ", sequences_, " sequences"));
    m.labelled = true;
    m.label_characters = label_chars_;
    m.line_accuracy_reference = 100.0 * static_cast<double>(exact_reference_) / n;
    m.line_accuracy_candidate = 100.0 * static_cast<double>(exact_candidate_) / n;
    m.line_accuracy_drop = m.line_accuracy_reference - m.line_accuracy_candidate;
    auto cer = [&](uint64_t edits) {
        if (label_chars_ == 0) return edits == 0 ? 0.0 : 100.0 * static_cast<double>(edits);
        return 100.0 * static_cast<double>(edits) / static_cast<double>(label_chars_);
    };
    m.cer_reference = cer(edits_reference_);
    m.cer_candidate = cer(edits_candidate_);
    return m;
}

}  // namespace ep
