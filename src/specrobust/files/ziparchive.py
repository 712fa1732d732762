"""ZIP archives read by specrobust's own parser, so that what is checked is what is used.

``torch.save`` checkpoints, TorchScript and ``torch.export`` programs and NumPy's ``.npz`` files
are ZIP archives. Readers disagree on a malformed archive: Python's ``zipfile`` keeps the last
of two members with one name, torch's reader another, and one may trust a local header the
other ignores. A check made through one reader proves nothing about what another reads. So an
archive a user hands over is parsed once, here, by one strict rule, and the third-party reader
gets only bytes rebuilt from what was parsed (:func:`rebuild`), never the original file.

The rule (anything else is refused in one line):

- the end record ends the file, its central directory ends where the end records begin, and
  the first member starts at byte 0: nothing before, between or after;
- every member appears once: no two names equal after Unicode normalisation and case folding,
  no empty, absolute or ``..`` component, no backslash or NUL;
- every local header agrees with its central entry (name, method, flags, and CRC and sizes
  unless a data descriptor follows), and no two members overlap;
- no encryption and no flag outside ``_ALLOWED_FLAGS``; compression stored, or deflate where
  the caller allows it;
- every size is checked against the caller's cap before anything is read or inflated, and every
  member's CRC-32 and length are verified when it is read.
"""

from __future__ import annotations

import io
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from specrobust.errors import SpecRobustError

STORED, DEFLATED = 0, 8
# Bit 3: sizes in a data descriptor after the data (torch writes it); bits 1-2: deflate's
# speed option; bit 11: the name is UTF-8. Bit 0 (encryption) and every other flag are refused.
_ALLOWED_FLAGS = 0b1000_0000_1110
_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_MAX_MEMBERS = 100_000
_NEWEST_FEATURES = 45  # "version needed to extract": 4.5 is ZIP64; later ones add encryption
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One member as the central directory and its local header (which agree) declare it."""

    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    data_offset: int  # where its (compressed) bytes start in the archive


class Archive:
    """An archive parsed by the rule above. ``read_at(offset, size)`` returns bytes of the
    archive (a file read in place or bytes in memory); ``members`` are in central-directory
    order, unique by name."""

    def __init__(self, read_at: Callable[[int, int], bytes], length: int, what: str, *,
                 methods: tuple[int, ...] = (STORED,), max_size: int):
        self._read_at, self.what = read_at, what
        self.members = _parse(read_at, length, what, methods)
        total = sum(member.size for member in self.members)
        if total > max_size:
            raise _bad(what, f"its members declare {total:,} bytes unpacked, more than the "
                             f"{max_size:,} specrobust reads from such a file")
        self.by_name = {member.name: member for member in self.members}

    @classmethod
    def of_bytes(cls, data: bytes, what: str, **options) -> Archive:
        view = memoryview(data)
        return cls(lambda offset, size: bytes(view[offset:offset + size]), len(data), what,
                   **options)

    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def read(self, name: str, limit: int | None = None) -> bytes:
        """The member's bytes, whole (``limit=None``) or its first ``limit`` bytes (its length
        and CRC verified either way: :meth:`chunks`)."""
        return b"".join(self.chunks(name, limit))

    def chunks(self, name: str, limit: int | None = None) -> Iterator[bytes]:
        """The member's bytes (its first ``limit`` bytes) in pieces of about a MiB. The member
        is read to its end either way, a piece at a time, so that its length and CRC-32 are
        verified before the last piece is handed over: a damaged member is refused even where
        only its beginning is used."""
        member = self.by_name[name]
        wanted = member.size if limit is None else min(limit, member.size)
        inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
        crc, produced, emitted, position = 0, 0, 0, member.data_offset
        end = member.data_offset + member.compressed_size
        held = b""  # the last piece, handed over once the next one (or the end) is checked
        stalled = end - position + 1  # unconsumed input after the last empty inflation
        while True:
            raw = self._read_at(position, min(_CHUNK, end - position)) if position < end else b""
            position += len(raw)
            if inflater is None:
                piece = raw
            else:
                # Never inflate more than the member declared: a bomb stops at its declaration.
                try:
                    piece = inflater.decompress(inflater.unconsumed_tail + raw,
                                                member.size - produced + 1)
                except zlib.error as error:
                    raise _bad(self.what, f"member {name!r} does not inflate ({error})"
                               ) from None
            if not piece:
                tail = len(inflater.unconsumed_tail) if inflater is not None else 0
                if raw or 0 < tail < stalled:  # input left, and still being consumed
                    stalled = tail or stalled
                    continue
                break
            if produced + len(piece) > member.size:
                raise _bad(self.what, f"member {name!r} holds more than the {member.size:,} "
                                      "bytes it declares")
            crc = zlib.crc32(piece, crc)
            produced += len(piece)
            if emitted < wanted:
                if held:
                    yield held
                held = piece[:wanted - emitted]
                emitted += len(held)
        if produced != member.size or (inflater is not None and not inflater.eof):
            raise _bad(self.what, f"member {name!r} holds {produced:,} bytes, not the "
                                  f"{member.size:,} it declares")
        if crc != member.crc:
            raise _bad(self.what, f"member {name!r} fails its CRC check (damaged)")
        if held:
            yield held


def rebuild(archive: Archive) -> bytes:
    """A fresh archive of the parsed members' verified bytes, stored, in their order: what a
    third-party reader gets instead of the original file."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as fresh:
        for name in archive.names():
            fresh.writestr(name, archive.read(name))
    return out.getvalue()


