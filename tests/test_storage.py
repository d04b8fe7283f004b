"""s3:// (and any fsspec) paths, against a real S3 endpoint on 127.0.0.1 (tests/support/s3_server.py: moto's server,
spoken to by s3fs over HTTP): a bucket is read and written as a local folder is, byte for byte, by a local
run and split by split (byte ranges and Parquet row groups read as ranged requests, parts uploaded whole,
dedup's sketches fetched by each machine); and a scheme without its package, a missing object or a command
that writes only locally fails with one line, never a traceback. The Ray run is in test_scale.py."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import fsspec
import orjson
import pytest
from test_scale import OPTIONS, _parquet, _tricky
from test_scale_commands import _near_duplicates

import sftdata
from sftdata.api.scaled import on_engine
from sftdata.ingest.readers import expand_sources
from sftdata.scale.dedup import dedup as dist_dedup


def dist_convert(inputs, output, *, engine, split_mib=64.0, concat=False, options, address=None):
    """convert's split path through the registry (sftdata.api.scaled), as `sftdata convert --engine` takes it."""
    return on_engine("convert", inputs, output, engine, address, split_mib, concat, options)


def _upload(folder: Path, url: str) -> None:
    fs = fsspec.filesystem("s3")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{url}/{path.relative_to(folder).as_posix()}")


def _tree(folder: Path) -> Path:
    """Tricky JSON Lines (BOM and CRLF, broken and blank lines, a late CP949 line), a JSON list, a CSV in a
    subfolder, a Parquet file of many row groups, and what a walk must skip."""
    _tricky(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "sheet.csv").write_text("instruction,output\n질문,답\n\"여러\n줄\",ok\nbad row,,x,y\n",
                                              encoding="utf-8")
    _parquet(folder / "sub" / "rows.parquet", 200, 16)
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.jsonl").write_text('{"instruction": "no"}\n')
    (folder / "README.txt").write_text("not an input")
    (folder / "old.rejects.jsonl").write_text('{"file": "x"}\n')
    return folder


def _named(data: bytes, local: Path, url: str) -> bytes:
    return data.replace(url.encode(), str(local).encode())


def test_a_bucket_is_read_and_written_as_a_folder_is(tmp_path, bucket):
    folder = _tree(tmp_path / "in")
    _upload(folder, f"{bucket}/in")
    local = sftdata.convert([folder], tmp_path / "local.jsonl", preset="alpaca")
    remote = sftdata.convert([f"{bucket}/in"], f"{bucket}/out/records.jsonl", preset="alpaca")
    fs = fsspec.filesystem("s3")
    assert fs.cat(f"{bucket}/out/records.jsonl") == (tmp_path / "local.jsonl").read_bytes()
    rejects = fs.cat(f"{bucket}/out/records.rejects.jsonl")
    assert _named(rejects, folder, f"{bucket}/in") == (tmp_path / "local.rejects.jsonl").read_bytes()
    assert orjson.loads(_named(orjson.dumps(remote.counts.summary()), folder, f"{bucket}/in")) == \
        local.counts.summary()
    assert local.counts.total("rejected") > 10 and str(remote.output) == f"{bucket}/out/records.jsonl"
    meta = orjson.loads(fs.cat(f"{bucket}/out/records.meta.json"))
    assert meta["outputs"]["data"] == f"{bucket}/out/records.jsonl"
    sizes = {f"{bucket}/in/{p.relative_to(folder).as_posix()}": p.stat().st_size for p in folder.rglob("*")}
    assert [s["path"] for s in meta["sources"]] == [str(s.path) for s in expand_sources([f"{bucket}/in"])]
    assert all(s["bytes"] == sizes[s["path"]] and len(s["etag"]) == 32 for s in meta["sources"])
    assert sorted(fs.find(f"{bucket}/out")) == [f"{bucket[5:]}/out/records.{s}" for s in
                                                ("jsonl", "meta.json", "rejects.jsonl")]  # nothing half-written


def test_a_bucket_is_walked_and_globbed_in_the_local_order(tmp_path, bucket):
    folder = _tree(tmp_path / "in")
    (folder / "done").mkdir()
    dist_convert([folder / "plain.jsonl"], folder / "done" / "records", engine="local", split_mib=1e-4, concat=True,
                 options=OPTIONS)  # a parts folder with its --concat file beside it: read once, from the file
    _upload(folder, f"{bucket}/in")

    def names(inputs, root):
        return [str(s.path).removeprefix(str(root)) for s in expand_sources(inputs)]

    walked = names([folder], folder)
    assert names([f"{bucket}/in"], f"{bucket}/in") == walked
    assert "/done/records.jsonl" in walked and not any("secret" in n or "part-" in n for n in walked)
    assert names([f"{bucket}/in/*.jsonl"], f"{bucket}/in") == names([str(folder / "*.jsonl")], folder)
    assert names([f"{bucket}/in/sub"], f"{bucket}/in") == ["/sub/rows.parquet", "/sub/sheet.csv"]


