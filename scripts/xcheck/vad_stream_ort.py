#!/usr/bin/env python3
"""Oracle: the Silero VAD streamed through ONNX Runtime over a data set's frames.

    vad_stream_ort.py MODEL DATA_DIR OUT_DIR [--threads 1]

Reads DATA_DIR/frame_*.npz in name order (scripts/make_vad_data.py), and feeds each frame's
`input` with `sr`, starting from zero states and carrying the model's own hn / cn from frame
to frame, as a streaming caller does. Writes to OUT_DIR
  frames.npy [F, 1, 512] float32   the frames, in order (for the runtime under test)
  prob.npy   [F] float32           the speech probability of every frame
  hn.npy, cn.npy [2, 1, 64]        the states after the last frame
and prints ONNX Runtime's p50 latency per frame in ms.
"""
import argparse
import glob
import os
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    files = sorted(glob.glob(os.path.join(a.data, "frame_*.npz")))
    if not files:
        raise SystemExit(f"{a.data}: no frame_*.npz")
    frames, probs, times = [], [], []
    h = np.zeros((2, 1, 64), np.float32)
    c = np.zeros((2, 1, 64), np.float32)
    for f in files:
        z = np.load(f)
        frames.append(z["input"])
        start = time.perf_counter()
        prob, h, c = sess.run(None, {"input": z["input"], "sr": z["sr"], "h": h, "c": c})
        times.append(time.perf_counter() - start)
        probs.append(float(prob.reshape(-1)[0]))
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "frames.npy"), np.stack(frames).astype(np.float32))
    np.save(os.path.join(a.out, "prob.npy"), np.array(probs, np.float32))
    np.save(os.path.join(a.out, "hn.npy"), h)
    np.save(os.path.join(a.out, "cn.npy"), c)
    print(f"{len(files)} frames, ORT p50 {1e3 * float(np.median(times)):.3f} ms per frame")


if __name__ == "__main__":
    main()
