// A Hugging Face llama checkpoint as llama.cpp expects it in a GGUF file: the tensor names,
// the Q/K row permutation and the hyper-parameter metadata convert_hf_to_gguf.py writes
// (docs/gguf.md, "llama.cpp's names and the Q/K permutation").
//
//   model.embed_tokens.weight                 -> token_embd.weight
//   model.layers.N.input_layernorm.weight     -> blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj   -> blk.N.attn_{q,k,v,output}   (q, k permuted)
//   model.layers.N.post_attention_layernorm   -> blk.N.ffn_norm
//   model.layers.N.mlp.{gate,up,down}_proj    -> blk.N.ffn_{gate,up,down}
//   model.norm.weight                         -> output_norm.weight
//   lm_head.weight                            -> output.weight
//
// The permutation moves whole rows (within each head, row 2i <- i, 2i + 1 <- head_dim/2 + i),
// so it applies to plain and to encoded tensors alike (an encoded axis-1 tensor stores one
// output row after another): quantized codes are kept as they are.
#pragma once

#include <filesystem>

#include "ir/ir.h"

namespace ep {

// `checkpoint`: a weights-only llama checkpoint with Hugging Face names; `config_json`: its
// config.json (model_type "llama"; hidden_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, intermediate_size, rms_norm_eps, rope_theta,
// max_position_embeddings, vocab_size). Returns the model renamed and permuted, with the
// GGUF metadata (general.architecture and llama.*, typed as gguf_value_json writes them) in
// front of the checkpoint's own. When tokenizer.json sits beside config.json, the
// tokenizer.* keys llama.cpp loads follow, as convert_hf_to_gguf.py writes them
// (docs/gguf.md, "The tokenizer"): a byte-level BPE (`model.type` "BPE") is
// tokenizer.ggml.model "gpt2" with tokens, token_type and merges; a BPE with
// `byte_fallback` is "llama" (LlamaHfVocab: tokens, scores -1000, token_type, <0xNN> as
// BYTE); ids up to config.json vocab_size, holes as "[PADi]"; added tokens marked special
// (or looking special, "<|...|>") are CONTROL, other added tokens USER_DEFINED; bos / eos /
// unk / sep / pad ids from tokenizer_config.json's NAME_token (else config.json's
// NAME_token_id), add_bos_token / add_eos_token from tokenizer_config.json (else the
// post-processor's template), the chat template from tokenizer_config.json or
// chat_template.jinja. tokenizer.ggml.pre is not written: the converter derives it from a
// hash of the tokenizer's output, which needs the tokenizer library (llama.cpp then uses
// its default pre-tokenizer and says so). Throws InputError naming config.json and the field, or
// the tensor without a llama.cpp name; nothing is returned half-converted. True when `config_json`
// exists and says model_type "llama" (anything unreadable: false; gguf_llama_from_hf then names the
// problem).
[[nodiscard]] bool is_llama_config(const std::filesystem::path& config_json);

[[nodiscard]] Model gguf_llama_from_hf(const Model& checkpoint,
                                       const std::filesystem::path& config_json);

}  // namespace ep
