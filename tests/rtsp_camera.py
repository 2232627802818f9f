"""A small RTSP server that behaves as an IP camera, for the tests: real RTSP 1.0 (RFC 2326) over TCP, its RTP
(RFC 3550) interleaved on the same connection or sent over UDP, as FFmpeg's client asks.

It serves one H.264 stream (RFC 6184, packetization mode 1: one NAL unit per packet, FU-A fragments for larger
ones, the marker bit on an access unit's last packet) or H.265 (``hevc``: RFC 7798, FU fragments), and
optionally G.711 mu-law audio (PCMU, payload type 0), as surveillance cameras do. ``RtspCamera(video, audio)``
takes the access units as (Annex B bytes, pts in 1/90000 s) and the audio as (mu-law bytes, pts in 1/8000 s);
each session plays them from the start, paced at ``speed`` x real time, with RTP timestamps that start at a
random value (as a camera's do), then sends RTCP BYE (FFmpeg's client reads it as the end of the stream).
``live`` False serves a recording (an NVR's playback URL: the SDP gives its length); a camera's stream has no
length. ``drop_after`` closes the first session's connection after that many video access units, as a camera
that drops; ``stall_after`` stops sending then, the connection left open, as a camera that freezes. ``auth``
(user, password) answers every request but OPTIONS with 401 and a Digest challenge until the client answers it
right, as cameras do.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

MTU_PAYLOAD = 1400
H264_PT, PCMU_PT, AAC_PT = 96, 0, 97


def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (start codes 00 00 01 / 00 00 00 01 removed)."""
    units, i, n = [], 0, len(annexb)
    starts = []
    while i + 3 <= n:
        if annexb[i:i + 3] == b"\x00\x00\x01":
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = annexb[s:end].rstrip(b"\x00") if k + 1 < len(starts) else annexb[s:end]
        if unit:
            units.append(unit)
    return units


def h264_payloads(unit: bytes) -> list[bytes]:
    """RTP payloads for one NAL unit: itself, or FU-A fragments (RFC 6184 5.8) where it is too large."""
    if len(unit) <= MTU_PAYLOAD:
        return [unit]
    indicator = (unit[0] & 0xE0) | 28
    body = unit[1:]
    chunks = [body[i:i + MTU_PAYLOAD - 2] for i in range(0, len(body), MTU_PAYLOAD - 2)]
    out = []
    for k, chunk in enumerate(chunks):
        header = (unit[0] & 0x1F) | (0x80 if k == 0 else 0) | (0x40 if k == len(chunks) - 1 else 0)
        out.append(bytes([indicator, header]) + chunk)
    return out


def h265_payloads(unit: bytes) -> list[bytes]:
    """RTP payloads for one H.265 NAL unit: itself, or FU fragments (RFC 7798 4.4.3) where too large."""
    if len(unit) <= MTU_PAYLOAD:
        return [unit]
    kind = (unit[0] >> 1) & 0x3F
    header = bytes([(unit[0] & 0x81) | (49 << 1), unit[1]])
    body = unit[2:]
    chunks = [body[i:i + MTU_PAYLOAD - 3] for i in range(0, len(body), MTU_PAYLOAD - 3)]
    return [header + bytes([kind | (0x80 if k == 0 else 0) | (0x40 if k == len(chunks) - 1 else 0)]) + chunk
            for k, chunk in enumerate(chunks)]


def digest(user: str, password: str, realm: str, nonce: str, method: str, uri: str) -> str:
    """The response of HTTP Digest authentication without qop (RFC 2617 3.2.2), as RTSP cameras ask."""
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    return md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")


@dataclass
class Track:
    """One RTP stream of a session: its payload type, clock, SSRC and where its packets go."""
    pt: int
    clock: int
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    base: int = field(default_factory=lambda: random.getrandbits(31))
    channel: int | None = None  # TCP interleaved channel of RTP (RTCP: +1)
    udp: tuple[str, int] | None = None  # the client's RTP address (RTCP: port +1)

    def rtp(self, payload: bytes, ts: int, marker: bool) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        head = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | self.pt, self.seq,
                           (self.base + ts) & 0xFFFFFFFF, self.ssrc)
        return head + payload

    def report(self, ntp: float, ts: int) -> bytes:
        """A sender report (RTCP SR): the camera's wall clock ``ntp`` (s since 1900) at media time ``ts``,
        which is how a client puts its streams on one timeline."""
        sec = int(ntp)
        return struct.pack("!BBHIIIIII", 0x80, 200, 6, self.ssrc, sec, int((ntp - sec) * 2**32) & 0xFFFFFFFF,
                           (self.base + ts) & 0xFFFFFFFF, 0, 0)

    def bye(self, ntp: float, ts: int) -> bytes:
        """A compound RTCP packet, SR then BYE: the stream ends (RFC 3550 6.6; FFmpeg's client takes a BYE
        on every stream as the end, and drops RTCP packets under 12 bytes, as a lone BYE is)."""
        return self.report(ntp, ts) + struct.pack("!BBHI", 0x81, 203, 1, self.ssrc)


