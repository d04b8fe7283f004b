"""Which text encoding an input file is in, and byte-exact reports of what does not decode.

``--encoding auto`` (the default) decides once per file, from its content:

1. A byte order mark decides: UTF-8 BOM → UTF-8 (the BOM is dropped); a UTF-16/32 BOM → that
   encoding (JSON only; line-based formats must be ASCII-compatible and say so clearly).
2. Otherwise the file is scanned from its start for the first line that settles it. ASCII-only
   lines read the same in every supported encoding and settle nothing. The first line with
   non-ASCII bytes that is valid UTF-8 settles UTF-8. The first that is not UTF-8 but is valid
   CP949 *and reads as Korean* (at least half of its non-ASCII characters are Hangul) settles
   CP949. A line that is neither (a corrupted line) settles nothing and the scan goes on.
3. If nothing settles it: CP949 if some non-ASCII line was valid CP949, else UTF-8.

The scan stops at the deciding line, so a Korean Excel export whose first megabytes happen to be
pure ASCII still decodes as CP949; an ASCII-only file is scanned to its end in 1 MiB blocks.

What a user can expect: one encoding per file, as every editor and spreadsheet assumes. The
encoding is *not* chosen line by line, because then a UTF-8 file with one corrupted line would
have that line silently read as Korean mojibake instead of rejected. A line (JSONL, CSV) that does
not decode in the file's encoding is a reject carrying its escaped bytes; a JSON file that does
not decode is an error naming the byte offset.

``euc-kr`` (and its aliases) is read as CP949, its superset, as browsers do (WHATWG): files
labelled EUC-KR by Korean Windows tools routinely hold CP949-only syllables.
"""
from __future__ import annotations

import codecs
import re
from typing import IO

UTF8 = ("utf-8", "utf-8-sig")
BLOCK = 1 << 20
_DECIDE_BYTES = 1 << 16  # how much of a long line is looked at to decide
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_NON_ASCII_TEXT = re.compile("[^\x00-\x7f]")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CP949_ALIASES = {"euc_kr"}  # codecs.lookup names EUC-KR and its aliases (ks_c_5601-1987, ...) so


class EncodingNameError(LookupError):
    pass


def normalize(encoding: str) -> str:
    """The codec name for a user's --encoding value; EUC-KR reads as CP949 (its superset)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise EncodingNameError(encoding) from None
    return "cp949" if name in _CP949_ALIASES else name


def ascii_compatible(encoding: str) -> bool:
    """True when ASCII bytes (and so line ends) mean the same in this encoding: needed to split lines."""
    if encoding in UTF8:
        return True
    try:
        return "a,\n\r".encode(encoding) == b"a,\n\r" and b"a,\n\r".decode(encoding) == "a,\n\r"
    except (UnicodeError, LookupError):
        return False


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte order mark at the start of `head` (64 bytes or so) announces, if any. A
    UTF-16/32 mark counts only if NUL bytes follow (the high bytes of ASCII text in UTF-16), so a
    corrupted UTF-8 file that happens to start with 0xFF 0xFE is not read as UTF-16."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            rest = head[len(bom):]
            return name if name == "utf-8-sig" or not rest or 0 in rest else None
    return None


def classify(line: bytes, final: bool = True) -> tuple[str | None, bool]:
    """(the encoding this non-ASCII line settles, or None; whether it is valid CP949)."""
    line = line[:_DECIDE_BYTES]
    final = final and len(line) < _DECIDE_BYTES
    try:
        codecs.getincrementaldecoder("utf-8")().decode(line, final=final)
        return "utf-8", False
    except UnicodeDecodeError:
        pass
    try:
        text = codecs.getincrementaldecoder("cp949")().decode(line, final=final)
    except UnicodeDecodeError:
        return None, False
    korean = len(_HANGUL.findall(text))
    return ("cp949" if korean and 2 * korean >= len(_NON_ASCII_TEXT.findall(text)) else None), True


def detect_stream(handle: IO[bytes]) -> str:
    """Scan a binary file from its start (see the module docstring); memory stays under ~2 MiB."""
    head = handle.read(64)
    bom = bom_encoding(head)
    if bom:
        return bom
    decided, saw_cp949 = scan_lines(handle, head)
    return decided or ("cp949" if saw_cp949 else "utf-8")


def scan_lines(handle: IO[bytes], head: bytes = b"") -> tuple[str | None, bool]:
    """(the encoding the first deciding line settles, or None; whether a line was valid CP949) for the lines
    of `head` + the rest of `handle`, which starts at a line's start. sftdata.scale.splits scans each byte
    range's own lines this way; the first range with a decision decides the file."""
    saw_cp949 = False
    pending = head  # the unfinished last line of the blocks read so far (only kept if non-ASCII)
    skipping = False  # inside an over-long line that was already classified
    while True:
        block = handle.read(BLOCK)
        data = pending + block
        pending = b""
        at_end = not block
        if skipping:
            cut = data.find(b"\n")
            if cut < 0:
                if at_end:
                    break
                continue
            data, skipping = data[cut + 1:], False
        position = 0
        while True:
            found = _NON_ASCII.search(data, position)
            if found is None:
                break
            start = data.rfind(b"\n", 0, found.start()) + 1
            end = data.find(b"\n", found.start())
            if end < 0 and not at_end:
                if len(data) - start <= BLOCK:
                    pending = data[start:]
                    break
                skipping = True  # an over-long line: decide on what we have, then skip its rest
            line = data[start:] if end < 0 else data[start:end]
            decided, cp949_ok = classify(line, final=end >= 0 or at_end)
            if decided:
                return decided, saw_cp949
            saw_cp949 = saw_cp949 or cp949_ok
            if end < 0:
                break
            position = end + 1
        if at_end:
            break
    return None, saw_cp949


def detect_bytes(data: bytes) -> str:
    import io

    return detect_stream(io.BytesIO(data))


def first_error(data: bytes, encoding: str) -> UnicodeDecodeError | None:
    try:
        data.decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError as error:
        return error
    return None


_ESCAPES = {**{i: f"\\x{i:02x}" for i in (*range(0x20), *range(0x7f, 0x100))},
            ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def escape_bytes(data: bytes, limit: int = 4096) -> str:
    """Bytes as printable ASCII, escaped as in a Python bytes literal (\\xff, \\x00, \\n, \\\\), cut
    after `limit` bytes with a note of how many more there were."""
    text = data[:limit].decode("latin-1").translate(_ESCAPES)
    return text + (f"...(+{len(data) - limit} bytes)" if len(data) > limit else "")


def escape_around(data: bytes, offset: int, limit: int = 4096) -> str:
    """escape_bytes, but a long input keeps its start and the bytes around `offset`."""
    if len(data) <= limit or offset < limit // 2:
        return escape_bytes(data, limit)
    half = limit // 4
    window = data[max(0, offset - half): offset + half]
    return (escape_bytes(data[: limit // 2], limit) + f"...(bytes {max(0, offset - half)}..) "
            + escape_bytes(window, limit) + f"...(of {len(data)} bytes)")


def describe_error(data: bytes, error: UnicodeDecodeError, encoding: str) -> str:
    offset = error.start
    line = data.count(b"\n", 0, offset) + 1
    return (f"cannot decode byte 0x{data[offset]:02x} at byte offset {offset} (line {line}) as {encoding}; "
            f"bytes there: {escape_bytes(data[max(0, offset - 8): offset + 8])}")
