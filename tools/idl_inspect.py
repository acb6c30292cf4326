#!/usr/bin/env python3
"""Independent reader for idlat `.idl` containers, written from spec/FORMAT.md.

Lists volumes and blocks and verifies every CRC (header, trailer, sections and
block payloads). Python + numpy + zstandard only; shares no code with the Rust
implementation, so the test suite uses it to keep the spec honest.

    idl_inspect.py FILE [--json] [--blocks]
Exit status: 0 clean, 1 corrupt, 2 unreadable.
"""
import json
import re
import struct
import sys
import zlib

import numpy as np
import zstandard

HEADER_MAGIC = b"IDLAT\x00\r\n"
TRAILER_MAGIC = b"IDLTRAIL"
HEADER_LEN, TRAILER_LEN, ENTRY_LEN = 32, 88, 24
KINDS = {0: "constant", 1: "raw", 2: "lossless", 3: "neural", 4: "wavelet"}


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def inspect(path, want_blocks=False):
    data = open(path, "rb").read()
    n = len(data)
    if n < HEADER_LEN + TRAILER_LEN:
        raise ValueError("file too short")
    h = data[:HEADER_LEN]
    if h[:8] != HEADER_MAGIC:
        raise ValueError("bad header magic")
    if crc(h[:28]) != struct.unpack_from("<I", h, 28)[0]:
        raise ValueError("header CRC mismatch")
    major, minor = struct.unpack_from("<HH", h, 8)
    if major != 1:
        raise ValueError(f"unsupported major version {major}")
    t = data[n - TRAILER_LEN:]
    if t[80:88] != TRAILER_MAGIC:
        raise ValueError("bad trailer magic")
    if crc(t[:76]) != struct.unpack_from("<I", t, 76)[0]:
        raise ValueError("trailer CRC mismatch")
    m_off, m_len, m_raw, i_off, i_len, mo_off, mo_len = struct.unpack_from("<7Q", t, 0)
    m_crc, i_crc, mo_crc = struct.unpack_from("<3I", t, 56)
    end = n - TRAILER_LEN

    def section(off, ln, name):
        if off < HEADER_LEN or off + ln > end:
            raise ValueError(f"{name} section out of bounds")
        return data[off:off + ln]

    meta_bytes = section(m_off, m_len, "metadata")
    if crc(meta_bytes) != m_crc:
        raise ValueError("metadata CRC mismatch")
    meta = json.loads(zstandard.ZstdDecompressor().decompress(meta_bytes, max_output_size=m_raw))
    index = section(i_off, i_len, "index")
    if crc(index) != i_crc:
        raise ValueError("index CRC mismatch")
    if i_len % ENTRY_LEN:
        raise ValueError("index length not a multiple of 24")
    model_ok = True
    if mo_len:
        model_ok = crc(section(mo_off, mo_len, "model")) == mo_crc
    payload_end = min([m_off, i_off] + ([mo_off] if mo_len else []))
    entries = np.frombuffer(index, dtype=np.dtype([("off", "<u8"), ("len", "<u4"), ("crc", "<u4"), ("kind", "u1"), ("res", "V7")]))
    report = {"file": path, "version": f"{major}.{minor}", "bytes": n, "model": meta["model"],
              "model_section_bytes": mo_len, "model_crc_ok": model_ok, "volumes": [], "crc_errors": 0, "bad_blocks": []}
    total = 0
    names = set()
    for vi, v in enumerate(meta["volumes"]):
        dims = v["info"]["dims"]
        blk = v["block"]
        # Section 4: names become file names, so a reader rejects any other shape.
        name = v["info"]["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name) or name.startswith(".") or name in names:
            raise ValueError(f"volume {vi}: invalid volume name {name!r}")
        names.add(name)
        if len(blk) != 3 or any(not 1 <= b <= 256 for b in blk):
            raise ValueError(f"volume {vi}: block size {blk} outside 1..=256")
        count = 1
        for a in range(3):
            count *= -(-dims[a] // blk[a])
        if count != v["block_count"] or v["index_first"] != total:
            raise ValueError(f"volume {vi}: block count/index range inconsistent")
        kinds = {k: 0 for k in KINDS.values()}
        stored = 0
        blocks = []
        for b in range(count):
            e = entries[total + b]
            off, ln = int(e["off"]), int(e["len"])
            kind = KINDS.get(int(e["kind"]), f"unknown({int(e['kind'])})")
            kinds[kind] = kinds.get(kind, 0) + 1
            stored += ln + ENTRY_LEN
            ok = HEADER_LEN <= off and off + ln <= payload_end and crc(data[off:off + ln]) == int(e["crc"]) and kind in KINDS.values()
            if not ok:
                report["crc_errors"] += 1
                report["bad_blocks"].append({"volume": vi, "block": b})
            if want_blocks:
                blocks.append({"block": b, "kind": kind, "offset": off, "length": ln, "ok": ok})
        total += count
        vol = {"name": v["info"]["name"], "dims": dims, "dtype": v["info"]["dtype"], "block": blk,
               "blocks": count, "kinds": kinds, "stored_bytes": stored,
               "ratio_vs_f32": dims[0] * dims[1] * dims[2] * 4 / max(stored, 1)}
        if want_blocks:
            vol["block_list"] = blocks
        report["volumes"].append(vol)
    if total * ENTRY_LEN != i_len:
        raise ValueError("index length does not match the block count")
    return report


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    try:
        r = inspect(argv[1], "--blocks" in argv)
    except (ValueError, OSError, zstandard.ZstdError, json.JSONDecodeError, KeyError) as e:
        print(f"{argv[1]}: unreadable: {e}", file=sys.stderr)
        return 2
    if "--json" in argv:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['file']}: idl v{r['version']}, {r['bytes']} bytes, model {r['model']['hash'][:16]}… "
              f"({'embedded' if r['model']['embedded'] else 'referenced'})")
        for v in r["volumes"]:
            print(f"  {v['name']}: {v['dims']} {v['dtype']} block {v['block']} {v['kinds']} "
                  f"stored {v['stored_bytes']} ratio {v['ratio_vs_f32']:.1f}")
        for b in r["bad_blocks"]:
            print(f"  CRC mismatch: volume {b['volume']} block {b['block']}")
    return 1 if r["crc_errors"] or not r["model_crc_ok"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
