#!/usr/bin/env python3
"""Speech quality for tests/quality.rs: PESQ (ITU-T P.862) of every codec path.

prepare SPEECH DIR
    Levels the speech (active-speech RMS at -20 dBov, where the mixer's AGC leaves a talker
    alone) and writes into DIR each talker's microphone file at its codec's rate
    (mic-8000.wav, mic-16000.wav mono, mic-48000.wav stereo, as baresip's aufile wants them):
    a lead-in of silence, the speech once, a short tail. Also the references ref-8000.wav and
    ref-16000.wav (the speech with short pauses around it), for narrow- and wide-band PESQ.
score DIR SPEAKER LISTENER RECORDING
    SPEAKER and LISTENER are codecs (pcmu, pcma, g722, opus). Finds the reference in the
    listener's recording (cross-correlation) and prints JSON: PESQ of that stretch (narrow-band
    for 8 kHz listeners, wide-band at 16 kHz for G.722 and Opus listeners), and the path's
    codec-only ceiling: the talker's microphone file through the speaker's codec (with the
    settings the talker's baresip uses) and then the listener's (the codec once when they
    are the same), coded by ffmpeg, an implementation independent of baresip and of the
    server, scored the same way.
"""

import json
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np
from pesq import pesq
from scipy.signal import resample_poly

TARGET_DBOV = -20.0
LEAD_S = 3.5
TAIL_S = 1.5
REF_PAD_S = 0.5
# The speech must start after this point of the recording (joining tones come before it).
SETTLE_S = 1.0

# Codec -> (its clock rate, what ffmpeg codes it with, container, channels as baresip sends).
CODECS = {
    "pcmu": (8000, ["-c:a", "pcm_mulaw"], "wav", 1),
    "pcma": (8000, ["-c:a", "pcm_alaw"], "wav", 1),
    # 64 kbit/s, the only G.722 mode baresip (and the server) use.
    "g722": (16000, ["-c:a", "g722"], "g722", 1),
    # libopus with libopus's own bitrate choice, 20 ms frames, VoIP mode: what baresip's opus
    # module and the server's encoder (bitrate "auto") both do by default.
    "opus": (48000, ["-c:a", "libopus", "-application", "voip", "-frame_duration", "20"], "ogg", 2),
}
# How the talkers' baresips code, where that differs from the above: tests/support's baresip
# expects 10 % loss (opus_packet_loss 10), so its Opus encoder spends bits on in-band FEC.
# The ceiling of a path is the codecs as its clients use them: without this the Opus
# talker's was 4.53 where a direct baresip call gives 4.38 (issue 13's own figure), and the
# room was held to a bar its talker's own encoder does not reach. The listeners' stage
# stays at libopus's defaults: the server's encoder must keep up with those.
TALKER_OPTIONS = {"opus": ["-fec", "1", "-packet_loss", "10"]}
# ffmpeg's own Opus decoder misreads streams with in-band FEC (half the level, PESQ 1.0):
# libopus decodes them, as baresip and the server do.
DECODER_OPTIONS = {"opus": ["-c:a", "libopus"]}
WIDE_BAND = {"g722", "opus"}


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        if width != 2:
            raise SystemExit(f"{path}: {8 * width}-bit samples, want 16")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, channels)[:, 0].astype(np.float64), rate


