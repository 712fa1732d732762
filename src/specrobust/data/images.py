"""Images from files a user hands over: decoded only by the decoders named here, within bounds
read from their headers.

Pillow picks a decoder from a file's content, and some of its plugins hand the file to an
interpreter (PostScript to Ghostscript), so the formats are allowed by list and a file named
``.png`` that is something else is refused. The file is read once, within a size cap, and Pillow
parses those bytes; its dimensions are checked from the header before anything is decoded.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np

from specrobust.errors import SpecRobustError, first_line

# Allowed by list: the decoders Pillow may use (never one it picks from the content alone: some
# of its plugins hand the file to an interpreter), and the image modes they may produce, each
# with the range its values span.
IMAGE_FORMATS = ("PNG", "JPEG")
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit grey: values 0-65535
GREY_MODES = ("1", "L", "LA", *SIXTEEN_BIT_MODES)
# Bounds checked on what a file declares before it is read or decoded.
MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 64 << 20
MAX_UNRESIZED_SIDE = 4096  # as size= allows: a model is never handed larger images


def open_image(path: Path, *, verify: bool = False):
    """The image at ``path``, its header read (format, mode and size checked against the
    lists and bounds above); nothing is decoded yet. With ``verify``, a PNG's whole structure
    is checked first (:func:`_check_png`), as it must be before its pixels are used."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise SpecRobustError("images (folders, Tiny ImageNet) are read with Pillow: pip install "
                              "'specrobust[formats]'") from None
    from specrobust.files.storage import read_regular

    try:
        data = read_regular(path, "image", MAX_IMAGE_BYTES)
    except OSError as error:
        raise SpecRobustError(f"cannot read image {path} ({error.strerror})") from None
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise SpecRobustError(f"image {path} declares more pixels than specrobust decodes "
                              f"({MAX_IMAGE_PIXELS >> 20} Mpixels)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise SpecRobustError(f"cannot read image {path}: specrobust reads PNG and JPEG files "
                              f"({type(error).__name__}: {first_line(error, 120)})") from None
    width, height = image.size
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise SpecRobustError(f"image {path} declares {width}x{height} pixels, more than "
                              f"specrobust decodes ({MAX_IMAGE_SIDE} a side, "
                              f"{MAX_IMAGE_PIXELS >> 20} Mpixels)")
    if image.mode not in EIGHT_BIT_MODES + SIXTEEN_BIT_MODES:
        raise SpecRobustError(f"image {path} has mode {image.mode}, which specrobust does not "
                              f"read (it reads {', '.join(EIGHT_BIT_MODES + SIXTEEN_BIT_MODES)})")
    if verify and image.format == "PNG":
        _check_png(data, image.size, path)
    return image


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type


def _check_png(data: bytes, size: tuple[int, int], path: Path) -> None:
    """Every chunk whole and its CRC right, IHDR first and IEND last with nothing after, and
    the image data one complete zlib stream (its Adler-32 checked) of no more than the header
    declares. Pillow checks none of the image data's CRCs and stops inflating once it has its
    rows, so a damaged PNG would otherwise decode to other pixels without a word."""
    def refused(why: str) -> SpecRobustError:
        return SpecRobustError(f"image {path} is damaged: {why}")

    position, chunks, image_data = 8, [], []
    while position < len(data):
        if position + 12 > len(data):
            raise refused("its last chunk is cut short")
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        end = position + 12 + length
        if end > len(data):
            raise refused(f"chunk {kind!r} runs past the end of the file")
        body = data[position + 8:end - 4]
        if zlib.crc32(kind + body) != int.from_bytes(data[end - 4:end], "big"):
            raise refused(f"chunk {kind!r} fails its CRC check")
        chunks.append(kind)
        if kind == b"IDAT":
            image_data.append(body)
        position = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or position != len(data):
        raise refused("it does not run from IHDR to IEND with nothing after")
    width, height = (int.from_bytes(data[16 + 4 * i:20 + 4 * i], "big") for i in range(2))
    depth, colour = data[24], data[25]
    if (width, height) != size or colour not in _PNG_CHANNELS:
        raise refused("its header is inconsistent")
    row = (width * _PNG_CHANNELS[colour] * depth + 7) // 8 + 1
    bound = 2 * height * row + 7 * height  # interlaced passes add at most a row's filter bytes
    inflater = zlib.decompressobj()
    try:
        produced = len(inflater.decompress(b"".join(image_data), bound + 1))
    except zlib.error as error:
        raise refused(f"its image data does not inflate ({error})") from None
    if not inflater.eof or inflater.unused_data or produced > bound:
        raise refused("its image data is not one complete stream of the declared size")


def pixels(path: Path, channels: int):
    """The decoded image at ``path`` as 8-bit grey or RGB, 16-bit values scaled by their true
    range (65535 -> 255), never clipped."""
    from PIL import Image

    image = open_image(path, verify=True)
    try:
        if image.mode in SIXTEEN_BIT_MODES:
            values = np.asarray(image, dtype=np.int64)
            if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
                raise SpecRobustError(f"image {path} holds values outside 0-65535 for its "
                                      f"16-bit mode {image.mode}")
            image = Image.fromarray(np.rint(values / 257).astype(np.uint8), mode="L")
        return image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError) as error:
        raise SpecRobustError(f"cannot decode image {path} ({type(error).__name__}: "
                              f"{first_line(error, 120)})") from None
