#!/usr/bin/env python3
"""PESQ scores for the path_quality example.

Arguments come in triples MODE REF DEG (MODE nb or wb, two WAV files at the same rate: 8 kHz
for nb, 16 kHz for wb). Prints one score per triple, one a line, in order. Needs numpy and
pesq (PyPI) in the interpreter that runs it.
"""

import sys
import wave

import numpy as np
from pesq import pesq


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float64), rate


def main(args):
    if len(args) % 3 != 0:
        raise SystemExit("usage: pesq_score.py (nb|wb REF DEG)...")
    for i in range(0, len(args), 3):
        mode, ref_path, deg_path = args[i : i + 3]
        ref, rate = read_wav(ref_path)
        deg, deg_rate = read_wav(deg_path)
        if rate != deg_rate:
            raise SystemExit(f"{ref_path} is {rate} Hz, {deg_path} is {deg_rate} Hz")
        print(f"{pesq(rate, ref, deg, mode):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
