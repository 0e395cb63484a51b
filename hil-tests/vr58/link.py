#!/usr/bin/env python3
"""A TCP link between the virtual R58 and a service on this machine that the harness can cut:
the guest connects to LISTEN_PORT on this machine's loopback (10.0.2.2 in QEMU's user
networking), this forwards its connections to TARGET_PORT. While the file STATE_FILE says
"down", the link is a black hole: new connections are accepted and never answered,
established ones carry nothing (as when a venue's uplink drops). On "up", connections opened during the cut are closed (their peers
would have given up on them), established ones carry what they held back, and new ones are
forwarded again.

usage: link.py LISTEN_PORT TARGET_PORT STATE_FILE
"""
import asyncio
import os
import sys

LISTEN, TARGET, STATE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def down():
    try:
        with open(STATE, encoding="utf-8") as fh:
            return fh.read().strip() == "down"
    except OSError:
        return False


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            while down():
                await asyncio.sleep(0.2)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def client(reader, writer):
    if down():
        while down():
            await asyncio.sleep(0.2)
        writer.close()
        return
    try:
        t_reader, t_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pump(reader, t_writer), pump(t_reader, writer))


async def main():
    server = await asyncio.start_server(client, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