def canonical(name: str) -> str:
    """The name two members must not share: Unicode-normalised and case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def _bad(what: str, why: str) -> SpecRobustError:
    return SpecRobustError(f"cannot read {what}: not a ZIP archive specrobust reads ({why})")


def _parse(read_at, length: int, what: str, methods: tuple[int, ...]) -> list[Member]:
    entries, directory_start, directory_end = _directory(read_at, length, what)
    members, seen, spans = [], set(), []
    position = directory_start
    for _ in range(entries):
        fixed = read_at(position, _CENTRAL.size)
        if len(fixed) != _CENTRAL.size:
            raise _bad(what, "its central directory is cut short")
        (signature, _made_by, needed, flags, method, _time, _date, crc, compressed, size,
         name_length, extra_length, comment_length, disk, _internal, _external,
         offset) = _CENTRAL.unpack(fixed)
        if signature != b"PK\x01\x02":
            raise _bad(what, "its central directory is damaged")
        raw_name = read_at(position + _CENTRAL.size, name_length)
        extra = read_at(position + _CENTRAL.size + name_length, extra_length)
        position += _CENTRAL.size + name_length + extra_length + comment_length
        if position > directory_end or disk != 0:
            raise _bad(what, "its central directory is damaged")
        name = _name(raw_name, flags, what)
        compressed, size, offset = _zip64(extra, compressed, size, offset, what)
        if flags & 1 or flags & ~_ALLOWED_FLAGS or needed > _NEWEST_FEATURES:
            raise _bad(what, f"member {name!r} is encrypted or uses a feature specrobust does "
                             f"not read (flags {flags:#x}, version {needed / 10})")
        if method not in methods:
            raise _bad(what, f"member {name!r} is compressed with method {method}; specrobust "
                             f"reads {' and '.join(_METHOD_NAMES[m] for m in methods)} members")
        key = canonical(name)
        if key in seen:
            raise _bad(what, f"the name {name!r} appears twice (readers disagree on which one "
                             "counts)")
        seen.add(key)
        data_offset = _local(read_at, offset, raw_name, flags, method, crc, compressed, size,
                             what)
        if data_offset + compressed > directory_start:
            raise _bad(what, f"member {name!r} runs into the central directory")
        spans.append((offset, data_offset + compressed, name))
        members.append(Member(name, method, crc, compressed, size, data_offset))
    if position != directory_end:
        raise _bad(what, "its central directory holds more than its entries")
    spans.sort()
    if spans and spans[0][0] != 0:
        raise _bad(what, "it has data before its first member")
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise _bad(what, f"members {first!r} and {second!r} overlap")
    return members


_METHOD_NAMES = {STORED: "stored", DEFLATED: "deflated"}


def _directory(read_at, length: int, what: str) -> tuple[int, int, int]:
    """(entries, start, end) of the central directory, from the end record that ends the file."""
    tail = read_at(max(0, length - _END.size - 0xFFFF), min(length, _END.size + 0xFFFF))
    base = length - len(tail)
    found = [i for i in range(len(tail) - _END.size, -1, -1)
             if tail[i:i + 4] == b"PK\x05\x06"
             and i + _END.size + struct.unpack_from("<H", tail, i + 20)[0] == len(tail)]
    if len(found) != 1:
        raise _bad(what, "no single end record ends the file" if not found else
                   "its end record is ambiguous")
    end_at = base + found[0]
    _, disk, start_disk, here, entries, size, start, _ = _END.unpack_from(tail, found[0])
    directory_end = end_at
    locator = read_at(end_at - _END64_LOCATOR.size, _END64_LOCATOR.size) \
        if end_at >= _END64_LOCATOR.size else b""
    if locator[:4] == b"PK\x06\x07":  # a ZIP64 end record (torch always writes one)
        _, _, end64_at, _ = _END64_LOCATOR.unpack(locator)
        record = read_at(end64_at, _END64.size)
        if len(record) != _END64.size or record[:4] != b"PK\x06\x06" or \
                end64_at + 12 + _END64.unpack(record)[1] != end_at - _END64_LOCATOR.size:
            raise _bad(what, "its ZIP64 end record is damaged")
        short = (disk, start_disk, here, entries, size, start)
        (_, _, _, _, disk, start_disk, here, entries, size, start) = _END64.unpack(record)
        if any(value not in (0xFFFF, 0xFFFFFFFF, full) for value, full in
               zip(short, (disk, start_disk, here, entries, size, start), strict=True)):
            raise _bad(what, "its two end records disagree")
        directory_end = end64_at
    elif 0xFFFF in (disk, start_disk, here, entries) or 0xFFFFFFFF in (size, start):
        raise _bad(what, "its ZIP64 end record is missing")
    if disk or start_disk or here != entries:
        raise _bad(what, "it spans several disks")
    if entries > _MAX_MEMBERS:
        raise _bad(what, f"it declares {entries:,} members, more than {_MAX_MEMBERS:,}")
    if start + size != directory_end:
        raise _bad(what, "its central directory is not where its end record says")
    return entries, start, directory_end


def _name(raw: bytes, flags: int, what: str) -> str:
    try:
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
    except UnicodeDecodeError:
        raise _bad(what, f"a member's name {raw[:40]!r} is not valid UTF-8") from None
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or \
            any(part in ("", "..") for part in parts[:-1]) or parts[-1] == "..":
        raise _bad(what, f"the member name {name[:60]!r} is not a plain relative path")
    return name


def _zip64(extra: bytes, compressed: int, size: int, offset: int,
           what: str) -> tuple[int, int, int]:
    """Sizes and offset, from the ZIP64 extra field where the entry defers to it."""
    if 0xFFFFFFFF not in (compressed, size, offset):
        return compressed, size, offset
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, position)
        if tag == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, position + 4))
            fields = [size, compressed, offset]
            for index, value in enumerate(fields):
                if value == 0xFFFFFFFF:
                    if not values:
                        break
                    fields[index] = values.pop(0)
            else:
                return fields[1], fields[0], fields[2]
        position += 4 + length
    raise _bad(what, "a member's ZIP64 sizes are missing")


def _local(read_at, offset: int, raw_name: bytes, flags: int, method: int, crc: int,
           compressed: int, size: int, what: str) -> int:
    """Where the member's data starts, once its local header agrees with the central entry."""
    header = read_at(offset, _LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise _bad(what, f"the local header of {raw_name[:60]!r} is missing")
    (_, local_needed, local_flags, local_method, _, _, local_crc, local_compressed, local_size,
     name_length, extra_length) = _LOCAL.unpack(header)
    if local_needed > _NEWEST_FEATURES:
        raise _bad(what, f"member {raw_name[:60]!r} needs ZIP features specrobust does not read")
    local_name = read_at(offset + _LOCAL.size, name_length)
    declared = (local_crc, local_compressed, local_size)
    agrees = local_name == raw_name and local_flags == flags and local_method == method and (
        declared in ((crc, compressed, size), (crc, 0xFFFFFFFF, 0xFFFFFFFF))
        or (flags & 0x8 and declared in ((0, 0, 0), (crc, 0, 0))))
    if not agrees:
        raise _bad(what, f"the local header of {raw_name[:60]!r} disagrees with its central "
                         "directory entry")
    return offset + _LOCAL.size + name_length + extra_length
