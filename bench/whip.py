#!/usr/bin/python3
"""WebRTC peers for bench/guest-whip, on GStreamer's webrtcbin (Debian's python3-gi).

  whip.py publish URL TOKEN OUT.json SECONDS
      A WHIP guest: 1280x720 at 30 fps, H.264, with a burnt-in clock (a strip of blocks
      across the top rows: a white/black marker, the wall clock in ms modulo 2^32 and a
      check byte). Writes {"post_ms": wall clock just before the offer was POSTed}.
  whip.py serve PORT RTP_PORT RECORD_DIR
      The baseline: a plain webrtcbin pipeline that takes one WHIP offer on
      http://127.0.0.1:PORT/whip, decodes the H.264, encodes it again (x264, as the
      recorder does in software), records MPEG-TS segments and sends RTP/H.264 to
      127.0.0.1:RTP_PORT.
  whip.py watch WIDTH HEIGHT OUT.json
      Reads GRAY8 frames from stdin (ffmpeg -f rawvideo -pix_fmt gray) until EOF and writes
      {"frames", "coded", "first_coded_ms", "delays_ms"}: how many frames carried a clock,
      when the first did, and each one's age (now - clock) when it arrived.

ICE uses 127.0.0.1 only, on both ends.
"""

import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

W, H, FPS = 1280, 720, 30
BLOCK = 30  # width of one bit in the clock strip, pixels
ROWS = 48  # height of the strip
BITS = 2 + 32 + 8  # marker, clock, check byte
WHITE, BLACK = 235, 16
GATHERING_S = 10
# Python references to objects webrtcbin owns (its ICE agent) and promises whose replies are
# read: kept for the life of the process.
_keep = []


def now_ms():
    return int(time.time() * 1000) & 0xFFFFFFFF


def check_byte(code):
    return (sum(code.to_bytes(4, "big")) ^ 0xA5) & 0xFF


def strip_row(code):
    bits = [1, 0] + [(code >> (31 - i)) & 1 for i in range(32)]
    check = check_byte(code)
    bits += [(check >> (7 - i)) & 1 for i in range(8)]
    row = bytearray([BLACK]) * W
    for i, b in enumerate(bits):
        if b:
            row[i * BLOCK:(i + 1) * BLOCK] = bytes([WHITE]) * BLOCK
    return bytes(row)


