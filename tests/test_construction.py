"""The three rules that hold specrobust's guarantees by construction, tested as properties over
generated inputs rather than lists of cases:

- parse once: a ZIP archive (checkpoint, program, .npz) mutated at random (repeated, renamed,
  reordered and recompressed members, headers that disagree, bytes flipped) is either refused
  in one line or read with exactly the original content; never read differently;
- allow by list: images in any format but PNG and JPEG are refused whatever they are named,
  image modes outside the list are refused, 16-bit images keep their values;
- bound by declaration: a declared size larger than what is held is refused before anything
  is allocated (checked in a subprocess under a hard memory limit);

and the output rule: below a path the user named, a link swapped in is refused, not followed;
special files are refused by type; the Python API refuses bad arguments with one ValueError.
"""

from __future__ import annotations

import collections
import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import specrobust
from specrobust.checkpoint import read_checkpoint
from specrobust.data import user
from specrobust.data.images import open_image
from specrobust.errors import SpecRobustError
from specrobust.files import storage
from specrobust.files.ziparchive import DEFLATED, STORED, Archive, rebuild

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
TALLY: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    from tests_support import write_tally

    write_tally(TALLY)


def _one_line(error: BaseException) -> bool:
    return isinstance(error, SpecRobustError) and "\n" not in str(error) and len(str(error)) < 400


# ---- parse once: ZIP archives -------------------------------------------------------------------


def _state_dict_file() -> tuple[bytes, dict]:
    state = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.tensor([1.0, -1.0])}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a repeated name: that is the point
        with zipfile.ZipFile(out, "w", method) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return out.getvalue()


MUTATIONS = st.one_of(
    st.tuples(st.just("repeat"), st.integers(0, 20), st.binary(max_size=40)),
    st.tuples(st.just("case"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("reorder"), st.permutations(range(8)), st.none()),
    st.tuples(st.just("deflate"), st.none(), st.none()),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("prefix"), st.binary(min_size=1, max_size=30), st.none()),
    st.tuples(st.just("local-name"), st.integers(0, 20), st.none()),
    st.tuples(st.just("declared-size"), st.integers(0, 20), st.integers(1, 2**31)),
)


def _mutate(data: bytes, mutation) -> bytes:
    kind, a, b = mutation
    members = _members(data)
    if kind == "repeat":  # a second member of an existing name, holding other bytes
        return _zip([*members, (members[a % len(members)][0], b)])
    if kind == "case":  # a name that equals another once case is folded
        name, content = members[a % len(members)]
        other = name.upper() if b else name[:-1] + name[-1].swapcase()
        return _zip([*members, (other, content)])
    if kind == "reorder":
        order = [i for i in a if i < len(members)] + list(range(8, len(members)))
        return _zip([members[i] for i in order])
    if kind == "deflate":
        return _zip(members, zipfile.ZIP_DEFLATED)
    if kind == "flip":
        position = a % len(data)
        return data[:position] + bytes([data[position] ^ b]) + data[position + 1:]
    if kind == "prefix":
        return a + data
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    info = infos[a % len(infos)]
    if kind == "local-name":  # the local header names another member than the central entry
        at = info.header_offset + 30
        return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]
    # declared-size: the central directory declares another unpacked size
    central = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    entry = central[a % len(central)]
    return data[:entry + 24] + struct.pack("<L", b) + data[entry + 28:]


@PROPERTY
@given(mutation=MUTATIONS)
def test_a_mutated_checkpoint_is_refused_in_one_line_or_read_exactly(mutation):
    TALLY["parse once"] += 1
    original, state = _state_dict_file()
    mutated = _mutate(original, mutation)
    try:
        payload = read_checkpoint(Path("m.pt"), mutated)
    except Exception as error:  # noqa: BLE001 - what is raised is the property
        assert _one_line(error), repr(error)
        return
    assert set(payload) == set(state)
    for key, value in state.items():
        assert torch.equal(payload[key], value)


