"""Video records become a few frames, sampled uniformly and decoded with PyAV, passed as a multi-image prompt.

Why frames as images rather than a video input: TRL 1.16's GRPOTrainer takes images only (no video
column), vLLM and the Qwen processors then treat each frame as one image, and every model family we
support accepts several images per prompt. Frames as images is therefore the one path that works the same in
SFT, GRPO and evaluation. Open-R1-Video sampled 16 frames uniformly; so do we by default
(``video.num_frames``). What the model loses is Qwen2-VL's temporal patch merging of consecutive frames
(each frame costs its full token count), which is why frames get their own, smaller ``video.max_pixels``.

Sampling: the video is cut into N equal segments and the centre frame of each is taken (so 3 frames of a
30-frame clip are frames 5, 15 and 25: no near-duplicate first/last frame, and no black fade-in frame 0).
With ``video.fps`` set, N = duration x fps, capped at ``num_frames``.

Decoding is one sequential pass that stops at the last sampled frame. Seeking would be faster for long
videos but lands on key frames whose timestamps differ between containers; exactness first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from visionr1.data.errors import DataError, Where
from visionr1.data.images import StoredImage, encode_frame


def sample_indices(total: int, n: int) -> list[int]:
    """Centres of ``n`` equal segments of ``total`` frames (all frames when ``total <= n``).

    >>> sample_indices(30, 3)
    [5, 15, 25]
    >>> sample_indices(4, 16)
    [0, 1, 2, 3]
    >>> sample_indices(10, 1)
    [5]
    """
    if total <= n:
        return list(range(total))
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def num_frames_to_sample(total: int, rate: float | None, num_frames: int, fps: float | None) -> int:
    """How many frames to take: ``num_frames``, or ``duration x fps`` capped at ``num_frames``.

    >>> num_frames_to_sample(300, 30.0, 16, None)
    16
    >>> num_frames_to_sample(300, 30.0, 16, 0.5)
    5
    >>> num_frames_to_sample(30, 30.0, 16, 0.1)
    1
    """
    if fps is None or not rate:
        return min(num_frames, total)
    duration = total / rate
    return max(1, min(num_frames, total, int(math.floor(duration * fps + 1e-9))))


def _open(path: Path):
    import av

    return av.open(str(path))


def _count_frames(path: Path) -> int:
    """Frames in the first video stream: the header's count, else the number of packets (demuxing only,
    no decoding: webm/mkv headers often carry no count)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def _decode(path: Path, wanted: list[int]) -> tuple[dict[int, Any], int]:
    """Decode frames ``wanted`` (sorted indices) in one pass; returns them and how many frames were seen."""
    got: dict[int, Any] = {}
    targets = set(wanted)
    last = max(wanted)
    seen = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            seen = i + 1
            if i in targets:
                got[i] = frame.to_image()
            if i >= last:
                break
    return got, seen


def read_video_frames(
    path: Path, where: Where, field: str, num_frames: int, fps: float | None, max_pixels: int
) -> tuple[list[StoredImage], dict[str, Any]]:
    """Sample and encode frames of one video; raises ``DataError`` naming the file and record when the video
    is missing, has no video stream or does not decode. Returns the frames (in order) and metadata about
    them (source frame count and rate, sampled indices)."""
    import av

    if not path.is_file():
        raise where.error(field, f"video file not found: {path}")
    try:
        with _open(path) as container:
            if not container.streams.video:
                raise where.error(field, f"no video stream in {path}")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        total = _count_frames(path)
        if total <= 0:
            raise where.error(field, f"no frames in {path}")
        indices = sample_indices(total, num_frames_to_sample(total, rate, num_frames, fps))
        got, seen = _decode(path, indices)
        if len(got) < len(indices):
            # the header over-counted: resample over the frames that really exist
            if seen == 0:
                raise where.error(field, f"no decodable frames in {path}")
            total = seen
            indices = sample_indices(total, num_frames_to_sample(total, rate, num_frames, fps))
            got, _ = _decode(path, indices)
        frames = [encode_frame(got[i], max_pixels) for i in indices]
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, KeyError, IndexError) as exc:
        raise where.error(field, f"cannot decode video {path}: {exc}") from None
    info = {"video": str(path), "video_frames": total, "video_fps": rate, "frame_indices": indices}
    return frames, info