def test_splits_of_objects_in_a_bucket_give_the_local_output(tmp_path, bucket):
    """Byte ranges of JSON Lines objects and row groups of a Parquet object are ranged reads; the parts are
    uploaded whole and --concat writes the single files into the bucket."""
    folder = _tree(tmp_path / "in")
    _upload(folder, f"{bucket}/in")
    local = sftdata.convert([folder], tmp_path / "local.jsonl", preset="alpaca")
    result = dist_convert([f"{bucket}/in"], f"{bucket}/out/parts", engine="local", split_mib=700 / (1 << 20),
                          concat=True, options=OPTIONS)
    fs = fsspec.filesystem("s3")
    assert fs.cat(f"{bucket}/out/parts.jsonl") == (tmp_path / "local.jsonl").read_bytes()
    assert _named(fs.cat(f"{bucket}/out/parts.rejects.jsonl"), folder, f"{bucket}/in") == \
        (tmp_path / "local.rejects.jsonl").read_bytes()
    assert result.counts.total("written") == local.counts.total("written") and result.counts.balanced()
    meta = orjson.loads(fs.cat(f"{bucket}/out/parts/_meta.json"))
    assert len(fs.glob(f"{bucket}/out/parts/part-*[0-9].jsonl")) == meta["splits"] > 8
    assert sum(1 for s in _splits(f"{bucket}/in", 700) if s.path.endswith(".parquet")) > 3
    again = dist_convert([f"{bucket}/in"], f"{bucket}/out/parts", engine="local", split_mib=1, options=OPTIONS)
    assert len(fs.glob(f"{bucket}/out/parts/part-*[0-9].jsonl")) == again.meta["splits"]  # earlier parts gone


def _splits(url: str, split_bytes: int):
    from sftdata.scale.splits import plan_splits

    return plan_splits([url], split_bytes)


def test_dedup_split_by_split_with_its_sketches_in_the_bucket(tmp_path, bucket):
    data = _near_duplicates(tmp_path / "rows.jsonl", 1200)
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(b"".join(data.read_bytes().splitlines(keepends=True)[100:130]))
    fs = fsspec.filesystem("s3")
    fs.put_file(str(data), f"{bucket}/rows.jsonl")
    fs.put_file(str(evals), f"{bucket}/eval.jsonl")
    local = sftdata.dedup([data], tmp_path / "local.jsonl", against=[evals])
    cache = Path(tempfile.gettempdir()) / "sftdata-work"
    before = set(cache.iterdir()) if cache.exists() else set()
    result = dist_dedup([f"{bucket}/rows.jsonl"], f"{bucket}/parts", against=[f"{bucket}/eval.jsonl"],
                        split_mib=5000 / (1 << 20), concat=True, partitions=3)
    for suffix in ("jsonl", "dupes.jsonl", "rejects.jsonl"):
        assert _named(fs.cat(f"{bucket}/parts.{suffix}"), tmp_path, bucket) == \
            (tmp_path / f"local.{suffix}").read_bytes(), suffix
    assert (result.summary()["exact"], result.summary()["near"]) == (local.summary()["exact"], local.summary()["near"])
    assert local.summary()["near"] > 50 and result.meta["splits"] > 5
    assert not fs.exists(f"{bucket}/parts/.work")  # the sketches are gone from the bucket
    assert (set(cache.iterdir()) if cache.exists() else set()) == before  # and from this machine


def test_filter_split_by_split_into_a_bucket(tmp_path, bucket):
    """A command run through its own function per split (filter here) writes its part locally and uploads it."""
    from sftdata.curate.filters import FilterSpec
    data = _near_duplicates(tmp_path / "rows.jsonl", 300)
    fsspec.filesystem("s3").put_file(str(data), f"{bucket}/rows.jsonl")
    local = sftdata.filter([data], tmp_path / "local.jsonl", min_chars=60)
    on_engine("filter", [f"{bucket}/rows.jsonl"], f"{bucket}/parts", "local", None, 3000 / (1 << 20), True,
              {"spec": FilterSpec(min_chars=60)})
    fs = fsspec.filesystem("s3")
    assert fs.cat(f"{bucket}/parts.jsonl") == (tmp_path / "local.jsonl").read_bytes()
    assert _named(fs.cat(f"{bucket}/parts.rejects.jsonl"), tmp_path, bucket) == \
        (tmp_path / "local.rejects.jsonl").read_bytes()
    assert not fs.glob(f"{bucket}/parts/*.meta.json") and local.counts.total("filtered") > 10


