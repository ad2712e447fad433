"""`streamer feed video` without a broker: sources, sampling, extractors, stored frames, items.

Every video here is made by the test with PyAV (the library the feeder decodes with).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from streamer.data import bundled_stream
from streamer.feed.errors import FeedError
from streamer.feed.extractors import BuiltinExtractor, TorchScriptExtractor, make_extractor
from streamer.feed.frame_store import FrameStore, encode_image
from streamer.feed.frames import BadFrame, Frame, FrameSampler, open_source
from streamer.feed.render import digit_frames, render_digits_video, write_video
from streamer.feed.sending import Outgoing, Skipped
from streamer.feed.video import stream_name, video_items

av = pytest.importorskip("av", reason="the video feeder needs PyAV (pip install 'streamer[video]')")
# PyTorch 2.13 deprecates TorchScript; users still have such modules, so the feeder reads them
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit.* is deprecated:DeprecationWarning")


def frame_image(i: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A frame whose bright square moves with ``i`` and whose colour cycles: frames differ."""
    image = np.zeros((*size, 3), np.uint8)
    image[..., i % 3] = 60
    top, left = (i * 3) % (size[0] - 12), (i * 5) % (size[1] - 12)
    image[top:top + 12, left:left + 12] = 255
    return image


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of 10 fps video, 30 frames of 64x48."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    assert write_video(path, (frame_image(i) for i in range(30)), fps=10) == 30
    return path


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


# ---------------------------------------------------------------------------------------------
# sampling and sources


def test_the_sampler_keeps_the_first_frame_of_each_slot_of_one_over_fps() -> None:
    sampler = FrameSampler(fps=5)
    kept = [i for i in range(90) if sampler.take(i / 30)]  # 3 s at 30 fps
    assert kept == list(range(0, 90, 6))
    assert all(FrameSampler(None).take(t) for t in (0, 0, 0.01))
    assert sum(FrameSampler(60).take(i / 30) for i in range(30)) == 30  # faster than the source


def test_a_video_file_is_probed_and_sampled_at_the_chosen_fps(clip: Path) -> None:
    source = open_source(clip)
    assert (source.kind, source.name, source.total, source.fps) == ("file", "clip", 30, 10.0)
    frames = list(source.frames(FrameSampler(2)))
    assert [f.index for f in frames] == [0, 5, 10, 15, 20, 25]
    assert [f.ts for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert all(isinstance(f, Frame) and f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
               for f in frames)


def test_decoded_frames_are_the_frames_that_were_encoded(clip: Path) -> None:
    (first, *_) = open_source(clip).frames(FrameSampler(None))
    assert np.abs(first.image.astype(int) - frame_image(0).astype(int)).mean() < 4  # lossy, close


def test_a_folder_of_images_is_read_in_natural_order_with_source_fps_times(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        (tmp_path / f"shot{i}.png").write_bytes(encode_image(frame_image(i)))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path, source_fps=4)
    assert (source.kind, source.total) == ("folder", 3)
    frames = list(source.frames(FrameSampler(None)))
    assert [(f.index, f.ts) for f in frames] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert np.array_equal(frames[2].image, frame_image(10))  # PNG is lossless


def test_an_unreadable_image_in_a_folder_is_a_bad_frame_not_a_silent_gap(tmp_path: Path) -> None:
    (tmp_path / "a1.png").write_bytes(encode_image(frame_image(1)))
    (tmp_path / "a2.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "a3.jpg").write_bytes(encode_image(frame_image(3), "jpg"))
    got = list(open_source(tmp_path).frames(FrameSampler(None)))
    assert [type(g).__name__ for g in got] == ["Frame", "BadFrame", "Frame"]
    assert isinstance(got[1], BadFrame) and got[1].reason.startswith("a2.png is not a readable image")


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "nope.mp4", "no such file, folder or camera"),
    (lambda d: (d / "x.mp4").write_text("not a video") and d / "x.mp4", "cannot read .* as a video"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no images"),
])
def test_sources_that_cannot_work_fail_at_once_with_what_to_do(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        open_source(make(tmp_path))


def test_a_camera_that_is_not_there_says_how_to_check() -> None:
    if sys.platform != "linux" or Path("/dev/video9").exists():
        pytest.skip("needs Linux without a /dev/video9")
    with pytest.raises(FeedError, match=r"cannot open camera /dev/video9: .*ls /dev/video\*"):
        open_source("9")


def test_missing_pyav_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(FeedError, match=r"needs PyAV.*pip install 'streamer\[video\]'"):
        open_source(clip)


# ---------------------------------------------------------------------------------------------
# the built-in extractor


def test_builtin_embeddings_are_unit_vectors_of_fixed_width() -> None:
    extractor = BuiltinExtractor()
    images = [frame_image(i, size) for i, size in enumerate([(48, 64), (480, 640), (17, 9), (1, 1)])]
    images.append(np.zeros((32, 32, 3), np.uint8))  # a black frame has no layout and no edges
    X = extractor(images)
    assert X.shape == (5, 124) and X.dtype == np.float32 and extractor.dim == 124
    assert np.isfinite(X).all()
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-6)


