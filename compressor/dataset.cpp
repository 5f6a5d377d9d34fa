// Dataset: samples for a model's inputs from .npz files, .npy / ONNX test-data folders,
// or seeded random values (the contract is in dataset.h). .npz archives are read with
// libzip; every member size is bounded by what the archive declares and checked against
// the bytes actually inflated, and every tensor against the model's declared input.
#include "compressor/dataset.h"

#include <zip.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <system_error>

#include "formats/onnx_io.h"
#include "runtime-check/npy.h"

namespace ep {
namespace fs = std::filesystem;

namespace {

// No single .npz member may claim more than this many bytes (1 TiB).
constexpr uint64_t kMaxMemberBytes = uint64_t{1} << 40;
constexpr size_t kReadChunk = size_t{1} << 20;

std::string zip_error_text(int code) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    return text;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "f32 [batch_size, 1, 28, 28]" for a declared input type.
std::string declared_string(const ValueInfo& info) {
    if (!info.type || !info.type->is_tensor) return "(no declared type)";
    std::string dims;
    if (!info.type->shape) {
        dims = "(any shape)";
    } else {
        dims = "[";
        for (size_t i = 0; i < info.type->shape->size(); ++i) {
            const auto& d = (*info.type->shape)[i];
            if (i) dims += ", ";
            dims += d.value ? std::to_string(*d.value) : (d.param.empty() ? "?" : d.param);
        }
        dims += "]";
    }
    return cat(info.type->elem == DType::Undefined ? "any" : dtype_name(info.type->elem), " ",
               dims);
}

// Why `t` cannot feed `info`; empty when it can.
std::string mismatch(const ValueInfo& info, const Tensor& t) {
    if (!info.type || !info.type->is_tensor) return {};
    bool bad = info.type->elem != DType::Undefined && info.type->elem != t.dtype;
    if (info.type->shape) {
        const auto& dims = *info.type->shape;
        if (dims.size() != t.shape.size()) bad = true;
        for (size_t i = 0; !bad && i < dims.size(); ++i)
            if (dims[i].value && *dims[i].value != t.shape[i]) bad = true;
    }
    if (!bad) return {};
    return cat("expected ", declared_string(info), ", found ", dtype_name(t.dtype), " ",
               shape_string(t.shape));
}

std::string input_list(const std::vector<ValueInfo>& feeds) {
    std::string names;
    for (const auto& v : feeds) names += (names.empty() ? "" : ", ") + v.name;
    return names;
}

// Sorted entries of `dir` that satisfy `keep`; errors name the directory.
template <typename Keep>
std::vector<fs::path> sorted_entries(const fs::path& dir, Keep keep) {
    std::vector<fs::path> out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    if (ec) throw InputError(cat(dir.string(), ": cannot list the directory: ", ec.message()));
    for (; it != end; it.increment(ec)) {
        if (ec) throw InputError(cat(dir.string(), ": cannot list the directory: ", ec.message()));
        if (keep(it->path())) out.push_back(it->path());
    }
    std::sort(out.begin(), out.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    return out;
}

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

// Does `dir` hold inputs for one sample: input_0.pb or NAME.npy for some input?
bool holds_inputs(const fs::path& dir, const std::vector<ValueInfo>& feeds) {
    if (is_file(dir / "input_0.pb")) return true;
    for (const auto& v : feeds)
        if (is_file(dir / (safe_file_name(v.name) + ".npy")) || is_file(dir / (v.name + ".npy")))
            return true;
    return false;
}

}  // namespace

rt::NamedTensors read_npz(const fs::path& path) {
    const std::string file = path.string();
    int code = 0;
    zip_t* raw = zip_open(file.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!raw)
        throw InputError(cat(file, ": not a readable .npz (zip) archive: ", zip_error_text(code)));
    std::unique_ptr<zip_t, void (*)(zip_t*)> archive(raw, [](zip_t* z) { zip_discard(z); });

    zip_int64_t entries = zip_get_num_entries(raw, 0);
    if (entries < 0) throw InputError(cat(file, ": cannot read the .npz directory"));
    rt::NamedTensors out;
    std::set<std::string> keys;
    for (zip_int64_t i = 0; i < entries; ++i) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(raw, static_cast<zip_uint64_t>(i), 0, &st) != 0 ||
            !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
            throw InputError(
                cat(file, ": member ", i, ": cannot read its entry: ", zip_strerror(raw)));
        std::string name = st.name;
        std::string what = cat(file, ": member '", name, "'");
        if (!ends_with(name, ".npy") || name.size() == 4)
            throw InputError(cat(what, ": not a .npy array (an .npz holds KEY.npy members only)"));
        std::string key = name.substr(0, name.size() - 4);
        if (!keys.insert(key).second)
            throw InputError(cat(what, ": key '", key, "' appears twice"));
        if (st.size > kMaxMemberBytes)
            throw InputError(
                cat(what, ": declares ", st.size, " bytes (limit ", kMaxMemberBytes, ")"));

        zip_file_t* zf = zip_fopen_index(raw, static_cast<zip_uint64_t>(i), 0);
        if (!zf) throw InputError(cat(what, ": cannot open: ", zip_strerror(raw)));
        std::unique_ptr<zip_file_t, void (*)(zip_file_t*)> member(
            zf, [](zip_file_t* f) { zip_fclose(f); });
        std::vector<std::byte> bytes;
        bytes.reserve(static_cast<size_t>(std::min<uint64_t>(st.size, uint64_t{64} << 20)));
        std::vector<std::byte> chunk(kReadChunk);
        for (;;) {
            zip_int64_t n = zip_fread(zf, chunk.data(), chunk.size());
            if (n < 0) throw InputError(cat(what, ": cannot inflate: ", zip_file_strerror(zf)));
            if (n == 0) break;
            if (bytes.size() + static_cast<uint64_t>(n) > st.size)
                throw InputError(cat(what, ": inflates to more than the ", st.size,
                                     " bytes the archive declares"));
            bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
        }
        if (bytes.size() != st.size)
            throw InputError(cat(what, ": inflates to ", bytes.size(),
                                 " bytes, the archive declares ", st.size));
        Tensor t = parse_npy(bytes, what);
        t.name = key;
        out.emplace_back(key, std::move(t));
    }
    return out;
}

Dataset::Dataset(const rt::Executor& model, DataSource source)
    : Dataset(model.inputs(), std::move(source)) {
    model_ = &model;
}

Dataset::Dataset(std::vector<ValueInfo> feeds_in, DataSource source)
    : feeds_(std::move(feeds_in)), source_(std::move(source)) {
    const auto& feeds = feeds_;
    if (source_.data.empty()) {
        kind_ = DataKind::Random;
        if (source_.samples == 0) throw InputError("--samples must be at least 1");
        for (const auto& [name, dims] : source_.shapes)
            if (std::none_of(feeds.begin(), feeds.end(),
                             [&](const ValueInfo& v) { return v.name == name; }))
                throw InputError(cat("--shape ", name, ": the model has no input '", name,
                                     "' (inputs: ", input_list(feeds), ")"));
        count_ = source_.samples;
        return;
    }
    if (!source_.shapes.empty())
        throw InputError("--shape applies to random inputs (--samples) only, not to --data");
    const fs::path& dir = source_.data;
    if (is_file(dir) && dir.extension() == ".npy") {
        open_tokens();
        return;
    }
    if (!is_dir(dir))
        throw InputError(cat(dir.string(),
                             ": --data must be a directory (of .npz files, of input "
                             "files NAME.npy / input_0.pb, or of folders of them) or a "
                             "token-id .npy file"));
    entries_ = sorted_entries(
        dir, [](const fs::path& p) { return p.extension() == ".npz" && is_file(p); });
    if (!entries_.empty()) {
        kind_ = DataKind::Npz;
    } else if (holds_inputs(dir, feeds)) {
        kind_ = DataKind::InputFolder;
        entries_ = {dir};
    } else {
        entries_ = sorted_entries(
            dir, [&](const fs::path& p) { return is_dir(p) && holds_inputs(p, feeds); });
        if (entries_.empty())
            throw InputError(
                cat(dir.string(), ": holds no .npz files, no input files (",
                    feeds.empty() ? std::string("NAME") : safe_file_name(feeds[0].name),
                    ".npy or input_0.pb) and no folders of them"));
        kind_ = DataKind::SampleFolders;
    }
    count_ = entries_.size();
}

void Dataset::open_tokens() {
    const auto& feeds = feeds_;
    const std::string file = source_.data.string();
    if (feeds.size() != 1)
        throw InputError(cat(file,
                             ": a token-id .npy feeds a model with one input; this model "
                             "takes ",
                             feeds.size(), " (", input_list(feeds), ")"));
    const ValueInfo& in = feeds[0];
    if (in.type && in.type->is_tensor &&
        ((in.type->elem != DType::Undefined && in.type->elem != DType::I64) ||
         (in.type->shape && in.type->shape->size() != 2)))
        throw InputError(cat(file, ": token ids feed an int64 [1, T] input; input '", in.name,
                             "' is ", declared_string(in)));
    tokens_ = read_npy(source_.data);
    if (tokens_.dtype != DType::I64 || tokens_.shape.size() != 2)
        throw InputError(cat(file, ": expected an int64 [S, T] array of token ids, found ",
                             dtype_name(tokens_.dtype), " ", shape_string(tokens_.shape)));
    if (tokens_.shape[0] < 1 || tokens_.shape[1] < 1)
        throw InputError(
            cat(file, ": holds no token sequences (shape ", shape_string(tokens_.shape), ")"));
    kind_ = DataKind::TokenSequences;
    count_ = static_cast<size_t>(tokens_.shape[0]);
}

std::string Dataset::sample_name(size_t i) const {
    if (kind_ == DataKind::Random)
        return cat("random sample ", i, " (seed ", source_.seed + i, ")");
    if (kind_ == DataKind::TokenSequences) return cat("sequence ", i);
    return kind_ == DataKind::InputFolder ? entries_.at(i).string()
                                          : entries_.at(i).filename().string();
}

std::string Dataset::describe() const {
    switch (kind_) {
        case DataKind::Random:
            return cat(count_, " random sample", count_ == 1 ? "" : "s", " (seed ", source_.seed,
                       ")");
        case DataKind::Npz:
            return cat(count_, " .npz file", count_ == 1 ? "" : "s", " in ", source_.data.string());
        case DataKind::InputFolder:
            return cat("the input files in ", source_.data.string());
        case DataKind::TokenSequences:
            return cat(count_, " token sequence", count_ == 1 ? "" : "s", " of ", tokens_.shape[1],
                       " in ", source_.data.string());
        case DataKind::SampleFolders:
            return cat(count_, " sample folder", count_ == 1 ? "" : "s", " in ",
                       source_.data.string());
    }
    return {};
}

rt::NamedTensors Dataset::load(size_t i) const {
    if (i >= count_) throw InternalError(cat("dataset sample ", i, " of ", count_));
    if (kind_ == DataKind::Random) {
        if (!model_) throw InternalError("random samples need the model's executor");
        auto sample = rt::synthetic_inputs(*model_, source_.seed + i, source_.shapes);
        check_sample(sample, cat("random sample ", i));
        return sample;
    }
    if (kind_ == DataKind::TokenSequences) {
        const int64_t t = tokens_.shape[1];
        auto all = tokens_.values<int64_t>();
        std::vector<int64_t> row(all.begin() + static_cast<std::ptrdiff_t>(i) * t,
                                 all.begin() + static_cast<std::ptrdiff_t>(i + 1) * t);
        Tensor sample;
        sample.name = feeds_[0].name;
        sample.dtype = DType::I64;
        sample.shape = {1, t};
        std::vector<std::byte> bytes(row.size() * sizeof(int64_t));
        std::memcpy(bytes.data(), row.data(), bytes.size());
        sample.data = TensorData::owned(std::move(bytes));
        rt::NamedTensors out;
        out.emplace_back(sample.name, std::move(sample));
        check_sample(out, cat(source_.data.string(), ": sequence ", i));
        return out;
    }
    if (kind_ == DataKind::Npz) {
        auto sample = read_npz(entries_[i]);
        check_sample(sample, entries_[i].string());
        return sample;
    }
    return load_folder(entries_[i]);
}

rt::NamedTensors Dataset::load_folder(const fs::path& dir) const {
    const auto& feeds = feeds_;
    rt::NamedTensors sample;
    if (is_file(dir / "input_0.pb")) {
        for (size_t k = 0; is_file(dir / cat("input_", k, ".pb")); ++k) {
            fs::path file = dir / cat("input_", k, ".pb");
            Tensor t = read_onnx_tensor(file);
            bool named = std::any_of(feeds.begin(), feeds.end(),
                                     [&](const ValueInfo& v) { return v.name == t.name; });
            if (!named) {
                if (k >= feeds.size())
                    throw InputError(cat(file.string(), ": the model takes ", feeds.size(),
                                         " inputs (", input_list(feeds), "); this is input ", k));
                t.name = feeds[k].name;
            }
            std::string name = t.name;
            sample.emplace_back(name, std::move(t));
        }
        check_sample(sample, dir.string());
        return sample;
    }
    for (const auto& v : feeds) {
        for (const fs::path& file :
             {dir / (safe_file_name(v.name) + ".npy"), dir / (v.name + ".npy")}) {
            if (!is_file(file)) continue;
            Tensor t = read_npy(file);
            t.name = v.name;
            sample.emplace_back(v.name, std::move(t));
            break;
        }
    }
    check_sample(sample, dir.string());
    return sample;
}

void Dataset::check_sample(rt::NamedTensors& sample, const std::string& where) const {
    const auto& feeds = feeds_;
    std::set<std::string> seen;
    for (const auto& [name, tensor] : sample) {
        std::string member = kind_ == DataKind::Npz ? cat(where, ": member '", name, ".npy'")
                                                    : cat(where, ": input '", name, "'");
        auto it = std::find_if(feeds.begin(), feeds.end(),
                               [&](const ValueInfo& v) { return v.name == name; });
        if (it == feeds.end())
            throw InputError(cat(member, ": the model has no input '", name,
                                 "' (inputs: ", input_list(feeds), ")"));
        if (!seen.insert(name).second) throw InputError(cat(member, ": given twice"));
        if (auto why = mismatch(*it, tensor); !why.empty())
            throw InputError(cat(member, ": ", why));
    }
    for (const auto& v : feeds)
        if (!seen.count(v.name))
            throw InputError(
                cat(where, ": input '", v.name, "' (", declared_string(v), ") is missing"));
    // Feed order, so every consumer sees the same arrangement.
    std::stable_sort(sample.begin(), sample.end(), [&](const auto& a, const auto& b) {
        auto pos = [&](const std::string& n) {
            return std::find_if(feeds.begin(), feeds.end(),
                                [&](const ValueInfo& v) { return v.name == n; }) -
                   feeds.begin();
        };
        return pos(a.first) < pos(b.first);
    });
}

}  // namespace ep
