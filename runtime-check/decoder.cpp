#include "runtime-check/decoder.h"

#include <algorithm>
#include <cstring>

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
    return di;
}

DecodeSession::DecodeSession(Executor& executor, DecoderInterface interface)
    : executor_(executor), interface_(std::move(interface)) {
    for (const auto& pair : interface_.cache) {
        Tensor t;
        t.name = pair.past;
        t.dtype = DType::F32;
        t.shape = {1, pair.heads, 0, pair.head_size};
        t.data = TensorData::owned({});
        past_.push_back(std::move(t));
    }
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
    for (size_t i = 0; i < past_.size(); ++i)
        feeds.emplace_back(interface_.cache[i].past, std::move(past_[i]));
    auto outputs = executor_.run(feeds);
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
        if (p.shape.size() != 4 || p.shape[2] != position_ + n)
            throw InputError(cat("decoder output '", interface_.cache[i].present, "' has shape ",
                                 shape_string(p.shape), ", expected [1, ",
                                 interface_.cache[i].heads, ", ", position_ + n, ", ",
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
    DecodeSession session(executor, interface);
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
