"""Start aiostratum-proxy 1.1 for Bitcoin miners, as `hashgate-loadgen compare` measures it.

Usage (the venv of docs/LOADGEN.md):
    /work/venvs/aiostratum/bin/python tools/aiostratum/run.py -c CONFIG.yaml -q

aiostratum-proxy is imported as installed; nothing of it is copied here. This file only
supplies what the package leaves to its user before it can serve a Bitcoin miner:

* `yaml.load` without a Loader is an error in current PyYAML (the package pins 3.12,
  which no longer builds); it gets SafeLoader as its default.
* Its generic `StratumWorkerProtocol` leaves the per-coin hooks unimplemented (each logs
  a warning on every call). The Bitcoin ones below are the least that makes shares
  valid: the miner's extranonce1 is the pool's plus a 1- or 2-byte tail per miner, so
  the tail goes back in front of extranonce2 on the way up; a new miner gets the current
  difficulty and job at once. Nothing is validated, as in the package.
* `suggest_difficulty` (a measurement setting, not the package's): the pool connection
  asks the pool for this difficulty after subscribing, since aiostratum relays the
  pool's difficulty to every miner and forwards every share.
* The address it listens on is printed as `aiostratum: miners connect to HOST:PORT`
  (port 0 in the config picks a free one), and SIGTERM stops it as Ctrl+C does.
"""

import asyncio
import signal
import sys

import yaml

_yaml_load = yaml.load


def _load(stream, Loader=None, **kwargs):
    return _yaml_load(stream, Loader=Loader or yaml.SafeLoader, **kwargs)


yaml.load = _load

from aiostratum_proxy import application  # noqa: E402
from aiostratum_proxy.protocols.stratum import (  # noqa: E402
    StratumPoolProtocol,
    StratumWorkerProtocol,
)

ADDR_LINE = "aiostratum: miners connect to {}:{}"

# mining.submit params: worker, job id, extranonce2, ntime, nonce (, version bits)
EXTRANONCE2 = 2


class BitcoinWorkerProtocol(StratumWorkerProtocol):
    async def start_listening(self):
        await super().start_listening()
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                print(ADDR_LINE.format(host, port), flush=True)

    async def hook_post_subscribe(self, connection):
        pool = self.pool
        if pool.target_difficulty is not None:
            await connection.rpc(
                "mining.set_difficulty", [pool.target_difficulty], is_notification=True
            )
        if pool.current_job is not None:
            await connection.rpc("mining.notify", pool.current_job, is_notification=True)

    async def hook_validate_share_params(self, connection, params):
        tail = connection.extra.get("extra_nonce1_tail") or ""
        if tail and len(params) > EXTRANONCE2 and isinstance(params[EXTRANONCE2], str):
            params[EXTRANONCE2] = tail + params[EXTRANONCE2]
        return params


class BitcoinPoolProtocol(StratumPoolProtocol):
    async def initialize(self):
        await super().initialize()
        difficulty = self.settings.get("suggest_difficulty")
        if difficulty is not None:
            await self.connection.rpc("mining.suggest_difficulty", [float(difficulty)])

    async def hook_validate_job_params(self, params):
        # mining.notify: job id first, clean_jobs last.
        return params[0], params[-1]


if __name__ == "__main__":
    # The package's main() runs the loop asyncio.get_event_loop() returns: this one. On
    # SIGTERM its run_forever() returns as after Ctrl+C, and its shutdown runs.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    sys.exit(application.main())
