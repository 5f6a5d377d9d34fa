#!/usr/bin/env python3
"""Writes an .npy array reshaped: reshape_npy.py IN.npy OUT.npy D0,D1,... (-1 allowed).

scripts/make_data.sh uses it to turn stories260k's ref_tokens.npy [T] into the [1, T]
token-id file that `edgepack validate --data` reads.
"""
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    shape = tuple(int(d) for d in sys.argv[3].split(","))
    np.save(sys.argv[2], np.load(sys.argv[1]).reshape(shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
