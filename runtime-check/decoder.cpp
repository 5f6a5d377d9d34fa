#include "runtime-check/decoder.h"

#include <algorithm>
#include <cstring>

#include "ir/checked.h"
#include "ir/error.h"

namespace ep::rt {
namespace {

constexpr std::string_view kPastPrefix = "past_key_values.";
constexpr std::string_view kPresentPrefix = "present.";

Tensor i64_tensor(std::string name, std::vector<int64_t> shape,
                  const std::vector<int64_t>& values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = DType::I64;
    t.shape = std::move(shape);
    std::vector<std::byte> bytes(values.size() * sizeof(int64_t));
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

// A fixed dimension of a past input's declared shape, or an InputError naming it.
int64_t fixed_dim(const ValueInfo& info, size_t axis, const char* what) {
    if (!info.type || !info.type->shape || info.type->shape->size() != 4)
        throw InputError(cat("decoder input '", info.name,
                             "': expected rank 4 [batch, kv_heads, past, head_size]"));
    const auto& d = (*info.type->shape)[axis];
    if (!d.value || *d.value < 1)
        throw InputError(cat("decoder input '", info.name, "': ", what, " (dimension ", axis,
                             ") must be a fixed number to start an empty cache"));
    return *d.value;
}

// Whether every cache input is read once, as past_key (input 3) / past_value (4) of a
// com.microsoft GroupQueryAttention whose present_key (output 1) / present_value (2) is
// the matching present.* output, which nothing reads: then that node sees the past buffer
// and nothing else does, so it may be a max-length buffer written in place.
bool attention_owns_cache(const Graph& graph, const std::vector<KvCachePair>& cache) {
    for (const auto& pair : cache) {
        const Node* reader = nullptr;
        size_t index = 0, reads = 0;
        bool present_read = false;
        for_each_graph(graph, [&](const Graph& g) {
            for (const auto& node : g.nodes)
                for (size_t k = 0; k < node.inputs.size(); ++k) {
                    if (node.inputs[k] == pair.past) {
                        ++reads;
                        reader = &node;
                        index = k;
                    }
                    present_read = present_read || node.inputs[k] == pair.present;
                }
        });
        if (reads != 1 || present_read || reader->op_type != "GroupQueryAttention" ||
            reader->domain != "com.microsoft" || (index != 3 && index != 4))
            return false;
        const size_t out = index - 2;  // past_key -> present_key, past_value -> present_value
        if (reader->outputs.size() <= out || reader->outputs[out] != pair.present) return false;
    }
    return true;
}

}  // namespace

std::optional<DecoderInterface> decoder_interface(const Executor& executor) {
    DecoderInterface di;
    bool has_ids = false;
    std::vector<std::string> unknown;
    for (const auto& in : executor.inputs()) {
        if (in.name.rfind(kPastPrefix, 0) == 0) {
            KvCachePair pair;
            pair.past = in.name;
            pair.present = cat(kPresentPrefix, in.name.substr(kPastPrefix.size()));
            pair.heads = fixed_dim(in, 1, "kv_heads");
            pair.head_size = fixed_dim(in, 3, "head_size");
            di.cache.push_back(std::move(pair));
        } else if (in.name == "input_ids") {
            has_ids = true;
        } else if (in.name == "attention_mask") {
            di.attention_mask = true;
        } else if (in.name == "position_ids") {
            di.position_ids = true;
        } else {
            unknown.push_back(in.name);
        }
    }
    if (di.cache.empty()) return std::nullopt;
    if (!has_ids)
        throw InputError("decoder: the model has past_key_values.* inputs but no 'input_ids'");
    if (!unknown.empty())
        throw InputError(cat("decoder: input '", unknown.front(),
                             "' is none of input_ids, attention_mask, position_ids, "
                             "past_key_values.*: the decode loop cannot feed it"));
    for (const auto& pair : di.cache) {
        const auto& outs = executor.outputs();
        if (std::none_of(outs.begin(), outs.end(),
                         [&](const ValueInfo& o) { return o.name == pair.present; }))
            throw InputError(cat("decoder input '", pair.past, "' has no output '", pair.present,
                                 "' to take the next step's cache from"));
    }
    const auto& outs = executor.outputs();
    if (std::none_of(outs.begin(), outs.end(),
                     [](const ValueInfo& o) { return o.name == "logits"; }))
        throw InputError("decoder: the model has past_key_values.* inputs but no 'logits' output");
    di.shared_buffer = attention_owns_cache(executor.model().graph, di.cache);
    return di;
}

DecodeSession::DecodeSession(Executor& executor, DecoderInterface interface, int64_t max_length)
    : executor_(executor), interface_(std::move(interface)), max_length_(max_length) {
    for (const auto& pair : interface_.cache) {
        Tensor t;
        t.name = pair.past;
        t.dtype = DType::F32;
        t.shape = {1, pair.heads, 0, pair.head_size};
        t.data = TensorData::owned({});
        past_.push_back(std::move(t));
    }
}

void DecodeSession::reserve(int64_t needed) {
    if (needed <= capacity_) return;
    const int64_t capacity = std::max({needed, 2 * capacity_, max_length_});
    for (size_t i = 0; i < past_.size(); ++i) {
        const auto& pair = interface_.cache[i];
        auto bytes =
            checked_mul(static_cast<uint64_t>(pair.heads), static_cast<uint64_t>(capacity));
        if (bytes) bytes = checked_mul(*bytes, static_cast<uint64_t>(pair.head_size));
        if (bytes) bytes = checked_mul(*bytes, sizeof(float));
        if (!bytes || *bytes > (uint64_t{1} << 40))
            throw InputError(cat("decoder input '", pair.past, "': a cache of ", capacity,
                                 " positions is too large"));
        Tensor t;
        t.name = pair.past;
        t.dtype = DType::F32;
        t.shape = {1, pair.heads, capacity, pair.head_size};
        t.data = TensorData::uninitialized(static_cast<size_t>(*bytes));
        auto* dst = reinterpret_cast<float*>(t.data.mutable_bytes().data());
        std::fill(dst, dst + *bytes / 4, 0.0f);
        // The rows held so far, head by head (each head's rows are contiguous).
        const auto* src = reinterpret_cast<const float*>(past_[i].data.bytes().data());
        const int64_t row = pair.head_size, held = capacity_ > 0 ? position_ : 0;
        for (int64_t h = 0; h < pair.heads; ++h)
            std::copy(src + h * capacity_ * row, src + (h * capacity_ + held) * row,
                      dst + h * capacity * row);
        past_[i] = std::move(t);
    }
    capacity_ = capacity;
}

Tensor DecodeSession::step(const std::vector<int64_t>& tokens) {
    if (tokens.empty()) throw InputError("decoder: a step needs at least one token");
    const auto n = static_cast<int64_t>(tokens.size());
    NamedTensors feeds;
    feeds.emplace_back(interface_.input_ids, i64_tensor(interface_.input_ids, {1, n}, tokens));
    if (interface_.attention_mask) {
        std::vector<int64_t> ones(static_cast<size_t>(position_ + n), 1);
        feeds.emplace_back("attention_mask",
                           i64_tensor("attention_mask", {1, position_ + n}, ones));
    }
    if (interface_.position_ids) {
        std::vector<int64_t> pos(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = position_ + i;
        feeds.emplace_back("position_ids", i64_tensor("position_ids", {1, n}, pos));
    }
    if (interface_.shared_buffer) reserve(position_ + n);
    // Moved in: with the shared buffer nothing else holds the cache's bytes, so the
    // attention writes the new rows into them without a copy.
    for (size_t i = 0; i < past_.size(); ++i)
        feeds.emplace_back(interface_.cache[i].past, std::move(past_[i]));
    auto outputs = executor_.run(std::move(feeds), {}, interface_.shared_buffer);
    Tensor logits;
    for (auto& [name, t] : outputs) {
        if (name == "logits") {
            logits = std::move(t);
            continue;
        }
        for (size_t i = 0; i < past_.size(); ++i)
            if (name == interface_.cache[i].present) past_[i] = std::move(t);
    }
    for (size_t i = 0; i < past_.size(); ++i) {
        auto& p = past_[i];
        p.name = interface_.cache[i].past;
        const int64_t length = interface_.shared_buffer ? capacity_ : position_ + n;
        if (p.shape != std::vector<int64_t>{1, interface_.cache[i].heads, length,
                                            interface_.cache[i].head_size} ||
            p.dtype != DType::F32)
            throw InputError(cat("decoder output '", interface_.cache[i].present, "' has shape ",
                                 shape_string(p.shape), ", expected f32 [1, ",
                                 interface_.cache[i].heads, ", ", length, ", ",
                                 interface_.cache[i].head_size, "]"));
    }
    position_ += n;
    if (logits.element_count() % n != 0)
        throw InputError(cat("decoder output 'logits' has shape ", shape_string(logits.shape),
                             " for ", n, " tokens"));
    logits.shape = {n, logits.element_count() / n};
    return logits;
}

Tensor decode_logits(Executor& executor, const DecoderInterface& interface,
                     const std::vector<int64_t>& tokens, int64_t prefill, int64_t steps) {
    if (prefill < 1 || steps < 0 || static_cast<int64_t>(tokens.size()) < prefill + steps)
        throw InputError(cat("decoder: ", tokens.size(), " tokens given, prefill ", prefill, " + ",
                             steps, " steps needs more"));
    DecodeSession session(executor, interface, prefill + steps);
    std::vector<float> rows;
    int64_t vocab = 0;
    for (int64_t s = 0; s <= steps; ++s) {
        auto first = tokens.begin() + (s == 0 ? 0 : prefill + s - 1);
        auto last = tokens.begin() + prefill + s;
        auto logits = session.step(std::vector<int64_t>(first, last));
        vocab = logits.shape[1];
        auto v = logits.to_floats();
        rows.insert(rows.end(), v.begin(), v.end());
    }
    return make_f32_tensor("logits", {prefill + steps, vocab}, rows);
}

}  // namespace ep::rt