@PROPERTY
@given(mutation=MUTATIONS)
def test_what_the_zip_reader_accepts_is_what_every_reader_reads(mutation):
    """Where specrobust's reader accepts an archive, Python's zipfile reads the same members
    with the same bytes: no two readers can disagree on an accepted archive."""
    TALLY["parse once"] += 1
    mutated = _mutate(_state_dict_file()[0], mutation)
    try:
        archive = Archive.of_bytes(mutated, "archive", methods=(STORED, DEFLATED),
                                   max_size=1 << 20)
        contents = [(name, archive.read(name)) for name in archive.names()]
    except SpecRobustError as error:
        assert _one_line(error)
        return
    assert _members(mutated) == contents
    assert _members(rebuild(archive)) == contents


def test_repeated_names_in_an_export_archive_are_refused(tmp_path):
    program = torch.export.export(torch.nn.Sequential(torch.nn.Flatten(),
                                                      torch.nn.Linear(3 * 4 * 4, 2)),
                                  (torch.zeros(1, 3, 4, 4),))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    members = _members(buffer.getvalue())
    config = next(name for name, _ in members if name.endswith("model_constants_config.json"))
    hostile = b'{"config": {"c": {"path_name": "custom_obj_0", "use_pickle": true}}}'
    (tmp_path / "p.pt2").write_bytes(_zip([*members, (config, hostile)]))
    with pytest.raises(SpecRobustError, match="appears twice"):
        specrobust.resolve(specrobust.ModelSource(str(tmp_path / "p.pt2"),
                                                  dataset="synthetic:size=8"))


# ---- parse once and bound by declaration: .npz -------------------------------------------------


@PROPERTY
@given(count=st.integers(1, 6), compressed=st.booleans(), mutation=MUTATIONS)
def test_a_mutated_npz_is_refused_in_one_line_or_read_exactly(tmp_path, count, compressed,
                                                               mutation):
    TALLY["parse once"] += 1
    rng = np.random.default_rng(count)
    x = rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 3, count)
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, x=x, y=y)
    path = tmp_path / f"d{count}.npz"
    path.write_bytes(_mutate(buffer.getvalue(), mutation))
    data = user.UserData("npz", path, classes=3)
    for first in (None, 1):  # whole, and only the first image (read up to it, checked whole)
        try:
            _, test, _ = user.load(data, first_test=first)
        except Exception as error:  # noqa: BLE001 - what is raised is the property
            assert _one_line(error), repr(error)
            continue
        assert np.array_equal(test.images.numpy(), x.transpose(0, 3, 1, 2)[:first])
        assert np.array_equal(test.labels.numpy(), y[:first])


