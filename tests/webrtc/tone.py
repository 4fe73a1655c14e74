"""The sine tone the WebRTC test scripts (client.py, meeting.py) send as their microphone."""

import asyncio
import fractions
import math
import time

import av
from aiortc.mediastreams import MediaStreamTrack

RATE = 48000
FRAME = 960  # 20 ms


class Tone(MediaStreamTrack):
    """A sine at `freq` Hz, 0.4 of full scale, 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self, freq):
        super().__init__()
        self.freq = freq
        self.sent = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        step = 2 * math.pi * self.freq / RATE
        samples = bytearray()
        for i in range(self.sent, self.sent + FRAME):
            samples += int(13107 * math.sin(step * i)).to_bytes(2, "little", signed=True)
        frame.planes[0].update(bytes(samples))
        frame.sample_rate = RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame
