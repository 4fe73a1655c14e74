#!/usr/bin/env python3
"""Speech quality for tests/quality.rs.

prepare SPEECH RATE TALKER REF
    Levels the speech (active-speech RMS at -20 dBov, where the mixer's AGC leaves a talker
    alone) and writes the talker's microphone file (the speech four times, between pauses)
    and the reference (the speech once, with short pauses around it).
score REF RECORDING
    Finds the reference in a listener's recording (cross-correlation, from 3 s on, so joining
    and settling are left out), and prints JSON: PESQ (ITU-T P.862,
    narrow-band) of that stretch against the reference, PESQ of the reference through one
    G.711 mu-law round trip (the codec alone), and where it was found.
"""

import json
import sys
import wave

import numpy as np
from pesq import pesq

TARGET_DBOV = -20.0
PAUSE_S = 1.0
REF_PAD_S = 0.5
REPEATS = 4
SETTLE_S = 3.0


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        if width != 2:
            raise SystemExit(f"{path}: {8 * width}-bit samples, want 16")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, channels)[:, 0].astype(np.float64), rate


def write_wav(path, samples, rate):
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def active_rms_dbov(x, rate):
    frame = rate // 50
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
    active = levels[levels > levels.max() - 30]
    return 10 * np.log10(np.mean(10 ** (active / 10)))


def prepare(speech_path, rate, talker_path, ref_path):
    x, got = read_wav(speech_path)
    if got != int(rate):
        raise SystemExit(f"{speech_path}: {got} Hz, want {rate}")
    x = x * 10 ** ((TARGET_DBOV - active_rms_dbov(x, got)) / 20)
    pause = np.zeros(int(PAUSE_S * got))
    pad = np.zeros(int(REF_PAD_S * got))
    write_wav(talker_path, np.concatenate([pause, *([x, pause] * REPEATS)]), got)
    write_wav(ref_path, np.concatenate([pad, x, pad]), got)


def ulaw_round_trip(x):
    """G.711 mu-law encode and decode (the classic segment algorithm, ITU-T G.711)."""
    s = np.clip(np.round(x), -32768, 32767).astype(np.int32)
    sign = s < 0
    mag = np.minimum(np.abs(s), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    decoded = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -decoded, decoded).astype(np.float64)


def score(ref_path, rec_path):
    ref, rate = read_wav(ref_path)
    rec, rec_rate = read_wav(rec_path)
    if rate != rec_rate:
        raise SystemExit(f"reference at {rate} Hz, recording at {rec_rate} Hz")
    n = len(ref)
    if len(rec) < n:
        raise SystemExit("recording shorter than the reference")
    size = 1 << int(np.ceil(np.log2(len(rec) + n)))
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: len(rec) - n + 1]
    # Energy of each window of the recording, to normalise the correlation.
    cum = np.concatenate([[0.0], np.cumsum(rec**2)])
    energy = np.sqrt(np.maximum(cum[n:] - cum[:-n], 1e-9) * np.sum(ref**2))
    normalised = corr / energy
    # Skip the first seconds: the listener joins and the jitter buffer settles there.
    skip = int(SETTLE_S * rate)
    normalised[:skip] = -1
    lag = int(np.argmax(normalised))
    segment = rec[lag : lag + n]
    result = {
        "pesq": float(pesq(rate, ref, segment, "nb")),
        "codec_pesq": float(pesq(rate, ref, ulaw_round_trip(ref), "nb")),
        "found_at_s": lag / rate,
        "correlation": float(normalised[lag]),
    }
    print(json.dumps(result))


def main(argv):
    if len(argv) == 6 and argv[1] == "prepare":
        prepare(argv[2], int(argv[3]), argv[4], argv[5])
    elif len(argv) == 4 and argv[1] == "score":
        score(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
