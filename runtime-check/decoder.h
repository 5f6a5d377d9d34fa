// A KV-cache decoder driven token by token: the interface ONNX Runtime GenAI's model
// builder writes (and scripts/make_decoder.py):
//   inputs   input_ids [batch, sequence] int64, attention_mask [batch, total] int64
//            (optional), position_ids [batch, sequence] int64 (optional),
//            past_key_values.N.key / .value [batch, kv_heads, past, head_size] float
//   outputs  logits [batch, sequence, vocab], present.N.key / .value [batch, kv_heads,
//            total, head_size]
// The convention (docs/decoder.md): batch 1; prefill feeds P tokens with an empty past
// (past length 0) and attention_mask ones [1, P]; each decode step feeds one token with
// past = the previous run's present.* and attention_mask ones [1, P + step + 1];
// position_ids, when the graph has it, are the past length plus the index in the step.
//
// The cache: when every past_key_values.* input is read only by a com.microsoft
// GroupQueryAttention (its past_key / past_value) whose present_key / present_value is the
// matching present.* output, the session keeps ONNX Runtime GenAI's shared past / present
// buffer: one [1, kv_heads, capacity, head_size] tensor per input, capacity the run's
// maximum length, fed as past every step; the attention writes the step's rows into it in
// place and returns it as present (no per-step allocation or copy of the past). Other
// graphs (a plain Concat of past and the new rows) get present back and feed it as the
// next past.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime-check/executor.h"

namespace ep::rt {

struct KvCachePair {
    std::string past;     // "past_key_values.0.key"
    std::string present;  // "present.0.key"
    int64_t heads = 0;    // dimension 1 of the past input
    int64_t head_size = 0;
};

struct DecoderInterface {
    std::string input_ids = "input_ids";
    bool attention_mask = false;
    bool position_ids = false;
    std::vector<KvCachePair> cache;  // every past_key_values.* input with its present.*
    // Every past is GroupQueryAttention's past input and its present that node's output:
    // the cache may live in one max-length buffer written in place (above).
    bool shared_buffer = false;
};

// The decoder interface of a model, or nullopt when it has no past_key_values.* input.
// Throws InputError naming the model's input or output when it has past inputs but is not
// a decoder this loop can drive: no input_ids, a past without its present.* output, a
// past input whose kv_heads / head_size dimensions are not fixed numbers, or another
// input the loop would not know how to feed.
[[nodiscard]] std::optional<DecoderInterface> decoder_interface(const Executor& executor);

// One decode sequence: holds the KV cache between runs.
class DecodeSession {
  public:
    // max_length: the most tokens the session will hold (prefill + steps), the shared
    // buffer's capacity; 0 or a smaller guess is fine (the buffer doubles when full).
    DecodeSession(Executor& executor, DecoderInterface interface, int64_t max_length = 0);
    // Feeds `tokens` (the prefill when first, then typically one token) and returns the
    // logits [tokens.size(), vocab] of these positions; the cache grows by tokens.size().
    [[nodiscard]] Tensor step(const std::vector<int64_t>& tokens);
    [[nodiscard]] int64_t position() const { return position_; }
    // The tensor fed as cache input i next step ([1, kv_heads, length, head_size]; with
    // the shared buffer, length is the capacity and rows from position() on are unused).
    [[nodiscard]] const Tensor& cache(size_t i) const { return past_.at(i); }

  private:
    // Shared buffer: makes room for `needed` rows, copying the held rows into a larger
    // buffer when full.
    void reserve(int64_t needed);

    Executor& executor_;
    DecoderInterface interface_;
    std::vector<Tensor> past_;  // one per interface_.cache entry
    int64_t position_ = 0;
    int64_t max_length_ = 0;
    int64_t capacity_ = 0;  // shared buffer: rows of every past_ tensor
};

// Teacher-forced logits of tokens[0, prefill + steps): one prefill run of `prefill`
// tokens, then `steps` single-token runs. Returns [prefill + steps, vocab].
[[nodiscard]] Tensor decode_logits(Executor& executor, const DecoderInterface& interface,
                                   const std::vector<int64_t>& tokens, int64_t prefill,
                                   int64_t steps);

}  // namespace ep::rt
