"""``kws-espeak``: a keyword-spotting task made on this machine, in the shape of MLPerf Tiny's KWS benchmark.

Every clip is one second at 16 kHz: a word spoken by the ``espeak-ng`` speech synthesizer (run as a subprocess) with
one of many synthetic speakers (an English accent and a voice variant), a random speed and pitch, trimmed, scaled and
shifted to a random place in the second, then mixed with generated noise (white, pink, brown or mains hum) at a
random signal-to-noise ratio. The classes are MLPerf Tiny's twelve: the ten Speech Commands keywords, ``_silence_``
(noise alone) and ``_unknown_`` (the other Speech Commands words). Features are MLPerf-Tiny-style MFCCs computed with
librosa: 30 ms windows every 20 ms (49 frames), 40 mel bands from 20 Hz to 4 kHz, the log of their magnitudes,
then the first 10 DCT coefficients, so one sample is an image of ``(1, 49, 10)``.

The test split's speakers never occur in training (as Speech Commands splits by speaker). A seed fixes every choice:
one seed gives the same arrays every time, which are cached (``~/.cache/tinycompile/tasks/``, keyed by every setting
and the versions of espeak-ng and librosa) so that only the first load renders audio.

This is synthetic speech: far fewer, more regular voices than the thousands of people recorded for Speech Commands,
and no real rooms or microphones; accuracies on it are not comparable with Speech Commands results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

from tinycompile.errors import UserError
from tinycompile.fileio import atomic_path

NAME = "kws-espeak"
KEYWORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")  # MLPerf Tiny's label order
SILENCE, UNKNOWN = "_silence_", "_unknown_"
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero")
# espeak-ng's English accents (its own voices, no MBROLA) and voice variants: a speaker is one of each.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2",
            "klatt3", "whisper", "whisperf", "Alex", "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike", "anika",
            "boris", "ed", "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "pablo", "paul",
            "pedro", "quincy", "rob", "robert", "steph", "travis", "victor", "zac")
SPEEDS = (120, 200)  # words per minute (espeak-ng's default is 175)
PITCHES = (20, 80)  # espeak-ng's 0-99 scale (default 50)
SNR_DB = (0.0, 30.0)
SAMPLE_RATE = 16000
CLIP = SAMPLE_RATE  # one second
WINDOW, HOP, FFT, MELS, MFCCS = 480, 320, 512, 40, 10  # 30 ms windows every 20 ms
FRAMES = 1 + (CLIP - FFT) // HOP  # 49
DEFAULT_CLIPS = 250  # per class: 3000 clips in all
MIN_CLIPS = 5  # per class: one for test, one for validation, and some to train on
TEST_FRACTION = 0.2
GENERATOR = 1  # bump when the audio or the features change: old caches are then ignored


@dataclass(frozen=True)
class KwsConfig:
    """What fixes the data set: the words, the clips per class and the seed."""

    clips_per_class: int = DEFAULT_CLIPS
    keywords: tuple[str, ...] = KEYWORDS
    seed: int = 0

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order: the keywords, then silence and unknown."""
        return (*self.keywords, SILENCE, UNKNOWN)


def parse_name(name: str) -> KwsConfig:
    """``kws-espeak`` (the default size) or ``kws-espeak:N`` (N clips per class) as a config; UserError otherwise."""
    if name == NAME:
        return KwsConfig()
    count = name.removeprefix(f"{NAME}:")
    if not count.isdigit() or int(count) < MIN_CLIPS or int(count) > 100_000:
        raise UserError(f"task {name!r}: write {NAME}:N with N the clips per class, from {MIN_CLIPS} to 100000 "
                        f"(plain {NAME} is {DEFAULT_CLIPS})")
    return KwsConfig(clips_per_class=int(count))


def cache_dir() -> Path:
    """Where generated tasks are kept: ``$XDG_CACHE_HOME/tinycompile/tasks`` (``~/.cache/...`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinycompile" / "tasks"


def load_kws(config: KwsConfig, progress: bool = True) -> dict[str, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` of the task: from the cache, or rendered and then cached (atomically)."""
    espeak = _espeak()
    key = {"generator": GENERATOR, "clips_per_class": config.clips_per_class, "keywords": list(config.keywords),
           "seed": config.seed, "espeak-ng": _espeak_version(espeak), "librosa": version("librosa")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{NAME}-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except Exception:  # noqa: BLE001 - absent, or damaged (then made again)
        pass
    arrays = generate(config, espeak, progress)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, classes=np.array(config.classes))
    return arrays