def test_an_output_that_fails_midway_leaves_no_object(bucket):
    """AtomicFile to a URL: a write that fails leaves nothing under the name (and no local temporary file)."""
    from sftdata.writers import AtomicFile

    target = f"{bucket}/out/records.jsonl"
    left = set(Path(tempfile.gettempdir()).glob(".records.jsonl.*"))
    with pytest.raises(RuntimeError), AtomicFile(target) as sink:
        sink.write(b"x" * (12 << 20))
        raise RuntimeError("killed midway")
    assert not fsspec.filesystem("s3").exists(target)
    assert set(Path(tempfile.gettempdir()).glob(".records.jsonl.*")) == left
    with AtomicFile(target) as sink:
        sink.write(b"y" * (20 << 20))  # larger than one upload block: streamed in parts
    assert fsspec.filesystem("s3").size(target) == 20 << 20


def test_an_eval_set_in_a_bucket_is_named_by_its_url_in_the_sidecar(tmp_path, bucket):
    """decontaminate --against s3://…: the eval file is read from the bucket and the sidecar records it by URL,
    with its size and the store's hash (it was looked up as a local path, with "//" collapsed)."""
    data = _near_duplicates(tmp_path / "rows.jsonl", 200)
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(b"".join(data.read_bytes().splitlines(keepends=True)[10:30]))
    fsspec.filesystem("s3").put_file(str(evals), f"{bucket}/eval.jsonl")
    local = sftdata.decontaminate([data], tmp_path / "local.jsonl", against=[evals])
    remote = sftdata.decontaminate([data], f"{bucket}/clean.jsonl", against=[f"{bucket}/eval.jsonl"])
    assert remote.counts.summary()["filtered"] == local.counts.summary()["filtered"] > 5
    [digest] = orjson.loads(fsspec.filesystem("s3").cat(f"{bucket}/clean.meta.json"))["against"]
    assert digest["path"] == f"{bucket}/eval.jsonl" and digest["bytes"] == evals.stat().st_size and digest["etag"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sftdata.cli", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_cli_converts_from_a_bucket_into_a_bucket(tmp_path, bucket):
    folder = _tree(tmp_path / "in")
    _upload(folder, f"{bucket}/in")
    done = _cli("convert", f"{bucket}/in", "-o", f"{bucket}/records.jsonl", "--preset", "alpaca", "--json")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert json.loads(line)["output"] == f"{bucket}/records.jsonl"
    local = sftdata.convert([folder], tmp_path / "local.jsonl", preset="alpaca")
    assert fsspec.filesystem("s3").cat(f"{bucket}/records.jsonl") == (tmp_path / "local.jsonl").read_bytes()
    assert json.loads(line)["written"] == local.counts.total("written")


def test_what_cannot_be_read_or_written_is_one_line(tmp_path, bucket):
    missing = _cli("convert", f"{bucket}/nothing.jsonl", "-o", str(tmp_path / "out.jsonl"), "--preset", "alpaca")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert f"{bucket}/nothing.jsonl" in missing.stderr and "no such file" in missing.stderr
    no_package = _cli("convert", "dropbox://team/rows.jsonl", "-o", str(tmp_path / "out.jsonl"), "--preset", "alpaca")
    assert no_package.returncode != 0 and "Traceback" not in no_package.stderr
    assert "dropbox" in no_package.stderr and "install" in no_package.stderr.lower()
    unknown = _cli("convert", "nosuch://x/rows.jsonl", "-o", str(tmp_path / "out.jsonl"), "--preset", "alpaca")
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr and "nosuch" in unknown.stderr
    data = _near_duplicates(tmp_path / "rows.jsonl", 50)
    local_only = _cli("split", str(data), "-o", f"{bucket}/split")
    assert local_only.returncode != 0 and "Traceback" not in local_only.stderr
    assert "local paths" in local_only.stderr and not Path("s3:").exists()
    with pytest.raises(sftdata.SftDataError, match="folder of part files"):
        fsspec.filesystem("s3").pipe(f"{bucket}/taken", b"x")
        dist_convert([data], f"{bucket}/taken", engine="local", options=OPTIONS)