def _npy(shape, dtype, payload: bytes) -> bytes:
    header = repr({"descr": np.dtype(dtype).str, "fortran_order": False,
                   "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


@PROPERTY
@given(rows=st.integers(1, 10**9), held=st.integers(0, 64))
def test_npz_arrays_declaring_more_than_they_hold_are_refused(tmp_path, rows, held):
    TALLY["bound by declaration"] += 1
    path = tmp_path / "bomb.npz"
    path.write_bytes(_zip([("x.npy", _npy((rows, 4, 4), "u1", bytes(held))),
                           ("y.npy", _npy((rows,), "<i8", bytes(8 * min(rows, 8))))],
                          zipfile.ZIP_DEFLATED))
    if rows * 16 == held:
        return
    with pytest.raises(SpecRobustError) as refused:
        user.load(user.UserData("npz", path))
    assert _one_line(refused.value)


@pytest.mark.parametrize("labels, says", [
    (np.array([0, -1]), "integers in [0, 2)"),
    (np.array([True, False]), "integers in"),
    (np.array([0.0, np.nan]), "integers in"),
    (np.array([0, 10**12]), "integers in [0, 100000)"),
])
def test_npz_labels_are_checked_before_classes_are_made(tmp_path, labels, says):
    TALLY["bound by declaration"] += 1
    np.savez(tmp_path / "l.npz", x=np.zeros((2, 4, 4), np.uint8), y=labels)
    classes = 2 if labels.min() < 0 else None
    with pytest.raises(SpecRobustError, match=says.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        user.describe(user.UserData("npz", tmp_path / "l.npz", classes=classes))


# ---- allow by list and bound by declaration: images ----------------------------------------------


def _image_folder(tmp_path: Path, data: bytes, name: str = "a.png") -> user.UserData:
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return user.UserData("folder", tmp_path / "images")


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF", "EPS", "PPM", "WEBP"])
def test_only_png_and_jpeg_are_decoded_whatever_the_name(tmp_path, image_format):
    from PIL import Image

    TALLY["allow by list"] += 1
    buffer = io.BytesIO()
    try:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, image_format)
    except (OSError, KeyError):
        pytest.skip(f"this Pillow cannot write {image_format}")
    data = _image_folder(tmp_path, buffer.getvalue())
    with pytest.raises(SpecRobustError, match="PNG and JPEG"):
        user.load(data)


def test_a_postscript_file_named_png_never_reaches_an_interpreter(tmp_path, monkeypatch):
    import PIL.EpsImagePlugin

    def never(*_, **__):
        raise AssertionError("Ghostscript was called")

    TALLY["allow by list"] += 1
    monkeypatch.setattr(PIL.EpsImagePlugin, "Ghostscript", never, raising=False)
    data = _image_folder(tmp_path, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                                   b"showpage\n")
    with pytest.raises(SpecRobustError, match="PNG and JPEG"):
        user.load(data)


@PROPERTY
@given(values=st.lists(st.integers(0, 65535), min_size=16, max_size=16))
def test_sixteen_bit_images_keep_their_values(tmp_path, values):
    from PIL import Image

    TALLY["allow by list"] += 1
    pixels = np.array(values, dtype=np.uint16).reshape(4, 4)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    _, test, _ = user.load(_image_folder(tmp_path, buffer.getvalue()))
    assert np.array_equal(test.images[0, 0].numpy(), np.rint(pixels / 257).astype(np.uint8))


@PROPERTY
@given(mode=st.sampled_from(["L", "RGB", "I;16"]), position=st.integers(0, 10**5),
       flip=st.integers(1, 255), jpeg=st.booleans())
def test_a_damaged_image_is_refused_in_one_line_or_read_exactly(tmp_path, mode, position, flip,
                                                               jpeg):
    """Bytes flipped anywhere in a real PNG (its chunks carry CRCs): one line, or the pixels of
    the original. A JPEG carries no checksum, so a flip there may decode to other pixels: only
    the one line or a decoded image is asked of it."""
    from PIL import Image

    TALLY["parse once"] += 1
    rng = np.random.default_rng(position)
    pixels = rng.integers(0, 65536 if mode == "I;16" else 256, (6, 5, 3)[:2 if mode != "RGB"
                                                                          else 3])
    image = Image.fromarray(pixels.astype(np.uint16 if mode == "I;16" else np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if jpeg and mode != "I;16" else "PNG")
    original = buffer.getvalue()
    data = _image_folder(tmp_path, original)
    _, expected, _ = user.load(data)
    at = position % len(original)
    _image_folder(tmp_path, original[:at] + bytes([original[at] ^ flip]) + original[at + 1:])
    try:
        _, test, _ = user.load(data)
    except Exception as error:  # noqa: BLE001 - what is raised is the property
        assert _one_line(error), repr(error)
        return
    if not (jpeg and mode != "I;16"):
        assert torch.equal(test.images, expected.images)


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">2L5B", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">L", len(ihdr)) + chunk +
            struct.pack(">L", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


@PROPERTY
@given(width=st.integers(16385, 10**6), height=st.integers(1, 10**6))
def test_image_dimensions_are_checked_from_the_header(tmp_path, width, height):
    TALLY["bound by declaration"] += 1
    with pytest.raises(SpecRobustError, match="declares"):
        user.describe(_image_folder(tmp_path, _png_declaring(width, height)))


# ---- bound by declaration, under a hard memory limit ---------------------------------------------


def test_declared_sizes_allocate_nothing_under_a_hard_memory_limit(tmp_path):
    """Each file declares gigabytes and holds kilobytes; each is refused in one line by a
    process that cannot allocate more than its limit."""
    np_bomb = tmp_path / "bomb.npz"
    np_bomb.write_bytes(_zip([("x.npy", _npy((2 * 10**9 // 16, 4, 4), "u1", b"")),
                              ("y.npy", _npy((1,), "<i8", bytes(8)))]))
    png = tmp_path / "images" / "c" / "a.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(_png_declaring(16000, 16000))
    script = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from specrobust.data import user
        from specrobust.errors import SpecRobustError
        limit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + (512 << 20)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        for data in (user.UserData("npz", Path({str(np_bomb)!r})),
                     user.UserData("folder", Path({str(tmp_path / "images")!r}))):
            try:
                user.load(data)
            except SpecRobustError as error:
                print("refused:", error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("refused:") == 2, done.stdout
    TALLY["bound by declaration"] += 2


# ---- special files and the output rule -----------------------------------------------------------


@pytest.mark.parametrize("reader", ["model", "recipe", "image"])
def test_special_files_are_refused_by_type_without_blocking(tmp_path, reader):
    TALLY["special files and links"] += 1
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read = {"model": lambda: specrobust.resolve(str(fifo)),
            "recipe": lambda: storage.read_yaml(fifo, "recipe"),
            "image": lambda: open_image(fifo)}[reader]
    with pytest.raises(SpecRobustError, match="a FIFO, not a regular file"):
        read()


def test_a_link_swapped_in_below_an_output_is_refused_not_followed(tmp_path):
    TALLY["special files and links"] += 1
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    (run / "checkpoints").mkdir(parents=True)
    elsewhere.mkdir()
    storage.write_text(run / "checkpoints" / "a.txt", "ours")
    (run / "checkpoints" / "a.txt").unlink()
    (run / "checkpoints").rmdir()
    (run / "checkpoints").symlink_to(elsewhere)  # swapped in during the run
    with pytest.raises(SpecRobustError, match="symbolic link"):
        storage.write_text(run / "checkpoints" / "a.txt", "ours")
    assert list(elsewhere.iterdir()) == []


def test_a_typed_path_through_a_link_is_resolved_once(tmp_path):
    from specrobust.files.outputs import typed

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    output = typed(tmp_path / "link" / "sub" / "out.json")
    assert output == tmp_path / "link" / "sub" / "out.json"  # shown as typed
    storage.write_text(output, "x")  # written where the link led when it was typed
    assert (tmp_path / "real" / "sub" / "out.json").read_text() == "x"
    (tmp_path / "real" / "sub").rename(tmp_path / "moved")
    (tmp_path / "real" / "sub").symlink_to(tmp_path / "moved")  # a link swapped in below
    with pytest.raises(SpecRobustError, match="symbolic link"):
        storage.write_text(output, "y")
    assert (tmp_path / "moved" / "out.json").read_text() == "x"


# ---- the Python API's boundary -------------------------------------------------------------------


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()


GOOD_IMAGES, GOOD_LABELS = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0])
BAD_ARGUMENTS = [
    ("images", GOOD_IMAGES.tolist(), "torch.Tensor"),
    ("images", (GOOD_IMAGES * 255).to(torch.uint8), "float32"),
    ("images", GOOD_IMAGES.double(), "float32"),
    ("images", GOOD_IMAGES[:0], "non-empty"),
    ("images", GOOD_IMAGES[0], "non-empty batch"),
    ("images", GOOD_IMAGES * 2, r"\[0, 1\]"),
    ("images", GOOD_IMAGES.masked_fill(GOOD_IMAGES > 0.5, float("nan")), "NaN"),
    ("labels", GOOD_LABELS.float(), "integers"),
    ("labels", GOOD_LABELS.bool(), "integers"),
    ("labels", GOOD_LABELS[:3], r"shape \(4,\)"),
    ("labels", GOOD_LABELS - 1, "integers in"),
    ("labels", GOOD_LABELS + 5, r"\[0, 3\)"),
    ("model", lambda x: x, "nn.Module"),
]


@pytest.mark.parametrize("which, value, says", BAD_ARGUMENTS)
@pytest.mark.parametrize("entry", ["evaluate", "analyze"])
def test_the_api_refuses_bad_arguments_with_one_value_error(entry, which, value, says):
    TALLY["python api"] += 1
    arguments = {"model": _model(), "images": GOOD_IMAGES, "labels": GOOD_LABELS, which: value}
    options = {"attacks": "clean"} if entry == "evaluate" else {"parts": "kernels"}
    with pytest.raises(ValueError, match=says) as refused:
        getattr(specrobust, entry)(**arguments, **options)
    assert _one_line(refused.value)


class _Returns(torch.nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, x):
        return self.what(x)


@pytest.mark.parametrize("output, says", [
    (lambda x: (torch.zeros(len(x), 3),), "returns a tuple"),
    (lambda x: {"logits": torch.zeros(len(x), 3)}, "returns a dict"),
    (lambda x: torch.full((len(x), 3), float("nan")), "NaN or infinite logits"),
    (lambda x: torch.zeros(len(x), 3, dtype=torch.int64), "floating-point logits"),
])
def test_the_api_refuses_models_whose_outputs_are_not_logits(output, says):
    TALLY["python api"] += 1
    with pytest.raises(ValueError, match=says):
        specrobust.evaluate(_Returns(output), GOOD_IMAGES, GOOD_LABELS, attacks="clean")


def test_models_in_float64_or_on_the_meta_device_are_refused():
    with pytest.raises(ValueError, match="float64"):
        specrobust.evaluate(_model().double(), GOOD_IMAGES, GOOD_LABELS, attacks="clean")
    with torch.device("meta"):
        meta = torch.nn.Linear(3, 3)
    with pytest.raises(ValueError, match="meta device"):
        specrobust.evaluate(meta, GOOD_IMAGES, GOOD_LABELS, attacks="clean")


@pytest.mark.parametrize("lam", [-1.0, float("nan"), float("inf"), "0.1"])
def test_sar_loss_refuses_a_weight_that_is_not_a_finite_number_at_least_zero(lam):
    with pytest.raises(ValueError, match="lam"):
        specrobust.SARLoss(lam=lam)


def test_pgd_refuses_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        specrobust.pgd(_model(), GOOD_IMAGES, GOOD_LABELS, 8 / 255, 2 / 255, 0)


# ---- random streams ------------------------------------------------------------------------------


@PROPERTY
@given(seed=st.integers(0, 2**62), epoch=st.integers(0, 10**4), step=st.integers(0, 10**6),
       start=st.integers(0, 10**6))
def test_random_streams_of_different_purposes_and_positions_never_share_a_seed(seed, epoch, step,
                                                                              start):
    """Every stream a run draws from, around one position: all seeds distinct (the linear
    arithmetic this replaced made epoch e, step 10,007 + k meet epoch e + 1, step k)."""
    from specrobust import seeds

    drawn = {}
    for offset in range(3):
        e, s = epoch + offset, step + offset
        drawn[("training step", e, s)] = seeds.training_step(seed, e, s)
        drawn[("training step", e + 1, s)] = seeds.training_step(seed, e + 1, s)
        drawn[("training step", e, s + 10_007)] = seeds.training_step(seed, e, s + 10_007)
        drawn[("data epoch", e)] = seeds.data_epoch(seed, e)
        drawn[("validation", e, start + offset)] = seeds.validation(seed, e, start + offset)
        drawn[("validation", e + start, 0)] = seeds.validation(seed, e + start, 0)
        drawn[("synthetic", offset)] = seeds.synthetic(seed, offset)
        drawn[("batch", "pgd20", start + offset)] = seeds.batch(seed, "pgd20", start + offset)
    drawn[("data split",)] = seeds.data_split(seed)
    assert len(set(drawn.values())) == len(drawn)
    assert all(0 <= value < 2**63 for value in drawn.values())


def test_a_data_root_named_through_a_link_is_written_where_it_leads(tmp_path):
    """The data root and the model cache are places the user names: the links on the way to
    them are followed once; the files written below them follow none."""
    from specrobust.data.store import resolve_data_root

    (tmp_path / "disk").mkdir()
    (tmp_path / "root").symlink_to(tmp_path / "disk")
    root = resolve_data_root(tmp_path / "root")
    storage.write_text(root / "cifar10" / "x.bin", "data")
    assert (tmp_path / "disk" / "cifar10" / "x.bin").read_text() == "data"