def generate(config: KwsConfig, espeak: str | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Render every clip and compute its MFCCs: ``x`` shaped ``(N, 1, 49, 10)`` float32, ``y`` int64."""
    espeak = espeak or _espeak()
    speakers = [(a, v) for a in ACCENTS for v in VARIANTS]
    order = np.random.default_rng([config.seed, 0]).permutation(len(speakers))
    n_test_speakers = round(len(speakers) * TEST_FRACTION)
    pools = {"test": [speakers[i] for i in order[:n_test_speakers]],
             "train": [speakers[i] for i in order[n_test_speakers:]]}
    n_test = max(1, round(config.clips_per_class * TEST_FRACTION))
    jobs = [(label, i, "test" if i < n_test else "train")
            for label in range(len(config.classes)) for i in range(config.clips_per_class)]

    def one(job: tuple[int, int, str]) -> np.ndarray:
        label, i, split = job
        return mfcc(render(config, label, i, pools[split], espeak))

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # espeak-ng runs outside the GIL
        results = pool.map(one, jobs)
        if progress:
            from rich.progress import track

            from tinycompile.console import console

            results = track(results, total=len(jobs), console=console(stderr=True),
                            description=f"{NAME}: rendering {len(jobs)} clips with espeak-ng")
        features = np.stack(list(results))[:, None].astype(np.float32)
    labels = np.array([label for label, _, _ in jobs], dtype=np.int64)
    test = np.array([split == "test" for _, _, split in jobs])
    return {"x_train": features[~test], "y_train": labels[~test], "x_test": features[test], "y_test": labels[test]}


def render(config: KwsConfig, label: int, index: int, speakers: list[tuple[str, str]], espeak: str) -> np.ndarray:
    """Clip ``index`` of class ``label``: one second of float32 audio at 16 kHz, a function of the seed alone."""
    rng = np.random.default_rng([config.seed, 1, label, index])
    name = config.classes[label]
    noise = _noise(rng, CLIP)
    if name == SILENCE:
        return (noise * 10 ** rng.uniform(-3, -1)).astype(np.float32)
    word = UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))] if name == UNKNOWN else name
    accent, variant = speakers[rng.integers(len(speakers))]
    speech = speak(word, f"{accent}+{variant}", int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)),
                   int(rng.integers(PITCHES[0], PITCHES[1] + 1)), espeak)
    if len(speech) > CLIP:  # a slow speaker: keep a random second of the word
        start = int(rng.integers(len(speech) - CLIP + 1))
        speech = speech[start:start + CLIP]
    clip = np.zeros(CLIP)
    start = int(rng.integers(CLIP - len(speech) + 1))  # a random time shift
    speech = speech / max(float(np.abs(speech).max()), 1e-9) * rng.uniform(0.1, 0.9)  # a random level
    clip[start:start + len(speech)] = speech
    clip += noise * float(np.sqrt(np.mean(speech ** 2))) / 10 ** (rng.uniform(*SNR_DB) / 20)
    return clip.astype(np.float32)


def speak(word: str, voice: str, speed: int, pitch: int, espeak: str) -> np.ndarray:
    """``word`` spoken by espeak-ng, resampled to 16 kHz, with the silence around it trimmed (float64, peak <= 1)."""
    import librosa
    from scipy.signal import resample_poly

    try:
        out = subprocess.run([espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"{NAME}: espeak-ng failed to speak {word!r} with voice {voice} ({exc})") from None
    rate, samples = _wav(out)
    audio = resample_poly(samples.astype(np.float64) / 32768.0, SAMPLE_RATE, rate)
    trimmed, _ = librosa.effects.trim(audio, top_db=40, frame_length=512, hop_length=128)
    return trimmed if trimmed.size else audio


def mfcc(clip: np.ndarray) -> np.ndarray:
    """MLPerf-Tiny-style MFCCs of one second: ``(49, 10)`` (frames x coefficients)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=clip.astype(np.float32), sr=SAMPLE_RATE, n_fft=FFT, win_length=WINDOW,
                                         hop_length=HOP, center=False, power=1.0, n_mels=MELS, fmin=20.0, fmax=4000.0)
    coefficients = librosa.feature.mfcc(S=np.log(mel + 1e-6), n_mfcc=MFCCS)  # DCT-II (orthonormal) of the log mels
    return coefficients.T


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of unit-RMS background noise: white, pink (1/f), brown (1/f^2) or mains hum with harmonics."""
    kind = rng.integers(4)
    if kind == 3:
        t = np.arange(n) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi)) for h in (1, 2, 3))
        x = x + 0.1 * rng.standard_normal(n)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n)
        f[0] = f[1]
        x = np.fft.irfft(spectrum / f ** (kind / 2), n)  # kind 0, 1, 2: power falls as 1/f^kind
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def _wav(data: bytes) -> tuple[int, np.ndarray]:
    """Sample rate and int16 samples of the mono WAV espeak-ng writes to stdout (its sizes say 'unknown')."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or b"fmt " not in data[:64] or b"data" not in data[:128]:
        raise UserError(f"{NAME}: espeak-ng did not write a WAV file")
    fmt = data.index(b"fmt ") + 8
    rate = int.from_bytes(data[fmt + 4:fmt + 8], "little")
    start = data.index(b"data", fmt) + 8
    body = data[start:len(data) - (len(data) - start) % 2]
    return rate, np.frombuffer(body, dtype="<i2")


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise UserError(f"task {NAME} needs the espeak-ng program: install it with `apt-get install espeak-ng`")
    return path


@cache
def _espeak_version(espeak: str) -> str:
    try:
        out = subprocess.run([espeak, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.split("Data")[0].strip()  # "eSpeak NG text-to-speech: 1.51  Data at: ..."
