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
    DecodeSession(Executor& executor, DecoderInterface interface);
    // Feeds `tokens` (the prefill when first, then typically one token) and returns the
    // logits [tokens.size(), vocab] of these positions; the cache grows by tokens.size().
    [[nodiscard]] Tensor step(const std::vector<int64_t>& tokens);
    [[nodiscard]] int64_t position() const { return position_; }

  private:
    Executor& executor_;
    DecoderInterface interface_;
    std::vector<Tensor> past_;  // one per interface_.cache entry
    int64_t position_ = 0;
};

// Teacher-forced logits of tokens[0, prefill + steps): one prefill run of `prefill`
// tokens, then `steps` single-token runs. Returns [prefill + steps, vocab].
[[nodiscard]] Tensor decode_logits(Executor& executor, const DecoderInterface& interface,
                                   const std::vector<int64_t>& tokens, int64_t prefill,
                                   int64_t steps);

}  // namespace ep::rt