def test_builtin_embeddings_are_deterministic_and_differ_between_frames() -> None:
    extractor = BuiltinExtractor()
    images = [frame_image(i) for i in range(6)]
    first, again = extractor(images), BuiltinExtractor()(list(images))
    assert np.array_equal(first, again)
    distances = np.linalg.norm(first[:, None] - first[None, :], axis=2)
    assert distances[~np.eye(6, dtype=bool)].min() > 0.05


def test_builtin_accepts_grayscale_and_rgba_frames_as_rgb() -> None:
    rgb = frame_image(4)
    gray = rgb.mean(axis=2).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 9, np.uint8)], axis=2)
    extractor = BuiltinExtractor()
    assert np.array_equal(extractor([rgba]), extractor([rgb]))
    assert extractor([gray]).shape == (1, 124)
    with pytest.raises(ValueError, match="must be uint8"):
        extractor([rgb.astype(np.float32)])


def test_builtin_embeddings_tell_digits_apart_by_their_shapes() -> None:
    frames, labels = digit_frames(bundled_stream("digits_frames.csv.gz"), max_digits=400)
    X = BuiltinExtractor()(list(frames))
    similarity = X @ X.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = labels[similarity.argmax(axis=1)]
    assert (nearest == labels).mean() > 0.95  # 1-nearest neighbour (0.99 measured); chance is 0.1


def test_unknown_extractor_names_list_the_choices() -> None:
    with pytest.raises(FeedError, match="use builtin, torchscript:PATH or export:PATH"):
        make_extractor("resnet")


# ---------------------------------------------------------------------------------------------
# the torch extractors (TorchScript and torch.export; PyTorch 2.13 deprecates TorchScript)


def test_torchscript_missing_torch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FeedError, match=r"needs PyTorch.*pip install 'streamer\[torch\]'.*builtin"):
        make_extractor(f"torchscript:{tmp_path / 'm.pt'}")


def test_torchscript_module_gets_nchw_float_in_0_1_at_the_input_size(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # per frame: its shape, min, max, and the mean of each channel
            n = x.shape[0]
            stats = [torch.full((n, 1), float(x.shape[1])), torch.full((n, 1), float(x.shape[2])),
                     torch.full((n, 1), float(x.shape[3])), x.amin(dim=(1, 2, 3)).unsqueeze(1),
                     x.amax(dim=(1, 2, 3)).unsqueeze(1), x.mean(dim=(2, 3))]
            return torch.cat(stats, dim=1)

    path = tmp_path / "probe.pt"
    torch.jit.script(Probe()).save(str(path))
    red = np.zeros((30, 50, 3), np.uint8)
    red[..., 0] = 255
    X = make_extractor(f"torchscript:{path}", input_size=32)([red, frame_image(1, (64, 48))])
    assert X.shape == (2, 8) and X.dtype == np.float32
    assert X[0, :3].tolist() == [3, 32, 32]
    assert X[0, 3] == 0.0 and X[0, 4] == pytest.approx(1.0)
    assert X[0, 5:].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_torchscript_output_is_flattened_per_frame_and_deterministic(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(2))
    path = tmp_path / "tiny.pt"
    torch.jit.trace(model.eval(), torch.zeros(1, 3, 16, 16)).save(str(path))
    extractor = TorchScriptExtractor(path, input_size=16)
    images = [frame_image(i) for i in range(3)]
    X = extractor(images)
    assert X.shape == (3, 16) and np.array_equal(X, extractor(images))
    with torch.inference_mode():
        expected = model(extractor.inputs(images)).reshape(3, -1).numpy()
    assert np.allclose(X, expected)
    assert extractor.name == "torchscript:tiny.pt"


def test_an_exported_program_runs_batched_or_frame_by_frame_when_its_batch_is_fixed(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, stride=4), torch.nn.Flatten()).eval()
    example = (torch.zeros(2, 3, 16, 16),)
    dynamic = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(dynamic, str(tmp_path / "dynamic.pt2"))
    torch.export.save(torch.export.export(model, (example[0][:1],)), str(tmp_path / "fixed.pt2"))
    images = [frame_image(i) for i in range(3)]
    batched = make_extractor(f"export:{tmp_path / 'dynamic.pt2'}", input_size=16)
    X = batched(images)
    with torch.inference_mode():
        expected = model(batched.inputs(images)).numpy()
    assert X.shape == (3, 32) and np.allclose(X, expected, atol=1e-6)  # 2 channels x 4 x 4
    assert np.allclose(make_extractor(f"export:{tmp_path / 'fixed.pt2'}", input_size=16)(images), X,
                       atol=1e-6)


