"""What `trainctl deblur` writes a video as: codec, pixel format, quality setting and container (PyAV/FFmpeg).

Default: H.264 (libx264, CRF 18: visually lossless for most footage; preset veryfast, whose encoding takes 0.4x
the CPU of the default preset, measured at 720p: the model needs the cores) in the input's container when that
can hold it (MP4, M4V, MOV, MKV), else MP4 (AVI and WebM inputs). Pixel format: 4:2:0 (what every player takes) for a
4:2:0 input of even width and height; 4:4:4 otherwise, since H.264 cannot store an odd width or height in 4:2:0
and a 4:4:4 or RGB input should not lose chroma. `--codec mpeg4` (MPEG-4 Part 2, FFmpeg's own encoder, any size,
`--crf` read as its fixed quantizer 2-31) is also the named fallback when the FFmpeg build has no libx264; `--codec ffv1`
is lossless (RGB kept exactly) in MKV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import UsageError

CHROMA_420 = ("yuv420p", "yuvj420p", "nv12", "nv21", "yuv420p10le")


@dataclass(frozen=True)
class Codec:
    name: str  # what --codec takes
    encoder: str  # FFmpeg encoder
    label: str  # for the output line
    containers: tuple[str, ...]  # suffixes that hold it; the first is the default
    crf: tuple[int, int, int] | None  # (lowest, highest, default) of --crf; None: lossless, no setting

    def options(self, crf: int | None) -> dict[str, str]:
        """Encoder options for quality `crf` (the default when None)."""
        if self.crf is None:
            return {}
        value = str(self.crf[2] if crf is None else crf)
        if self.encoder == "libx264":  # veryfast: 0.4x medium's CPU per 720p frame, beside a model on 2 cores
            return {"crf": value, "preset": "veryfast"}
        return {"qmin": value, "qmax": value}  # MPEG-4 Part 2: a fixed quantizer

    def pixel_format(self, width: int, height: int, source: str | None) -> str:
        """The pixel format to encode a `width`x`height` video decoded as `source` in."""
        if self.name == "ffv1":
            return "bgr0"  # RGB itself: lossless from the model's output to the file
        if self.name == "mpeg4":
            return "yuv420p"  # the only one it takes; it handles odd sizes itself
        even = width % 2 == 0 and height % 2 == 0
        return "yuv420p" if even and (source is None or source in CHROMA_420) else "yuv444p"

    def describe(self, pixel_format: str, crf: int | None) -> str:
        if self.crf is None:
            return f"{self.label}, lossless {pixel_format}"
        setting = "crf" if self.encoder == "libx264" else "quantizer"
        return f"{self.label}, {pixel_format}, {setting} {self.crf[2] if crf is None else crf}"


CODECS = {
    c.name: c
    for c in (
        Codec("h264", "libx264", "H.264 (libx264)", (".mp4", ".m4v", ".mov", ".mkv"), (0, 51, 18)),
        Codec("mpeg4", "mpeg4", "MPEG-4 Part 2", (".mp4", ".m4v", ".mov", ".mkv", ".avi"), (2, 31, 2)),
        Codec("ffv1", "ffv1", "FFV1", (".mkv", ".avi"), None),
    )
}
DEFAULT = "h264"
FALLBACK = "mpeg4"  # FFmpeg's own encoder: in every build


def encoder_available(encoder: str) -> bool:
    """Whether the FFmpeg that PyAV bundles can encode with `encoder`."""
    import av

    try:
        av.codec.Codec(encoder, "w")
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        return False
    return True


@dataclass(frozen=True)
class Choice:
    codec: Codec
    crf: int | None
    note: str  # why this is not what was asked, or ""


def choose(name: str | None, crf: int | None, available: Callable[[str], bool] = encoder_available) -> Choice:
    """The codec for `--codec NAME --crf N` (None: the defaults); UsageError for a bad pair. The default falls
    back to MPEG-4 Part 2, saying so, when this FFmpeg has no H.264 encoder; a named codec never changes."""
    if name is not None and name not in CODECS:
        raise UsageError(f"--codec {name}: not one of {', '.join(CODECS)}")
    codec, note = CODECS[name or DEFAULT], ""
    if not available(codec.encoder):
        if name is not None or not available(CODECS[FALLBACK].encoder):
            raise UsageError(f"--codec {codec.name}: this FFmpeg build has no {codec.encoder} encoder")
        note = f"this FFmpeg has no {codec.encoder}: {CODECS[FALLBACK].label} instead"
        if crf is not None:  # an H.264 CRF means something else to the fallback
            note += f" (its own default quality: --crf {crf} is an H.264 setting)"
        codec, crf = CODECS[FALLBACK], None
    if crf is not None:
        if codec.crf is None:
            raise UsageError(f"--crf {crf}: {codec.label} is lossless and takes no quality setting")
        low, high, _ = codec.crf
        if not low <= crf <= high:
            raise UsageError(f"--crf {crf}: {codec.label} takes {low} (best) to {high}")
    return Choice(codec, crf, note)


def container(src_suffix: str, codec: Codec) -> str:
    """The output suffix: the input's when it holds `codec`, else the codec's first container."""
    suffix = src_suffix.lower()
    return suffix if suffix in codec.containers else codec.containers[0]


# Audio codecs each output container takes as they are (copied); any other audio is re-encoded to the first one.
AUDIO_COPY = {
    ".mp4": ("aac", "mp3", "ac3", "eac3", "alac", "opus"),
    ".m4v": ("aac", "mp3", "ac3", "eac3", "alac"),
    ".mov": ("aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"),
    ".avi": ("pcm_s16le", "mp3", "ac3", "mp2", "pcm_u8"),
}


def audio_plan(suffix: str, audio_codec: str) -> str | None:
    """None: copy the audio stream as it is into a `suffix` file; else the encoder to re-encode it with."""
    if suffix == ".mkv":
        return None  # Matroska holds every audio codec
    allowed = AUDIO_COPY[suffix]
    return None if audio_codec in allowed else ("pcm_s16le" if suffix == ".avi" else "aac")