def write_wav(path, samples, rate, channels=1):
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    if channels == 2:
        pcm = np.repeat(pcm, 2)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def resample(x, rate, to):
    if rate == to:
        return x
    g = np.gcd(rate, to)
    return resample_poly(x, to // g, rate // g)


def active_rms_dbov(x, rate):
    frame = rate // 50
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
    active = levels[levels > levels.max() - 30]
    return 10 * np.log10(np.mean(10 ** (active / 10)))


def prepare(speech_path, out):
    x, rate = read_wav(speech_path)
    x = x * 10 ** ((TARGET_DBOV - active_rms_dbov(x, rate)) / 20)
    for to, channels in ((8000, 1), (16000, 1), (48000, 2)):
        y = resample(x, rate, to)
        mic = np.concatenate([np.zeros(int(LEAD_S * to)), y, np.zeros(int(TAIL_S * to))])
        write_wav(os.path.join(out, f"mic-{to}.wav"), mic, to, channels)
        if to != 48000:
            pad = np.zeros(int(REF_PAD_S * to))
            write_wav(os.path.join(out, f"ref-{to}.wav"), np.concatenate([pad, y, pad]), to)


def ffmpeg(*args):
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def through_codec(codec, wav_in, work, talker=False):
    """wav_in coded (as a talker's client does, when `talker`) and decoded by ffmpeg; returns
    the decoded WAV (at the codec's rate)."""
    rate, encoder, container, channels = CODECS[codec]
    if talker:
        encoder = encoder + TALKER_OPTIONS.get(codec, [])
    coded = os.path.join(work, f"{codec}.{container}")
    decoded = os.path.join(work, f"{codec}-dec.wav")
    # soxr: a transparent rate change, so that the ceiling is the codecs' and nothing else's.
    # It resamples to float: converting to 16 bits itself, soxr dithers at random, and the
    # ceilings then differ from run to run (by up to 0.02).
    ffmpeg(
        "-i", wav_in, "-af", "aresample=resampler=soxr:precision=28,aformat=sample_fmts=flt",
        "-ar", str(rate), "-ac", str(channels), *encoder, "-f", container, coded,
    )
    ffmpeg(*DECODER_OPTIONS.get(codec, []), "-i", coded, "-ar", str(rate), "-c:a", "pcm_s16le", decoded)
    return decoded


def find(ref, rec, rate, settle_s):
    """The stretch of rec that best matches ref (normalised cross-correlation)."""
    n = len(ref)
    if len(rec) < n:
        raise SystemExit("recording shorter than the reference")
    size = 1 << int(np.ceil(np.log2(len(rec) + n)))
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[: len(rec) - n + 1]
    cum = np.concatenate([[0.0], np.cumsum(rec**2)])
    energy = np.sqrt(np.maximum(cum[n:] - cum[:-n], 1e-9) * np.sum(ref**2))
    normalised = corr / energy
    normalised[: int(settle_s * rate)] = -1
    lag = int(np.argmax(normalised))
    return rec[lag : lag + n], lag / rate, float(normalised[lag])


def mos(ref_dir, listener, wav, settle_s):
    """PESQ of the reference found in wav, in the listener's band; and where and how well."""
    wide = listener in WIDE_BAND
    rate = 16000 if wide else 8000
    ref, _ = read_wav(os.path.join(ref_dir, f"ref-{rate}.wav"))
    rec, rec_rate = read_wav(wav)
    rec = resample(rec, rec_rate, rate)
    segment, at, correlation = find(ref, rec, rate, settle_s)
    return float(pesq(rate, ref, segment, "wb" if wide else "nb")), at, correlation


def ceiling(ref_dir, speaker, listener):
    with tempfile.TemporaryDirectory() as work:
        mic = os.path.join(ref_dir, f"mic-{CODECS[speaker][0]}.wav")
        coded = through_codec(speaker, mic, work, talker=True)
        if listener != speaker:
            coded = through_codec(listener, coded, work)
        return mos(ref_dir, listener, coded, 0.0)[0]


def score(ref_dir, speaker, listener, recording):
    value, at, correlation = mos(ref_dir, listener, recording, SETTLE_S)
    result = {
        "pesq": value,
        "ceiling": ceiling(ref_dir, speaker, listener),
        "mode": "wb" if listener in WIDE_BAND else "nb",
        "found_at_s": at,
        "correlation": correlation,
    }
    print(json.dumps(result))


def main(argv):
    if len(argv) == 4 and argv[1] == "prepare":
        prepare(argv[2], argv[3])
    elif len(argv) == 6 and argv[1] == "score" and argv[3] in CODECS and argv[4] in CODECS:
        score(argv[2], argv[3], argv[4], argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
