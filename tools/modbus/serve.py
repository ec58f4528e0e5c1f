#!/usr/bin/env python3
"""Serve register values over Modbus TCP with pymodbus, for hashgate's interop test.

A device written by others (pymodbus' server and datastore) stands in for meters and relay
modules, so hashgate's Modbus client and its shipped register maps are checked against a
stack that does not share hashgate's assumptions. The values are encoded here, with
Python's struct, from the maker's register numbers and numbering as the test states them,
never from hashgate's own maps.

Usage:
    python3 tools/modbus/serve.py SPEC.json

SPEC.json:
    {
      "port": 15020,
      "devices": [
        {"unit": 1,
         "points": [{"table": "input", "register": 52, "numbering": "zero_based",
                     "type": "f32", "order": "big", "value": 7250.5}],
         "coils": {"first": 0, "count": 8}}
      ]
    }

table: holding | input; numbering: zero_based (wire address) | one_based (register n is
wire address n - 1); type: u16 i16 u32 i32 u64 f32 f64; order: big (high word first) |
little (word-swapped). Prints "READY <port>" once listening; runs until killed.
"""

import asyncio
import json
import struct
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

FORMATS = {
    "u16": ">H",
    "i16": ">h",
    "u32": ">I",
    "i32": ">i",
    "u64": ">Q",
    "f32": ">f",
    "f64": ">d",
}


def words(kind, order, value):
    """The big-endian 16-bit words of value, word-swapped when order is little."""
    fmt = FORMATS[kind]
    if kind[0] in "ui":
        value = int(round(value))
    raw = struct.pack(fmt, value)
    out = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if order == "little":
        out.reverse()
    return out


def wire_address(point):
    register = int(point["register"])
    if point["numbering"] == "one_based":
        if register < 1:
            raise ValueError(f"register {register} does not exist in a one-based table")
        return register - 1
    if point["numbering"] != "zero_based":
        raise ValueError(f"unknown numbering {point['numbering']!r}")
    return register


def device(spec):
    blocks = {"holding": [], "input": []}
    for point in spec.get("points", []):
        table = point["table"]
        address = wire_address(point)
        values = words(point["type"], point.get("order", "big"), point["value"])
        blocks[table].append(
            SimData(address=address, values=values, datatype=DataType.REGISTERS)
        )
    for table in blocks:
        blocks[table].sort(key=lambda d: d.address)
    coils = []
    if "coils" in spec:
        coils.append(
            SimData(
                address=int(spec["coils"]["first"]),
                count=int(spec["coils"]["count"]),
                values=False,
                datatype=DataType.BITS,
            )
        )
    # pymodbus wants every block non-empty: an unused register table is one register
    # marked invalid (it answers "illegal data address", as a device without that table
    # does); an unused bit table is one bit at the top of the address space.
    def or_invalid(block):
        return block or [SimData(address=0, datatype=DataType.INVALID)]

    def or_unused_bit(block):
        return block or [SimData(address=65535, values=False, datatype=DataType.BITS)]

    # Distinct blocks: (coils, discrete inputs, holding, input), each coil its own address.
    return SimDevice(
        id=int(spec["unit"]),
        simdata=(
            or_unused_bit(coils),
            or_unused_bit([]),
            or_invalid(blocks["holding"]),
            or_invalid(blocks["input"]),
        ),
    )


async def main(path):
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    port = int(spec["port"])
    devices = [device(d) for d in spec["devices"]]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    print(f"READY {port}", flush=True)
    await task


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1]))
