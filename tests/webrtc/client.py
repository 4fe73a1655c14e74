"""A WHIP publisher and/or WHEP subscriber on aiortc, for tests/webrtc_whip.rs.

Publishes a sine tone into a room over WHIP, and/or listens to the room over WHEP and writes
what it hears to a WAV file (48 kHz mono, 16-bit). With both, the WHEP session names the WHIP
session (`?publisher=<id>`), as a client that publishes and listens does. Each HTTP exchange
is printed as one JSON line, so the test sees every status. At the end both sessions are
ended with DELETE (a client that just disappears is one the test kills).
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import wave

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tone import RATE, Tone


def report(**fields):
    print(json.dumps(fields), flush=True)


def http(method, url, token, body=None):
    """Status, Location (absolute) and body of one request."""
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/sdp")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            location = response.headers.get("Location")
            if location:
                location = urllib.parse.urljoin(url, location)
            return response.status, location, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, None, err.read().decode()


async def negotiate(pc, step, url, token):
    """Offers (all candidates gathered: aiortc does not trickle), POSTs, applies the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, location, body = await loop.run_in_executor(
        None, http, "POST", url, token, pc.localDescription.sdp.encode()
    )
    report(step=step, status=status, location=location, body=body if status != 201 else "")
    if status != 201:
        raise SystemExit(1)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return location


def watch(pc, name):
    pc.on("connectionstatechange", lambda: report(step=f"{name}-state", state=pc.connectionState))


async def record(track, path, stop_at):
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    frames = 0
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while time.monotonic() < stop_at:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, stop_at - time.monotonic()))
            except (asyncio.TimeoutError, MediaStreamError):
                break
            if frames == 0:
                # Wall-clock time of the recording's first sample, for the test to line it up.
                report(step="recording", at=time.time())
            for mono in resampler.resample(frame):
                out.writeframes(bytes(mono.planes[0])[: mono.samples * 2])
                frames += 1
    report(step="recorded", frames=frames)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--publish-token")
    parser.add_argument("--tone", type=int, default=700)
    parser.add_argument("--subscribe-token")
    parser.add_argument("--record")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()

    # No ICE servers: otherwise aiortc asks a public STUN server for a reflexive candidate.
    config = RTCConfiguration(iceServers=[])
    stop_at = time.monotonic() + args.seconds
    sessions = []
    publisher = None
    if args.publish_token:
        publisher = RTCPeerConnection(config)
        watch(publisher, "whip")
        publisher.addTransceiver(Tone(args.tone), direction="sendonly")
        url = f"{args.server}/whip/rooms/{args.room}"
        location = await negotiate(publisher, "whip", url, args.publish_token)
        sessions.append(("whip", location, args.publish_token))
    recording = None
    subscriber = None
    if args.subscribe_token:
        subscriber = RTCPeerConnection(config)
        watch(subscriber, "whep")
        subscriber.addTransceiver("audio", direction="recvonly")
        tracks = asyncio.Queue()
        subscriber.on("track", lambda track: tracks.put_nowait(track))
        url = f"{args.server}/whep/rooms/{args.room}"
        if publisher is not None:
            url += "?publisher=" + sessions[0][1].rsplit("/", 1)[1]
        location = await negotiate(subscriber, "whep", url, args.subscribe_token)
        sessions.append(("whep", location, args.subscribe_token))
        track = await asyncio.wait_for(tracks.get(), timeout=10)
        recording = asyncio.create_task(record(track, args.record, stop_at))
    await asyncio.sleep(max(0, stop_at - time.monotonic()))
    if recording is not None:
        await recording
    loop = asyncio.get_running_loop()
    for name, location, token in sessions:
        status, _, _ = await loop.run_in_executor(None, http, "DELETE", location, token)
        report(step=f"delete-{name}", status=status)
    for pc in (publisher, subscriber):
        if pc is not None:
            await pc.close()
    report(step="done")


if __name__ == "__main__":
    asyncio.run(main())
