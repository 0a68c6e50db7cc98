"""A reader of mboxmirror's per-mailbox message index (DESIGN.md, "The message index"),
written independently of the C code from the documented layout, and the checks of an
index against the mbox bytes it describes."""

import glob
import hashlib
import os
import struct

MAGIC = b"mmindex1"
VERSION = 1
RECORD_SIZE = 84
HEADER_FIXED = 24

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 0x1, 0x2, 0x4, 0x8, 0x10
REBUILT = 0x8000
FLAG_BITS = {"\\Seen": SEEN, "\\Answered": ANSWERED, "\\Flagged": FLAGGED,
             "\\Deleted": DELETED, "\\Draft": DRAFT}

# uid, uidvalidity, offset, length, size, internaldate, tz, flags, kwlen, check,
# message_id_hash, digest
_RECORD = struct.Struct("<IIQQIqhHHHQ32s")
assert _RECORD.size == RECORD_SIZE


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def message_id_hash(value):
    """The hash of a Message-ID header's value (bytes, unfolded), as the index keeps
    it: surrounding whitespace trimmed, only <...> when there is a '<'; 0 for none."""
    v = value.strip(b" \t\r\n")
    lt = v.find(b"<")
    if lt >= 0:
        gt = v.find(b">", lt)
        v = v[lt:gt + 1] if gt >= 0 else v[lt:]
    if not v:
        return 0
    return fnv1a64(v) or 1


def header_message_id(message):
    """The first Message-ID value of a raw message's header (unfolded), or None."""
    head = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    lines = head.split(b"\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"message-id:"):
            val = line[len(b"message-id:"):]
            for cont in lines[i + 1:]:
                if cont[:1] not in (b" ", b"\t"):
                    break
                val += cont
            return val
    return None


class Record:
    def __init__(self, fields, keywords):
        (self.uid, self.uidvalidity, self.offset, self.length, self.size,
         self.internaldate, self.tz_minutes, self.flags, _kwlen, self.check,
         self.message_id_hash, self.digest) = fields
        self.keywords = keywords.decode() if keywords else ""

    def flag_names(self):
        return {n for n, b in FLAG_BITS.items() if self.flags & b}

    def keyword_set(self):
        return set(self.keywords.split())

    def __repr__(self):
        return (f"Record(uid={self.uid}, offset={self.offset}, length={self.length}, "
                f"size={self.size}, flags={self.flags:#x}, kw={self.keywords!r})")


class IndexError_(Exception):
    pass


def index_path(state_dir, file):
    """<account state dir>/index-<16 hex of FNV-1a 64 of the mbox path relative to
    the output directory>."""
    return os.path.join(state_dir, "index-%016x" % fnv1a64(file.encode()))


def load(path):
    """(mbox name, [Record]) of the index at path; raises IndexError_ on anything
    that does not follow the layout."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_FIXED or data[:8] != MAGIC:
        raise IndexError_(f"{path}: not a message index")
    version, rsize, nlen, check = struct.unpack_from("<IIII", data, 8)
    if version != VERSION or rsize != RECORD_SIZE:
        raise IndexError_(f"{path}: version {version}, record size {rsize}")
    head = bytearray(data[:HEADER_FIXED + nlen])
    head[20:24] = b"\0\0\0\0"
    if fnv1a64(bytes(head)) & 0xFFFFFFFF != check:
        raise IndexError_(f"{path}: header check")
    name = data[HEADER_FIXED:HEADER_FIXED + nlen].decode()
    pos = HEADER_FIXED + nlen
    records = []
    while pos < len(data):
        if len(data) - pos < RECORD_SIZE:
            raise IndexError_(f"{path}: record {len(records) + 1}: truncated")
        fields = _RECORD.unpack_from(data, pos)
        kwlen = fields[8]
        raw = bytearray(data[pos:pos + RECORD_SIZE + kwlen])
        if len(raw) < RECORD_SIZE + kwlen:
            raise IndexError_(f"{path}: record {len(records) + 1}: truncated")
        raw[42:44] = b"\0\0"
        if fnv1a64(bytes(raw)) & 0xFFFF != fields[9]:
            raise IndexError_(f"{path}: record {len(records) + 1}: bad check")
        records.append(Record(fields, data[pos + RECORD_SIZE:pos + RECORD_SIZE + kwlen]))
        pos += RECORD_SIZE + kwlen
    return name, records


def find_index(state_root, file):
    """The index of file under any account state directory below state_root."""
    name = os.path.basename(index_path("", file))
    hits = glob.glob(os.path.join(state_root, "**", name), recursive=True)
    if len(hits) != 1:
        raise IndexError_(f"{name} under {state_root}: {hits}")
    return hits[0]


def entry_problems(records, mbox_bytes, whole=True):
    """What is wrong between an index's records and the mbox bytes: every record's
    entry starts with a From_ line, has the record's digest (SHA-256 of the entry after
    its From_ line) and ends in an empty line; entries follow each other without a gap;
    with whole, the last one ends where the file ends.  [] when consistent."""
    out = []
    end = None
    for k, r in enumerate(records, 1):
        e = mbox_bytes[r.offset:r.offset + r.length]
        if len(e) != r.length:
            out.append(f"record {k}: entry past the end of the file")
            continue
        if not e.startswith(b"From ") or not e.endswith(b"\n\n"):
            out.append(f"record {k}: not an entry: {e[:40]!r}...{e[-10:]!r}")
        body = e[e.index(b"\n") + 1:] if b"\n" in e else b""
        if hashlib.sha256(body).digest() != r.digest:
            out.append(f"record {k}: digest differs")
        if end is not None and r.offset != end:
            out.append(f"record {k}: starts at {r.offset}, the one before ended at {end}")
        end = r.offset + r.length
    if whole and records and end != len(mbox_bytes):
        out.append(f"the last entry ends at {end}, the file at {len(mbox_bytes)}")
    return out
