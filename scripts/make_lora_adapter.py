"""A seeded LoRA adapter for stories260k in PEFT's layout, made without torch.

Writes OUT/adapter_config.json and OUT/adapter_model.safetensors as PEFT's
`save_pretrained` does for a LoraConfig: tensors
"base_model.model.<module>.lora_A.weight" [r, in] and "...lora_B.weight" [out, r] (float32).

The modules are each layer's query, value and FFN-down projections. `--naming` picks the
module paths: "hf" the Hugging Face Llama paths of ../shared/models/stories260k/model.safetensors
("model.layers.0.self_attn.q_proj"), "llama2c" the llama2.c paths that name the
initializers of its model.onnx ("layers.0.attention.wq" -> "layers.0.attention.wq.weight_T").
Both namings get the same numbers for the same seed, so merging either onto its model gives
the same weights.

The values stand in for a trained adapter: A ~ N(0, 1/in), B ~ N(0, 1), then B scaled so
that the merged delta (lora_alpha / r) * B @ A has a Frobenius norm of `--relative` times
the base weight's (5% by default): large enough that a wrong merge shows in the outputs,
small enough that the model still writes its stories.

usage: make_lora_adapter.py MODEL.safetensors OUT [--naming hf|llama2c] [--rank 4]
                            [--alpha 8] [--seed 1] [--relative 0.05]
"""

import argparse
import json
import os

import numpy as np
from safetensors.numpy import load_file, save_file

# module kind -> (Hugging Face path in a layer, llama2.c path in a layer)
MODULES = {
    "q": ("self_attn.q_proj", "attention.wq"),
    "v": ("self_attn.v_proj", "attention.wv"),
    "down": ("mlp.down_proj", "feed_forward.w2"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the base model.safetensors (Hugging Face Llama names)")
    ap.add_argument("out", help="the adapter directory to write")
    ap.add_argument("--naming", choices=["hf", "llama2c"], default="hf")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--relative", type=float, default=0.05)
    args = ap.parse_args()

    base = load_file(args.model)
    layers = sorted({int(k.split(".")[2]) for k in base if k.startswith("model.layers.")})
    rng = np.random.default_rng(args.seed)
    scale = args.alpha / args.rank
    tensors = {}
    for layer in layers:
        for kind in ("q", "v", "down"):
            hf, l2c = MODULES[kind]
            w = base[f"model.layers.{layer}.{hf}.weight"].astype(np.float64)  # [out, in]
            out_f, in_f = w.shape
            a = rng.standard_normal((args.rank, in_f)) / np.sqrt(in_f)
            b = rng.standard_normal((out_f, args.rank))
            delta = np.linalg.norm(scale * (b @ a))
            b *= args.relative * np.linalg.norm(w) / delta
            path = f"model.layers.{layer}.{hf}" if args.naming == "hf" else f"layers.{layer}.{l2c}"
            tensors[f"base_model.model.{path}.lora_A.weight"] = a.astype(np.float32)
            tensors[f"base_model.model.{path}.lora_B.weight"] = b.astype(np.float32)

    targets = [MODULES[k][0 if args.naming == "hf" else 1].split(".")[-1] for k in MODULES]
    config = {
        "alpha_pattern": {},
        "base_model_name_or_path": "stories260k",
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "lora_alpha": args.alpha,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": args.rank,
        "rank_pattern": {},
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(tensors, os.path.join(args.out, "adapter_model.safetensors"))


if __name__ == "__main__":
    main()