def test_a_module_failing_on_its_input_says_what_it_was_given(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class WantsGray(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3))

    torch.jit.script(WantsGray()).save(str(tmp_path / "gray.pt"))
    with pytest.raises(FeedError, match=r"torchscript:gray.pt failed on its input \(1, 3, 8, 8\)"):
        make_extractor(f"torchscript:{tmp_path / 'gray.pt'}", input_size=8)([frame_image(0)])


def test_a_file_that_is_not_torchscript_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(FeedError, match=r"is not a saved torchscript module.*torch.jit.script"):
        make_extractor(f"torchscript:{path}")
    with pytest.raises(FeedError, match="no TorchScript file at"):
        make_extractor(f"torchscript:{tmp_path / 'absent.pt'}")
    with pytest.raises(FeedError, match=r"is not a saved export module.*torch.export.save"):
        make_extractor(f"export:{path}")


# ---------------------------------------------------------------------------------------------
# stored frames and the items made


def test_frames_are_stored_losslessly_with_file_uris_or_a_prefix(tmp_path: Path) -> None:
    image = frame_image(7, (31, 45))  # odd sides
    store = FrameStore(tmp_path / "frames" / "cam")
    uri = store.put("cam-0000007", image)
    assert uri == (tmp_path / "frames" / "cam" / "cam-0000007.png").resolve().as_uri()
    assert np.array_equal(decoded(store.path_of("cam-0000007")), image)
    prefixed = FrameStore(tmp_path / "f", uri_prefix="s3://bucket/cam/", image_format="jpg")
    assert prefixed.put("cam-1", image) == "s3://bucket/cam/cam-1.jpg"
    assert decoded(prefixed.path_of("cam-1")).shape[:2] == (32, 46)  # JPEG 4:2:0 pads to even sides
    assert not list((tmp_path / "f").glob(".*"))  # no temporary file left behind


def test_video_items_carry_embedding_ts_stream_payload_uri_and_frame_index(clip: Path, tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "frames")
    seen: list[str] = []
    out = list(video_items(open_source(clip), BuiltinExtractor(), stream="door", fps=5, store=store,
                           batch_size=4, on_item=lambda item_id, x: seen.append(item_id)))
    assert all(isinstance(o, Outgoing) for o in out) and len(out) == 15
    items = [orjson.loads(o.value) for o in out]  # type: ignore[union-attr]
    assert [i["id"] for i in items] == [f"door-{k:07d}" for k in range(0, 30, 2)] == seen
    assert [o.key for o in out] == [i["id"].encode() for i in items]  # type: ignore[union-attr]
    assert [i["ts"] for i in items] == pytest.approx([k / 10 for k in range(0, 30, 2)])
    assert {len(i["features"]) for i in items} == {124} and {i["stream"] for i in items} == {"door"}
    assert [i["meta"] for i in items] == [{"frame": k} for k in range(0, 30, 2)]
    assert all(Path(i["payload_uri"].removeprefix("file://")).is_file() for i in items)


def test_video_items_stop_after_max_frames(clip: Path) -> None:
    out = list(video_items(open_source(clip), BuiltinExtractor(), stream="c", fps=None, max_frames=4))
    assert len(out) == 4


def test_a_nan_embedding_is_a_skipped_frame_with_the_reason(clip: Path) -> None:
    class Broken:
        name = "broken"

        def __call__(self, images: list[np.ndarray]) -> np.ndarray:
            X = np.ones((len(images), 3))
            X[0, 1] = np.nan
            return X

    out = list(video_items(open_source(clip), Broken(), stream="c", fps=1))
    assert isinstance(out[0], Skipped) and out[0].reason == "frame 0: extractor broken gave NaN or inf"
    assert all(isinstance(o, Outgoing) for o in out[1:]) and len(out) == 3


def test_stream_names_are_safe_for_file_names_and_ids(clip: Path) -> None:
    source = open_source(clip)
    source.name = "my clip (1)"
    assert stream_name(None, source) == "my_clip__1_"
    assert stream_name("door-cam.2", source) == "door-cam.2"
    with pytest.raises(FeedError, match="cannot name frame files"):
        stream_name("../etc", source)


def test_rendered_digit_video_labels_every_frame_and_shows_each_digit_twice(tmp_path: Path) -> None:
    labels = render_digits_video(bundled_stream("digits_frames.csv.gz"), tmp_path / "d.mp4", max_digits=12)
    source = open_source(tmp_path / "d.mp4")
    assert len(labels) == source.total == 24 and source.fps == 20.0
    assert labels[:6].tolist() == [0, 0, 1, 1, 2, 2]
    frames = list(source.frames(FrameSampler(10)))
    assert [f.index for f in frames] == list(range(0, 24, 2))
