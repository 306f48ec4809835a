"""The tar walker: every regular member of a tar file, from its headers, without ``tarfile``'s objects.

Used where a tar shard has no sidecar index (``sidecars.py``), and by ``write_sidecar``.
"""

from __future__ import annotations

import mmap
import os
import tarfile

from .members import LABEL_EXTENSION

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")


def walk_tar(path: str):
    """Yields ``(name, data_offset, size, data)`` of each regular file of a tar, ``data`` only for labels.

    Walks the headers of a memory map of the shard, one slice per member, instead of ``tarfile``'s
    object per member (about 10x faster at a million members). Reads ustar and GNU headers, PAX
    extended headers (``path``, ``size``) and GNU long names; old (v7) tars go to ``tarfile``.

    Raises:
        ValueError: A header that is not a tar header (the shard is not a tar, or is damaged).
    """
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        if total < BLOCK:
            raise ValueError(f"{path!r} is not a readable tar shard: it holds {total} bytes, less than one tar header")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as tar:
            position, long_name, pax = 0, None, {}
            while position + BLOCK <= total:
                header = tar[position:position + BLOCK]
                if header[257:262] != b"ustar":
                    if not header.strip(b"\0"):
                        return  # the end-of-archive blocks
                    if position == 0:  # an old (v7) tar, or no tar at all: tarfile knows the old formats
                        yield from _walk_tarfile(path)
                        return
                    raise ValueError(f"{path!r} is not a readable tar shard: no tar header at byte {position}")
                field = header[124:136]
                try:
                    size = int(field.rstrip(b"\0 ") or b"0", 8)
                except ValueError:
                    size = _number(field, path, position)
                kind = header[156:157]
                data_at = position + BLOCK
                position = data_at + -(-size // BLOCK) * BLOCK
                if kind in (b"x", b"L", b"g"):
                    data = tar[data_at:data_at + size]
                    if kind == b"x":
                        pax = _pax_records(data)
                    elif kind == b"L":
                        long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                    continue
                if kind in _REGULAR:
                    name = pax.get("path") or long_name
                    if name is None:
                        name = header[:100].split(b"\0", 1)[0]
                        if header[345] != 0:
                            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
                        name = name.decode("utf-8", "surrogateescape")
                    if "size" in pax:
                        size = int(pax["size"])
                        position = data_at + -(-size // BLOCK) * BLOCK
                    if position > total:
                        raise ValueError(f"{path!r} is cut short: member {name!r} ends at byte {data_at + size}, past its "
                                         f"{total} bytes")
                    label = tar[data_at:data_at + size] if name[-4:].lower() == "." + LABEL_EXTENSION else None
                    yield name, data_at, size, label
                long_name, pax = None, {}


def _walk_tarfile(path: str):
    """`walk_tar` through ``tarfile``, for the tar formats without a ustar header."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    label = tar.extractfile(member).read() if member.name.lower().endswith("." + LABEL_EXTENSION) else None
                    yield member.name, member.offset_data, member.size, label
    except tarfile.ReadError as err:
        raise ValueError(f"{path!r} is not a readable tar shard: {err}") from None


def _number(field: bytes, path: str, position: int) -> int:
    """A tar header's number field: octal text, or GNU's base-256 for large values."""
    if field[0] & 0x80:  # GNU base-256, for members over 8 GB
        return int.from_bytes(field[1:], "big")
    try:
        return int(field.strip(b"\0 ") or b"0", 8)
    except ValueError:
        raise ValueError(f"{path!r} is not a readable tar shard: bad size field at byte {position}") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records, at = {}, 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0:
            break
        length = int(data[at:space])
        key, _, value = data[space + 1:at + length - 1].partition(b"=")
        records[key.decode()] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


def header_matches(header: bytes, size: int) -> bool:
    """Whether ``header``, the 512 bytes before a member's data, is a ustar header of a ``size``-byte member."""
    if len(header) != BLOCK or header[257:262] != b"ustar":
        return False
    try:
        return _number(header[124:136], "", 0) == size
    except ValueError:
        return False
