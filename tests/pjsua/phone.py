"""A desk phone made of PJSIP (pjsua2): registers, answers calls by itself (or places one),
plays a WAV into the call as its microphone and records what it hears.

It authenticates with a plain-text password: pjsua2 then answers each challenge with the
algorithm the challenge names (MD5, SHA-256). `--algorithm` is the one the phone must have
used; the phone checks it in the REGISTER that got the 200 and fails otherwise. (pjsua2 2.15
ignores `AuthCredInfo.algoType` for accounts, so a stored SHA-256 HA1 cannot be used.)

Prints one line per event (`registered 200 algorithm=SHA-256`, `incoming call from ...`,
`call confirmed`, `call ended`); exits 0 after `--seconds` if it registered, 1 otherwise.
"""

import argparse
import re
import sys
import time

import pjsua2 as pj


def say(line):
    print(line, flush=True)


class Log(pj.LogWriter):
    """Keeps PJSIP's log (in a file if asked) and the last REGISTER it sent."""

    def __init__(self, path):
        super().__init__()
        self.file = open(path, "w") if path else None
        self.last_register = ""

    def write(self, entry):
        if self.file:
            self.file.write(entry.msg)
            self.file.flush()
        if "TX " in entry.msg and "\nREGISTER " in entry.msg:
            self.last_register = entry.msg

    def register_algorithm(self):
        auth = re.search(r"^Authorization:.*$", self.last_register, re.M | re.I)
        found = auth and re.search(r"algorithm=\"?([\w-]+)", auth.group(0), re.I)
        return found.group(1) if found else "none"


class Call(pj.Call):
    def __init__(self, phone, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(phone, call_id)
        self.phone = phone

    def onCallState(self, prm):
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            say("call confirmed")
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            say(f"call ended {info.lastStatusCode}")

    def onCallMediaState(self, prm):
        info = self.getInfo()  # kept: its media vector dies with it (SWIG)
        for i, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(i)
                self.phone.microphone.startTransmit(audio)
                audio.startTransmit(self.phone.recorder)
                say("audio active")


class Phone(pj.Account):
    def __init__(self, args, log):
        super().__init__()
        self.args = args
        self.log = log
        self.registered = False
        self.calls = []  # pjsua2 calls die with their Python object
        self.microphone = pj.AudioMediaPlayer()
        self.microphone.createPlayer(args.play)  # loops
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(args.record)

    def onRegState(self, prm):
        if prm.code == 200 and prm.expiration > 0:
            algorithm = self.log.register_algorithm()
            say(f"registered {prm.code} algorithm={algorithm}")
            self.registered = algorithm.upper() == self.args.algorithm.upper()
            if not self.registered:
                say(f"registration used {algorithm}, not {self.args.algorithm}")
            if self.args.call and not self.calls:
                call = Call(self)
                call.makeCall(self.args.call, pj.CallOpParam(True))
                self.calls.append(call)
        elif prm.code != 200:
            say(f"registration failed {prm.code} {prm.reason}")

    def onIncomingCall(self, prm):
        call = Call(self, prm.callId)
        self.calls.append(call)
        say(f"incoming call from {call.getInfo().remoteUri}")
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True, help="IP address for SIP and RTP")
    parser.add_argument("--port", type=int, default=5060)
    parser.add_argument("--server", required=True, help="registrar host[:port]")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--realm", default="amtsleitung")
    parser.add_argument("--algorithm", default="SHA-256", choices=["SHA-256", "MD5"])
    parser.add_argument("--play", required=True, help="WAV played into calls")
    parser.add_argument("--record", required=True, help="WAV of what the phone hears")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--call", help="URI to call once registered")
    parser.add_argument("--log", help="file for PJSIP's own log (SIP messages)")
    args = parser.parse_args()

    log = Log(args.log)
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0  # events are polled below, in this thread
    config.uaConfig.mainThreadOnly = True
    config.logConfig.writer = log
    config.logConfig.level = 5
    config.logConfig.consoleLevel = 5
    config.medConfig.clockRate = 8000
    config.medConfig.sndClockRate = 8000
    ep.libInit(config)
    ep.audDevManager().setNullDev()
    # A narrowband phone: PCMU only, so the server relays the caller's packets as they come.
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)
    sip = pj.TransportConfig()
    sip.boundAddress = args.bind
    sip.port = args.port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, sip)
    ep.libStart()

    account = pj.AccountConfig()
    account.idUri = f"sip:{args.user}@{args.server.split(':')[0]}"
    account.regConfig.registrarUri = f"sip:{args.server}"
    account.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", args.realm, args.user, pj.PJSIP_CRED_DATA_PLAIN_PASSWD, args.password)
    )
    account.mediaConfig.transportConfig.boundAddress = args.bind
    account.mediaConfig.transportConfig.port = 40000
    phone = Phone(args, log)
    phone.create(account)

    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        ep.libHandleEvents(20)
    ep.hangupAllCalls()
    ep.libHandleEvents(200)
    registered = phone.registered
    # Calls and the account must go before the library: their destructors call into it.
    phone.calls.clear()
    phone.shutdown()
    del phone
    ep.libDestroy()
    sys.exit(0 if registered else 1)


if __name__ == "__main__":
    main()