def read_code(frame, width):
    """The clock burnt into a GRAY8 frame, or None."""
    bits = []
    y = ROWS // 2
    for i in range(BITS):
        x0 = i * BLOCK + BLOCK // 4
        total = 0
        for dy in (-8, 0, 8):
            start = (y + dy) * width + x0
            total += sum(frame[start:start + BLOCK // 2])
        bits.append(1 if total / (3 * (BLOCK // 2)) > 128 else 0)
    if bits[0] != 1 or bits[1] != 0:
        return None
    code = 0
    for b in bits[2:34]:
        code = code << 1 | b
    check = 0
    for b in bits[34:]:
        check = check << 1 | b
    return code if check == check_byte(code) else None


def report_errors(pipeline):
    """Prints the pipeline's errors and warnings to stderr, from a thread of its own."""

    def run():
        bus = pipeline.get_bus()
        while True:
            msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            err, debug = msg.parse_error() if msg.type == Gst.MessageType.ERROR else msg.parse_warning()
            print(f"{msg.src.get_name()}: {err.message} ({debug})", file=sys.stderr, flush=True)

    threading.Thread(target=run, daemon=True).start()


def loopback_ice(web):
    ice = web.get_property("ice-agent")
    _keep.append(ice)
    if not ice.emit("add-local-ip-address", "127.0.0.1"):
        raise SystemExit("ICE does not take 127.0.0.1")


def promise_reply(element, signal, *args, key=None):
    """Emits SIGNAL with a promise and waits for it; returns the reply's value KEY. The
    reply (and so the value, which PyGObject does not copy) is kept alive."""
    promise = Gst.Promise.new()
    element.emit(signal, *args, promise)
    if promise.wait() != Gst.PromiseResult.REPLIED:
        raise SystemExit(f"{signal}: no reply")
    reply = promise.get_reply()
    _keep.extend([promise, reply])
    if key is None:
        return None
    value = reply.get_value(key)
    if value is None:
        raise SystemExit(f"{signal}: no {key} in the reply {reply.to_string() if reply else ''}")
    return value


def wait_gathered(web):
    until = time.time() + GATHERING_S
    while web.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        if time.time() > until:
            raise SystemExit("ICE gathering took too long")
        time.sleep(0.02)
    return web.get_property("local-description").sdp.as_text()


def description(kind, text):
    ok, sdp = GstSdp.SDPMessage.new_from_text(text)
    if ok != GstSdp.SDPResult.OK:
        raise SystemExit(f"not an SDP {kind}")
    return GstWebRTC.WebRTCSessionDescription.new(kind, sdp)


def publish(url, token, out, seconds):
    pipeline = Gst.parse_launch(
        f"appsrc name=src is-live=true format=time do-timestamp=true "
        f"caps=video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1 "
        "! queue ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 key-int-max=60 "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=102 "
        "! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000 "
        "! webrtcbin name=web bundle-policy=max-bundle"
    )
    web = pipeline.get_by_name("web")
    src = pipeline.get_by_name("src")
    loopback_ice(web)
    negotiate = threading.Event()
    web.connect("on-negotiation-needed", lambda *_: negotiate.set())
    report_errors(pipeline)
    pipeline.set_state(Gst.State.PLAYING)
    stop = threading.Event()

    # Gray picture, a white square moving across it, the clock strip on top.
    y_size, c_size = W * H, (W // 2) * (H // 2)
    base = bytes([110]) * y_size + bytes([128]) * (2 * c_size)
    square = bytes([WHITE]) * 160

    def frames():
        n, start = 0, time.monotonic()
        while not stop.is_set():
            frame = bytearray(base)
            x = (n * 8) % (W - 160)
            for y in range(200, 360):
                frame[y * W + x:y * W + x + 160] = square
            row = strip_row(now_ms())
            for y in range(ROWS):
                frame[y * W:(y + 1) * W] = row
            src.emit("push-buffer", Gst.Buffer.new_wrapped(bytes(frame)))
            n += 1
            delay = start + n / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    pusher = threading.Thread(target=frames, daemon=True)
    pusher.start()
    if not negotiate.wait(10):
        raise SystemExit("webrtcbin did not ask for negotiation")
    offer = promise_reply(web, "create-offer", None, key="offer")
    promise_reply(web, "set-local-description", offer)
    sdp = wait_gathered(web)
    req = urllib.request.Request(
        url,
        data=sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    post_ms = now_ms()
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 201:
            raise SystemExit(f"WHIP answered {resp.status}")
        answer = resp.read().decode()
    promise_reply(web, "set-remote-description", description(GstWebRTC.WebRTCSDPType.ANSWER, answer))
    with open(out, "w") as f:
        json.dump({"post_ms": post_ms}, f)
    time.sleep(seconds)
    stop.set()
    pusher.join()
    pipeline.set_state(Gst.State.NULL)


def serve(port, rtp_port, record_dir):
    pipeline = Gst.parse_launch(
        "webrtcbin name=web bundle-policy=max-bundle "
        "rtph264depay name=depay ! h264parse ! avdec_h264 ! videoconvert ! queue "
        "! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 key-int-max=60 bframes=0 "
        "! h264parse config-interval=-1 ! tee name=t "
        "t. ! queue ! splitmuxsink muxer-factory=mpegtsmux max-size-time=2000000000 "
        f"location={record_dir}/seg%05d.ts "
        "t. ! queue ! rtph264pay config-interval=-1 pt=96 "
        f"! udpsink host=127.0.0.1 port={rtp_port} sync=false"
    )
    web = pipeline.get_by_name("web")
    depay = pipeline.get_by_name("depay").get_static_pad("sink")
    loopback_ice(web)

    def on_pad(_web, pad):
        if pad.get_direction() == Gst.PadDirection.SRC and not depay.is_linked():
            pad.link(depay)

    web.connect("pad-added", on_pad)
    report_errors(pipeline)
    pipeline.set_state(Gst.State.PLAYING)
    taken = threading.Lock()

    class Whip(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            if not taken.acquire(blocking=False):
                self.send_error(503)
                return
            offer = self.rfile.read(int(self.headers["Content-Length"])).decode()
            promise_reply(web, "set-remote-description", description(GstWebRTC.WebRTCSDPType.OFFER, offer))
            answer = promise_reply(web, "create-answer", None, key="answer")
            promise_reply(web, "set-local-description", answer)
            body = wait_gathered(web).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/sdp")
            self.send_header("Location", "/whip/1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Whip).serve_forever()


def watch(width, height, out):
    size = width * height
    frames, coded, first, delays = 0, 0, None, []
    stdin = sys.stdin.buffer
    while True:
        frame = stdin.read(size)
        if len(frame) < size:
            break
        frames += 1
        code = read_code(frame, width)
        if code is None:
            continue
        t = now_ms()
        coded += 1
        if first is None:
            first = t
        delays.append((t - code) & 0xFFFFFFFF)
    with open(out, "w") as f:
        json.dump({"frames": frames, "coded": coded, "first_coded_ms": first, "delays_ms": delays}, f)


def main():
    Gst.init(None)
    args = sys.argv[1:]
    if args[:1] == ["publish"] and len(args) == 5:
        publish(args[1], args[2], args[3], float(args[4]))
    elif args[:1] == ["serve"] and len(args) == 4:
        serve(int(args[1]), int(args[2]), args[3])
    elif args[:1] == ["watch"] and len(args) == 4:
        watch(int(args[1]), int(args[2]), args[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
