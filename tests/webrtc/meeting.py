"""A stand-in for an external video meeting, for tests/webrtc_bridge.rs: a WHIP endpoint and a
WHEP endpoint on aiortc, as a meeting server (Galène, LiveKit, ...) offers them.

POST /whip (Bearer --whip-token) takes the server's published audio and records its first
--record-seconds to --record (WAV, 48 kHz mono). POST /whep (Bearer --whep-token) answers the
server's subscription and plays a --tone Hz sine to it. Both answer 201 with the SDP answer and
a relative Location (/sessions/<id>), which DELETE ends. Every request and event is printed as
one JSON line, so the test sees what the server did.

The HTTP server is a few lines on asyncio streams (aiortc needs no web framework, and the test
needs nothing but these three requests), in the same event loop as the peer connections.
"""

import argparse
import asyncio
import json
import wave

import aioice.ice
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tone import RATE, Tone

MAX_BODY = 64 * 1024


def report(**fields):
    print(json.dumps(fields), flush=True)


async def record(track, path, seconds):
    """Writes the first `seconds` of `track` (after a second to settle) to `path`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    written = 0
    skipped = 0
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while written < seconds * RATE:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=10)
            except (asyncio.TimeoutError, MediaStreamError):
                break
            for mono in resampler.resample(frame):
                if skipped < RATE:
                    skipped += mono.samples
                    continue
                out.writeframes(bytes(mono.planes[0])[: mono.samples * 2])
                written += mono.samples
    report(step="recorded", samples=written)


class Meeting:
    def __init__(self, args):
        self.args = args
        self.sessions = {}
        self.next = 1
        self.recorded = False

    async def handle(self, reader, writer):
        try:
            status, headers, body = await self.respond(reader)
        except Exception as err:  # a broken request must not end the meeting
            report(step="error", error=repr(err))
            status, headers, body = 400, {}, b"bad request"
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        writer.close()

    async def respond(self, reader):
        request = await reader.readuntil(b"\r\n\r\n")
        lines = request.decode().split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length", "0")), MAX_BODY)
        body = await reader.readexactly(length) if length else b""
        token = headers.get("authorization", "")
        report(step="request", method=method, path=path, authorization=token,
               content_type=headers.get("content-type"))
        if method == "POST" and path in ("/whip", "/whep"):
            wanted = self.args.whip_token if path == "/whip" else self.args.whep_token
            if token != f"Bearer {wanted}":
                return 401, {}, b"wrong token"
            if headers.get("content-type") != "application/sdp":
                return 415, {}, b"not SDP"
            answer, session = await self.open(path[1:], body.decode())
            return 201, {"Content-Type": "application/sdp",
                         "Location": f"/sessions/{session}"}, answer.encode()
        if method == "DELETE" and path.startswith("/sessions/"):
            session = path.rsplit("/", 1)[1]
            pc = self.sessions.pop(session, None)
            report(step="delete", session=session, known=pc is not None)
            if pc is None:
                return 404, {}, b""
            await pc.close()
            return 200, {}, b""
        return 404, {}, b"no such endpoint"

    async def open(self, kind, offer):
        # No ICE servers: otherwise aiortc asks a public STUN server for a reflexive candidate.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = f"{kind}-{self.next}"
        self.next += 1
        pc.on("connectionstatechange",
              lambda: report(step=f"{kind}-state", state=pc.connectionState))
        if kind == "whip":
            @pc.on("track")
            def on_track(track):
                if not self.recorded:
                    self.recorded = True
                    asyncio.ensure_future(
                        record(track, self.args.record, self.args.record_seconds))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if kind == "whep":
            pc.addTrack(Tone(self.args.tone))
        # aiortc gathers every candidate before it answers (no trickle ICE).
        await pc.setLocalDescription(await pc.createAnswer())
        self.sessions[session] = pc
        report(step=f"{kind}-open", session=session)
        return pc.localDescription.sdp, session


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, help="address:port")
    parser.add_argument("--whip-token", required=True)
    parser.add_argument("--whep-token", required=True)
    parser.add_argument("--tone", type=int, default=700)
    parser.add_argument("--record", required=True)
    parser.add_argument("--record-seconds", type=float, default=5)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    # One host candidate, on the listening address, as a meeting server (an SFU with one
    # public address) offers; aiortc would otherwise offer every address of the test's
    # namespace, and a dead meeting would take the server's ICE agent a pass per address.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]
    meeting = Meeting(args)
    server = await asyncio.start_server(meeting.handle, host, int(port), reuse_address=True)
    report(step="listening", listen=args.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
