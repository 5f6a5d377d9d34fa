"""Our merge-lora against PEFT's merge_and_unload() (issue 13's acceptance).

Oracle: pip `peft` + `transformers` + `torch` (CPU), listed in requirements-lora.txt beside
this script and installed into the running interpreter's environment when missing (never by
scripts/setup.sh: the default test suite does not need torch; the CTest test that calls this
script skips when torch is absent). PyPI's torch wheel for Linux pulls the CUDA runtime
packages too: about 3.2 GB downloaded, 5.2 GB installed.

What it does, in WORK (kept between runs: the base is built once):
  1. A GPT-2-shaped base the shared adapter (../shared/models/peft-gpt2-lora: r 8 on
     c_attn, SEQ_CLS, fan_in_fan_out) fits: transformers' GPT2Config with 768 wide, 12
     layers, 12 heads, a 512-token vocabulary and 64 positions (the adapter touches neither),
     6 labels, seeded random init; GPT2ForSequenceClassification written as
     base/model.safetensors (save_pretrained) and base/model.onnx (torch.onnx.export, the
     TorchScript exporter, opset 17, input_ids [1, 16]).
  2. Adapters: "lora" is the shared adapter; "rslora" and "dora" are made by PEFT with
     use_rslora / use_dora (r 8, alpha 16, c_attn, seeded; B not zero; DoRA's magnitude
     vector scaled by 1 + 0.1 N(0, 1) so it is not the base's norm).
  3. Per adapter: `edgepack compress` with a one-pass recipe {"pass": "merge-lora",
     "adapter": DIR} onto base/model.safetensors -> ours.safetensors, compared tensor by
     tensor with PEFT's merge_and_unload() state dict (max abs diff, goal <= 1e-6); and onto
     base/model.onnx -> ours.onnx, run in ONNX Runtime on seeded token ids vs the PyTorch
     merged model's logits (max abs diff, goal <= 1e-4).

Prints one JSON object (per adapter: safetensors_max_abs, onnx_max_abs (null when our run
failed, its message in errors), tensors compared, the limits) and exits 0 when every figure is within its goal, 1 when one is not, 2 on bad
usage, 77 when the oracle packages are missing and --no-install was given.

usage: lora_vs_peft.py --edgepack BIN --work DIR [--adapters lora,rslora,dora]
                       [--shared ../shared/models] [--no-install]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAFETENSORS_GOAL = 1e-6
ONNX_GOAL = 1e-4
SEQ = 16


def ensure_oracle(install):
    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if not install:
        print(f"oracle packages missing: {', '.join(missing)} "
              f"(pip install -r {os.path.join(HERE, 'requirements-lora.txt')})", file=sys.stderr)
        sys.exit(77)
    print(f"installing the oracle ({', '.join(missing)}) from requirements-lora.txt",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r",
                    os.path.join(HERE, "requirements-lora.txt")], check=True)


def gpt2_config(transformers):
    return transformers.GPT2Config(
        vocab_size=512, n_positions=64, n_embd=768, n_layer=12, n_head=12, num_labels=6,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, summary_first_dropout=0.0, use_cache=False)


def build_base(work):
    import torch
    import transformers

    out = os.path.join(work, "base")
    if os.path.exists(os.path.join(out, "model.onnx")):
        return out
    torch.manual_seed(0)
    model = transformers.GPT2ForSequenceClassification(gpt2_config(transformers)).eval()
    tmp = out + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    # The traced function returns the logits alone, and passes an all-ones attention mask
    # (without one, transformers looks for packed sequences with aten::diff, which the
    # exporter lacks).
    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            return self.m(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                          use_cache=False, return_dict=True).logits

    ids = torch.ones(1, SEQ, dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(Logits(model), (ids,), os.path.join(tmp, "model.onnx"), input_names=["input_ids"],
                          output_names=["logits"], opset_version=17, do_constant_folding=True,
                          dynamo=False)
    os.replace(tmp, out)
    return out


def load_base(base_dir):
    import transformers

    return transformers.GPT2ForSequenceClassification.from_pretrained(
        base_dir, attn_implementation="eager").eval()


def make_adapter(work, base_dir, kind):
    import peft
    import torch

    out = os.path.join(work, "adapter-" + kind)
    if os.path.exists(os.path.join(out, "adapter_model.safetensors")):
        return out
    torch.manual_seed({"rslora": 1, "dora": 2}[kind])
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn"], fan_in_fan_out=True,
                             task_type="SEQ_CLS", init_lora_weights=False,
                             use_rslora=kind == "rslora", use_dora=kind == "dora")
    model = peft.get_peft_model(load_base(base_dir), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    return out


def peft_merged(base_dir, adapter_dir):
    import peft

    model = peft.PeftModel.from_pretrained(load_base(base_dir), adapter_dir).eval()
    return model.merge_and_unload().eval()


def run_ours(edgepack, work, adapter_dir, source, output):
    recipe = os.path.join(work, "merge.json")
    with open(recipe, "w") as f:
        json.dump({"model": os.path.abspath(source), "output": os.path.abspath(output),
                   "passes": [{"pass": "merge-lora", "adapter": os.path.abspath(adapter_dir)}]},
                  f)
    r = subprocess.run([edgepack, "compress", recipe, "--quiet"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"edgepack compress exit {r.returncode}: {r.stderr.strip()}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edgepack", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--adapters", default="lora,rslora,dora")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared", "models"))
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    ensure_oracle(not args.no_install)

    import numpy as np
    import onnxruntime as ort
    import torch
    from safetensors.numpy import load_file

    torch.set_num_threads(2)
    os.makedirs(args.work, exist_ok=True)
    base_dir = build_base(args.work)
    rng = np.random.default_rng(7)
    ids = rng.integers(1, 512, size=(1, SEQ), dtype=np.int64)
    report = {"limits": {"safetensors_max_abs": SAFETENSORS_GOAL, "onnx_max_abs": ONNX_GOAL},
              "adapters": {}}
    ok = True
    for kind in args.adapters.split(","):
        if kind == "lora":
            adapter = os.path.join(args.shared, "peft-gpt2-lora")
        elif kind in ("rslora", "dora"):
            adapter = make_adapter(args.work, base_dir, kind)
        else:
            ap.error(f"unknown adapter {kind!r} (lora, rslora, dora)")
        merged = peft_merged(base_dir, adapter)
        want = {k: v.detach().numpy() for k, v in merged.state_dict().items()}

        entry = {"errors": []}
        report["adapters"][kind] = entry
        ours_st = os.path.join(args.work, f"ours-{kind}.safetensors")
        err = run_ours(args.edgepack, args.work, adapter,
                       os.path.join(base_dir, "model.safetensors"), ours_st)
        got = {} if err else load_file(ours_st)
        st_diff, compared, missing = (None if err else 0.0), 0, []
        for name, value in want.items():
            if err:
                break
            if name not in got:
                # tied or buffer entries save_pretrained leaves out of the checkpoint
                if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
                    continue
                missing.append(name)
                continue
            st_diff = max(st_diff, float(np.max(np.abs(got[name].astype(np.float64) - value))))
            compared += 1

        entry["errors"] += [err] if err else []
        ours_onnx = os.path.join(args.work, f"ours-{kind}.onnx")
        err = run_ours(args.edgepack, args.work, adapter, os.path.join(base_dir, "model.onnx"),
                       ours_onnx)
        entry["errors"] += [err] if err else []
        with torch.no_grad():
            t = torch.from_numpy(ids)
            torch_logits = merged(input_ids=t, attention_mask=torch.ones_like(t),
                                  use_cache=False).logits.numpy()
        onnx_diff = None
        if not err:
            session = ort.InferenceSession(ours_onnx, providers=["CPUExecutionProvider"])
            ort_logits = session.run(None, {"input_ids": ids})[0]
            onnx_diff = float(np.max(np.abs(ort_logits.astype(np.float64) - torch_logits)))

        entry.update({"safetensors_max_abs": st_diff, "tensors_compared": compared,
                      "missing_in_ours": missing, "onnx_max_abs": onnx_diff,
                      "logits_max_abs": float(np.max(np.abs(torch_logits)))})
        entry["ok"] = (not entry["errors"] and not missing and st_diff <= SAFETENSORS_GOAL
                       and onnx_diff <= ONNX_GOAL)
        ok = ok and entry["ok"]
    print(json.dumps(report, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