def encode_clip(src: str, frames: int, size: tuple[int, int], *, bframes: bool = False, audio: bool = False,
                rate: int | None = 25, codec_name: str = "libx264",
                ) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """The first ``frames`` frames of ``src`` at ``size`` as H.264 access units (Annex B, pts 1/90000: the
    source's times; the SPS declares ``rate`` fps, or with None the 90 kHz clock's 45000, as x264 does when
    told no rate) and, with ``audio``, its audio over the same time as 8 kHz mono mu-law, 20 ms a packet."""
    video: list[tuple[bytes, int]] = []
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height, codec.pix_fmt = size[0], size[1], "yuv420p"
    codec.time_base = Fraction(1, 90000)
    if rate:
        codec.framerate = Fraction(rate)
    codec.options = {"crf": "20", "preset": "fast", "bf": "2" if bframes else "0", "g": "25"} | (
        {"x264-params": "repeat-headers=1"} if codec_name == "libx264"
        else {"x265-params": "repeat-headers=1:log-level=error"})
    end = 0.0
    with av.open(src) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == frames:
                break
            g = f.reformat(width=size[0], height=size[1], format="yuv420p")
            g.pts, g.time_base = round(float(f.time) * 90000), codec.time_base
            end = float(f.time)
            video += [(bytes(p), int(p.pts)) for p in codec.encode(g)]
    video += [(bytes(p), int(p.pts)) for p in codec.encode(None)]
    sound: list[tuple[bytes, int]] = []
    if audio:
        with av.open(src) as c:
            if c.streams.audio:
                resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
                pcm = []
                for f in c.decode(audio=0):
                    if f.time is not None and f.time > end + 0.04:
                        break
                    pcm += [r.to_ndarray().reshape(-1) for r in resampler.resample(f)]
                samples = np.concatenate(pcm)[: int((end + 0.04) * 8000)]
                enc = av.CodecContext.create("pcm_mulaw", "w")
                enc.sample_rate, enc.format, enc.layout = 8000, "s16", "mono"
                for k in range(0, len(samples) - 159, 160):
                    frame = av.AudioFrame.from_ndarray(samples[k:k + 160].reshape(1, -1), format="s16",
                                                       layout="mono")
                    frame.sample_rate, frame.pts = 8000, k
                    sound += [(bytes(p), k) for p in enc.encode(frame)]
    return video, sound


def encode_aac(src: str, seconds: float, rate: int = 16000) -> tuple[list[tuple[bytes, int]], bytes]:
    """The first ``seconds`` of ``src``'s sound as raw AAC-LC mono at ``rate`` (FFmpeg's encoder): packets
    (bytes, pts in 1/rate; 1024 samples each) and the AudioSpecificConfig, as a camera's MPEG4-GENERIC
    stream carries them (RFC 3640)."""
    with av.open(src) as c:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        pcm = np.concatenate([r.to_ndarray().reshape(-1) for f in c.decode(audio=0)
                              for r in resampler.resample(f)])[: round(seconds * rate)]
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.format, enc.layout, enc.bit_rate = rate, "fltp", "mono", 48000
    enc.time_base = Fraction(1, rate)
    packets: list[tuple[bytes, int]] = []
    for k in range(0, len(pcm) - 1023, 1024):
        frame = av.AudioFrame.from_ndarray(pcm[k:k + 1024].reshape(1, -1).astype(np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        packets += [(bytes(p), int(p.pts)) for p in enc.encode(frame)]
    packets += [(bytes(p), int(p.pts)) for p in enc.encode(None)]
    return [(data, pts) for data, pts in packets if pts >= 0], bytes(enc.extradata)


class RtspCamera(threading.Thread):
    """Serves ``rtsp://127.0.0.1:PORT/cam`` until ``close()``; ``sessions`` counts the PLAYs. ``tcp``
    False: RTP over UDP only (461 to an interleaved SETUP), as old cameras."""

    def __init__(self, video: list[tuple[bytes, int]], audio: list[tuple[bytes, int]] | None = None, *,
                 speed: float = 4.0, drop_after: int | None = None, live: bool = True, hevc: bool = False,
                 auth: tuple[str, str] | None = None, stall_after: int | None = None, tcp: bool = True,
                 aac: tuple[bytes, int] | None = None):
        super().__init__(daemon=True, name="rtsp-camera")
        self.video, self.audio = video, audio or []
        self.speed, self.drop_after, self.live = speed, drop_after, live
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.sessions = 0
        self.requests: list[str] = []
        self.transports: list[str] = []  # the Transport header of each SETUP
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self._closed = threading.Event()
        self.hevc, self.auth, self.stall_after, self.tcp = hevc, auth, stall_after, tcp
        #: the audio is AAC (RFC 3640 AAC-hbr): its AudioSpecificConfig and sample rate; else G.711 mu-law
        self.aac = aac
        self.refused = 0  # requests answered 401 (no or wrong credentials)
        self._nonce = f"{random.getrandbits(64):016x}"
        units = nal_units(self.video[0][0])

        def b64(kind: int) -> str:
            unit = next(u for u in units if ((u[0] >> 1) & 0x3F if hevc else u[0] & 0x1F) == kind)
            return base64.b64encode(unit).decode()

        if hevc:
            self.fmtp = f"sprop-vps={b64(32)};sprop-sps={b64(33)};sprop-pps={b64(34)}"
        else:
            sps = base64.b64decode(b64(7))
            self.fmtp = (f"packetization-mode=1;profile-level-id={sps[1:4].hex()};"
                         f"sprop-parameter-sets={b64(7)},{b64(8)}")

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        self.udp.close()

    def sdp(self) -> str:
        lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=vsr test camera", "c=IN IP4 0.0.0.0", "t=0 0",
                 "a=control:*"]
        if not self.live:  # a recording (an NVR's playback): its length; a camera's stream has none
            end = max(pts for _, pts in self.video) / 90000 + 0.04
            lines.append(f"a=range:npt=0-{end:.3f}")
        lines += [f"m=video 0 RTP/AVP {H264_PT}",
                  f"a=rtpmap:{H264_PT} {'H265' if self.hevc else 'H264'}/90000",
                  f"a=fmtp:{H264_PT} {self.fmtp}", "a=control:trackID=0"]
        if self.audio and self.aac:
            config, rate = self.aac
            lines += [f"m=audio 0 RTP/AVP {AAC_PT}", f"a=rtpmap:{AAC_PT} MPEG4-GENERIC/{rate}/1",
                      f"a=fmtp:{AAC_PT} streamtype=5;profile-level-id=15;mode=AAC-hbr;config={config.hex()};"
                      "sizeLength=13;indexLength=3;indexDeltaLength=3", "a=control:trackID=1"]
        elif self.audio:
            lines += [f"m=audio 0 RTP/AVP {PCMU_PT}", f"a=rtpmap:{PCMU_PT} PCMU/8000", "a=control:trackID=1"]
        return "\r\n".join(lines) + "\r\n"

    def _serve(self, conn: socket.socket) -> None:
        audio = Track(AAC_PT, self.aac[1]) if self.aac else Track(PCMU_PT, 8000)
        tracks: list[Track] = [Track(H264_PT, 90000)] + ([audio] if self.audio else [])
        session = f"{random.getrandbits(32):08x}"
        lock = threading.Lock()
        buf = b""
        player: threading.Thread | None = None
        try:
            while not self._closed.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                    while buf.startswith(b"$") and len(buf) >= 4:  # interleaved RTCP from the client
                        size = struct.unpack("!H", buf[2:4])[0]
                        if len(buf) < 4 + size:
                            break
                        buf = buf[4 + size:]
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ")
                fields = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
                body_len = int(fields.get("content-length", 0))
                while len(buf) < body_len:
                    buf += conn.recv(65536)
                buf = buf[body_len:]
                self.requests.append(method)
                reply = {"CSeq": fields.get("cseq", "0")}
                body = ""
                if method != "OPTIONS" and not self._authorized(method, fields.get("authorization", "")):
                    self.refused += 1
                    self._send(conn, lock, (f"RTSP/1.0 401 Unauthorized\r\nCSeq: {reply['CSeq']}\r\n"
                                            f'WWW-Authenticate: Digest realm="cam", nonce="{self._nonce}"\r\n'
                                            "\r\n").encode())
                    continue
                if method == "OPTIONS":
                    reply["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
                elif method == "DESCRIBE":
                    body = self.sdp()
                    reply |= {"Content-Base": self.url + "/", "Content-Type": "application/sdp"}
                elif method == "SETUP":
                    track = tracks[int(url.rsplit("trackID=", 1)[1])]
                    transport = fields["transport"]
                    self.transports.append(transport)
                    if "interleaved=" in transport and not self.tcp:  # an old camera: RTP over UDP only
                        self._send(conn, lock, f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {reply['CSeq']}"
                                               "\r\n\r\n".encode())
                        continue
                    if "interleaved=" in transport:
                        track.channel = int(transport.split("interleaved=")[1].split("-")[0])
                    else:
                        client = int(transport.split("client_port=")[1].split("-")[0])
                        track.udp = ("127.0.0.1", client)
                        port = self.udp.getsockname()[1]
                        transport += f";server_port={port}-{port + 1}"
                    reply |= {"Transport": transport, "Session": f"{session};timeout=60"}
                elif method == "PLAY":
                    reply |= {"Session": session, "Range": "npt=0.000-"}
                elif method in ("TEARDOWN", "GET_PARAMETER", "PAUSE"):
                    reply["Session"] = session
                else:
                    self._send(conn, lock, b"RTSP/1.0 501 Not Implemented\r\nCSeq: "
                               + reply["CSeq"].encode() + b"\r\n\r\n")
                    continue
                if body:
                    reply["Content-Length"] = str(len(body))
                text = "RTSP/1.0 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.items()) + "\r\n"
                self._send(conn, lock, (text + body).encode())
                if method == "PLAY" and player is None:
                    self.sessions += 1
                    drop = self.drop_after if self.sessions == 1 else None
                    stall = self.stall_after if self.sessions == 1 else None
                    player = threading.Thread(target=self._play, args=(conn, lock, tracks, drop, stall),
                                              daemon=True)
                    player.start()
                if method == "TEARDOWN":
                    return
        except OSError:
            return
        finally:
            if player is not None:
                player.join(timeout=5)
            conn.close()

    def _authorized(self, method: str, header: str) -> bool:
        """No credentials asked, or ``header`` is a Digest answer with the right user and response."""
        if self.auth is None:
            return True
        if not header.startswith("Digest "):
            return False
        said = {k.strip(): v.strip().strip('"') for k, v in
                (part.split("=", 1) for part in header[7:].split(",") if "=" in part)}
        user, password = self.auth
        return said.get("username") == user and said.get("response") == digest(
            user, password, said.get("realm", ""), said.get("nonce", ""), method, said.get("uri", ""))

    def _send(self, conn: socket.socket, lock: threading.Lock, data: bytes) -> None:
        with lock:
            conn.sendall(data)

    def _packet(self, conn: socket.socket, lock: threading.Lock, track: Track, data: bytes,
                rtcp: bool = False) -> None:
        if track.channel is not None:
            self._send(conn, lock, struct.pack("!cBH", b"$", track.channel + rtcp, len(data)) + data)
        elif track.udp is not None:
            self.udp.sendto(data, (track.udp[0], track.udp[1] + rtcp))

    def _play(self, conn: socket.socket, lock: threading.Lock, tracks: list[Track], drop: int | None,
              stall: int | None = None) -> None:
        """Send the access units (and audio) in decode order, each when its time comes; BYE at the end."""
        events: list[tuple[float, int, bytes, int]] = []  # (send time, track, payload, timestamp)
        dts = sorted(pts for _, pts in self.video)  # a camera sends each access unit at its decode time
        for (unit, pts), at in zip(self.video, dts, strict=True):
            events.append((at / 90000, 0, unit, pts))
        for data, pts in self.audio:
            events.append((pts / (self.aac[1] if self.aac else 8000), 1, data, pts))
        events.sort(key=lambda e: (e[0], e[1]))
        start, sent = time.monotonic(), 0
        ntp = time.time() + 2208988800  # the camera's clock at media time 0 (NTP counts from 1900)
        try:
            for track in tracks:
                self._packet(conn, lock, track, track.report(ntp, 0), rtcp=True)
            for at, k, data, ts in events:
                if self._closed.is_set():
                    return
                delay = start + at / self.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                track = tracks[k]
                if k == 0:
                    if drop is not None and sent == drop:
                        conn.shutdown(socket.SHUT_RDWR)  # the camera drops: no BYE, the connection ends
                        return
                    if stall is not None and sent == stall:  # the camera freezes: the connection stays open
                        self._closed.wait()
                        return
                    payloads = h265_payloads if self.hevc else h264_payloads
                    parts = [p for unit in nal_units(data) for p in payloads(unit)]
                    for i, payload in enumerate(parts):
                        self._packet(conn, lock, track, track.rtp(payload, ts, i == len(parts) - 1))
                    sent += 1
                elif self.aac:  # one access unit: AU-headers-length 16 bits, size (13) and index (3)
                    header = struct.pack("!HH", 16, len(data) << 3)
                    self._packet(conn, lock, track, track.rtp(header + data, ts, True))
                else:
                    self._packet(conn, lock, track, track.rtp(data, ts, False))
            time.sleep(0.1)
            for track in tracks:
                last = events[-1][0] if events else 0.0
                self._packet(conn, lock, track, track.bye(ntp + last, round(last * track.clock)), rtcp=True)
        except OSError:
            return

